"""Exact propagation of the mean and covariance of z through a sampler on Gaussian data.

The maths and the routes are stated in the package docstring (rgdiff_core.accuracy,
docs/maths.md §2d); here each step is written as z_s = K z_t + f + n xi and run:

- `diagonal_route`: Sigma diagonal (or the eigen route: Sigma's eigenbasis with one shared
  state per time); every quantity is (steps, D) and the recursion one cumulative product
  (dpm2m, which also reads the previous step's x0_hat: a loop over the steps).
- `dense_route`: one Cholesky of M = A Sigma A + diag(sigma^2) per grid time, shared by every
  method of a call; rows of K that a step holds are never formed, and only the moving rows and
  columns of C are updated.

dpm2m is deterministic and multistep (docs/maths.md §2d): its z_k is tracked as an affine map of
the start, z_k = m_k + P_k xi with z_1 = m_1 + P_1 xi, xi ~ N(0, I), together with the previous
step's x0_hat = x_k + X_k xi, and C = P P^T at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..samplers import _ancestral_coefficients, _exp_coefficients, _grid_states, dpm2m_weight
from ..schedules import NoiseState

CHUNK_ENTRIES = 2**20  # per (steps, D) array of the diagonal route (8 MiB in float64)


@dataclass(frozen=True)
class Gaussian:
    """u ~ N(mean, cov) in whitened components, float64 on the CPU: mean (D,), cov (D, D) or,
    for independent components, its diagonal (D,)."""

    mean: Tensor
    cov: Tensor

    @property
    def diagonal(self) -> bool:
        return self.cov.ndim == 1

    @property
    def variances(self) -> Tensor:
        return self.cov if self.diagonal else self.cov.diagonal()


# ---------------------------------------------------------------- grid and step coefficients


def grid_states(process, steps: int, mask, dtype) -> tuple[Tensor, Tensor, Tensor]:
    """ts (N+1,), gamma and dgamma/dt (N+1, D) float64: the sampler's states, same grid and
    dtype (`samplers._grid_states`)."""
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    like = torch.empty(0, dtype=dtype, device=process.device)
    states = list(_grid_states(process, ts, mask, like))
    gamma = torch.stack([s.gamma.expand(process.dim) for s in states]).double().cpu()
    dgamma = torch.stack([s.dgamma_dt.expand(process.dim) for s in states]).double().cpu()
    return ts, gamma, dgamma


def _gain_diagonal(var: Tensor, mean: Tensor, gamma: Tensor, known) -> tuple[Tensor, ...]:
    """Elementwise gain g, offset o and posterior variance p for gamma (..., D)."""
    alpha, sigma_sq = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma)
    gain = var * alpha / (alpha * alpha * var + sigma_sq)
    post = torch.where(var > 0, var * torch.sigmoid(gamma - var.clamp_min(1e-300).log()), 0.0)
    if known is not None:  # the sampler overwrites x0_hat there with z's own value
        gain = torch.where(known, 1.0, gain)
        post = torch.where(known, 0.0, post)
    return gain, mean * (1 - gain * alpha), post


class _Step:
    """Per-component coefficients of step k (t_k -> t_k+1) for every method, float64 (..., D)."""

    def __init__(self, ts, gamma, dgamma):
        self.ts, self.gamma, self.dgamma = ts, gamma, dgamma
        self.alpha, self.sigma_sq = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma)
        self.beta = torch.where(dgamma == 0, 0.0, self.sigma_sq * dgamma)
        self.frozen = dgamma == 0
        moved, a, b, var = _ancestral_coefficients(
            NoiseState(gamma[:-1], dgamma[:-1]), NoiseState(gamma[1:], dgamma[1:])
        )
        self.moved = moved
        self.anc = (torch.where(moved, a, 1.0), torch.where(moved, b, 0.0))
        self.anc_var = torch.where(moved, var.clamp_min(0), 0.0)
        self.h = (ts[:-1] - ts[1:])[:, None]
        self.exp = _exp_coefficients(
            NoiseState(gamma[:-1], dgamma[:-1]), NoiseState(gamma[1:], dgamma[1:])
        )[1:]

    def euler_maruyama(self, k: slice | int):
        """(a, b, n^2) at step k; held where frozen at t."""
        h, beta, dg = self.h[k], self.beta[:-1][k], self.dgamma[:-1][k]
        still = self.frozen[:-1][k]
        a = torch.where(still, 1.0, 1 + h * (0.5 * beta - dg))
        b = torch.where(still, 0.0, h * dg * self.alpha[:-1][k])
        return a, b, torch.where(still, 0.0, h * beta)

    def drift(self, j: slice | int):
        """d(z) = qa z + qb x0_hat at grid time j (the ODE drift's coefficients)."""
        dg = self.dgamma[j]
        return 0.5 * (dg - self.beta[j]), -0.5 * dg * self.alpha[j]


# ---------------------------------------------------------------- routes


def diagonal_route(g: Gaussian, grid, methods, known, values, scalar=False):
    """{method: (mean (D,), var (D,))} of the output; O(D) per step, in chunks of steps so the
    (steps, D) coefficient arrays stay near CHUNK_ENTRIES entries each."""
    ts, gamma, dgamma = grid
    if scalar:  # eigen route: one shared state per time, broadcast over the eigenbasis
        gamma, dgamma = gamma[:, :1], dgamma[:, :1]
    m0 = torch.zeros_like(g.mean) if values is None else torch.where(known, values, 0.0)
    c0 = torch.ones_like(g.mean) if known is None else torch.where(known, 0.0, 1.0)
    state = {method: (m0, c0) for method in methods if method != "dpm2m"}
    multi = {"dpm2m": (m0, c0, None)} if "dpm2m" in methods else {}
    steps, width = len(ts) - 1, max(1, CHUNK_ENTRIES // g.mean.numel())
    for k0 in range(0, steps, width):
        part = slice(k0, min(k0 + width, steps) + 1)  # grid times k0 .. k1, steps k0 .. k1 - 1
        co = _Step(ts[part], gamma[part], dgamma[part])
        gains = _gain_diagonal(g.cov, g.mean, gamma[part], known)
        for method in state:
            state[method] = _scan(*_diagonal_step(method, co, *gains), *state[method])
        for method in multi:
            multi[method] = _dpm2m_diagonal(co, *gains[:2], *multi[method])
    for method, (mean, lin, _) in multi.items():
        state[method] = (mean, lin * lin * c0)  # c0 is 0 or 1, so P_1 = c0
    gain0, offset0, _ = _gain_diagonal(g.cov, g.mean, gamma[-1], known)
    return {m: (gain0 * mean + offset0, gain0 * gain0 * var) for m, (mean, var) in state.items()}


def _diagonal_step(method: str, co: _Step, gain: Tensor, offset: Tensor, post: Tensor):
    """(kz, f, n^2) (steps, D) of z_s = kz z + f + n xi, elementwise."""
    if method == "heun_ode":
        (qa_t, qb_t), (qa_s, qb_s) = co.drift(slice(0, -1)), co.drift(slice(1, None))
        q_t, q_s = qa_t + qb_t * gain[:-1], qa_s + qb_s * gain[1:]
        r_t, r_s = qb_t * offset[:-1], qb_s * offset[1:]
        still, h = co.frozen[:-1] & co.frozen[1:], co.h
        kz = torch.where(still, 1.0, 1 - 0.5 * h * (q_t + q_s * (1 - h * q_t)))
        f = torch.where(still, 0.0, -0.5 * h * (r_t + r_s - h * q_s * r_t))
        return kz, f, torch.zeros_like(kz)
    if method == "euler_maruyama":
        a, b, n_sq = co.euler_maruyama(slice(None))
    elif method == "ddim":
        (a, b), n_sq = co.exp, torch.zeros(())
    else:
        (a, b), n_sq = co.anc, co.anc_var
        if method == "ancestral_corrected":
            n_sq = n_sq + b * b * post[:-1]
    return a + b * gain[:-1], b * offset[:-1], n_sq


def _dpm2m_diagonal(co: _Step, gain, offset, mean, lin, prev):
    """dpm2m over the steps of a chunk, elementwise: z = mean + lin xi; prev = (x0_hat's mean,
    its lin, h) of the step before, None before the first step."""
    a, b = co.exp
    for k in range(len(co.h)):
        x_mean, x_lin = gain[k] * mean + offset[k], gain[k] * lin
        d_mean, d_lin = x_mean, x_lin
        h = float(co.h[k])
        if prev is not None:
            w = dpm2m_weight(h, prev[2])
            d_mean, d_lin = torch.lerp(prev[0], x_mean, w), torch.lerp(prev[1], x_lin, w)
        mean, lin = a[k] * mean + b[k] * d_mean, a[k] * lin + b[k] * d_lin
        prev = (x_mean, x_lin, h)
    return mean, lin, prev


def _scan(kz, f, n_sq, m, c):
    """Run m <- kz m + f and c <- kz^2 c + n^2 over the steps of a chunk at once:
    x_end = R_0 x + sum_k R_k+1 add_k with R_k = prod_{j >= k} mult_j (reverse cumprod)."""
    kz, f, n_sq = torch.broadcast_tensors(kz, f, n_sq)
    ones = torch.ones_like(kz[:1])

    def run(mult, add, x):
        tail = torch.cat([mult.flip(0).cumprod(0).flip(0), ones])  # R_0 .. R_end
        return tail[0] * x + (tail[1:] * add).sum(0)

    return run(kz, f, m), run(kz * kz, n_sq, c)


def _dense_gain(g: Gaussian, gamma: Tensor, rows: Tensor, known) -> tuple[Tensor, ...]:
    """Rows `rows` of G, o and diag(P) at one state gamma (D,): one Cholesky of M and a solve
    for r right-hand sides (M^-1 A Sigma[:, rows] are the rows of G, as G^T = M^-1 A Sigma)."""
    alpha, sigma_sq = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma)
    a_cov = alpha[:, None] * g.cov
    m = a_cov * alpha[None, :]
    m.diagonal().add_(sigma_sq)
    chol, info = torch.linalg.cholesky_ex(m)
    if int(info):
        raise ValueError("cov must be positive definite (A Sigma A + diag(sigma^2) is not)")
    rhs = a_cov[:, rows]
    gain = torch.cholesky_solve(rhs, chol).T
    offset = g.mean[rows] - gain @ (alpha * g.mean)
    post = (g.cov.diagonal()[rows] - (gain * rhs.T).sum(1)).clamp_min(0)
    if known is not None:  # x0_hat = z there (the sampler writes the known values)
        kr = known[rows]
        gain[kr] = 0.0
        gain[kr.nonzero().flatten(), rows[kr]] = 1.0
        offset[kr], post[kr] = 0.0, 0.0
    return gain, offset, post


def dense_route(g: Gaussian, grid, methods, known, values, full: bool):
    """{method: (mean (D,), cov (D, D) if full else its diagonal)} of the output."""
    ts, gamma, dgamma = grid
    co, d, steps = _Step(ts, gamma, dgamma), g.mean.numel(), len(ts) - 1
    need = ~co.frozen  # Euler-Maruyama and Heun read the rows not frozen at t_j
    need[:-1] |= co.moved  # the ancestral steps read the rows they move
    if "dpm2m" in methods:  # and dpm2m the previous step's x0_hat on them
        need[:-2] |= co.moved[1:]
    need[-1] = True  # the output at t = 0
    if known is not None:
        need[:-1] &= ~known
    cache: dict[int, tuple] = {}

    def gains(j: int):
        if j not in cache:
            rows = need[j].nonzero().flatten()
            pos = torch.full((d,), -1, dtype=torch.long)
            pos[rows] = torch.arange(rows.numel())
            cache[j] = (pos, *_dense_gain(g, gamma[j], rows, known)) if rows.numel() else (pos,)
        return cache[j]

    m0 = torch.zeros(d, dtype=torch.float64) if values is None else torch.where(known, values, 0.0)
    c0 = torch.eye(d, dtype=torch.float64)
    if known is not None:
        c0[known, known] = 0.0
    state = {method: (m0.clone(), c0.clone()) for method in methods if method != "dpm2m"}
    multi = {"dpm2m": [m0.clone(), c0.clone(), None]} if "dpm2m" in methods else {}
    for k in range(steps):
        for method in state:
            rows, kmat, f, n_sq = _dense_step(method, co, k, gains)
            if rows.numel():
                _apply(*state[method], rows, kmat, f, n_sq)
        for carry in multi.values():
            _dpm2m_dense(co, k, gains, carry)
        cache.pop(k, None)
    pos, gain0, offset0, _ = gains(steps)
    for method, (m, lin, _) in multi.items():
        state[method] = (m, lin @ lin.T)
    out = {}
    for method, (m, c) in state.items():
        gc = gain0 @ c
        cov = gc @ gain0.T if full else (gc * gain0).sum(1)
        out[method] = (gain0 @ m + offset0, 0.5 * (cov + cov.T) if full else cov)
    return out


def _dpm2m_dense(co: _Step, k: int, gains, carry: list) -> None:
    """dpm2m's step k in place on carry = [mean m, map P, prev]: z = m + P xi, prev = (rows,
    x0_hat's mean and map on those rows, h) of step k - 1 (None at k = 0); only the rows that
    move at step k change, and x0_hat is kept on the rows that move at step k or k + 1."""
    m, lin, prev = carry
    h = float(co.h[k])
    rows = co.moved[k].nonzero().flatten()
    keep = co.moved[k] if k + 1 == len(co.h) else co.moved[k] | co.moved[k + 1]
    keep = keep.nonzero().flatten()
    if keep.numel():
        gain, offset, _ = _rows_of(gains(k), keep)
        x_mean, x_lin = gain @ m + offset, gain @ lin
    if rows.numel():
        at = torch.searchsorted(keep, rows)  # rows are among keep (both sorted)
        d_mean, d_lin = x_mean[at], x_lin[at]
        if prev is not None:
            w = dpm2m_weight(h, prev[3])
            back = torch.searchsorted(prev[0], rows)  # step k - 1 kept every row moving at k
            d_mean, d_lin = (
                torch.lerp(prev[1][back], d_mean, w),
                torch.lerp(prev[2][back], d_lin, w),
            )
        a, b = (x[k, rows] for x in co.exp)
        m[rows] = a * m[rows] + b * d_mean
        lin[rows] = a[:, None] * lin[rows] + b[:, None] * d_lin
    carry[2] = (keep, x_mean, x_lin, h) if keep.numel() else None


def _rows_of(gains_j, rows: Tensor) -> tuple[Tensor, ...]:
    pos, *parts = gains_j
    return tuple(p[pos[rows]] for p in parts)


def _dense_step(method: str, co: _Step, k: int, gains):
    """(rows, K[rows] (r, D), f[rows], n^2[rows]) of step k; other rows are held."""
    if method in ("ancestral", "ancestral_corrected", "ddim"):
        rows = co.moved[k].nonzero().flatten()
        if not rows.numel():
            return (rows, None, None, None)
        gain, offset, post = _rows_of(gains(k), rows)
        if method == "ddim":
            (a, b), n_sq = (x[k, rows] for x in co.exp), torch.zeros_like(post)
        else:
            (a, b), n_sq = (x[k, rows] for x in co.anc), co.anc_var[k, rows]
        if method == "ancestral_corrected":
            n_sq = n_sq + b * b * post
    elif method == "euler_maruyama":
        rows = (~co.frozen[k]).nonzero().flatten()
        if not rows.numel():
            return (rows, None, None, None)
        gain, offset, _ = _rows_of(gains(k), rows)
        a, b, n_sq = (x[rows] for x in co.euler_maruyama(k))
    else:
        return _heun_rows(co, k, gains)
    kmat = b[:, None] * gain
    kmat[torch.arange(rows.numel()), rows] += a
    return rows, kmat, b * offset, n_sq


def _heun_rows(co: _Step, k: int, gains):
    """Heun's K = I - h/2 (Q_t + Q_s (I - h Q_t)) and f on the rows not frozen at both ends;
    Q_j has rows only where frozen_j is False (the drift is 0 elsewhere)."""
    rows = (~(co.frozen[k] & co.frozen[k + 1])).nonzero().flatten()
    r, d, h = rows.numel(), co.gamma.shape[1], float(co.h[k])
    if not r:
        return (rows, None, None, None)
    pos = torch.full((d,), -1, dtype=torch.long)
    pos[rows] = torch.arange(r)
    q, off = [], []
    for j in (k, k + 1):  # drift rows at t and at s, placed among `rows`
        live = (~co.frozen[j]).nonzero().flatten()
        qm, qv = torch.zeros(r, d, dtype=torch.float64), torch.zeros(r, dtype=torch.float64)
        if live.numel():
            gain, offset, _ = _rows_of(gains(j), live)
            qa, qb = (x[live] for x in co.drift(j))
            qm[pos[live]] = qb[:, None] * gain
            qm[pos[live], live] += qa
            qv[pos[live]] = qb * offset
        q.append(qm)
        off.append(qv)
    (q_t, q_s), (r_t, r_s) = q, off
    # Q_s (I - h Q_t) needs all of Q_t's rows, which lie among `rows`
    kmat = -0.5 * h * (q_t + q_s - h * (q_s[:, rows] @ q_t))
    kmat[torch.arange(r), rows] += 1.0
    f = -0.5 * h * (r_t + r_s - h * (q_s[:, rows] @ r_t))
    return rows, kmat, f, torch.zeros(r, dtype=torch.float64)


def _apply(m: Tensor, c: Tensor, rows: Tensor, kmat: Tensor, f: Tensor, n_sq: Tensor) -> None:
    """m <- K m + f, C <- K C K^T + diag(n^2) in place, K = I outside `rows`: only those rows
    and columns change (2 r D^2 + 2 r^2 D flops)."""
    y = kmat @ c
    block = y @ kmat.T
    block = 0.5 * (block + block.T) + torch.diag(n_sq)
    m[rows] = kmat @ m + f
    if rows.numel() == c.shape[0]:
        c.copy_(block)  # rows is 0..D-1 in order (nonzero() sorts)
        return
    c[rows, :] = y
    c[:, rows] = y.T
    c[rows[:, None], rows] = block
