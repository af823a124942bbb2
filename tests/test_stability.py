"""Tests of lossnotes.stability against PyTorch, mpmath and hand-derived values."""

import math

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from lossnotes.stability import (
    log_sigmoid,
    log_sigmoid_naive,
    log_softmax,
    log_softmax_naive,
    logsumexp,
    logsumexp_naive,
    softmax,
    softmax_naive,
    softplus,
    softplus_naive,
    ulp,
    ulp_error,
)

INF = math.inf
FLOATS = [torch.float32, torch.float64]

#: the stable reductions, each with the PyTorch function it mirrors
REDUCTIONS = {
    "logsumexp": (logsumexp, torch.logsumexp),
    "softmax": (softmax, torch.softmax),
    "log_softmax": (log_softmax, torch.log_softmax),
}
ELEMENTWISE = {
    "softplus": (softplus, F.softplus),
    "log_sigmoid": (log_sigmoid, F.logsigmoid),
}
EVERY_FUNCTION = [
    logsumexp,
    logsumexp_naive,
    softmax,
    softmax_naive,
    log_softmax,
    log_softmax_naive,
    softplus,
    softplus_naive,
    log_sigmoid,
    log_sigmoid_naive,
]
WITH_DIM = [
    logsumexp,
    logsumexp_naive,
    softmax,
    softmax_naive,
    log_softmax,
    log_softmax_naive,
]

mpmath.mp.dps = 50

# logits in [-1e4, 1e4], some entries -inf (masked), rows of 1 to 6 classes
logits = arrays(
    np.float64,
    array_shapes(min_dims=2, max_dims=2, max_side=6),
    elements=st.one_of(st.floats(-1e4, 1e4), st.just(-INF)),
)
finite_logits = arrays(
    np.float64,
    array_shapes(min_dims=1, max_dims=2, max_side=6),
    elements=st.floats(-1e4, 1e4),
)


def _as64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def mp_lse(row) -> mpmath.mpf:
    return mpmath.log(mpmath.fsum(mpmath.exp(v) for v in row))


def mp_logsumexp(row) -> float:
    return float(mp_lse(row))


# --- hand-derived values ----------------------------------------------------------


def test_logsumexp_of_equal_large_logits():
    # log(2 e^1000) = 1000 + log 2, where the naive form overflows
    x = torch.tensor([1000.0, 1000.0], dtype=torch.float64)
    assert logsumexp(x).item() == pytest.approx(1000 + math.log(2), rel=1e-15)
    assert logsumexp_naive(x).item() == INF


def test_logsumexp_close_to_zero_keeps_its_digits():
    # log(1 + e^-20 + e^-30) ~ 2.06e-9: torch's log(1 + ...) in float32 gives
    # exactly 0
    x = torch.tensor([0.0, -20.0, -30.0])
    exact = torch.tensor(mp_logsumexp([0, -20, -30]), dtype=torch.float64)
    assert ulp_error(logsumexp(x), exact).item() <= 0.5
    assert torch.logsumexp(x, -1).item() == 0.0


def test_log_softmax_of_dominant_class():
    # log softmax of the top class is -log1p(e^-25) ~ -1.39e-11, not the 0 that
    # torch gives
    x = torch.tensor([25.0, 0.0])
    top = log_softmax(x)[0]
    assert top.item() == pytest.approx(-math.log1p(math.exp(-25)), rel=1e-7)
    assert torch.log_softmax(x, -1)[0].item() == 0.0


def test_softmax_of_large_logits():
    torch.testing.assert_close(
        softmax(torch.tensor([1000.0, 1000.0])), torch.tensor([0.5, 0.5])
    )
    assert softmax_naive(torch.tensor([1000.0, 1000.0])).isnan().all()


def test_softplus_and_log_sigmoid_hand_values():
    x = torch.tensor([-200.0, -20.0, 0.0, 20.0, 200.0], dtype=torch.float64)
    # softplus(-20) = log1p(e^-20); softplus(0) = log 2; softplus(200) = 200 +
    # log1p(e^-200)
    expected = [
        math.log1p(math.exp(-200)),
        math.log1p(math.exp(-20)),
        math.log(2),
        20 + math.log1p(math.exp(-20)),
        200.0,
    ]
    assert softplus(x).tolist() == pytest.approx(expected, rel=1e-15)
    assert log_sigmoid(x).tolist() == pytest.approx(
        [-v for v in reversed(expected)], rel=1e-15
    )


