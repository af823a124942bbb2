r"""Cross-entropy over a large vocabulary: chunked over tokens, or split by process.

The functions of chapter 15. A language model ends with logits ``hidden @ weight.T``
over a vocabulary of :math:`V` = 32k-256k tokens. For :math:`N` tokens those logits
are :math:`N V` floats, and their gradient as many again: at :math:`N = 4096`,
:math:`V = 131072` that is 2 GiB each in float32, more than the model's output layer
itself. Two ways around it:

- :func:`chunked_linear_cross_entropy` computes the loss of ``N`` tokens a chunk of
  rows at a time, so that only one ``chunk_size x V`` block of logits is ever alive,
  forward or backward (the idea behind Liger Kernel's fused linear cross-entropy and
  Apple's Cut Cross-Entropy, in plain PyTorch).
- :func:`vocab_parallel_cross_entropy` lets each of :math:`P` processes hold
  :math:`V/P` columns of the logits and needs three all-reduces of :math:`N` numbers
  each, never the full logits (Megatron-LM's vocab-parallel cross-entropy).
  :func:`run_vocab_parallel` runs it on ``P`` local processes, for the chapter and
  the tests.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import tempfile
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from lossnotes._checks import (
    check_index_tensor,
    check_real,
    check_reduction,
    is_transformed,
)

#: By default the tokens are split into this many chunks, so that a chunk of logits
#: is at most 1/16 of the full logits.
DEFAULT_NUM_CHUNKS = 16

BACKWARDS = ("auto", "in_forward", "recompute")


# === validation ===================================================================


def _check_float_matrix(x, name: str, shape: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype; got {x.dtype}")
    if x.dim() != 2 or x.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D tensor {shape}; "
            f"got shape {tuple(x.shape)}"
        )
    return x


def _check_target(target, n: int, ignore_index: int) -> Tensor:
    check_index_tensor(target, "target")
    if target.shape != (n,):
        raise ValueError(
            f"target must have shape ({n},), one class per token; "
            f"got {tuple(target.shape)}"
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
            f"target has class {value}, outside 0..{high - 1} "
            f"(and not ignore_index={ignore_index})"
        )


# === chunked linear cross-entropy =================================================

_HALF = (torch.float16, torch.bfloat16)


def _refuse_transform(name: str, *tensors) -> None:
    if is_transformed(*tensors) or torch._C._functorch.peek_interpreter_stack():
        raise RuntimeError(
            f"{name} does not support torch.func transforms (grad, vmap, jvp, "
            "...): its backward pass is a hand-written autograd.Function that "
            "computes the gradients chunk by chunk. Call it outside the transform "
            "and use "
            "torch.autograd.grad, or use F.cross_entropy on the full logits"
        )


def _refuse_double_backward(name: str) -> None:
    # autograd runs a backward pass with grad mode on exactly when create_graph=True
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"{name} does not support double backward (create_graph=True): its "
            "gradients are computed chunk by chunk by a hand-written backward pass "
            "that autograd cannot differentiate again. For second derivatives use "
            "F.cross_entropy on the full logits"
        )


@dataclass(frozen=True)
class _Options:
    chunk_size: int
    ignore_index: int
    reduction: str
    label_smoothing: float
    z_loss: float
    softcap: float | None
    mode: str  # "in_forward", "recompute" or "no_grad"


def _grad_of_logits(z, rows, target, cw, opt, r, b, lse, v, deriv=None):
    """Turn ``z`` in place into the gradient of the loss with respect to the logits.

    ``z`` holds the softmax of the rows ``rows``; the result is
    ``alpha p - beta onehot - gamma w``, times the softcap's derivative ``deriv``.
    """
    eps, lam = opt.label_smoothing, opt.z_loss
    rr = r[rows]
    t = target[rows].unsqueeze(1)
    beta = rr if cw is None else rr * cw[target[rows]]
    alpha = beta * (1 - eps)
    if eps > 0:
        w_mean = 1.0 if cw is None else cw.sum() / v
        alpha = alpha + rr * (eps * w_mean)
    beta = beta * (1 - eps)
    if lam > 0:
        alpha = alpha + (2 * lam) * b[rows] * lse[rows]
    z.mul_(alpha.unsqueeze(1)).scatter_add_(1, t, -beta.unsqueeze(1))
    if eps > 0:  # minus gamma_n w_c
        gamma = rr * (eps / v)
        if cw is None:
            z.sub_(gamma.unsqueeze(1))
        else:
            z.addr_(gamma, cw, alpha=-1)
    if deriv is not None:
        z.mul_(deriv)
    return z


def _softcap_(z, cap, deriv):
    """``z <- cap tanh(z / cap)`` in place; ``deriv <- 1 - tanh^2``, its slope."""
    z.div_(cap).tanh_()
    if deriv is not None:
        torch.mul(z, z, out=deriv).neg_().add_(1.0)
    return z.mul_(cap)


def _sweep(hidden, weight, bias, target, cw, opt, r, b, lse, want):
    """One pass over the tokens, ``opt.chunk_size`` rows at a time, in one buffer.

    With ``lse=None`` it computes, per row, the log-sum-exp ``lse`` and the two
    numbers the loss needs (``stats``: ``lse - z_y`` and ``sum_c w_c (lse - z_c)``):
    the forward pass. Given ``lse`` it recomputes the softmax: the recomputing
    backward. When ``want`` asks for gradients, each chunk's buffer is turned in
    place into the gradient of the loss with respect to the chunk's logits
    (:func:`_grad_of_logits`) and multiplied into the gradients of ``hidden``,
    ``weight`` and ``bias``. ``r`` and ``b`` are each row's weight in the
    cross-entropy and in the z-loss.

    The softmax is computed in place by ``torch.softmax(z, out=z)``, one fused pass;
    the log-sum-exp then follows from the row maximum ``m`` and the largest
    probability, ``lse = m - log max_c p_c``. Half-precision inputs: the chunk's
    logits and gradient live in one buffer of the input dtype; the rest is computed
    in float32, a quarter of the chunk's rows at a time, so that the float32 buffer
    is a quarter of the chunk.
    """
    n, v = hidden.shape[0], weight.shape[0]
    half = hidden.dtype in _HALF
    cap, eps = opt.softcap, opt.label_smoothing
    rows_max = min(opt.chunk_size, n)
    out = hidden.new_empty(rows_max, v)
    sub_rows = -(-rows_max // 4) if half else rows_max
    work = out.new_empty(sub_rows, v, dtype=r.dtype) if half else out
    deriv = work.new_empty(sub_rows, v) if cap is not None and any(want) else None
    forward = lse is None
    stats = None
    if forward:
        lse = r.new_empty(n)
        stats = r.new_zeros(2, n)
    grad_hidden = hidden.new_empty(hidden.shape) if want[0] else None
    grad_weight = grad_bias = None
    w_total = float(v) if cw is None else cw.sum()
    for start in range(0, n, opt.chunk_size):
        k = min(opt.chunk_size, n - start)
        h = hidden[start : start + k]
        logits = out[:k]
        if bias is None:
            torch.mm(h, weight.T, out=logits)
        else:
            torch.addmm(bias, h, weight.T, out=logits)
        for s0 in range(0, k, sub_rows):
            kk = min(sub_rows, k - s0)
            rows = slice(start + s0, start + s0 + kk)
            t = target[rows].unsqueeze(1)
            if half:  # float32 from here on
                z = work[:kk].copy_(logits[s0 : s0 + kk])
            else:
                z = logits
            if cap is not None:
                _softcap_(z, cap, None if deriv is None else deriv[:kk])
            if forward:
                z_y = z.gather(1, t).squeeze(1)
                if eps > 0:  # sum_c w_c z_c, for sum_c w_c (lse - z_c)
                    smooth = z.sum(dim=1) if cw is None else torch.mv(z, cw)
                m = z.amax(dim=1)
            torch.softmax(z, dim=1, out=z)  # in place, one fused pass
            if forward:
                # the largest probability is e^(m - lse) >= 1/V: it never underflows
                lse[rows] = m - z.amax(dim=1).log()
                stats[0, rows] = lse[rows] - z_y
                if eps > 0:
                    stats[1, rows] = w_total * lse[rows] - smooth
            if not any(want):
                continue
            dv = None if deriv is None else deriv[:kk]
            _grad_of_logits(z, rows, target, cw, opt, r, b, lse, v, dv)
            if half:  # the gradient, rounded once to the input dtype
                logits[s0 : s0 + kk].copy_(z)
            if want[2]:
                part = z.sum(dim=0)
                grad_bias = part if grad_bias is None else grad_bias.add_(part)
        if not any(want):
            continue
        g = out[:k]
        if grad_hidden is not None:
            torch.mm(g, weight, out=grad_hidden[start : start + k])
        if want[1]:
            if grad_weight is None:
                grad_weight = g.T @ h
            else:
                grad_weight.addmm_(g.T, h)
    if grad_bias is not None:
        grad_bias = grad_bias.to(hidden.dtype)
    return lse, stats, grad_hidden, grad_weight, grad_bias


def _row_weights(target, valid, class_weight, reduction, acc):
    """Each row's weight in the cross-entropy (``r``) and in the z-loss (``b``).

    ``mean`` divides the cross-entropy by the summed class weights of the rows not
    ignored, as ``F.cross_entropy`` does, and the z-loss by their number.
    """
    count = valid.sum()
    b = valid.to(acc)
    w_y = b if class_weight is None else class_weight[target] * b
    r = b.clone()
    if reduction == "mean":
        total = w_y.sum()
        r /= total.clamp(
            min=torch.finfo(acc).tiny
        )  # all ignored: loss nan, gradients 0
        b /= count.clamp(min=1)
    else:
        total = None
    return r, b, count, total


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, target, bias, class_weight, opt):
        acc = torch.float32 if hidden.dtype in _HALF else hidden.dtype
        valid = target != opt.ignore_index
        safe_target = torch.where(valid, target, 0)
        cw = None if class_weight is None else class_weight.to(acc)
        r, b, count, total = _row_weights(
            safe_target, valid, cw, opt.reduction, acc
        )
        want = (
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
            ctx.needs_input_grad[3],
        )
        in_forward = opt.mode == "in_forward" and any(want)
        lse, stats, *grads = _sweep(
            hidden,
            weight,
            bias,
            safe_target,
            cw,
            opt,
            r,
            b,
            None,
            want if in_forward else (False, False, False),
        )
        ce, zl = _row_losses(
            lse, stats, safe_target, valid, cw, opt, weight.shape[0]
        )
        ctx.save_for_backward(
            hidden,
            weight,
            bias,
            safe_target,
            cw,
            r,
            b if opt.z_loss > 0 else None,
            lse,
        )
        ctx.opt, ctx.want = opt, want
        ctx.grads = grads if in_forward else None
        return _reduce(ce, zl, opt, count, total)  # float32 for half inputs

    @staticmethod
    def backward(ctx, grad_output):
        _refuse_double_backward("chunked_linear_cross_entropy")
        if ctx.grads is not None:
            # Gradients computed in the forward pass: hand them over, scaled in
            # place, and drop our reference so that autograd can keep them as .grad
            # without a copy.
            grads, ctx.grads = ctx.grads, None
            if grad_output.item() != 1.0:
                grads = [None if g is None else g.mul_(grad_output) for g in grads]
        else:  # reduction="none", backward="recompute", or a second backward
            hidden, weight, bias, target, cw, r, b, lse = ctx.saved_tensors
            g = grad_output.to(r.dtype)
            r = r * g
            b = None if b is None else b * g
            grads = _sweep(
                hidden, weight, bias, target, cw, ctx.opt, r, b, lse, ctx.want
            )[2:]
        grad_hidden, grad_weight, grad_bias = grads
        return grad_hidden, grad_weight, None, grad_bias, None, None


def _row_losses(lse, stats, target, valid, cw, opt, v):
    """Each row's cross-entropy and z-loss, 0 for ignored rows."""
    eps = opt.label_smoothing
    nll, smooth = stats  # lse - z_y and sum_c w_c (lse - z_c)
    ce = nll if cw is None else nll * cw[target]
    if eps > 0:
        ce = (1 - eps) * ce + (eps / v) * smooth
    ce = torch.where(valid, ce, 0.0)
    if opt.z_loss == 0:
        return ce, None
    return ce, torch.where(valid, opt.z_loss * lse.square(), 0.0)


