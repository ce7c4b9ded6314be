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
    loss = mean_b  sum_i (v_hat_bi - v_bi)^2 / D

Weighting: the loss is the plain (uniform) v-MSE over components. Since v_hat - v =
(u - x0_hat) / sigma, it equals the x0-MSE with weight 1 / sigma_i^2 = 1 + SNR_i per component
(SNR of the whitened process, e^-gamma_i): nearly-clean components are weighted up, but only up to
1 + e^-gamma_denoise (about 1100 at gamma = -7), and no component is divided by zero.

The labels come from `order_labels` (variance order: -log of each basis coefficient's data
variance); v_i (the data variance of whitened component i) comes from the training split, floored
at 1e-6 of its mean so that constant pixels (digit corners) keep a finite log v.

Training: AdamW with linear warm-up, gradient clipping, an EMA of the weights (the EMA is what
checkpoints serve), bf16/fp16 autocast on CUDA (never on CPU), a progress line every log_every
steps, an atomic checkpoint every ckpt_every steps and at the end. Randomness: the generator is
re-seeded from (seed, rank, step) at every step, so a resumed run draws exactly what the
uninterrupted run would have drawn (the RNG state is a function of the step), and two runs with
one seed give identical weights on one machine. Under torchrun (WORLD_SIZE > 1) the model is
wrapped in DistributedDataParallel (nccl on CUDA, gloo on CPU); every rank draws its own batches
(`batch` is per process), only rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from .denoisers.models import UNetConfig, parameter_count
from .denoisers.network import (
    GammaConditionedNet,
    NetworkDenoiser,
    atomic_save,
    load_checkpoint,
    save_checkpoint,
    weights_megabytes,
)
from .schedules import soft_conditioning_state

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "TrainingDiverged",
    "train",
    "v_loss",
    "export_checkpoint",
    "sample_inv_softness",
    "CHECKPOINT_NAME",
]

CHECKPOINT_NAME = "checkpoint.pt"
AMP_MODES = ("auto", "bf16", "fp16", "off")
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
    gamma_denoise: float = -7.0  # effective -log SNR at the denoised end
    gamma_noise: float = 3.0  # ... and at the noised end
    clip: bool = True  # clip each component's gamma to its window
    softness_min: float = 0.1  # log-uniform softness range
    softness_max: float = 10.0
    p_softness_one: float = 0.2  # extra mass at s = 1 (standard diffusion)
    p_softness_inf: float = 0.1  # extra mass at s = inf (equal-SNR process)
    batch: int = 64  # examples per step and process
    lr: float = 3e-4  # AdamW learning rate after warm-up
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

    def softness_family(self) -> dict:
        return {
            "kind": "log_uniform_with_atoms",
            "softness_min": self.softness_min,
            "softness_max": self.softness_max,
            "p_one": self.p_softness_one,
            "p_inf": self.p_softness_inf,
        }


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


