"""Hard conditioning as freezing components (docs/maths.md §4).

A condition is the pair `known = (mask (D,) bool, values (D,) whitened)` that every sampler
accepts: known components get gamma = -inf and beta = 0, so they keep their values while the
rest is generated conditioned on them. What is "known" depends on the basis:

- inpainting (pixel basis): known pixels. Presets: left half, centre square, random 50 %,
  everything, nothing; a rectangular hole; or a mask image (white = known).
- super-resolution (wavelet basis): every coefficient of scale <= j, i.e. the approximation
  and the j coarsest detail levels: exactly the image at resolution (side >> levels) * 2^j.
- low-pass (Fourier or DCT basis): the frequencies with scale <= k0 (|k| <= k0 in cycles per
  image; DCT scale is |k| / 2 on the same footing), cos/sin pairs together.
- extension (pixel basis): `extend_columns` slides a window of the training width W along a
  wider canvas; each window knows its first W - stride columns (already on the canvas) and
  generates the last `stride`, so every new column is conditioned on the ones before it.

Degenerate masks are fine: nothing known gives unconditional samples, everything known
returns the input itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor

from .samplers import SamplingCancelled, StepInfo, sample_latents

__all__ = [
    "MASK_PRESETS",
    "inpainting_mask",
    "rectangle_hole",
    "hole_from_pixels",
    "mask_from_image",
    "pixel_condition",
    "wavelet_resolutions",
    "wavelet_condition",
    "lowpass_condition",
    "component_condition",
    "known_view",
    "sample_spread",
    "extend_columns",
    "MAX_EXTRA_FACTOR",
]

MASK_PRESETS = ("left_half", "centre_square", "random_50", "all", "none")
MAX_EXTRA_FACTOR = 4  # extension adds at most 4 W columns


def _check_shape(shape) -> tuple[int, int, int]:
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (C, H, W) with positive sizes, got {tuple(shape)}")
    return tuple(int(s) for s in shape)


def inpainting_mask(shape, preset: str, generator: torch.Generator | None = None) -> Tensor:
    """Known pixels (C, H, W) bool for a preset in MASK_PRESETS (True = known).

    left_half: columns < W/2; centre_square: known everywhere except the centred square of
    side H/2 (the hole); random_50: each pixel known with probability 1/2 (same for every
    channel); all / none: everything / nothing known."""
    c, h, w = _check_shape(shape)
    if preset not in MASK_PRESETS:
        raise ValueError(f"preset must be one of {MASK_PRESETS}, got {preset!r}")
    mask = torch.zeros(c, h, w, dtype=torch.bool)
    if preset == "left_half":
        mask[..., : w // 2] = True
    elif preset == "centre_square":
        mask[:] = True
        mask[:, h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = False
    elif preset == "random_50":
        mask[:] = (torch.rand(h, w, generator=generator) < 0.5)[None]
    elif preset == "all":
        mask[:] = True
    return mask


def rectangle_hole(shape, rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
    """Known everywhere except rows r0..r1-1 and columns c0..c1-1 (the hole to fill)."""
    c, h, w = _check_shape(shape)
    (r0, r1), (c0, c1) = rows, cols
    if not (0 <= r0 <= r1 <= h and 0 <= c0 <= c1 <= w):
        raise ValueError(
            f"rows must lie in 0..{h} and cols in 0..{w} with start <= end, "
            f"got rows {rows}, cols {cols}"
        )
    mask = torch.ones(c, h, w, dtype=torch.bool)
    mask[:, r0:r1, c0:c1] = False
    return mask


def hole_from_pixels(shape, pixels) -> Tensor:
    """Known everywhere except the listed pixels (flat indices row * W + col, every channel):
    the hole a user drew. Repeated indices are fine; ValueError for one outside 0..H*W-1."""
    c, h, w = _check_shape(shape)
    idx = torch.as_tensor(list(pixels) if not isinstance(pixels, Tensor) else pixels)
    if idx.numel() and (idx.is_floating_point() or idx.dtype == torch.bool):
        raise ValueError(f"pixels must be integer indices in 0..{h * w - 1}, got {idx.dtype}")
    idx = idx.long().reshape(-1)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= h * w):
        raise ValueError(
            f"pixels must be indices in 0..{h * w - 1} (row * {w} + col), got "
            f"{int(idx.min())}..{int(idx.max())}"
        )
    mask = torch.ones(c, h * w, dtype=torch.bool)
    mask[:, idx] = False
    return mask.reshape(c, h, w)


def mask_from_image(image: Tensor, shape) -> Tensor:
    """A mask image (1, C', H, W) or (H, W) in [-1, 1] -> known pixels (C, H, W): white (> 0)
    = known. Its size must match the image size; its channels are averaged."""
    c, h, w = _check_shape(shape)
    img = torch.as_tensor(image, dtype=torch.float32)
    if img.ndim == 4:
        img = img[0].mean(0)
    elif img.ndim == 3:
        img = img.mean(0)
    if img.shape != (h, w):
        raise ValueError(f"the mask must be {h} x {w} pixels, got {tuple(img.shape)}")
    return (img > 0)[None].expand(c, h, w).clone()


def _need_basis(process, names: tuple[str, ...], what: str) -> None:
    if process.basis.name not in names:
        raise ValueError(f"{what} needs the {' or '.join(names)} basis, not {process.basis.name!r}")


def _encode_one(process, image: Tensor) -> Tensor:
    shape = tuple(process.shape)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != 1 or tuple(image.shape[1:]) != shape:
        raise ValueError(
            f"image must have shape (1, {', '.join(map(str, shape))}), got {tuple(image.shape)}"
        )
    with torch.inference_mode():
        return process.encode(image.to(process.device, torch.float32))[0]


def component_condition(process, image: Tensor, component_mask: Tensor) -> tuple[Tensor, Tensor]:
    """(mask (D,) bool, values (D,) whitened) fixing the components in component_mask to
    their values in image (1, C, H, W)."""
    mask = torch.as_tensor(component_mask).to(torch.bool).flatten()
    if mask.numel() != process.dim:
        raise ValueError(f"component_mask must have {process.dim} entries, got {mask.numel()}")
    return mask.to(process.device), _encode_one(process, image)


def pixel_condition(process, image: Tensor, known_pixels: Tensor) -> tuple[Tensor, Tensor]:
    """Inpainting: known pixels (C, H, W) of image, in the pixel basis (component index =
    channel * H * W + row * W + column)."""
    _need_basis(process, ("pixel",), "inpainting")
    known_pixels = torch.as_tensor(known_pixels)
    if tuple(known_pixels.shape) != tuple(process.shape):
        raise ValueError(
            f"known_pixels must have shape {tuple(process.shape)}, got {tuple(known_pixels.shape)}"
        )
    return component_condition(process, image, known_pixels)


def wavelet_resolutions(basis) -> list[int]:
    """Resolutions a super-resolution condition can fix: side >> levels, doubling to side."""
    _, h, _ = basis.shape
    m = h >> basis.levels
    return [m << j for j in range(basis.levels + 1)]


def wavelet_condition(process, image: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """Super-resolution: the coarse image at `resolution` x `resolution` is known, i.e. every
    wavelet coefficient of scale (level) <= log2(resolution / (side >> levels))."""
    _need_basis(process, ("wavelet",), "super-resolution")
    valid = wavelet_resolutions(process.basis)
    if resolution not in valid:
        raise ValueError(
            f"resolution must be one of {valid} for this wavelet basis, got {resolution!r}"
        )
    level = valid.index(resolution)
    return component_condition(process, image, process.basis.scale().cpu() <= level)


def lowpass_condition(process, image: Tensor, k0: float) -> tuple[Tensor, Tensor]:
    """Low-pass conditioning: components of scale <= k0 (|k| <= k0 cycles per image) known."""
    _need_basis(process, ("fourier", "dct"), "low-pass conditioning")
    if not isinstance(k0, (int, float)) or k0 != k0 or k0 < 0:
        raise ValueError(f"k0 must be a number >= 0, got {k0!r}")
    return component_condition(process, image, process.basis.scale().cpu() <= k0)


def known_view(process, known: tuple[Tensor, Tensor]) -> Tensor:
    """The known part as an image (1, C, H, W) on the CPU: the known components' basis
    coefficients, every other coefficient 0 (unknown pixels at 0; for wavelets the coarse
    image, for Fourier / DCT the low-pass image)."""
    mask, values = known
    with torch.inference_mode():
        c = process.prior.unwhiten(values.reshape(1, -1))
        c = torch.where(mask.to(c.device), c, torch.zeros_like(c))
        return process.basis.decode(c).float().cpu()


def sample_spread(samples: Tensor) -> Tensor:
    """Per-pixel standard deviation over samples (n, C, H, W) -> (C, H, W); 0 for n = 1."""
    if samples.ndim != 4 or samples.shape[0] < 1:
        raise ValueError(f"samples must be a batch (n, C, H, W), got {tuple(samples.shape)}")
    if samples.shape[0] == 1:
        return torch.zeros_like(samples[0])
    return samples.float().std(0)


def extend_columns(
    process,
    denoiser,
    image: Tensor,
    extra_cols: int,
    steps: int = 100,
    method: str = "ancestral",
    n: int = 1,
    stride: int = 1,
    generator: torch.Generator | None = None,
    callback: Callable[[StepInfo], None] | None = None,
) -> Tensor:
    """Extend image (1, C, H, W) to the right by extra_cols columns (pixel basis).

    A window of the training width W slides along the canvas `stride` columns at a time: its
    first W - stride columns are known (the canvas so far) and its last `stride` columns are
    sampled, conditioned on them. Returns n extended images (n, C, H, W + extra_cols) on the
    CPU; the first W columns are the input. callback(StepInfo) after each window, counting
    columns (done = columns added of steps = extra_cols; z and x0_hat: the window's sample);
    if it raises SamplingCancelled, the columns done so far are returned.
    """
    _need_basis(process, ("pixel",), "extension")
    c, h, w = process.shape
    if (
        isinstance(extra_cols, bool)
        or not isinstance(extra_cols, int)
        or not 1 <= extra_cols <= MAX_EXTRA_FACTOR * w
    ):
        raise ValueError(
            f"extra_cols must be an integer in 1..{MAX_EXTRA_FACTOR * w}, got {extra_cols!r}"
        )
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride < w:
        raise ValueError(f"stride must be an integer in 1..{w - 1}, got {stride!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    _encode_one(process, image)  # validates the shape
    dev = process.device
    canvas = torch.zeros(n, c, h, w + extra_cols, device=dev)
    canvas[..., :w] = image.to(dev, torch.float32)
    pos, start = w, time.perf_counter()
    while pos < w + extra_cols:
        k = min(stride, w + extra_cols - pos)
        window = canvas[..., pos + k - w : pos + k]
        known_pixels = torch.zeros(c, h, w, dtype=torch.bool, device=dev)
        known_pixels[..., : w - k] = True
        with torch.inference_mode():
            values = process.encode(window)
        u = sample_latents(
            process,
            denoiser,
            n,
            steps,
            method,
            generator=generator,
            known=(known_pixels.flatten(), values),
        )
        with torch.inference_mode():
            canvas[..., pos : pos + k] = process.decode(u)[..., w - k :]
        pos += k
        if callback is not None:
            try:
                elapsed = time.perf_counter() - start
                callback(StepInfo(pos - w - 1, extra_cols, 0.0, u, u, elapsed))
            except SamplingCancelled:
                return canvas[..., :pos].cpu()
    return canvas.cpu()
