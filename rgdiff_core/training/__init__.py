"""Training the network denoiser over a family of soft-conditioning schedules
(docs/maths.md §2, §4).

One network serves the whole softness slider: each training example gets its own time and its
own softness, and the network sees the resulting per-component noise state gamma (B, D).

Per step, for a batch of whitened training components u (B, D):

    t ~ U(0, 1) per example
    s per example from the softness family: s = 1 with probability p_one, s = inf with
      p_inf, otherwise log-uniform on [softness_min, softness_max]
    gamma = soft_conditioning_state(labels, log v, 1/s, t, gamma_denoise, gamma_noise, clip)
    z = alpha u + sigma eps,   v = alpha eps - sigma u,   eps ~ N(0, I)
    loss = mean_b  sum_i w_bi (v_hat_bi - v_bi)^2 / D    (w: the weighting below)

Weighting (`loss_weight`). "v": the plain (uniform) v-MSE over components. Since v_hat - v =
(u - x0_hat) / sigma, it equals the x0-MSE with weight 1 / sigma_i^2 = 1 + SNR_i per component
(SNR of the whitened process, e^-gamma_i): nearly-clean components are weighted up, but only up to
1 + e^-gamma_denoise (about 1100 at gamma = -7), and no component is divided by zero. "elbo": the
continuous-time ELBO's weight, 1/2 gamma_i'(t) e^-gamma_i (u_i - x0_hat_i)^2 = 1/2 gamma_i'(t)
alpha_i^2 (v_hat_i - v_i)^2 (docs/maths.md §4), normalised to mean 1 over the batch: components
frozen at (t, s) (gamma' = 0, clipped at either end) weigh nothing, so the network's capacity
goes to the components that are being generated. Normalised over the batch, not per example: the
ELBO's weight integrated over t is the same for every schedule of the family, while a per-example
normalisation would give an example with one moving component D times its share.

Gaussian residual (`gaussian_rank` r >= 1): the denoiser is denoisers.residual's
GaussianResidualDenoiser, x0_hat = the exact Gaussian's (covariance: top r eigenpairs + diagonal
of the fit on the first GAUSSIAN_FIT_ITEMS items) + a residual whose output layer starts at 0, the
network reading gamma also as an image (2C input channels). Known masks (`p_known`): that share
of examples gets a random set of known components (gamma = -inf, z = u, weight 0; trainer's
random_known), so hard conditioning is part of training. Learning rate (`lr_schedule`): linear
warm-up, then constant or a cosine decay to 0 at `steps`. gamma_noise None: the noised-end target
is chosen as the app's auto (prior term <= 0.05 nat) at s = inf, the softness where the prior term
is largest, so every softness of the family ends within the target.

The process (basis, prior, labels, v_i) is built by rgdiff_core.specs.build_process from the
config's ProcessSpec (`TrainConfig.process_spec()`), exactly as the app builds it: statistics from
the first specs.N_STATS training items, variances floored at specs.VARIANCE_FLOOR of their mean
(so constant pixels, e.g. digit corners, keep a finite log v). Checkpoints store that spec.

Training: AdamW with linear warm-up, gradient clipping, an EMA of the weights (the EMA is what
checkpoints serve), bf16/fp16 autocast on CUDA (never on CPU), a progress line every log_every
steps, an atomic checkpoint every ckpt_every steps and at the end. Randomness: the generator is
re-seeded from (seed, rank, step) at every step, so a resumed run draws exactly what the
uninterrupted run would have drawn (the RNG state is a function of the step), and two runs with
one seed give identical weights on one machine. Under torchrun (WORLD_SIZE > 1) the model is
wrapped in DistributedDataParallel (nccl on CUDA, gloo on CPU); every rank draws its own batches
(`batch` is per process), only rank 0 logs and writes checkpoints.
"""

from .config import AMP_MODES, TrainConfig
from .export import export_checkpoint
from .loop import CHECKPOINT_NAME, train
from .trainer import (
    Trainer,
    TrainingDiverged,
    TrainResult,
    hardware_description,
    sample_inv_softness,
    v_loss,
)

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "TrainingDiverged",
    "train",
    "v_loss",
    "export_checkpoint",
    "sample_inv_softness",
    "hardware_description",
    "CHECKPOINT_NAME",
    "AMP_MODES",
]