def v_loss(v_hat: Tensor, v: Tensor) -> Tensor:
    """mean over the batch of sum_i (v_hat_i - v_i)^2 / D (module docstring)."""
    return (v_hat.float() - v.float()).square().mean()


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
        from .bases import make_basis
        from .data import load_dataset
        from .priors import component_stats, make_prior
        from .process import Process
        from .schedules import order_labels, soft_conditioning_schedule

        cfg = self.config = config
        self.rank, self.world = rank, world
        self.device = dev = _resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
        data = load_dataset(cfg.dataset, cfg.size, "train")
        shape = tuple(data.shape[1:])
        options = dict(cfg.basis_options)
        if cfg.basis == "pca":
            options["data"] = data
        basis = make_basis(cfg.basis, shape, **options)
        prior = make_prior(cfg.prior, basis, data=data)
        _, lam = component_stats(basis, data)
        lam = lam.clamp_min(1e-6 * float(lam.mean().clamp_min(1e-12)))
        var = lam / prior.std.double() ** 2
        self.data_variances = var.clamp_min(1e-6 * float(var.mean()))
        self.labels = order_labels(cfg.order, basis, variances=lam)
        schedule = soft_conditioning_schedule(
            self.labels, 1.0, cfg.gamma_denoise, cfg.gamma_noise, self.data_variances, cfg.clip
        )
        self.process = process = Process(basis, prior, schedule).to(dev)
        with torch.no_grad():
            self.u_all = process.encode(data.to(dev)).contiguous()
        self._labels_dev = self.labels.to(dev)
        self._log_v_dev = self.data_variances.log().to(dev)
        model_cfg = replace(cfg.model, in_channels=shape[0], out_channels=shape[0])
        with torch.random.fork_rng(devices=[]):  # seeded init without touching global state
            torch.manual_seed(cfg.seed)
            self.model = GammaConditionedNet(model_cfg, process.dim)
        self.model.to(dev)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
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

    def batch(self) -> tuple[Tensor, Tensor, Tensor]:
        """(z, gamma, v target) of this step, drawn from the step's own seed."""
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
            cfg.gamma_noise,
            cfg.clip,
        )
        eps = torch.randn(u.shape, generator=gen, device=dev)
        alpha, sigma = state.alpha, state.sigma
        return alpha * u + sigma * eps, state.gamma, alpha * eps - sigma * u

    def train_step(self) -> Tensor:
        """One optimisation step; returns the (detached, unsynchronised) loss."""
        cfg, opt = self.config, self.optimizer
        z, gamma, v = self.batch()
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (self.step + 1) / cfg.warmup)
        v_hat = self.denoiser.predict_v(z, gamma, model=self.net, autocast_dtype=self.amp_dtype)
        loss = v_loss(v_hat, v)
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
            gamma_noise=cfg.gamma_noise,
            clip=cfg.clip,
            softness_family=cfg.softness_family(),
            steps=self.step,
            time_s=self.time_s,
            hardware=hardware_description(self.device, self.world),
            command=command,
            loss_history=self.loss_history,
            extra=extra,
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


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _dist_env() -> tuple[int, int]:
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    resume: bool = True,
    progress=print,
    command: str | None = None,
    init_from: str | os.PathLike | None = None,
) -> TrainResult:
    """Train (or resume, from out_dir/checkpoint.pt) to config.steps; see the module docstring.
    init_from: a checkpoint whose weights a new run starts from (ignored when resuming).

    Raises TrainingDiverged on a non-finite loss; the last checkpoint written stays intact."""
    rank, world = _dist_env()
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        cuda = config.device.startswith("cuda") or (
            config.device == "auto" and torch.cuda.is_available()
        )
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        return _train(config, Path(out_dir), resume, progress, command, rank, world, init_from)
    finally:
        if own_group:
            dist.destroy_process_group()


def _train(config, out_dir, resume, progress, command, rank, world, init_from=None) -> TrainResult:
    log = progress if (rank == 0 and progress is not None) else (lambda *_: None)
    command = shlex.join(sys.argv) if command is None else command
    trainer = Trainer(config, rank, world)
    path = out_dir / CHECKPOINT_NAME
    if resume and path.is_file():
        trainer.load(load_checkpoint(path, map_location="cpu"))
        log(f"resumed from {path} at step {trainer.step}")
    elif init_from is not None:
        trainer.init_from(load_checkpoint(init_from, map_location="cpu"))
        log(f"weights from {init_from}")
    cfg, dev = config, trainer.device
    log(
        f"training {parameter_count(trainer.model) / 1e6:.2f} M parameters on "
        f"{hardware_description(dev, world)}, amp {trainer.amp_dtype}, steps {trainer.step}"
        f"..{cfg.steps}"
    )
    pending: list[Tensor] = []
    last_log_step, last_log_time = trainer.step, time.perf_counter()
    fork = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):  # dropout's global RNG, seeded per step
        while trainer.step < cfg.steps:
            start = time.perf_counter()
            if cfg.model.dropout > 0:
                torch.manual_seed(_step_seed(cfg.seed + 1, rank, trainer.step))
            pending.append(trainer.train_step())
            step = trainer.step
            do_log = step % cfg.log_every == 0 or step == cfg.steps
            do_ckpt = step % cfg.ckpt_every == 0 or step == cfg.steps
            if do_log or do_ckpt or len(pending) >= 100:
                _flush(trainer, pending, path)
                pending = []
            if do_log:
                now = time.perf_counter()
                rate = (step - last_log_step) / max(now - last_log_time, 1e-9)
                recent = trainer.loss_history[last_log_step - step :] or [math.nan]
                log(
                    f"step {step:>6}/{cfg.steps}  loss {sum(recent) / len(recent):.4f}  "
                    f"{rate:6.2f} steps/s  ETA {_format_eta((cfg.steps - step) / rate)}"
                )
                last_log_step, last_log_time = step, now
            trainer.time_s += time.perf_counter() - start
            if do_ckpt and rank == 0:
                trainer.save(path, command)
    if world > 1:
        dist.barrier()
    trainer.ema_denoiser.eval()
    return TrainResult(
        trainer.ema_denoiser,
        trainer.model,
        trainer.step,
        list(trainer.loss_history),
        path if rank == 0 else None,
        trainer.time_s,
    )


