"""Tests of lossnotes.info against SciPy, PyTorch, mpmath and values by hand."""

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import rel_entr
from scipy.stats import entropy as scipy_entropy

from lossnotes.info import (
    SUM_ATOL,
    cross_entropy,
    entropy,
    kl_divergence,
    sum_tolerance,
    surprisal,
)


def random_distributions(
    seed: int, n: int, k: int, dtype=torch.float64
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(n, k, generator=g, dtype=dtype), dim=-1)


distributions = (
    st.integers(1, 12)
    .flatmap(
        lambda k: st.lists(st.floats(0, 1), min_size=k, max_size=k).filter(
            lambda w: sum(w) > 1e-3
        )
    )
    .map(lambda w: torch.tensor(w, dtype=torch.float64) / sum(w))
)


# --- surprisal --------------------------------------------------------------------


def test_surprisal_hand_values():
    # fair coin: 1 bit; one face of a fair die: log2 6 bits; certain event: 0
    assert surprisal([0.5], base=2).item() == pytest.approx(1.0)
    assert surprisal([1 / 6], base=2).item() == pytest.approx(
        math.log2(6), rel=1e-6
    )
    assert surprisal([1.0]).item() == 0.0
    assert not math.copysign(1, surprisal([1.0]).item()) < 0  # +0, not -0


def test_surprisal_of_impossible_event_is_infinite():
    assert surprisal([0.0]).item() == math.inf


def test_surprisal_matches_mpmath():
    p = torch.tensor([1e-300, 1e-12, 0.3, 0.999999], dtype=torch.float64)
    expected = [float(-mpmath.log(mpmath.mpf(x))) for x in p.tolist()]
    assert surprisal(p).tolist() == pytest.approx(expected, rel=1e-15)


@given(st.floats(1e-150, 1), st.floats(1e-150, 1))  # a * b stays a normal float64
def test_surprisal_is_additive_for_independent_events(a, b):
    joint = surprisal(torch.tensor([a * b], dtype=torch.float64))
    parts = surprisal(torch.tensor([a], dtype=torch.float64)) + surprisal(
        torch.tensor([b], dtype=torch.float64)
    )
    assert joint.item() == pytest.approx(parts.item(), rel=1e-12, abs=1e-12)


def test_bits_and_nats_differ_by_ln2():
    p = torch.tensor([0.1, 0.7], dtype=torch.float64)
    assert torch.allclose(surprisal(p, base=2) * math.log(2), surprisal(p))


def test_surprisal_keeps_shape_and_dtype():
    p = torch.full((2, 3, 4), 0.5, dtype=torch.float64)
    out = surprisal(p)
    assert out.shape == p.shape and out.dtype == torch.float64


# --- entropy ----------------------------------------------------------------------


def test_entropy_source_examples():
    # uniform over 4: log2 4 = 2 bits exactly
    assert entropy([0.25, 0.25, 0.25, 0.25], base=2).item() == 2.0
    # [0.1, 0.1, 0.1, 0.7]: 0.3 log2 10 + 0.7 log2(1/0.7) = 1.3567796494470395 bits
    # (mpmath at 30 digits); the float32 list is within its rounding, the float64
    # tensor to 1e-15
    skewed = 1.3567796494470395
    assert entropy([0.1, 0.1, 0.1, 0.7], base=2).item() == pytest.approx(
        skewed, rel=1e-6
    )
    p64 = torch.tensor([0.1, 0.1, 0.1, 0.7], dtype=torch.float64)
    assert entropy(p64, base=2).item() == pytest.approx(skewed, rel=1e-15)
    with mpmath.workdps(30):
        exact = -sum(x * mpmath.log(x, 2) for x in map(mpmath.mpf, p64.tolist()))
    assert entropy(p64, base=2).item() == pytest.approx(float(exact), rel=1e-15)


def test_entropy_of_certain_outcome_is_zero():
    assert entropy([0.0, 1.0, 0.0]).item() == 0.0


@pytest.mark.parametrize("base", [None, 2, 10])
def test_entropy_matches_scipy(base):
    p = random_distributions(0, 50, 7)
    ours = entropy(p, base=base)
    theirs = scipy_entropy(p.numpy(), base=base, axis=-1)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-12)


def test_entropy_matches_torch_categorical():
    p = random_distributions(1, 50, 10)
    expected = torch.distributions.Categorical(probs=p).entropy()
    torch.testing.assert_close(entropy(p), expected)


