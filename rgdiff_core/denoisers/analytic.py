"""Exact denoisers (docs/maths.md §4). Both return x0_hat = E[u | z_t] in whitened components.

Gaussian data u ~ N(mu, Sigma) observed as z = alpha u + sigma eps (alpha, sigma diagonal):

    E[u | z] = mu + Sigma A (A Sigma A + diag(sigma^2))^-1 (z - A mu),   A = diag(alpha)

written without dividing by alpha or sigma, so components that are pure noise (alpha -> 0)
or known (sigma = 0, gamma = -inf; reproduced exactly) are both safe.
Four routes, one answer: Sigma diagonal (elementwise: a per-component gain and offset in
float64, applied to z in its own dtype; chosen once at construction when every off-diagonal
entry is within 1e-9 of the mean variance, e.g. a stationary field in the Fourier basis, and
then no D x D matrix is kept), gamma equal for every component (eigendecomposition of Sigma,
two matmuls), Sigma = L L^T + c I with rank r <= D / 4 (also decided once: every eigenvalue
but the top r within 1e-9 of the mean variance of the smallest; e.g. data on a subspace plus the
jitter, like the 8 x 8 digits scaled up: Woodbury, `low_rank_posterior_mean`, O(D r^2) per step),
and the general case (Cholesky, float64, O(D^3 / 3) per step).

Empirical data {u_n}: p(n | z) ∝ exp(-1/2 sum_i (z_i - alpha_i u_ni)^2 / sigma_i^2), and
E[u | z] = sum_n p(n | z) u_n: the optimal denoiser of the finite set, which reproduces its
items when sampled.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..schedules import NoiseState

__all__ = [
    "GaussianDenoiser",
    "EmpiricalDenoiser",
    "component_covariance",
    "low_rank_posterior_mean",
]

# gamma below this counts as "known"; e^-30 precision keeps float32 logits finite
_GAMMA_FLOOR = -30.0
# sigma^2 of known components in the low-rank solve, times the mean variance
SIGMA_SQ_FLOOR = 1e-16
# the low-rank route is taken when Sigma = L L^T + c I with rank(L) <= D / LOW_RANK_SHARE
LOW_RANK_SHARE = 4


def component_covariance(basis, cov: Tensor) -> Tensor:
    """U C U^T for a data-space covariance C (D, D), in float64."""
    d = basis.dim
    cov = torch.as_tensor(cov, dtype=torch.float64)
    if cov.shape != (d, d):
        raise ValueError(f"cov must have shape ({d}, {d}), got {tuple(cov.shape)}")
    half = basis.encode(cov.reshape(d, *basis.shape))  # C U^T (the basis follows the dtype)
    return basis.encode(half.T.contiguous().reshape(d, *basis.shape))  # U C U^T


class GaussianDenoiser(nn.Module):
    """Exact posterior mean for Gaussian data N(mean, cov) given in data space.

    dense=True keeps the eigendecomposition and Cholesky routes even when the whitened
    covariance is diagonal or low rank plus a constant (a reference for the elementwise and
    low-rank routes; same answer, slower). `low_rank` is the rank r of that route, or None.
    """

    def __init__(
        self, process, mean: Tensor, cov: Tensor, jitter: float = 1e-6, dense: bool = False
    ):
        super().__init__()
        d = process.dim
        mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
        if mean.numel() != d or not torch.isfinite(mean).all():
            raise ValueError(
                f"mean must have {d} finite entries, got {mean.numel()} "
                f"({int((~torch.isfinite(mean)).sum())} not finite)"
            )
        cov = torch.as_tensor(cov)
        if cov.shape == (d, d) and not torch.isfinite(cov).all():
            raise ValueError("cov must hold finite numbers")
        if isinstance(jitter, bool) or not (isinstance(jitter, (int, float)) and 0 <= jitter < 1):
            raise ValueError(f"jitter must be a number in [0, 1), got {jitter!r}")
        if not isinstance(dense, bool):
            raise ValueError(f"dense must be True or False, got {dense!r}")
        basis = process.basis
        cov_c = component_covariance(_cpu_copy(basis), cov.cpu())
        mean_c = _cpu_copy(basis).encode(mean.reshape(1, *basis.shape))[0]
        s = process.prior.std.double().cpu()
        m = process.prior.mean.double().cpu()
        mu = (mean_c - m) / s
        sigma_u = cov_c / s[:, None] / s[None, :]
        sigma_u = 0.5 * (sigma_u + sigma_u.T)
        scale = float(sigma_u.diagonal().mean())
        sigma_u = sigma_u + jitter * scale * torch.eye(d, dtype=torch.float64)
        self.process = process
        off = sigma_u - torch.diag(sigma_u.diagonal())
        self.diagonal = not dense and bool(off.abs().max() <= 1e-9 * scale)
        dev = process.device
        self.register_buffer("mu", mu.to(dev))
        self.register_buffer("var", sigma_u.diagonal().clone().to(dev))
        if not self.diagonal:  # the matrix routes; the elementwise one needs only var
            self.register_buffer("sigma_u", sigma_u.to(dev))
            lam, vec = torch.linalg.eigh(sigma_u)
            self.register_buffer("eigval", lam.clamp_min(0).to(dev))
            self.register_buffer("eigvec", vec.to(dev))
        parts = None if self.diagonal or dense else _low_rank(lam, vec, scale)
        self.low_rank = None if parts is None else parts[0].shape[1]
        if parts is not None:
            factor, c = parts
            self.register_buffer("factor", factor.to(dev))
            self.register_buffer("remainder", torch.full((d,), c, dtype=torch.float64).to(dev))
            self.sigma_sq_floor = SIGMA_SQ_FLOOR * scale
        self.nfe = 0

    @classmethod
    def fit(cls, process, data: Tensor, jitter: float = 1e-4) -> GaussianDenoiser:
        """The exact denoiser of the Gaussian with the data's mean and covariance (D <= 4096):
        all second-order structure, nothing beyond it."""
        if data.ndim != 4 or tuple(data.shape[1:]) != tuple(process.shape):
            raise ValueError(
                f"data must have shape (N, {', '.join(map(str, process.shape))}),"
                f" got {tuple(data.shape)}"
            )
        if process.dim > 4096:
            raise ValueError(f"a fitted Gaussian needs D <= 4096 components, got {process.dim}")
        if data.shape[0] < 1 or not torch.isfinite(data).all():
            raise ValueError("data must hold at least one item, all of it finite")
        flat = data.flatten(1).to(torch.float64).cpu()
        mean = flat.mean(0)
        centred = flat - mean
        cov = centred.T @ centred / max(flat.shape[0] - 1, 1)
        return cls(process, mean, cov, jitter=jitter)

    def forward(self, z: Tensor, t: Tensor | float, state: NoiseState | None = None) -> Tensor:
        if state is None:
            state = self.process.noise_state(t, like=z)
        self.nfe += 1
        # per-component coefficients at gamma's own shape ((1, D) or (B, D)), not (B, D)
        gamma = state.gamma.to(torch.float64)
        gamma = gamma.reshape(1, -1) if gamma.ndim < 2 else gamma
        gamma = gamma.expand(gamma.shape[0], z.shape[-1])
        alpha_sq, sigma_sq = torch.sigmoid(-gamma), torch.sigmoid(gamma)
        alpha = alpha_sq.sqrt()
        if self.diagonal:
            # mu + g (z - alpha mu) = g z + mu (1 - g alpha), g = v alpha / (alpha^2 v + sigma^2):
            # coefficients in float64 at gamma's shape, then one (B, D) pass in z's dtype
            gain = self.var * alpha / (alpha_sq * self.var + sigma_sq)
            offset = self.mu * (1 - gain * alpha)
            return torch.addcmul(offset.to(z.dtype), gain.to(z.dtype), z)
        if self.low_rank is not None and not bool((gamma == gamma[:, :1]).all()):
            return low_rank_posterior_mean(
                z, gamma, self.mu, self.factor, self.remainder, self.sigma_sq_floor
            )
        resid = z.to(torch.float64) - alpha * self.mu  # z - A mu
        out = torch.empty_like(resid)
        for row, idx in _unique_rows(gamma):
            out[idx] = self.mu + self._gain(resid[idx], alpha[row], sigma_sq[row])
        return out.to(z.dtype)

    def posterior_variance(self, state: NoiseState) -> Tensor:
        """diag Cov(u | z_t), the exact posterior variance of each component, in the state's
        dtype and broadcastable against (B, D) (what the corrected ancestral step adds back,
        docs/maths.md §2d): v sigmoid(gamma - log v) when Sigma is diagonal (= v sigma^2 /
        (alpha^2 v + sigma^2) without a division), else diag(Sigma - Sigma A M^-1 A Sigma) with
        M = A Sigma A + diag(sigma^2); 0 for known components."""
        gamma = state.gamma.to(torch.float64)
        rows = gamma.reshape(1, -1) if gamma.ndim < 2 else gamma
        rows = rows.expand(rows.shape[0], self.var.shape[0])
        if self.diagonal:
            out = _gaussian_posterior_variance(self.var, rows)
        else:
            out = torch.empty_like(rows)
            for row, idx in _unique_rows(rows):
                out[idx] = self._posterior_diagonal(rows[row])
        out = out.reshape(rows.shape) if gamma.ndim >= 2 else out[0]
        return out.to(state.gamma.dtype)

    def _posterior_diagonal(self, gamma: Tensor) -> Tensor:
        """diag(Sigma - Sigma A M^-1 A Sigma) for one noise state gamma (D,), float64."""
        alpha_sq, sigma_sq = torch.sigmoid(-gamma), torch.sigmoid(gamma)
        alpha = alpha_sq.sqrt()
        if bool((gamma == gamma[0]).all()):
            # shared noise level: V diag(lam sigmoid(gamma - log lam)) V^T, its diagonal
            return (self.eigvec**2) @ _gaussian_posterior_variance(self.eigval, gamma[:1])
        m = alpha[:, None] * self.sigma_u * alpha[None, :] + torch.diag(sigma_sq)
        chol = torch.linalg.cholesky(m)
        half = torch.linalg.solve_triangular(chol, alpha[:, None] * self.sigma_u, upper=False)
        return (self.sigma_u.diagonal() - (half * half).sum(0)).clamp_min(0)

    def _gain(self, resid: Tensor, alpha: Tensor, sigma_sq: Tensor) -> Tensor:
        """Sigma A (A Sigma A + diag(sigma^2))^-1 resid for one noise state (D,) each."""
        if bool((alpha == alpha[0]).all()):
            # shared noise level: V diag(lam a / (a^2 lam + s^2)) V^T
            a, s2 = alpha[0], sigma_sq[0]
            factor = self.eigval * a / (a * a * self.eigval + s2)
            return ((resid @ self.eigvec) * factor) @ self.eigvec.T
        m = alpha[:, None] * self.sigma_u * alpha[None, :] + torch.diag(sigma_sq)
        chol = torch.linalg.cholesky(m)
        sol = torch.cholesky_solve(resid.T, chol)  # (D, b)
        return (self.sigma_u @ (alpha[:, None] * sol)).T


class EmpiricalDenoiser(nn.Module):
    """Exact optimal denoiser of a finite training set (reproduces its items)."""

    def __init__(self, process, data: Tensor, batch: int = 1024):
        super().__init__()
        if data.ndim != 4 or tuple(data.shape[1:]) != tuple(process.shape):
            raise ValueError(
                f"data must have shape (N, {', '.join(map(str, process.shape))}),"
                f" got {tuple(data.shape)}"
            )
        if data.shape[0] < 1:
            raise ValueError("data must hold at least one item")
        if not torch.isfinite(data).all():
            raise ValueError("data must hold finite numbers")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
        with torch.no_grad():
            items = torch.cat(
                [
                    process.encode(data[i : i + batch].to(process.device))
                    for i in range(0, data.shape[0], batch)
                ]
            )
        self.process = process
        self.register_buffer("items", items.contiguous())
        self.register_buffer("items_sq", (items * items).contiguous())
        self.nfe = 0

    def forward(
        self,
        z: Tensor,
        t: Tensor | float,
        state: NoiseState | None = None,
        return_weights: bool = False,
    ):
        if state is None:
            state = self.process.noise_state(t, like=z)
        self.nfe += 1
        items = self.items.to(z.dtype)
        gamma = state.gamma.to(z.dtype).clamp_min(_GAMMA_FLOOR)
        if gamma.ndim == 1:
            gamma = gamma.unsqueeze(0)
        gamma = gamma.expand(-1, z.shape[1]) if gamma.shape[1] == 1 else gamma
        precision = torch.exp(-gamma)  # alpha^2 / sigma^2
        # log p(n|z) = (z alpha / sigma^2) . u_n - 1/2 (alpha^2 / sigma^2) . u_n^2 + const
        coef = z * torch.sigmoid(-gamma).sqrt() * (1 + precision)
        logits = coef @ items.T - 0.5 * (precision @ self.items_sq.to(z.dtype).T)
        weights = torch.softmax(logits, dim=-1)
        x0_hat = weights @ items
        return (x0_hat, weights) if return_weights else x0_hat


def low_rank_posterior_mean(
    z: Tensor, gamma: Tensor, mu: Tensor, factor: Tensor, remainder: Tensor, floor: float
) -> Tensor:
    """E[u | z] (B, D) in z's dtype for u ~ N(mu, L L^T + diag(d)), z = A u + sigma eps.

    gamma: (G, D) float64 with G = 1 or B; mu (D,), factor L (D, r), remainder d (D,) float64;
    floor: sigma^2 given to known components (gamma = -inf) in the solve, which are then
    returned as z bit for bit. With M = A Sigma A + diag(sigma^2) = B B^T + diag(delta),
    B = A L, delta = alpha^2 d + sigma^2, Woodbury gives

        K = I_r + B^T diag(1/delta) B,   y = K^-1 B^T (r / delta),   r = z - A mu,
        E[u | z] = mu + L y + (d alpha / delta) (r - B y)

    (L B^T M^-1 = L K^-1 B^T diag(1/delta): no cancellation between large terms). y solves the
    ridge problem min |C y - r / sqrt(delta)|^2 + |y|^2, C = diag(alpha / sqrt(delta)) L, by a
    QR of [C; I] ((D + r) x r): its error grows with cond(C), not cond(K) = cond(C)^2, which
    matters for known rows (1 / sqrt(floor)). One QR per distinct row of gamma: O(D r^2 + B D r).
    """
    known = torch.isneginf(gamma)
    alpha_sq = torch.sigmoid(-gamma)
    alpha = alpha_sq.sqrt()
    sigma_sq = torch.sigmoid(gamma).clamp_min(floor)
    delta = alpha_sq * remainder + sigma_sq  # (G, D), > 0
    resid = z.to(mu) - alpha * mu  # r = z - A mu, (B, D)
    keep = remainder * alpha / delta  # gain of the diagonal remainder
    rank = factor.shape[1]
    if rank == 0:
        x0 = mu + keep * resid
    else:
        root = delta.sqrt()
        eye = torch.eye(rank, dtype=factor.dtype, device=factor.device)
        stacked = torch.cat(
            [(alpha / root).unsqueeze(-1) * factor, eye.expand(gamma.shape[0], -1, -1)], 1
        )
        q, upper = torch.linalg.qr(stacked)  # (G, D + r, r), (G, r, r)
        w = resid / root  # (B, D)
        if q.shape[0] == 1:
            proj = w @ q[0, : factor.shape[0]]  # (B, r)
            y = torch.linalg.solve_triangular(upper[0], proj.T, upper=True).T
        else:
            proj = torch.einsum("bd,bdr->br", w, q[:, : factor.shape[0]]).unsqueeze(-1)
            y = torch.linalg.solve_triangular(upper, proj, upper=True).squeeze(-1)
        ly = y @ factor.T  # L y, (B, D)
        x0 = mu + ly + keep * (resid - alpha * ly)
    x0 = x0.to(device=z.device, dtype=z.dtype)
    return torch.where(known.to(z.device), z, x0)  # bit for bit, and no 0/0 anywhere


def _low_rank(lam: Tensor, vec: Tensor, scale: float) -> tuple[Tensor, float] | None:
    """Sigma = V diag(lam) V^T (lam ascending) as L L^T + c I: (L (D, r), c) when every
    eigenvalue but the top r lies within 1e-9 scale of c = the smallest (c > 0) and
    1 <= r <= D / LOW_RANK_SHARE, else None."""
    c = float(lam[0])
    rank = int((lam - c > 1e-9 * scale).sum())
    if not (c > 1e-12 * scale and 1 <= rank <= lam.numel() // LOW_RANK_SHARE):
        return None
    return (vec[:, -rank:] * (lam[-rank:] - c).sqrt()).contiguous(), c


def _gaussian_posterior_variance(v: Tensor, gamma: Tensor) -> Tensor:
    """Var(u | z) = v sigma^2 / (alpha^2 v + sigma^2) = v sigmoid(gamma - log v) for data
    variance v; 0 where v = 0 or gamma = -inf (known), v at gamma = +inf."""
    safe = torch.where(v > 0, v, torch.ones_like(v))
    return torch.where(v > 0, v * torch.sigmoid(gamma - safe.log()), torch.zeros_like(v))


def _unique_rows(gamma: Tensor) -> list[tuple[int, slice | Tensor]]:
    """(row of gamma, batch rows it applies to); samplers use one t per step, so usually one.
    A single row of gamma (1, D) applies to the whole batch."""
    if gamma.shape[0] == 1:
        return [(0, slice(None))]
    if bool((gamma == gamma[:1]).all()):
        return [(0, slice(None))]
    _, inverse = torch.unique(gamma, dim=0, return_inverse=True)
    groups = [(inverse == k).nonzero().flatten() for k in range(int(inverse.max()) + 1)]
    return [(int(idx[0]), idx) for idx in groups]


def _cpu_copy(basis):
    """A CPU view of the basis for one-off float64 set-up work."""
    if hasattr(basis, "buffers") and any(b.device.type != "cpu" for b in basis.buffers()):
        import copy

        return copy.deepcopy(basis).cpu()
    return basis
