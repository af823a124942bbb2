r"""Binary losses: ``binary_cross_entropy`` and ``binary_cross_entropy_with_logits`` (chapter 9)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import (
    as_float_tensor,
    check_no_nan,
    check_reduction,
)
from lossnotes.functional._common import (
    BCE_GRAD_EPS,
    BCE_LOG_CLAMP,
    _check_broadcast_weight,
    _check_probabilities,
    _check_same_shape_as_input,
    _reduce,
)
from lossnotes.stability import log_sigmoid


def _binary_inputs(
    input, target, weight, reduction: str
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``input``, ``target`` (in the input's dtype) and ``weight`` of a binary loss, after the
    checks both binary losses share: float tensors of one shape, targets in [0, 1], a weight
    that broadcasts, a known reduction."""
    x = as_float_tensor(input, "input")
    y = as_float_tensor(target, "target")
    check_reduction(reduction)
    _check_same_shape_as_input(y, x)
    _check_probabilities(y, "target")
    w = _check_broadcast_weight(weight, "weight", x.shape, x)
    return x, y.to(x.dtype), w


class _BinaryCrossEntropy(torch.autograd.Function):
    """Pointwise binary cross-entropy of probabilities, with PyTorch's gradient formulas."""

    @staticmethod
    def forward(ctx, p: Tensor, y: Tensor) -> Tensor:
        ctx.save_for_backward(p, y)
        log_p = torch.log(p).clamp(min=BCE_LOG_CLAMP)
        log_1mp = torch.log1p(-p).clamp(min=BCE_LOG_CLAMP)
        return -(y * log_p + (1 - y) * log_1mp)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        p, y = ctx.saved_tensors
        # PyTorch's gradient is not the derivative of the clamped forward: it floors p(1 - p)
        # instead, so p = 0 or 1 gets a huge (or zero) slope, never the clamp's flat 0
        grad_p = grad * (p - y) / (p * (1 - p)).clamp(min=BCE_GRAD_EPS)
        grad_y = grad * (torch.log1p(-p) - torch.log(p))  # -logit(p), unclamped
        return grad_p, grad_y


def binary_cross_entropy(
    input, target, weight=None, reduction: str = "mean"
) -> Tensor:
    r"""Binary cross-entropy of probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    .. math::
        \ell_i = -\,w_i \big[\, y_i \max(\log p_i, -100) + (1 - y_i) \max(\log(1 - p_i), -100) \big]

    the negative log-likelihood of a Bernoulli label :math:`y_i` under probability :math:`p_i`,
    with both logarithms clamped at -100 as PyTorch does, so a confidently wrong prediction
    (:math:`p_i = 0`, :math:`y_i = 1`) costs 100, not infinity. The clamp hides more: in
    float32, any :math:`p_i < 3.7 \times 10^{-44}` costs the same 100. Use
    :func:`binary_cross_entropy_with_logits` on logits instead.

    The gradient is PyTorch's, :math:`w_i (p_i - y_i) / \max(p_i (1 - p_i), 10^{-12})` in
    :math:`p_i`: not the derivative of the clamped formula (at :math:`p_i = 0, y_i = 1` it is
    :math:`-10^{12}`, not 0). ``"mean"`` averages over all elements; ``weight`` rescales
    elements and does not change the divisor.

    Args:
        input: probabilities :math:`p`, any shape, in [0, 1].
        target: labels :math:`y`, ``input``'s shape, in [0, 1] (soft labels allowed);
            converted to ``input``'s dtype.
        weight: ``None`` or finite non-negative weights that broadcast to ``input``'s shape.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input``, ``target`` or ``weight`` not floating point.
        ValueError: empty ``input``, shapes differ, ``input`` or ``target`` outside [0, 1] or
            NaN, ``weight`` that does not broadcast, is negative or not finite, or an unknown
            ``reduction``.

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


def binary_cross_entropy_with_logits(
    input, target, weight=None, reduction: str = "mean", pos_weight=None
) -> Tensor:
    r"""Binary cross-entropy from logits, as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    .. math::
        \ell_i = -\,w_i \big[\, r\, y_i \log \sigma(x_i) + (1 - y_i) \log \sigma(-x_i) \big]

    with :math:`\log\sigma(x) = -\operatorname{softplus}(-x)` computed stably (and
    :math:`\log(1 - \sigma(x)) = \log\sigma(-x)`), so every logit gives a finite, accurate loss:
    no probability is ever formed, rounded to 0 or 1 and clamped. :math:`r` is ``pos_weight``
    (1 by default), which scales the positive term only; it broadcasts against ``input``, so a
    tensor of ``C`` values weighs the positives of each of ``C`` labels on the last dimension.
    ``"mean"`` averages over all elements; ``weight`` does not change the divisor.

    Unlike PyTorch, a ``target`` outside [0, 1] is an error (PyTorch computes a number), and
    ``weight``/``pos_weight`` must broadcast to ``input``'s shape without enlarging it.

    Args:
        input: logits :math:`x`, any shape; ``±inf`` gives NaN where the target would
            multiply an infinite term by 0, as in PyTorch.
        target: labels :math:`y`, ``input``'s shape, in [0, 1]; converted to ``input``'s dtype.
        weight: ``None`` or finite non-negative weights that broadcast to ``input``'s shape.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        pos_weight: ``None`` or finite non-negative weights :math:`r` of the positive term,
            broadcast to ``input``'s shape (typically shape ``(C,)`` for ``(N, C)`` logits).

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input``, ``target``, ``weight`` or ``pos_weight`` not floating point.
        ValueError: empty ``input``, shapes differ, NaN ``input``, ``target`` outside [0, 1] or
            NaN, a weight that does not broadcast, is negative or not finite, or an unknown
            ``reduction``.

    Example:
        >>> x = torch.tensor([-200.0, 0.0])  # sigmoid(-200) = 0 in float32: BCE would clamp
        >>> binary_cross_entropy_with_logits(x, torch.tensor([1.0, 1.0]), reduction="none")
        tensor([200.0000,   0.6931])

    References:
        PyTorch ``torch.nn.BCEWithLogitsLoss`` documentation.
    """
    x, y, w = _binary_inputs(input, target, weight, reduction)
    check_no_nan(x, "input")
    r = _check_broadcast_weight(pos_weight, "pos_weight", x.shape, x)
    positive = y * log_sigmoid(x)
    if r is not None:
        positive = r * positive
    loss = -(positive + (1 - y) * log_sigmoid(-x))
    return _reduce(loss if w is None else w * loss, reduction)