def test_entropy_along_other_dim():
    p = random_distributions(2, 6, 5)
    torch.testing.assert_close(entropy(p.T, dim=0), entropy(p, dim=-1))


@given(distributions)
def test_entropy_between_zero_and_log_k(p):
    h = entropy(p).item()
    assert -1e-12 <= h <= math.log(p.numel()) + 1e-12


def test_uniform_is_the_maximum_over_random_distributions():
    k = 6
    p = random_distributions(3, 10_000, k)
    assert (entropy(p) < math.log(k)).all()


def test_entropy_float32_input_stays_float32():
    assert entropy(torch.tensor([0.5, 0.5])).dtype == torch.float32


def test_entropy_accepts_numpy_and_list():
    assert entropy(np.array([0.5, 0.5])).item() == pytest.approx(math.log(2))
    assert entropy([0.5, 0.5], base=2).item() == pytest.approx(1.0)


def test_entropy_gradient_matches_formula():
    # dH/dp_k = -(log p_k + 1)
    p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64, requires_grad=True)
    entropy(p).backward()
    torch.testing.assert_close(p.grad, -(torch.log(p.detach()) + 1))


# --- bad input --------------------------------------------------------------------


#: Values no probability can take, and the words the error must use.
NOT_PROBABILITIES = [
    ([0.5, -0.1, 0.6], "negative value"),
    ([1.5, 0.0], "above 1"),
    ([0.5, float("nan")], "NaN"),
    ([0.5, float("inf")], "inf"),
]


@pytest.mark.parametrize("fn", [surprisal, entropy])
@pytest.mark.parametrize("bad, message", NOT_PROBABILITIES + [([], "empty")])
def test_bad_probabilities_are_rejected(fn, bad, message):
    with pytest.raises(ValueError, match=message):
        fn(bad)


def test_entropy_rejects_distribution_that_does_not_sum_to_one():
    with pytest.raises(ValueError, match="does not sum to 1"):
        entropy([0.2, 0.2, 0.2])


def test_entropy_tolerance_is_as_documented():
    entropy(torch.tensor([0.5, 0.5 + SUM_ATOL / 2], dtype=torch.float64))
    with pytest.raises(ValueError, match="does not sum to 1"):
        entropy(torch.tensor([0.5, 0.5 + 2 * SUM_ATOL], dtype=torch.float64))


@pytest.mark.parametrize("fn", [surprisal, entropy])
@pytest.mark.parametrize("base", [0, -2, 1, float("inf"), float("nan")])
def test_bad_base_is_rejected(fn, base):
    with pytest.raises(
        ValueError, match="base must be a positive real number other than 1"
    ):
        fn([0.5, 0.5], base=base)


@pytest.mark.parametrize("fn", [surprisal, entropy])
def test_non_numeric_base_is_a_type_error(fn):
    with pytest.raises(TypeError, match="base must be"):
        fn([0.5, 0.5], base="2")


@pytest.mark.parametrize("fn", [surprisal, entropy])
def test_integer_tensor_is_a_type_error(fn):
    with pytest.raises(TypeError, match="floating-point dtype"):
        fn(torch.tensor([0, 1]))


@pytest.mark.parametrize("fn", [surprisal, entropy])
def test_unsupported_type_is_a_type_error(fn):
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        fn("0.5")


def test_entropy_rejects_bad_dim():
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        entropy([[0.5, 0.5]], dim=2)


# --- cross-entropy and KL divergence ----------------------------------------------

pairs = (
    st.integers(1, 12)
    .flatmap(
        lambda k: st.tuples(
            *[
                st.lists(st.floats(0, 1), min_size=k, max_size=k).filter(
                    lambda w: sum(w) > 1e-3
                )
            ]
            * 2
        )
    )
    .map(
        lambda ws: tuple(torch.tensor(w, dtype=torch.float64) / sum(w) for w in ws)
    )
)


