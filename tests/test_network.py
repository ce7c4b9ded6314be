"""The trained-denoiser wrapper: U-Net size, the denoiser protocol, the v-parametrisation,
checkpoints (round trip, mismatch, missing / truncated / malicious files)."""

import pickle

import pytest
import torch
from torch import nn

from rgdiff_core.bases import make_basis
from rgdiff_core.data import load_dataset
from rgdiff_core.denoisers.checkpoints import (
    load_checkpoint,
    load_network_denoiser,
    process_from_checkpoint,
    save_checkpoint,
)
from rgdiff_core.denoisers.models import UNet, UNetConfig, parameter_count
from rgdiff_core.denoisers.network import GammaConditionedNet, NetworkDenoiser
from rgdiff_core.priors import make_prior
from rgdiff_core.process import Process
from rgdiff_core.samplers import sample
from rgdiff_core.schedules import linear_schedule, order_labels, soft_conditioning_schedule

SIZE = 8
TINY = UNetConfig(channels=16, channel_mult=(1, 2), num_res_blocks=1, cond_dim=32)


@pytest.fixture(autouse=True)
def one_thread():
    # the CI machine has 2 cores; oversubscribed OpenMP threads slow small convs 10-100x
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def build(basis="dct", prior="data", size=SIZE, softness=1.0, dataset="digits"):
    data = load_dataset(dataset, size, "train")
    b = make_basis(basis, (1, size, size))
    p = make_prior(prior, b, data=data)
    lam = b.encode(data).var(0).double().clamp_min(1e-6)
    labels = order_labels("variance", b, variances=lam)
    sched = soft_conditioning_schedule(
        labels, softness, variances=lam / p.std.double() ** 2, clip=True
    )
    return Process(b, p, sched), labels, lam / p.std.double() ** 2


def randomised(process, seed=0):
    """A NetworkDenoiser whose zero-initialised layers are random too (non-trivial output)."""
    torch.manual_seed(seed)
    den = NetworkDenoiser(process, TINY)
    with torch.no_grad():
        for p in den.model.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return den.eval()


def meta(labels, variances):
    return dict(
        dataset="digits",
        order="variance",
        labels=labels,
        data_variances=variances,
        gamma_denoise=-7.0,
        gamma_noise=3.0,
        clip=True,
        softness_family={"kind": "fixed"},
        steps=3,
        loss_history=[1.0, 0.5, 0.25],
    )


# ---------------------------------------------------------------- the network


def test_default_unet_parameter_count_at_32():
    unet = UNet(UNetConfig())
    assert 0.5e6 <= parameter_count(unet) <= 3e6
    full = GammaConditionedNet(UNetConfig(), 32 * 32)  # with the gamma MLP
    assert 0.5e6 <= parameter_count(full) <= 3e6


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_unet_serves_every_size(size):
    unet = UNet(TINY)
    out = unet(torch.randn(2, 1, size, size), torch.randn(2, TINY.cond_dim))
    assert out.shape == (2, 1, size, size)


def test_unet_config_round_trip_and_validation():
    assert UNetConfig.from_dict(UNetConfig().to_dict()) == UNetConfig()
    with pytest.raises(ValueError, match="groups"):
        UNetConfig(channels=12)
    with pytest.raises(ValueError, match="divisible"):
        UNet(TINY)(torch.randn(1, 1, 5, 5), torch.randn(1, 32))


# ---------------------------------------------------------------- the protocol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_protocol_shapes_and_dtype(dtype):
    process, _, _ = build()
    den = randomised(process)
    z = torch.randn(5, process.dim, dtype=dtype)
    out = den(z, 0.3)  # state from process.noise_state
    assert out.shape == z.shape and out.dtype == dtype and torch.isfinite(out).all()
    t = torch.rand(5, dtype=dtype)
    state = process.noise_state(t, like=z)
    assert torch.allclose(den(z, t, state=state), den(z, t), atol=1e-6)
    # scalar schedules give gamma of shape (1,) and (B, 1); both broadcast
    scalar = Process(process.basis, process.prior, linear_schedule())
    den2 = NetworkDenoiser(scalar, model=den.model)
    assert den2(z, 0.5).shape == z.shape and den2(z, t).shape == z.shape


