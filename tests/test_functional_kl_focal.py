"""Tests of kl_div, label_smoothing_kl_loss, focal_loss and sigmoid_focal_loss
(chapters 10-12).

Against torch where torch has the function (``F.kl_div``; ``F.cross_entropy`` for
focal loss with gamma = 0), against WeNet's and torchvision's code written out
independently below, and against values derived by hand or with mpmath.
"""

import math
import warnings

import mpmath
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import rel_entr

from lossnotes.functional import (
    KL_MEAN_WARNING,
    focal_loss,
    kl_div,
    label_smoothing_kl_loss,
    sigmoid_focal_loss,
)
from lossnotes.stability import ulp_error

D = torch.float64


def randn(seed: int, *shape, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=D)


def value_and_grad(fn, x: torch.Tensor):
    """``fn(x)`` and the gradient of its sum with respect to ``x`` (a new leaf)."""
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    return out.detach(), g


def torch_kl_div(x, y, reduction, log_target):
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # torch's "mean" warning is tested on its own
        return F.kl_div(x, y, reduction=reduction, log_target=log_target)


def ours_kl_div(x, y, reduction, log_target):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return kl_div(x, y, reduction=reduction, log_target=log_target)


shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2**31 - 1)


# --- kl_div -----------------------------------------------------------------------


@given(
    shapes,
    seeds,
    st.sampled_from(["none", "batchmean", "sum", "mean"]),
    st.booleans(),
    st.booleans(),
)
def test_kl_div_matches_torch_in_value_and_gradient(
    shape, seed, reduction, log_target, zeros
):
    x = torch.log_softmax(randn(seed, *shape), dim=-1)
    y = torch.softmax(randn(seed + 1, *shape), dim=-1)
    if zeros:  # some target entries exactly 0: 0 log 0 = 0
        y = torch.where(randn(seed + 2, *shape) > 0, y, 0.0)
    if log_target:
        y = torch.log_softmax(randn(seed + 1, *shape), dim=-1)
    ours, g_ours = value_and_grad(
        lambda t: ours_kl_div(t, y, reduction, log_target), x
    )
    ref, g_ref = value_and_grad(
        lambda t: torch_kl_div(t, y, reduction, log_target), x
    )
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-12)


@given(shapes, seeds, st.booleans())
def test_kl_div_target_gradient_matches_torch(shape, seed, log_target):
    x = torch.log_softmax(randn(seed, *shape), dim=-1)
    y = torch.softmax(
        randn(seed + 1, *shape), dim=-1
    )  # positive: torch's target gradient is NaN at 0
    if log_target:
        y = y.log()
    _, g_ours = value_and_grad(
        lambda t: kl_div(x, t, reduction="sum", log_target=log_target), y
    )
    _, g_ref = value_and_grad(
        lambda t: F.kl_div(x, t, reduction="sum", log_target=log_target), y
    )
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-12)


def test_kl_div_mean_warns_exactly_like_torch():
    x = torch.log_softmax(randn(0, 2, 3), dim=-1)
    y = torch.softmax(randn(1, 2, 3), dim=-1)
    with pytest.warns(UserWarning) as torch_record:
        F.kl_div(x, y)
    with pytest.warns(
        UserWarning, match="'batchmean' divides only by the batch size"
    ) as ours_record:
        kl_div(x, y)
    assert [str(w.message) for w in ours_record] == [
        str(w.message) for w in torch_record
    ]
    assert str(ours_record[0].message) == KL_MEAN_WARNING
    assert (
        ours_record[0].filename == __file__
    )  # stacklevel=2 points at the caller, as torch's does
    assert torch_record[0].filename == __file__


