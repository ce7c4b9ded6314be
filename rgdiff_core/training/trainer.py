"""One training run's state and step: data, process, model, EMA and optimiser (see the package
docstring for the loss and the softness family)."""

from __future__ import annotations

import copy
import hashlib
import math
import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from ..denoisers.checkpoints import save_checkpoint
from ..denoisers.network import GammaConditionedNet, NetworkDenoiser
from ..denoisers.residual import GaussianResidualDenoiser
from ..schedules import soft_conditioning_state
from .config import _RUN_FIELDS, TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; `step` is the first bad step."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


@dataclass
class TrainResult:
    denoiser: NetworkDenoiser  # EMA weights, eval mode
    model: GammaConditionedNet  # the raw (non-EMA) weights
    step: int
    loss_history: list[float]
    checkpoint: Path | None  # None on ranks other than 0
    time_s: float


def v_loss(v_hat: Tensor, v: Tensor, weight: Tensor | None = None) -> Tensor:
    """mean over the batch of sum_i w_i (v_hat_i - v_i)^2 / D (package docstring); w = 1
    when weight is None."""
    err = (v_hat.float() - v.float()).square()
    return err.mean() if weight is None else (weight.float() * err).mean()


def loss_weights(state, kind: str, known: Tensor | None = None) -> Tensor:
    """Per-component loss weights (B, D) (package docstring): "v" 1 on every unknown
    component; "elbo" the ELBO's gamma'(t) alpha^2, normalised to mean 1 over the whole batch
    (not per example: an example with one moving component would put all its weight on it).
    Frozen components (gamma' = 0) get 0 under "elbo"; known components get 0 under both."""
    if kind == "v":
        w = torch.ones_like(state.gamma)
    else:
        w = state.dgamma_dt * torch.sigmoid(-state.gamma)
    if known is not None:
        w = w.masked_fill(known, 0.0)
    if kind == "elbo":
        w = w / w.mean().clamp_min(1e-30)
    return w


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then 1 (constant) or a cosine decay
    to 0 at config.steps."""
    warm = min(1.0, (step + 1) / config.warmup)
    if config.lr_schedule == "constant":
        return warm
    span = max(config.steps - config.warmup, 1)
    frac = min(1.0, max(0.0, (step - config.warmup) / span))
    return warm * 0.5 * (1.0 + math.cos(math.pi * frac))


def random_known(
    labels: Tensor, n: int, p: float, shape, pixel: bool, generator: torch.Generator
) -> Tensor:
    """Known-component masks (n, D) bool for training conditioning: each example is masked with
    probability p. A masked example knows a prefix of the generation order: every component
    with a label below a random distinct label other than the smallest (the left columns in
    column order, the coarse levels in scale order, the largest-variance components in
    variance order); in the pixel basis half of them instead know everything outside a random
    rectangle (inpainting a hole)."""
    dev, dim = labels.device, labels.numel()
    masked = torch.rand(n, generator=generator, device=dev) < p
    groups = labels.unique()  # sorted; a prefix is every group below a random one but the first
    k = torch.randint(1, max(len(groups), 2), (n,), generator=generator, device=dev)
    known = labels.unsqueeze(0) < groups[k.clamp_max(len(groups) - 1)].unsqueeze(1)
    if pixel:
        c, h, w = shape
        size = torch.tensor([h, w], device=dev)
        a = (torch.rand(n, 2, generator=generator, device=dev) * size).long()
        b = (torch.rand(n, 2, generator=generator, device=dev) * size).long()
        lo, hi = torch.minimum(a, b), torch.maximum(a, b) + 1
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        inside = (
            (rows >= lo[:, 0, None, None])
            & (rows < hi[:, 0, None, None])
            & (cols >= lo[:, 1, None, None])
            & (cols < hi[:, 1, None, None])
        )
        hole = (~inside).unsqueeze(1).expand(n, c, h, w).reshape(n, dim)
        use_hole = torch.rand(n, generator=generator, device=dev) < 0.5
        known = torch.where(use_hole.unsqueeze(1), hole, known)
    return known & masked.unsqueeze(1)


def sample_inv_softness(n: int, config: TrainConfig, generator: torch.Generator, device) -> Tensor:
    """1/s (n,) float64 from the softness family (0 for s = inf)."""
    pick = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    lo, hi = math.log(config.softness_min), math.log(config.softness_max)
    log_s = lo + (hi - lo) * torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    inv = torch.exp(-log_s)
    inv = torch.where(
        pick < config.p_softness_one + config.p_softness_inf, torch.ones_like(inv), inv
    )
    return torch.where(pick < config.p_softness_inf, torch.zeros_like(inv), inv)


def _step_seed(seed: int, rank: int, step: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{rank}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if dist.is_initialized() else 0)
    return device


def hardware_description(device: torch.device, world: int = 1) -> str:
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = (
            f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
        )
    return f"{world} x {what}, torch {torch.__version__}"


def _cpu(obj):
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(v) for v in obj)
    return obj


class Trainer:
    """Data, basis, prior, labels, model, EMA and optimiser of one run; `train_step()` does one
    optimisation step. train() adds logging, checkpoints and resume around it."""

    def __init__(self, config: TrainConfig, rank: int = 0, world: int = 1):
        from ..data import load_dataset
        from ..specs import build_process

        cfg = self.config = config
        self.rank, self.world = rank, world
        self.device = dev = _resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
        data = load_dataset(cfg.dataset, cfg.size, "train")
        shape = tuple(data.shape[1:])
        self.gamma_noise = cfg.gamma_noise
        if self.gamma_noise is None:  # auto at s = inf, where L_T is largest (maths.md §2b)
            worst = build_process(cfg.process_spec(softness=math.inf), data)
            self.gamma_noise = worst.schedule.gamma_noise
        self.spec = cfg.process_spec()
        self.spec = replace(
            self.spec, schedule=replace(self.spec.schedule, gamma_noise=self.gamma_noise)
        )
        self.process = process = build_process(self.spec, data, device=dev)
        self.labels = process.schedule.labels
        self.data_variances = process.schedule.variances
        with torch.no_grad():
            self.u_all = process.encode(data.to(dev)).contiguous()
        self._labels_dev = self.labels.to(dev)
        self._log_v_dev = self.data_variances.log().to(dev)
        self._pixel = process.basis.name == "pixel"
        channels = shape[0] * (2 if cfg.gaussian_rank else 1)  # + the gamma image (residual.py)
        model_cfg = replace(cfg.model, in_channels=channels, out_channels=shape[0])
        with torch.random.fork_rng(devices=[]):  # seeded init without touching global state
            torch.manual_seed(cfg.seed)
            self.model = GammaConditionedNet(model_cfg, process.dim)
        self.model.to(dev)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        if cfg.gaussian_rank:
            from ..denoisers.analytic import GaussianDenoiser
            from ..denoisers.registry import GAUSSIAN_FIT_ITEMS

            gauss = GaussianDenoiser.fit(process, data[:GAUSSIAN_FIT_ITEMS].to(dev))
            self.denoiser = GaussianResidualDenoiser(
                process, gauss, model=self.model, rank=cfg.gaussian_rank
            )
            self.ema_denoiser = self.denoiser.with_model(self.ema)
        else:
            self.denoiser = NetworkDenoiser(process, model=self.model)
            self.ema_denoiser = NetworkDenoiser(process, model=self.ema)
        self.net = self.model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [dev.index] if dev.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.lr,
            betas=(0.9, 0.99),
            weight_decay=cfg.weight_decay,
            fused=True if dev.type == "cuda" else None,
        )
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.generator = torch.Generator(device=dev)
        self.step, self.loss_history, self.time_s = 0, [], 0.0

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.config.amp
        if self.device.type != "cuda" or amp == "off":
            return None
        if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16

    def batch(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(z, gamma, v target, loss weight) of this step, drawn from the step's own seed;
        known components (random_known) have gamma = -inf, z = u, v = 0 and weight 0."""
        cfg, gen, dev = self.config, self.generator, self.device
        gen.manual_seed(_step_seed(cfg.seed, self.rank, self.step))
        idx = torch.randint(len(self.u_all), (cfg.batch,), generator=gen, device=dev)
        u = self.u_all[idx]
        t = torch.rand(cfg.batch, generator=gen, device=dev)
        inv_s = sample_inv_softness(cfg.batch, cfg, gen, dev)
        state = soft_conditioning_state(
            self._labels_dev,
            self._log_v_dev,
            inv_s,
            t,
            cfg.gamma_denoise,
            self.gamma_noise,
            cfg.clip,
        )
        eps = torch.randn(u.shape, generator=gen, device=dev)
        alpha, sigma = state.alpha, state.sigma
        z, gamma, v = alpha * u + sigma * eps, state.gamma, alpha * eps - sigma * u
        known = None
        if cfg.p_known > 0:
            known = random_known(
                self._labels_dev, cfg.batch, cfg.p_known, self.process.shape, self._pixel, gen
            )
            z = torch.where(known, u, z)
            gamma = gamma.masked_fill(known, -math.inf)
            v = v.masked_fill(known, 0.0)
        return z, gamma, v, loss_weights(state, cfg.loss_weight, known)

    def train_step(self) -> Tensor:
        """One optimisation step; returns the (detached, unsynchronised) loss."""
        cfg, opt = self.config, self.optimizer
        z, gamma, v, weight = self.batch()
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(self.step, cfg)
        v_hat = self.denoiser.predict_v(z, gamma, model=self.net, autocast_dtype=self.amp_dtype)
        loss = v_loss(v_hat, v, weight)
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        self._update_ema()
        self.step += 1
        return loss.detach()

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        ema, raw = list(self.ema.parameters()), list(self.model.parameters())
        if hasattr(torch, "_foreach_lerp_"):
            torch._foreach_lerp_(ema, raw, 1 - decay)
        else:  # pragma: no cover - older torch
            for e, p in zip(ema, raw, strict=True):
                e.lerp_(p, 1 - decay)

    # -- checkpoints

    def save(self, path: Path, command: str) -> None:
        cfg = self.config
        extra = {
            "train": {
                "config": cfg.to_dict(),
                "model": _cpu(self.model.state_dict()),
                "optimizer": _cpu(self.optimizer.state_dict()),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "world_size": self.world,
                "rng": {
                    "scheme": "generator re-seeded per step from blake2b(seed:rank:step)",
                    "seed": cfg.seed,
                },
            }
        }
        save_checkpoint(
            path,
            self.ema_denoiser,
            dataset=cfg.dataset,
            order=cfg.order,
            labels=self.labels,
            data_variances=self.data_variances,
            gamma_denoise=cfg.gamma_denoise,
            gamma_noise=self.gamma_noise,
            clip=cfg.clip,
            softness_family=cfg.softness_family(),
            steps=self.step,
            time_s=self.time_s,
            hardware=hardware_description(self.device, self.world),
            command=command,
            loss_history=self.loss_history,
            extra=extra,
            process_spec=self.spec.to_dict(),
        )

    def init_from(self, ckpt: dict) -> None:
        """Start from another model's weights (a checkpoint or an exported model of the same
        dataset, size, basis, prior and network shape): fine-tuning, e.g. for other γ̃
        targets. Optimiser, step and history start afresh."""
        cfg = self.config
        theirs = {
            "dataset": ckpt.get("dataset"),
            "size": ckpt.get("size"),
            "basis": (ckpt.get("basis_spec") or {}).get("name"),
            "prior": ckpt.get("prior_kind"),
        }
        ours = {"dataset": cfg.dataset, "size": cfg.size, "basis": cfg.basis, "prior": cfg.prior}
        differ = [
            f"{k}: {theirs[k]!r} there, {ours[k]!r} now" for k in ours if theirs[k] != ours[k]
        ]
        if differ:
            raise ValueError(
                "init_from: the model was trained for another process (" + ", ".join(differ) + ")"
            )
        try:
            self.model.load_state_dict(ckpt["state_dict"])
        except (KeyError, RuntimeError) as err:
            raise ValueError(
                f"init_from: the weights do not fit this network ({str(err).splitlines()[0][:200]})"
            ) from None
        self.ema.load_state_dict(self.model.state_dict())

    def load(self, ckpt: dict) -> None:
        """Restore weights, EMA, optimiser, step, loss history and time from a checkpoint."""
        saved = ckpt.get("train")
        if not isinstance(saved, dict):
            raise ValueError("the checkpoint holds no training state (an exported model?)")
        old, new = TrainConfig.from_dict(saved["config"]).to_dict(), self.config.to_dict()
        differ = [k for k in _RUN_FIELDS if old[k] != new[k]]
        if differ:
            raise ValueError(
                "the checkpoint in out_dir was trained with another config ("
                + ", ".join(f"{k}: {old[k]!r} there, {new[k]!r} now" for k in differ)
                + "); choose another out_dir or resume=False"
            )
        self.model.load_state_dict(saved["model"])
        self.ema.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scaler is not None and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        self.step = int(ckpt["steps"])
        self.loss_history = list(ckpt["loss_history"])[: self.step]
        self.time_s = float(ckpt["time_s"])
