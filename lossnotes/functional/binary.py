r"""Binary losses: ``binary_cross_entropy`` and ``binary_cross_entropy_with_logits``
(chapter 9).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import (
    TensorLike,
    as_float_tensor,
    check_no_nan,
    check_reduction,
    is_transformed,
    result_dtype,
)
from lossnotes.functional._common import (
    BCE_GRAD_EPS,
    BCE_LOG_CLAMP,
    _check_broadcast_weight,
    _check_probabilities,
    _check_same_shape_as_input,
    _reduce,
)


def _binary_inputs(
    input, target, weight, reduction: str
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``input``, ``target`` and ``weight`` of a binary loss, after the checks both
    binary
    losses share: dense float tensors of one shape, targets in [0, 1], a weight that
    broadcasts, a known reduction. ``input`` and ``target`` are promoted to one
    dtype."""
    x = as_float_tensor(input, "input", allow_empty=True)
    y = as_float_tensor(target, "target", allow_empty=True)
    check_reduction(reduction)
    _check_same_shape_as_input(y, x)
    _check_probabilities(y, "target")
    dtype = result_dtype(x, y)
    x, y = x.to(dtype), y.to(dtype)
    w = _check_broadcast_weight(weight, "weight", x.shape, x)
    return x, y, w


class _BinaryCrossEntropy(torch.autograd.Function):
    """Pointwise binary cross-entropy of probabilities, with PyTorch's gradient
    formulas.

    The backward is written with differentiable operations on the saved inputs, so a
    second derivative works (of PyTorch's first-derivative formula, as PyTorch's own
    does); ``vmap`` uses the generated rule and ``jvp`` the same formulas.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(p: Tensor, y: Tensor) -> Tensor:
        log_p = torch.log(p).clamp(min=BCE_LOG_CLAMP)
        log_1mp = torch.log1p(-p).clamp(min=BCE_LOG_CLAMP)
        return -(y * log_p + (1 - y) * log_1mp)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        p, y = ctx.saved_tensors
        # PyTorch's gradient is not the derivative of the clamped forward: it floors
        # p(1 - p) instead, so p = 0 or 1 gets a huge (or zero) slope, never the
        # clamp's flat 0
        grad_p = grad * (p - y) / (p * (1 - p)).clamp(min=BCE_GRAD_EPS)
        grad_y = grad * (torch.log1p(-p) - torch.log(p))  # -logit(p), unclamped
        return grad_p, grad_y

    @staticmethod
    def jvp(ctx, p_t: Tensor, y_t: Tensor) -> Tensor:
        p, y = ctx.saved_tensors
        out = p_t * (p - y) / (p * (1 - p)).clamp(min=BCE_GRAD_EPS)
        return out if y_t is None else out + y_t * (torch.log1p(-p) - torch.log(p))


def binary_cross_entropy(
    input: TensorLike,
    target: TensorLike,
    weight: TensorLike | None = None,
    *,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary cross-entropy of probabilities, as
    ``torch.nn.functional.binary_cross_entropy``.

    .. math::
        \ell_i = -\,w_i \big[\, y_i \max(\log p_i, -100) + (1 - y_i) \max(\log(1 -
        p_i), -100) \big]

    the negative log-likelihood of a Bernoulli label :math:`y_i` under probability
    :math:`p_i`, with both logarithms clamped at -100 as PyTorch does, so a
    confidently wrong prediction (:math:`p_i = 0`, :math:`y_i = 1`) costs 100, not
    infinity. The clamp hides
    more: in float32, any :math:`p_i < 3.7 \times 10^{-44}` costs the same 100. Use
    :func:`binary_cross_entropy_with_logits` on logits instead.

    The gradient is PyTorch's, :math:`w_i (p_i - y_i) / \max(p_i (1 - p_i),
    10^{-12})` in :math:`p_i`: not the derivative of the clamped formula (at
    :math:`p_i = 0, y_i = 1` it is :math:`-10^{12}`, not 0). ``"mean"`` averages
    over all elements; ``weight`` rescales elements and does not change the divisor.
    ``reduction`` is keyword-only (PyTorch's third and fourth positional parameters
    are the deprecated ``size_average``/``reduce``). An empty input gives what
    PyTorch gives (NaN for ``"mean"``, 0 for ``"sum"``).

    Args:
        input: probabilities :math:`p`, any shape, in [0, 1].
        target: labels :math:`y`, ``input``'s shape, in [0, 1] (soft labels
            allowed); the result takes the wider dtype of the two (PyTorch rejects a
            float64 target for a float32 input).
        weight: ``None`` or finite non-negative weights that broadcast to
            ``input``'s shape.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked.

    Raises:
        TypeError: ``input``, ``target`` or ``weight`` not floating point or sparse;
            ``reduction`` passed positionally.
        ValueError: shapes differ, ``input`` or ``target`` outside [0, 1] or NaN,
            ``weight`` that does not broadcast, is negative or not finite, or an
            unknown ``reduction``.

    Example:
        >>> p = torch.tensor([0.9, 0.2, 0.0])
        >>> binary_cross_entropy(p, torch.tensor([1.0, 0.0, 1.0]), reduction="none")
        tensor([  0.1054,   0.2231, 100.0000])

    References:
        PyTorch ``torch.nn.BCELoss`` documentation.
    """
    p, y, w = _binary_inputs(input, target, weight, reduction)
    _check_probabilities(p, "input")
    loss = _BinaryCrossEntropy.apply(p, y)
    return _reduce(loss if w is None else w * loss, reduction)