@pytest.mark.parametrize("reduction", ["none", "batchmean", "sum"])
def test_kl_div_other_reductions_do_not_warn(reduction):
    x = torch.log_softmax(randn(0, 2, 3), dim=-1)
    y = torch.softmax(randn(1, 2, 3), dim=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kl_div(x, y, reduction=reduction)


def test_kl_div_batchmean_is_the_true_kl_per_sample_and_mean_is_not():
    q = torch.softmax(randn(3, 4, 5), dim=-1)
    p = torch.softmax(randn(4, 4, 5), dim=-1)
    true_kl = (
        rel_entr(p.numpy(), q.numpy()).sum(axis=1).mean()
    )  # scipy: sum p log(p/q), per row
    assert kl_div(q.log(), p, reduction="batchmean").item() == pytest.approx(
        true_kl, rel=1e-12
    )
    with pytest.warns(UserWarning):
        mean = kl_div(q.log(), p, reduction="mean").item()
    assert mean == pytest.approx(
        true_kl / 5, rel=1e-12
    )  # divided by the 5 classes as well


def test_kl_div_hand_value_and_zero_dim_batchmean():
    # KL([1/4, 1/4, 1/2] || [1/2, 1/4, 1/4]) = 1/4 log(1/2) + 0 + 1/2 log 2 = 1/4
    # log 2
    q = torch.tensor([0.5, 0.25, 0.25], dtype=D)
    p = torch.tensor([0.25, 0.25, 0.5], dtype=D)
    assert kl_div(q.log(), p, reduction="sum").item() == pytest.approx(
        0.25 * math.log(2), rel=1e-15
    )
    # a 0-dim input has no batch dimension: batchmean is the sum, as in torch
    x, y = torch.tensor(-1.0, dtype=D), torch.tensor(0.5, dtype=D)
    assert kl_div(x, y, reduction="batchmean").item() == pytest.approx(
        0.5 * (math.log(0.5) + 1)
    )


def test_kl_div_gradcheck():
    x = torch.log_softmax(randn(5, 3, 4), dim=-1).requires_grad_(True)
    y = torch.softmax(randn(6, 3, 4), dim=-1).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: kl_div(a, b, reduction="batchmean"), (x, y)
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (
            (torch.zeros(2, dtype=torch.long), torch.zeros(2)),
            {},
            TypeError,
            "input must have a floating-point",
        ),
        (
            (torch.zeros(2), torch.zeros(2, dtype=torch.long)),
            {},
            TypeError,
            "target must have a floating-point",
        ),
        (
            (torch.zeros(2), torch.zeros(2)),
            {"log_target": 1},
            TypeError,
            "log_target must be True or False",
        ),
        (
            (torch.zeros(2, 3), torch.zeros(3)),
            {},
            ValueError,
            r"target has shape \(3,\) but input has \(2, 3\)",
        ),
        (
            (torch.tensor([math.nan]), torch.zeros(1)),
            {},
            ValueError,
            "input contains NaN",
        ),
        (
            (torch.zeros(1), torch.tensor([math.nan])),
            {},
            ValueError,
            "target contains NaN",
        ),
        (
            (torch.zeros(2), torch.tensor([0.5, -0.1])),
            {},
            ValueError,
            "target has a negative value -0.1",
        ),
        (
            (torch.zeros(2), torch.zeros(2)),
            {"reduction": "avg"},
            ValueError,
            "reduction must be one of",
        ),
    ],
)
def test_kl_div_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        kl_div(*args, **kwargs)


def test_kl_div_negative_log_target_is_fine():
    # log-probabilities are negative: only probability targets must be >= 0
    assert kl_div(
        torch.zeros(2), torch.full((2,), -1.0), reduction="sum", log_target=True
    ).isfinite()


# --- label_smoothing_kl_loss ------------------------------------------------------


def wenet_label_smoothing_loss(
    x, target, size, padding_idx, smoothing, normalize_length
):
    """WeNet's LabelSmoothingLoss.forward, written out from
    wenet/transformer/label_smoothing_loss.py.
    """
    criterion = torch.nn.KLDivLoss(reduction="none")
    confidence = 1.0 - smoothing
    batch_size = x.size(0)
    x = x.view(-1, size)
    target = target.view(-1)
    true_dist = torch.zeros_like(x)
    true_dist.fill_(smoothing / (size - 1))
    ignore = target == padding_idx
    total = len(target) - ignore.sum().item()
    target = target.masked_fill(ignore, 0)
    true_dist.scatter_(1, target.unsqueeze(1), confidence)
    kl = criterion(torch.log_softmax(x, dim=1), true_dist)
    denom = total if normalize_length else batch_size
    return kl.masked_fill(ignore.unsqueeze(1), 0).sum() / denom


@st.composite
def sequence_batches(draw):
    b, t, c = (
        draw(st.integers(1, 4)),
        draw(st.integers(1, 6)),
        draw(st.integers(2, 7)),
    )
    seed = draw(seeds)
    lengths = draw(
        st.lists(st.integers(1, t), min_size=b, max_size=b)
    )  # at least one token each
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (b, t), generator=g)
    for i, n in enumerate(lengths):
        target[i, n:] = -1
    return randn(seed, b, t, c), target


