"""Tests of the Gaussian part of lossnotes.info: differential entropy and KL.

Compared with SciPy's and PyTorch's Gaussian entropies, with
``torch.distributions.kl_divergence``, with mpmath at 50 digits where two Gaussians
are nearly equal (where a naive formula loses every digit), with the identities the
chapter uses (scaling, sum over independent coordinates, KL >= 0), with
``gradcheck``, and on every promised error.
"""

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from lossnotes.info import (
    differential_entropy,
    gaussian_kl,
    multivariate_gaussian_kl,
)

sigma = st.floats(1e-3, 1e3)
mean = st.floats(-100, 100)


# --- differential entropy
# ----------------------------------------------------------------


@given(sigma)
def test_differential_entropy_matches_scipy_and_torch(s):
    h = differential_entropy(torch.tensor(s, dtype=torch.float64)).item()
    assert math.isclose(h, norm(scale=s).entropy(), rel_tol=1e-12, abs_tol=1e-12)
    torch_h = Normal(0.0, torch.tensor(s, dtype=torch.float64)).entropy().item()
    assert math.isclose(h, torch_h, rel_tol=1e-12, abs_tol=1e-12)


def test_differential_entropy_is_negative_below_one_over_sqrt_two_pi_e():
    # h = log(sigma sqrt(2 pi e)) is 0 exactly at sigma = 1 / sqrt(2 pi e) = 0.2420
    s0 = 1 / math.sqrt(2 * math.pi * math.e)
    h = differential_entropy(torch.tensor([0.1, s0, 1.0], dtype=torch.float64))
    assert h[0] < 0 and abs(h[1].item()) < 1e-15 and h[2] > 0
    # scaling by a shifts it by log a: h(aX) = h(X) + log a (no such law when
    # discrete)
    for a in (0.5, 10.0):
        diff = differential_entropy(torch.tensor(a * 0.3)) - differential_entropy(
            0.3
        )
        assert math.isclose(diff.item(), math.log(a), rel_tol=1e-6)


def test_differential_entropy_in_bits():
    # standard normal: 0.5 log2(2 pi e) = 2.0471 bits
    h = differential_entropy(torch.tensor(1.0, dtype=torch.float64), base=2).item()
    assert math.isclose(h, 0.5 * math.log2(2 * math.pi * math.e), rel_tol=1e-14)


def test_multivariate_differential_entropy_matches_scipy():
    rng = np.random.default_rng(0)
    for d in (1, 2, 5):
        a = rng.normal(size=(d, d))
        cov = a @ a.T + 0.1 * np.eye(d)
        h = differential_entropy(covariance=torch.from_numpy(cov)).item()
        assert math.isclose(
            h, multivariate_normal(cov=cov).entropy(), rel_tol=1e-12
        )
    # a batch; a diagonal covariance is the sum of the coordinates' entropies
    diag = torch.diag_embed(
        torch.tensor([[1.0, 4.0], [0.01, 0.25]], dtype=torch.float64)
    )
    h = differential_entropy(covariance=diag)
    by_coordinate = differential_entropy(
        torch.tensor([[1.0, 2.0], [0.1, 0.5]], dtype=torch.float64)
    ).sum(-1)
    torch.testing.assert_close(h, by_coordinate, rtol=1e-14, atol=1e-14)


# --- KL divergence between Gaussians
# ---------------------------------------------------------


@given(mean, sigma, mean, sigma)
def test_gaussian_kl_matches_torch_distributions(m1, s1, m2, s2):
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    ours = gaussian_kl(t(m1), t(s1), t(m2), t(s2)).item()
    theirs = kl_divergence(Normal(t(m1), t(s1)), Normal(t(m2), t(s2))).item()
    # torch's own formula loses digits when the two are close: compare absolutely
    # there
    assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)
    assert ours >= 0


def kl_mpmath(m1, s1, m2, s2):
    mpmath.mp.dps = 50
    m1, s1, m2, s2 = (mpmath.mpf(v) for v in (m1, s1, m2, s2))
    return mpmath.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


@pytest.mark.parametrize("rel", [1e-2, 1e-4, 1e-6, 1e-8, 0.3, 0.7, 3.0])
def test_gaussian_kl_is_accurate_for_nearly_equal_gaussians(rel):
    s1, s2 = 1.7, 1.7 * (1 + rel)
    exact = float(kl_mpmath(0.0, s1, 0.0, s2))
    s1_, s2_ = (torch.tensor(v, dtype=torch.float64) for v in (s1, s2))
    ours = gaussian_kl(0.0, s1_, 0.0, s2_).item()
    assert math.isclose(ours, exact, rel_tol=1e-12)


def test_gaussian_kl_known_values_and_asymmetry():
    # (mu1 - mu2)^2 / 2 with unit variances: means 2 apart give exactly 2 nats
    assert gaussian_kl(0.0, 1.0, 2.0, 1.0).item() == 2.0
    assert gaussian_kl(1.0, 3.0, 1.0, 3.0).item() == 0.0
    # log 2 + 1/8 - 1/2 and -log 2 + 2 - 1/2: not symmetric
    a = gaussian_kl(torch.tensor(0.0, dtype=torch.float64), 1.0, 0.0, 2.0).item()
    b = gaussian_kl(torch.tensor(0.0, dtype=torch.float64), 2.0, 0.0, 1.0).item()
    assert math.isclose(a, math.log(2) + 1 / 8 - 1 / 2, rel_tol=1e-15)
    assert math.isclose(b, -math.log(2) + 2 - 1 / 2, rel_tol=1e-15)
    bits = gaussian_kl(0.0, 1.0, 2.0, 1.0, base=2).item()
    assert math.isclose(bits, 2 / math.log(2), rel_tol=1e-6)


