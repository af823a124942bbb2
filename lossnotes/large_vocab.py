r"""Cross-entropy at large-vocabulary scale: chunked over tokens, or split over processes.

The functions of chapter 15. A language model ends with logits ``hidden @ weight.T`` over a
vocabulary of :math:`V` = 32k-256k tokens. For :math:`N` tokens those logits are :math:`N V`
floats, and their gradient as many again: at :math:`N = 4096`, :math:`V = 131072` that is 2 GiB
each in float32, more than the model's output layer itself. Two ways around it:

- :func:`chunked_linear_cross_entropy` computes the loss of ``N`` tokens a chunk of rows at a
  time, so that only one ``chunk_size x V`` block of logits is ever alive, forward or backward
  (the idea behind Liger Kernel's fused linear cross-entropy and Apple's Cut Cross-Entropy, in
  plain PyTorch).
- :func:`vocab_parallel_cross_entropy` lets each of :math:`P` processes hold :math:`V/P` columns
  of the logits and needs three all-reduces of :math:`N` numbers each, never the full logits
  (Megatron-LM's vocab-parallel cross-entropy). :func:`run_vocab_parallel` runs it on ``P``
  local processes, for the chapter and the tests.
"""

from __future__ import annotations

import os
import socket
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor
from torch.autograd.function import once_differentiable

from lossnotes._checks import check_reduction

#: By default the tokens are split into this many chunks, so that a chunk of logits is at most
#: 1/16 of the full logits.
DEFAULT_NUM_CHUNKS = 16

BACKWARDS = ("auto", "in_forward", "recompute")


# === validation ==================================================================================


def _check_float_matrix(x, name: str, shape: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype; got {x.dtype}")
    if x.dim() != 2 or x.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D tensor {shape}; got shape {tuple(x.shape)}"
        )
    return x


def _check_target(target, n: int, ignore_index: int) -> Tensor:
    if not isinstance(target, Tensor):
        raise TypeError(
            f"target must be a torch.Tensor of class indices; got {type(target).__name__}"
        )
    if (
        target.is_floating_point()
        or target.is_complex()
        or target.dtype == torch.bool
    ):
        raise TypeError(
            f"target must hold integer class indices; got {target.dtype}"
        )
    if target.shape != (n,):
        raise ValueError(
            f"target must have shape ({n},), one class per token; got {tuple(target.shape)}"
        )
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(
            f"ignore_index must be an int; got {type(ignore_index).__name__}"
        )
    return target.long()


def _check_range(target: Tensor, ignore_index: int, low: int, high: int) -> None:
    bad = ((target < low) | (target >= high)) & (target != ignore_index)
    if bad.any():
        value = target[bad][0].item()
        raise ValueError(
            f"target has class {value}, outside 0..{high - 1} (and not ignore_index={ignore_index})"
        )


# === chunked linear cross-entropy ================================================================


def _chunk_logits(
    out: Tensor, h: Tensor, weight: Tensor, bias: Tensor | None
) -> Tensor:
    """``h @ weight.T (+ bias)`` written into the preallocated ``out``: no new allocation."""
    if bias is None:
        return torch.mm(h, weight.T, out=out)
    return torch.addmm(bias, h, weight.T, out=out)


def _sweep(hidden, weight, bias, target, chunk_size, row_scale, lse, want):
    """One pass over the tokens, ``chunk_size`` rows at a time, through one logits buffer.

    With ``lse=None`` it computes each row's log-sum-exp and target logit (the forward pass);
    given ``lse`` it rebuilds the softmax from it (the recomputing backward). When ``want``
    asks for gradients, each chunk's buffer is turned in place into
    ``row_scale * (softmax - onehot)``, the gradient of the loss with respect to the chunk's
    logits, and multiplied into the gradients of ``hidden``, ``weight`` and ``bias``.
    """
    n, v = hidden.shape[0], weight.shape[0]
    buffer = hidden.new_empty(min(chunk_size, n), v)
    forward = lse is None
    if forward:
        lse, target_logit = hidden.new_empty(n), hidden.new_empty(n)
    else:
        target_logit = None
    grad_hidden = hidden.new_empty(hidden.shape) if want[0] else None
    grad_weight = grad_bias = None
    for start in range(0, n, chunk_size):
        rows = slice(start, min(start + chunk_size, n))
        h, t = hidden[rows], target[rows].unsqueeze(1)
        z = _chunk_logits(buffer[: h.shape[0]], h, weight, bias)
        if forward:
            target_logit[rows] = z.gather(1, t).squeeze(1)
            m = z.amax(dim=1, keepdim=True)
            z.sub_(m).exp_()  # e^(z - max): no overflow
            s = z.sum(dim=1, keepdim=True)
            lse[rows] = (m + s.log()).squeeze(1)
            scale = row_scale[rows].unsqueeze(1) / s
        else:
            z.sub_(lse[rows].unsqueeze(1)).exp_()  # the softmax itself
            scale = row_scale[rows].unsqueeze(1)
        if not any(want):
            continue
        z.mul_(scale).scatter_add_(
            1, t, -row_scale[rows].unsqueeze(1)
        )  # w * (p - onehot)
        if grad_hidden is not None:
            torch.mm(z, weight, out=grad_hidden[rows])
        if want[1]:
            grad_weight = (
                z.T @ h if grad_weight is None else grad_weight.addmm_(z.T, h)
            )
        if want[2]:
            grad_bias = (
                z.sum(dim=0) if grad_bias is None else grad_bias.add_(z.sum(dim=0))
            )
    return lse, target_logit, grad_hidden, grad_weight, grad_bias