def test_log_one_minus_sigmoid_is_minus_softplus():
    # log(1 - sigmoid(20)) = log(sigmoid(-20)) = -softplus(20); in float32, 1 -
    # sigmoid(20) is 0
    x = torch.tensor([20.0])
    assert torch.log(1 - torch.sigmoid(x)).item() == -INF
    assert (-softplus(x)).item() == pytest.approx(-20 - math.exp(-20), rel=1e-7)
    torch.testing.assert_close(log_sigmoid(-x), -softplus(x))


# --- the naive forms fail where the chapter says they do --------------------------


def test_naive_forms_fail():
    assert log_softmax_naive(torch.tensor([-200.0, 0.0]))[0].item() == -INF
    assert softplus_naive(torch.tensor([200.0])).item() == INF
    assert (
        softplus_naive(torch.tensor([-20.0])).item() == 0.0
    )  # 1 + e^-20 rounds to 1
    assert log_sigmoid_naive(torch.tensor([-200.0])).item() == -INF
    assert log_sigmoid_naive(torch.tensor([20.0])).item() == 0.0
    assert (
        logsumexp_naive(torch.tensor([-200.0, -200.0])).item() == -INF
    )  # exp underflows


@given(
    arrays(
        np.float64,
        array_shapes(max_dims=2, max_side=6),
        elements=st.floats(-20, 20),
    )
)
def test_naive_forms_agree_on_moderate_logits(x):
    x = torch.from_numpy(x)
    pairs = [
        (logsumexp, logsumexp_naive),
        (softmax, softmax_naive),
        (log_softmax, log_softmax_naive),
        (softplus, softplus_naive),
        (log_sigmoid, log_sigmoid_naive),
    ]
    for stable, naive in pairs:
        torch.testing.assert_close(naive(x), stable(x))


# --- agreement with torch ---------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@given(x=logits, dim=st.sampled_from([0, 1, -1]))
def test_reductions_match_torch(x, dim, dtype):
    x = torch.from_numpy(x).to(dtype)
    for ours, theirs in REDUCTIONS.values():
        # torch in float64 is the accurate reference; torch in the input dtype what
        # a reader uses
        reference = theirs(x.double(), dim).to(dtype)
        torch.testing.assert_close(ours(x, dim), reference, equal_nan=True)
        torch.testing.assert_close(ours(x, dim), theirs(x, dim), equal_nan=True)


@pytest.mark.parametrize("dtype", FLOATS)
@given(
    x=arrays(
        np.float64,
        array_shapes(max_dims=3, max_side=5),
        elements=st.one_of(st.floats(-1e4, 1e4), st.sampled_from([-INF, INF])),
    )
)
def test_elementwise_match_torch(x, dtype):
    x = torch.from_numpy(x).to(dtype)
    for ours, theirs in ELEMENTWISE.values():
        torch.testing.assert_close(ours(x), theirs(x.double()).to(dtype))
        torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64]
)
def test_dtype_and_shape_are_kept(dtype):
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
    assert logsumexp(x, 1).shape == (3, 5) and logsumexp(x, 1).dtype == dtype
    for f in (softmax, log_softmax):
        assert f(x, 1).shape == x.shape and f(x, 1).dtype == dtype
    for f in (softplus, log_sigmoid):
        assert f(x).shape == x.shape and f(x).dtype == dtype


def test_zero_dimensional_input_like_torch():
    x = torch.tensor(3.0)
    for ours, theirs in REDUCTIONS.values():
        out = ours(x, -1)
        assert out.shape == () and out.item() == theirs(x, -1).item()


def test_accepts_numpy_and_lists():
    torch.testing.assert_close(logsumexp([0.0, 0.0]), torch.tensor(math.log(2)))
    torch.testing.assert_close(softmax(np.array([0.0, 0.0])), _as64([0.5, 0.5]))


# --- infinities -------------------------------------------------------------------


