"""Tests of lossnotes.ctc against torch.nn.functional.ctc_loss and brute force.

The references: PyTorch's C++ CTC in float64, an enumeration of every alignment of
tiny problems (the definition of the loss), finite differences (gradcheck), and
numbers derived by hand in the comments.
"""

import itertools
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lossnotes.ctc import (
    ctc_best_path,
    ctc_collapse,
    ctc_forward_backward,
    ctc_greedy_decode,
    ctc_loss,
)

F64 = torch.float64


def random_batch(seed, T=12, N=6, C=5, S=5, blank=0, infeasible=True):
    """Logits, targets: varied lengths, repeats, an empty, an infeasible target."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, C, generator=g, dtype=F64) * 2
    labels = [c for c in range(C) if c != blank]
    targets = torch.tensor(labels)[torch.randint(len(labels), (N, S), generator=g)]
    targets[0, 1] = targets[0, 0]  # a repeat: needs a blank between the copies
    input_lengths = torch.randint(1, T + 1, (N,), generator=g)
    input_lengths[0] = T
    target_lengths = torch.randint(0, S + 1, (N,), generator=g)
    target_lengths[0], target_lengths[1] = S, 0  # full and empty
    if infeasible:  # S = 5 labels in 3 frames: no alignment
        input_lengths[2], target_lengths[2] = 3, S
    return logits, targets, input_lengths, target_lengths


def concatenated(targets, target_lengths):
    return torch.cat(
        [t[:n] for t, n in zip(targets, target_lengths.tolist(), strict=True)]
    )


def both(fn_args, reduction, zero_infinity, blank=0, layout="padded"):
    """Loss and logit gradient from torch and lossnotes, through log_softmax."""
    logits, targets, il, tl = fn_args
    if layout == "concatenated":
        targets = concatenated(targets, tl)
    out = []
    for fn in (F.ctc_loss, ctc_loss):
        x = logits.clone().requires_grad_()
        loss = fn(
            x.log_softmax(2),
            targets,
            il,
            tl,
            blank=blank,
            reduction=reduction,
            zero_infinity=zero_infinity,
        )
        loss.sum().backward()
        out.append((loss.detach(), x.grad))
    return out


# --- agreement with F.ctc_loss ----------------------------------------------------


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_torch_in_float64(seed, layout, zero_infinity, reduction):
    (l_t, g_t), (l_o, g_o) = both(
        random_batch(seed), reduction, zero_infinity, layout=layout
    )
    assert l_o.dtype == F64 and l_o.shape == l_t.shape
    assert torch.allclose(l_o, l_t, rtol=1e-7, atol=1e-7, equal_nan=True)
    # an infinite loss without zero_infinity: NaN gradient on the sample's frames,
    # as torch
    assert torch.equal(g_o.isnan(), g_t.isnan())
    fin = ~g_t.isnan()
    assert torch.allclose(g_o[fin], g_t[fin], rtol=0, atol=1e-7)


def test_infeasible_sample_gives_inf_or_zero():
    # 5 labels in 3 frames cannot fit: loss inf, and 0 with zero_infinity
    logits, targets, il, tl = random_batch(0)
    lp = logits.log_softmax(2)
    loss = ctc_loss(lp, targets, il, tl, reduction="none")
    assert math.isinf(loss[2]) and torch.isfinite(loss[:2]).all()
    loss0 = ctc_loss(lp, targets, il, tl, reduction="none", zero_infinity=True)
    assert torch.equal(loss0, torch.where(loss.isinf(), 0.0, loss))
    x = logits.clone().requires_grad_()
    ctc_loss(x.log_softmax(2), targets, il, tl, zero_infinity=True).backward()
    assert (x.grad[:, 2] == 0).all()


def test_repeats_need_a_blank_between_them():
    # "aa" needs 3 frames (a _ a); "ab" fits in 2 (a b)
    lp = torch.full((2, 1, 3), 1 / 3, dtype=F64).log()
    aa = ctc_loss(lp, torch.tensor([[1, 1]]), [2], [2], reduction="none")
    ab = ctc_loss(lp, torch.tensor([[1, 2]]), [2], [2], reduction="none")
    assert math.isinf(aa.item())
    assert math.isclose(
        ab.item(), 2 * math.log(3), rel_tol=1e-15
    )  # only "ab": (1/3)^2


@pytest.mark.parametrize("blank", [2, 4])
def test_other_blank_index(blank):
    args = random_batch(1, blank=blank, infeasible=False)
    (l_t, g_t), (l_o, g_o) = both(args, "mean", False, blank=blank)
    assert torch.allclose(l_o, l_t, rtol=1e-7)
    assert torch.allclose(g_o, g_t, atol=1e-7)


def test_mean_divides_by_target_length_then_batch():
    logits, targets, il, tl = random_batch(3, infeasible=False)
    lp = logits.log_softmax(2)
    per_sample = F.ctc_loss(lp, targets, il, tl, reduction="none")
    # torch's documented mean: each loss over its target length (at least 1), then
    # the mean
    expected = (per_sample / tl.clamp(min=1)).mean()
    assert torch.allclose(ctc_loss(lp, targets, il, tl), expected, rtol=1e-12)
    assert torch.allclose(
        ctc_loss(lp, targets, il, tl, reduction="sum"), per_sample.sum(), rtol=1e-12
    )


def test_unbatched_input_is_one_sample():
    logits, targets, il, tl = random_batch(2, infeasible=False)
    lp = logits.log_softmax(2)
    one = ctc_loss(lp[:, 0], targets[0], int(il[0]), int(tl[0]), reduction="none")
    assert one.shape == ()
    assert torch.allclose(
        one, F.ctc_loss(lp[:, 0], targets[0], il[0], tl[0], reduction="none")
    )
    x = lp[:, 0].detach().requires_grad_()
    ctc_loss(x, targets[0], il[0], tl[0]).backward()
    assert x.grad.shape == x.shape


def test_lists_and_tuples_for_lengths():
    logits, targets, il, tl = random_batch(5, infeasible=False)
    lp = logits.log_softmax(2)
    a = ctc_loss(lp, targets, il, tl)
    assert torch.equal(a, ctc_loss(lp, targets, il.tolist(), tuple(tl.tolist())))


@settings(max_examples=30, deadline=None)
@given(
    T=st.integers(1, 8),
    N=st.integers(1, 3),
    C=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    reduction=st.sampled_from(["none", "mean", "sum"]),
)
def test_matches_torch_on_random_shapes(T, N, C, seed, reduction):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, C, generator=g, dtype=F64)
    S = 4
    targets = torch.randint(1, C, (N, S), generator=g)
    il = torch.randint(0, T + 1, (N,), generator=g)
    tl = torch.randint(0, S + 1, (N,), generator=g)
    (l_t, g_t), (l_o, g_o) = both((logits, targets, il, tl), reduction, True)
    assert torch.allclose(l_o, l_t, rtol=1e-7, atol=1e-7)
    assert torch.allclose(g_o, g_t, atol=1e-7)


# --- the definition: a sum over alignments ----------------------------------------


def brute_force_log_likelihood(lp, target, blank=0):
    """log of the sum over every path of T symbols that collapses to ``target``."""
    T, C = lp.shape
    terms = [
        sum(lp[t, k].item() for t, k in enumerate(path))
        for path in itertools.product(range(C), repeat=T)
        if ctc_collapse(list(path), blank) == list(target)
    ]
    return (
        torch.logsumexp(torch.tensor(terms, dtype=F64), 0).item()
        if terms
        else -math.inf
    )


@pytest.mark.parametrize(
    "target", [[], [1], [1, 1], [1, 2], [2, 1, 2], [1, 1, 1], [2, 2, 1]]
)
def test_loss_is_minus_log_of_the_sum_over_alignments(target):
    g = torch.Generator().manual_seed(len(target))
    lp = torch.randn(5, 3, generator=g, dtype=F64).log_softmax(1)
    expected = -brute_force_log_likelihood(lp, target)
    got = ctc_loss(
        lp, torch.tensor(target, dtype=torch.long), 5, len(target), reduction="sum"
    )
    assert (math.isinf(expected) and math.isinf(got.item())) or math.isclose(
        got.item(), expected, rel_tol=1e-12
    )


def test_lattice_identity_at_every_frame():
    # p(y|x) = sum_s alpha_t(s) beta_t(s) / p_t(y'_s) for every t < T_n
    logits, targets, il, tl = random_batch(4)
    lp = logits.log_softmax(2)
    lat = ctc_forward_backward(lp, targets, il, tl)
    T, N, S = lat.log_alpha.shape
    emit = lp.gather(2, lat.extended.expand(T, N, S))
    per_frame = torch.logsumexp(lat.log_alpha + lat.log_beta - emit, dim=2)
    for n in range(N):
        frames = per_frame[: il[n], n]
        assert torch.allclose(
            frames, lat.log_likelihood[n].expand_as(frames), atol=1e-10
        )
    reference = -F.ctc_loss(lp, targets, il, tl, reduction="none")
    assert torch.allclose(lat.log_likelihood, reference, atol=1e-10)


def test_occupancy_sums_to_one_per_frame():
    # the gradient with respect to log_probs is -occupancy, which sums to 1 over the
    # classes
    logits, targets, il, tl = random_batch(6, infeasible=False)
    lp = logits.log_softmax(2).detach().requires_grad_()
    ctc_loss(lp, targets, il, tl, reduction="sum").backward()
    sums = -lp.grad.sum(2)  # (T, N)
    frames = torch.arange(lp.shape[0])[:, None] < il
    assert torch.allclose(sums[frames], torch.ones(()).to(F64), atol=1e-12)
    assert (sums[~frames] == 0).all()


def test_lattice_is_minus_inf_past_each_sample():
    # positions s > 2 L_n never exist, and beta_t = 0 on the padding frames t >= T_n
    logits, targets, il, tl = random_batch(8)
    lat = ctc_forward_backward(logits.log_softmax(2), targets, il, tl)
    for n in range(len(il)):
        assert (lat.log_alpha[:, n, 2 * tl[n] + 1 :] == -math.inf).all()
        assert (lat.log_beta[:, n, 2 * tl[n] + 1 :] == -math.inf).all()
        assert (lat.log_beta[il[n] :, n] == -math.inf).all()


@pytest.mark.parametrize(
    "lengths",
    [
        ([7, 5, 0, 7], [3, 2, 1, 0]),  # no frame; the last sample without labels
        ([2, 7, 7, 4], [0, 3, 3, 1]),  # the first sample without labels
        ([1, 1, 7, 7], [1, 0, 2, 3]),  # one frame
    ],
)
def test_packed_rows_of_every_length(lengths):
    # the rows are packed back to back, each 2 L_n + 3 columns, and the reversed
    # rows wait until frame T - T_n: every edge of that layout, against torch
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(7, 4, 4, generator=g, dtype=F64) * 2
    targets = torch.tensor([[1, 1, 2], [3, 3, 3], [2, 1, 2], [1, 2, 1]])
    il, tl = (torch.tensor(x) for x in lengths)
    for reduction in ("none", "sum"):
        (l_t, g_t), (l_o, g_o) = both(
            (logits, targets, il, tl), reduction, zero_infinity=True
        )
        assert torch.allclose(l_o, l_t, rtol=1e-10, atol=1e-10)
        assert torch.allclose(g_o, g_t, atol=1e-10)


def test_extreme_log_probs_stay_exact():
    # log-probabilities down to -2500 (e^-2500 underflows even float64 to 0):
    # the recursions never leave log space, so they agree with torch's float64 CTC
    g = torch.Generator().manual_seed(10)
    logits = torch.randn(30, 3, 6, generator=g, dtype=F64) * 600
    targets = torch.tensor([[1, 2, 2, 3], [4, 4, 1, 5], [5, 1, 2, 3]])
    il, tl = torch.tensor([30, 25, 18]), torch.tensor([4, 3, 4])
    assert logits.log_softmax(2).min() < -2000
    (l_t, g_t), (l_o, g_o) = both((logits, targets, il, tl), "none", False)
    assert torch.isfinite(l_t).all() and l_t.max() > 745  # p(y|x) < 1e-323
    assert torch.allclose(l_o, l_t, rtol=1e-12)
    assert torch.allclose(g_o, g_t, atol=1e-10)


def test_backward_twice_gives_twice_the_gradient():
    # the backward pass reads what the forward pass kept and changes none of it
    logits, targets, il, tl = random_batch(11, infeasible=False)
    x = logits.clone().requires_grad_()
    loss = ctc_loss(x.log_softmax(2), targets, il, tl, zero_infinity=True)
    loss.backward(retain_graph=True)
    once = x.grad.clone()
    loss.backward()
    assert torch.allclose(x.grad, 2 * once, rtol=1e-15, atol=0)


# --- the gradient -----------------------------------------------------------------


def test_gradcheck_on_log_probs():
    # the true derivative of the function of log_probs, even when they are not
    # normalised
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(6, 2, 4, generator=g, dtype=F64).requires_grad_()
    targets, il, tl = torch.tensor([[1, 2, 2], [3, 1, 0]]), [6, 5], [3, 2]
    for reduction in ("none", "mean", "sum"):
        fn = partial(ctc_loss, targets=targets, input_lengths=il, target_lengths=tl)
        assert torch.autograd.gradcheck(partial(fn, reduction=reduction), (lp,))


def test_torch_gradient_is_exp_log_probs_minus_occupancy():
    # PyTorch returns exp(lp) - gamma for d loss / d lp; the derivative is -gamma
    g = torch.Generator().manual_seed(1)
    lp = (
        torch.randn(6, 1, 4, generator=g, dtype=F64).log_softmax(2).requires_grad_()
    )
    targets, il, tl = torch.tensor([[1, 2, 2]]), [6], [3]
    F.ctc_loss(lp, targets, il, tl, reduction="sum").backward()
    torch_grad = lp.grad.clone()
    lp.grad = None
    ctc_loss(lp, targets, il, tl, reduction="sum").backward()
    assert torch.allclose(torch_grad - lp.grad, lp.detach().exp(), atol=1e-12)
    assert torch.allclose(lp.grad.sum(2), -torch.ones(6, 1, dtype=F64), atol=1e-12)


def test_float32_against_float64():
    # the loss within 1e-5 relative, the gradient within 1e-5 of max|g| (float64
    # recursion), and never worse than torch's own float32 gradient
    torch.manual_seed(0)
    T, N, C, L = 300, 4, 1000, 60
    logits = torch.randn(T, N, C, dtype=F64)
    targets = torch.randint(1, C, (N, L))
    il, tl = (
        torch.tensor([T, T - 20, T - 50, 200]),
        torch.tensor([L, L - 5, 40, 30]),
    )

    def run(fn, dtype):
        x = logits.to(dtype, copy=True).requires_grad_()
        loss = fn(x.log_softmax(2), targets, il, tl, reduction="sum")
        loss.backward()
        return loss.detach().to(F64), x.grad.to(F64)

    l64, g64 = run(F.ctc_loss, F64)
    l32, g32 = run(ctc_loss, torch.float32)
    _, g32_torch = run(F.ctc_loss, torch.float32)
    scale = g64.abs().max()
    err, err_torch = (
        (g32 - g64).abs().max() / scale,
        (g32_torch - g64).abs().max() / scale,
    )
    assert abs(l32 - l64) / l64 < 1e-5
    assert err < 1e-5
    assert err <= err_torch


# --- decoding ---------------------------------------------------------------------


def test_collapse_merges_repeats_then_drops_blanks():
    assert ctc_collapse([1, 1, 0, 1, 2, 2, 0]) == [
        1,
        1,
        2,
    ]  # a a _ a b b _ -> a a b
    assert ctc_collapse(torch.tensor([0, 0, 0])) == []
    assert ctc_collapse([3, 3, 3], blank=3) == []
    assert ctc_collapse([]) == []


def test_best_path_is_the_best_alignment():
    g = torch.Generator().manual_seed(2)
    lp = torch.randn(5, 3, generator=g, dtype=F64).log_softmax(1)
    target = [1, 2]
    best = max(
        (sum(lp[t, k].item() for t, k in enumerate(path)), path)
        for path in itertools.product(range(3), repeat=5)
        if ctc_collapse(list(path)) == target
    )
    result = ctc_best_path(lp, torch.tensor(target), 5, 2)
    assert math.isclose(result.log_prob.item(), best[0], rel_tol=1e-12)
    assert tuple(result.labels[0].tolist()) == best[1]
    assert ctc_collapse(result.labels[0]) == target


def test_best_path_batch_collapses_to_targets():
    logits, targets, il, tl = random_batch(7)
    lp = logits.log_softmax(2)
    result = ctc_best_path(lp, targets, il, tl)
    ll = ctc_forward_backward(lp, targets, il, tl).log_likelihood
    for n in range(len(il)):
        if math.isinf(ll[n]):
            assert (result.positions[n] == -1).all() and math.isinf(
                result.log_prob[n]
            )
            continue
        path = result.labels[n, : il[n]]
        assert ctc_collapse(path) == targets[n, : tl[n]].tolist()
        assert (result.labels[n, il[n] :] == -1).all()
        assert result.log_prob[n] <= ll[n]  # one alignment is at most all of them
        picked = lp[torch.arange(il[n]), n, path].sum()
        assert torch.isclose(picked, result.log_prob[n])


def test_greedy_decode():
    # frames' argmax: a a _ a b (5 frames), and a b a (the rows rolled, 3 frames)
    p = torch.tensor(
        [
            [0.1, 0.8, 0.1],
            [0.2, 0.7, 0.1],
            [0.6, 0.3, 0.1],
            [0.1, 0.8, 0.1],
            [0.1, 0.1, 0.8],
        ]
    )
    lp = torch.stack([p, p.roll(-3, dims=0)], dim=1).log()
    assert ctc_greedy_decode(lp, [5, 3]) == [[1, 1, 2], [1, 2, 1]]
    assert ctc_greedy_decode(lp[:, 0]) == [[1, 1, 2]]
    # with blank = 1, all 5 frames: 1 1 0 1 2 -> 0 2 and 1 2 1 1 0 -> 2 0
    assert ctc_greedy_decode(lp, blank=1) == [[0, 2], [2, 0]]


# --- errors -----------------------------------------------------------------------


def good():
    lp = torch.randn(4, 2, 3).log_softmax(2)
    return (
        lp,
        torch.tensor([[1, 2], [2, 0]]),
        torch.tensor([4, 3]),
        torch.tensor([2, 1]),
    )


@pytest.mark.parametrize(
    "change, error, match",
    [
        (
            dict(log_probs=torch.zeros(4, 2, 3, dtype=torch.long)),
            TypeError,
            "floating",
        ),
        (dict(log_probs=torch.zeros(4, 3, 2, 1)), ValueError, r"shape \(T, N, C\)"),
        (dict(log_probs=torch.zeros(0, 2, 3)), ValueError, "empty"),
        (
            dict(targets=torch.tensor([[1.0, 2.0], [2.0, 0.0]])),
            TypeError,
            "integer dtype",
        ),
        (dict(targets=[[1, 2], [2, 0]]), TypeError, "torch.Tensor"),
        (
            dict(targets=torch.tensor([[1, 0], [2, 0]])),
            ValueError,
            "contain the blank",
        ),
        (dict(targets=torch.tensor([[1, 3], [2, 0]])), ValueError, "class 3"),
        (dict(targets=torch.tensor([[1, -1], [2, 0]])), ValueError, "class -1"),
        (dict(targets=torch.tensor([[1], [2]])), ValueError, "S >= max"),
        (
            dict(targets=torch.tensor([1, 2, 2, 1])),
            ValueError,
            "sum\\(target_lengths\\) = 3",
        ),
        (dict(input_lengths=torch.tensor([5, 3])), ValueError, "<= T=4"),
        (dict(input_lengths=torch.tensor([4, -1])), ValueError, ">= 0"),
        (dict(input_lengths=torch.tensor([4.0, 3.0])), TypeError, "integers"),
        (dict(input_lengths=torch.tensor([4])), ValueError, r"shape \(2,\)"),
        (dict(input_lengths="4"), TypeError, "integer tensor"),
        (dict(target_lengths=torch.tensor([2, -1])), ValueError, ">= 0"),
        (dict(target_lengths=torch.tensor([3, 1])), ValueError, "S >= max"),
        (dict(blank=3), ValueError, "blank=3"),
        (dict(blank=1.0), TypeError, "blank must be an int"),
        (dict(reduction="batchmean"), ValueError, "reduction"),
        (dict(zero_infinity=1), TypeError, "zero_infinity"),
    ],
)
def test_errors(change, error, match):
    lp, targets, il, tl = good()
    kwargs = dict(
        log_probs=lp, targets=targets, input_lengths=il, target_lengths=tl
    )
    kwargs.update(change)
    with pytest.raises(error, match=match):
        ctc_loss(**kwargs)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_inf_log_probs(bad):
    lp, targets, il, tl = good()
    lp = lp.clone()
    lp[1, 0, 2] = bad  # class 2 is a target label of sample 0
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        ctc_loss(lp, targets, il, tl)


def test_decoder_errors():
    with pytest.raises(TypeError, match="sequence of ints"):
        ctc_collapse([1, 2.5])
    with pytest.raises(TypeError, match="1-D integer tensor"):
        ctc_collapse(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="NaN"):
        ctc_greedy_decode(torch.tensor([[math.nan, 0.0]]))
    with pytest.raises(ValueError, match="<= T=1"):
        ctc_greedy_decode(torch.zeros(1, 2), 2)
    lp, targets, il, tl = good()
    with pytest.raises(ValueError, match="contain the blank"):
        ctc_best_path(lp, torch.tensor([[0, 1], [1, 1]]), il, tl)