def _reduce(losses: Tensor, count: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return losses
    total = losses.sum()
    return total / count if reduction == "mean" else total


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, hidden, weight, target, bias, chunk_size, ignore_index, reduction, mode
    ):
        valid = target != ignore_index
        safe_target = torch.where(valid, target, 0)
        count = valid.sum()
        row_scale = valid.to(hidden.dtype)
        if reduction == "mean":
            row_scale /= count.clamp(
                min=1
            )  # all ignored: loss 0/0 = nan, gradients 0, as torch
        want = (
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
            ctx.needs_input_grad[3],
        )
        in_forward = mode == "in_forward" and any(
            want
        )  # mode is "no_grad" under torch.no_grad
        lse, target_logit, *grads = _sweep(
            hidden,
            weight,
            bias,
            safe_target,
            chunk_size,
            row_scale,
            None,
            want if in_forward else (False, False, False),
        )
        losses = torch.where(valid, lse - target_logit, 0.0)
        ctx.save_for_backward(hidden, weight, bias, safe_target, row_scale, lse)
        ctx.chunk_size, ctx.want = chunk_size, want
        ctx.grads = grads if in_forward else None
        return _reduce(losses, count, reduction)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        if ctx.grads is not None:
            # Gradients computed in the forward pass: hand them over, scaled in place, and drop
            # our reference so that autograd can keep them as .grad without a copy.
            grads, ctx.grads = ctx.grads, None
            if grad_output.item() != 1.0:
                grads = [None if g is None else g.mul_(grad_output) for g in grads]
        else:  # reduction="none", backward="recompute", or a second backward (retain_graph)
            hidden, weight, bias, target, row_scale, lse = ctx.saved_tensors
            row_scale = row_scale * grad_output
            grads = _sweep(
                hidden,
                weight,
                bias,
                target,
                ctx.chunk_size,
                row_scale,
                lse,
                ctx.want,
            )[2:]
        grad_hidden, grad_weight, grad_bias = grads
        return grad_hidden, grad_weight, None, grad_bias, None, None, None, None