@given(sequence_batches(), st.floats(0, 0.99), st.booleans())
def test_label_smoothing_matches_wenet_in_value_and_gradient(
    batch, smoothing, normalize_length
):
    x, target = batch
    c = x.size(2)
    ours, g_ours = value_and_grad(
        lambda t: label_smoothing_kl_loss(
            t, target, smoothing, -1, normalize_length
        ),
        x,
    )
    ref, g_ref = value_and_grad(
        lambda t: wenet_label_smoothing_loss(
            t, target, c, -1, smoothing, normalize_length
        ),
        x,
    )
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)


@given(sequence_batches(), st.floats(0, 0.99))
def test_label_smoothing_is_cross_entropy_minus_target_entropy(batch, eps):
    # H(t, q) = H(t) + KL(t || q): the KL loss is the soft-target cross-entropy less
    # H(t) per token
    x, target = batch
    b, t, c = x.shape
    keep = target != -1
    smoothed = torch.full((b, t, c), eps / (c - 1), dtype=D).scatter(
        2, target.clamp(min=0).unsqueeze(2), 1 - eps
    )
    ce = F.cross_entropy(x[keep], smoothed[keep], reduction="sum")
    xlogx = lambda v: v * math.log(v) if v > 0 else 0.0  # noqa: E731  (0 log 0 = 0)
    h_t = -(xlogx(1 - eps) + (c - 1) * xlogx(eps / (c - 1)))
    expected = (ce - int(keep.sum()) * h_t) / b
    assert label_smoothing_kl_loss(x, target, eps).item() == pytest.approx(
        expected.item(), rel=1e-9, abs=1e-10
    )


def test_label_smoothing_hand_values():
    # uniform model over C = 4, eps = 0.1: KL(t || u) = log 4 - H(t), H(t) = -(0.9
    # log 0.9 + 0.1 log(0.1/3))
    h_t = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1 / 3))
    x = torch.zeros(2, 3, 4, dtype=D)
    target = torch.tensor(
        [[1, 2, -1], [0, -1, -1]]
    )  # 3 real tokens in a batch of 2
    per_token = math.log(4) - h_t
    assert label_smoothing_kl_loss(x, target, 0.1).item() == pytest.approx(
        3 * per_token / 2, rel=1e-14
    )
    assert label_smoothing_kl_loss(
        x, target, 0.1, normalize_length=True
    ).item() == pytest.approx(per_token, rel=1e-14)


def test_label_smoothing_zero_is_nll_per_sequence():
    x = randn(7, 3, 5, 6)
    target = torch.randint(0, 6, (3, 5), generator=torch.Generator().manual_seed(7))
    target[0, 3:] = -1
    nll = (
        F.cross_entropy(
            x.reshape(-1, 6), target.reshape(-1), ignore_index=-1, reduction="sum"
        )
        / 3
    )
    assert label_smoothing_kl_loss(x, target, 0.0).item() == pytest.approx(
        nll.item(), rel=1e-12
    )


def test_label_smoothing_custom_padding_idx_and_all_padding():
    x = randn(8, 1, 3, 4)
    target = torch.tensor([[2, 0, 0]])
    # padding_idx = 0 drops the two 0 tokens, leaving one token of class 2
    ref = wenet_label_smoothing_loss(x, target, 4, 0, 0.2, False)
    assert label_smoothing_kl_loss(
        x, target, 0.2, padding_idx=0
    ).item() == pytest.approx(ref.item(), rel=1e-12)
    all_pad = torch.full((1, 3), -1)
    assert label_smoothing_kl_loss(x, all_pad, 0.2).item() == 0.0
    assert math.isnan(
        label_smoothing_kl_loss(x, all_pad, 0.2, normalize_length=True).item()
    )  # 0/0, as WeNet


