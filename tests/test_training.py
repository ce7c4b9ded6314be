"""Training: the loss goes down, checkpoints resume exactly, divergence stops cleanly, seeds
are deterministic, and two DDP processes (gloo, CPU) keep identical replicas."""

import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rgdiff_core import training
from rgdiff_core.denoisers.checkpoints import load_checkpoint, load_network_denoiser
from rgdiff_core.denoisers.models import UNetConfig
from rgdiff_core.training import TrainConfig, TrainingDiverged, export_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
TINY = TrainConfig(
    dataset="digits",
    size=8,
    basis="dct",
    steps=40,
    batch=32,
    lr=2e-3,
    warmup=10,
    log_every=10,
    ckpt_every=10,
    seed=0,
    device="cpu",
    model=UNetConfig(channels=16, channel_mult=(1, 2), num_res_blocks=1, cond_dim=32),
)


@pytest.fixture(autouse=True)
def one_thread():
    # the CI machine has 2 cores; oversubscribed OpenMP threads slow small convs 10-100x
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_decreases_and_checkpoint_loads(tmp_path):
    lines = []
    result = train(TINY, tmp_path, progress=lines.append)
    losses = result.loss_history
    assert len(losses) == 40 and result.step == 40
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.01
    assert any("steps/s" in line and "ETA" in line for line in lines)
    den, info = load_network_denoiser(result.checkpoint)
    assert info["steps"] == 40 and info["loss_history"] == losses
    assert info["softness_family"]["p_inf"] == TINY.p_softness_inf
    z = torch.randn(3, den.process.dim)
    assert torch.isfinite(den(z, 0.5)).all()
    # the EMA weights are what the checkpoint serves
    assert same(weights(den.model), weights(result.denoiser.model))


def test_resume_continues_where_it_stopped(tmp_path):
    first = train(replace(TINY, steps=20), tmp_path / "a", progress=None)
    lines = []
    resumed = train(TINY, tmp_path / "a", progress=lines.append)
    assert any("resumed" in line and "step 20" in line for line in lines)
    assert resumed.step == 40 and len(resumed.loss_history) == 40
    assert resumed.loss_history[:20] == first.loss_history
    assert load_checkpoint(tmp_path / "a" / "checkpoint.pt")["steps"] == 40
    # optimiser, EMA and the per-step seeds are restored: same as never stopping
    straight = train(TINY, tmp_path / "b", progress=None)
    assert resumed.loss_history == straight.loss_history
    assert same(weights(resumed.model), weights(straight.model))
    assert same(weights(resumed.denoiser.model), weights(straight.denoiser.model))
    with pytest.raises(ValueError, match="another config"):
        train(replace(TINY, basis="pixel"), tmp_path / "a", progress=None)