def chunked_linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None = None,
    chunk_size: int | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    *,
    backward: str = "auto",
) -> Tensor:
    r"""Cross-entropy of the logits ``hidden @ weight.T + bias``, never holding all of them.

    .. math::
        \ell_n = \log \sum_{v=1}^{V} e^{z_{nv}} - z_{n y_n}, \qquad
        z_n = W h_n + b, \qquad
        \frac{\partial \ell_n}{\partial z_n} = \operatorname{softmax}(z_n) - e_{y_n}

    The tokens are processed ``chunk_size`` rows at a time in one preallocated
    ``chunk_size x V`` buffer: its logits are computed with ``torch.mm(..., out=)``, shifted by
    their maximum and exponentiated in place, and (when gradients are needed) turned in place
    into :math:`w_n(\operatorname{softmax}(z_n) - e_{y_n})`, which is multiplied into
    :math:`\partial L/\partial h = G W`, :math:`\partial L/\partial W = G^\top H` and
    :math:`\partial L/\partial b = \sum_n G_n`. No other tensor of size :math:`V` per token
    is ever allocated.

    ``backward`` chooses when the gradients are formed:

    - ``"in_forward"`` (as Liger Kernel does): during the forward pass, chunk by chunk; the
      backward pass only multiplies them by the incoming gradient. Three matrix products, as
      the naive computation, but the gradients are held from the forward pass on.
    - ``"recompute"`` (as Cut Cross-Entropy does): the forward pass keeps one log-sum-exp per
      token; the backward pass recomputes each chunk's logits from it. A fourth matrix
      product, but nothing of size :math:`V \times d` before the backward pass.
    - ``"auto"`` (default): ``"in_forward"``, except for ``reduction="none"``, whose
      per-token incoming gradient is not known in the forward pass, so it recomputes.

    NaN or infinite inputs propagate to the loss, as in ``torch.nn.functional.cross_entropy``.
    Double backward is not supported. A second backward through the same graph
    (``retain_graph=True``) is correct: it recomputes.

    Args:
        hidden: ``(N, d)`` floating-point hidden states, one row per token.
        weight: ``(V, d)`` output-layer weight, same dtype as ``hidden``.
        target: ``(N,)`` integer class indices in ``0..V-1`` or ``ignore_index``.
        bias: optional ``(V,)`` output-layer bias.
        chunk_size: rows per chunk; default ``max(1, N // 16)``, so that a chunk of logits is
            at most 1/16 of the full logits.
        ignore_index: target value whose tokens add nothing to the loss or its gradients and
            are left out of the mean.
        reduction: ``"none"``, ``"mean"`` (over the tokens not ignored) or ``"sum"``.
        backward: ``"auto"``, ``"in_forward"`` or ``"recompute"``, see above.

    Returns:
        The loss, reduced as asked: a scalar, or ``(N,)`` for ``reduction="none"``.

    Raises:
        TypeError: a tensor argument is not a tensor, ``hidden``/``weight``/``bias`` are not
            floating-point or differ in dtype, ``target`` is not integer, or ``chunk_size`` or
            ``ignore_index`` is not an int.
        ValueError: shapes do not fit together, a target is outside ``0..V-1`` (and not
            ``ignore_index``), ``chunk_size < 1``, an unknown ``reduction`` or ``backward``,
            or ``backward="in_forward"`` with ``reduction="none"``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> hidden, weight = torch.randn(6, 4), torch.randn(10, 4)
        >>> target = torch.tensor([0, 3, 9, 2, 2, 7])
        >>> loss = chunked_linear_cross_entropy(hidden, weight, target, chunk_size=4)
        >>> naive = torch.nn.functional.cross_entropy(hidden @ weight.T, target)
        >>> torch.allclose(loss, naive)
        True

    References:
        Hsu et al. (2024), *Liger Kernel: Efficient Triton kernels for LLM training*,
        arXiv:2410.10989 (fused linear cross-entropy). Wijmans et al. (2024), *Cut your losses
        in large-vocabulary language models*, arXiv:2411.09009. PyTorch
        ``torch.nn.functional.linear_cross_entropy``.
    """
    hidden = _check_float_matrix(hidden, "hidden", "(N, d)")
    weight = _check_float_matrix(weight, "weight", "(V, d)")
    n, d = hidden.shape
    v = weight.shape[0]
    if weight.shape[1] != d:
        raise ValueError(
            f"weight must have shape (V, {d}) to match hidden (N, {d}); got {tuple(weight.shape)}"
        )
    if weight.dtype != hidden.dtype:
        raise TypeError(
            f"weight must have the dtype of hidden ({hidden.dtype}); got {weight.dtype}"
        )
    if bias is not None:
        if not isinstance(bias, Tensor) or bias.dtype != hidden.dtype:
            got = getattr(bias, "dtype", type(bias).__name__)
            raise TypeError(
                f"bias must be None or a tensor of dtype {hidden.dtype}; got {got}"
            )
        if bias.shape != (v,):
            raise ValueError(
                f"bias must have shape ({v},), one value per class; got {tuple(bias.shape)}"
            )
    target = _check_target(target, n, ignore_index)
    _check_range(target, ignore_index, 0, v)
    if chunk_size is None:
        chunk_size = max(1, n // DEFAULT_NUM_CHUNKS)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(
            f"chunk_size must be an int or None; got {type(chunk_size).__name__}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1; got {chunk_size}")
    check_reduction(reduction)
    if backward not in BACKWARDS:
        expected = ", ".join(map(repr, BACKWARDS))
        raise ValueError(f"backward must be one of {expected}; got {backward!r}")
    if backward == "in_forward" and reduction == "none":
        raise ValueError(
            "backward='in_forward' needs a scalar loss (reduction 'mean' or 'sum'): with "
            "reduction='none' the gradient of each token is only known in the backward pass"
        )
    mode = (
        "recompute"
        if backward == "recompute" or reduction == "none"
        else "in_forward"
    )
    if not torch.is_grad_enabled():
        mode = "no_grad"  # nothing will call backward: compute the loss only
    return _ChunkedLinearCrossEntropy.apply(
        hidden, weight, target, bias, chunk_size, ignore_index, reduction, mode
    )


