"""The drop-in promises of lossnotes.functional.

Positional safety, PyTorch's options, empty batches, dtype promotion, masked
classes, clear errors, and the accuracy of the per-sample loss.
"""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossnotes.functional as LF
from lossnotes import stability
from lossnotes.stability import ulp, ulp_error

INF = math.inf


# --- positional arguments never bind differently from torch -----------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: LF.kl_div(torch.zeros(2, 3), torch.full((2, 3), 1 / 3), "sum"),
        lambda: LF.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), None, 0),
        lambda: LF.nll_loss(torch.zeros(2, 3), torch.tensor([0, 1]), None, 0),
        lambda: LF.binary_cross_entropy(
            torch.full((2,), 0.5), torch.ones(2), None, "sum"
        ),
        lambda: LF.binary_cross_entropy_with_logits(
            torch.zeros(2), torch.ones(2), None, "sum"
        ),
        lambda: LF.focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), None, 1.0),
    ],
)
def test_options_after_weight_are_keyword_only(call):
    # torch binds these positions to the deprecated size_average/reduce: a TypeError
    # here instead of a silently different number
    with pytest.raises(TypeError, match="positional argument"):
        call()


# --- the options torch has --------------------------------------------------------


@pytest.mark.parametrize("beta", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("threshold", [20.0, 5.0])
def test_softplus_beta_threshold_match_torch(beta, threshold):
    x = torch.linspace(-30, 30, 121, dtype=torch.float64)
    torch.testing.assert_close(
        stability.softplus(x, beta=beta, threshold=threshold),
        F.softplus(x, beta=beta, threshold=threshold),
        rtol=1e-13,
        atol=1e-300,
    )
    # gradient sigma(beta x) below the threshold, 1 above it, as torch's
    xs = x.clone().requires_grad_()
    (g1,) = torch.autograd.grad(stability.softplus(xs, beta, threshold).sum(), xs)
    (g2,) = torch.autograd.grad(F.softplus(xs, beta, threshold).sum(), xs)
    torch.testing.assert_close(g1, g2, rtol=1e-13, atol=1e-300)


def test_softplus_default_has_no_threshold_and_is_exact():
    # log(1 + e^30) = 30 + log1p(e^-30); torch's threshold 20 returns 30
    x = torch.tensor([30.0], dtype=torch.float64)
    assert stability.softplus(x).item() == 30 + math.log1p(math.exp(-30))
    assert F.softplus(x).item() == 30.0


@pytest.mark.parametrize(
    ("dim", "keepdim"), [((1, 2), False), ((0, 2), True), ((-1,), True), (1, True)]
)
def test_logsumexp_tuple_dim_and_keepdim_match_torch(dim, keepdim):
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0)).double()
    ours = stability.logsumexp(x, dim=dim, keepdim=keepdim)
    theirs = torch.logsumexp(x, dim=dim, keepdim=keepdim)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=1e-14)


def test_logsumexp_repeated_dim_is_an_error():
    with pytest.raises(ValueError, match="more than once"):
        stability.logsumexp(torch.zeros(2, 3), dim=(1, -1))


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_dtype_option_matches_torch(fn):
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    ours = getattr(stability, fn)(x, 1, dtype=torch.float64)
    theirs = getattr(torch, fn)(x, 1, dtype=torch.float64)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=1e-15)
    with pytest.raises(TypeError, match="dtype must be"):
        getattr(stability, fn)(x, 1, dtype=torch.long)