def _reduce(ce, zl, opt, count, total):
    if opt.reduction == "none":
        return ce if zl is None else ce + zl
    if opt.reduction == "sum":
        return ce.sum() if zl is None else ce.sum() + zl.sum()
    # mean: the cross-entropy over the summed class weights of the rows not ignored
    # (as F.cross_entropy), the z-loss over their number
    loss = ce.sum() / total
    return loss if zl is None else loss + zl.sum() / count


def _check_options(v, label_smoothing, class_weight, z_loss, softcap):
    label_smoothing = check_real(label_smoothing, "label_smoothing", 0.0, 1.0)
    z_loss = check_real(z_loss, "z_loss", 0.0)
    if softcap is not None:
        softcap = check_real(softcap, "softcap", 0.0)
        if softcap == 0:
            raise ValueError("softcap must be None or a number > 0; got 0")
    if class_weight is not None:
        if (
            not isinstance(class_weight, Tensor)
            or not class_weight.is_floating_point()
        ):
            got = getattr(class_weight, "dtype", type(class_weight).__name__)
            raise TypeError(
                f"class_weight must be None or a floating-point tensor; got {got}"
            )
        if class_weight.shape != (v,):
            raise ValueError(
                f"class_weight must have shape ({v},), one weight per class; "
                f"got {tuple(class_weight.shape)}"
            )
    return label_smoothing, z_loss, softcap