def test_gaussian_kl_broadcasts_and_keeps_the_dtype():
    mu2 = torch.linspace(-1, 1, 5)
    kl = gaussian_kl(0.0, 1.0, mu2, torch.ones(3, 1))
    assert kl.shape == (3, 5) and kl.dtype == torch.float32
    torch.testing.assert_close(kl[0], mu2**2 / 2)
    kl64 = gaussian_kl(torch.zeros(2, dtype=torch.float64), 1.0, 0.0, 1.0)
    assert kl64.dtype == torch.float64


def test_gaussian_kl_gradcheck():
    torch.manual_seed(0)
    args = (
        torch.randn(4, dtype=torch.float64, requires_grad=True),
        (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_(),
        torch.randn(4, dtype=torch.float64, requires_grad=True),
        (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_(),
    )
    assert torch.autograd.gradcheck(gaussian_kl, args)
    # the series branch (sigma1 close to sigma2) has the right slope too
    near = (args[0], args[1], args[2], (args[1] * 1.01).detach().requires_grad_())
    assert torch.autograd.gradcheck(gaussian_kl, near)


def random_spd(d, rng):
    a = rng.normal(size=(d, d))
    return torch.from_numpy(a @ a.T + 0.2 * np.eye(d))


@pytest.mark.parametrize("d", [1, 2, 3, 6])
def test_multivariate_kl_matches_torch_distributions(d):
    rng = np.random.default_rng(d)
    for _ in range(5):
        m1, m2 = (torch.from_numpy(rng.normal(size=d)) for _ in range(2))
        c1, c2 = random_spd(d, rng), random_spd(d, rng)
        ours = multivariate_gaussian_kl(m1, c1, m2, c2).item()
        theirs = kl_divergence(
            MultivariateNormal(m1, c1), MultivariateNormal(m2, c2)
        )
        assert math.isclose(ours, theirs.item(), rel_tol=1e-10)
        assert multivariate_gaussian_kl(m1, c1, m1, c1).abs().item() < 1e-12


def test_multivariate_kl_of_diagonal_gaussians_is_a_sum_of_univariate_kls():
    m1, m2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.5, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 0.5, 2.0]), torch.tensor([1.5, 0.5, 1.0])
    mv = multivariate_gaussian_kl(m1, torch.diag(s1**2), m2, torch.diag(s2**2))
    torch.testing.assert_close(mv, gaussian_kl(m1, s1, m2, s2).sum())


def test_multivariate_kl_batches_and_gradcheck():
    rng = np.random.default_rng(7)
    c = torch.stack([random_spd(2, rng) for _ in range(3)])
    m = torch.from_numpy(rng.normal(size=(3, 2)))
    kl = multivariate_gaussian_kl(m, c, torch.zeros(2, dtype=torch.float64), c[0])
    assert (
        kl.shape == (3,)
        and abs(kl[0].item() - 0.5 * (m[0] @ torch.linalg.solve(c[0], m[0])).item())
        < 1e-12
    )
    m1 = m[0].clone().requires_grad_()
    a = torch.from_numpy(rng.normal(size=(2, 2))).requires_grad_()

    def f(mu, a):
        return multivariate_gaussian_kl(mu, a @ a.mT + torch.eye(2), m[1], c[1])

    assert torch.autograd.gradcheck(f, (m1, a))


# --- bad input
# -------------------------------------------------------------------------------


def test_errors():
    with pytest.raises(ValueError, match="exactly one of sigma"):
        differential_entropy()
    with pytest.raises(ValueError, match="exactly one of sigma"):
        differential_entropy(1.0, covariance=torch.eye(2))
    with pytest.raises(ValueError, match="standard deviations > 0; got 0"):
        differential_entropy(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="standard deviations > 0; got nan"):
        differential_entropy(torch.tensor(math.nan))
    with pytest.raises(TypeError, match="floating-point"):
        differential_entropy(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="square matrices"):
        differential_entropy(covariance=torch.ones(2, 3))
    with pytest.raises(ValueError, match="not symmetric"):
        differential_entropy(covariance=torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="not positive definite"):
        differential_entropy(covariance=torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="must be finite"):
        differential_entropy(covariance=torch.full((2, 2), math.inf))
    with pytest.raises(ValueError, match="base must be"):
        differential_entropy(1.0, base=1)
    with pytest.raises(
        ValueError, match="sigma2 must hold finite standard deviations"
    ):
        gaussian_kl(0.0, 1.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="mu1 must hold finite means"):
        gaussian_kl(math.inf, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        gaussian_kl(torch.zeros(2), 1.0, torch.zeros(3), 1.0)
    with pytest.raises(
        ValueError, match=r"mu2 has shape \(3,\), but cov1 is 2 x 2"
    ):
        multivariate_gaussian_kl(
            torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(2)
        )
    with pytest.raises(ValueError, match="cov2 has shape"):
        multivariate_gaussian_kl(
            torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(3)
        )
    with pytest.raises(ValueError, match="cov1 is not positive definite"):
        multivariate_gaussian_kl(
            torch.zeros(2), torch.zeros(2, 2), torch.zeros(2), torch.eye(2)
        )
    with pytest.raises(ValueError, match="batch shapes"):
        multivariate_gaussian_kl(
            torch.zeros(3, 2), torch.eye(2), torch.zeros(4, 2), torch.eye(2)
        )
