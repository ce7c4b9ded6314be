"""The training run's configuration: process, softness family, optimiser and schedule of steps."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..denoisers.models import UNetConfig
from ..schedules import GAMMA_DENOISE, GAMMA_NOISE

AMP_MODES = ("auto", "bf16", "fp16", "off")
LOSS_WEIGHTS = ("v", "elbo")  # package docstring
LR_SCHEDULES = ("constant", "cosine")
# fields that fix what a checkpoint in out_dir means; the rest may change on resume
_RUN_FIELDS = (
    "dataset",
    "size",
    "basis",
    "basis_options",
    "prior",
    "order",
    "gamma_denoise",
    "gamma_noise",
    "clip",
    "gaussian_rank",
    "model",
    "seed",
)


@dataclass
class TrainConfig:
    dataset: str = "digits"  # rgdiff_core.data dataset (train split)
    size: int = 32  # image side H = W
    basis: str = "dct"  # rgdiff_core.bases name
    basis_options: dict = field(default_factory=dict)  # e.g. {"wavelet": "haar"}
    prior: str = "data"  # rgdiff_core.priors kind, fitted on the train split
    order: str = "variance"  # ordering that gives the labels (schedules.ORDERS but custom)
    gamma_denoise: float = GAMMA_DENOISE  # effective -log SNR at the denoised end
    gamma_noise: float | None = GAMMA_NOISE  # ... and at the noised end; None: auto (L_T)
    clip: bool = True  # clip each component's gamma to its window
    softness_min: float = 0.1  # log-uniform softness range
    softness_max: float = 10.0
    p_softness_one: float = 0.2  # extra mass at s = 1 (standard diffusion)
    p_softness_inf: float = 0.1  # extra mass at s = inf (equal-SNR process)
    gaussian_rank: int = 0  # 0: plain network; r >= 1: exact Gaussian (top r + diag) + residual
    loss_weight: str = "v"  # v: uniform v-MSE; elbo: ELBO weight per component, normalised
    p_known: float = 0.0  # probability of a random known mask per example (conditioning)
    batch: int = 64  # examples per step and process
    lr: float = 3e-4  # AdamW learning rate after warm-up
    lr_schedule: str = "constant"  # constant | cosine (to 0 at `steps`) after warm-up
    warmup: int = 200  # steps of linear learning-rate warm-up
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    ema_decay: float = 0.999  # EMA of the weights (ramped up over the first steps)
    grad_clip: float = 1.0  # max global gradient norm
    steps: int = 20_000  # total optimisation steps (a resumed run continues to this)
    log_every: int = 100  # progress line interval
    ckpt_every: int = 1000  # checkpoint interval
    seed: int = 0  # everything random derives from it
    model: UNetConfig = field(default_factory=UNetConfig)  # channels set from the data
    amp: str = "auto"  # auto (bf16 on CUDA when supported) | bf16 | fp16 | off; CPU: off
    device: str = "auto"  # auto (cuda when present) | cpu | cuda | cuda:N

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = UNetConfig.from_dict(self.model)
        ints = {
            "size": 4,
            "batch": 1,
            "warmup": 1,
            "steps": 0,
            "log_every": 1,
            "ckpt_every": 1,
            "seed": 0,
            "gaussian_rank": 0,
        }
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0 < self.softness_min <= self.softness_max:
            raise ValueError(
                f"need 0 < softness_min <= softness_max, got "
                f"{self.softness_min}, {self.softness_max}"
            )
        p1, pinf = self.p_softness_one, self.p_softness_inf
        if not (0 <= p1 <= 1 and 0 <= pinf <= 1 and p1 + pinf <= 1):
            raise ValueError(
                f"p_softness_one and p_softness_inf must be probabilities with a sum "
                f"<= 1, got {p1}, {pinf}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.weight_decay < 0:
            raise ValueError(
                f"lr must be positive and weight_decay >= 0, got {self.lr}, {self.weight_decay}"
            )
        if not 0 <= self.ema_decay < 1 or not self.grad_clip > 0:
            raise ValueError(
                f"ema_decay must be in [0, 1) and grad_clip > 0, got "
                f"{self.ema_decay}, {self.grad_clip}"
            )
        if self.loss_weight not in LOSS_WEIGHTS:
            raise ValueError(f"loss_weight must be one of {LOSS_WEIGHTS}, got {self.loss_weight!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.p_known <= 1:
            raise ValueError(f"p_known must be in [0, 1], got {self.p_known!r}")
        if self.gamma_noise is not None and not (
            math.isfinite(self.gamma_noise) and self.gamma_noise > self.gamma_denoise
        ):
            raise ValueError(
                f"gamma_noise must be None (auto) or exceed gamma_denoise "
                f"({self.gamma_denoise}), got {self.gamma_noise!r}"
            )
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.order == "custom":
            raise ValueError("order 'custom' cannot be trained from a config; choose another")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["model"] = self.model.to_dict()
        return out

    @classmethod
    def from_dict(cls, spec: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in spec.items() if k in names})

    def process_spec(self, softness: float = 1.0):
        """The ProcessSpec of the trained process at `softness` (rgdiff_core.specs); with
        gamma_noise None the schedule's γ̃_n is auto (resolved by the builder)."""
        from ..specs import BasisSpec, DataSpec, PriorSpec, ProcessSpec, ScheduleSpec

        schedule = ScheduleSpec(
            family="soft",
            order=self.order,
            softness=softness,
            gamma_denoise=self.gamma_denoise,
            gamma_noise=self.gamma_noise,
            clip=self.clip,
        )
        data = DataSpec(self.dataset, self.size)
        return ProcessSpec(
            data, BasisSpec(self.basis, **self.basis_options), PriorSpec(self.prior), schedule
        )

    def softness_family(self) -> dict:
        return {
            "kind": "log_uniform_with_atoms",
            "softness_min": self.softness_min,
            "softness_max": self.softness_max,
            "p_one": self.p_softness_one,
            "p_inf": self.p_softness_inf,
        }