@pytest.mark.parametrize(
    ("x", "target", "kwargs", "error", "match"),
    [
        (
            torch.zeros(1, 2, 3, dtype=torch.long),
            torch.zeros(1, 2, dtype=torch.long),
            {},
            TypeError,
            "floating-point",
        ),
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            {},
            ValueError,
            r"input must have shape \(B, T, C\)",
        ),
        (
            torch.zeros(1, 2, 1),
            torch.zeros(1, 2, dtype=torch.long),
            {},
            ValueError,
            "at least 2 classes",
        ),
        (
            torch.full((1, 2, 3), math.inf),
            torch.zeros(1, 2, dtype=torch.long),
            {},
            ValueError,
            "input contains inf",
        ),
        (
            torch.zeros(1, 2, 3),
            torch.zeros(1, 2),
            {},
            TypeError,
            "need an integer dtype",
        ),
        (
            torch.zeros(1, 2, 3),
            [[0, 1]],
            {},
            TypeError,
            "target must be a torch.Tensor",
        ),
        (
            torch.zeros(1, 2, 3),
            torch.zeros(2, 1, dtype=torch.long),
            {},
            ValueError,
            r"need shape \(1, 2\)",
        ),
        (
            torch.zeros(1, 2, 3),
            torch.tensor([[0, 3]]),
            {},
            ValueError,
            r"class 3 at position \(0, 1\) but input has only 3",
        ),
        (torch.zeros(1, 2, 3), torch.tensor([[0, -2]]), {}, ValueError, "class -2"),
        (
            torch.zeros(1, 2, 3),
            torch.tensor([[0, 1]]),
            {"smoothing": 1.0},
            ValueError,
            r"smoothing must be a finite number in \[0, 1\)",
        ),
        (
            torch.zeros(1, 2, 3),
            torch.tensor([[0, 1]]),
            {"smoothing": -0.1},
            ValueError,
            "smoothing must be a finite",
        ),
        (
            torch.zeros(1, 2, 3),
            torch.tensor([[0, 1]]),
            {"smoothing": "0.1"},
            TypeError,
            "smoothing must be a real",
        ),
        (
            torch.zeros(1, 2, 3),
            torch.tensor([[0, 1]]),
            {"padding_idx": 1.0},
            TypeError,
            "padding_idx must be an int",
        ),
        (
            torch.zeros(1, 2, 3),
            torch.tensor([[0, 1]]),
            {"normalize_length": 1},
            TypeError,
            "normalize_length must",
        ),
    ],
)
def test_label_smoothing_errors(x, target, kwargs, error, match):
    kwargs = {"smoothing": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        label_smoothing_kl_loss(x, target, **kwargs)


# --- focal_loss -------------------------------------------------------------------


@st.composite
def classification_batches(draw):
    """Logits (N, C, *extra) in float64 and targets with some positions set to
    ignore_index.
    """
    n, c = draw(st.integers(1, 6)), draw(st.integers(2, 6))
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    seed = draw(seeds)
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (n, *extra), generator=g)
    ignore = torch.rand(target.shape, generator=g) < draw(
        st.sampled_from([0.0, 0.3])
    )
    ignore.view(-1)[0] = False  # keep at least one position, so "mean" is defined
    target[ignore] = -100
    return randn(
        seed, n, c, *extra, scale=draw(st.sampled_from([1.0, 5.0, 30.0]))
    ), target


@given(classification_batches(), st.sampled_from(["none", "mean", "sum"]))
def test_focal_loss_with_gamma_zero_is_cross_entropy(batch, reduction):
    x, target = batch
    ours, g_ours = value_and_grad(
        lambda t: focal_loss(t, target, gamma=0.0, reduction=reduction), x
    )
    ref, g_ref = value_and_grad(
        lambda t: F.cross_entropy(t, target, reduction=reduction), x
    )
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)


