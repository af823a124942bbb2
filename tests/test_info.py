"""Tests of lossnotes.info against SciPy, PyTorch, mpmath and values derived by hand."""

import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import entropy as scipy_entropy

from lossnotes.info import SUM_ATOL, entropy, surprisal


def random_distributions(seed: int, n: int, k: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(n, k, generator=g, dtype=dtype), dim=-1)


distributions = st.integers(1, 12).flatmap(
    lambda k: st.lists(st.floats(0, 1), min_size=k, max_size=k).filter(lambda w: sum(w) > 1e-3)
).map(lambda w: torch.tensor(w, dtype=torch.float64) / sum(w))


# --- surprisal --------------------------------------------------------------------------------


def test_surprisal_hand_values():
    # fair coin: 1 bit; one face of a fair die: log2 6 bits; certain event: 0
    assert surprisal([0.5], base=2).item() == pytest.approx(1.0)
    assert surprisal([1 / 6], base=2).item() == pytest.approx(math.log2(6), rel=1e-6)
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
    parts = surprisal(torch.tensor([a], dtype=torch.float64)) + surprisal(torch.tensor([b], dtype=torch.float64))
    assert joint.item() == pytest.approx(parts.item(), rel=1e-12, abs=1e-12)


def test_bits_and_nats_differ_by_ln2():
    p = torch.tensor([0.1, 0.7], dtype=torch.float64)
    assert torch.allclose(surprisal(p, base=2) * math.log(2), surprisal(p))


def test_surprisal_keeps_shape_and_dtype():
    p = torch.full((2, 3, 4), 0.5, dtype=torch.float64)
    out = surprisal(p)
    assert out.shape == p.shape and out.dtype == torch.float64


# --- entropy ----------------------------------------------------------------------------------


def test_entropy_source_examples():
    # uniform over 4: log2 4 = 2 bits exactly
    assert entropy([0.25, 0.25, 0.25, 0.25], base=2).item() == 2.0
    # [0.1, 0.1, 0.1, 0.7]: 3 * 0.1 * log2 10 + 0.7 * log2(1/0.7), by hand 1.3568 bits
    skewed = 3 * 0.1 * math.log2(10) + 0.7 * math.log2(1 / 0.7)
    assert entropy([0.1, 0.1, 0.1, 0.7], base=2).item() == pytest.approx(skewed, rel=1e-6)
    assert skewed == pytest.approx(1.3568, abs=1e-4)


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


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [surprisal, entropy])
@pytest.mark.parametrize(
    "bad, message",
    [
        ([0.5, -0.1, 0.6], "negative value"),
        ([1.5, 0.0], "above 1"),
        ([0.5, float("nan")], "NaN"),
        ([0.5, float("inf")], "inf"),
        ([], "empty"),
    ],
)
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
    with pytest.raises(ValueError, match="base must be a positive real number other than 1"):
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