def test_rows_without_a_finite_maximum():
    x = torch.tensor([[-INF, -INF], [INF, 0.0], [-INF, 1.0]])
    # logsumexp: log of an empty sum, +inf, and the one finite entry, exactly as
    # torch
    assert (
        logsumexp(x).tolist() == [-INF, INF, 1.0] == torch.logsumexp(x, -1).tolist()
    )
    # softmax and log-softmax: no distribution, NaN as in torch; the masked entry
    # gets 0 / -inf
    for ours, theirs in [
        (softmax, torch.softmax),
        (log_softmax, torch.log_softmax),
    ]:
        torch.testing.assert_close(ours(x), theirs(x, -1), equal_nan=True)
        assert ours(x)[:2].isnan().all()
    assert softmax(x)[2].tolist() == [0.0, 1.0] and log_softmax(x)[2].tolist() == [
        -INF,
        0.0,
    ]


def test_softplus_and_log_sigmoid_at_infinity():
    x = torch.tensor([-INF, INF])
    assert softplus(x).tolist() == [0.0, INF]
    assert log_sigmoid(x).tolist() == [-INF, 0.0]


# --- the log-sum-exp bound (thm-lse-bound) ----------------------------------------


@given(finite_logits)
def test_logsumexp_bound(x):
    # max(x) <= LSE(x) <= max(x) + log n, in exact arithmetic; float64 rounding adds
    # an ulp or two
    x = torch.from_numpy(x)
    lse, top = logsumexp(x, -1), x.amax(-1)
    slack = 4 * torch.finfo(torch.float64).eps * lse.abs().clamp(min=1)
    assert (top <= lse + slack).all()
    assert (lse <= top + math.log(x.shape[-1]) + slack).all()


# --- gradients --------------------------------------------------------------------


def _x(*values, requires_grad=True):
    return torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)


@pytest.mark.parametrize("name", list(REDUCTIONS))
@pytest.mark.parametrize("dim", [0, -1])
def test_reduction_gradcheck(name, dim):
    ours, _ = REDUCTIONS[name]
    x = (
        torch.randn(
            3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
        )
        * 10
    )
    x[1, :2] = x[1, 2]  # a row with a three-way tie at its maximum
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ours(t, dim), (x,))
    assert torch.autograd.gradgradcheck(lambda t: ours(t, dim), (x,))


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_gradcheck(name):
    ours, _ = ELEMENTWISE[name]
    x = _x(-40.0, -3.0, -1e-3, 0.0, 1e-3, 2.0, 40.0)
    assert torch.autograd.gradcheck(ours, (x,))
    assert torch.autograd.gradgradcheck(ours, (x,))


def test_softplus_gradient_is_sigmoid_including_zero():
    x = _x(-50.0, -1.0, 0.0, 1.0, 50.0, -INF, INF)
    softplus(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.sigmoid(x.detach()))
    assert x.grad[2].item() == 0.5


@given(finite_logits.filter(lambda a: a.ndim == 2))
def test_logsumexp_gradient_is_torch_softmax(x):
    x = torch.from_numpy(x).requires_grad_(True)
    logsumexp(x, -1).sum().backward()
    torch.testing.assert_close(x.grad, torch.softmax(x.detach(), -1))


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_float32_second_backward_with_retain_graph(name):
    # the fast path writes its first gradient over the saved softmax; a second
    # backward (retain_graph=True) must give the same gradient again
    ours, theirs = REDUCTIONS[name]
    x = (
        4 * torch.randn(5, 7, generator=torch.Generator().manual_seed(8))
    ).requires_grad_()
    w = torch.randn(5, 7, generator=torch.Generator().manual_seed(9))
    w = w[:, 0] if name == "logsumexp" else w
    out = (ours(x, -1) * w).sum()
    (first,) = torch.autograd.grad(out, x, retain_graph=True)
    (second,) = torch.autograd.grad(out, x)
    (expected,) = torch.autograd.grad((theirs(x, -1) * w).sum(), x)
    torch.testing.assert_close(first, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second, expected, rtol=1e-5, atol=1e-6)


def test_logsumexp_gradient_at_ties_and_masked_entries():
    # ties share the gradient equally; a -inf entry gets exactly 0
    x = _x(5.0, 5.0, -INF)
    logsumexp(x).backward()
    g = x.grad.tolist()
    assert g[0] == g[1] and g[0] == pytest.approx(0.5, rel=1e-15) and g[2] == 0.0


