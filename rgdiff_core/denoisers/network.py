"""Trained denoiser: a U-Net conditioned on the whole per-component noise state (docs/maths.md §4).

The wrapper owns all the maths; the U-Net (models.py) only maps images to images.

Input. The whitened state z (B, D) is shown to the network as an image, basis.decode(z): the basis
is orthonormal, so white noise stays white and no unwhitening is needed. The conditioning is the
whole noise state, not t: gamma (B, D), clamped to [-30, 30] and divided by 10, goes through an
MLP (Linear D -> cond_dim, SiLU, Linear) to the FiLM embedding. The network therefore serves every
schedule of the family it was trained on (any softness, any t) with one set of weights.

Output (v-prediction per component). The network's image is read back as v_hat = basis.encode(out)
and

    x0_hat = alpha * z - sigma * v_hat          (alpha^2 + sigma^2 = 1, per component)

since v = alpha eps - sigma u and z = alpha u + sigma eps give u = alpha z - sigma v. Why v:
- well conditioned at both ends with no division anywhere: as sigma -> 0, x0_hat -> z, so a
  known (gamma = -inf, sigma = 0) or fully denoised component comes back as z exactly, and as
  alpha -> 0 the network's output is the estimate itself (x0_hat = -v_hat);
- its error is the x0 error reweighted by a bounded factor: v_hat - v = (x0 - x0_hat) / sigma,
  so the v-MSE is the x0-MSE weighted by 1 / sigma^2 = 1 + alpha^2 / sigma^2 = 1 + SNR per
  component (SNR of the whitened process), the usual "SNR + 1" weighting.

Checkpoints are plain dicts of tensors and primitive values, read with
torch.load(weights_only=True): no pickle from a file is ever executed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from ..schedules import NoiseState
from .models import UNet, UNetConfig

__all__ = [
    "GammaConditionedNet",
    "NetworkDenoiser",
    "CheckpointError",
    "CheckpointNotFoundError",
    "save_checkpoint",
    "load_checkpoint",
    "load_network_denoiser",
    "process_from_checkpoint",
    "check_compatible",
    "atomic_save",
    "weights_megabytes",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "GAMMA_CLAMP",
    "GAMMA_SCALE",
]

CHECKPOINT_FORMAT = "rgdiff-network"
CHECKPOINT_VERSION = 1
GAMMA_CLAMP = 30.0  # gamma beyond +-30 carries no information in float32 (e^-30 ~ 1e-13)
GAMMA_SCALE = 10.0  # features gamma / 10 lie in [-3, 3]

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


class GammaConditionedNet(nn.Module):
    """The trainable part: (image (B, C, H, W), gamma features (B, D)) -> image (B, C, H, W)."""

    def __init__(self, config: UNetConfig, dim: int):
        super().__init__()
        self.config, self.dim = config, int(dim)
        self.embed = nn.Sequential(
            nn.Linear(self.dim, config.cond_dim),
            nn.SiLU(),
            nn.Linear(config.cond_dim, config.cond_dim),
        )
        self.unet = UNet(config)

    def forward(self, image: Tensor, features: Tensor) -> Tensor:
        return self.unet(image, self.embed(features))


class NetworkDenoiser(nn.Module):
    """Trained denoiser meeting the protocol (z (B, D), t, state=None) -> x0_hat (B, D).

    process: gives the basis, and the NoiseState when none is passed. config: the U-Net's
    (default UNetConfig with the basis's channel count); model: an existing GammaConditionedNet
    to wrap instead (e.g. EMA weights). The network is moved to the process's device.
    """

    def __init__(
        self, process, config: UNetConfig | None = None, model: GammaConditionedNet | None = None
    ):
        super().__init__()
        channels = process.shape[0]
        if model is None:
            if config is None:
                config = UNetConfig(in_channels=channels, out_channels=channels)
            model = GammaConditionedNet(config, process.dim)
        if (
            model.dim != process.dim
            or model.config.in_channels != channels
            or model.config.out_channels != channels
        ):
            raise ValueError(
                f"the network is built for D = {model.dim} with "
                f"{model.config.in_channels} channels; the process has "
                f"D = {process.dim} with {channels}"
            )
        self.process = process
        self.model = model.to(process.device)
        self.nfe = 0

    @property
    def config(self) -> UNetConfig:
        return self.model.config

    @staticmethod
    def gamma_features(gamma: Tensor, batch: int, dim: int) -> Tensor:
        """gamma broadcast to (batch, dim), clamped to [-30, 30] and scaled by 1/10."""
        try:
            gamma = torch.broadcast_to(gamma, (batch, dim))
        except RuntimeError as err:
            raise ValueError(
                f"gamma of shape {tuple(gamma.shape)} does not broadcast to ({batch}, {dim})"
            ) from err
        return gamma.clamp(-GAMMA_CLAMP, GAMMA_CLAMP) / GAMMA_SCALE

    def predict_v(
        self,
        z: Tensor,
        gamma: Tensor,
        model: nn.Module | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> Tensor:
        """v_hat (B, D) in z's dtype. `model` replaces self.model (training passes its DDP
        wrapper); `autocast_dtype` runs the network (not the basis) under CUDA autocast."""
        if z.ndim != 2 or z.shape[1] != self.process.dim:
            raise ValueError(f"z must have shape (B, {self.process.dim}), got {tuple(z.shape)}")
        model = self.model if model is None else model
        param = next(self.model.parameters())
        basis = self.process.basis
        zin = z.to(device=param.device, dtype=param.dtype)
        features = self.gamma_features(gamma.to(zin), z.shape[0], z.shape[1])
        image = basis.decode(zin)
        ctx = (
            torch.autocast(device_type=param.device.type, dtype=autocast_dtype)
            if autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            out = model(image, features)
        return basis.encode(out.to(param.dtype)).to(device=z.device, dtype=z.dtype)

    def forward(self, z: Tensor, t: Tensor | float, state: NoiseState | None = None) -> Tensor:
        if state is None:
            state = self.process.noise_state(t, like=z)
        self.nfe += 1
        gamma = state.gamma.to(z)
        v_hat = self.predict_v(z, gamma)
        # alpha = 1, sigma = 0 on known components: x0_hat = z exactly
        return torch.sigmoid(-gamma).sqrt() * z - torch.sigmoid(gamma).sqrt() * v_hat


# ---------------------------------------------------------------- checkpoints


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
) -> dict:
    """Write a checkpoint of `denoiser` (weights: `state_dict`, default its own) with its basis,
    prior and training metadata; `extra` holds further plain entries (resume state). half:
    store floating weights as float16. Written atomically. Returns the dict written."""
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
    from ..bases import make_basis

    spec = dict(ckpt["basis_spec"])
    name, shape = spec.pop("name"), tuple(spec.pop("shape"))
    if name == "pca":  # the data are not in the spec; the eigenvectors come from basis_state
        spec["data"] = torch.zeros(2, *shape)
    basis = make_basis(name, shape, **spec)
    basis.load_state_dict(ckpt["basis_state"])
    return basis


def process_from_checkpoint(
    ckpt: dict,
    softness: float = 1.0,
    clip: bool | None = None,
    device: str | torch.device | None = None,
    gamma_denoise: float | None = None,
    gamma_noise: float | None = None,
):
    """The Process a checkpoint was trained for: its basis and prior, and the soft-conditioning
    schedule of its labels and data variances at `softness`. clip, gamma_denoise and
    gamma_noise default to the trained ones; the network sees the per-component γ, so other
    targets work too (a larger gamma_noise leaves less signal at t = 1, where sampling starts
    from the prior)."""
    from ..priors import Prior
    from ..process import Process
    from ..schedules import soft_conditioning_schedule

    try:
        basis = _build_basis(ckpt)
        prior = Prior(
            ckpt["prior_mean"], ckpt["prior_std"], ckpt["prior_kind"], ckpt.get("prior_options")
        )
        schedule = soft_conditioning_schedule(
            ckpt["labels"],
            softness,
            ckpt["gamma_denoise"] if gamma_denoise is None else gamma_denoise,
            ckpt["gamma_noise"] if gamma_noise is None else gamma_noise,
            variances=ckpt["data_variances"],
            clip=ckpt["clip"] if clip is None else clip,
        )
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
    elif spec["name"] == "pca":
        mine = process.basis.state_dict()
        if any(
            not torch.allclose(mine[k].cpu().double(), v.double(), atol=1e-5)
            for k, v in ckpt["basis_state"].items()
            if k in mine
        ):
            problems.append("it uses a PCA basis fitted to other data")
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
    try:
        config = UNetConfig.from_dict(ckpt["model_config"])
        model = GammaConditionedNet(config, ckpt["dim"])
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, TypeError, RuntimeError) as err:
        raise CheckpointError(
            f"not a valid rgdiff checkpoint: {path}: the weights do not fit "
            f"the model config: {_first_line(err)}"
        ) from err
    denoiser = NetworkDenoiser(process, model=model).eval()
    denoiser.requires_grad_(False)
    return denoiser, ckpt


def weights_megabytes(state_dict: dict) -> float:
    """Size of a state dict's tensors in MB (1e6 bytes)."""
    return sum(v.numel() * v.element_size() for v in state_dict.values()) / 1e6