@pytest.mark.parametrize("method", ["ancestral", "euler_maruyama", "heun_ode"])
def test_samplers_run_with_the_network(method):
    process, _, _ = build(softness=0.5)
    den = randomised(process)
    x = sample(process, den, 3, 4, method=method, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, SIZE, SIZE) and torch.isfinite(x).all()


def test_known_components_come_back_exactly():
    process, _, _ = build()
    den = randomised(process)
    mask = torch.zeros(process.dim, dtype=torch.bool)
    mask[::3] = True
    z = torch.randn(4, process.dim)
    state = process.noise_state(torch.rand(4), known=mask, like=z)
    out = den(z, 0.5, state=state)
    assert torch.equal(out[:, mask], z[:, mask])
    assert not torch.allclose(out[:, ~mask], z[:, ~mask])


class OracleNet(nn.Module):
    """Returns a fixed image: the true v, decoded (stands in for a perfect network)."""

    def __init__(self, config, dim, image):
        super().__init__()
        self.config, self.dim, self.image = config, dim, image
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, image, features):
        return self.image


def test_v_parametrisation_identity():
    process, _, _ = build(softness=0.3)
    u = process.encode(load_dataset("digits", SIZE, "train")[:6])
    eps = torch.randn_like(u)
    t = torch.rand(6)
    state = process.noise_state(t, like=u)
    z = state.alpha * u + state.sigma * eps
    v = state.alpha * eps - state.sigma * u
    oracle = OracleNet(TINY, process.dim, process.basis.decode(v))
    den = NetworkDenoiser(process, model=oracle)
    assert torch.allclose(den(z, t, state=state), u, atol=1e-5)


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path):
    process, labels, var = build()
    den = randomised(process)
    path = tmp_path / "m.pt"
    save_checkpoint(path, den, **meta(labels, var))
    z, t = torch.randn(4, process.dim), torch.rand(4)
    loaded, info = load_network_denoiser(path, process=process)
    assert torch.equal(loaded(z, t), den(z, t))
    assert info["loss_history"] == [1.0, 0.5, 0.25] and info["dataset"] == "digits"
    # without a process: basis, prior and schedule are rebuilt from the file
    rebuilt, _ = load_network_denoiser(path)
    st = process.noise_state(t, like=z)
    assert torch.equal(rebuilt(z, t, state=st), den(z, t, state=st))
    assert torch.equal(rebuilt.process.prior.std, process.prior.std)
    # a plain dict of tensors and primitives: the safe loader reads it
    raw = torch.load(path, weights_only=True)
    assert raw["basis_spec"]["name"] == "dct" and raw["size"] == SIZE


def test_process_from_checkpoint_takes_other_targets(tmp_path):
    """The sampling schedule may use other γ̃ targets than the trained ones: the lowest label
    reaches effective -log SNR = gamma_noise at t = 1, the highest gamma_denoise at t = 0."""
    process, labels, var = build()
    path = tmp_path / "m.pt"
    save_checkpoint(path, randomised(process), **meta(labels, var))
    ckpt = load_checkpoint(path)
    v = torch.as_tensor(var, dtype=torch.float64)
    for gd, gn in ((None, None), (-6.0, 10.0)):
        p = process_from_checkpoint(ckpt, softness=0.5, gamma_denoise=gd, gamma_noise=gn)
        want_gd = ckpt["gamma_denoise"] if gd is None else gd
        want_gn = ckpt["gamma_noise"] if gn is None else gn
        eff_1 = p.noise_state(1.0).gamma.double() - v.log()
        eff_0 = p.noise_state(0.0).gamma.double() - v.log()
        lo, hi = torch.as_tensor(labels).argmin(), torch.as_tensor(labels).argmax()
        assert float(eff_1[lo]) == pytest.approx(want_gn, abs=1e-4)
        assert float(eff_0[hi]) == pytest.approx(want_gd, abs=1e-4)