def chunked_linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    class_weight: Tensor | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    chunk_size: int | None = None,
    backward: str = "auto",
) -> Tensor:
    r"""Cross-entropy of the logits ``hidden @ weight.T + bias``, never all held.

    The same as ``F.cross_entropy(z, target, weight=class_weight, ignore_index=...,
    label_smoothing=...)`` plus ``z_loss * z_loss_term`` with

    .. math::
        z_n = c \tanh\big((W h_n + b)/c\big) \ \text{(softcap } c\text{; else }
        z_n = W h_n + b),

        L_n = \log \sum_{v=1}^{V} e^{z_{nv}},

        \ell_n = (1 - \varepsilon)\, w_{y_n} (L_n - z_{n y_n})
        + \frac{\varepsilon}{V} \sum_{c=1}^{V} w_c (L_n - z_{nc}),

        \text{mean: } \frac{\sum_{n \in A} \ell_n}{\sum_{n \in A} w_{y_n}}
        + \lambda \frac{\sum_{n \in A} L_n^2}{|A|}

    where :math:`A` is the set of tokens not ignored, :math:`w` the class weights
    (all 1 without ``class_weight``), :math:`\varepsilon` the label smoothing and
    :math:`\lambda` the z-loss coefficient. The z-loss is normalised like
    :func:`z_loss`: a mean over the tokens not ignored, never weighted by
    ``class_weight``; ``"sum"`` adds :math:`\lambda \sum_{n \in A} L_n^2`,
    ``"none"`` adds :math:`\lambda L_n^2` to each token's loss (0 for an ignored
    token). Gradient with respect to the logits of token :math:`n`, with :math:`r_n`
    its weight in the reduction (:math:`1/\sum_A w_{y_n}` for the mean) and
    :math:`b_n` its z-loss weight (:math:`1/|A|`):

    .. math::
        \frac{\partial L}{\partial z_{nc}} = \alpha_n p_{nc} - \beta_n [c = y_n]
        - \gamma_n w_c,

        \begin{aligned}
        \alpha_n &= r_n\big((1-\varepsilon) w_{y_n} + \varepsilon \bar w\big)
        + 2 \lambda b_n L_n, \quad \bar w = \textstyle\sum_c w_c / V,\\
        \beta_n &= r_n (1-\varepsilon) w_{y_n}, \quad \gamma_n = r_n \varepsilon/V,
        \end{aligned}

    times :math:`1 - (z_{nc}/c)^2` with a softcap. So each row needs only
    :math:`L_n`, its target logit and, for label smoothing, :math:`\sum_c w_c
    z_{nc}`: three numbers.

    The tokens are processed ``chunk_size`` rows at a time in one preallocated
    ``chunk_size x V`` buffer: its logits are computed with ``torch.mm(..., out=)``,
    soft-capped, shifted by their maximum and exponentiated in place, and (when
    gradients are needed) turned in place into the gradient above, which is
    multiplied into :math:`\partial L/\partial h = G W`, :math:`\partial L/\partial
    W = G^\top H` and :math:`\partial L/\partial b = \sum_n G_n`. A softcap adds one
    more buffer of the same size (its derivative); nothing else of size :math:`V`
    per token is allocated.

    ``backward`` chooses when the gradients are formed:

    - ``"in_forward"`` (as Liger Kernel does): during the forward pass, chunk by
      chunk; the backward pass only multiplies them by the incoming gradient.
    - ``"recompute"`` (as Cut Cross-Entropy does): the forward pass keeps one
      log-sum-exp per token; the backward pass recomputes each chunk's logits from
      it. A fourth matrix product, but nothing of size :math:`V \times d` before the
      backward pass.
    - ``"auto"`` (default): ``"in_forward"``, except for ``reduction="none"``, whose
      per-token incoming gradient is not known in the forward pass, so it
      recomputes.

    **Half precision.** With float16 or bfloat16 ``hidden`` and ``weight`` the
    matrix products run in that dtype (accumulating in float32 inside each product),
    and everything between them in float32, as the fused GPU kernels do: a quarter
    of the chunk's rows at a time, one fused ``log_softmax`` reads the
    half-precision logits and writes their float32 log-softmax, from which come the
    log-sum-exp (:math:`L_n = z_{ny_n} - \log p_{ny_n}`), the loss and the gradient
    of the logits; the gradient is rounded to the input dtype once, into the chunk's
    buffer, for the two products. The gradient of ``weight`` is accumulated over the
    chunks in the weight's dtype, as Liger Kernel does by default (a float32
    accumulator would be a :math:`V \times d` buffer twice the gradient's size). The
    loss is returned in float32: rounding it to the input dtype would throw away the
    digits the float32 computation kept (a bfloat16 number near 10 is a multiple of
    1/16).

    NaN or infinite inputs propagate to the loss, as in
    ``torch.nn.functional.cross_entropy``. A second backward through the same graph
    (``retain_graph=True``) is correct: it recomputes.

    Args:
        hidden: ``(N, d)`` floating-point hidden states, one row per token.
        weight: ``(V, d)`` output-layer weight, same dtype as ``hidden``.
        target: ``(N,)`` integer class indices in ``0..V-1`` or ``ignore_index``.
        bias: optional ``(V,)`` output-layer bias, same dtype as ``hidden``.
        ignore_index: target value whose tokens add nothing to the loss or its
            gradients and are left out of the mean.
        reduction: ``"none"``, ``"mean"`` (over the tokens not ignored) or
            ``"sum"``.
        label_smoothing: :math:`\varepsilon \in [0, 1]`, as in ``F.cross_entropy``.
        class_weight: optional ``(V,)`` floating-point weight of each class, the
            ``weight`` argument of ``F.cross_entropy``.
        z_loss: :math:`\lambda \ge 0`, the coefficient of the z-loss (PaLM uses
            ``1e-4``).
        softcap: ``None`` or :math:`c > 0`: the logits become
            :math:`c \tanh(z / c)` before the loss (Gemma 2 uses ``30.0``).
        chunk_size: rows per chunk; default ``max(1, N // 16)``, so that a chunk's
            buffer is 1/16 of the full logits (plus, for half precision, a float32
            buffer of a quarter of its rows: half as many bytes again).
        backward: ``"auto"``, ``"in_forward"`` or ``"recompute"``, see above.

    Returns:
        The loss, reduced as asked: a scalar, or ``(N,)`` for ``reduction="none"``.

    Raises:
        TypeError: a tensor argument is not a tensor, ``hidden``/``weight``/``bias``
            are not floating-point or differ in dtype, ``class_weight`` is not
            floating-point, ``target`` is not integer, or a number argument has the
            wrong type.
        ValueError: shapes do not fit together, a target is outside ``0..V-1`` (and
            not ``ignore_index``), ``chunk_size < 1``, ``label_smoothing`` outside
            [0, 1], a negative ``z_loss``, ``softcap <= 0``, an unknown
            ``reduction`` or ``backward``, or ``backward="in_forward"`` with
            ``reduction="none"``.
        RuntimeError: called inside a ``torch.func`` transform, or differentiated
            twice (``create_graph=True``): neither is supported.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> hidden, weight = torch.randn(6, 4), torch.randn(10, 4)
        >>> target = torch.tensor([0, 3, 9, 2, 2, 7])
        >>> loss = chunked_linear_cross_entropy(
        ...     hidden, weight, target, label_smoothing=0.1, chunk_size=4)
        >>> naive = torch.nn.functional.cross_entropy(
        ...     hidden @ weight.T, target, label_smoothing=0.1)
        >>> torch.allclose(loss, naive)
        True

    References:
        Hsu et al. (2024), *Liger Kernel: Efficient Triton kernels for LLM
        training*, arXiv:2410.10989 (fused linear cross-entropy). Wijmans et al.
        (2024), *Cut your losses in large-vocabulary language models*,
        arXiv:2411.09009. Chowdhery et al. (2022), *PaLM*, arXiv:2204.02311
        (z-loss). Gemma Team (2024), *Gemma 2*, arXiv:2408.00118 (logit
        soft-capping). PyTorch ``torch.nn.functional.linear_cross_entropy``.
    """
    _refuse_transform("chunked_linear_cross_entropy", hidden, weight, target, bias)
    hidden = _check_float_matrix(hidden, "hidden", "(N, d)")
    weight = _check_float_matrix(weight, "weight", "(V, d)")
    n, d = hidden.shape
    v = weight.shape[0]
    if weight.shape[1] != d:
        raise ValueError(
            f"weight must have shape (V, {d}) to match hidden (N, {d}); "
            f"got {tuple(weight.shape)}"
        )
    if weight.dtype != hidden.dtype:
        raise TypeError(
            f"weight must have the dtype of hidden ({hidden.dtype}); "
            f"got {weight.dtype}"
        )
    if bias is not None:
        if not isinstance(bias, Tensor) or bias.dtype != hidden.dtype:
            got = getattr(bias, "dtype", type(bias).__name__)
            raise TypeError(
                f"bias must be None or a tensor of dtype {hidden.dtype}; got {got}"
            )
        if bias.shape != (v,):
            raise ValueError(
                f"bias must have shape ({v},), one value per class; "
                f"got {tuple(bias.shape)}"
            )
    target = _check_target(target, n, ignore_index)
    _check_range(target, ignore_index, 0, v)
    label_smoothing, z_loss, softcap = _check_options(
        v, label_smoothing, class_weight, z_loss, softcap
    )
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
            "backward='in_forward' needs a scalar loss (reduction 'mean' or "
            "'sum'): with reduction='none' the gradient of each token is only "
            "known in the backward pass"
        )
    mode = (
        "recompute"
        if backward == "recompute" or reduction == "none"
        else "in_forward"
    )
    if not torch.is_grad_enabled():
        mode = "no_grad"  # nothing will call backward: compute the loss only
    opt = _Options(
        chunk_size, ignore_index, reduction, label_smoothing, z_loss, softcap, mode
    )
    return _ChunkedLinearCrossEntropy.apply(
        hidden, weight, target, bias, class_weight, opt
    )


