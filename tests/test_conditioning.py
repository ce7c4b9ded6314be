"""rgdiff_core.conditioning: masks, the three kinds of known components, degenerate masks,
the analytic Gaussian conditional, and column-by-column extension."""

import math
from pathlib import Path

import pytest
import torch

from rgdiff_core import conditioning as cond
from rgdiff_core.bases import make_basis
from rgdiff_core.data import gaussian_field_covariance, load_dataset
from rgdiff_core.denoisers import EmpiricalDenoiser, GaussianDenoiser
from rgdiff_core.priors import make_prior
from rgdiff_core.process import Process
from rgdiff_core.samplers import SamplingCancelled, sample
from rgdiff_core.schedules import linear_schedule, order_labels, soft_conditioning_schedule

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
SIZE = 8
SHAPE = (1, SIZE, SIZE)
COV = gaussian_field_covariance(SIZE)
FIELDS = load_dataset("fields", SIZE)[:500]
IMAGE = FIELDS[:1]


def build(basis_name, schedule=None, **opts):
    basis = make_basis(basis_name, SHAPE, **opts)
    prior = make_prior("white", basis)
    schedule = schedule or linear_schedule(-10.0, 10.0)
    process = Process(basis, prior, schedule)
    return process, GaussianDenoiser(process, torch.zeros(SIZE * SIZE), COV)


def draw(process, den, known, n=64, steps=40, method="heun_ode", seed=0):
    gen = torch.Generator().manual_seed(seed)
    return sample(process, den, n, steps, method, generator=gen, known=known)


# ---------------------------------------------------------------- masks