@pytest.mark.parametrize(
    "case",
    [
        lambda m, x, t: m.binary_cross_entropy_with_logits(x, t),
        lambda m, x, t: m.kl_div(x, t, reduction="sum"),
        lambda m, x, t: m.cross_entropy(x, t / t.sum(1, keepdim=True)),
    ],
)
def test_float64_target_promotes_the_result_as_in_torch(case):
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    t = torch.rand(
        3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    ours, theirs = case(LF, x, t), case(F, x, t)
    assert ours.dtype == theirs.dtype == torch.float64
    torch.testing.assert_close(ours, theirs)


REDUCTIONS = ["none", "mean", "sum"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "case",
    [
        lambda m, r: m.cross_entropy(
            torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), reduction=r
        ),
        lambda m, r: m.cross_entropy(
            torch.zeros(0, 5), torch.zeros(0, 5), reduction=r, label_smoothing=0.1
        ),
        lambda m, r: m.nll_loss(
            torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), reduction=r
        ),
        lambda m, r: m.binary_cross_entropy(
            torch.zeros(0), torch.zeros(0), reduction=r
        ),
        lambda m, r: m.binary_cross_entropy_with_logits(
            torch.zeros(0, 2), torch.zeros(0, 2), reduction=r
        ),
        lambda m, r: m.kl_div(torch.zeros(0, 3), torch.zeros(0, 3), reduction=r),
    ],
)
def test_empty_batch_behaves_as_in_torch(case, reduction):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's "mean" warning, from both
        ours, theirs = case(LF, reduction), case(F, reduction)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, equal_nan=True)


def test_empty_batch_of_focal_loss_is_nan_mean_and_zero_sum():
    x, t = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    assert math.isnan(LF.focal_loss(x, t).item())
    assert LF.focal_loss(x, t, reduction="sum").item() == 0.0
    assert LF.sigmoid_focal_loss(torch.zeros(0), torch.zeros(0)).shape == (0,)


# --- ulp at infinity and NaN ------------------------------------------------------


def test_ulp_of_inf_and_nan():
    u = ulp([INF, -INF, math.nan, 1.0])
    assert u[0].item() == INF and u[1].item() == INF and math.isnan(u[2].item())
    assert u[3].item() == 2.0**-23


# --- masked classes (-inf): one rule across the package ---------------------------


def _masked():
    x = torch.tensor(
        [[0.0, -INF, 1.0, 2.0], [3.0, 0.5, -INF, -INF]], dtype=torch.float64
    )
    return x.requires_grad_()