def test_source_table_by_hand():
    # the 3-sample table of the source posts: targets are classes 2, 1, 0, so the
    # losses are
    # -ln 0.7, -ln 0.4, -ln 0.1 and their mean is 1.19185 nats
    predicted = torch.tensor(
        [[0.1, 0.2, 0.7], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]], dtype=torch.float64
    )
    one_hot = torch.tensor(
        [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64
    )
    by_hand = [-math.log(0.7), -math.log(0.4), -math.log(0.1)]
    assert cross_entropy(one_hot, predicted).tolist() == pytest.approx(
        by_hand, rel=1e-15
    )
    assert kl_divergence(one_hot, predicted).tolist() == pytest.approx(
        by_hand, rel=1e-15
    )
    assert cross_entropy(one_hot, predicted).mean().item() == pytest.approx(
        1.19185, abs=1e-5
    )


def test_skewed_lottery_against_uniform_by_hand():
    # coding the skewed lottery with the uniform code: H(p, u) = log2 4 = 2 bits
    # exactly, and KL(p || u) = 2 - H(p) = 2 - 1.3568 bits
    p = [0.1, 0.1, 0.1, 0.7]
    assert cross_entropy(p, [0.25] * 4, base=2).item() == pytest.approx(
        2.0, rel=1e-7
    )
    h = 3 * 0.1 * math.log2(10) + 0.7 * math.log2(1 / 0.7)
    assert kl_divergence(p, [0.25] * 4, base=2).item() == pytest.approx(
        2 - h, rel=1e-6
    )


@pytest.mark.parametrize("base", [None, 2, 10])
def test_kl_and_cross_entropy_match_scipy(base):
    p, q = random_distributions(10, 50, 7), random_distributions(11, 50, 7)
    np.testing.assert_allclose(
        kl_divergence(p, q, base=base).numpy(),
        scipy_entropy(p.numpy(), q.numpy(), base=base, axis=-1),
        rtol=1e-12,
    )
    scale = 1.0 if base is None else math.log(base)
    np.testing.assert_allclose(
        kl_divergence(p, q, base=base).numpy(),
        rel_entr(p.numpy(), q.numpy()).sum(-1) / scale,
        rtol=1e-12,
    )
    expected_ce = scipy_entropy(p.numpy(), base=base, axis=-1) + scipy_entropy(
        p.numpy(), q.numpy(), base=base, axis=-1
    )
    np.testing.assert_allclose(
        cross_entropy(p, q, base=base).numpy(), expected_ce, rtol=1e-12
    )


def test_kl_matches_torch_distributions():
    p, q = random_distributions(12, 50, 10), random_distributions(13, 50, 10)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Categorical(probs=p),
        torch.distributions.Categorical(probs=q),
    )
    torch.testing.assert_close(kl_divergence(p, q), expected)


def test_cross_entropy_matches_torch_soft_targets():
    # F.cross_entropy with probability targets computes -sum p log softmax(x); with
    # x = log q that is H(p, q)
    p, q = random_distributions(14, 50, 6), random_distributions(15, 50, 6)
    expected = torch.nn.functional.cross_entropy(q.log(), p, reduction="none")
    torch.testing.assert_close(cross_entropy(p, q), expected)


def test_kl_matches_mpmath_when_q_is_close_to_p():
    # KL is about 1e-6 / (2 * 0.21) = 2.4e-6 here, far below the two entropies it
    # separates
    p = torch.tensor([0.3, 0.7], dtype=torch.float64)
    q = torch.tensor([0.301, 0.699], dtype=torch.float64)
    with mpmath.workdps(50):
        expected = float(
            sum(
                mpmath.mpf(a) * mpmath.log(mpmath.mpf(a) / mpmath.mpf(b))
                for a, b in zip(p.tolist(), q.tolist(), strict=True)
            )
        )
    assert kl_divergence(p, q).item() == pytest.approx(expected, rel=1e-9)


def test_subnormal_q_gives_a_finite_kl():
    # -log(1e-310) = 713.8 nats: large but finite; a ratio p / q would overflow to
    # inf
    q = torch.tensor([1e-310, 1 - 1e-310], dtype=torch.float64)
    p = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert kl_divergence(p, q).item() == pytest.approx(-math.log(1e-310), rel=1e-12)
    assert cross_entropy(p, q).item() == pytest.approx(-math.log(1e-310), rel=1e-12)


def test_support_mismatch_is_infinite():
    # p > 0 where q = 0: +inf; the other way round only p = 0 terms, which count 0
    p, q = [0.5, 0.5, 0.0], [0.5, 0.0, 0.5]
    assert kl_divergence(p, q).item() == math.inf
    assert cross_entropy(p, q).item() == math.inf
    assert kl_divergence([1.0, 0.0], [0.5, 0.5]).item() == pytest.approx(
        math.log(2)
    )
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]).item() == math.inf