@given(
    classification_batches(),
    st.floats(0, 5),
    st.booleans(),
    st.sampled_from(["none", "mean", "sum"]),
)
def test_focal_loss_matches_the_formula(batch, gamma, with_alpha, reduction):
    # the paper's -alpha_t (1 - p_t)^gamma log p_t written directly with
    # torch.softmax; "mean" divides by the number of non-ignored positions
    x, target = batch
    c = x.size(1)
    alpha = torch.linspace(0.1, 1.0, c, dtype=D) if with_alpha else None
    keep = target != -100
    safe = target.clamp(min=0)

    def reference(t):
        log_pt = torch.log_softmax(t, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        # 1 - p_t as the sum of the other classes' probabilities: no cancellation,
        # and never exactly 0 here (logit gaps stay far below 745), so (1 -
        # p_t)^gamma has a finite slope
        others = (
            torch.softmax(t, dim=1).scatter(1, safe.unsqueeze(1), 0.0).sum(dim=1)
        )
        loss = -(others**gamma) * log_pt * (alpha[safe] if with_alpha else 1.0)
        loss = torch.where(keep, loss, 0.0)
        return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / keep.sum()}[
            reduction
        ]

    ours, g_ours = value_and_grad(
        lambda t: focal_loss(
            t, target, alpha=alpha, gamma=gamma, reduction=reduction
        ),
        x,
    )
    ref, g_ref = value_and_grad(reference, x)
    torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_loss_unbatched_input_is_cross_entropy_at_gamma_zero(reduction):
    x, y = (
        randn(13, 5),
        torch.tensor(2),
    )  # shape (C,) and a 0-dim target, as cross_entropy allows
    ours, g_ours = value_and_grad(
        lambda t: focal_loss(t, y, gamma=0.0, reduction=reduction), x
    )
    ref, g_ref = value_and_grad(
        lambda t: F.cross_entropy(t, y, reduction=reduction), x
    )
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-12, atol=1e-12)


def test_focal_loss_hand_values():
    # logits [0, log 3]: p = [1/4, 3/4]; target 1, gamma 2: (1/4)^2 log(4/3)
    x = torch.tensor([[0.0, math.log(3)]], dtype=D)
    assert focal_loss(x, torch.tensor([1])).item() == pytest.approx(
        math.log(4 / 3) / 16, rel=1e-14
    )
    # target 0, gamma 1, alpha_0 = 0.5: 0.5 * (3/4) * log 4
    alpha = torch.tensor([0.5, 2.0], dtype=D)
    assert focal_loss(
        x, torch.tensor([0]), alpha=alpha, gamma=1.0
    ).item() == pytest.approx(0.375 * math.log(4), rel=1e-14)


def test_focal_loss_alpha_mean_divides_by_count_not_by_weights():
    # cross_entropy(weight=alpha) divides by sum_n alpha_{y_n}; focal_loss by the
    # count of samples
    x = randn(11, 6, 3)
    target = torch.tensor([0, 1, 2, 2, -100, 1])
    alpha = torch.tensor([0.25, 1.0, 2.0], dtype=D)
    ours = focal_loss(x, target, alpha=alpha, gamma=0.0)
    weighted = F.cross_entropy(x, target, weight=alpha, ignore_index=-100)
    weight_sum = 0.25 + 1.0 + 2.0 + 2.0 + 1.0  # alphas of the 5 kept targets
    assert ours.item() == pytest.approx(weighted.item() * weight_sum / 5, rel=1e-12)
    summed = F.cross_entropy(
        x, target, weight=alpha, ignore_index=-100, reduction="sum"
    )
    assert focal_loss(
        x, target, alpha=alpha, gamma=0.0, reduction="sum"
    ).item() == pytest.approx(summed.item(), rel=1e-12)


def test_focal_loss_is_accurate_for_confident_predictions():
    # logits [0, 40], target 1: 1 - p_t = e^-40/(1 + e^-40), log p_t =
    # -log1p(e^-40); gamma 2
    with mpmath.workdps(50):
        q = mpmath.exp(-40) / (1 + mpmath.exp(-40))
        exact = float(q**2 * mpmath.log1p(mpmath.exp(-40)))
    x = torch.tensor([[0.0, 40.0]], dtype=D)
    assert focal_loss(x, torch.tensor([1])).item() == pytest.approx(
        exact, rel=1e-12
    )  # about e^-120
    assert focal_loss(x.float(), torch.tensor([1])).item() == pytest.approx(
        exact, rel=1e-5
    )


def test_focal_loss_gradient_is_finite_when_p_t_rounds_to_one():
    x = torch.tensor(
        [[0.0, 800.0]], dtype=D, requires_grad=True
    )  # p_t = 1 exactly in float64
    focal_loss(x, torch.tensor([1]), gamma=0.5).backward()
    assert torch.isfinite(x.grad).all()


def test_focal_loss_all_ignored_mean_is_nan_like_cross_entropy():
    x, target = randn(2, 3, 4), torch.full((3,), -100)
    assert math.isnan(focal_loss(x, target).item())
    assert math.isnan(F.cross_entropy(x, target).item())
    assert focal_loss(x, target, reduction="sum").item() == 0.0


