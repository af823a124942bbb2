"""Tests of lossnotes.large_vocab against torch.nn.functional.cross_entropy and by hand.

The vocab-parallel tests start real processes (gloo backend on 127.0.0.1), 2 and 4 of them.
"""

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
)
from lossnotes.stability import log_softmax


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


# --- chunked_linear_cross_entropy: values and gradients ----------------------------------------


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
        chunk_size,
        reduction=reduction,
        backward=backward,
    )
    expected = naive_loss(hidden, weight, target, bias, reduction)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    g = torch.linspace(0.5, 2.0, loss.numel(), dtype=loss.dtype).reshape(loss.shape)
    got = grads_of(loss, (hidden, weight, bias), g)
    want = grads_of(expected, (hidden, weight, bias), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_loss_matches_lossnotes_log_softmax_by_hand():
    # loss_n = -log_softmax(z_n)[y_n], averaged; log_softmax from lossnotes.stability
    hidden, weight, target, bias = problem(1, 6, 4, 9)
    logits = (hidden @ weight.T + bias).detach()
    by_hand = -log_softmax(logits).gather(1, target.unsqueeze(1)).mean()
    loss = chunked_linear_cross_entropy(
        hidden.detach(), weight.detach(), target, bias.detach(), 4
    )
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-13)


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
            h, w, target, b, 2, reduction=reduction, backward=backward
        )

    # gradcheck runs backward twice on one graph; the second recomputes (see the docstring),
    # so the two agree to rounding, not bit for bit
    assert torch.autograd.gradcheck(f, (hidden, weight, bias), nondet_tol=1e-12)


def test_float32_at_a_realistic_size():
    # 512 tokens, d = 256, V = 8192: 16 chunks by default; float32 against the naive float32
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
        hidden, weight, target, bias, chunk, reduction=reduction
    )
    expected = naive_loss(hidden, weight, target, bias, reduction)
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    g = torch.ones_like(loss)
    inputs = (hidden, weight, bias)
    for a, b in zip(grads_of(loss, inputs, g), grads_of(expected, inputs, g)):
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
    loss = chunked_linear_cross_entropy(hidden, weight, target, bias, 2)
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


def test_double_backward_is_refused():
    hidden, weight, target, _ = problem(8, 3, 2, 4, bias=False)
    loss = chunked_linear_cross_entropy(hidden, weight, target)
    (g,) = torch.autograd.grad(loss, [hidden], create_graph=True)
    # the gradient is a constant to autograd: a second derivative through it cannot be taken
    with pytest.raises(RuntimeError, match="does not require grad"):
        g.sum().backward()


def test_matches_torch_linear_cross_entropy_chunked_path():
    hidden, weight, target, bias = problem(
        9, 64, 8, 40, dtype=torch.float32, ignored=[5]
    )
    options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=16)
    expected = F.linear_cross_entropy(
        hidden, weight, target, linear_bias=bias, options=options
    )
    loss = chunked_linear_cross_entropy(hidden, weight, target, bias, 16)
    torch.testing.assert_close(loss, expected)


def _rss_kib(key):
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc"
)
def test_peak_memory_is_one_chunk_not_the_logits():
    # N = 256 tokens, V = 65536: the logits are 64 MiB in float32, a chunk (16 rows) 4 MiB;
    # the naive computation holds at least the logits and their gradient (128 MiB)
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


# --- chunked_linear_cross_entropy: errors ------------------------------------------------------


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
            "target must hold integer class indices",
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
            "backward='in_forward' needs a scalar loss",
            dict(reduction="none", backward="in_forward"),
        ),
    ]
    for error, message, change in cases:
        args = dict(hidden=hidden, weight=weight, target=target, bias=bias) | change
        with pytest.raises(error, match=message):
            chunked_linear_cross_entropy(**args)


# --- vocab_parallel_cross_entropy --------------------------------------------------------------


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


@pytest.mark.parametrize(("world_size", "reduction"), [(2, "none"), (4, "mean")])
def test_vocab_parallel_on_processes_matches_single_process(world_size, reduction):
    g = torch.Generator().manual_seed(world_size)
    logits = 20 * torch.randn(
        8, 13, generator=g, dtype=torch.float64
    )  # 13 = uneven slices
    target = torch.randint(13, (8,), generator=g)
    target[1] = -100
    losses, grad = run_vocab_parallel(
        logits, target, world_size, reduction=reduction
    )
    reference = logits.clone().requires_grad_()
    expected = F.cross_entropy(reference, target, reduction=reduction)
    expected.sum().backward()
    for loss in losses:  # every process computed the same loss
        torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(grad, reference.grad, rtol=0, atol=1e-6)


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
    with pytest.raises(TypeError, match="world_size must be an int"):
        run_vocab_parallel(logits, torch.tensor([0, 1]), 2.0)
    with pytest.raises(ValueError, match=r"world_size must be in 1..3"):
        run_vocab_parallel(logits, torch.tensor([0, 1]), 4)


def test_vocab_parallel_error_in_a_process_is_raised():
    # class 7 is outside the vocabulary (V = 6) held by the one process, which raises
    with pytest.raises(
        ValueError, match="process failed: .*outside the vocabulary held"
    ):
        run_vocab_parallel(torch.zeros(2, 6), torch.tensor([0, 7]), 1)
