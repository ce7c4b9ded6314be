"""The training loop: logging, checkpoints, resume, divergence and torchrun around Trainer."""

from __future__ import annotations

import math
import os
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from ..denoisers.checkpoints import load_checkpoint
from ..denoisers.models import parameter_count
from .config import TrainConfig
from .trainer import Trainer, TrainingDiverged, TrainResult, _step_seed, hardware_description

CHECKPOINT_NAME = "checkpoint.pt"


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