# === vocab-parallel cross-entropy ================================================================


def _all_reduce(t: Tensor, op, group) -> Tensor:
    """All-reduce ``t`` in place; a no-op in a single process without ``torch.distributed``."""
    if group is not None or dist.is_initialized():
        dist.all_reduce(t, op=op, group=group)
    return t


class _VocabParallelCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, local_logits, target, vocab_start, group, ignore_index, reduction
    ):
        n, v_local = local_logits.shape
        # all-reduce 1: the maximum of each row over the whole vocabulary
        m = _all_reduce(local_logits.amax(dim=1), dist.ReduceOp.MAX, group)
        z = local_logits - m.unsqueeze(1)
        hit = (target >= vocab_start) & (target < vocab_start + v_local)
        local_target = torch.where(hit, target - vocab_start, 0)
        # all-reduce 2: the target's shifted logit, held by one shard; with it, how many shards
        # hold the target (1 for every token not ignored), to catch a target outside them all
        local_logit = z.gather(1, local_target.unsqueeze(1)).squeeze(1)
        picked = torch.stack([torch.where(hit, local_logit, 0.0), hit.to(z.dtype)])
        target_logit, holders = _all_reduce(picked, dist.ReduceOp.SUM, group)
        valid = target != ignore_index
        if (holders[valid] != 1).any():
            raise ValueError(
                "a target class is outside the vocabulary held by the processes"
            )
        # all-reduce 3: the sum of exponentials over the whole vocabulary
        z.exp_()
        s = _all_reduce(z.sum(dim=1), dist.ReduceOp.SUM, group)
        losses = torch.where(valid, s.log() - target_logit, 0.0)
        count = valid.sum()
        row_scale = valid.to(z.dtype)
        if reduction == "mean":
            row_scale /= count.clamp(min=1)
        ctx.save_for_backward(
            z.div_(s.unsqueeze(1)), local_target, hit & valid, row_scale
        )
        return _reduce(losses, count, reduction)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        softmax, local_target, hit, row_scale = ctx.saved_tensors
        row_scale = (row_scale * grad_output).unsqueeze(1)
        grad = softmax * row_scale  # no communication: every shard has all it needs
        grad.scatter_add_(
            1, local_target.unsqueeze(1), -row_scale * hit.unsqueeze(1)
        )
        return grad, None, None, None, None, None