@pytest.mark.parametrize("dtype", FLOATS)
def test_gradient_of_a_fully_masked_row_is_zero_and_leaves_other_rows_alone(dtype):
    x = _as64([[-INF, -INF, -INF], [1.0, 2.0, -INF]]).to(dtype).requires_grad_(True)
    # logsumexp: torch's gradient is NaN on the masked row; ours is 0
    logsumexp(x).sum().backward()
    assert x.grad[0].tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(x.grad[1], torch.softmax(x.detach()[1], -1))
    # log_softmax of the finite entries: same gradient as torch on the unmasked row
    for ours, theirs in [
        (log_softmax, torch.log_softmax),
        (softmax, torch.softmax),
    ]:
        x.grad = None
        weights = _as64([0.3, 0.7, 0.0]).to(dtype)
        (ours(x)[1] * weights).sum().backward()
        ours_grad = x.grad.clone()
        x.grad = None
        (theirs(x, -1)[1] * weights).sum().backward()
        torch.testing.assert_close(ours_grad[1], x.grad[1])
        assert ours_grad[0].tolist() == [0.0, 0.0, 0.0]  # torch's is NaN here


def test_gradient_of_a_row_holding_plus_inf_is_zero():
    # LSE(inf, 1) = inf; torch's gradient is [nan, 0], ours 0
    x = _x(INF, 1.0)
    logsumexp(x).backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_float32_gradients_match_torch():
    x = (
        30 * torch.randn(4, 7, generator=torch.Generator().manual_seed(2))
    ).requires_grad_(True)
    w = torch.randn(4, 7, generator=torch.Generator().manual_seed(3))
    for ours, theirs in REDUCTIONS.values():
        weights = w[:, 0] if ours is logsumexp else w  # one weight per output value
        (g_ours,) = torch.autograd.grad((ours(x, -1) * weights).sum(), x)
        (g_torch,) = torch.autograd.grad((theirs(x, -1) * weights).sum(), x)
        assert g_ours.dtype == torch.float32
        torch.testing.assert_close(g_ours, g_torch, rtol=1e-5, atol=1e-5)


# --- accuracy against mpmath, in float32 ulps -------------------------------------


def _float32_rows(seed: int) -> torch.Tensor:
    """Rows of 6 logits: spread at scales 1e-3..1e4, and confident rows [0, <= -20,
    ...].
    """
    g = torch.Generator().manual_seed(seed)
    spread = torch.cat(
        [s * torch.randn(8, 6, generator=g) for s in (1e-3, 1.0, 30.0, 1e4)]
    )
    confident = -(20 + 10 * torch.rand(8, 6, generator=g))
    confident[:, 0] = 0.0
    return torch.cat([spread, confident])


def _exact_reductions(x: torch.Tensor) -> dict[str, torch.Tensor]:
    rows = x.double().tolist()
    lses = [mp_lse(r) for r in rows]  # once per row, 50 digits
    return {
        "logsumexp": _as64([float(lse) for lse in lses]),
        "log_softmax": _as64(
            [[float(v - lse) for v in r] for r, lse in zip(rows, lses, strict=True)]
        ),
        "softmax": _as64(
            [
                [float(mpmath.exp(v - lse)) for v in r]
                for r, lse in zip(rows, lses, strict=True)
            ]
        ),
    }


def _confident_wide_rows(seed: int) -> torch.Tensor:
    """Rows of 300 logits 3 * randn, one in 4 with a logit raised by 25 and one in
    4 by 12, as benchmarks/functional.py makes them.
    """
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(16, 300, generator=g)
    x[::4, 7] += 25.0
    x[1::4, 11] += 12.0
    return x


@pytest.mark.parametrize("make", [_float32_rows, _confident_wide_rows])
def test_float32_fast_path_bounds(make):
    # the documented bounds of the float32 path: log-softmax below 2 ulp,
    # log-sum-exp below 1 ulp, softmax below |x_i - max x| + 5 ulp (PyTorch's
    # log-softmax and log-sum-exp are off by millions on the confident rows)
    x = make(0)
    exact = _exact_reductions(x)
    err = {
        name: ulp_error(f(x, -1), exact[name])
        for name, (f, _) in REDUCTIONS.items()
    }
    gap = (x.double() - x.double().amax(-1, keepdim=True)).abs()
    assert err["log_softmax"].max().item() < 2
    assert err["logsumexp"].max().item() < 1
    assert (err["softmax"] < gap + 5).all()
    torch_err = ulp_error(torch.log_softmax(x, -1), exact["log_softmax"])
    assert torch_err.max().item() > 1e5 > 1e3 * err["log_softmax"].max().item()


