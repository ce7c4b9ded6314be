"""Denoisers: every one is a callable (z, t, state=None) -> x0_hat in whitened components."""

from .analytic import EmpiricalDenoiser, GaussianDenoiser, component_covariance

__all__ = ["EmpiricalDenoiser", "GaussianDenoiser", "component_covariance"]