def test_focal_loss_gradcheck():
    x = randn(9, 4, 3).requires_grad_(True)
    alpha = torch.tensor([0.2, 0.3, 0.5], dtype=D)
    assert torch.autograd.gradcheck(
        lambda t: focal_loss(t, torch.tensor([0, 2, 1, 1]), alpha=alpha, gamma=1.5),
        (x,),
    )


@pytest.mark.parametrize(
    ("x", "target", "kwargs", "error", "match"),
    [
        (
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(2, dtype=torch.long),
            {},
            TypeError,
            "floating-point",
        ),
        (torch.tensor(0.0), torch.tensor(0), {}, ValueError, "got a 0-dim tensor"),
        (
            torch.tensor([[0.0, math.inf]]),
            torch.tensor([0]),
            {},
            ValueError,
            "input contains inf",
        ),
        (torch.zeros(2, 3), torch.zeros(2), {}, TypeError, "need an integer dtype"),
        (
            torch.zeros(2, 3),
            torch.zeros(3, dtype=torch.long),
            {},
            ValueError,
            r"need shape \(2,\)",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 5]),
            {},
            ValueError,
            r"class 5 at position \(1,\) but input has only 3",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 1]),
            {"alpha": torch.ones(2)},
            ValueError,
            r"alpha must hold one weight per class, shape \(3,\)",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 1]),
            {"alpha": torch.tensor([1.0, -1.0, 1.0])},
            ValueError,
            "alpha must be finite and >= 0",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 1]),
            {"alpha": torch.ones(3, dtype=torch.long)},
            TypeError,
            "alpha must",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 1]),
            {"gamma": -1.0},
            ValueError,
            "gamma must be a finite number in",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 1]),
            {"gamma": math.inf},
            ValueError,
            "gamma must be a finite number in",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 1]),
            {"gamma": None},
            TypeError,
            "gamma must be a real number",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 1]),
            {"ignore_index": None},
            TypeError,
            "ignore_index must be an int",
        ),
        (
            torch.zeros(2, 3),
            torch.tensor([0, 1]),
            {"reduction": "batchmean"},
            ValueError,
            "reduction must be one of",
        ),
    ],
)
def test_focal_loss_errors(x, target, kwargs, error, match):
    with pytest.raises(error, match=match):
        focal_loss(x, target, **kwargs)


# --- sigmoid_focal_loss -----------------------------------------------------------


def torchvision_sigmoid_focal_loss(
    inputs, targets, alpha=0.25, gamma=2.0, reduction="none"
):
    """torchvision.ops.sigmoid_focal_loss, written out from
    torchvision/ops/focal_loss.py.

    torchvision cannot be installed beside this torch, so its few lines are
    transcribed here, independently of lossnotes: probabilities from torch.sigmoid,
    1 - p_t by subtraction.
    """
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@given(
    shapes,
    seeds,
    st.sampled_from([-1.0, 0.0, 0.25, 0.5, 1.0]),
    st.floats(0, 5),
    st.booleans(),
    st.sampled_from(["none", "mean", "sum"]),
)
def test_sigmoid_focal_loss_matches_torchvision(
    shape, seed, alpha, gamma, soft, reduction
):
    # |logit| <= 15 keeps torchvision's 1 - p_t (a subtraction) accurate enough to
    # compare
    x = randn(seed, *shape).clamp(-15, 15)
    g = torch.Generator().manual_seed(seed)
    y = (
        torch.rand(shape, generator=g, dtype=D)
        if soft
        else (torch.rand(shape, generator=g, dtype=D) < 0.3).to(D)
    )
    kw = {"alpha": alpha, "gamma": gamma, "reduction": reduction}
    ours, g_ours = value_and_grad(lambda t: sigmoid_focal_loss(t, y, **kw), x)
    ref, g_ref = value_and_grad(
        lambda t: torchvision_sigmoid_focal_loss(t, y, **kw), x
    )
    torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-6, atol=1e-10)


