"""Tests of lossnotes.functional, part I (chapters 8-9), against
torch.nn.functional.

Every function is compared with the PyTorch function it mirrors, in value and in
gradient, over random shapes, options, reductions and logits up to +-1e4, in float32
and float64; the gradients are also checked against finite differences with
``torch.autograd.gradcheck``.
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
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    nll_loss,
)
from lossnotes.stability import ulp_error

FLOATS = [torch.float32, torch.float64]
REDUCTIONS = ["none", "mean", "sum"]
# relative accuracy asked of a result, per dtype (float32 results are compared with
# PyTorch's own float32 arithmetic, whose rounding errors are what this allows for)
TOL = {torch.float32: 2e-5, torch.float64: 1e-11}
# absolute accuracy, as a fraction of the largest quantity involved: a few units in
# the last place of the dtype (float32: 1.2e-7, float64: 2.2e-16)
ABS = {torch.float32: 1e-6, torch.float64: 1e-14}

# logits: mostly moderate, some extreme (+-1e4), some exactly 0 (ties)
logit = st.one_of(st.floats(-30, 30), st.sampled_from([-1e4, 1e4, 0.0]))
# probabilities: anywhere in [0, 1], the ends included
probability = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0]))


# --- helpers ----------------------------------------------------------------------


def assert_close(ours, theirs, dtype, scale=1.0):
    """Equal up to the rounding of ``dtype`` in quantities of size ``scale`` (NaN ==
    NaN).
    """
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    torch.testing.assert_close(
        ours, theirs, rtol=TOL[dtype], atol=ABS[dtype] * (1 + scale), equal_nan=True
    )


def value_and_grads(fn, tensors, *args, **kwargs):
    """``fn(*tensors, *args, **kwargs)`` and its gradients w.r.t. ``tensors``.

    The gradient is of the output contracted with fixed weights 1, 2, 3, ... (not
    just summed), so that a mistake in one element of an unreduced loss cannot hide
    behind the others.
    """
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves, *args, **kwargs)
    g = torch.arange(1, out.numel() + 1, dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * g).sum(), leaves, allow_unused=True)
    return out.detach(), grads


def check_against_torch(ours, theirs, tensors, dtype, scale, grad_scale=1.0):
    """``ours`` and ``theirs`` agree in value and in every gradient.

    ``scale`` is the size of the largest quantity in the value, ``grad_scale`` the
    factor by which a weighted mean can enlarge the intermediate gradients over the
    final ones.
    """
    v1, g1 = value_and_grads(ours, tensors)
    v2, g2 = value_and_grads(theirs, tensors)
    contraction = (
        math.prod(v1.shape) if v1.dim() else 1
    )  # the largest contraction weight
    assert_close(v1, v2, dtype, scale)
    for a, b in zip(g1, g2, strict=True):
        assert_close(a, b, dtype, contraction * grad_scale)


# --- strategies -------------------------------------------------------------------


@st.composite
def logits_case(draw):
    """Logits of shape (C), (N, C) or (N, C, d1[, d2]), as float32 or float64."""
    dtype = draw(st.sampled_from(FLOATS))
    ndim = draw(st.integers(1, 4))
    c = draw(st.integers(1, 5))
    if ndim == 1:
        shape = (c,)
    else:
        shape = (
            draw(st.integers(1, 4)),
            c,
            *(draw(st.integers(1, 3)) for _ in range(ndim - 2)),
        )
    x = torch.from_numpy(draw(arrays(np.float64, shape, elements=logit))).to(dtype)
    return x, c, dtype


@st.composite
def class_index_case(draw):
    """Logits, class indices (some equal to ignore_index), and the class-index
    options.
    """
    x, c, dtype = draw(logits_case())
    ignore_index = draw(st.sampled_from([-100, -1, 0, c - 1]))
    index_shape = x.shape[:1] + x.shape[2:] if x.dim() > 1 else ()
    target = draw(
        arrays(
            np.int64,
            index_shape,
            elements=st.one_of(st.integers(0, c - 1), st.just(ignore_index)),
        )
    )
    # a weight is 0 or at least 1e-3: a float32 weight near the smallest normal
    # number makes w * loss subnormal, and two correct implementations then differ
    # by 1e-5
    element_weight = st.just(0.0) | st.floats(1e-3, 3)
    weight = draw(st.none() | arrays(np.float64, (c,), elements=element_weight))
    options = {
        "weight": None if weight is None else torch.from_numpy(weight).to(dtype),
        "ignore_index": ignore_index,
        "reduction": draw(st.sampled_from(REDUCTIONS)),
    }
    return x, torch.from_numpy(np.asarray(target)), options, dtype


def logit_scale(x, options):
    """The size of the largest loss term: logits times the largest weight."""
    w = options.get("weight")
    return float(x.abs().max()) * (1.0 if w is None else max(1.0, float(w.max())))


def mean_amplification(target, options):
    """How much a weighted mean enlarges gradients: the largest weight over the kept
    targets' total.

    PyTorch computes the gradient of the smoothing term as a difference of
    quantities this much
    larger than the result (in float32, its rounding error grows with this ratio).
    """
    w = options.get("weight")
    if w is None or options["reduction"] != "mean":
        return 1.0
    kept = target[target != options["ignore_index"]]
    total = float(w[kept].sum()) if kept.numel() else 0.0
    return max(1.0, float(w.max()) / total) if total > 0 else 1.0


# --- agreement with PyTorch: property tests ---------------------------------------


@given(class_index_case())
def test_nll_loss_matches_torch(case):
    x, target, options, dtype = case
    log_p = torch.log_softmax(x, dim=0 if x.dim() == 1 else 1)
    scale = logit_scale(log_p.clamp(min=-3e4), options)
    check_against_torch(
        lambda lp: nll_loss(lp, target, **options),
        lambda lp: F.nll_loss(lp, target, **options),
        [log_p],
        dtype,
        scale,
    )


@given(class_index_case(), st.sampled_from([0.0, 0.1, 0.5, 1.0]) | st.floats(0, 1))
def test_cross_entropy_with_class_indices_matches_torch(case, label_smoothing):
    x, target, options, dtype = case
    options["label_smoothing"] = label_smoothing
    check_against_torch(
        lambda z: cross_entropy(z, target, **options),
        lambda z: F.cross_entropy(z, target, **options),
        [x],
        dtype,
        logit_scale(x, options),
        mean_amplification(target, options),
    )


@given(
    logits_case(),
    st.data(),
    st.sampled_from(REDUCTIONS),
    st.sampled_from([0.0, 0.1, 1.0]) | st.floats(0, 1),
)
def test_cross_entropy_with_class_probabilities_matches_torch(
    case, data, reduction, label_smoothing
):
    x, c, dtype = case
    t = torch.from_numpy(
        data.draw(arrays(np.float64, x.shape, elements=probability))
    ).to(dtype)
    weight = data.draw(
        st.none() | arrays(np.float64, (c,), elements=st.floats(0, 3))
    )
    options = {
        "weight": None if weight is None else torch.from_numpy(weight).to(dtype),
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }
    # gradients w.r.t. both the logits and the target probabilities
    check_against_torch(
        lambda z, y: cross_entropy(z, y, **options),
        lambda z, y: F.cross_entropy(z, y, **options),
        [x, t],
        dtype,
        logit_scale(x, options) * c,
    )


@st.composite
def binary_case(draw, elements):
    dtype = draw(st.sampled_from(FLOATS))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    x = torch.from_numpy(draw(arrays(np.float64, shape, elements=elements))).to(
        dtype
    )
    y = torch.from_numpy(draw(arrays(np.float64, shape, elements=probability))).to(
        dtype
    )
    # a weight of the full shape, or of its trailing part (broadcast), or none
    weight_shape = draw(
        st.sampled_from([None, shape, shape[-1:], (1,) * len(shape)])
    )
    # weights 0 or normal numbers: with a subnormal weight, the infinite slope of
    # the target at p = 0 or 1 gives inf or 0 * inf = NaN depending only on the
    # order of the products
    element_weight = st.just(0.0) | st.floats(1e-3, 3)
    weight = (
        None
        if weight_shape is None
        else draw(arrays(np.float64, weight_shape, elements=element_weight))
    )
    options = {
        "weight": None if weight is None else torch.from_numpy(weight).to(dtype),
        "reduction": draw(st.sampled_from(REDUCTIONS)),
    }
    return x, y, options, dtype


# probabilities in the open interval, where the gradient is the derivative of the
# formula, or at the ends (0 and 1), where the clamp at log = -100 and PyTorch's
# gradient floor act
@given(
    binary_case(
        st.one_of(
            st.floats(1e-6, 1 - 1e-6), st.sampled_from([0.0, 1.0, 1e-30, 0.5])
        )
    )
)
def test_binary_cross_entropy_matches_torch(case):
    p, y, options, dtype = case
    v1, g1 = value_and_grads(
        lambda a, b: binary_cross_entropy(a, b, **options), [p, y]
    )
    v2, g2 = value_and_grads(
        lambda a, b: F.binary_cross_entropy(a, b, **options), [p, y]
    )
    assert_close(
        v1, v2, dtype, 100.0 * 3
    )  # each term is at most 100 (the clamp) times a weight <= 3
    # the slopes reach 1e12 (PyTorch's floor under p(1 - p)) and the target's are
    # infinite at p = 0 or 1: compare them relatively, with an absolute tolerance
    # only for the exact zeros
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(
            a, b, rtol=TOL[dtype], atol=TOL[dtype], equal_nan=True
        )


@given(binary_case(logit), st.data())
def test_binary_cross_entropy_with_logits_matches_torch(case, data):
    x, y, options, dtype = case
    # pos_weight: none, one per element of the last dimension (labels), or a scalar
    # shape
    pw_shape = data.draw(st.sampled_from([None, x.shape[-1:], (1,), x.shape]))
    if pw_shape is not None:
        pw = data.draw(arrays(np.float64, pw_shape, elements=st.floats(0, 5)))
        options["pos_weight"] = torch.from_numpy(pw).to(dtype)
    scale = float(x.abs().max()) * 15  # logit times weight times pos_weight
    check_against_torch(
        lambda a, b: binary_cross_entropy_with_logits(a, b, **options),
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, **options),
        [x, y],
        dtype,
        scale,
    )


# --- gradients against finite differences (float64) -------------------------------


def _x(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        3 * torch.randn(*shape, generator=g, dtype=torch.float64)
    ).requires_grad_()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_class_index_gradients_pass_gradcheck(reduction):
    x = _x(4, 3, 2)
    target = torch.tensor([[0, 2], [1, -100], [2, 2], [0, 1]])
    weight = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    options = {"weight": weight, "reduction": reduction}
    assert torch.autograd.gradcheck(
        lambda z: nll_loss(torch.log_softmax(z, 1), target, **options), (x,)
    )
    assert torch.autograd.gradcheck(
        lambda z: cross_entropy(z, target, **options, label_smoothing=0.2), (x,)
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_probability_target_gradients_pass_gradcheck(reduction):
    x = _x(3, 4)
    t = torch.softmax(_x(3, 4, seed=1).detach(), dim=1).requires_grad_()
    weight = torch.tensor([0.5, 2.0, 1.0, 0.0], dtype=torch.float64)

    def fn(z, y):
        return cross_entropy(
            z, y, weight=weight, reduction=reduction, label_smoothing=0.1
        )

    assert torch.autograd.gradcheck(fn, (x, t))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_gradients_pass_gradcheck(reduction):
    x = _x(3, 4)
    p = torch.sigmoid(
        x.detach()
    ).requires_grad_()  # inside (0, 1), where the gradient is exact
    y = torch.rand(
        3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    ).requires_grad_()
    weight = torch.tensor([1.0, 0.5, 2.0, 0.0], dtype=torch.float64)
    pos_weight = torch.tensor([3.0, 1.0, 0.5, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda a, b: binary_cross_entropy(a, b, weight=weight, reduction=reduction),
        (p, y),
    )
    assert torch.autograd.gradcheck(
        lambda a, b: binary_cross_entropy_with_logits(
            a, b, weight, reduction=reduction, pos_weight=pos_weight
        ),
        (x, y),
    )


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    # d/dx_c of -log softmax(x)_y = softmax(x)_c - [c == y], per sample; the mean
    # divides by N
    x = _x(5, 4)
    target = torch.tensor([0, 3, 1, 1, 2])
    (grad,) = torch.autograd.grad(cross_entropy(x, target, reduction="sum"), x)
    expected = torch.softmax(x.detach(), dim=1) - F.one_hot(target, 4).double()
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("num_classes", [2, 3, 10, 100, 1000, 5000])
def test_cross_entropy_is_within_2_ulp_of_float64(num_classes):
    # float32 logits at several scales, with the target's logit raised by 0 to 40:
    # confident rows (loss down to 1e-17), rows near the fix-up thresholds and
    # ordinary ones. Reference: log(1 + sum_{j != y} e^{x_j - x_y}) in float64,
    # where each difference of two float32 logits is exact.
    g = torch.Generator().manual_seed(num_classes)
    n = max(8, 20000 // num_classes)
    xs, ys = [], []
    for scale in (0.1, 1.0, 3.0, 10.0):
        for boost in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 40.0):
            x = scale * torch.randn(n, num_classes, generator=g)
            y = torch.randint(0, num_classes, (n,), generator=g)
            x[torch.arange(n), y] += boost
            xs.append(x)
            ys.append(y)
    x, y = torch.cat(xs), torch.cat(ys)
    xd = x.double()
    terms = torch.exp(xd - xd.gather(1, y[:, None])).scatter(1, y[:, None], 0.0)
    exact = torch.log1p(terms.sum(1))
    ours = cross_entropy(x, y, reduction="none")
    assert ulp_error(ours, exact).max() <= 2.0


# --- PyTorch's surprising behaviours, followed ------------------------------------


def test_weighted_mean_divides_by_the_weights_of_the_targets():
    # two samples of classes 0 and 1, weights 1 and 3, per-sample losses a and b:
    # mean = (1 a + 3 b) / (1 + 3), while "none" then .mean() = (1 a + 3 b) / 2
    x = _x(2, 2)
    target = torch.tensor([0, 1])
    weight = torch.tensor([1.0, 3.0], dtype=torch.float64)
    per_sample = -torch.log_softmax(x, 1)[[0, 1], [0, 1]]
    a, b = per_sample.tolist()
    mean = cross_entropy(x, target, weight=weight).item()
    assert mean == pytest.approx((a + 3 * b) / 4, rel=1e-14)
    assert cross_entropy(
        x, target, weight=weight, reduction="none"
    ).mean().item() == pytest.approx((a + 3 * b) / 2)
    assert mean == pytest.approx(
        F.cross_entropy(x, target, weight=weight).item(), rel=1e-14
    )


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize(
    "weight", [None, torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)]
)
def test_every_target_ignored(label_smoothing, weight):
    x = _x(3, 3)
    target = torch.full((3,), -100)
    options = {"weight": weight, "label_smoothing": label_smoothing}
    mean = cross_entropy(x, target, **options)
    assert math.isnan(mean.item()) and math.isnan(
        F.cross_entropy(x, target, **options).item()
    )  # 0 / 0
    (grad,) = torch.autograd.grad(mean, x)
    assert torch.equal(
        grad, torch.zeros_like(x)
    )  # NaN in the value, but no NaN in the gradient
    assert cross_entropy(x, target, reduction="sum", **options).item() == 0.0
    assert torch.equal(
        cross_entropy(x, target, reduction="none", **options),
        torch.zeros(3, dtype=torch.float64),
    )


def test_label_smoothing_with_weight_and_ignore_index_by_hand():
    # eps = 0.3 over C = 3 classes; samples 0 and 2 count, sample 1 is ignored
    x = _x(3, 3)
    target = torch.tensor([2, -100, 0])
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    log_p = torch.log_softmax(x.detach(), 1)
    kept = [0, 2]
    total = w[2] + w[0]  # the weights of the kept targets normalise both terms
    nll = -(w[2] * log_p[0, 2] + w[0] * log_p[2, 0]) / total
    smooth = (
        -sum((w * log_p[n]).sum() for n in kept) / total
    )  # every class weighs w_c
    expected = 0.7 * nll + 0.3 / 3 * smooth
    ours = cross_entropy(x, target, weight=w, label_smoothing=0.3)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-13)
    assert ours.item() == pytest.approx(
        F.cross_entropy(x, target, weight=w, label_smoothing=0.3).item(), rel=1e-13
    )


def test_probability_targets_mean_ignores_the_weights():
    # with probabilities, "mean" divides by the number of samples (2), not by any
    # weights
    x = _x(2, 3)
    t = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    w = torch.tensor([4.0, 1.0, 1.0], dtype=torch.float64)
    log_p = torch.log_softmax(x.detach(), 1)
    expected = -(4 * log_p[0, 0] + 1 * log_p[1, 1]) / 2
    assert cross_entropy(x, t, weight=w).item() == pytest.approx(
        expected.item(), rel=1e-14
    )
    # ... so the same targets as indices give a different number: divided by 4 + 1
    assert cross_entropy(x, torch.tensor([0, 1]), weight=w).item() == pytest.approx(
        expected.item() * 2 / 5
    )


def test_one_hot_probabilities_equal_class_indices_without_weights():
    x = _x(4, 5)
    target = torch.tensor([4, 0, 2, 2])
    one_hot = F.one_hot(target, 5).double()
    for reduction in REDUCTIONS:
        torch.testing.assert_close(
            cross_entropy(x, one_hot, reduction=reduction, label_smoothing=0.2),
            cross_entropy(x, target, reduction=reduction, label_smoothing=0.2),
        )


def test_single_sample_of_shape_c():
    x = _x(5)
    assert cross_entropy(x, torch.tensor(3)).shape == ()
    for reduction in REDUCTIONS:
        for t in (torch.tensor(3), torch.softmax(x.detach(), 0)):
            torch.testing.assert_close(
                cross_entropy(x, t, reduction=reduction),
                F.cross_entropy(x, t, reduction=reduction),
            )


def test_k_dimensional_input_equals_flattened_pixels():
    # (N, C, H, W) logits and (N, H, W) classes: every pixel is a sample
    x = _x(2, 4, 3, 5)
    target = torch.randint(
        0, 4, (2, 3, 5), generator=torch.Generator().manual_seed(3)
    )
    flat = cross_entropy(
        x.movedim(1, -1).reshape(-1, 4), target.reshape(-1), reduction="sum"
    )
    torch.testing.assert_close(cross_entropy(x, target, reduction="sum"), flat)
    assert cross_entropy(x, target, reduction="none").shape == (2, 3, 5)


def test_ignore_index_may_be_a_class():
    # ignore_index=0 drops the samples of class 0, as for padding token 0
    x = _x(4, 3)
    target = torch.tensor([0, 1, 2, 0])
    expected = cross_entropy(x[1:3], target[1:3])
    torch.testing.assert_close(cross_entropy(x, target, ignore_index=0), expected)


def test_masked_logits_minus_inf():
    # a class masked with -inf gets probability 0; the loss of another class stays
    # finite
    x = torch.tensor([[0.0, -math.inf, 1.0]], requires_grad=True)
    ours = cross_entropy(x, torch.tensor([0]))
    assert ours.item() == pytest.approx(math.log(1 + math.e), rel=1e-6)
    (grad,) = torch.autograd.grad(ours, x)
    torch.testing.assert_close(
        grad,
        torch.tensor([[-1 / (1 + math.e) * math.e, 0.0, math.e / (1 + math.e)]]),
    )


def test_binary_cross_entropy_clamps_the_log_at_minus_100():
    # p = 0 with y = 1: -log 0 = inf, clamped to 100; so is every p below e^-100 =
    # 3.7e-44
    p = torch.tensor([0.0, 1e-45, 1e-30, 1.0], requires_grad=True)
    y = torch.tensor([1.0, 1.0, 1.0, 0.0])
    loss = binary_cross_entropy(p, y, reduction="none")
    torch.testing.assert_close(
        loss, torch.tensor([100.0, 100.0, 30 * math.log(10), 100.0])
    )
    torch.testing.assert_close(loss, F.binary_cross_entropy(p, y, reduction="none"))
    # PyTorch's gradient: (p - y) / max(p (1 - p), 1e-12), so -1e12 at p = 0, not
    # the clamp's 0
    (grad,) = torch.autograd.grad(loss.sum(), p)
    assert grad[0].item() == pytest.approx(-1e12, rel=1e-6) and grad[
        3
    ].item() == pytest.approx(1e12, rel=1e-6)
    (grad_torch,) = torch.autograd.grad(
        F.binary_cross_entropy(p, y, reduction="sum"), p
    )
    torch.testing.assert_close(grad, grad_torch)


def test_logits_form_keeps_the_precision_that_probabilities_lose():
    # sigmoid(-200) underflows to 0 in float32: BCE on it says 100 (the clamp), the
    # logits form 200
    x = torch.tensor([-200.0, 20.0])
    y = torch.tensor([1.0, 0.0])
    via_probability = binary_cross_entropy(torch.sigmoid(x), y, reduction="none")
    via_logits = binary_cross_entropy_with_logits(x, y, reduction="none")
    assert via_probability[0].item() == 100.0 and via_logits[
        0
    ].item() == pytest.approx(200.0)
    # sigmoid(20) rounds to 1 in float32, so 1 - p = 0: 100 again, where the truth
    # is 20 + e^-20
    assert via_probability[1].item() == 100.0 and via_logits[
        1
    ].item() == pytest.approx(20.0, rel=1e-7)


def test_pos_weight_broadcasts_over_labels():
    # multi-label: 3 labels, the positives of label 0 weigh 4 and of label 2 weigh
    # 0.5
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = (torch.rand(5, 3, generator=g) < 0.3).double()
    pos_weight = torch.tensor([4.0, 1.0, 0.5], dtype=torch.float64)
    ours = binary_cross_entropy_with_logits(
        x, y, reduction="none", pos_weight=pos_weight
    )
    by_hand = -(pos_weight * y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
    torch.testing.assert_close(ours, by_hand)
    # per-channel pos_weight of shape (C, 1, 1) for (N, C, H, W) logits
    x4 = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    y4 = (torch.rand(2, 3, 4, 4, generator=g) < 0.5).double()
    pw4 = pos_weight.view(3, 1, 1)
    torch.testing.assert_close(
        binary_cross_entropy_with_logits(x4, y4, pos_weight=pw4),
        F.binary_cross_entropy_with_logits(x4, y4, pos_weight=pw4),
    )


def test_binary_cross_entropy_is_two_class_cross_entropy():
    # logit x for class 1 equals logits (0, x) for classes (0, 1) under softmax
    x = _x(6).detach()
    y = torch.tensor([1, 0, 0, 1, 1, 0])
    two_class = torch.stack([torch.zeros_like(x), x], dim=1)
    torch.testing.assert_close(
        binary_cross_entropy_with_logits(x, y.double()),
        cross_entropy(two_class, y),
        rtol=1e-14,
        atol=1e-14,
    )


# --- errors -----------------------------------------------------------------------

X = torch.zeros(3, 5)
T = torch.tensor([1, 0, 4])


@pytest.mark.parametrize("fn", [nll_loss, cross_entropy])
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"input": torch.zeros(3, 5, dtype=torch.long)},
            TypeError,
            "floating-point dtype",
        ),
        (
            {"input": torch.tensor(1.0), "target": torch.tensor(0)},
            ValueError,
            "0-dim",
        ),
        (
            {
                "input": torch.zeros(3, 0),
                "target": torch.zeros(3, dtype=torch.long),
            },
            ValueError,
            r"input of shape \(3, 0\) has no classes",
        ),
        ({"input": torch.full((3, 5), math.nan)}, ValueError, "NaN"),
        ({"target": [1, 0, 4]}, TypeError, "must be a torch.Tensor"),
        (
            {"target": torch.tensor([1.0, 0.0, 4.0])},
            TypeError,
            r"integer dtype \(torch.long\); got torch.float32",
        ),
        ({"target": torch.tensor([True, False, True])}, TypeError, "integer dtype"),
        (
            {"target": torch.tensor([1, 0])},
            ValueError,
            r"target has shape \(2,\); .* need shape \(3,\)",
        ),
        (
            {"target": torch.tensor([1, 5, 0])},
            ValueError,
            r"class 5 at position \(1,\) .* only 5 classes \(valid: 0..4",
        ),
        (
            {"target": torch.tensor([1, -1, 0])},
            ValueError,
            r"class -1 .* \(valid: 0..4, or ignore_index=-100",
        ),
        (
            {"weight": torch.ones(4)},
            ValueError,
            r"one weight per class, shape \(5,\); got \(4,\)",
        ),
        (
            {"weight": torch.ones(5, dtype=torch.long)},
            TypeError,
            "weight must have a floating-point dtype",
        ),
        (
            {"weight": torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0])},
            ValueError,
            "weight must be finite and >= 0; got -1",
        ),
        (
            {"weight": torch.tensor([1.0, math.inf, 1.0, 1.0, 1.0])},
            ValueError,
            "weight must be finite",
        ),
        ({"ignore_index": 1.5}, TypeError, "ignore_index must be an int"),
        (
            {"reduction": "avg"},
            ValueError,
            "reduction must be one of 'none', 'mean', 'sum'; got 'avg'",
        ),
    ],
)
def test_class_index_errors(fn, kwargs, error, match):
    arguments = {"input": X, "target": T} | kwargs
    with pytest.raises(error, match=match):
        fn(**arguments)


def test_channels_last_target_gets_a_hint():
    with pytest.raises(
        ValueError, match=r"classes must be on dim 1 .* input.movedim\(-1, 1\)"
    ):
        cross_entropy(
            torch.zeros(2, 4, 4, 3), torch.zeros(2, 4, 4, dtype=torch.long)
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"label_smoothing": 1.5},
            ValueError,
            r"label_smoothing must lie in \[0, 1\]; got 1.5",
        ),
        (
            {"label_smoothing": -0.1},
            ValueError,
            r"label_smoothing must lie in \[0, 1\]; got -0.1",
        ),
        ({"label_smoothing": math.nan}, ValueError, "label_smoothing must lie in"),
        (
            {"label_smoothing": "0.1"},
            TypeError,
            "label_smoothing must be a real number",
        ),
        (
            {"target": torch.zeros(3, 5, dtype=torch.long)},
            TypeError,
            "class probabilities, which must be floating",
        ),
        (
            {"target": torch.full((3, 5), 0.2), "ignore_index": 0},
            ValueError,
            "ignore_index=0 cannot be used",
        ),
        (
            {"target": torch.full((3, 5), 1.5)},
            ValueError,
            r"target must hold probabilities in \[0, 1\]; got 1.5",
        ),
        (
            {"target": torch.full((3, 5), math.nan)},
            ValueError,
            "target contains NaN",
        ),
    ],
)
def test_cross_entropy_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        cross_entropy(**({"input": X, "target": T} | kwargs))


P = torch.full((2, 3), 0.5)
Y = torch.ones(2, 3)


@pytest.mark.parametrize(
    "fn", [binary_cross_entropy, binary_cross_entropy_with_logits]
)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"input": torch.ones(2, 3, dtype=torch.long)},
            TypeError,
            "input must have a floating-point dtype",
        ),
        (
            {"target": torch.ones(2, 3, dtype=torch.long)},
            TypeError,
            "target must have a floating-point dtype",
        ),
        (
            {"target": torch.ones(3)},
            ValueError,
            r"target has shape \(3,\) but input has \(2, 3\)",
        ),
        (
            {"target": torch.full((2, 3), 1.5)},
            ValueError,
            r"target must hold probabilities in \[0, 1\]; got 1.5",
        ),
        (
            {"target": torch.full((2, 3), -0.5)},
            ValueError,
            r"probabilities in \[0, 1\]; got -0.5",
        ),
        ({"input": torch.full((2, 3), math.nan)}, ValueError, "input contains NaN"),
        (
            {"input": torch.zeros(2, 3).to_sparse(), "target": torch.ones(2, 3)},
            TypeError,
            r"input is a torch.sparse_coo tensor; .* input.to_dense\(\)",
        ),
        (
            {"weight": torch.ones(2)},
            ValueError,
            r"weight has shape \(2,\), which does not broadcast to input's \(2, "
            r"3\)",
        ),
        ({"weight": torch.ones(4, 2, 3)}, ValueError, "does not broadcast"),
        (
            {"weight": torch.full((3,), -1.0)},
            ValueError,
            "weight must be finite and >= 0",
        ),
        ({"reduction": "batchmean"}, ValueError, "reduction must be one of"),
    ],
)
def test_binary_errors(fn, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(**({"input": P, "target": Y} | kwargs))


@pytest.mark.parametrize("p", [1.5, -0.1])
def test_binary_cross_entropy_rejects_probabilities_outside_0_1(p):
    with pytest.raises(
        ValueError, match=rf"input must hold probabilities in \[0, 1\]; got {p}"
    ):
        binary_cross_entropy(torch.tensor([p]), torch.tensor([1.0]))


@pytest.mark.parametrize(
    ("pos_weight", "match"),
    [
        (torch.ones(2), "pos_weight has shape"),
        (torch.tensor([1.0, -2.0, 1.0]), "pos_weight must be finite and >= 0"),
    ],
)
def test_pos_weight_errors(pos_weight, match):
    with pytest.raises(ValueError, match=match):
        binary_cross_entropy_with_logits(P, Y, pos_weight=pos_weight)


# --- binary_cross_entropy_with_logits: the fused reduction ------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_with_logits_reduced_value_and_gradient_match_float64(reduction):
    # the fused path sums the two non-negative terms apart and divides once; the
    # reference is the loss written out in float64, its gradient sigmoid(x) - y
    g = torch.Generator().manual_seed(11)
    x = 8 * torch.randn(300, 70, generator=g)
    y = torch.rand(300, 70, generator=g)
    y[::3] = y[::3].round()
    leaf = x.clone().requires_grad_()
    ours = binary_cross_entropy_with_logits(leaf, y, reduction=reduction)
    (grad,) = torch.autograd.grad(ours, leaf)
    xd, yd = x.double(), y.double()
    zero = torch.zeros((), dtype=torch.float64)
    terms = yd * torch.logaddexp(-xd, zero) + (1 - yd) * torch.logaddexp(xd, zero)
    divisor = x.numel() if reduction == "mean" else 1
    exact = terms.sum() / divisor
    assert ours.dtype == torch.float32
    assert ours.item() == pytest.approx(exact.item(), rel=2e-7)
    expected = (torch.sigmoid(xd) - yd) / divisor
    torch.testing.assert_close(
        grad.double(), expected, rtol=1e-6, atol=1e-7 / divisor
    )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_with_logits_forward_mode_matches_torch(reduction):
    # torch.autograd.forward_ad outside torch.func: the fused function's jvp
    import torch.autograd.forward_ad as fwAD

    g = torch.Generator().manual_seed(12)
    x, v, w = (torch.randn(4, 5, generator=g, dtype=torch.float64) for _ in "xvw")
    y = torch.rand(4, 5, generator=g, dtype=torch.float64)
    tangents = []
    for fn in (
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
    ):
        with fwAD.dual_level():
            out = fn(
                fwAD.make_dual(x, v), fwAD.make_dual(y, w), reduction=reduction
            )
            tangents.append(fwAD.unpack_dual(out).tangent)
    torch.testing.assert_close(*tangents, rtol=1e-12, atol=1e-14)


def test_bce_with_logits_second_backward_with_retain_graph():
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(13))
    y = (x > 0.3).float()
    leaf = x.requires_grad_()
    loss = binary_cross_entropy_with_logits(leaf, y)
    loss.backward(retain_graph=True)
    first = leaf.grad.clone()
    loss.backward()
    torch.testing.assert_close(leaf.grad, 2 * first)
    torch.testing.assert_close(first, (torch.sigmoid(x.detach()) - y) / x.numel())
