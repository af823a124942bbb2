"""Tests of lossnotes.large_vocab against torch's cross-entropy and by hand.

References are the naive computation in float64 (torch's own cross-entropy, or the
formula written out), never lossnotes itself. The vocab-parallel tests start real
processes (gloo backend on 127.0.0.1), 2 and 4 of them.
"""

import itertools
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from lossnotes.large_vocab import (
    chunked_linear_cross_entropy,
    run_vocab_parallel,
    vocab_parallel_cross_entropy,
    z_loss,
)


def problem(seed, n, d, v, dtype=torch.float64, bias=True, ignored=()):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_()
    weight = (
        torch.randn(v, d, generator=g, dtype=dtype).div_(d**0.5).requires_grad_()
    )
    b = torch.randn(v, generator=g, dtype=dtype).requires_grad_() if bias else None
    target = torch.randint(v, (n,), generator=g)
    target[list(ignored)] = -100
    return hidden, weight, target, b


def naive_loss(hidden, weight, target, bias, reduction="mean"):
    logits = hidden @ weight.T + (0 if bias is None else bias)
    return F.cross_entropy(logits, target, reduction=reduction)


def grads_of(loss, inputs, grad_output):
    return torch.autograd.grad(
        loss, [x for x in inputs if x is not None], grad_output
    )


# --- chunked_linear_cross_entropy: values and gradients ---------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("backward", ["auto", "recompute"])
@pytest.mark.parametrize("chunk_size", [1, 3, 7, None, 100])
def test_chunked_matches_naive_in_value_and_gradient(
    reduction, backward, chunk_size
):
    hidden, weight, target, bias = problem(0, 7, 5, 11, ignored=[2])
    loss = chunked_linear_cross_entropy(
        hidden,
        weight,
        target,
        bias,
        chunk_size=chunk_size,
        reduction=reduction,
        backward=backward,
    )
    expected = naive_loss(hidden, weight, target, bias, reduction)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    g = torch.linspace(0.5, 2.0, loss.numel(), dtype=loss.dtype).reshape(loss.shape)
    got = grads_of(loss, (hidden, weight, bias), g)
    want = grads_of(expected, (hidden, weight, bias), g)
    for a, b in zip(got, want, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def naive_options(
    hidden,
    weight,
    target,
    bias,
    *,
    reduction="mean",
    eps=0.0,
    class_weight=None,
    lam=0.0,
    cap=None,
):
    """The naive float64 reference: every logit materialised, torch's cross-entropy,
    and the z-loss written out with torch.logsumexp."""
    z = hidden @ weight.T + (0 if bias is None else bias)
    if cap is not None:
        z = cap * torch.tanh(z / cap)
    ce = F.cross_entropy(
        z, target, weight=class_weight, label_smoothing=eps, reduction=reduction
    )
    valid = target != -100
    squares = torch.where(valid, torch.logsumexp(z, dim=1) ** 2, 0.0)
    if reduction == "none":
        return ce + lam * squares
    if reduction == "sum":
        return ce + lam * squares.sum()
    return ce + lam * squares.sum() / valid.sum()


OPTION_GRID = list(
    itertools.product(
        [False, True],  # bias
        [0.0, 0.1],  # label smoothing
        [False, True],  # class weights
        [0.0, 1e-2],  # z-loss
        [None, 3.0],  # softcap
    )
)


@pytest.mark.parametrize(
    ("reduction", "backward"),
    [
        ("mean", "in_forward"),
        ("mean", "recompute"),
        ("sum", "in_forward"),
        ("sum", "recompute"),
        ("none", "recompute"),
    ],
)
def test_every_combination_of_options_matches_naive_float64(reduction, backward):
    # 32 combinations of (bias, label smoothing, class weights, z-loss, softcap) for
    # each reduction and backward; values and the gradients of hidden, weight and
    # bias
    g = torch.Generator().manual_seed(21)
    cw = torch.rand(11, generator=g, dtype=torch.float64) + 0.5
    for has_bias, eps, has_cw, lam, cap in OPTION_GRID:
        hidden, weight, target, bias = problem(
            20, 7, 5, 11, bias=has_bias, ignored=[2]
        )
        with torch.no_grad():
            weight.mul_(3.0)  # logits of a few units: the softcap bends them
        class_weight = cw if has_cw else None
        loss = chunked_linear_cross_entropy(
            hidden,
            weight,
            target,
            bias,
            reduction=reduction,
            label_smoothing=eps,
            class_weight=class_weight,
            z_loss=lam,
            softcap=cap,
            chunk_size=3,
            backward=backward,
        )
        expected = naive_options(
            hidden,
            weight,
            target,
            bias,
            reduction=reduction,
            eps=eps,
            class_weight=class_weight,
            lam=lam,
            cap=cap,
        )
        case = f"bias={has_bias} eps={eps} cw={has_cw} z={lam} cap={cap}"
        torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12, msg=case)
        up = torch.linspace(0.5, 2.0, loss.numel(), dtype=loss.dtype)
        up = up.reshape(loss.shape)
        inputs = (hidden, weight, bias)
        for a, b in zip(
            grads_of(loss, inputs, up), grads_of(expected, inputs, up), strict=True
        ):
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12, msg=case)


