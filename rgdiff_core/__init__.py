"""rgdiff_core: unified diffusion with a free basis, prior and per-component schedule.

    x_train = load_dataset("digits", 32)
    spec = ProcessSpec(DataSpec("digits", 32), BasisSpec("wavelet", wavelet="haar"),
                       PriorSpec("data"), ScheduleSpec(order="scale", softness=0.3, clip=True))
    process = build_process(spec, x_train)
    images = sample(process, EmpiricalDenoiser(process, x_train), n=16, steps=200)

Conventions (docs/maths.md): t = 0 data, t = 1 noise; lower label = generated first; denoisers
return x0_hat in whitened components; every basis is real orthonormal.
"""

from .accuracy import accuracy, steps_for_accuracy
from .bases import BASES, Basis, make_basis
from .data import DATASETS, gaussian_field, gaussian_field_covariance, load_dataset
from .denoisers import EmpiricalDenoiser, GaussianDenoiser, load_model
from .denoisers.registry import DENOISERS, DenoiserSpec, build_denoiser
from .likelihood import ELBO, elbo
from .metrics import nearest_neighbour_distance, rapsd, sample_quality, sliced_wasserstein
from .priors import PRIORS, Prior, make_prior
from .process import Process
from .samplers import (
    SAMPLERS,
    SamplingCancelled,
    SamplingDiverged,
    StepInfo,
    nfe_count,
    sample,
    sample_latents,
)
from .schedules import (
    ORDERS,
    SCHEDULES,
    NoiseState,
    Schedule,
    cosine_schedule,
    linear_schedule,
    order_labels,
    schedule_from_spec,
    soft_conditioning_schedule,
    stiffness,
    vp_schedule,
)
from .specs import (
    BasisSpec,
    ComponentStats,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_basis,
    build_prior,
    build_process,
    build_schedule,
    component_statistics,
)
from .terminal import prior_term

__all__ = [
    "BASES",
    "Basis",
    "make_basis",
    "DATASETS",
    "gaussian_field",
    "gaussian_field_covariance",
    "load_dataset",
    "EmpiricalDenoiser",
    "GaussianDenoiser",
    "nearest_neighbour_distance",
    "rapsd",
    "sliced_wasserstein",
    "PRIORS",
    "Prior",
    "make_prior",
    "Process",
    "SAMPLERS",
    "SamplingCancelled",
    "SamplingDiverged",
    "nfe_count",
    "sample",
    "sample_latents",
    "ORDERS",
    "SCHEDULES",
    "NoiseState",
    "Schedule",
    "cosine_schedule",
    "linear_schedule",
    "order_labels",
    "schedule_from_spec",
    "soft_conditioning_schedule",
    "stiffness",
    "vp_schedule",
    "DataSpec",
    "BasisSpec",
    "PriorSpec",
    "ScheduleSpec",
    "ProcessSpec",
    "ComponentStats",
    "build_basis",
    "build_prior",
    "component_statistics",
    "build_schedule",
    "build_process",
    "DenoiserSpec",
    "DENOISERS",
    "build_denoiser",
    "load_model",
    "StepInfo",
    "prior_term",
    "elbo",
    "ELBO",
    "accuracy",
    "steps_for_accuracy",
    "sample_quality",
]
__version__ = "0.1.0"
