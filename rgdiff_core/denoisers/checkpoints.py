"""Network checkpoints: save, load (never executing a pickle), rebuild the trained process,
(training/export.py turns a training checkpoint into a shipped model).

A checkpoint is a plain dict of tensors and primitive values, read with
torch.load(weights_only=True). It holds the network, the basis (spec and state), the prior
(mean and std), the labels and data variances of the soft-conditioning family it was trained
on, the ProcessSpec that built them (`process_spec`, rgdiff_core.specs; absent in files written
before it existed), and the training record. `process_from_checkpoint` rebuilds exactly that
process from the stored tensors at any softness; `load_model` returns (process, denoiser).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from .models import UNetConfig
from .network import GammaConditionedNet, NetworkDenoiser

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "save_checkpoint",
    "load_checkpoint",
    "load_network_denoiser",
    "load_model",
    "process_from_checkpoint",
    "checkpoint_spec",
    "check_compatible",
    "atomic_save",
    "weights_megabytes",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
]

CHECKPOINT_FORMAT = "rgdiff-network"
CHECKPOINT_VERSION = 1

_REQUIRED = (
    "format",
    "version",
    "model_config",
    "dim",
    "state_dict",
    "basis_spec",
    "basis_state",
    "prior_mean",
    "prior_std",
    "prior_kind",
    "dataset",
    "size",
    "channels",
    "order",
    "labels",
    "data_variances",
    "gamma_denoise",
    "gamma_noise",
    "clip",
    "softness_family",
    "steps",
    "time_s",
    "hardware",
    "command",
    "loss_history",
)


class CheckpointError(ValueError):
    """A file that is not a usable rgdiff checkpoint, or one that does not fit the process."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


def _check_plain(obj, where: str = "checkpoint") -> None:
    """Only tensors, str/int/float/bool/None, and lists, tuples and dicts of them."""
    if obj is None or isinstance(obj, (Tensor, str, int, float, bool)):
        return
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for key, item in obj.items():
            if not isinstance(key, (str, int)):
                raise ValueError(f"{where} has a key of type {type(key).__name__}")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise ValueError(
        f"{where} holds a {type(obj).__name__}; checkpoints hold only tensors and plain values"
    )