def test_gradcheck_with_every_option_on():
    hidden, weight, target, bias = problem(22, 5, 3, 7, ignored=[1])
    cw = torch.linspace(0.5, 2.0, 7, dtype=torch.float64)

    def f(h, w, b):
        return chunked_linear_cross_entropy(
            h,
            w,
            target,
            b,
            label_smoothing=0.2,
            class_weight=cw,
            z_loss=0.05,
            softcap=2.0,
            chunk_size=2,
            backward="recompute",
        )

    assert torch.autograd.gradcheck(f, (hidden, weight, bias), nondet_tol=1e-12)


def test_class_weights_mean_divides_by_the_summed_weights_of_the_targets():
    # by hand: two tokens, classes 0 and 1 with weights 1 and 3, ignored token left
    # out; mean = (1 * l_0 + 3 * l_1) / (1 + 3) with l_n = log(sum e^z) - z_y
    hidden = torch.tensor([[1.0], [2.0], [5.0]], dtype=torch.float64)
    weight = torch.tensor([[1.0], [-1.0], [0.5]], dtype=torch.float64)
    target = torch.tensor([0, 1, -100])
    cw = torch.tensor([1.0, 3.0, 7.0], dtype=torch.float64)
    z = [[1.0, -1.0, 0.5], [2.0, -2.0, 1.0]]
    l0 = math.log(sum(math.exp(x) for x in z[0])) - z[0][0]
    l1 = math.log(sum(math.exp(x) for x in z[1])) - z[1][1]
    loss = chunked_linear_cross_entropy(hidden, weight, target, class_weight=cw)
    assert loss.item() == pytest.approx((l0 + 3 * l1) / 4, rel=1e-14)


def test_z_loss_normalisation_is_the_mean_over_tokens_not_ignored():
    # z_loss(logits, target) = mean over non-ignored rows of logsumexp^2,
    # unweighted; chunked(z_loss=lam) = F.cross_entropy(...) + lam * z_loss(...) for
    # every reduction
    hidden, weight, target, _ = problem(23, 6, 4, 9, bias=False, ignored=[0, 3])
    logits = (hidden @ weight.T).detach()
    lse = [math.log(sum(math.exp(x) for x in row)) for row in logits.tolist()]
    kept = [lse[i] ** 2 for i in range(6) if i not in (0, 3)]
    assert z_loss(logits, target).item() == pytest.approx(sum(kept) / 4, rel=1e-13)
    assert z_loss(logits, target, reduction="sum").item() == pytest.approx(
        sum(kept), rel=1e-13
    )
    assert z_loss(logits).item() == pytest.approx(
        sum(x**2 for x in lse) / 6, rel=1e-13
    )
    cw = torch.linspace(0.1, 3.0, 9, dtype=torch.float64)
    for reduction in ["mean", "sum", "none"]:
        chunked = chunked_linear_cross_entropy(
            hidden.detach(),
            weight.detach(),
            target,
            z_loss=1e-3,
            class_weight=cw,
            reduction=reduction,
        )
        expected = F.cross_entropy(
            logits, target, weight=cw, reduction=reduction
        ) + 1e-3 * z_loss(logits, target, reduction=reduction)
        torch.testing.assert_close(chunked, expected, rtol=1e-13, atol=1e-13)


