"""Tests of lossnotes.functional's regression losses against torch.nn.functional.

Each loss is compared with the PyTorch function it mirrors, in value and in the
gradient with respect to every tensor argument, over random shapes, options and
reductions in float32 and float64 (hypothesis), on the edge cases PyTorch documents
(the Huber and smooth-L1 thresholds, ``beta = 0``, the ``eps`` clamp of
``gaussian_nll_loss`` and its variance shapes), with ``gradcheck`` in float64, and
on every promised error.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lossnotes.functional import (
    gaussian_nll_loss,
    huber_loss,
    l1_loss,
    mse_loss,
    smooth_l1_loss,
)

FLOATS = [torch.float32, torch.float64]
REDUCTIONS = ["none", "mean", "sum"]
RTOL = {torch.float32: 2e-5, torch.float64: 1e-12}
ATOL = {torch.float32: 1e-5, torch.float64: 1e-12}

value = st.one_of(st.floats(-100, 100), st.sampled_from([0.0, 1.0, -1.0, 0.5]))


def value_and_grads(fn, tensors):
    """``fn(*tensors)`` and its gradients, the output contracted with 1, 2, ..."""
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    g = torch.arange(1, out.numel() + 1, dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * g).sum(), leaves, allow_unused=True)
    return out.detach(), grads


def check_against_torch(ours, theirs, tensors, dtype, scale=1.0):
    v1, g1 = value_and_grads(ours, tensors)
    v2, g2 = value_and_grads(theirs, tensors)
    assert v1.dtype == v2.dtype and v1.shape == v2.shape
    tol = {"rtol": RTOL[dtype], "atol": ATOL[dtype] * scale}
    torch.testing.assert_close(v1, v2, **tol)
    weight = max(v1.numel(), 1)  # the largest contraction weight
    for a, b in zip(g1, g2, strict=True):
        if b is None:
            assert a is None or (a == 0).all()
            continue
        torch.testing.assert_close(
            a, b, rtol=RTOL[dtype], atol=ATOL[dtype] * scale * weight
        )


@st.composite
def pair(draw, positive_weight=False):
    """input, target (and a weight) of one random shape and dtype."""
    dtype = draw(st.sampled_from(FLOATS))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    x = torch.from_numpy(
        np.asarray(draw(arrays(np.float64, shape, elements=value)))
    )
    y = torch.from_numpy(
        np.asarray(draw(arrays(np.float64, shape, elements=value)))
    )
    low = 0.1 if positive_weight else 0.0
    w = draw(st.none() | arrays(np.float64, shape, elements=st.floats(low, 3)))
    w = None if w is None else torch.from_numpy(np.asarray(w)).to(dtype)
    return x.to(dtype), y.to(dtype), w, dtype


def scale_of(x, y):
    return float(((x - y).abs().max()) ** 2) + 1.0


# --- agreement with PyTorch
# ------------------------------------------------------------


@given(pair(positive_weight=True), st.sampled_from(REDUCTIONS))
def test_mse_loss_matches_torch(case, reduction):
    x, y, w, dtype = case
    check_against_torch(
        lambda a, b: mse_loss(a, b, reduction=reduction, weight=w),
        lambda a, b: F.mse_loss(a, b, reduction=reduction, weight=w),
        [x, y],
        dtype,
        scale_of(x, y) * (1 if w is None else float(w.max())),
    )


@given(pair(positive_weight=True), st.sampled_from(REDUCTIONS))
def test_l1_loss_matches_torch(case, reduction):
    x, y, w, dtype = case
    check_against_torch(
        lambda a, b: l1_loss(a, b, reduction=reduction, weight=w),
        lambda a, b: F.l1_loss(a, b, reduction=reduction, weight=w),
        [x, y],
        dtype,
        scale_of(x, y),
    )


@given(
    pair(),
    st.sampled_from(REDUCTIONS),
    st.sampled_from([1.0, 0.5, 2.0]) | st.floats(1e-3, 50),
)
def test_huber_loss_matches_torch(case, reduction, delta):
    x, y, w, dtype = case
    check_against_torch(
        lambda a, b: huber_loss(a, b, reduction=reduction, delta=delta, weight=w),
        lambda a, b: F.huber_loss(a, b, reduction=reduction, delta=delta, weight=w),
        [x, y],
        dtype,
        scale_of(x, y) * 3 * (1 + delta),
    )


@given(
    pair(),
    st.sampled_from(REDUCTIONS),
    st.sampled_from([0.0, 1.0, 0.5, 2.0]) | st.floats(1e-3, 50),
)
def test_smooth_l1_loss_matches_torch(case, reduction, beta):
    x, y, _, dtype = case
    check_against_torch(
        lambda a, b: smooth_l1_loss(a, b, reduction=reduction, beta=beta),
        lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
        [x, y],
        dtype,
        scale_of(x, y) / max(beta, 1e-3),
    )


@st.composite
def gaussian_case(draw):
    """input, target and var in one of the variance shapes PyTorch accepts."""
    dtype = draw(st.sampled_from(FLOATS))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    x = torch.from_numpy(
        draw(arrays(np.float64, shape, elements=st.floats(-10, 10)))
    )
    y = torch.from_numpy(
        draw(arrays(np.float64, shape, elements=st.floats(-10, 10)))
    )
    kind = draw(st.sampled_from(["same", "last", "one", "float"]))
    variance = st.floats(1e-3, 10) | st.sampled_from([0.0, 1e-8, 1e-6])
    if kind == "float":
        return x.to(dtype), y.to(dtype), draw(variance), dtype
    if kind == "same":
        vshape = shape
    elif kind == "last":
        vshape = shape[:-1]
    else:
        d = draw(st.integers(0, len(shape) - 1))
        vshape = tuple(1 if i == d else n for i, n in enumerate(shape))
    v = torch.from_numpy(
        np.asarray(draw(arrays(np.float64, vshape, elements=variance)))
    )
    return x.to(dtype), y.to(dtype), v.to(dtype), dtype


@given(
    gaussian_case(),
    st.booleans(),
    st.sampled_from([1e-6, 1e-3, 0.1]),
    st.sampled_from(REDUCTIONS),
)
def test_gaussian_nll_loss_matches_torch(case, full, eps, reduction):
    x, y, v, dtype = case
    opts = {"full": full, "eps": eps, "reduction": reduction}
    if isinstance(v, float):
        tensors = [x, y]
        ours = lambda a, b: gaussian_nll_loss(a, b, v, **opts)  # noqa: E731
        theirs = lambda a, b: F.gaussian_nll_loss(a, b, v, **opts)  # noqa: E731
    else:
        tensors = [x, y, v]
        ours = lambda a, b, c: gaussian_nll_loss(a, b, c, **opts)  # noqa: E731
        theirs = lambda a, b, c: F.gaussian_nll_loss(a, b, c, **opts)  # noqa: E731
    # the loss is as large as 400 / eps; its gradient in var as large as 400 / eps^2
    check_against_torch(ours, theirs, tensors, dtype, 400 / eps**2)


# --- the edge cases PyTorch documents
# --------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
def test_thresholds_are_where_torch_puts_them(dtype):
    # residuals exactly at, just below and just above the threshold 1, both signs
    d = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], dtype=dtype)
    d = torch.cat([d, torch.nextafter(d, d.new_tensor(0.0))])
    zero = torch.zeros_like(d)
    for ours, theirs, kw in [
        (huber_loss, F.huber_loss, {"delta": 1.0}),
        (smooth_l1_loss, F.smooth_l1_loss, {"beta": 1.0}),
    ]:
        check_against_torch(
            lambda a, ours=ours, kw=kw: ours(a, zero, reduction="none", **kw),
            lambda a, theirs=theirs, kw=kw: theirs(a, zero, reduction="none", **kw),
            [d],
            dtype,
        )
    # by hand: huber(2) = 1 * (2 - 1/2) = 1.5, huber(0.5) = 0.125
    expected = torch.tensor([1.5, 0.5, 0.125, 0.0, 0.125, 0.5, 1.5], dtype=dtype)
    torch.testing.assert_close(
        huber_loss(d[:7], zero[:7], reduction="none"), expected
    )


@given(
    arrays(np.float64, (6,), elements=value),
    st.floats(1e-3, 20),
)
def test_huber_is_delta_times_smooth_l1(x, delta):
    # the one relation between the two parameterisations: huber_delta = delta *
    # sl1_delta
    x = torch.from_numpy(x)
    zero = torch.zeros(6, dtype=torch.float64)
    h = huber_loss(x, zero, delta=delta, reduction="none")
    s = smooth_l1_loss(x, zero, beta=delta, reduction="none")
    torch.testing.assert_close(h, delta * s, rtol=1e-12, atol=1e-12)


def test_smooth_l1_with_beta_zero_is_l1():
    x = torch.tensor([-3.0, 0.0, 0.25, 7.0], dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.float64)
    assert torch.equal(smooth_l1_loss(x, y, beta=0.0), l1_loss(x, y))
    assert torch.equal(smooth_l1_loss(x, y, beta=0.0), F.l1_loss(x, y))


def test_l1_gradient_at_zero_residual_is_zero_as_in_torch():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    l1_loss(x, torch.zeros(3, dtype=torch.float64)).backward()
    assert torch.equal(x.grad, torch.zeros(3, dtype=torch.float64))


def test_mse_is_gaussian_nll_with_fixed_variance():
    # -log N(y; x, s^2) = (x - y)^2 / (2 s^2) + log(2 pi s^2) / 2, summed
    torch.manual_seed(0)
    x, y = (
        torch.randn(50, dtype=torch.float64),
        torch.randn(50, dtype=torch.float64),
    )
    s2 = 0.7
    nll = gaussian_nll_loss(x, y, s2, full=True, reduction="sum")
    by_hand = mse_loss(x, y, reduction="sum") / (2 * s2) + 25 * math.log(
        2 * math.pi * s2
    )
    assert math.isclose(nll.item(), by_hand, rel_tol=1e-13)
    normal = torch.distributions.Normal(x, math.sqrt(s2))
    assert math.isclose(nll.item(), -normal.log_prob(y).sum().item(), rel_tol=1e-13)


def test_gaussian_nll_eps_clamp_value_and_straight_through_gradient():
    # var below eps: the value uses eps, the gradient is the formula's at eps,
    # passed
    # through to var (not 0): d/dv 0.5 (log v + r^2 / v) = 0.5 (1 / v - r^2 / v^2)
    # at eps
    x = torch.tensor([0.1, 0.2], dtype=torch.float64)
    v = torch.tensor([1e-8, 0.5], dtype=torch.float64, requires_grad=True)
    loss = gaussian_nll_loss(
        x, torch.zeros(2, dtype=torch.float64), v, reduction="sum"
    )
    loss.backward()
    eps = 1e-6
    expected = 0.5 * (math.log(eps) + 0.01 / eps) + 0.5 * (
        math.log(0.5) + 0.04 / 0.5
    )
    assert math.isclose(loss.item(), expected, rel_tol=1e-14)
    assert math.isclose(
        v.grad[0].item(), 0.5 * (1 / eps - 0.01 / eps**2), rel_tol=1e-12
    )
    v2 = v.detach().clone().requires_grad_()
    F.gaussian_nll_loss(
        x, torch.zeros(2, dtype=torch.float64), v2, reduction="sum"
    ).backward()
    torch.testing.assert_close(v.grad, v2.grad, rtol=1e-14, atol=0)


def test_gaussian_nll_full_adds_half_log_two_pi():
    x, y = torch.zeros(3), torch.ones(3)
    v = torch.ones(3)
    diff = gaussian_nll_loss(x, y, v, full=True) - gaussian_nll_loss(x, y, v)
    assert math.isclose(diff.item(), 0.5 * math.log(2 * math.pi), rel_tol=1e-6)


def test_huber_weighted_mean_divides_by_count_mse_by_weight_sum():
    # PyTorch's two conventions, kept: mse/l1 divide by sum(w), huber by the count
    x, y = torch.tensor([1.0, 3.0]), torch.zeros(2)
    w = torch.tensor([1.0, 3.0])
    assert math.isclose(mse_loss(x, y, weight=w).item(), (1 + 27) / 4)
    assert math.isclose(huber_loss(x, y, weight=w).item(), (0.5 + 3 * 2.5) / 2)
    assert math.isclose(F.huber_loss(x, y, weight=w).item(), (0.5 + 3 * 2.5) / 2)


def test_result_dtype_follows_torch():
    a, b = torch.ones(3), torch.zeros(3, dtype=torch.float64)
    for ours, theirs in [
        (mse_loss, F.mse_loss),
        (l1_loss, F.l1_loss),
        (smooth_l1_loss, F.smooth_l1_loss),
        (huber_loss, F.huber_loss),
    ]:
        assert ours(a, b).dtype == theirs(a, b).dtype
        assert ours(b, a).dtype == theirs(b, a).dtype


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_float64(reduction):
    torch.manual_seed(1)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, 4, dtype=torch.float64) + 0.1
    v = (torch.rand(3, 4, dtype=torch.float64) + 0.1).requires_grad_()
    r = {"reduction": reduction}
    checks = [
        (lambda a, b: mse_loss(a, b, weight=w, **r), (x, y)),
        (lambda a, b: l1_loss(a, b, weight=w, **r), (x, y)),
        (lambda a, b: huber_loss(a, b, delta=0.7, **r), (x, y)),
        (lambda a, b: smooth_l1_loss(a, b, beta=0.7, **r), (x, y)),
        (lambda a, b, c: gaussian_nll_loss(a, b, c, full=True, **r), (x, y, v)),
    ]
    for fn, args in checks:
        assert torch.autograd.gradcheck(fn, args)


# --- the API: positional arguments can never bind differently from torch
# -----------------


def test_options_are_keyword_only():
    x, y = torch.ones(2), torch.zeros(2)
    # F.mse_loss(x, y, "sum") would bind "sum" to the deprecated size_average
    for fn in (mse_loss, l1_loss, smooth_l1_loss, huber_loss):
        with pytest.raises(TypeError, match="positional"):
            fn(x, y, "sum")
    with pytest.raises(TypeError, match="positional"):
        gaussian_nll_loss(x, y, torch.ones(2), True)


# --- bad input
# --------------------------------------------------------------------------


def test_errors():
    x, y = torch.ones(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="must be the same"):
        mse_loss(x, torch.zeros(3))
    with pytest.raises(TypeError, match="floating-point"):
        l1_loss(x, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="input contains NaN"):
        mse_loss(torch.full((2,), math.nan), torch.zeros(2))
    with pytest.raises(ValueError, match="target contains NaN"):
        huber_loss(torch.zeros(2), torch.full((2,), math.nan))
    with pytest.raises(ValueError, match="reduction must be one of"):
        mse_loss(x, y, reduction="batchmean")
    with pytest.raises(ValueError, match="empty"):
        mse_loss(torch.ones(0), torch.ones(0))
    with pytest.raises(ValueError, match="weight has shape"):
        mse_loss(x, y, weight=torch.ones(3))
    with pytest.raises(ValueError, match="weight must be finite and >= 0"):
        l1_loss(x, y, weight=-torch.ones(2, 3))
    with pytest.raises(ValueError, match="weight sums to 0"):
        mse_loss(x, y, weight=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="delta must be positive"):
        huber_loss(x, y, delta=0.0)
    with pytest.raises(ValueError, match="delta must be a finite number"):
        huber_loss(x, y, delta=-1.0)
    with pytest.raises(TypeError, match="delta must be a real number"):
        huber_loss(x, y, delta="1")
    with pytest.raises(ValueError, match="beta must be a finite number"):
        smooth_l1_loss(x, y, beta=-0.5)


def test_gaussian_nll_errors():
    x, y = torch.ones(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="var must be finite and >= 0"):
        gaussian_nll_loss(x, y, -1.0)
    with pytest.raises(ValueError, match="var must be finite and >= 0"):
        gaussian_nll_loss(x, y, -torch.ones(2, 3))
    with pytest.raises(ValueError, match="var has shape"):
        gaussian_nll_loss(x, y, torch.ones(3))
    with pytest.raises(ValueError, match="var has shape"):
        gaussian_nll_loss(x, y, torch.ones(1, 1))  # two dimensions set to 1
    with pytest.raises(
        TypeError, match="var must be a torch.Tensor or a real number"
    ):
        gaussian_nll_loss(x, y, "1")
    with pytest.raises(ValueError, match="does not broadcast"):
        gaussian_nll_loss(x, torch.zeros(3, 3), 1.0)
    with pytest.raises(TypeError, match="full must be True or False"):
        gaussian_nll_loss(x, y, 1.0, full=1)
    with pytest.raises(ValueError, match="eps must be positive"):
        gaussian_nll_loss(x, y, 1.0, eps=0.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        gaussian_nll_loss(x, y, 1.0, reduction="avg")