def test_zero_probability_terms_count_zero_even_where_q_is_zero():
    # 0 log(0 / q) = 0 and 0 log q = 0, also for q = 0: the third outcome changes
    # nothing
    p3, q3 = [0.25, 0.75, 0.0], [0.5, 0.5, 0.0]
    assert kl_divergence(p3, q3).item() == pytest.approx(
        kl_divergence([0.25, 0.75], [0.5, 0.5]).item()
    )
    assert cross_entropy(p3, q3).item() == pytest.approx(math.log(2))


def test_kl_of_a_distribution_with_itself_is_exactly_zero():
    p = random_distributions(16, 20, 5)
    assert (kl_divergence(p, p) == 0).all()


def test_one_hot_cross_entropy_equals_kl():
    q = random_distributions(17, 30, 4)
    one_hot = torch.nn.functional.one_hot(torch.arange(30) % 4, 4).double()
    torch.testing.assert_close(cross_entropy(one_hot, q), kl_divergence(one_hot, q))


def test_kl_is_not_symmetric():
    p, q = [0.5, 0.5], [0.9, 0.1]
    # by hand: 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = 0.5108; 0.9 ln 1.8 + 0.1 ln 0.2 =
    # 0.3681
    assert kl_divergence(p, q).item() == pytest.approx(
        0.5 * math.log(5 / 9) + 0.5 * math.log(5), rel=1e-6
    )
    assert kl_divergence(q, p).item() == pytest.approx(
        0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=1e-6
    )


def test_broadcasting_one_p_against_a_batch_of_q():
    p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    q = random_distributions(18, 8, 3)
    torch.testing.assert_close(
        kl_divergence(p, q), kl_divergence(p.expand(8, 3), q)
    )
    torch.testing.assert_close(
        cross_entropy(q, p), cross_entropy(q, p.expand(8, 3))
    )


def test_along_other_dim():
    p, q = random_distributions(19, 6, 5), random_distributions(20, 6, 5)
    torch.testing.assert_close(kl_divergence(p.T, q.T, dim=0), kl_divergence(p, q))
    torch.testing.assert_close(cross_entropy(p.T, q.T, dim=0), cross_entropy(p, q))


def test_gradients_with_respect_to_q():
    # dH(p, q)/dq_k = dKL/dq_k = -p_k / q_k, and 0 where p_k = 0 (even where q_k =
    # 0)
    p = torch.tensor([0.0, 0.0, 0.3, 0.7], dtype=torch.float64)
    for fn in (cross_entropy, kl_divergence):
        q = torch.tensor(
            [0.0, 0.2, 0.4, 0.4], dtype=torch.float64, requires_grad=True
        )
        fn(p, q).backward()
        torch.testing.assert_close(
            q.grad, torch.tensor([0.0, 0.0, -0.75, -1.75], dtype=torch.float64)
        )


def test_cross_entropy_gradient_with_respect_to_p():
    # dH(p, q)/dp_k = -log q_k, also where p_k = 0 (a learnable target, as in
    # distillation)
    p = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    cross_entropy(p, q).backward()
    torch.testing.assert_close(p.grad, -torch.log(q))


def test_gradcheck_in_q():
    # moderate probabilities: finite differences of log q are poor for q near 1e-5
    g = torch.Generator().manual_seed(21)
    p = torch.softmax(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1)
    q = torch.softmax(
        torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1
    ).requires_grad_()
    assert torch.autograd.gradcheck(lambda q: kl_divergence(p, q), (q,))
    assert torch.autograd.gradcheck(lambda q: cross_entropy(p, q), (q,))


@given(pairs)
def test_gibbs_inequality(pq):
    p, q = pq
    assert kl_divergence(p, q).item() >= -1e-12
    assert kl_divergence(p, p).item() == 0.0


@given(pairs)
def test_cross_entropy_is_entropy_plus_kl(pq):
    p, q = pq
    ce, h, kl = (
        cross_entropy(p, q).item(),
        entropy(p).item(),
        kl_divergence(p, q).item(),
    )
    if math.isinf(kl):
        assert math.isinf(ce)
    else:
        assert ce == pytest.approx(h + kl, rel=1e-9, abs=1e-12)


@given(distributions)
def test_uniform_maximises_entropy_through_kl(p):
    # H(p) = log K - KL(p || u)
    k = p.numel()
    u = torch.full((k,), 1 / k, dtype=torch.float64)
    assert entropy(p).item() == pytest.approx(
        math.log(k) - kl_divergence(p, u).item(), rel=1e-9, abs=1e-12
    )


