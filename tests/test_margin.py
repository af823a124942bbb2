"""Tests of lossnotes.functional's margin losses against torch and sklearn.

``soft_margin_loss``, ``multi_margin_loss`` and ``hinge_embedding_loss`` are
compared with PyTorch in value and gradient over random shapes and options in
float32 and float64 (hypothesis), on the margin itself (where PyTorch's gradient
conventions differ between the losses), where PyTorch overflows, with ``gradcheck``
in float64, and on every promised error; ``hinge_loss``, which PyTorch lacks, with
scikit-learn and with ``multi_margin_loss``.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import hinge_loss as sklearn_hinge_loss

from lossnotes.functional import (
    binary_cross_entropy_with_logits,
    hinge_embedding_loss,
    hinge_loss,
    multi_margin_loss,
    soft_margin_loss,
)

FLOATS = [torch.float32, torch.float64]
REDUCTIONS = ["none", "mean", "sum"]
RTOL = {torch.float32: 2e-5, torch.float64: 1e-12}
ATOL = {torch.float32: 1e-5, torch.float64: 1e-12}

score = st.one_of(st.floats(-30, 30), st.sampled_from([0.0, 1.0, -1.0, 0.5]))


def value_and_grads(fn, tensors):
    """``fn(*tensors)`` and its gradients, the output contracted with 1, 2, ..."""
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    g = torch.arange(1, out.numel() + 1, dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * g).sum(), leaves)
    return out.detach(), grads


def check_against_torch(ours, theirs, x, dtype, scale=1.0):
    v1, (g1,) = value_and_grads(ours, [x])
    v2, (g2,) = value_and_grads(theirs, [x])
    assert v1.dtype == v2.dtype and v1.shape == v2.shape
    torch.testing.assert_close(v1, v2, rtol=RTOL[dtype], atol=ATOL[dtype] * scale)
    weight = max(v1.numel(), 1)
    torch.testing.assert_close(
        g1, g2, rtol=RTOL[dtype], atol=ATOL[dtype] * scale * weight
    )


@st.composite
def signed_case(draw):
    """Scores of a random shape and dtype, and labels -1 or 1 of the same shape."""
    dtype = draw(st.sampled_from(FLOATS))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    x = np.asarray(draw(arrays(np.float64, shape, elements=score)))
    y = np.asarray(
        draw(arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0])))
    )
    return torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype), dtype


@given(signed_case(), st.sampled_from(REDUCTIONS))
def test_soft_margin_loss_matches_torch(case, reduction):
    x, y, dtype = case
    check_against_torch(
        lambda a: soft_margin_loss(a, y, reduction=reduction),
        lambda a: F.soft_margin_loss(a, y, reduction=reduction),
        x,
        dtype,
        scale=30,
    )


@given(
    signed_case(),
    st.sampled_from(REDUCTIONS),
    st.sampled_from([1.0, 0.0, 2.0, -0.5]) | st.floats(-5, 5),
)
def test_hinge_embedding_loss_matches_torch(case, reduction, margin):
    x, y, dtype = case
    check_against_torch(
        lambda a: hinge_embedding_loss(a, y, margin=margin, reduction=reduction),
        lambda a: F.hinge_embedding_loss(a, y, margin=margin, reduction=reduction),
        x,
        dtype,
        scale=35,
    )


@st.composite
def multi_case(draw):
    dtype = draw(st.sampled_from(FLOATS))
    c = draw(st.integers(1, 5))
    batched = draw(st.booleans())
    n = draw(st.integers(1, 4)) if batched else None
    shape = (n, c) if batched else (c,)
    x = torch.from_numpy(draw(arrays(np.float64, shape, elements=score))).to(dtype)
    t_shape = (n,) if batched else ()
    t = np.asarray(draw(arrays(np.int64, t_shape, elements=st.integers(0, c - 1))))
    w = draw(st.none() | arrays(np.float64, (c,), elements=st.floats(0, 3)))
    w = None if w is None else torch.from_numpy(w).to(dtype)
    return x, torch.from_numpy(t), w, dtype


@given(
    multi_case(),
    st.sampled_from([1, 2]),
    st.sampled_from([1.0, 0.0, 0.5, -1.0]) | st.floats(-3, 3),
    st.sampled_from(REDUCTIONS),
)
def test_multi_margin_loss_matches_torch(case, p, margin, reduction):
    x, t, w, dtype = case
    opts = {"p": p, "margin": margin, "weight": w, "reduction": reduction}
    check_against_torch(
        lambda a: multi_margin_loss(a, t, **opts),
        lambda a: F.multi_margin_loss(a, t, **opts),
        x,
        dtype,
        scale=3 * 65**2,
    )


# --- edge cases
# -------------------------------------------------------------------------


def test_gradients_on_the_margin_follow_torch():
    # multi_margin: a term exactly on the margin has slope 0 (PyTorch tests z > 0)
    x = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([1])
    check_against_torch(
        lambda a: multi_margin_loss(a, t),
        lambda a: F.multi_margin_loss(a, t),
        x,
        torch.float64,
    )
    # hinge_embedding: a dissimilar pair exactly at the margin has slope -1 (clamp's
    # gradient at its bound is 1)
    d, y = torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0])
    check_against_torch(
        lambda a: hinge_embedding_loss(a, y, reduction="sum"),
        lambda a: F.hinge_embedding_loss(a, y, reduction="sum"),
        d,
        torch.float32,
    )
    _, (g,) = value_and_grads(
        lambda a: hinge_embedding_loss(a, y, reduction="sum"), [d]
    )
    assert g.tolist() == [1.0, -1.0]  # d/dx of x and of max(0, 1 - x) at x = 1


def test_multi_margin_weight_multiplies_after_the_power():
    # one sample, C = 2, true class 0 with weight 3: term max(0, 1 - 0 + 1)^2 = 4,
    # so
    # 3 * 4 / 2 = 6 (PyTorch's code); the documented max(0, 3 * 2)^2 / 2 would give
    # 18
    x, t = torch.tensor([[0.0, 1.0]]), torch.tensor([0])
    w = torch.tensor([3.0, 1.0])
    assert multi_margin_loss(x, t, p=2, weight=w).item() == 6.0
    assert F.multi_margin_loss(x, t, p=2, weight=w).item() == 6.0


def test_soft_margin_stays_finite_where_torch_overflows():
    # float32: exp(100) overflows, so PyTorch gives inf and a NaN gradient; the loss
    # is
    # log(1 + e^100) = 100 + log(1 + e^-100) = 100 to float32's precision, its slope
    # -1
    x = torch.tensor([-100.0], requires_grad=True)
    y = torch.tensor([1.0])
    loss = soft_margin_loss(x, y)
    loss.backward()
    assert loss.item() == 100.0 and x.grad.item() == -1.0
    x2 = x.detach().clone().requires_grad_()
    theirs = F.soft_margin_loss(x2, y)
    theirs.backward()
    assert math.isinf(theirs.item()) and math.isnan(x2.grad.item())


@given(signed_case())
def test_soft_margin_is_bce_with_logits_on_zero_one_labels(case):
    x, y, dtype = case
    ours = soft_margin_loss(x, y, reduction="none")
    bce = binary_cross_entropy_with_logits(x, (1 + y) / 2, reduction="none")
    torch.testing.assert_close(ours, bce, rtol=RTOL[dtype], atol=ATOL[dtype])
    theirs = F.binary_cross_entropy_with_logits(x, (1 + y) / 2, reduction="none")
    torch.testing.assert_close(ours, theirs, rtol=RTOL[dtype], atol=ATOL[dtype])


@given(signed_case(), st.floats(-2, 2))
def test_hinge_loss_matches_sklearn_and_by_hand(case, margin):
    x, y, dtype = case
    x64, y64 = x.double(), y.double()
    # sklearn's binary hinge, the mean of max(0, 1 - y x), needs both labels present
    xs = torch.cat([x64.reshape(-1), x64.new_tensor([0.3, 0.3])])
    ys = torch.cat([y64.reshape(-1), y64.new_tensor([-1.0, 1.0])])
    expected = sklearn_hinge_loss(ys.numpy(), xs.numpy())
    assert math.isclose(hinge_loss(xs, ys).item(), expected, rel_tol=1e-12)
    by_hand = torch.clamp(margin - y64 * x64, min=0)
    got = hinge_loss(x, y, margin=margin, reduction="none")
    torch.testing.assert_close(got, by_hand.to(dtype), rtol=RTOL[dtype], atol=1e-5)
    got2 = hinge_loss(x, y, margin=margin, p=2, reduction="none")
    torch.testing.assert_close(
        got2, (by_hand**2).to(dtype), rtol=RTOL[dtype], atol=1e-3
    )


def test_hinge_loss_is_twice_multi_margin_on_two_columns():
    torch.manual_seed(0)
    x = torch.randn(20, dtype=torch.float64)
    y = torch.where(torch.rand(20) < 0.5, -1.0, 1.0).double()
    two = torch.stack([torch.zeros_like(x), x], dim=1)
    t = ((y + 1) / 2).long()
    for p in (1, 2):
        mm = F.multi_margin_loss(two, t, p=p, reduction="none")
        torch.testing.assert_close(hinge_loss(x, y, p=p, reduction="none"), 2 * mm)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_float64(reduction):
    torch.manual_seed(2)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.where(torch.rand(4, 3) < 0.5, -1.0, 1.0).double()
    t = torch.tensor([0, 2, 1, 2])
    w = torch.rand(3, dtype=torch.float64) + 0.1
    r = {"reduction": reduction}
    for fn in [
        lambda a: soft_margin_loss(a, y, **r),
        lambda a: hinge_embedding_loss(a, y, margin=0.5, **r),
        lambda a: hinge_loss(a, y, p=2, **r),
        lambda a: multi_margin_loss(a, t, p=2, margin=0.7, weight=w, **r),
        lambda a: multi_margin_loss(a, t, **r),
    ]:
        assert torch.autograd.gradcheck(fn, (x,))


# --- the API and bad input
# --------------------------------------------------------------


def test_options_are_keyword_only():
    x, y = torch.ones(2), torch.ones(2)
    # F.soft_margin_loss(x, y, "sum") binds "sum" to the deprecated size_average
    for fn in (soft_margin_loss, hinge_embedding_loss, hinge_loss):
        with pytest.raises(TypeError, match="positional"):
            fn(x, y, "sum")
    with pytest.raises(TypeError, match="positional"):
        multi_margin_loss(torch.ones(2, 3), torch.tensor([0, 1]), 2)


def test_signed_label_errors():
    x = torch.zeros(3)
    for fn in (soft_margin_loss, hinge_embedding_loss, hinge_loss):
        with pytest.raises(ValueError, match="labels -1 or 1; got 0"):
            fn(x, torch.tensor([1.0, 0.0, 1.0]))
        with pytest.raises(ValueError, match="must be the same"):
            fn(x, torch.ones(2))
        with pytest.raises(ValueError, match="input contains NaN"):
            fn(torch.full((3,), math.nan), torch.ones(3))
        with pytest.raises(ValueError, match="reduction must be one of"):
            fn(x, torch.ones(3), reduction="batchmean")
        with pytest.raises(TypeError, match="floating-point"):
            fn(x, torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="margin must be a finite number"):
        hinge_embedding_loss(x, torch.ones(3), margin=math.inf)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        hinge_loss(x, torch.ones(3), p=3)


def test_multi_margin_errors():
    x, t = torch.zeros(2, 3), torch.tensor([0, 2])
    with pytest.raises(ValueError, match=r"shape \(N, C\) or \(C\)"):
        multi_margin_loss(torch.zeros(2, 3, 4), t)
    with pytest.raises(TypeError, match="integer dtype"):
        multi_margin_loss(x, t.float())
    with pytest.raises(TypeError, match="torch.Tensor of class indices"):
        multi_margin_loss(x, [0, 2])
    with pytest.raises(ValueError, match=r"need shape \(2,\)"):
        multi_margin_loss(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="class 3 but input has only 3 classes"):
        multi_margin_loss(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="class -100"):
        multi_margin_loss(x, torch.tensor([0, -100]))  # no ignore_index here
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        multi_margin_loss(x, t, p=3)
    with pytest.raises(TypeError, match="p must be an int"):
        multi_margin_loss(x, t, p=1.0)
    with pytest.raises(ValueError, match="one weight per class"):
        multi_margin_loss(x, t, weight=torch.ones(2))
    with pytest.raises(ValueError, match="weight must be finite and >= 0"):
        multi_margin_loss(x, t, weight=-torch.ones(3))
    with pytest.raises(ValueError, match="input contains NaN"):
        multi_margin_loss(torch.full((2, 3), math.nan), t)