def _plain(obj):
    """Tuples -> lists, recursively (what a spec looks like after a JSON round trip)."""
    if isinstance(obj, (list, tuple)):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def atomic_save(obj: dict, path: str | os.PathLike) -> None:
    """torch.save to a temporary file beside `path`, then os.replace: an interrupted write
    never leaves a half-written file under `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are shared assets
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_checkpoint(
    path: str | os.PathLike,
    denoiser: NetworkDenoiser,
    *,
    dataset: str,
    order: str,
    labels: Tensor,
    data_variances: Tensor,
    gamma_denoise: float,
    gamma_noise: float,
    clip: bool,
    softness_family: dict,
    steps: int = 0,
    time_s: float = 0.0,
    hardware: str = "",
    command: str = "",
    loss_history=(),
    state_dict: dict | None = None,
    half: bool = False,
    extra: dict | None = None,
    process_spec: dict | None = None,
) -> dict:
    """Write a checkpoint of `denoiser` (weights: `state_dict`, default its own) with its basis,
    prior and training metadata; `extra` holds further plain entries (resume state). half:
    store floating weights as float16. process_spec: ProcessSpec.to_dict() of the process it
    was trained with. Written atomically. Returns the dict written."""
    process = denoiser.process
    basis, prior = process.basis, process.prior
    weights = denoiser.model.state_dict() if state_dict is None else state_dict
    weights = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
        for k, v in weights.items()
    }
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": denoiser.config.to_dict(),
        "dim": process.dim,
        "state_dict": weights,
        "basis_spec": _plain(basis.spec()),
        "basis_state": {k: v.detach().cpu() for k, v in basis.state_dict().items()},
        "prior_mean": prior.mean.detach().cpu().float(),
        "prior_std": prior.std.detach().cpu().float(),
        "prior_kind": prior.kind,
        "prior_options": _plain(dict(prior.options)),
        "dataset": str(dataset),
        "size": int(process.shape[1]),
        "channels": int(process.shape[0]),
        "order": str(order),
        "labels": torch.as_tensor(labels, dtype=torch.float64).detach().cpu(),
        "data_variances": torch.as_tensor(data_variances, dtype=torch.float64).detach().cpu(),
        "gamma_denoise": float(gamma_denoise),
        "gamma_noise": float(gamma_noise),
        "clip": bool(clip),
        "softness_family": _plain(dict(softness_family)),
        "steps": int(steps),
        "time_s": float(time_s),
        "hardware": str(hardware),
        "command": str(command),
        "loss_history": [float(x) for x in loss_history],
    }
    if hasattr(denoiser, "low_rank"):  # GaussianResidualDenoiser: its Gaussian part too
        mu, factor, remainder = denoiser.low_rank()
        ckpt["denoiser"] = "gaussian_residual"
        ckpt["gaussian"] = {"mu": mu, "factor": factor, "remainder": remainder}
    if process_spec is not None:
        ckpt["process_spec"] = _plain(dict(process_spec))
    if extra:
        ckpt.update(extra)
    _check_plain(ckpt)
    atomic_save(ckpt, path)
    return ckpt


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Read and validate a checkpoint written by save_checkpoint (never executing pickles).

    Raises CheckpointNotFoundError (a ValueError and FileNotFoundError) for a missing file and
    CheckpointError "not a valid rgdiff checkpoint: ..." for anything else that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, refused global, ...
        raise CheckpointError(
            f"not a valid rgdiff checkpoint: {path}: {type(err).__name__}: {_first_line(err)}"
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"not a valid rgdiff checkpoint: {path} is not in the {CHECKPOINT_FORMAT!r} format"
        )
    version = ckpt.get("version")
    if not isinstance(version, int) or not 1 <= version <= CHECKPOINT_VERSION:
        raise CheckpointError(
            f"not a valid rgdiff checkpoint: {path} has format version "
            f"{version!r}; this library reads 1..{CHECKPOINT_VERSION}"
        )
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"not a valid rgdiff checkpoint: {path} lacks {missing}")
    return ckpt


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


def _build_basis(ckpt: dict):
    from ..bases import BASES, make_basis

    spec = dict(ckpt["basis_spec"])
    name, shape = spec.pop("name"), tuple(spec.pop("shape"))
    if name in BASES and BASES[name].needs_data:  # fitted state comes from basis_state
        spec["data"] = torch.zeros(2, *shape)
    basis = make_basis(name, shape, **spec)
    basis.load_state_dict(ckpt["basis_state"])
    return basis


def checkpoint_spec(ckpt: dict):
    """The ProcessSpec a checkpoint was trained with (at softness 1): the stored one, or for
    files written before specs existed, the one its metadata describe."""
    from ..specs import BasisSpec, DataSpec, PriorSpec, ProcessSpec, ScheduleSpec

    if isinstance(ckpt.get("process_spec"), dict):
        return ProcessSpec.from_dict(ckpt["process_spec"])
    basis = dict(ckpt["basis_spec"])
    name = basis.pop("name")
    basis.pop("shape", None)
    fields = {k: v for k, v in basis.items() if k in ("wavelet", "levels")}
    options = ckpt.get("prior_options") or {}
    prior = PriorSpec(ckpt["prior_kind"], **{k: options[k] for k in ("exponent",) if k in options})
    schedule = ScheduleSpec(
        family="soft",
        order=ckpt["order"],
        softness=1.0,
        gamma_denoise=float(ckpt["gamma_denoise"]),
        gamma_noise=float(ckpt["gamma_noise"]),
        clip=bool(ckpt["clip"]),
    )
    data = DataSpec(ckpt["dataset"], int(ckpt["size"]))
    return ProcessSpec(data, BasisSpec(name, **fields), prior, schedule)


def process_from_checkpoint(
    ckpt: dict,
    softness: float = 1.0,
    clip: bool | None = None,
    device: str | torch.device | None = None,
    gamma_denoise: float | None = None,
    gamma_noise: float | None = None,
):
    """The Process a checkpoint was trained for: its basis and prior, and the soft-conditioning
    schedule of its stored labels and data variances at `softness` (built by
    rgdiff_core.specs.build_schedule, so nothing is refitted). clip, gamma_denoise and
    gamma_noise default to the trained ones; the network sees the per-component γ, so other
    targets work too (a larger gamma_noise leaves less signal at t = 1, where sampling starts
    from the prior)."""
    from ..priors import Prior
    from ..process import Process
    from ..specs import ComponentStats, ScheduleSpec, build_schedule

    try:
        basis = _build_basis(ckpt)
        prior = Prior(
            ckpt["prior_mean"], ckpt["prior_std"], ckpt["prior_kind"], ckpt.get("prior_options")
        )
        spec = ScheduleSpec(
            family="soft",
            order="custom",  # the stored labels, whatever order made them
            softness=float(softness),
            gamma_denoise=float(ckpt["gamma_denoise"] if gamma_denoise is None else gamma_denoise),
            gamma_noise=float(ckpt["gamma_noise"] if gamma_noise is None else gamma_noise),
            clip=bool(ckpt["clip"] if clip is None else clip),
        )
        v = torch.as_tensor(ckpt["data_variances"], dtype=torch.float64)
        lam = v * prior.std.double() ** 2
        stats = ComponentStats(prior.mean.double(), lam, lam, v, v)
        schedule = build_schedule(spec, basis, stats, labels=ckpt["labels"])
        process = Process(basis, prior, schedule)
    except (KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(
            f"not a valid rgdiff checkpoint: cannot rebuild its process: {_first_line(err)}"
        ) from err
    return process.to(device) if device is not None else process


def _describe(ckpt: dict) -> str:
    spec = ckpt["basis_spec"]
    opts = ", ".join(f"{k}={v}" for k, v in spec.items() if k not in ("name", "shape"))
    opts = f" ({opts})" if opts else ""
    return (
        f"dataset {ckpt['dataset']!r} at {ckpt['size']}x{ckpt['size']} in basis "
        f"{spec['name']!r}{opts}, prior {ckpt['prior_kind']!r}"
    )


def check_compatible(ckpt: dict, process, dataset: str | None = None) -> None:
    """ValueError naming what differs between the checkpoint and `process` (basis, options,
    size, prior; dataset when given)."""
    spec, want = _plain(process.basis.spec()), ckpt["basis_spec"]
    problems = []
    if dataset is not None and dataset != ckpt["dataset"]:
        problems.append(f"it uses dataset {dataset!r}")
    if spec.get("shape") != want.get("shape"):
        problems.append(
            f"it uses image shape {spec.get('shape')} (C, H, W), not {want.get('shape')}"
        )
    if spec.get("name") != want.get("name"):
        problems.append(f"it uses basis {spec.get('name')!r}")
    elif spec != want:
        problems.append(f"it uses basis {spec['name']!r} with {spec}, not {want}")
    elif type(process.basis).needs_data:
        mine = process.basis.state_dict()
        if any(
            not torch.allclose(mine[k].cpu().double(), v.double(), atol=1e-5)
            for k, v in ckpt["basis_state"].items()
            if k in mine
        ):
            problems.append(f"it uses a {spec['name']} basis fitted to other data")
    if not problems:
        mean, std = process.prior.mean.detach().cpu(), process.prior.std.detach().cpu()
        if mean.shape != ckpt["prior_mean"].shape or not (
            torch.allclose(mean.float(), ckpt["prior_mean"], rtol=1e-4, atol=1e-5)
            and torch.allclose(std.float(), ckpt["prior_std"], rtol=1e-4, atol=1e-6)
        ):
            problems.append(
                f"it uses a prior ({process.prior.kind!r}) with another mean or std "
                "(another prior kind, or one fitted to other data)"
            )
    if problems:
        raise CheckpointError(
            f"model trained for {_describe(ckpt)}; the process differs: " + "; ".join(problems)
        )


def load_network_denoiser(
    path: str | os.PathLike,
    process=None,
    device: str | torch.device | None = None,
    dataset: str | None = None,
) -> tuple[NetworkDenoiser, dict]:
    """(denoiser in eval mode, checkpoint dict). With `process`, the network serves it (same
    device) after check_compatible(process, dataset); without, it serves
    process_from_checkpoint(ckpt) (softness 1) on `device` (default cpu)."""
    ckpt = load_checkpoint(path, map_location="cpu")
    if process is None:
        process = process_from_checkpoint(ckpt, device=device or "cpu")
    else:
        check_compatible(ckpt, process, dataset)
    return _network(ckpt, process, path), ckpt


def _network(ckpt: dict, process, path) -> NetworkDenoiser:
    """The checkpoint's denoiser serving `process` (a NetworkDenoiser, or a
    GaussianResidualDenoiser when the file holds a Gaussian part), in eval mode without
    gradients."""
    try:
        config = UNetConfig.from_dict(ckpt["model_config"])
        model = GammaConditionedNet(config, ckpt["dim"])
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        )
        if ckpt.get("denoiser") == "gaussian_residual":
            from .residual import GaussianResidualDenoiser

            g = ckpt["gaussian"]
            low_rank = (g["mu"], g["factor"], g["remainder"])
            denoiser = GaussianResidualDenoiser(process, model=model, low_rank=low_rank)
        else:
            denoiser = NetworkDenoiser(process, model=model)
    except (ValueError, TypeError, RuntimeError, KeyError) as err:
        raise CheckpointError(
            f"not a valid rgdiff checkpoint: {path}: the weights do not fit "
            f"the model config: {_first_line(err)}"
        ) from err
    denoiser = denoiser.eval()
    denoiser.requires_grad_(False)
    return denoiser.fast_inference()  # bf16 + channels_last on CUDA; nothing on the CPU


def load_model(
    path: str | os.PathLike,
    softness: float = 1.0,
    *,
    clip: bool | None = None,
    gamma_denoise: float | None = None,
    gamma_noise: float | None = None,
    device: str | torch.device = "cpu",
):
    """(process, denoiser) of a shipped or trained checkpoint, ready to sample at `softness`:
    the checkpoint's own process (process_from_checkpoint; clip and γ̃ targets default to the
    trained ones) and the network in eval mode on `device`.

        process, denoiser = load_model("assets/models/digits_dct.pt", softness=0.3)
        images = sample(process, denoiser, n=16, steps=200)
    """
    ckpt = load_checkpoint(path, map_location="cpu")
    process = process_from_checkpoint(
        ckpt,
        softness,
        clip=clip,
        device=device,
        gamma_denoise=gamma_denoise,
        gamma_noise=gamma_noise,
    )
    return process, _network(ckpt, process, path)


def weights_megabytes(state_dict: dict) -> float:
    """Size of a state dict's tensors in MB (1e6 bytes)."""
    return sum(v.numel() * v.element_size() for v in state_dict.values()) / 1e6