def _flush(trainer: Trainer, pending: list[Tensor], path: Path) -> None:
    """Move pending losses to the history (one device sync); stop on a non-finite one."""
    if not pending:
        return
    losses = torch.stack(pending).float()
    bad = ~torch.isfinite(losses)
    flag = bad.any().float().reshape(1)
    if trainer.world > 1:
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if float(flag) > 0:
        first = trainer.step - len(pending) + 1
        if bool(bad.any()):
            k = int(bad.nonzero()[0])
            first, value = first + k, float(losses[k])
            what = f"the loss is {value} at step {first}"
        else:
            what = f"another process's loss became non-finite by step {trainer.step}"
        kept = (
            f"the last good checkpoint {path} is kept"
            if path.is_file()
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(f"training diverged: {what}; {kept}", first)
    trainer.loss_history.extend(losses.cpu().tolist())


# ---------------------------------------------------------------- export


def export_checkpoint(
    checkpoint: str | os.PathLike,
    dest: str | os.PathLike,
    command: str | None = None,
    max_mb: float = 10.0,
) -> dict:
    """Write the EMA model of a training checkpoint to `dest` (NAME.pt, no optimiser state;
    weights as float16 only if float32 would exceed max_mb), plus NAME.json (config, command,
    steps, hardware, time, final loss) and NAME_loss.csv (step,loss). Returns the JSON dict."""
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    train_state = ckpt.pop("train", None) or {}
    dest = Path(dest)
    basis_mb = weights_megabytes(ckpt["basis_state"])
    half = weights_megabytes(ckpt["state_dict"]) + basis_mb > 0.95 * max_mb
    if half:
        ckpt["state_dict"] = {
            k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()
        }
    if command is not None:
        ckpt["command"] = command
    atomic_save(ckpt, dest)
    losses = ckpt["loss_history"]
    tail = losses[-100:]
    meta = {
        "file": dest.name,
        "format": ckpt["format"],
        "version": ckpt["version"],
        "dataset": ckpt["dataset"],
        "size": ckpt["size"],
        "channels": ckpt["channels"],
        "basis": ckpt["basis_spec"],
        "prior": ckpt["prior_kind"],
        "order": ckpt["order"],
        "gamma_denoise": ckpt["gamma_denoise"],
        "gamma_noise": ckpt["gamma_noise"],
        "clip": ckpt["clip"],
        "softness_family": ckpt["softness_family"],
        "model_config": ckpt["model_config"],
        "parameters": sum(v.numel() for v in ckpt["state_dict"].values()),
        "weights_dtype": "float16" if half else "float32",
        "file_mb": round(dest.stat().st_size / 1e6, 3),
        "train_config": train_state.get("config"),
        "command": ckpt["command"],
        "steps": ckpt["steps"],
        "hardware": ckpt["hardware"],
        "time_s": ckpt["time_s"],
        "final_loss": sum(tail) / len(tail) if tail else None,
    }
    stem = dest.with_suffix("")
    json_path = stem.parent / (stem.name + ".json")
    json_path.write_text(json.dumps(meta, indent=2) + "\n")
    csv_path = stem.parent / (stem.name + "_loss.csv")
    csv_path.write_text("step,loss\n" + "".join(f"{i + 1},{x:.6g}\n" for i, x in enumerate(losses)))
    return meta
