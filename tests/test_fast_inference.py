"""The network denoisers' sampling settings (`fast_inference`): what load_model and the app
apply. On the CPU they change nothing; the autocast they set on CUDA is wired through forward
(checked here with CPU autocast, which the settings themselves never choose)."""

from pathlib import Path

import torch

from rgdiff_core.denoisers import load_model
from rgdiff_core.denoisers.network import inference_autocast

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"


def test_cpu_gets_no_autocast_and_the_same_samples():
    assert inference_autocast("cpu") is None
    for name in ("shapes_haar", "shapes_haar_residual"):  # a plain and a residual network
        process, den = load_model(MODELS / f"{name}.pt", softness=1.0)
        assert den.autocast_dtype is None
        z = torch.randn(4, process.dim, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            before = den(z, 0.5)
            den.fast_inference()
            assert den.autocast_dtype is None
            assert torch.equal(den(z, 0.5), before)


def test_autocast_dtype_reaches_the_network_only():
    """With autocast set, the U-Net runs in bf16 (the answer moves by bf16 rounding, not more)
    and x0_hat comes back in the process's float32."""
    for name in ("shapes_haar", "shapes_haar_residual"):
        process, den = load_model(MODELS / f"{name}.pt", softness=1.0)
        z = torch.randn(8, process.dim, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            full = den(z, 0.5)
            den.autocast_dtype = torch.bfloat16
            half = den(z, 0.5)
        assert half.dtype == torch.float32
        assert not torch.equal(half, full)  # the setting is used
        err = (half - full).norm() / full.norm()
        assert err < 0.05, (name, float(err))