def test_checkpoint_round_trip_pca(tmp_path):
    data = load_dataset("digits", SIZE, "train")
    basis = make_basis("pca", (1, SIZE, SIZE), data=data)
    prior = make_prior("data", basis, data=data)
    process = Process(basis, prior, linear_schedule())
    den = randomised(process)
    save_checkpoint(
        tmp_path / "p.pt", den, **meta(torch.zeros(process.dim), torch.ones(process.dim))
    )
    rebuilt, _ = load_network_denoiser(tmp_path / "p.pt")
    assert torch.equal(rebuilt.process.basis.components, basis.components)
    loaded, _ = load_network_denoiser(tmp_path / "p.pt", process=process)
    z = torch.randn(2, process.dim)
    assert torch.equal(loaded(z, 0.4), den(z, 0.4))


def test_mismatched_process_refused(tmp_path):
    process, labels, var = build()
    path = tmp_path / "m.pt"
    save_checkpoint(path, randomised(process), **meta(labels, var))
    cases = [
        (build(basis="pixel")[0], "basis 'pixel'"),
        (build(prior="white")[0], "prior"),
        (build(size=16)[0], "shape"),
        (build(dataset="shapes")[0], "prior"),
    ]
    for other, what in cases:
        with pytest.raises(ValueError, match=what) as err:
            load_network_denoiser(path, process=other)
        assert "model trained for dataset 'digits' at 8x8 in basis 'dct'" in str(err.value)
    with pytest.raises(ValueError, match="uses dataset 'shapes'"):
        load_network_denoiser(path, process=process, dataset="shapes")
    wave = Process(
        make_basis("wavelet", (1, SIZE, SIZE), wavelet="db2", levels=1),
        process.prior,
        linear_schedule(),
    )
    with pytest.raises(ValueError, match="basis 'wavelet'"):
        load_network_denoiser(path, process=wave)


def test_missing_file_refused(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(ValueError, match="nope.pt") as err:
        load_network_denoiser(path)
    assert isinstance(err.value, FileNotFoundError)


def test_truncated_and_foreign_files_refused(tmp_path):
    process, labels, var = build()
    good = tmp_path / "m.pt"
    save_checkpoint(good, randomised(process), **meta(labels, var))
    blob = good.read_bytes()
    for n, cut in enumerate([len(blob) // 2, 100, 0]):
        bad = tmp_path / f"cut{n}.pt"
        bad.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match="not a valid rgdiff checkpoint"):
            load_checkpoint(bad)
    other = tmp_path / "tensor.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a valid rgdiff checkpoint"):
        load_network_denoiser(other)


class Evil:
    """Unpickling this creates a file: what a malicious checkpoint would do."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_is_never_executed(tmp_path):
    # the payload is live: plain pickle.loads runs it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Evil(probe))).close()
    assert probe.exists()
    target = tmp_path / "pwned"
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"format": "rgdiff-network", "x": Evil(target)}, protocol=2))
    zipped = tmp_path / "zipped.pt"
    torch.save({"format": "rgdiff-network", "version": 1, "x": Evil(target)}, zipped)
    for path in (legacy, zipped):
        with pytest.raises(ValueError, match="not a valid rgdiff checkpoint"):
            load_network_denoiser(path)
        assert not target.exists()


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    process, labels, var = build()
    den = randomised(process)
    path = tmp_path / "m.pt"
    save_checkpoint(path, den, **meta(labels, var))
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, randomised(process, seed=1), **meta(labels, var))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    load_network_denoiser(path, process=process)