def z_loss(
    input: Tensor,
    target: Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""The z-loss of PaLM: the squared log-partition function of each row.

    .. math::
        \mathcal{L}_z = \frac{1}{|A|} \sum_{n \in A} \Big(\log \sum_{c}
        e^{z_{nc}}\Big)^2

    over the rows :math:`A` whose target is not ``ignore_index`` (all rows without
    ``target``). Added to the cross-entropy with a small coefficient (PaLM:
    ``1e-4``) it pulls :math:`\log Z_n` towards 0, so that the logits' scale does
    not drift. This is the normalisation of ``chunked_linear_cross_entropy(...,
    z_loss=lam)``, which equals ``F.cross_entropy(z, target, ...) + lam * z_loss(z,
    target)`` for every reduction; class weights never enter it. Its gradient is
    :math:`2 \log Z_n\, \operatorname{softmax}(z_n)` per row, over :math:`|A|` for
    the mean. Computed in float32 for float16/bfloat16 logits, and returned in their
    dtype.

    Args:
        input: ``(N, C)`` or ``(N, C, d_1, ...)`` floating-point logits, classes on
            dim 1 as for ``F.cross_entropy``.
        target: optional ``(N,)`` or ``(N, d_1, ...)`` integer targets; only used to
            leave out the positions equal to ``ignore_index``.
        ignore_index: target value whose positions are left out (of the mean too).
        reduction: ``"none"`` (one value per position, 0 where ignored),
            ``"mean"`` or ``"sum"``.

    Returns:
        The z-loss, reduced as asked.

    Raises:
        TypeError: ``input`` is not a floating-point tensor, ``target`` not integer.
        ValueError: ``input`` has fewer than 2 dimensions, ``target`` has the
            wrong shape, or an unknown ``reduction``.

    Example:
        >>> # the mean of log(2)^2 and log(2 e^3)^2
        >>> z_loss(torch.tensor([[0.0, 0.0], [3.0, 3.0]]))
        tensor(7.0599)

    References:
        Chowdhery et al. (2022), *PaLM: Scaling language modeling with pathways*,
        arXiv:2204.02311, section 5 ("z_loss = 1e-4 log^2 Z").
    """
    if not isinstance(input, Tensor) or not input.is_floating_point():
        got = getattr(input, "dtype", type(input).__name__)
        raise TypeError(f"input must be a floating-point tensor; got {got}")
    if input.dim() < 2:
        raise ValueError(
            "input must have shape (N, C) or (N, C, d1, ...); "
            f"got {tuple(input.shape)}"
        )
    check_reduction(reduction)
    acc = torch.float32 if input.dtype in _HALF else input.dtype
    lse = torch.logsumexp(input.to(acc), dim=1)
    if target is None:
        valid = None
    else:
        check_index_tensor(target, "target")
        if target.shape != lse.shape:
            raise ValueError(
                f"target must have shape {tuple(lse.shape)}; "
                f"got {tuple(target.shape)}"
            )
        valid = target != ignore_index
    sq = lse.square()
    if valid is not None:
        sq = torch.where(valid, sq, 0.0)
    if reduction == "none":
        out = sq
    elif reduction == "sum":
        out = sq.sum()
    else:
        out = sq.sum() / (sq.numel() if valid is None else valid.sum())
    return out.to(input.dtype)


# === vocab-parallel cross-entropy =================================================


def _all_reduce(t: Tensor, op, group) -> Tensor:
    """All-reduce ``t`` in place; a no-op in one process without a process group."""
    if group is not None or dist.is_initialized():
        dist.all_reduce(t, op=op, group=group)
    return t


class _VocabParallelCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, local_logits, target, vocab_start, group, ignore_index, reduction, eps
    ):
        n, v_local = local_logits.shape
        # all-reduce 1: the maximum of each row over the whole vocabulary
        m = _all_reduce(local_logits.amax(dim=1), dist.ReduceOp.MAX, group)
        z = local_logits - m.unsqueeze(1)
        hit = (target >= vocab_start) & (target < vocab_start + v_local)
        local_target = torch.where(hit, target - vocab_start, 0)
        # all-reduce 2: the target's shifted logit, held by one shard; with it, how
        # many shards hold the target (1 for every token not ignored), to catch a
        # target outside them all; for label smoothing also the sum of the shifted
        # logits and the vocabulary size
        local_logit = z.gather(1, local_target.unsqueeze(1)).squeeze(1)
        parts = [torch.where(hit, local_logit, 0.0), hit.to(z.dtype)]
        if eps > 0:
            parts += [z.sum(dim=1), z.new_full((n,), float(v_local))]
        summed = _all_reduce(torch.stack(parts), dist.ReduceOp.SUM, group)
        target_logit, holders = summed[0], summed[1]
        valid = target != ignore_index
        if (holders[valid] != 1).any():
            raise ValueError(
                "a target class is outside the vocabulary held by the processes"
            )
        # all-reduce 3: the sum of exponentials over the whole vocabulary
        z.exp_()
        s = _all_reduce(z.sum(dim=1), dist.ReduceOp.SUM, group)
        log_s = s.log()
        losses = log_s - target_logit
        v_total = 0.0
        if eps > 0:  # sum_c log p_c = sum_c (z_c - m) - V log s
            v_total = summed[3, 0].item()
            sum_log_p = summed[2] - v_total * log_s
            losses = (1 - eps) * losses - (eps / v_total) * sum_log_p
        losses = torch.where(valid, losses, 0.0)
        count = valid.sum()
        row_scale = valid.to(z.dtype)
        if reduction == "mean":
            row_scale /= count.clamp(min=1)
        ctx.save_for_backward(
            z.div_(s.unsqueeze(1)), local_target, hit & valid, row_scale
        )
        ctx.eps, ctx.v_total = eps, v_total
        if reduction == "none":
            return losses
        total = losses.sum()
        return total / count if reduction == "mean" else total

    @staticmethod
    def backward(ctx, grad_output):
        _refuse_double_backward("vocab_parallel_cross_entropy")
        softmax, local_target, hit, row_scale = ctx.saved_tensors
        row_scale = (row_scale * grad_output).unsqueeze(1)
        grad = softmax * row_scale  # no communication: every shard has all it needs
        grad.scatter_add_(
            1,
            local_target.unsqueeze(1),
            -(1 - ctx.eps) * row_scale * hit.unsqueeze(1),
        )
        if ctx.eps > 0:
            grad.sub_(row_scale * (ctx.eps / ctx.v_total))
        return grad, None, None, None, None, None, None


def vocab_parallel_cross_entropy(
    local_logits: Tensor,
    target: Tensor,
    vocab_start: int,
    group=None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy when each process holds a slice of the vocabulary's logits.

    .. math::
        m_n = \max_p \max_{v \in S_p} z_{nv}, \qquad
        \ell_n = \log \sum_p \sum_{v \in S_p} e^{z_{nv} - m_n} - (z_{n y_n} - m_n)

    Process :math:`p` holds the columns :math:`S_p` = ``vocab_start`` ..
    ``vocab_start + V_p - 1`` of the logits of all :math:`N` tokens. Three
    all-reduces of :math:`N` numbers give every process the same loss: the row
    maxima (``MAX``), the target logits (``SUM``: only the process whose slice holds
    the target contributes) and the sums of exponentials (``SUM``). The gradient of
    the local slice, :math:`\operatorname{softmax}(z_n)_{S_p} - (e_{y_n})_{S_p}`,
    needs no communication.

    With label smoothing :math:`\varepsilon`, :math:`\ell_n = (1-\varepsilon)(\log
    s_n - t_n) - \frac{\varepsilon}{V}\sum_c \log p_{nc}` and :math:`\sum_c \log
    p_{nc} = \sum_p \sum_{v \in S_p} (z_{nv} - m_n) - V \log s_n`: one more sum over
    the processes, of :math:`N` numbers (plus :math:`V = \sum_p V_p`), which travels
    in the second all-reduce. The local gradient becomes
    :math:`\operatorname{softmax}(z_n)_{S_p} - (1-\varepsilon)(e_{y_n})_{S_p} -
    \varepsilon/V`.

    Without an initialised ``torch.distributed`` (and ``group=None``) it runs as a
    single process holding the whole vocabulary.

    Args:
        local_logits: ``(N, V_p)`` floating-point logits of this process's
            vocabulary slice.
        target: ``(N,)`` integer class indices in the *global* vocabulary, the same
            on every process, or ``ignore_index``.
        vocab_start: global index of this process's first class.
        group: the ``torch.distributed`` process group (default: the whole world).
        ignore_index: target value whose tokens add nothing and are left out of
            the mean.
        reduction: ``"none"``, ``"mean"`` (over the tokens not ignored) or
            ``"sum"``.
        label_smoothing: :math:`\varepsilon \in [0, 1]`, as in ``F.cross_entropy``.

    Returns:
        The loss, the same on every process: a scalar, or ``(N,)`` for
        ``reduction="none"``.

    Raises:
        TypeError: ``local_logits`` is not a floating-point tensor, ``target`` not
            integer, ``vocab_start`` or ``ignore_index`` not an int, ``group`` not a
            ``torch.distributed.ProcessGroup``.
        ValueError: shapes do not fit, ``vocab_start < 0``, an unknown
            ``reduction``, ``label_smoothing`` outside [0, 1], or a target class
            that no process holds (raised on every process).
        RuntimeError: called inside a ``torch.func`` transform, or differentiated
            twice (``create_graph=True``).

    Example:
        >>> logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
        >>> target = torch.tensor([2, 0])
        >>> loss = vocab_parallel_cross_entropy(logits, target, vocab_start=0)
        >>> torch.allclose(loss, torch.nn.functional.cross_entropy(logits, target))
        True

    References:
        Shoeybi et al. (2019), *Megatron-LM: Training multi-billion parameter
        language models using model parallelism*, arXiv:1909.08053, section 3.
    """
    _refuse_transform("vocab_parallel_cross_entropy", local_logits, target)
    local_logits = _check_float_matrix(local_logits, "local_logits", "(N, V_p)")
    target = _check_target(target, local_logits.shape[0], ignore_index)
    if isinstance(vocab_start, bool) or not isinstance(vocab_start, int):
        raise TypeError(
            f"vocab_start must be an int; got {type(vocab_start).__name__}"
        )
    if vocab_start < 0:
        raise ValueError(f"vocab_start must be non-negative; got {vocab_start}")
    if group is not None and not isinstance(group, dist.ProcessGroup):
        raise TypeError(
            "group must be None or a torch.distributed.ProcessGroup (for example "
            f"from dist.new_group); got {type(group).__name__} {group!r}"
        )
    check_reduction(reduction)
    label_smoothing = check_real(label_smoothing, "label_smoothing", 0.0, 1.0)
    return _VocabParallelCrossEntropy.apply(
        local_logits,
        target,
        vocab_start,
        group,
        ignore_index,
        reduction,
        label_smoothing,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vocab_parallel_worker(
    rank, world_size, port, logits, target, reduction, ignore_index, eps, out_dir
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
            local,
            target,
            start,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=eps,
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
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor]:
    r"""Run :func:`vocab_parallel_cross_entropy` on ``world_size`` local processes.

    Starts ``world_size`` processes (``torch.multiprocessing``, forkserver, gloo
    backend on 127.0.0.1), gives process :math:`p` the :math:`p`-th of
    ``world_size`` near-equal column slices of ``logits``, and has each compute the
    loss and the gradient of ``loss.sum()`` with respect to its slice. Returns what
    the processes computed, put back together.

    Args:
        logits: ``(N, V)`` floating-point logits, split by columns among the
            processes.
        target: ``(N,)`` integer class indices.
        world_size: number of processes, at least 1 and at most ``V``.
        reduction: passed to :func:`vocab_parallel_cross_entropy`.
        ignore_index: passed to :func:`vocab_parallel_cross_entropy`.
        label_smoothing: passed to :func:`vocab_parallel_cross_entropy`.

    Returns:
        ``(losses, grad)``: the loss each process computed, stacked (one row per
        process), and the ``(N, V)`` gradient assembled from the slices.

    Raises:
        TypeError: ``world_size`` is not an int.
        ValueError: ``world_size`` is outside ``1..V``, ``label_smoothing`` outside
            [0, 1]; a process's error is re-raised.

    Example:
        >>> logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
        >>> import torch.nn.functional as F
        >>> target = torch.tensor([1])
        >>> losses, grad = run_vocab_parallel(logits, target, world_size=2)
        >>> torch.allclose(losses, F.cross_entropy(logits, target))
        True

    References:
        PyTorch ``torch.distributed`` (gloo backend) and
        ``torch.multiprocessing.start_processes``.
    """
    logits = _check_float_matrix(logits, "logits", "(N, V)")
    if isinstance(world_size, bool) or not isinstance(world_size, int):
        raise TypeError(
            f"world_size must be an int; got {type(world_size).__name__}"
        )
    if not 1 <= world_size <= logits.shape[1]:
        raise ValueError(
            f"world_size must be in 1..{logits.shape[1]} (one class per process at "
            "least); "
            f"got {world_size}"
        )
    target = _check_target(target, logits.shape[0], ignore_index)
    check_reduction(reduction)
    label_smoothing = check_real(label_smoothing, "label_smoothing", 0.0, 1.0)
    with tempfile.TemporaryDirectory() as out_dir:
        args = (
            world_size,
            _free_port(),
            logits.detach(),
            target,
            reduction,
            ignore_index,
            label_smoothing,
            out_dir,
        )
        try:
            # forkserver: the processes are forked from one server that has imported
            # torch once, instead of each importing it again as "spawn" would
            multiprocessing.set_forkserver_preload(["torch", __name__])
            mp.start_processes(
                _vocab_parallel_worker,
                args=args,
                nprocs=world_size,
                join=True,
                start_method="forkserver",
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