@pytest.mark.parametrize("num_classes", [2, 3, 10, 30, 100, 1000])
def test_float32_log_softmax_within_2_ulp_from_few_to_many_classes(num_classes):
    # with few classes the rounding of the one or two dominant shifted terms does
    # not average out (up to 5.5 ulp before the wider float64 fix-up); reference:
    # (x - m) - log(1 + sum_{j != k} e^{x_j - m}) in float64, each shift exact
    g = torch.Generator().manual_seed(num_classes)
    n = max(8, 20000 // num_classes)
    rows = []
    for scale in (0.1, 1.0, 3.0, 10.0):
        for boost in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0):
            x = scale * torch.randn(n, num_classes, generator=g)
            x[:, 0] += boost
            rows.append(x)
    x = torch.cat(rows)
    xd = x.double()
    m, k = xd.max(1, keepdim=True)
    rest = torch.exp(xd - m).scatter(1, k, 0.0).sum(1, keepdim=True)
    exact = (xd - m) - torch.log1p(rest)
    assert ulp_error(log_softmax(x, 1), exact).max().item() < 2


@pytest.mark.parametrize("make", [_float32_rows, _confident_wide_rows])
def test_float64_then_round_is_correctly_rounded(make):
    # dtype=torch.float64 (and logsumexp of x.double()), rounded with .float(): the
    # correctly rounded path, within 0.5 ulp
    x = make(1)
    exact = _exact_reductions(x)
    f64 = torch.float64
    results = {
        "logsumexp": logsumexp(x.double(), -1).float(),
        "log_softmax": log_softmax(x, -1, dtype=f64).float(),
        "softmax": softmax(x, -1, dtype=f64).float(),
    }
    for name, out in results.items():
        assert ulp_error(out, exact[name]).max().item() <= 0.5 + 1e-6, name


def test_float32_fixup_rows_keep_the_top_entry_digits():
    # a confident row with an inexact float32 shift (m = 30.3): log1p(s) ~ 1.2e-12
    # is summed again from float64 logits, so the top entry is within 1 ulp
    x = torch.tensor([[30.3, 3.1, -2.7, 1.9, 0.6]])
    exact = _exact_reductions(x)
    assert ulp_error(log_softmax(x), exact["log_softmax"])[0, 0].item() <= 1
    assert ulp_error(logsumexp(x), exact["logsumexp"]).item() <= 0.5 + 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_goes_through_float32(dtype):
    # computed in float32 and rounded once: within an ulp of the half-precision
    # result of the float64 computation
    x = (4 * torch.randn(6, 9, generator=torch.Generator().manual_seed(6))).to(
        dtype
    )
    for name, (ours, _) in REDUCTIONS.items():
        reference = ours(x.double(), -1).to(dtype)
        torch.testing.assert_close(ours(x, -1), reference, msg=name)


def test_float32_softplus_and_log_sigmoid_are_correctly_rounded():
    x = _float32_rows(1).flatten()
    values = x.double().tolist()
    exact_sp = _as64([float(mpmath.log1p(mpmath.exp(v))) for v in values])
    exact_ls = _as64([float(-mpmath.log1p(mpmath.exp(-v))) for v in values])
    cases = [
        (softplus, F.softplus, exact_sp),
        (log_sigmoid, F.logsigmoid, exact_ls),
    ]
    for ours, theirs, exact in cases:
        ours_err, torch_err = ulp_error(ours(x), exact), ulp_error(theirs(x), exact)
        assert ours_err.max().item() <= 0.5 + 1e-6
        assert (ours_err <= torch_err + 1e-6).all()


def test_float32_logsumexp_near_cancellation_follows_the_condition_number():
    # log-probabilities rounded to float32: LSE is ~0 by cancellation, condition
    # number kappa up to ~1e10; computing in float64 leaves an error of about kappa
    # * 2^-53, kappa * 2^-29 ulps
    g = torch.Generator().manual_seed(4)
    x = torch.log_softmax(
        1e-3 * torch.randn(40, 8, generator=g, dtype=torch.float64), -1
    ).float()
    exact = _as64([mp_logsumexp(r) for r in x.double().tolist()])
    xd = x.double()
    kappa = (torch.softmax(xd, -1) * xd.abs()).sum(-1) / exact.abs()
    ours_err = ulp_error(logsumexp(x), exact)
    assert (ours_err <= 0.5 + 2 * kappa * 2.0**-29).all()
    assert (ours_err <= ulp_error(torch.logsumexp(x, -1), exact) + 1e-6).all()
    assert ours_err[kappa <= 1e8].max().item() <= 2