def test_masked_class_has_zero_gradient_in_cross_entropy_and_focal_loss():
    for fn in (LF.cross_entropy, LF.focal_loss):
        x = _masked()
        loss = fn(x, torch.tensor([0, 1]))
        (g,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(g).all()
        assert g[0, 1] == 0 and g[1, 2] == 0 and g[1, 3] == 0


def test_focal_loss_at_gamma_zero_equals_cross_entropy_with_masks():
    # before: focal_loss rejected -inf outright
    x, t = _masked(), torch.tensor([3, 0])
    torch.testing.assert_close(
        LF.focal_loss(x, t, gamma=0.0), F.cross_entropy(x, t), rtol=1e-14, atol=0
    )


def test_masked_target_class_is_inf_as_in_torch():
    x, t = _masked(), torch.tensor([1, 0])
    assert LF.cross_entropy(x, t, reduction="none")[0].item() == INF
    assert F.cross_entropy(x, t, reduction="none")[0].item() == INF
    assert LF.focal_loss(x, t, reduction="none")[0].item() == INF


def test_label_smoothing_with_a_masked_class_is_inf_as_in_torch():
    # eps / C of the target mass sits on the masked class: -log 0 = inf
    x, t = _masked(), torch.tensor([0, 1])
    assert LF.cross_entropy(x, t, label_smoothing=0.1).item() == INF
    assert F.cross_entropy(x, t, label_smoothing=0.1).item() == INF


def test_zero_weight_on_a_masked_class_adds_zero():
    # a class weight 0 on the masked class: torch gives 0 * inf = NaN, lossnotes 0
    x, t = _masked()[:1], torch.tensor([0])
    w = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    ours = LF.cross_entropy(x, t, weight=w, label_smoothing=0.1)
    assert math.isnan(F.cross_entropy(x, t, weight=w, label_smoothing=0.1).item())
    # by hand: (1 - eps) (-log p_0) + eps / C * sum_c w_c (-log p_c), over the
    # weight w_0 = 1 of the target; the masked class 1 has w_1 = 0 and adds nothing
    log_p = torch.log_softmax(x.detach(), 1)[0]
    smooth = -(w[[0, 2, 3]] * log_p[[0, 2, 3]]).sum()
    expected = 0.9 * -log_p[0] + 0.1 / 4 * smooth
    assert ours.item() == pytest.approx(expected.item(), rel=1e-14)


def test_kl_div_zero_target_on_a_masked_class_adds_zero():
    # before: NaN (0 * -inf), though the docstring said a zero target contributes 0
    x = torch.log_softmax(_masked().detach(), 1).requires_grad_()
    t = torch.tensor(
        [[0.5, 0.0, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]], dtype=torch.float64
    )
    ours = LF.kl_div(x, t, reduction="sum")
    unmasked = t > 0
    expected = (t[unmasked] * (t[unmasked].log() - x.detach()[unmasked])).sum()
    assert ours.item() == pytest.approx(expected.item(), rel=1e-14)
    assert math.isnan(F.kl_div(x, t, reduction="sum").item())
    (g,) = torch.autograd.grad(ours, x)
    assert torch.isfinite(g).all() and g[0, 1] == 0
    log_t = torch.where(t > 0, t.log(), -INF)
    assert LF.kl_div(
        x, log_t, reduction="sum", log_target=True
    ).item() == pytest.approx(expected.item(), rel=1e-14)


def test_probability_target_zero_on_a_masked_class_adds_zero():
    x = _masked()
    t = torch.tensor(
        [[0.5, 0.0, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64
    )
    ours = LF.cross_entropy(x, t, reduction="none")
    log_p = torch.log_softmax(x.detach(), 1)
    expected = torch.stack([-(log_p[0, 0] + log_p[0, 2]) / 2, -log_p[1, 0]])
    torch.testing.assert_close(ours.detach(), expected, rtol=1e-14, atol=0)


def test_row_without_a_finite_logit_is_nan_as_in_torch():
    x = torch.tensor([[-INF, -INF], [0.0, 1.0]], requires_grad=True)
    t = torch.tensor([0, 1])
    ours = LF.cross_entropy(x, t, reduction="none")
    assert math.isnan(ours[0].item()) and math.isnan(
        F.cross_entropy(x, t, reduction="none")[0].item()
    )
    (g,) = torch.autograd.grad(ours[1], x)
    assert torch.equal(g[0], torch.zeros(2))


# --- clear errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda s: LF.cross_entropy(s, torch.tensor([0, 1])),
        lambda s: LF.nll_loss(s, torch.tensor([0, 1])),
        lambda s: LF.kl_div(s, torch.full((2, 3), 1 / 3), reduction="sum"),
        lambda s: LF.binary_cross_entropy_with_logits(s, torch.ones(2, 3)),
        lambda s: LF.focal_loss(s, torch.tensor([0, 1])),
        lambda s: stability.log_softmax(s),
        lambda s: stability.logsumexp(s),
    ],
)
def test_sparse_input_gets_a_clear_error(call):
    # before: "Could not run 'aten::max.dim' with arguments from the 'SparseCPU'
    # backend"
    with pytest.raises(TypeError, match=r"sparse_coo tensor; .*to_dense\(\)"):
        call(torch.zeros(2, 3).to_sparse())


def test_nan_anywhere_in_a_row_is_still_found():
    # the NaN check reads the N row maxima, not the N * C inputs
    x = torch.zeros(3, 1000)
    x[1, 777] = math.nan
    with pytest.raises(ValueError, match="input contains NaN"):
        LF.cross_entropy(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="input contains NaN"):
        LF.binary_cross_entropy_with_logits(x, torch.zeros(3, 1000))
    with pytest.raises(ValueError, match="x contains NaN"):
        stability.log_softmax(x)


# --- accuracy of the per-sample loss ----------------------------------------------


def _logits(n, c, seed, boost):
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(n, c, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    x[torch.arange(n), y] += boost
    return x, y


def _exact_ce(x, y):
    # -log p_y = log1p(sum_{j != y} e^{x_j - x_y}), every term exact in float64
    xd = x.double()
    d = torch.exp(xd - xd.gather(1, y[:, None])).scatter(1, y[:, None], 0.0)
    return torch.log1p(d.sum(1))


@pytest.mark.parametrize("boost", [0.0, 5.0, 10.0, 15.0, 25.0])
@pytest.mark.parametrize(("n", "c"), [(512, 1000), (16, 32000)])
def test_cross_entropy_is_within_2_ulp_including_confident_rows(boost, n, c):
    x, y = _logits(n, c, int(boost), boost)
    exact = _exact_ce(x, y)
    ours = LF.cross_entropy(x, y, reduction="none")
    assert ulp_error(ours, exact).max().item() <= 2.0
    if boost >= 15:  # where torch's float32 answer is off by far more
        theirs = F.cross_entropy(x, y, reduction="none")
        assert ulp_error(theirs, exact).max().item() > 1000


def test_focal_loss_is_within_4_ulp_including_confident_rows():
    x, y = _logits(512, 1000, 7, 20.0)
    log_pt = -_exact_ce(x, y)
    exact = (-torch.expm1(log_pt)) ** 2 * -log_pt
    assert (
        ulp_error(LF.focal_loss(x, y, reduction="none"), exact).max().item() <= 4.0
    )


def test_binary_cross_entropy_with_logits_is_within_2_ulp():
    g = torch.Generator().manual_seed(8)
    x = 10 * torch.randn(200, 50, generator=g)
    y = (torch.rand(200, 50, generator=g) < 0.5).float()
    xd, yd = x.double(), y.double()
    zero = torch.zeros((), dtype=torch.float64)
    exact = yd * torch.logaddexp(-xd, zero) + (1 - yd) * torch.logaddexp(xd, zero)
    ours = LF.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert ulp_error(ours, exact).max().item() <= 2.0
    theirs = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert ulp_error(theirs, exact).max().item() > 1000  # torch's form cancels


def test_numpy_input_still_works():
    x = np.zeros((2, 3), dtype=np.float32)
    assert LF.cross_entropy(x, torch.tensor([0, 1])).item() == pytest.approx(
        math.log(3)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_loss_keeps_the_input_dtype(dtype):
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(9)).to(dtype)
    t, p = torch.tensor([0, 3, 1]), torch.full((3, 4), 0.25, dtype=dtype)
    outs = [
        LF.cross_entropy(x, t),
        LF.cross_entropy(x, t, label_smoothing=0.1),
        LF.cross_entropy(x, p),
        LF.nll_loss(x, t),
        LF.focal_loss(x, t),
        LF.sigmoid_focal_loss(x, p),
        LF.binary_cross_entropy_with_logits(x, p),
        LF.binary_cross_entropy(torch.sigmoid(x), p),
        LF.kl_div(x, p, reduction="sum"),
        LF.label_smoothing_kl_loss(x[None], t[None], 0.1),
    ]
    assert all(o.dtype == dtype for o in outs)


def test_label_smoothing_keeps_a_term_of_tiny_weight():
    # weight [1, 1e-38], target 1, logits [1, -1e4]: the mean divides by 1e-38, so
    # the smoothing term must keep the 1e-38 * 10001 that W LSE - sum w x cancels
    x = torch.tensor([[1.0, -1e4]])
    t, w = torch.tensor([1]), torch.tensor([1.0, 1.1754944e-38])
    ours = LF.cross_entropy(x, t, weight=w, label_smoothing=0.1)
    theirs = F.cross_entropy(x, t, weight=w, label_smoothing=0.1)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    assert ours.item() == pytest.approx(0.9 * 10001 + 0.05 * 10001, rel=1e-6)