def test_mask_presets():
    gen = torch.Generator().manual_seed(0)
    left = cond.inpainting_mask(SHAPE, "left_half")
    assert left[..., : SIZE // 2].all() and not left[..., SIZE // 2 :].any()
    centre = cond.inpainting_mask(SHAPE, "centre_square")
    assert int((~centre).sum()) == (SIZE // 2) ** 2 and not centre[0, SIZE // 2, SIZE // 2]
    rnd = cond.inpainting_mask((1, 32, 32), "random_50", generator=gen)
    assert abs(rnd.float().mean().item() - 0.5) < 0.05
    assert cond.inpainting_mask(SHAPE, "all").all()
    assert not cond.inpainting_mask(SHAPE, "none").any()
    with pytest.raises(ValueError, match="preset"):
        cond.inpainting_mask(SHAPE, "diagonal")


def test_rectangle_and_image_masks():
    hole = cond.rectangle_hole(SHAPE, (2, 5), (1, 3))
    assert int((~hole).sum()) == 3 * 2 and not hole[0, 2, 1] and hole[0, 5, 1]
    with pytest.raises(ValueError, match="rows"):
        cond.rectangle_hole(SHAPE, (5, 2), (0, 1))
    img = -torch.ones(1, 1, SIZE, SIZE)
    img[..., :3] = 1.0
    mask = cond.mask_from_image(img, SHAPE)
    assert mask[..., :3].all() and not mask[..., 3:].any()
    with pytest.raises(ValueError, match="8 x 8"):
        cond.mask_from_image(torch.zeros(4, 4), SHAPE)


def test_hole_from_drawn_pixels():
    w = SHAPE[2]
    drawn = [2 * w + 3, 2 * w + 4, 5 * w + 0, 2 * w + 3]  # a repeat is fine
    mask = cond.hole_from_pixels((2, SHAPE[1], w), drawn)
    assert mask.shape == (2, SHAPE[1], w) and int((~mask).sum()) == 2 * 3
    assert not mask[:, 2, 3].any() and not mask[:, 5, 0].any() and mask[:, 2, 5].all()
    assert cond.hole_from_pixels(SHAPE, []).all()  # nothing drawn: everything known
    assert not cond.hole_from_pixels(SHAPE, torch.arange(SIZE * SIZE)).any()
    with pytest.raises(ValueError, match=r"pixels must be indices in 0\.\.63"):
        cond.hole_from_pixels(SHAPE, [64])
    with pytest.raises(ValueError, match="pixels must be integer"):
        cond.hole_from_pixels(SHAPE, [1.5])


def test_mask_drawing_figure_has_one_point_per_pixel_in_index_order():
    from ui import plots

    img = torch.linspace(-1, 1, SIZE * SIZE).reshape(SIZE, SIZE).numpy()
    fig = plots.mask_draw_fig(img)
    (trace,) = fig.data
    # point i sits at (row, col) = divmod(i, W): the selection's point indices are pixels
    assert list(trace.y[:3]) == [0, 0, 0] and list(trace.x[:3]) == [0, 1, 2]
    assert trace.y[SIZE + 2] == 1 and trace.x[SIZE + 2] == 2 and len(trace.x) == SIZE * SIZE
    assert list(trace.marker.color) == list(img.reshape(-1))
    assert fig.layout.dragmode == "select" and fig.layout.yaxis.range[0] > 0  # row 0 on top


# ---------------------------------------------------------------- the three conditions


def test_inpainting_keeps_known_pixels_and_needs_pixel_basis():
    process, den = build("pixel")
    known_px = cond.inpainting_mask(SHAPE, "centre_square")
    known = cond.pixel_condition(process, IMAGE, known_px)
    assert int(known[0].sum()) == int(known_px.sum())
    view = cond.known_view(process, known)
    torch.testing.assert_close(view[0][known_px], IMAGE[0][known_px])
    x = draw(process, den, known, n=8, method="ancestral")
    torch.testing.assert_close(x[:, known_px], IMAGE[0][known_px].expand(8, -1))
    assert (cond.sample_spread(x)[known_px] < 1e-5).all()
    assert (cond.sample_spread(x)[~known_px] > 1e-3).all()
    wav, _ = build("wavelet", wavelet="haar")
    with pytest.raises(ValueError, match="pixel basis"):
        cond.pixel_condition(wav, IMAGE, known_px)


def test_inpainting_matches_the_gaussian_conditional():
    """docs/maths.md §6 check 6 through this module: mean and variance of the unknown pixels."""
    process, den = build("pixel")
    known_px = cond.inpainting_mask(SHAPE, "left_half")
    x = draw(process, den, cond.pixel_condition(process, IMAGE, known_px), n=1024, steps=60)
    k, u = known_px.flatten(), ~known_px.flatten()
    c = COV.double()
    gain = c[u][:, k] @ torch.linalg.inv(c[k][:, k])
    mean = gain @ IMAGE.flatten().double()[k]
    var = (c[u][:, u] - gain @ c[k][:, u]).diagonal()
    xs = x.flatten(1).double()[:, u]
    z = (xs.mean(0) - mean) / (var / len(xs)).sqrt()
    assert z.abs().max() < 5
    assert ((xs.var(0) / var - 1).abs() < 5 * math.sqrt(2 / len(xs))).all()


def test_super_resolution_fixes_the_coarse_image():
    process, den = build("wavelet", wavelet="haar")
    assert cond.wavelet_resolutions(process.basis) == [1, 2, 4, 8]
    known = cond.wavelet_condition(process, IMAGE, 4)
    assert int(known[0].sum()) == 16
    x = draw(process, den, known, n=8)
    pool = torch.nn.functional.avg_pool2d
    torch.testing.assert_close(pool(x, 2), pool(IMAGE, 2).expand(8, -1, -1, -1))
    torch.testing.assert_close(pool(cond.known_view(process, known), 2), pool(IMAGE, 2))
    with pytest.raises(ValueError, match="resolution"):
        cond.wavelet_condition(process, IMAGE, 3)
    with pytest.raises(ValueError, match="wavelet basis"):
        cond.wavelet_condition(build("dct")[0], IMAGE, 4)


@pytest.mark.parametrize("basis_name", ["fourier", "dct"])
def test_low_pass_fixes_low_frequencies(basis_name):
    process, den = build(basis_name)
    known = cond.lowpass_condition(process, IMAGE, 1.5)
    low = process.basis.scale() <= 1.5
    assert torch.equal(known[0].cpu(), low) and 0 < int(low.sum()) < process.dim
    x = draw(process, den, known, n=8)
    c = process.basis.encode(x)
    torch.testing.assert_close(
        c[:, low], process.basis.encode(IMAGE)[:, low].expand(8, -1), atol=1e-5, rtol=1e-5
    )
    with pytest.raises(ValueError, match="k0"):
        cond.lowpass_condition(process, IMAGE, -1.0)
    with pytest.raises(ValueError, match="fourier or dct"):
        cond.lowpass_condition(build("pixel")[0], IMAGE, 1.0)


def test_degenerate_masks():
    process, den = build("pixel")
    everything = cond.pixel_condition(process, IMAGE, cond.inpainting_mask(SHAPE, "all"))
    x = draw(process, den, everything, n=4, method="euler_maruyama")
    torch.testing.assert_close(x, IMAGE.expand(4, -1, -1, -1))
    nothing = cond.pixel_condition(process, IMAGE, cond.inpainting_mask(SHAPE, "none"))
    torch.testing.assert_close(draw(process, den, nothing, n=4), draw(process, den, None, n=4))
    assert torch.equal(cond.sample_spread(x[:1]), torch.zeros(SHAPE))


def test_component_condition_validates():
    process, _ = build("pixel")
    with pytest.raises(ValueError, match="64 entries"):
        cond.component_condition(process, IMAGE, torch.ones(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="image must have shape"):
        cond.component_condition(
            process, torch.zeros(2, 1, SIZE, SIZE), torch.ones(64, dtype=torch.bool)
        )


# ---------------------------------------------------------------- extension


def column_process():
    basis = make_basis("pixel", SHAPE)
    labels = order_labels("column", basis)
    sched = soft_conditioning_schedule(labels, 0.3, clip=True)
    return Process(basis, make_prior("white", basis), sched)


@pytest.mark.parametrize("stride", [1, 3])
def test_extend_columns(stride):
    process = column_process()
    den = EmpiricalDenoiser(process, FIELDS)
    seen = []
    out = cond.extend_columns(
        process,
        den,
        IMAGE,
        5,
        steps=30,
        n=3,
        stride=stride,
        generator=torch.Generator().manual_seed(0),
        callback=lambda info: seen.append((info.done, info.steps)),
    )
    assert out.shape == (3, 1, SIZE, SIZE + 5) and torch.isfinite(out).all()
    torch.testing.assert_close(out[..., :SIZE], IMAGE.expand(3, -1, -1, -1))
    assert seen[-1] == (5, 5) and len(seen) == math.ceil(5 / stride)
    assert out[..., SIZE:].std() > 0.05  # new columns are generated, not blank


def test_extend_columns_continues_a_gaussian_field_smoothly():
    """With the exact Gaussian denoiser a new column is close to its left neighbour (the
    field is smooth), unlike an independent column."""
    process = column_process()
    den = GaussianDenoiser(process, torch.zeros(SIZE * SIZE), COV)
    out = cond.extend_columns(
        process, den, IMAGE, 1, steps=60, n=64, generator=torch.Generator().manual_seed(1)
    )
    step = (out[..., SIZE] - out[..., SIZE - 1]).pow(2).mean()
    independent = (FIELDS[:64, ..., 0] - FIELDS[64:128, ..., 3]).pow(2).mean()
    assert step < 0.5 * independent


def test_extend_columns_validates_and_cancels():
    process = column_process()
    den = EmpiricalDenoiser(process, FIELDS)
    for bad in (dict(extra_cols=0), dict(extra_cols=10**4), dict(stride=SIZE), dict(n=0)):
        kw = dict(extra_cols=2, stride=1, n=1) | bad
        with pytest.raises(ValueError):
            cond.extend_columns(process, den, IMAGE, steps=10, **kw)
    with pytest.raises(ValueError, match="pixel basis"):
        cond.extend_columns(build("dct")[0], den, IMAGE, 2)

    def stop(info):
        if info.done == 2:
            raise SamplingCancelled

    out = cond.extend_columns(process, den, IMAGE, 6, steps=10, callback=stop)
    assert out.shape[-1] == SIZE + 2


def test_network_inpainting_beats_the_exact_gaussian_on_the_unknown_half():
    """Known components are shown to a trained network as clean ones (its schedule's
    gamma(0)), as in training, not at the clamp gamma = -30 it never saw: its x0_hat on the
    unknown half of held-out digits beats the fitted Gaussian's (digits_pixel_column, s = 1,
    left half known)."""
    from rgdiff_core import DenoiserSpec, build_denoiser, load_dataset, load_model

    process, net = load_model(MODELS / "digits_pixel_column.pt", softness=1.0)
    gauss = build_denoiser(DenoiserSpec("gaussian_fit"), process, load_dataset("digits", 32))
    test = load_dataset("digits", 32, "test")[:64]
    known = cond.inpainting_mask((1, 32, 32), "left_half")
    u, mask = process.encode(test), known.flatten()
    for t in (0.5, 0.7, 0.9):
        z, _ = process.add_noise(u, t, generator=torch.Generator().manual_seed(1))
        z = torch.where(mask, u, z)
        state = process.noise_state(t, known=mask, like=z)
        err = {}
        for name, den in (("net", net), ("gauss", gauss)):
            with torch.no_grad():
                x0 = den(z, t, state=state)
            err[name] = float((process.decode(x0) - test)[:, ~known].pow(2).mean())
        assert err["net"] < 0.8 * err["gauss"], (t, err)