def test_sigmoid_focal_loss_hand_values():
    log2 = math.log(2)
    x = torch.tensor([0.0, 0.0, math.log(3)], dtype=D)  # p = 1/2, 1/2, 3/4
    y = torch.tensor([1.0, 0.0, 1.0], dtype=D)
    expected = [
        0.25 * 0.25 * log2,
        0.75 * 0.25 * log2,
        0.25 * (1 / 16) * math.log(4 / 3),
    ]
    assert sigmoid_focal_loss(x, y).tolist() == pytest.approx(expected, rel=1e-14)
    # alpha < 0 disables the alpha_t factor
    assert sigmoid_focal_loss(x, y, alpha=-1).tolist() == pytest.approx(
        [e / a for e, a in zip(expected, [0.25, 0.75, 0.25], strict=True)]
    )
    assert sigmoid_focal_loss(x, y, reduction="sum").item() == pytest.approx(
        sum(expected), rel=1e-14
    )
    assert sigmoid_focal_loss(x, y, reduction="mean").item() == pytest.approx(
        sum(expected) / 3, rel=1e-14
    )


def test_sigmoid_focal_loss_stays_accurate_where_torchvisions_form_rounds_to_zero():
    # x = 50, y = 1: 1 - p_t = sigma(-50) ~ e^-50, but 1 - sigmoid(50) rounds to 0
    # in float64
    with mpmath.workdps(50):
        s = 1 / (1 + mpmath.exp(50))
        exact = float(0.25 * s**2 * mpmath.log1p(mpmath.exp(-50)))
    x, y = torch.tensor([50.0], dtype=D), torch.tensor([1.0], dtype=D)
    assert sigmoid_focal_loss(x, y).item() == pytest.approx(exact, rel=1e-12)
    assert torchvision_sigmoid_focal_loss(x, y).item() == 0.0
    # a very wrong logit: loss -> alpha * |x|, finite
    assert sigmoid_focal_loss(
        torch.tensor([-1000.0]), torch.tensor([1.0])
    ).item() == pytest.approx(250.0)


def test_sigmoid_focal_loss_gradcheck():
    x = randn(12, 5).requires_grad_(True)
    y = torch.tensor([1.0, 0.0, 0.3, 1.0, 0.0], dtype=D)
    assert torch.autograd.gradcheck(
        lambda t: sigmoid_focal_loss(t, y, gamma=1.5, reduction="sum"), (x,)
    )


def _sigmoid_focal_float64(x, y, alpha, gamma):
    # the definition in float64: 1 - p_t and the cross-entropy as sums of
    # non-negative terms, each exact to about 1e-16 (a float32 ulp is 6e-8)
    xd, yd = x.double(), y.double()
    zero = torch.zeros((), dtype=D)
    ce = yd * torch.logaddexp(-xd, zero) + (1 - yd) * torch.logaddexp(xd, zero)
    one_minus_pt = yd * torch.sigmoid(-xd) + (1 - yd) * torch.sigmoid(xd)
    alpha_t = yd * alpha + (1 - yd) * (1 - alpha) if alpha >= 0 else 1.0
    return alpha_t * one_minus_pt**gamma * ce


def _confident_logits(seed):
    # 3 randn logits, a quarter of them pushed confidently right or wrong by 25,
    # and a few extreme ones
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(400, 60, generator=g)
    y = (torch.rand(400, 60, generator=g) < 0.3).float()
    push = (
        25
        * (2 * y - 1)
        * torch.where(torch.rand(400, 60, generator=g) < 0.5, 1, -1)
    )
    x[::4] += push[::4]
    x[1, :8] = torch.tensor([-80.0, 80.0, -40.0, 40.0, 0.0, -0.0, 1e-20, -100.0])
    return x, y


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1, 0.5), (0.5, 3.0)])
@pytest.mark.parametrize("soft", [False, True])
def test_sigmoid_focal_loss_is_within_2_ulp_on_confident_inputs(alpha, gamma, soft):
    x, y = _confident_logits(3)
    if soft:
        y = torch.rand(y.shape, generator=torch.Generator().manual_seed(4))
    exact = _sigmoid_focal_float64(x, y, alpha, gamma)
    ours = sigmoid_focal_loss(x, y, alpha, gamma)
    assert ours.dtype == torch.float32
    assert ulp_error(ours, exact).max().item() <= 2.0
    if not soft:  # torchvision's 1 - p_t, a subtraction, is off by far more
        theirs = torchvision_sigmoid_focal_loss(x, y, alpha, gamma)
        assert ulp_error(theirs, exact).max().item() > 1000