def test_z_loss_gradient_is_two_lse_softmax_and_k_dim_input():
    # d/dz (lse^2) = 2 lse softmax(z), by hand for one row z = (0, log 3):
    # lse = log 4, softmax = (1/4, 3/4)
    z = torch.tensor(
        [[0.0, math.log(3.0)]], dtype=torch.float64, requires_grad=True
    )
    z_loss(z).backward()
    lse = math.log(4.0)
    assert z.grad[0].tolist() == pytest.approx([2 * lse / 4, 2 * lse * 3 / 4])
    # (N, C, d) input: classes on dim 1, as F.cross_entropy
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    expected = (torch.logsumexp(x, dim=1) ** 2).mean()
    torch.testing.assert_close(z_loss(x), expected)
    # half precision: computed in float32, returned in the input dtype
    xh = torch.tensor([[100.0, 100.0]], dtype=torch.float16)
    out = z_loss(xh)
    assert out.dtype == torch.float16
    assert out.item() == pytest.approx((100 + math.log(2)) ** 2, rel=1e-3)


def test_z_loss_errors():
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        z_loss(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"input must have shape \(N, C\)"):
        z_loss(torch.ones(3))
    with pytest.raises(TypeError, match="target holds class indices"):
        z_loss(torch.ones(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        z_loss(torch.ones(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction must be one of"):
        z_loss(torch.ones(2, 3), reduction="avg")


def test_softcap_keeps_every_logit_inside_plus_minus_c():
    # logits of +-1000 capped at c = 30: |z| < 30, so the loss is at most
    # log(V) + 2c (the log-sum-exp is at most c + log V, the target logit is at
    # least -c)
    hidden = torch.tensor([[1000.0], [-1000.0]], dtype=torch.float64)
    weight = torch.tensor([[1.0], [-1.0], [0.0]], dtype=torch.float64)
    target = torch.tensor([1, 0])
    loss = chunked_linear_cross_entropy(
        hidden, weight, target, softcap=30.0, reduction="none"
    )
    assert (loss <= math.log(3) + 60).all() and (loss > 59).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backward", ["in_forward", "recompute"])
def test_half_precision_against_float64_with_every_option(dtype, backward):
    # hidden, weight and bias rounded to the half dtype; the reference is the naive
    # float64 computation from those same rounded numbers. Bounds (torch's eps:
    # 2^-7 for bfloat16, 2^-10 for float16): the loss, computed in float32, is
    # within 1e-3 of it; the gradients are within 2 eps in relative norm.
    g = torch.Generator().manual_seed(24)
    n, d, v = 128, 64, 2048
    hidden = torch.randn(n, d, generator=g).to(dtype)
    weight = (torch.randn(v, d, generator=g) / 8).to(dtype)
    bias = torch.randn(v, generator=g).to(dtype)
    cw = torch.rand(v, generator=g) + 0.5  # float32 class weights
    target = torch.randint(v, (n,), generator=g)
    target[0] = -100
    options = dict(label_smoothing=0.1, class_weight=cw, z_loss=1e-4, softcap=30.0)
    ref_inputs = [x.double().requires_grad_() for x in (hidden, weight, bias)]
    ref = naive_options(
        *ref_inputs[:2],
        target,
        ref_inputs[2],
        eps=0.1,
        class_weight=cw.double(),
        lam=1e-4,
        cap=30.0,
    )
    ref_grads = torch.autograd.grad(ref, ref_inputs)
    inputs = [x.clone().requires_grad_() for x in (hidden, weight, bias)]
    loss = chunked_linear_cross_entropy(
        inputs[0], inputs[1], target, inputs[2], backward=backward, **options
    )
    loss.backward()
    assert loss.dtype == torch.float32
    assert all(x.grad.dtype == dtype for x in inputs)
    eps = torch.finfo(dtype).eps
    assert abs(loss.item() - ref.item()) < 1e-3
    for x, want in zip(inputs, ref_grads, strict=True):
        rel = ((x.grad.double() - want).norm() / want.norm()).item()
        assert rel < 2 * eps, rel


def test_half_precision_default_chunk_is_a_sixteenth_and_bias_gradient():
    # N = 64 tokens: the default chunk is 64 // 16 = 4 rows, so the default and an
    # explicit chunk_size=4 run the same operations and agree bit for bit; the bias
    # gradient (accumulated in float32) is returned in the bias's dtype
    hidden, weight, target, bias = problem(25, 64, 4, 10)
    args = [x.detach().bfloat16().requires_grad_() for x in (hidden, weight, bias)]
    a = chunked_linear_cross_entropy(args[0], args[1], target, args[2])
    b = chunked_linear_cross_entropy(
        args[0], args[1], target, args[2], chunk_size=4
    )
    assert a.item() == b.item()
    a.backward()
    assert args[2].grad.dtype == torch.bfloat16
    # sum over tokens of (softmax - onehot) / N, computed from the rounded inputs
    z = args[0].double() @ args[1].double().T + args[2].double()
    expected = (torch.softmax(z, 1) - F.one_hot(target, 10)).sum(0).detach() / 64
    torch.testing.assert_close(
        args[2].grad.double(),
        expected,
        rtol=0,
        atol=2**-7 * expected.abs().max().item(),
    )


def test_loss_matches_the_formula_written_out_in_float64():
    # loss_n = log sum_v exp(z_nv) - z_{n y_n}, the sum over v written as a Python
    # loop of math.exp in float64, then averaged: no torch kernel and no lossnotes
    # code
    hidden, weight, target, bias = problem(1, 6, 4, 9)
    logits = (hidden @ weight.T + bias).detach().tolist()
    by_hand = sum(
        math.log(sum(math.exp(z) for z in row)) - row[y]
        for row, y in zip(logits, target.tolist(), strict=True)
    ) / len(logits)
    loss = chunked_linear_cross_entropy(
        hidden.detach(), weight.detach(), target, bias.detach(), chunk_size=4
    )
    assert loss.item() == pytest.approx(by_hand, rel=1e-13)


@pytest.mark.parametrize(
    ("reduction", "backward"),
    [
        ("mean", "in_forward"),
        ("sum", "in_forward"),
        ("mean", "recompute"),
        ("none", "recompute"),
    ],
)
def test_gradcheck_float64(reduction, backward):
    hidden, weight, target, bias = problem(2, 5, 3, 7, ignored=[4])

    def f(h, w, b):
        return chunked_linear_cross_entropy(
            h, w, target, b, chunk_size=2, reduction=reduction, backward=backward
        )

    # gradcheck runs backward twice on one graph; the second recomputes (see the
    # docstring), so the two agree to rounding, not bit for bit
    assert torch.autograd.gradcheck(f, (hidden, weight, bias), nondet_tol=1e-12)


def test_float32_at_a_realistic_size():
    # 512 tokens, d = 256, V = 8192: 16 chunks by default; float32 against the naive
    # float32
    hidden, weight, target, _ = problem(
        3, 512, 256, 8192, dtype=torch.float32, bias=False
    )
    loss = chunked_linear_cross_entropy(hidden, weight, target)
    loss.backward()
    got = loss.detach(), hidden.grad, weight.grad
    hidden.grad = weight.grad = None
    expected = naive_loss(hidden, weight, target, None)
    expected.backward()
    torch.testing.assert_close(got[0], expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], hidden.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got[2], weight.grad, rtol=1e-4, atol=1e-7)


@given(
    n=st.integers(1, 9),
    d=st.integers(1, 4),
    v=st.integers(1, 12),
    chunk=st.integers(1, 10),
    scale=st.sampled_from([1.0, 30.0, 300.0]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    seed=st.integers(0, 2**16),
)
def test_property_agrees_with_torch(n, d, v, chunk, scale, reduction, seed):
    hidden, weight, target, bias = problem(seed, n, d, v)
    with torch.no_grad():
        hidden.mul_(
            scale
        )  # large logits: the shift by the maximum must keep it finite
    loss = chunked_linear_cross_entropy(
        hidden, weight, target, bias, chunk_size=chunk, reduction=reduction
    )
    expected = naive_loss(hidden, weight, target, bias, reduction)
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    g = torch.ones_like(loss)
    inputs = (hidden, weight, bias)
    for a, b in zip(
        grads_of(loss, inputs, g), grads_of(expected, inputs, g), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_ignore_index_all_ignored_gives_nan_mean_and_zero_gradient_as_torch():
    hidden, weight, target, _ = problem(4, 3, 2, 4, bias=False, ignored=[0, 1, 2])
    loss = chunked_linear_cross_entropy(hidden, weight, target)
    assert math.isnan(loss.item()) and math.isnan(
        naive_loss(hidden, weight, target, None).item()
    )
    loss.backward()
    assert (
        hidden.grad.abs().max().item() == 0.0
        and weight.grad.abs().max().item() == 0.0
    )


def test_custom_ignore_index_inside_the_vocabulary():
    hidden, weight, target, _ = problem(5, 6, 3, 5, bias=False)
    target[:3] = 2
    loss = chunked_linear_cross_entropy(hidden, weight, target, ignore_index=2)
    expected = F.cross_entropy(hidden @ weight.T, target, ignore_index=2)
    torch.testing.assert_close(loss, expected)


def test_gradient_scaled_by_upstream_gradient_and_second_backward_recomputes():
    hidden, weight, target, bias = problem(6, 5, 3, 6)
    loss = chunked_linear_cross_entropy(hidden, weight, target, bias, chunk_size=2)
    (first,) = torch.autograd.grad(3.0 * loss, [weight], retain_graph=True)
    (second,) = torch.autograd.grad(loss, [weight])
    (expected,) = torch.autograd.grad(
        naive_loss(hidden, weight, target, bias), [weight]
    )
    torch.testing.assert_close(first, 3.0 * expected)
    torch.testing.assert_close(second, expected)


def test_no_grad_and_frozen_weight():
    hidden, weight, target, _ = problem(7, 4, 3, 6, bias=False)
    with torch.no_grad():
        loss = chunked_linear_cross_entropy(hidden, weight, target)
    assert loss.grad_fn is None
    frozen = weight.detach()
    chunked_linear_cross_entropy(hidden, frozen, target).backward()
    (expected,) = torch.autograd.grad(
        naive_loss(hidden, frozen, target, None), [hidden]
    )
    torch.testing.assert_close(hidden.grad, expected)


def test_double_backward_is_refused_with_a_clear_error():
    hidden, weight, target, _ = problem(8, 3, 2, 4, bias=False)
    for backward in ["in_forward", "recompute"]:
        loss = chunked_linear_cross_entropy(
            hidden, weight, target, backward=backward
        )
        with pytest.raises(
            RuntimeError,
            match=r"chunked_linear_cross_entropy does not support double backward",
        ):
            torch.autograd.grad(loss, [hidden], create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        torch.autograd.gradgradcheck(
            lambda h: chunked_linear_cross_entropy(h, weight.detach(), target),
            (hidden,),
        )


@pytest.mark.parametrize(
    "transform",
    [
        lambda f: torch.func.grad(f),
        lambda f: torch.func.vmap(f),
        lambda f: lambda h: torch.func.jvp(f, (h,), (torch.ones_like(h),)),
    ],
    ids=["grad", "vmap", "jvp"],
)
def test_torch_func_transforms_are_refused_by_name(transform):
    hidden, weight, target, _ = problem(8, 3, 2, 4, bias=False)
    w = weight.detach()

    def f(h):
        h2 = h if h.dim() == 2 else h.unsqueeze(0).expand(3, -1)
        return chunked_linear_cross_entropy(h2, w, target)

    with pytest.raises(
        RuntimeError,
        match="chunked_linear_cross_entropy does not support torch.func transforms",
    ):
        transform(f)(hidden.detach())


def test_arguments_after_bias_are_keyword_only():
    hidden, weight, target, bias = problem(8, 3, 2, 4)
    with pytest.raises(TypeError, match="positional argument"):
        chunked_linear_cross_entropy(hidden, weight, target, bias, 2)


def test_matches_torch_linear_cross_entropy_chunked_path():
    hidden, weight, target, bias = problem(
        9, 64, 8, 40, dtype=torch.float32, ignored=[5]
    )
    options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=16)
    expected = F.linear_cross_entropy(
        hidden, weight, target, linear_bias=bias, options=options
    )
    loss = chunked_linear_cross_entropy(hidden, weight, target, bias, chunk_size=16)
    torch.testing.assert_close(loss, expected)


def _rss_kib(key):
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc"
)
def test_peak_memory_is_one_chunk_not_the_logits():
    # N = 256 tokens, V = 65536: the logits are 64 MiB in float32, a chunk (16 rows)
    # 4 MiB; the naive computation holds at least the logits and their gradient
    # (128 MiB)
    hidden, weight, target, _ = problem(
        12, 256, 16, 65536, dtype=torch.float32, bias=False
    )
    logits_bytes = 256 * 65536 * 4
    grad_bytes = (hidden.numel() + weight.numel()) * 4
    small = [x[:8].detach().requires_grad_() for x in (hidden, weight)]
    chunked_linear_cross_entropy(
        *small, target[:8] % 8
    ).backward()  # warm up the kernels
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident size
    base = _rss_kib("VmRSS")
    chunked_linear_cross_entropy(hidden, weight, target).backward()
    extra = (_rss_kib("VmHWM") - base) * 1024 - grad_bytes
    assert extra < logits_bytes / 4, f"{extra / 2**20:.1f} MiB beyond the gradients"


# --- chunked_linear_cross_entropy: errors -----------------------------------------


def test_chunked_errors():
    hidden, weight, target, bias = problem(10, 4, 3, 5)
    cases = [
        (TypeError, "hidden must be a torch.Tensor", dict(hidden=[[1.0]])),
        (
            TypeError,
            "hidden must have a floating-point dtype",
            dict(hidden=torch.ones(4, 3, dtype=torch.long)),
        ),
        (
            ValueError,
            r"hidden must be a non-empty 2-D tensor \(N, d\)",
            dict(hidden=torch.ones(3)),
        ),
        (
            ValueError,
            r"weight must have shape \(V, 3\)",
            dict(weight=torch.ones(5, 2, dtype=torch.float64)),
        ),
        (
            TypeError,
            "weight must have the dtype of hidden",
            dict(weight=weight.float()),
        ),
        (
            TypeError,
            "bias must be None or a tensor of dtype",
            dict(bias=bias.float()),
        ),
        (
            ValueError,
            r"bias must have shape \(5,\)",
            dict(bias=torch.ones(4, dtype=torch.float64)),
        ),
        (
            TypeError,
            "target holds class indices, which need an integer dtype",
            dict(target=target.double()),
        ),
        (TypeError, "target must be a torch.Tensor", dict(target=[0, 1, 2, 3])),
        (ValueError, r"target must have shape \(4,\)", dict(target=target[:3])),
        (
            ValueError,
            r"target has class 5, outside 0..4",
            dict(target=torch.tensor([0, 5, 1, 2])),
        ),
        (
            ValueError,
            r"target has class -1",
            dict(target=torch.tensor([0, -1, 1, 2])),
        ),
        (TypeError, "ignore_index must be an int", dict(ignore_index=1.5)),
        (TypeError, "chunk_size must be an int or None", dict(chunk_size=2.0)),
        (ValueError, "chunk_size must be at least 1", dict(chunk_size=0)),
        (ValueError, "reduction must be one of", dict(reduction="avg")),
        (ValueError, "backward must be one of", dict(backward="later")),
        (
            ValueError,
            r"label_smoothing must be a finite number in \[0, 1\]",
            dict(label_smoothing=1.5),
        ),
        (
            TypeError,
            "label_smoothing must be a real number",
            dict(label_smoothing="0"),
        ),
        (
            ValueError,
            r"z_loss must be a finite number in \[0, ",
            dict(z_loss=-1e-4),
        ),
        (ValueError, "softcap must be None or a number > 0", dict(softcap=0.0)),
        (ValueError, "softcap must be a finite number", dict(softcap=-1.0)),
        (
            TypeError,
            "class_weight must be None or a floating-point tensor",
            dict(class_weight=[1.0] * 5),
        ),
        (
            ValueError,
            r"class_weight must have shape \(5,\)",
            dict(class_weight=torch.ones(4)),
        ),
        (
            ValueError,
            "backward='in_forward' needs a scalar loss",
            dict(reduction="none", backward="in_forward"),
        ),
    ]
    for error, message, change in cases:
        args = dict(hidden=hidden, weight=weight, target=target, bias=bias) | change
        with pytest.raises(error, match=message):
            chunked_linear_cross_entropy(**args)


# --- vocab_parallel_cross_entropy -------------------------------------------------


def test_vocab_parallel_single_process_matches_torch():
    g = torch.Generator().manual_seed(11)
    logits = (
        10 * torch.randn(6, 9, generator=g, dtype=torch.float64)
    ).requires_grad_()
    target = torch.tensor([0, 8, 3, -100, 4, 4])
    for reduction in ["mean", "sum", "none"]:
        loss = vocab_parallel_cross_entropy(logits, target, 0, reduction=reduction)
        expected = F.cross_entropy(logits, target, reduction=reduction)
        torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
        g_out = torch.rand(loss.shape, generator=g, dtype=torch.float64)
        (got,) = torch.autograd.grad(loss, [logits], g_out)
        (want,) = torch.autograd.grad(expected, [logits], g_out)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x: vocab_parallel_cross_entropy(x, target, 0), (logits,)
    )


def test_vocab_parallel_label_smoothing_single_process_matches_torch():
    g = torch.Generator().manual_seed(12)
    logits = (
        10 * torch.randn(5, 7, generator=g, dtype=torch.float64)
    ).requires_grad_()
    target = torch.tensor([0, 6, -100, 3, 3])
    for reduction, eps in itertools.product(["mean", "sum", "none"], [0.1, 1.0]):
        loss = vocab_parallel_cross_entropy(
            logits, target, 0, reduction=reduction, label_smoothing=eps
        )
        expected = F.cross_entropy(
            logits, target, reduction=reduction, label_smoothing=eps
        )
        torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
        up = torch.rand(loss.shape, generator=g, dtype=torch.float64)
        (got,) = torch.autograd.grad(loss, [logits], up)
        (want,) = torch.autograd.grad(expected, [logits], up)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("world_size", "reduction", "eps"), [(2, "none", 0.1), (4, "mean", 0.25)]
)
def test_vocab_parallel_on_processes_matches_single_process(
    world_size, reduction, eps
):
    g = torch.Generator().manual_seed(world_size)
    # 13 classes = uneven slices (7 + 6, or 4 + 3 + 3 + 3)
    logits = 20 * torch.randn(8, 13, generator=g, dtype=torch.float64)
    target = torch.randint(13, (8,), generator=g)
    target[1] = -100
    losses, grad = run_vocab_parallel(
        logits, target, world_size, reduction=reduction, label_smoothing=eps
    )
    reference = logits.clone().requires_grad_()
    expected = F.cross_entropy(
        reference, target, reduction=reduction, label_smoothing=eps
    )
    expected.sum().backward()
    for loss in losses:  # every process computed the same loss
        torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(grad, reference.grad, rtol=0, atol=1e-12)


def test_vocab_parallel_refuses_double_backward_and_transforms():
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1, 3])
    loss = vocab_parallel_cross_entropy(logits, target, 0, label_smoothing=0.1)
    with pytest.raises(
        RuntimeError,
        match="vocab_parallel_cross_entropy does not support double backward",
    ):
        torch.autograd.grad(loss, [logits], create_graph=True)
    with pytest.raises(
        RuntimeError,
        match="vocab_parallel_cross_entropy does not support torch.func transforms",
    ):
        torch.func.grad(lambda x: vocab_parallel_cross_entropy(x, target, 0))(
            logits.detach()
        )