# --- ulp and ulp_error ------------------------------------------------------------


def test_ulp_hand_values():
    # float32 has 24 significant bits: ulp(1) = 2^-23, ulp(2) = 2^-22, and 2^-149
    # below 2^-126
    expected = [2**-23, 2**-23, 2**-22, 2**-22, 2**-149, 2**-149]
    assert ulp([1.0, 1.999, 2.0, -3.0, 0.0, 1e-40]).tolist() == expected
    assert ulp([1.0], torch.float16).item() == 2**-10
    assert ulp([1.0], torch.bfloat16).item() == 2**-7


@given(st.floats(1e-37, 1e37))
def test_ulp_is_numpys_spacing_of_float32(y):
    # np.spacing(v) is the gap from v up to the next float32; it is ulp(v) except at
    # powers of 2
    v = np.float32(y)
    assert (
        ulp([float(v)]).item() == float(np.spacing(v))
        or math.log2(float(v)).is_integer()
    )


def test_ulp_error_hand_values():
    exact = torch.tensor([1.0, 1.0, 1 / 3, 5.0, INF, -INF], dtype=torch.float64)
    computed = torch.tensor([1.0, 1.0 + 2**-23, 1 / 3, INF, INF, -INF])
    err = ulp_error(computed, exact)
    assert err[:2].tolist() == [0.0, 1.0]
    # float32(1/3) is 1/3 rounded: 1/3 - 0.3333333432674408 ~ -9.9e-9, ulp(1/3) =
    # 2^-25
    assert err[2].item() == pytest.approx(abs(1 / 3 - 0.3333333432674408) / 2**-25)
    assert err[3:].tolist() == [INF, 0.0, 0.0]


def test_ulp_error_counts_nan_as_infinitely_wrong():
    assert ulp_error(torch.tensor([math.nan]), _as64([1.0])).item() == INF


# --- bad input --------------------------------------------------------------------


@pytest.mark.parametrize("f", EVERY_FUNCTION, ids=lambda f: f.__name__)
def test_integer_input_is_a_type_error(f):
    with pytest.raises(TypeError, match="floating-point dtype; got torch.int64"):
        f(torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="floating-point dtype; got torch.bool"):
        f(torch.tensor([True]))
    with pytest.raises(
        TypeError, match="must be a torch.Tensor, a NumPy array or a list"
    ):
        f("logits")


@pytest.mark.parametrize("f", EVERY_FUNCTION, ids=lambda f: f.__name__)
def test_empty_and_nan_input_are_value_errors(f):
    with pytest.raises(ValueError, match="x is empty"):
        f(torch.zeros(0))
    with pytest.raises(ValueError, match="x contains NaN"):
        f(torch.tensor([0.0, math.nan]))


@pytest.mark.parametrize("f", WITH_DIM, ids=lambda f: f.__name__)
def test_bad_dim(f):
    with pytest.raises(
        ValueError, match="dim=2 is out of range for x with 2 dimension"
    ):
        f(torch.zeros(2, 3), 2)
    with pytest.raises(TypeError, match="dim must be an int; got float"):
        f(torch.zeros(2, 3), 1.0)


def test_ulp_bad_input():
    with pytest.raises(TypeError, match="dtype must be one of"):
        ulp([1.0], torch.float64)
    with pytest.raises(ValueError, match="exact is empty"):
        ulp(torch.zeros(0, dtype=torch.float64))


def test_ulp_error_bad_input():
    exact = torch.tensor([1.0], dtype=torch.float64)
    with pytest.raises(
        TypeError, match="computed must be a torch.Tensor; got list"
    ):
        ulp_error([1.0], exact)
    with pytest.raises(
        TypeError, match="computed must have dtype float32, float16 or bfloat16"
    ):
        ulp_error(exact, exact)
    with pytest.raises(TypeError, match="exact must be float64"):
        ulp_error(torch.tensor([1.0]), torch.tensor([1.0]))
    with pytest.raises(
        ValueError, match=r"computed has shape \(2,\) but exact has \(1,\)"
    ):
        ulp_error(torch.tensor([1.0, 2.0]), exact)
    with pytest.raises(ValueError, match="exact contains NaN"):
        ulp_error(
            torch.tensor([1.0]), torch.tensor([math.nan], dtype=torch.float64)
        )