def test_sigmoid_focal_loss_float64_reference_agrees_with_mpmath():
    # the reference of the test above, at a few confident points, to 50 digits
    with mpmath.workdps(50):
        for x, y in [(-30.0, 0.0), (17.25, 1.0), (-12.5, 1.0), (40.0, 0.0)]:
            s = 1 / (1 + mpmath.exp(-x))
            q = s if y == 0 else 1 - s
            ce = -mpmath.log(1 - s) if y == 0 else -mpmath.log(s)
            exact = float((0.25 if y else 0.75) * q**2 * ce)
            ref = _sigmoid_focal_float64(
                torch.tensor([x]), torch.tensor([y]), 0.25, 2.0
            )
            assert ref.item() == pytest.approx(exact, rel=1e-14)


def test_sigmoid_focal_loss_gradient_is_accurate_in_float32():
    # the gradient computed with the loss, against autograd through the float64
    # definition; binary targets (soft ones make d ce / dx = sigmoid(x) - y cancel)
    x, y = _confident_logits(5)
    for reduction in ("none", "mean"):
        leaf = x.clone().requires_grad_()
        out = sigmoid_focal_loss(leaf, y, reduction=reduction)
        (ours,) = torch.autograd.grad(out.sum(), leaf)
        xd = x.double().requires_grad_()
        ref = _sigmoid_focal_float64(xd, y, 0.25, 2.0)
        ref = ref.mean() if reduction == "mean" else ref.sum()
        (exact,) = torch.autograd.grad(ref, xd)
        assert ulp_error(ours, exact).max().item() <= 2.0


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sigmoid_focal_loss_forward_mode_ad_matches_torchvision(reduction):
    # dual tensors of torch.autograd.forward_ad take the composite path
    import torch.autograd.forward_ad as fwAD

    x, v, w = randn(15, 4, 3), randn(16, 4, 3), randn(17, 4, 3)
    y = torch.rand(4, 3, generator=torch.Generator().manual_seed(2), dtype=D)
    tangents = []
    for fn in (sigmoid_focal_loss, torchvision_sigmoid_focal_loss):
        with fwAD.dual_level():
            out = fn(
                fwAD.make_dual(x, v), fwAD.make_dual(y, w), reduction=reduction
            )
            tangents.append(fwAD.unpack_dual(out).tangent)
    torch.testing.assert_close(*tangents, rtol=1e-10, atol=1e-12)


def test_sigmoid_focal_loss_second_backward_with_retain_graph():
    x = randn(14, 5, 3).requires_grad_(True)
    y = torch.rand(5, 3, generator=torch.Generator().manual_seed(1), dtype=D)
    loss = sigmoid_focal_loss(x, y, reduction="sum")
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "error", "match"),
    [
        (
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2),
            {},
            TypeError,
            "inputs must have a floating-point",
        ),
        (
            torch.zeros(2),
            torch.zeros(2, dtype=torch.long),
            {},
            TypeError,
            "targets must have a floating-point",
        ),
        (
            torch.zeros(2),
            torch.zeros(2, 1),
            {},
            ValueError,
            r"targets has shape \(2, 1\) but inputs has \(2,\)",
        ),
        (
            torch.tensor([math.inf]),
            torch.zeros(1),
            {},
            ValueError,
            "inputs contains inf",
        ),
        (
            torch.zeros(1),
            torch.tensor([math.nan]),
            {},
            ValueError,
            "targets contains NaN",
        ),
        (
            torch.zeros(1),
            torch.tensor([2.0]),
            {},
            ValueError,
            r"targets must hold probabilities in \[0, 1\]",
        ),
        (
            torch.zeros(1),
            torch.zeros(1),
            {"alpha": 1.5},
            ValueError,
            r"alpha must lie in \[0, 1\]",
        ),
        (
            torch.zeros(1),
            torch.zeros(1),
            {"alpha": math.nan},
            ValueError,
            r"alpha must lie in \[0, 1\]",
        ),
        (
            torch.zeros(1),
            torch.zeros(1),
            {"alpha": "a"},
            TypeError,
            "alpha must be a real number",
        ),
        (
            torch.zeros(1),
            torch.zeros(1),
            {"gamma": -0.5},
            ValueError,
            "gamma must be a finite number in",
        ),
        (
            torch.zeros(1),
            torch.zeros(1),
            {"reduction": "batchmean"},
            ValueError,
            "reduction must be one of",
        ),
    ],
)
def test_sigmoid_focal_loss_errors(x, y, kwargs, error, match):
    with pytest.raises(error, match=match):
        sigmoid_focal_loss(x, y, **kwargs)