class _BinaryCrossEntropyWithLogits(torch.autograd.Function):
    r"""Pointwise :math:`(\max(x, 0) - y x) + \log(1 + e^{-|x|})`, and its
    gradients.

    Both terms are :math:`\ge 0` (for :math:`y \in [0, 1]`), so the sum never
    cancels; for
    :math:`y \in \{0, 1\}` the first term is exact. The backward recomputes
    :math:`\sigma(x)` from the saved input with differentiable operations.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, y: Tensor) -> Tensor:
        out = torch.addcmul(torch.relu(x), y, x, value=-1.0)  # max(x, 0) - y x
        # log(1 + e^-|x|) = -log sigmoid(|x|): torch's stable log-sigmoid primitive
        return out.sub_(torch.nn.functional.logsigmoid(x.abs()))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, y = ctx.saved_tensors
        grad_x = (torch.sigmoid(x) - y) * grad
        grad_y = -grad * x if ctx.needs_input_grad[1] else None
        return grad_x, grad_y

    @staticmethod
    def jvp(ctx, x_t: Tensor, y_t: Tensor) -> Tensor:
        x, y = ctx.saved_tensors
        out = x_t * (torch.sigmoid(x) - y)
        return out if y_t is None else out - y_t * x


#: Elements per block of :func:`_bce_with_logits_sum`: four temporaries that stay
#: in the cache (whole-size ones would cost a page fault per 4 KiB).
_BCE_BLOCK = 1 << 18


def _bce_with_logits_sum(x: Tensor, y: Tensor) -> Tensor:
    r""":math:`\sum_i (\max(x_i, 0) - y_i x_i) + \log(1 + e^{-|x_i|})` as a float64
    scalar: block by block, each block summed in ``x``'s dtype (every term is
    :math:`\ge 0`; float32 for half precision) and the block sums in float64.
    """
    xf, yf = x.reshape(-1), y.reshape(-1)
    n = xf.numel()
    m = max(1, min(_BCE_BLOCK, n))
    a, b, c, d = (torch.empty(m, dtype=x.dtype) for _ in range(4))
    # block sums in x's dtype (a sum into a float64 out= converts the block first),
    # float32 for half precision (whose range a block sum could overflow)
    low = x.dtype in (torch.float16, torch.bfloat16)
    partial = torch.empty((n + m - 1) // m, dtype=torch.float32 if low else x.dtype)
    # log sigmoid(|x|) = -log(1 + e^-|x|), the exponential and its log1p in one
    # kernel, into a buffer of the block (the functional form has no out=)
    log_sigmoid = torch.ops.aten.log_sigmoid_forward.output
    for j, i in enumerate(range(0, n, m)):
        k = min(m, n - i)
        xs, first, absolute, minus_second = xf[i : i + k], a[:k], b[:k], c[:k]
        torch.clamp(xs, min=0.0, out=first).addcmul_(xs, yf[i : i + k], value=-1.0)
        log_sigmoid(torch.abs(xs, out=absolute), output=minus_second, buffer=d[:k])
        torch.sum(first.sub_(minus_second), dim=0, out=partial[j])
    return partial.sum(dtype=torch.float64)


class _FusedBCEWithLogits(torch.autograd.Function):
    r"""Binary cross-entropy from logits, reduced as asked, outside ``torch.func``.

    The two non-negative terms of :class:`_BinaryCrossEntropyWithLogits`, each from
    one pass over the inputs: :math:`\max(x, 0) - y x` (exact for :math:`y \in \{0,
    1\}`) and :math:`\log(1 + e^{-|x|})` (for ``"none"``, one ``logsigmoid``, which
    forms the exponential and its ``log1p`` in one kernel). For ``"sum"`` and
    ``"mean"`` the terms are summed block by block in the cache
    (:func:`_bce_with_logits_sum`: sums of non-negative terms, nothing cancels)
    and the mean divides once, in float64: no per-element loss, and no broadcast
    gradient of a mean, is formed. The gradient
    :math:`(\sigma(x) - y)\, g / n` is one ``sigmoid`` and two in-place passes;
    with ``create_graph=True`` it is written with differentiable operations, so a
    second derivative works.
    """

    @staticmethod
    def forward(x: Tensor, y: Tensor, reduction: str) -> Tensor:
        if reduction != "none":
            total = _bce_with_logits_sum(x, y)
            if reduction == "mean":
                total = total / x.numel()  # NaN for an empty input, as in torch
            return total.to(x.dtype)
        first = torch.relu(x).addcmul_(x, y, value=-1.0)  # max(x, 0) - y x >= 0
        # log sigmoid(|x|) = -log(1 + e^-|x|): exp and log1p in one kernel
        return first.sub_(torch.nn.functional.logsigmoid(x.abs()))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, y, reduction = inputs
        ctx.reduction = reduction
        ctx.scale = 1.0 / x.numel() if reduction == "mean" and x.numel() else 1.0
        ctx.save_for_backward(x, y)
        ctx.save_for_forward(x, y)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, y = ctx.saved_tensors
        g = grad * ctx.scale if ctx.scale != 1.0 else grad
        grad_y = -g * x if ctx.needs_input_grad[1] else None
        if torch.is_grad_enabled():  # create_graph: differentiable operations
            return (torch.sigmoid(x) - y) * g, grad_y, None
        return torch.sigmoid(x).sub_(y).mul_(g), grad_y, None

    @staticmethod
    def jvp(ctx, x_t: Tensor, y_t: Tensor, _) -> Tensor:
        x, y = ctx.saved_tensors
        out = x_t * (torch.sigmoid(x) - y)
        if y_t is not None:
            out = out - y_t * x
        return out if ctx.reduction == "none" else out.sum() * ctx.scale


def binary_cross_entropy_with_logits(
    input: TensorLike,
    target: TensorLike,
    weight: TensorLike | None = None,
    *,
    reduction: str = "mean",
    pos_weight: TensorLike | None = None,
) -> Tensor:
    r"""Binary cross-entropy from logits, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    .. math::
        \ell_i = -\,w_i \big[\, r\, y_i \log \sigma(x_i) + (1 - y_i) \log
        \sigma(-x_i) \big]

    with :math:`-\log\sigma(x) = \operatorname{softplus}(-x) = \max(-x, 0) + \log(1
    + e^{-|x|})` computed stably, so every logit gives a finite, accurate loss: no
    probability is ever formed, rounded to 0 or 1 and clamped. Without
    ``pos_weight`` the loss is written :math:`(\max(x_i, 0) - y_i x_i) + \log(1 +
    e^{-|x_i|})`, two non-negative terms that never cancel (PyTorch's :math:`(1 - y)
    x - \log\sigma(x)` cancels for a confident correct logit). ``"mean"`` and
    ``"sum"`` add the terms up block by block, without forming the per-element
    loss, and the gradient :math:`\sigma(x) - y` comes from one ``sigmoid``.
    :math:`r` is ``pos_weight`` (1 by default), which scales the positive term
    only; it broadcasts against ``input``, so a tensor of ``C`` values weighs the
    positives of each of ``C`` labels on the last dimension. ``"mean"`` averages
    over all elements; ``weight`` does not change the divisor.

    Unlike PyTorch, a ``target`` outside [0, 1] is an error (PyTorch computes a
    number), and ``weight``/``pos_weight`` must broadcast to ``input``'s shape
    without enlarging it. As in PyTorch, a float64 ``target`` makes the result
    float64, the options after ``weight`` are keyword-only here (PyTorch's third and
    fourth positional parameters are the deprecated ``size_average``/``reduce``),
    and an empty input gives NaN for ``"mean"``.

    Args:
        input: logits :math:`x`, any shape; ``±inf`` gives NaN where the target
            would multiply an infinite term by 0, as in PyTorch.
        target: labels :math:`y`, ``input``'s shape, in [0, 1].
        weight: ``None`` or finite non-negative weights that broadcast to
            ``input``'s shape.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        pos_weight: ``None`` or finite non-negative weights :math:`r` of the
            positive term, broadcast to ``input``'s shape (typically shape ``(C,)``
            for ``(N, C)`` logits).

    Returns:
        The loss, reduced as asked, in the wider dtype of ``input`` and ``target``.

    Raises:
        TypeError: ``input``, ``target``, ``weight`` or ``pos_weight`` not floating
            point or sparse; an option passed positionally.
        ValueError: shapes differ, NaN ``input``, ``target`` outside [0, 1] or NaN,
            a weight that does not broadcast, is negative or not finite, or an
            unknown ``reduction``.

    Example:
        >>> # sigmoid(-200) = 0 in float32: BCE would clamp
        >>> x = torch.tensor([-200.0, 0.0])
        >>> y = torch.tensor([1.0, 1.0])
        >>> binary_cross_entropy_with_logits(x, y, reduction="none")
        tensor([200.0000,   0.6931])

    References:
        PyTorch ``torch.nn.BCEWithLogitsLoss`` documentation.
    """
    x, y, w = _binary_inputs(input, target, weight, reduction)
    r = _check_broadcast_weight(pos_weight, "pos_weight", x.shape, x)
    if r is None and w is None and not is_transformed(x, y):
        # one fused function, the reduction included
        out = _FusedBCEWithLogits.apply(x, y, reduction)
    else:
        if r is None and is_transformed(x, y, w):
            loss = _BinaryCrossEntropyWithLogits.apply(x, y)
        elif r is None:
            loss = _FusedBCEWithLogits.apply(x, y, "none")
        else:
            zero = torch.zeros((), dtype=x.dtype)
            minus_log_p = torch.logaddexp(-x, zero)  # -log sigmoid(x)
            minus_log_1mp = torch.logaddexp(x, zero)  # -log(1 - sigmoid(x))
            loss = r * y * minus_log_p + (1 - y) * minus_log_1mp
        out = _reduce(loss if w is None else w * loss, reduction)
    # NaN in the input makes a NaN result (so does inf * 0, which is allowed): one
    # check on the result, and a look at the input only when it is NaN
    if not is_transformed(out) and out.numel() > 0:
        if bool(torch.isnan(out if out.dim() == 0 else out.detach().sum()).item()):
            check_no_nan(x, "input")
    return out
