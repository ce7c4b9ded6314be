"""The peer work in JAX: the same computation as bench_core.py --peer-work, for timing side by
side with the torch library (the authors' reference code is JAX).
Written here from docs/maths.md §1-2
and rgdiff_core.samplers, not ported; needs `pip install -r requirements-bench.txt`.

    python bench/peer_jax.py          # check against the torch pieces, then time it

Everything is in whitened components u = (c - m) / s of the real orthonormal Fourier basis,
whose packing (gather indices and weights of view_as_real(rfft2)) is read off the torch basis:

    gamma_i(t) = gamma_start_i + t * delta_gamma              (soft conditioning, no clip)
    x0_hat     = v alpha / (alpha^2 v + sigma^2) z      (exact posterior mean: Sigma = diag v,
                                                      data mean 0)
    z_s        = z + h beta/2 z + h dgamma/dt (alpha x0_hat - z) + sqrt(h beta) eps

with h = t - s, beta = sigma^2 dgamma/dt, frozen components (dgamma/dt = 0) held; after the
last step the output is x0_hat at t = 0, decoded to images. float32 on the CPU, the 100 steps
inside one jit (lax.fori_loop). The schedule's gamma_start and delta_gamma, the prior and the
data variances come from the same rgdiff_core objects as the torch side.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_platforms", "cpu")


def xla_threads() -> int:
    """The CPUs XLA's host pool is sized for (it follows the process's affinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class PeerJax:
    """The peer-work sampler and the Fourier basis as jitted JAX functions."""

    def __init__(self, process, lam, steps: int = 100, jitter: float = 1e-6):
        basis, prior, sched = process.basis, process.prior, process.schedule
        if (
            getattr(sched, "name", "") != "soft"
            or sched.clip
            or basis.name != "fourier"
            or float(prior.mean.abs().max()) != 0
        ):
            raise ValueError("the JAX peer work is the unclipped Fourier, zero-mean case")
        f32 = np.float32
        _, self.h, self.w = basis.shape
        self.dim = basis.dim
        self.gather = basis._gather.cpu().numpy()
        self.weight = basis._weight.cpu().numpy().astype(f32)
        self.src = basis._src.cpu().numpy()
        self.coef = basis._coef.cpu().numpy().astype(f32)
        self.std = prior.std.cpu().numpy().astype(f32)
        self.lam = np.asarray(lam, np.float64)
        # the Gaussian denoiser's whitened data variances, with its jitter (mean is zero)
        var = self.lam / prior.std.double().cpu().numpy() ** 2
        self.var = (var + jitter * var.mean()).astype(f32)
        self.gamma_start = sched.gamma_start.cpu().numpy().astype(f32)
        self.delta_gamma = f32(sched.delta_gamma)
        ts = np.linspace(1.0, 0.0, steps + 1)  # the torch sampler's grid, steps in float64
        self.ts, self.hs = ts.astype(f32), (ts[:-1] - ts[1:]).astype(f32)
        self.steps = steps
        self.sample = jax.jit(self._sample, static_argnums=1)
        self.encode = jax.jit(self._encode)
        self.decode = jax.jit(self._decode)

    # ------------------------------------------------------------------ basis (per channel)
    def _encode(self, x):
        spec = jnp.fft.rfft2(x.reshape(-1, self.h, self.w), norm="ortho")
        flat = jnp.stack([spec.real, spec.imag], -1).reshape(x.shape[0], -1)
        return flat[:, self.gather] * self.weight

    def _decode(self, c):
        spec = (c[:, self.src] * self.coef).reshape(c.shape[0], self.h, self.w // 2 + 1, 2)
        x = jnp.fft.irfft2(spec[..., 0] + 1j * spec[..., 1], s=(self.h, self.w), norm="ortho")
        return x.reshape(c.shape[0], 1, self.h, self.w)

    # ------------------------------------------------------------------ the sampler
    def denoise(self, z, gamma):
        """Exact posterior mean per component (zero data mean: x0_hat = gain z)."""
        alpha_sq, sigma_sq = jax.nn.sigmoid(-gamma), jax.nn.sigmoid(gamma)
        return self.var * jnp.sqrt(alpha_sq) / (alpha_sq * self.var + sigma_sq) * z

    def em_step(self, z, x0_hat, gamma, h, noise):
        """One reverse-SDE Euler-Maruyama step from t to t - h (samplers._euler_maruyama_step)."""
        dgamma = jnp.full_like(gamma, self.delta_gamma)
        sigma_sq, alpha = jax.nn.sigmoid(gamma), jnp.sqrt(jax.nn.sigmoid(-gamma))
        frozen = dgamma == 0
        beta = jnp.where(frozen, 0.0, sigma_sq * dgamma)
        drift = -(0.5 * beta * z + dgamma * (alpha * x0_hat - z))
        z_s = z - h * drift + jnp.sqrt(h * beta) * noise
        return jnp.where(frozen, z, z_s)

    def _sample(self, key, n):
        key_terminal, key_steps = jax.random.split(key)
        z = jax.random.normal(key_terminal, (n, self.dim), jnp.float32)
        ts, hs = jnp.asarray(self.ts), jnp.asarray(self.hs)

        def body(k, z):
            gamma = self.gamma_start + ts[k] * self.delta_gamma
            noise = jax.random.normal(jax.random.fold_in(key_steps, k), z.shape, jnp.float32)
            return self.em_step(z, self.denoise(z, gamma), gamma, hs[k], noise)

        z = jax.lax.fori_loop(0, self.steps, body, z)
        x0_hat = self.denoise(z, self.gamma_start + ts[-1] * self.delta_gamma)
        return self._decode(x0_hat * self.std)

    def variance_ratio(self, x) -> float:
        """Mean over components of E[c_i^2] / lambda_i (as bench_core)."""
        c = np.asarray(self.encode(x), np.float64)
        return float(((c**2).mean(0) / self.lam).mean())


def time_peer(peer: PeerJax, batches=(64, 256), repeats: int = 5, seed: int = 0) -> dict:
    """{batch: (seconds per run, median of `repeats` after a compile call; variance ratio)}."""
    out = {}
    for batch in batches:
        key = jax.random.key(seed)
        peer.sample(key, batch).block_until_ready()  # compile and warm up
        times = []
        for r in range(repeats):
            k = jax.random.fold_in(key, r + 1)
            start = time.perf_counter()
            peer.sample(k, batch).block_until_ready()
            times.append(time.perf_counter() - start)
        x = peer.sample(jax.random.fold_in(key, repeats + 1), batch)
        out[batch] = (statistics.median(times), peer.variance_ratio(x))
    return out


def check_against_torch(peer: PeerJax, process, den, atol: float = 1e-5) -> None:
    """Basis, denoiser and one EM step agree with rgdiff_core on the same inputs."""
    import torch

    from rgdiff_core.samplers import SAMPLERS

    gen = torch.Generator().manual_seed(1)
    z = torch.randn(8, peer.dim, generator=gen)
    x = process.basis.decode(z)
    np.testing.assert_allclose(np.asarray(peer.decode(z.numpy())), x.numpy(), atol=atol)
    np.testing.assert_allclose(np.asarray(peer.encode(x.numpy())), z.numpy(), atol=atol)
    for t, s in [(1.0, 0.99), (0.5, 0.49), (0.01, 0.0)]:
        st_t, st_s = process.noise_state(t, like=z), process.noise_state(s, like=z)
        gamma = peer.gamma_start + np.float32(t) * peer.delta_gamma
        x0 = den(z, t, state=st_t)
        np.testing.assert_allclose(
            np.asarray(peer.denoise(z.numpy(), gamma)), x0.numpy(), rtol=1e-5, atol=atol
        )
        # the torch step draws its noise from a fresh generator; the same draw feeds JAX
        noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
        ref = SAMPLERS["euler_maruyama"](z, x0, st_t, st_s, t - s, torch.Generator().manual_seed(2))
        z_s = peer.em_step(z.numpy(), x0.numpy(), gamma, np.float32(t - s), noise.numpy())
        np.testing.assert_allclose(np.asarray(z_s), ref.numpy(), rtol=1e-5, atol=atol)


def main():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_core import peer_setup

    process, den, lam = peer_setup("cpu")
    peer = PeerJax(process, lam)
    check_against_torch(peer, process, den)
    print(f"jax {jax.__version__}, XLA CPU threads {xla_threads()}; pieces match rgdiff_core")
    for batch, (sec, ratio) in time_peer(peer).items():
        print(f"batch {batch:4d}: {sec * 1e3:8.1f} ms per run, sampled/true variance {ratio:.3f}")


if __name__ == "__main__":
    main()