def test_many_random_pairs_have_positive_kl():
    p, q = random_distributions(23, 10_000, 5), random_distributions(24, 10_000, 5)
    assert (kl_divergence(p, q) > 0).all()


@pytest.mark.parametrize("fn", [cross_entropy, kl_divergence])
@pytest.mark.parametrize("which", ["p", "q"])
@pytest.mark.parametrize(
    "bad, message", NOT_PROBABILITIES + [([0.2, 0.2, 0.2], "does not sum to 1")]
)
def test_pair_rejects_bad_distributions(fn, which, bad, message):
    good = [1 / len(bad)] * len(bad)
    args = (bad, good) if which == "p" else (good, bad)
    with pytest.raises(ValueError, match=f"^{which} .*{message}"):
        fn(*args)


@pytest.mark.parametrize("fn", [cross_entropy, kl_divergence])
def test_pair_rejects_empty(fn):
    with pytest.raises(ValueError, match="q is empty"):
        fn([0.5, 0.5], [])


@pytest.mark.parametrize("fn", [cross_entropy, kl_divergence])
def test_shapes_that_do_not_broadcast_are_rejected(fn):
    with pytest.raises(
        ValueError,
        match=r"p has shape \(3,\) and q has shape \(2, 4\); expected equal shapes",
    ):
        fn([0.2, 0.3, 0.5], torch.full((2, 4), 0.25))


@pytest.mark.parametrize("fn", [cross_entropy, kl_divergence])
def test_broadcast_along_the_outcome_dim_is_checked(fn):
    # p of shape (2, 1) is [[1], [1]]; broadcast against 3 outcomes it sums to 3,
    # not 1
    with pytest.raises(ValueError, match="p does not sum to 1"):
        fn(torch.ones(2, 1), torch.full((2, 3), 1 / 3))


@pytest.mark.parametrize("fn", [cross_entropy, kl_divergence])
def test_pair_rejects_bad_dim(fn):
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        fn([[0.5, 0.5]], [[0.5, 0.5]], dim=2)
    with pytest.raises(TypeError, match="dim must be an int"):
        fn([0.5, 0.5], [0.5, 0.5], dim=1.0)


@pytest.mark.parametrize("fn", [cross_entropy, kl_divergence])
@pytest.mark.parametrize("base", [0, -2, 1, float("inf"), float("nan")])
def test_pair_rejects_bad_base(fn, base):
    with pytest.raises(
        ValueError, match="base must be a positive real number other than 1"
    ):
        fn([0.5, 0.5], [0.5, 0.5], base=base)


@pytest.mark.parametrize("fn", [cross_entropy, kl_divergence])
def test_pair_type_errors(fn):
    with pytest.raises(TypeError, match="base must be"):
        fn([0.5, 0.5], [0.5, 0.5], base="2")
    with pytest.raises(TypeError, match="q must have a floating-point dtype"):
        fn([1.0, 0.0], torch.tensor([1, 0]))
    with pytest.raises(TypeError, match="p must be a torch.Tensor"):
        fn("0.5", [1.0])


# --- half precision (issue 12) ----------------------------------------------------