def test_init_from_starts_at_the_given_weights(tmp_path):
    """--init-from: a new run (here for another γ̃_n) starts from a model's weights; its first
    loss is the trained model's level, not a fresh network's; another process is refused."""
    base = train(TINY, tmp_path / "base", progress=None)
    export_checkpoint(base.checkpoint, tmp_path / "base.pt")
    tuned_cfg = replace(TINY, steps=1, gamma_noise=6.0, lr=1e-12, warmup=1, ema_decay=0.0)
    lines = []
    tuned = train(
        tuned_cfg, tmp_path / "tuned", progress=lines.append, init_from=tmp_path / "base.pt"
    )
    assert any("weights from" in line for line in lines)
    # lr ~ 0: the raw weights are the exported (EMA) ones
    assert all(
        torch.allclose(v, weights(base.denoiser.model)[k], atol=1e-6)
        for k, v in weights(tuned.model).items()
    )
    fresh = train(tuned_cfg, tmp_path / "fresh", progress=None)
    assert tuned.loss_history[0] < fresh.loss_history[0]
    assert load_checkpoint(tuned.checkpoint)["gamma_noise"] == 6.0
    with pytest.raises(ValueError, match="another process"):
        train(
            replace(tuned_cfg, basis="pixel"),
            tmp_path / "other",
            progress=None,
            init_from=tmp_path / "base.pt",
        )


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    cfg = replace(TINY, steps=5)
    a = train(cfg, tmp_path / "a", progress=None)
    b = train(cfg, tmp_path / "b", progress=None)
    c = train(replace(cfg, seed=1), tmp_path / "c", progress=None)
    assert same(weights(a.model), weights(b.model)) and a.loss_history == b.loss_history
    assert not same(weights(a.model), weights(c.model))


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = training.v_loss

    def poisoned(v_hat, v, weight=None):
        calls["n"] += 1
        loss = real(v_hat, v, weight)
        return loss * float("nan") if calls["n"] >= 15 else loss

    monkeypatch.setattr(training.trainer, "v_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="step 15") as err:
        train(TINY, tmp_path, progress=None)
    assert err.value.step == 15 and isinstance(err.value, RuntimeError)
    den, info = load_network_denoiser(tmp_path / "checkpoint.pt")
    assert info["steps"] == 10
    assert all(torch.isfinite(p).all() for p in den.model.parameters())


def test_huge_learning_rate_diverges(tmp_path):
    with pytest.raises(TrainingDiverged, match="training diverged"):
        train(replace(TINY, lr=1e30, warmup=1, grad_clip=1e30), tmp_path, progress=None)


def test_export_writes_model_json_and_csv(tmp_path):
    result = train(replace(TINY, steps=10), tmp_path / "run", progress=None)
    meta = export_checkpoint(result.checkpoint, tmp_path / "models" / "m.pt", command="cmd")
    assert (tmp_path / "models" / "m.json").is_file()
    csv = (tmp_path / "models" / "m_loss.csv").read_text().splitlines()
    assert csv[0] == "step,loss" and len(csv) == 11
    assert meta["steps"] == 10 and meta["command"] == "cmd" and meta["file_mb"] < 10
    info = load_checkpoint(tmp_path / "models" / "m.pt")
    assert "train" not in info  # no optimiser state in an exported model
    den, _ = load_network_denoiser(tmp_path / "models" / "m.pt")
    assert same(weights(den.model), weights(result.denoiser.model))


def test_config_validation():
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError, match="p_softness"):
        TrainConfig(p_softness_one=0.7, p_softness_inf=0.5)
    assert TrainConfig.from_dict(TINY.to_dict()) == TINY


def test_softness_family_draws():
    cfg = TrainConfig()
    inv = training.sample_inv_softness(20000, cfg, torch.Generator().manual_seed(0), "cpu")
    assert abs(float((inv == 0).double().mean()) - 0.1) < 0.01
    assert abs(float((inv == 1).double().mean()) - 0.2) < 0.01
    rest = inv[(inv != 0) & (inv != 1)]
    assert float(rest.min()) >= 0.1 - 1e-12 and float(rest.max()) <= 10 + 1e-12
    assert abs(float(rest.log().mean())) < 0.1  # log-uniform on [log 0.1, log 10]


DDP_WORKER = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from dataclasses import replace
    from rgdiff_core.denoisers.models import UNetConfig
    from rgdiff_core.training import TrainConfig, train
    out, rank = sys.argv[1], sys.argv[2]
    cfg = TrainConfig(dataset="digits", size=8, steps=6, batch=16, log_every=3, ckpt_every=3,
                      device="cpu", model=UNetConfig(channels=16, channel_mult=(1, 2),
                                                     num_res_blocks=1, cond_dim=32))
    result = train(cfg, out + "/run", progress=print)
    torch.save({"weights": result.model.state_dict(), "losses": result.loss_history},
               f"{out}/rank{rank}.pt")
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_keep_identical_replicas(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER)
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": "2",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(rank)],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=120)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(outputs)
    assert "steps/s" in outputs[0] and "steps/s" not in outputs[1]  # only rank 0 logs
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert same(r0["weights"], r1["weights"])
    assert r0["losses"] != r1["losses"]  # each rank drew its own batches
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["steps"] == 6
