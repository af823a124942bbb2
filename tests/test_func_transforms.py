"""torch.func transforms (grad, vmap, jvp) and second derivatives over lossnotes'
losses and
stable functions, compared with PyTorch's own functions under the same transform."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, jvp, vmap

import lossnotes.functional as LF
from lossnotes import stability

D = torch.float64
G = torch.Generator().manual_seed(0)
X = torch.randn(4, 5, generator=G, dtype=D)  # logits
V = torch.randn(4, 5, generator=G, dtype=D)  # a tangent
Y = torch.tensor([0, 3, 4, 1])  # class indices
Q = torch.softmax(torch.randn(4, 5, generator=G, dtype=D), 1)  # probabilities
B = torch.rand(4, 5, generator=G, dtype=D)  # soft binary labels
W = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.0], dtype=D)


def focal_by_torch(x, y, gamma=2.0):
    # the formula of Lin et al. (2017), from torch.log_softmax
    log_pt = torch.log_softmax(x, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return (-((1 - log_pt.exp()) ** gamma) * log_pt).mean()


def sigmoid_focal_by_torch(x, t, alpha=0.25, gamma=2.0):
    # torchvision.ops.sigmoid_focal_loss, as written there, reduction="mean"
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    return ((alpha * t + (1 - alpha) * (1 - t)) * ce * (1 - p_t) ** gamma).mean()


#: name: (lossnotes function of the logits, PyTorch function of the logits)
LOSSES = {
    "cross_entropy": (
        lambda x: LF.cross_entropy(x, Y, weight=W, label_smoothing=0.1),
        lambda x: F.cross_entropy(x, Y, weight=W, label_smoothing=0.1),
    ),
    "cross_entropy_probabilities": (
        lambda x: LF.cross_entropy(x, Q, label_smoothing=0.2),
        lambda x: F.cross_entropy(x, Q, label_smoothing=0.2),
    ),
    "nll_loss": (
        lambda x: LF.nll_loss(x, Y, weight=W),
        lambda x: F.nll_loss(x, Y, weight=W),
    ),
    "binary_cross_entropy_with_logits": (
        lambda x: LF.binary_cross_entropy_with_logits(x, B),
        lambda x: F.binary_cross_entropy_with_logits(x, B),
    ),
    "binary_cross_entropy_with_logits_pos_weight": (
        lambda x: LF.binary_cross_entropy_with_logits(x, B, pos_weight=W + 0.5),
        lambda x: F.binary_cross_entropy_with_logits(x, B, pos_weight=W + 0.5),
    ),
    "binary_cross_entropy": (
        lambda x: LF.binary_cross_entropy(torch.sigmoid(x), B),
        lambda x: F.binary_cross_entropy(torch.sigmoid(x), B),
    ),
    "kl_div": (
        lambda x: LF.kl_div(torch.log_softmax(x, -1), Q, reduction="batchmean"),
        lambda x: F.kl_div(torch.log_softmax(x, -1), Q, reduction="batchmean"),
    ),
    "focal_loss": (lambda x: LF.focal_loss(x, Y), lambda x: focal_by_torch(x, Y)),
    "sigmoid_focal_loss": (
        lambda x: LF.sigmoid_focal_loss(x, B, reduction="mean"),
        lambda x: sigmoid_focal_by_torch(x, B),
    ),
    "logsumexp": (
        lambda x: stability.logsumexp(x, -1).sum(),
        lambda x: torch.logsumexp(x, -1).sum(),
    ),
    "log_softmax": (
        lambda x: (stability.log_softmax(x, -1) * V).sum(),
        lambda x: (torch.log_softmax(x, -1) * V).sum(),
    ),
    "softmax": (
        lambda x: (stability.softmax(x, -1) * V).sum(),
        lambda x: (torch.softmax(x, -1) * V).sum(),
    ),
    "softplus": (
        lambda x: (stability.softplus(x, beta=2.0) * V).sum(),
        lambda x: (F.softplus(x, beta=2.0, threshold=100.0) * V).sum(),
    ),
    "log_sigmoid": (
        lambda x: (stability.log_sigmoid(x) * V).sum(),
        lambda x: (F.logsigmoid(x) * V).sum(),
    ),
}


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_torch_func_grad(name):
    ours, theirs = LOSSES[name]
    close(grad(ours)(X), grad(theirs)(X))


@pytest.mark.parametrize("name", LOSSES)
def test_torch_func_jvp(name):
    ours, theirs = LOSSES[name]
    v1, t1 = jvp(ours, (X,), (V,))
    v2, t2 = jvp(theirs, (X,), (V,))
    close(v1, v2)
    close(t1, t2)


@pytest.mark.parametrize("name", LOSSES)
def test_torch_func_vmap_over_a_batch_of_logits(name):
    # per-sample losses: each of 3 copies of the logits, scaled differently
    ours, theirs = LOSSES[name]
    xs = torch.stack([X, 2 * X, -X])
    close(vmap(ours)(xs), vmap(theirs)(xs))


@pytest.mark.parametrize("name", LOSSES)
def test_per_sample_gradients_with_vmap_of_grad(name):
    ours, theirs = LOSSES[name]
    xs = torch.stack([X, 0.5 * X])
    close(vmap(grad(ours))(xs), vmap(grad(theirs))(xs))


@pytest.mark.parametrize("name", LOSSES)
def test_second_derivative_matches_torch(name):
    # Hessian-vector product by double backward, outside any transform
    ours, theirs = LOSSES[name]
    hv = []
    for f in (ours, theirs):
        x = X.clone().requires_grad_()
        (g,) = torch.autograd.grad(f(x), x, create_graph=True)
        if g.requires_grad:
            (h,) = torch.autograd.grad((g * V).sum(), x)
        else:  # linear in x (nll_loss): the second derivative is 0
            h = torch.zeros_like(x)
        hv.append(h)
    close(*hv)


@pytest.mark.parametrize(
    "name",
    [
        "cross_entropy",
        "cross_entropy_probabilities",
        "nll_loss",
        "binary_cross_entropy_with_logits",
        "binary_cross_entropy",
        "kl_div",
        "focal_loss",
        "logsumexp",
        "log_softmax",
        "softmax",
    ],
)
def test_gradgradcheck(name):
    ours, _ = LOSSES[name]
    x = X.clone().requires_grad_()
    assert torch.autograd.gradgradcheck(ours, (x,))


def test_gradgradcheck_in_the_targets_too():
    x, b = X.clone().requires_grad_(), B.clone().requires_grad_()
    q = Q.clone().requires_grad_()
    assert torch.autograd.gradgradcheck(LF.binary_cross_entropy_with_logits, (x, b))
    assert torch.autograd.gradgradcheck(
        lambda a, t: LF.binary_cross_entropy(torch.sigmoid(a), t), (x, b)
    )
    assert torch.autograd.gradgradcheck(
        lambda a, t: LF.kl_div(a, t, reduction="sum"), (x, q)
    )
    assert torch.autograd.gradgradcheck(LF.cross_entropy, (x, q))


def test_value_checks_are_skipped_inside_a_transform_not_outside():
    bad = X.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="input contains NaN"):
        LF.cross_entropy(bad, Y)
    # inside vmap the values are not known to Python: no check, NaN propagates
    out = vmap(lambda x: LF.cross_entropy(x, Y))(torch.stack([bad, X]))
    assert out[0].isnan() and out[1].isfinite()