def vocab_parallel_cross_entropy(
    local_logits: Tensor,
    target: Tensor,
    vocab_start: int,
    group=None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Cross-entropy when each process holds only its own slice of the vocabulary's logits.

    .. math::
        m_n = \max_p \max_{v \in S_p} z_{nv}, \qquad
        \ell_n = \log \sum_p \sum_{v \in S_p} e^{z_{nv} - m_n} - (z_{n y_n} - m_n)

    Process :math:`p` holds the columns :math:`S_p` = ``vocab_start`` ..
    ``vocab_start + V_p - 1`` of the logits of all :math:`N` tokens. Three all-reduces of
    :math:`N` numbers give every process the same loss: the row maxima (``MAX``), the target
    logits (``SUM``: only the process whose slice holds the target contributes) and the sums
    of exponentials (``SUM``). The gradient of the local slice,
    :math:`\operatorname{softmax}(z_n)_{S_p} - (e_{y_n})_{S_p}`, needs no communication.

    Without an initialised ``torch.distributed`` (and ``group=None``) it runs as a single
    process holding the whole vocabulary.

    Args:
        local_logits: ``(N, V_p)`` floating-point logits of this process's vocabulary slice.
        target: ``(N,)`` integer class indices in the *global* vocabulary, the same on every
            process, or ``ignore_index``.
        vocab_start: global index of this process's first class.
        group: the ``torch.distributed`` process group (default: the whole world).
        ignore_index: target value whose tokens add nothing and are left out of the mean.
        reduction: ``"none"``, ``"mean"`` (over the tokens not ignored) or ``"sum"``.

    Returns:
        The loss, the same on every process: a scalar, or ``(N,)`` for ``reduction="none"``.

    Raises:
        TypeError: ``local_logits`` is not a floating-point tensor, ``target`` not integer,
            ``vocab_start`` or ``ignore_index`` not an int.
        ValueError: shapes do not fit, ``vocab_start < 0``, an unknown ``reduction``, or a
            target class that no process holds (raised on every process).

    Example:
        >>> logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
        >>> target = torch.tensor([2, 0])
        >>> loss = vocab_parallel_cross_entropy(logits, target, vocab_start=0)
        >>> torch.allclose(loss, torch.nn.functional.cross_entropy(logits, target))
        True

    References:
        Shoeybi et al. (2019), *Megatron-LM: Training multi-billion parameter language models
        using model parallelism*, arXiv:1909.08053, section 3.
    """
    local_logits = _check_float_matrix(local_logits, "local_logits", "(N, V_p)")
    target = _check_target(target, local_logits.shape[0], ignore_index)
    if isinstance(vocab_start, bool) or not isinstance(vocab_start, int):
        raise TypeError(
            f"vocab_start must be an int; got {type(vocab_start).__name__}"
        )
    if vocab_start < 0:
        raise ValueError(f"vocab_start must be non-negative; got {vocab_start}")
    check_reduction(reduction)
    return _VocabParallelCrossEntropy.apply(
        local_logits, target, vocab_start, group, ignore_index, reduction
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vocab_parallel_worker(
    rank, world_size, port, logits, target, reduction, ignore_index, out_dir
):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
    )
    try:
        sizes = [
            len(c)
            for c in torch.tensor_split(torch.arange(logits.shape[1]), world_size)
        ]
        start = sum(sizes[:rank])
        local = logits[:, start : start + sizes[rank]].clone().requires_grad_()
        loss = vocab_parallel_cross_entropy(
            local, target, start, ignore_index=ignore_index, reduction=reduction
        )
        loss.sum().backward()
        torch.save(
            {"loss": loss.detach(), "grad": local.grad, "start": start},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def run_vocab_parallel(
    logits: Tensor,
    target: Tensor,
    world_size: int,
    *,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> tuple[Tensor, Tensor]:
    r"""Run :func:`vocab_parallel_cross_entropy` on ``world_size`` local processes.

    Starts ``world_size`` processes (``torch.multiprocessing``, gloo backend on 127.0.0.1),
    gives process :math:`p` the :math:`p`-th of ``world_size`` near-equal column slices of
    ``logits``, and has each compute the loss and the gradient of ``loss.sum()`` with respect
    to its slice. Returns what the processes computed, put back together.

    Args:
        logits: ``(N, V)`` floating-point logits, split by columns among the processes.
        target: ``(N,)`` integer class indices.
        world_size: number of processes, at least 1 and at most ``V``.
        reduction: passed to :func:`vocab_parallel_cross_entropy`.
        ignore_index: passed to :func:`vocab_parallel_cross_entropy`.

    Returns:
        ``(losses, grad)``: the loss each process computed, stacked (one row per process),
        and the ``(N, V)`` gradient assembled from the slices.

    Raises:
        TypeError: ``world_size`` is not an int.
        ValueError: ``world_size`` is outside ``1..V``; a process's error is re-raised.

    Example:
        >>> logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
        >>> losses, grad = run_vocab_parallel(logits, torch.tensor([1]), world_size=2)
        >>> torch.allclose(losses, torch.nn.functional.cross_entropy(logits, torch.tensor([1])))
        True

    References:
        PyTorch ``torch.distributed`` (gloo backend) and ``torch.multiprocessing.spawn``.
    """
    logits = _check_float_matrix(logits, "logits", "(N, V)")
    if isinstance(world_size, bool) or not isinstance(world_size, int):
        raise TypeError(
            f"world_size must be an int; got {type(world_size).__name__}"
        )
    if not 1 <= world_size <= logits.shape[1]:
        raise ValueError(
            f"world_size must be in 1..{logits.shape[1]} (one class per process at least); "
            f"got {world_size}"
        )
    target = _check_target(target, logits.shape[0], ignore_index)
    check_reduction(reduction)
    with tempfile.TemporaryDirectory() as out_dir:
        args = (
            world_size,
            _free_port(),
            logits.detach(),
            target,
            reduction,
            ignore_index,
            out_dir,
        )
        try:
            mp.spawn(
                _vocab_parallel_worker, args=args, nprocs=world_size, join=True
            )
        except mp.ProcessRaisedException as exc:
            last_line = str(exc).strip().splitlines()[-1]
            raise ValueError(
                f"a vocab-parallel process failed: {last_line}"
            ) from exc
        results = [
            torch.load(os.path.join(out_dir, f"rank{r}.pt"))
            for r in range(world_size)
        ]
    grad = torch.cat([r["grad"] for r in results], dim=1)
    return torch.stack([r["loss"] for r in results]), grad