def test_vocab_parallel_errors():
    logits = torch.zeros(2, 3)
    with pytest.raises(
        TypeError, match="local_logits must have a floating-point dtype"
    ):
        vocab_parallel_cross_entropy(
            torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), 0
        )
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        vocab_parallel_cross_entropy(logits, torch.tensor([0]), 0)
    with pytest.raises(TypeError, match="vocab_start must be an int"):
        vocab_parallel_cross_entropy(logits, torch.tensor([0, 1]), 0.0)
    with pytest.raises(ValueError, match="vocab_start must be non-negative"):
        vocab_parallel_cross_entropy(logits, torch.tensor([0, 1]), -1)
    with pytest.raises(ValueError, match="reduction must be one of"):
        vocab_parallel_cross_entropy(
            logits, torch.tensor([0, 1]), 0, reduction="avg"
        )
    with pytest.raises(
        ValueError, match="outside the vocabulary held by the processes"
    ):
        vocab_parallel_cross_entropy(logits, torch.tensor([0, 3]), 0)
    with pytest.raises(
        TypeError,
        match="group must be None or a torch.distributed.ProcessGroup.*got str",
    ):
        vocab_parallel_cross_entropy(logits, torch.tensor([0, 1]), 0, group="world")
    with pytest.raises(
        ValueError, match=r"label_smoothing must be a finite number"
    ):
        vocab_parallel_cross_entropy(
            logits, torch.tensor([0, 1]), 0, label_smoothing=-0.1
        )
    with pytest.raises(TypeError, match="world_size must be an int"):
        run_vocab_parallel(logits, torch.tensor([0, 1]), 2.0)
    with pytest.raises(ValueError, match=r"world_size must be in 1..3"):
        run_vocab_parallel(logits, torch.tensor([0, 1]), 4)


def test_vocab_parallel_error_in_a_process_is_raised():
    # class 7 is outside the vocabulary (V = 6) held by the one process, which
    # raises
    with pytest.raises(
        ValueError, match="process failed: .*outside the vocabulary held"
    ):
        run_vocab_parallel(torch.zeros(2, 6), torch.tensor([0, 7]), 1)