def test_sum_tolerance_values():
    # float32/float64: the documented floor; float16: 2 * 2^-10 + k * 2^-24 (its
    # smallest subnormal); bfloat16: 2 * 2^-7, its subnormals being negligible
    assert sum_tolerance(torch.float64, 1000) == SUM_ATOL
    assert sum_tolerance(torch.float32, 32_000) == SUM_ATOL
    assert sum_tolerance(torch.float16, 10) == 2 * 2**-10 + 10 * 2**-24
    assert sum_tolerance(torch.float16, 50_000) == 2 * 2**-10 + 50_000 * 2**-24
    assert sum_tolerance(torch.bfloat16, 10) == pytest.approx(2 * 2**-7, rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("k", [2, 10, 1000, 50_000])
def test_low_precision_softmax_is_accepted(dtype, k):
    g = torch.Generator().manual_seed(k)
    x = 4 * torch.randn(k, generator=g, dtype=torch.float64)
    reference = entropy(torch.softmax(x, 0))
    for p in (torch.softmax(x.float(), 0).to(dtype), torch.softmax(x.to(dtype), 0)):
        h = entropy(p)
        assert h.dtype == dtype
        # the entropy of the rounded distribution, itself rounded: a few eps of log
        # k
        eps = torch.finfo(dtype).eps
        assert h.item() == pytest.approx(
            reference.item(), abs=8 * eps * math.log(k) + eps
        )
        q = torch.full((k,), 1 / k, dtype=dtype)
        assert torch.isfinite(kl_divergence(p, q)) and torch.isfinite(
            cross_entropy(p, q)
        )
        assert kl_divergence(p, q).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_tolerance_still_rejects(dtype):
    # off by 0.05, beyond 2 eps of either dtype (0.002 and 0.016)
    bad = torch.tensor([0.5, 0.55], dtype=dtype)
    with pytest.raises(ValueError, match="does not sum to 1"):
        entropy(bad)
    with pytest.raises(ValueError, match="p does not sum to 1"):
        kl_divergence(bad, torch.tensor([0.5, 0.5], dtype=dtype))


def test_float32_tolerance_is_unchanged():
    # a float32 sum off by 2e-5 is still rejected: the low-precision allowance is
    # per dtype
    with pytest.raises(ValueError, match="does not sum to 1"):
        entropy(torch.tensor([0.5, 0.50002], dtype=torch.float32))


# --- gradients where p = 0 (issue 12) ---------------------------------------------


def test_entropy_gradient_is_zero_where_p_is_zero():
    # dH/dp_k = -(log p_k + 1) where p_k > 0; the 0 log 0 term has gradient 0
    # (documented)
    for dtype in (torch.float32, torch.float64):
        p = torch.tensor([0.0, 1.0, 0.0], dtype=dtype, requires_grad=True)
        entropy(p).backward()
        torch.testing.assert_close(
            p.grad, torch.tensor([0.0, -1.0, 0.0], dtype=dtype)
        )
    p = torch.tensor([0.0, 0.25, 0.75], dtype=torch.float64, requires_grad=True)
    entropy(p, base=2).backward()
    expected = [
        0.0,
        -(math.log(0.25) + 1) / math.log(2),
        -(math.log(0.75) + 1) / math.log(2),
    ]
    assert p.grad.tolist() == pytest.approx(expected, rel=1e-15)


def test_kl_gradient_in_p_where_p_is_zero():
    # where p_k > 0: log(p_k / q_k) + 1; where p_k = 0: -log q_k, the cross-
    # entropy's gradient; where p_k = q_k = 0: 0
    p = torch.tensor([0.0, 0.0, 0.4, 0.6], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0.2, 0.0, 0.5, 0.3], dtype=torch.float64)
    kl_divergence(p, q).backward()
    expected = [-math.log(0.2), 0.0, math.log(0.8) + 1, math.log(2) + 1]
    assert p.grad.tolist() == pytest.approx(expected, rel=1e-15)


def test_kl_gradient_is_cross_entropy_minus_entropy_gradient():
    one_hot = torch.nn.functional.one_hot(torch.arange(6) % 3, 3).double()
    q = random_distributions(25, 6, 3)
    grads = []
    for fn in (kl_divergence, cross_entropy, lambda p, q: entropy(p)):
        p = one_hot.clone().requires_grad_()
        fn(p, q).sum().backward()
        grads.append(p.grad)
    assert all(torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(grads[0], grads[1] - grads[2])


def test_entropy_through_an_underflowed_softmax_has_its_limit_gradient():
    # softmax([0, -200]) is exactly [1, 0] in float32; dH/dz_j = -p_j (log p_j + H)
    # tends to 0, which float64 (where p_1 = e^-200 does not underflow) confirms to
    # 1e-80
    z = torch.tensor([0.0, -200.0], requires_grad=True)
    p = torch.softmax(z, 0)
    assert p[1].item() == 0.0
    entropy(p).backward()
    assert torch.equal(z.grad, torch.zeros(2))
    z64 = torch.tensor([0.0, -200.0], dtype=torch.float64, requires_grad=True)
    entropy(torch.softmax(z64, 0)).backward()
    assert z64.grad.abs().max().item() < 1e-80


def test_gradcheck_entropy_and_kl_in_p():
    g = torch.Generator().manual_seed(26)
    p = torch.softmax(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1)
    q = torch.softmax(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1)
    p.requires_grad_()
    assert torch.autograd.gradcheck(entropy, (p,))
    assert torch.autograd.gradcheck(lambda p: kl_divergence(p, q), (p,))
