"""Tests of lossnotes.info on several variables: joint and conditional entropy,
mutual information.

References: tables worked by hand (Cover & Thomas's example 2.2.1 among them),
scikit-learn's ``mutual_info_score`` on counts, and the identities, with hypothesis.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import mutual_info_score

from lossnotes.info import (
    conditional_entropy,
    entropy,
    joint_entropy,
    mutual_information,
)

# Cover & Thomas (2006), example 2.2.1: rows are Y = 1..4, columns X = 1..4. By
# hand: p(x) = (1/2, 1/4, 1/8, 1/8), p(y) uniform; H(X) = 7/4, H(Y) = 2, H(X, Y) =
# 27/8, H(X | Y) = 11/8, H(Y | X) = 13/8 and I(X; Y) = 3/8 bits.
COVER_THOMAS = (
    torch.tensor(
        [
            [4, 2, 1, 1],
            [2, 4, 1, 1],
            [2, 2, 2, 2],
            [8, 0, 0, 0],
        ],
        dtype=torch.float64,
    )
    / 32
)


def test_cover_thomas_example_by_hand():
    p_yx = COVER_THOMAS
    assert joint_entropy(p_yx, base=2).item() == pytest.approx(27 / 8, rel=1e-15)
    assert conditional_entropy(p_yx, given=0, base=2).item() == pytest.approx(
        11 / 8, rel=1e-15
    )  # H(X | Y): Y is dim 0
    assert conditional_entropy(p_yx, given=1, base=2).item() == pytest.approx(
        13 / 8, rel=1e-15
    )  # H(Y | X)
    for d in (0, 1, (0,), [1]):
        assert mutual_information(p_yx, d, base=2).item() == pytest.approx(
            3 / 8, rel=1e-14
        )


def test_small_table_by_hand():
    # rows x, columns y: X uniform; given X = 0, Y = 0 surely; given X = 1, Y is a
    # fair coin. H(X, Y) = 1.5 bits, H(Y | X) = 0.5 bits, p(y) = (3/4, 1/4) so H(Y)
    # = 2 - (3/4) log2 3 = 0.8112781244591328 bits and I = H(Y) - H(Y | X)
    p = [[0.5, 0.0], [0.25, 0.25]]
    h_y = 2 - 0.75 * math.log2(3)
    assert joint_entropy(p, base=2).item() == pytest.approx(1.5, rel=1e-7)
    assert conditional_entropy(p, given=0, base=2).item() == pytest.approx(
        0.5, rel=1e-7
    )
    assert conditional_entropy(p, given=1, base=2).item() == pytest.approx(
        1.5 - h_y, rel=1e-6
    )
    assert mutual_information(p, base=2).item() == pytest.approx(
        h_y - 0.5, rel=1e-6
    )


@pytest.mark.parametrize("flip", [0.0, 0.01, 0.11, 0.5])
def test_binary_symmetric_channel(flip):
    # uniform X through a channel that flips it with probability f: I = 1 - h(f)
    # bits
    f = flip
    p = torch.tensor([[1 - f, f], [f, 1 - f]], dtype=torch.float64) / 2
    h_f = 0.0 if f == 0 else -(f * math.log2(f) + (1 - f) * math.log2(1 - f))
    assert mutual_information(p, base=2).item() == pytest.approx(1 - h_f, abs=1e-15)


def test_copy_and_independence_extremes():
    # Y = X: I = H(X) and H(X | Y) = 0; independent: I = 0 exactly here (dyadic
    # numbers)
    p_x = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    copy = torch.diag(p_x)
    assert mutual_information(copy).item() == pytest.approx(
        entropy(p_x).item(), 1e-15
    )
    assert conditional_entropy(copy, given=1).item() == 0.0
    independent = torch.outer(
        p_x, torch.tensor([0.125, 0.875], dtype=torch.float64)
    )
    assert mutual_information(independent).item() == 0.0


def test_matches_sklearn_mutual_info_score_on_counts():
    rng = np.random.default_rng(0)
    for shape in [(2, 2), (3, 7), (10, 17)]:
        counts = rng.integers(0, 30, size=shape).astype(np.float64)
        expected = mutual_info_score(None, None, contingency=counts)  # nats
        ours = mutual_information(torch.from_numpy(counts / counts.sum()))
        assert ours.item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_matches_sklearn_on_labels():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, 500)
    b = (a + rng.integers(0, 3, 500)) % 6
    counts = np.zeros((5, 6))
    np.add.at(counts, (a, b), 1)
    ours = mutual_information(torch.from_numpy(counts / 500), base=2)
    assert ours.item() == pytest.approx(
        mutual_info_score(a, b) / math.log(2), rel=1e-12
    )


def test_keeps_dtype_and_accepts_lists_and_arrays():
    p = [[0.25, 0.25], [0.25, 0.25]]
    assert mutual_information(p).dtype == torch.float32
    assert joint_entropy(np.array(p)).dtype == torch.float64
    assert (
        conditional_entropy(torch.tensor(p).half(), given=0).dtype == torch.float16
    )
    h = joint_entropy(torch.softmax(torch.randn(100), 0).bfloat16().reshape(10, 10))
    assert h.dtype == torch.bfloat16


def test_conditioning_on_nothing_and_on_everything():
    p = COVER_THOMAS
    assert conditional_entropy(p, given=()).item() == pytest.approx(
        joint_entropy(p).item(), rel=1e-15
    )
    assert conditional_entropy(p, given=(0, 1)).item() == 0.0


def test_three_variables_by_hand():
    # X, Y fair coins, independent; Z = X xor Y. Pairwise independent: I(X; Y) =
    # I(X; Z) = 0, but given Z, Y determines X: I(X; Y | Z) = 1 bit, and H(X, Y | Z)
    # = 1 bit
    p = torch.zeros(2, 2, 2, dtype=torch.float64)
    for x in (0, 1):
        for y in (0, 1):
            p[x, y, x ^ y] = 0.25
    assert mutual_information(p.sum(2), base=2).item() == 0.0
    assert mutual_information(p.sum(1), base=2).item() == 0.0
    assert mutual_information(p, 0, given=2, base=2).item() == pytest.approx(1.0)
    assert mutual_information(p, (0, 1), base=2).item() == pytest.approx(
        1.0
    )  # I(XY; Z)
    assert conditional_entropy(p, given=2, base=2).item() == pytest.approx(1.0)


# --- identities, with hypothesis --------------------------------------------------


def tables(min_dims=2, max_dims=3):
    return (
        st.lists(st.integers(1, 4), min_size=min_dims, max_size=max_dims)
        .flatmap(
            lambda shape: (
                st.lists(
                    st.floats(0, 1),
                    min_size=math.prod(shape),
                    max_size=math.prod(shape),
                )
                .filter(lambda w: sum(w) > 1e-3)
                .map(lambda w, shape=shape: torch.tensor(w).double().reshape(shape))
            )
        )
        .map(lambda t: t / t.sum())
    )


def close(a, b):
    return a.item() == pytest.approx(b.item(), rel=1e-9, abs=1e-12)


@given(tables(2, 2))
def test_chain_rule(p):
    # H(X, Y) = H(X) + H(Y | X) = H(Y) + H(X | Y)
    h_x, h_y = entropy(p.sum(1)), entropy(p.sum(0))
    assert close(joint_entropy(p), h_x + conditional_entropy(p, given=0))
    assert close(joint_entropy(p), h_y + conditional_entropy(p, given=1))


@given(tables(2, 2))
def test_mutual_information_identities(p):
    h_x, h_y, h_xy = entropy(p.sum(1)), entropy(p.sum(0)), joint_entropy(p)
    i = mutual_information(p)
    assert i.item() >= 0
    assert close(i, mutual_information(p, 1))  # symmetric
    assert close(i, mutual_information(p.T))
    assert close(i, h_x - conditional_entropy(p, given=1))  # H(X) - H(X | Y)
    assert close(i, h_x + h_y - h_xy)
    assert conditional_entropy(p, given=1).item() <= h_x.item() + 1e-12


@given(tables(2, 2), tables(2, 2))
def test_independent_variables_share_no_information(a, b):
    # the outer product of two marginals is an independent joint table
    p_x, p_y = a.sum(1), b.sum(0)
    assert mutual_information(torch.outer(p_x, p_y)).item() == pytest.approx(
        0.0, abs=1e-12
    )


@given(tables(3, 3))
def test_chain_rule_for_mutual_information(p):
    # I(X; Y, Z) = I(X; Z) + I(X; Y | Z), and conditional mutual information is >= 0
    i_cond = mutual_information(p, 0, given=2)
    assert i_cond.item() >= 0
    assert close(mutual_information(p, 0), mutual_information(p.sum(1), 0) + i_cond)
    # I(X; Y | Z) = H(X | Z) + H(Y | Z) - H(X, Y | Z)
    h = conditional_entropy(p.sum(1), given=1) + conditional_entropy(
        p.sum(0), given=1
    )
    assert close(i_cond, h - conditional_entropy(p, given=2))


@given(tables(2, 2), st.integers(1, 4), st.randoms(use_true_random=False))
def test_data_processing_inequality(p_xy, k, rnd):
    # X -> Y -> Z with Z drawn from a channel p(z | y): I(X; Z) <= I(X; Y)
    channel = torch.tensor(
        [[rnd.random() + 1e-3 for _ in range(k)] for _ in range(p_xy.shape[1])],
        dtype=torch.float64,
    )
    channel = channel / channel.sum(1, keepdim=True)
    p_xz = p_xy @ channel
    assert (
        mutual_information(p_xz).item() <= mutual_information(p_xy).item() + 1e-12
    )


# --- gradients --------------------------------------------------------------------


def test_gradcheck():
    g = torch.Generator().manual_seed(2)
    p = torch.softmax(torch.randn(12, generator=g, dtype=torch.float64), 0)
    p = p.reshape(2, 3, 2).requires_grad_()
    assert torch.autograd.gradcheck(joint_entropy, (p,))
    assert torch.autograd.gradcheck(lambda t: conditional_entropy(t, given=2), (p,))
    assert torch.autograd.gradcheck(lambda t: mutual_information(t, 0), (p,))
    assert torch.autograd.gradcheck(
        lambda t: mutual_information(t, 0, given=1), (p,)
    )


def test_mutual_information_gradient_by_hand():
    # dI/dp(x, y) = log(p(x, y) / (p(x) p(y))) - 1 for a table with no zero
    p = COVER_THOMAS[:3, 1:].clone()
    p = (p / p.sum()).requires_grad_()
    mutual_information(p).backward()
    t = p.detach()
    expected = torch.log(t / (t.sum(1, keepdim=True) * t.sum(0, keepdim=True))) - 1
    torch.testing.assert_close(p.grad, expected)


def test_gradients_are_finite_where_cells_are_zero():
    for fn in (
        joint_entropy,
        lambda t: conditional_entropy(t, given=1),
        mutual_information,
    ):
        p = COVER_THOMAS.clone().requires_grad_()
        fn(p).backward()
        assert torch.isfinite(p.grad).all()


# --- bad input --------------------------------------------------------------------

FUNCTIONS = [
    joint_entropy,
    lambda p, **kw: conditional_entropy(p, given=0, **kw),
    mutual_information,
]


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize(
    "bad, message",
    [
        ([[0.5, -0.1], [0.3, 0.3]], "negative value"),
        ([[1.5, 0.0], [0.0, 0.0]], "above 1"),
        ([[0.5, float("nan")], [0.25, 0.25]], "NaN"),
        ([[0.5, float("inf")], [0.25, 0.25]], "inf"),
        ([[0.2, 0.2], [0.2, 0.2]], "does not sum to 1 over all its entries"),
        ([], "empty"),
    ],
)
def test_bad_tables_are_rejected(fn, bad, message):
    with pytest.raises(ValueError, match=message):
        fn(bad)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_scalar_table_is_rejected(fn):
    with pytest.raises(ValueError, match="p_xy is a scalar"):
        fn(torch.tensor(1.0))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_type_errors(fn):
    with pytest.raises(TypeError, match="floating-point dtype"):
        fn(torch.tensor([[1, 0], [0, 0]]))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        fn("0.5")
    with pytest.raises(TypeError, match="base must be"):
        fn([[0.5, 0.5]], base="2")


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_bad_base(fn):
    with pytest.raises(ValueError, match="base must be a positive real number"):
        fn([[0.5, 0.5]], base=1)


def test_conditional_entropy_bad_given():
    p = [[0.25, 0.25], [0.25, 0.25]]
    with pytest.raises(
        ValueError, match=r"given=2 is out of range for p_xy with 2"
    ):
        conditional_entropy(p, given=2)
    with pytest.raises(
        ValueError, match=r"given=\(0, -2\) names the same dimension"
    ):
        conditional_entropy(p, given=(0, -2))
    with pytest.raises(TypeError, match="given must be an int or a tuple of ints"):
        conditional_entropy(p, given=1.0)
    with pytest.raises(TypeError, match="given must be an int or a tuple of ints"):
        conditional_entropy(p, given=(True,))
    with pytest.raises(TypeError, match="given"):
        conditional_entropy(p)  # keyword-only and required


def test_mutual_information_bad_dims():
    p = torch.full((2, 2, 2), 1 / 8)
    with pytest.raises(ValueError, match="mutual information needs at least two"):
        mutual_information([0.5, 0.5])
    with pytest.raises(ValueError, match=r"dim=3 is out of range"):
        mutual_information(p, 3)
    with pytest.raises(ValueError, match=r"dim=\(\) names no dimension for X"):
        mutual_information(p, ())
    with pytest.raises(ValueError, match="share a dimension"):
        mutual_information(p, 0, given=(0, 1))
    with pytest.raises(ValueError, match="leave no dimension of p_xy for Y"):
        mutual_information(p, (0, 1), given=2)
    with pytest.raises(TypeError, match="dim must be an int or a tuple of ints"):
        mutual_information(p, "0")
