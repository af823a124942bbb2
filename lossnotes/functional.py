r"""Classification losses, mirroring ``torch.nn.functional`` (PyTorch 2.13).

Each function is written from its formula with plain tensor operations, never by calling the
PyTorch function it mirrors, and is tested against that function in value and gradient.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import torch
from torch import Tensor

from lossnotes._checks import as_float_tensor, check_finite, check_no_nan, check_reduction
from lossnotes.stability import log_sigmoid, log_softmax

# === Chapters 6-7: nll_loss, cross_entropy, binary_cross_entropy, ... (PyTorch APIs I) ========

#: PyTorch clamps both logarithms of ``binary_cross_entropy`` at this value (so a term is <= 100).
BCE_LOG_CLAMP = -100.0
#: PyTorch's floor under :math:`p(1 - p)` in the gradient of ``binary_cross_entropy``: 1e-12
#: stored as a float32 (PyTorch's constant is a C ``float``, also for float64 tensors).
BCE_GRAD_EPS = 9.999999960041972e-13


# --- shared checks and the reduction (used by chapters 6-10) -----------------------------------


def _reduce(loss: Tensor, reduction: str, total: Tensor | None = None) -> Tensor:
    """``loss`` as it is (``"none"``), summed (``"sum"``), or averaged (``"mean"``).

    The mean divides the sum by ``total`` when given (the sum of the weights, for the
    class-index losses), else by the number of elements.
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if total is None else loss.sum() / total


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    return int(value)


def _class_dim(x: Tensor) -> int:
    """The class dimension of ``x``: 0 for an input of shape ``(C)``, else 1."""
    if x.dim() == 0:
        raise ValueError("input must have shape (C), (N, C) or (N, C, d1, ..., dk); got a 0-dim tensor")
    return 0 if x.dim() == 1 else 1


def _index_shape(x: Tensor) -> torch.Size:
    """The shape of class indices for ``x``: ``x``'s shape without its class dimension."""
    return x.shape[:1] + x.shape[2:] if x.dim() > 1 else torch.Size([])


def _check_class_target(
    target, shape: torch.Size, num_classes: int, ignore_index: int, ignore_name: str = "ignore_index"
) -> tuple[Tensor, Tensor]:
    """Check class indices of shape ``shape``, each in ``0..num_classes-1`` or ``ignore_index``.

    Returns ``(index, keep)``: the indices as ``torch.long`` with ignored positions set to 0
    (safe to ``gather``) and the boolean mask of the positions that count.
    """
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor of class indices; got {type(target).__name__}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"target of shape {tuple(target.shape)} holds class indices, which need an integer dtype "
            f"(torch.long); got {target.dtype}"
        )
    if target.shape != shape:
        raise ValueError(
            f"target has shape {tuple(target.shape)}; class indices for this input need shape "
            f"{tuple(shape)}, the input's shape without its class dimension"
        )
    target = target.long()
    keep = target != ignore_index
    bad = keep & ((target < 0) | (target >= num_classes))
    if bad.any():
        where = tuple(bad.nonzero()[0].tolist())
        raise ValueError(
            f"target has class {target[bad][0].item()} at position {where} but input has only "
            f"{num_classes} classes (valid: 0..{num_classes - 1}, or {ignore_name}={ignore_index} to skip)"
        )
    return torch.where(keep, target, 0), keep


def _class_target_for(target, x: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """:func:`_check_class_target` for an input with classes on dim 1, with a hint for dim -1."""
    shape = _index_shape(x)
    if isinstance(target, Tensor) and x.dim() > 2 and target.shape != shape and target.shape == x.shape[:-1]:
        raise ValueError(
            f"target has shape {tuple(target.shape)}, input {tuple(x.shape)}: the classes must be on "
            f"dim 1 of input, (N, C, d1, ..., dk); for channels-last logits pass input.movedim(-1, 1)"
        )
    return _check_class_target(target, shape, x.size(_class_dim(x)), ignore_index)


def _check_class_weight(weight, num_classes: int, like: Tensor) -> Tensor | None:
    """``weight`` as ``C`` finite, non-negative class weights of ``like``'s dtype, or None."""
    if weight is None:
        return None
    w = as_float_tensor(weight, "weight")
    if w.shape != (num_classes,):
        raise ValueError(f"weight must hold one weight per class, shape ({num_classes},); got {tuple(w.shape)}")
    _check_nonnegative(w, "weight")
    return w.to(like.dtype)


def _check_broadcast_weight(weight, name: str, shape: torch.Size, like: Tensor) -> Tensor | None:
    """``weight`` as finite, non-negative weights that broadcast to ``shape``, or None."""
    if weight is None:
        return None
    w = as_float_tensor(weight, name)
    try:
        fits = torch.broadcast_shapes(w.shape, shape) == shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"{name} has shape {tuple(w.shape)}, which does not broadcast to input's {tuple(shape)}")
    _check_nonnegative(w, name)
    return w.to(like.dtype)


def _check_nonnegative(w: Tensor, name: str) -> None:
    bad = ~(torch.isfinite(w) & (w >= 0))
    if bad.any():
        raise ValueError(f"{name} must be finite and >= 0; got {w[bad][0].item():g}")


def _check_probabilities(t: Tensor, name: str) -> None:
    check_no_nan(t, name)
    outside = (t < 0) | (t > 1)
    if outside.any():
        raise ValueError(f"{name} must hold probabilities in [0, 1]; got {t[outside][0].item():g}")


def _check_label_smoothing(value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"label_smoothing must be a real number; got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1]; got {value:g}")
    return float(value)


def _check_same_shape_as_input(target: Tensor, x: Tensor) -> None:
    if target.shape != x.shape:
        raise ValueError(
            f"target has shape {tuple(target.shape)} but input has {tuple(x.shape)}; "
            f"they must be the same (no broadcasting)"
        )


# --- negative log-likelihood and cross-entropy (chapter 6) -------------------------------------


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    r"""Negative log-likelihood loss, as ``torch.nn.functional.nll_loss``: ``input`` is log-probabilities.

    For sample :math:`n` with class :math:`y_n` and log-probabilities :math:`x_n`,

    .. math::
        \ell_n = -\,w_{y_n}\, x_{n, y_n}, \qquad
        \text{mean} = \frac{\sum_n \ell_n}{\sum_n w_{y_n}}

    where both sums run over the samples whose target is not ``ignore_index`` (an ignored
    sample has :math:`\ell_n = 0` and does not count), and :math:`w = 1` without ``weight``.

    Two things that surprise, both as in PyTorch:

    - With ``weight``, ``"mean"`` is a **weighted** mean: it divides by the sum of the weights
      of the targets, not by the number of samples, so it is *not* ``reduction="none"``
      followed by ``.mean()``.
    - If every target is ignored (or the targets' weights sum to 0), ``"mean"`` is
      :math:`0/0 = \mathrm{NaN}`; ``"sum"`` is 0 and ``"none"`` is all zeros.

    ``input`` is not checked to be log-probabilities (PyTorch does not either): passing raw
    logits gives a number that is not a loss; use :func:`cross_entropy` for logits.

    Args:
        input: log-probabilities of shape ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``:
            the classes on dim 1 (dim 0 for ``(C)``).
        target: class indices of shape ``()``, ``(N)`` or ``(N, d1, ..., dk)``, an integer
            dtype (PyTorch asks for ``torch.long``), each in ``0..C-1`` or ``ignore_index``.
        weight: ``None`` or ``C`` finite non-negative class weights :math:`w_c`.
        ignore_index: the target value of samples to skip (e.g. padding); any int, a class
            index included.
        reduction: ``"none"`` (the shape of ``target``), ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` or ``weight`` not floating point, ``target`` not an integer
            tensor, ``ignore_index`` not an int.
        ValueError: a 0-dim, empty or NaN ``input``; ``target`` of the wrong shape or with a
            class out of range; ``weight`` of the wrong length, negative or not finite; an
            unknown ``reduction``.

    Example:
        >>> logp = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
        >>> nll_loss(logp, torch.tensor([0, 1]), reduction="none")  # -log 0.5, -log 0.8
        tensor([0.6931, 0.2231])
        >>> nll_loss(logp, torch.tensor([0, -100]))  # the second sample is ignored
        tensor(0.6931)

    References:
        PyTorch ``torch.nn.NLLLoss`` documentation.
    """
    x = as_float_tensor(input, "input")
    check_no_nan(x, "input")
    check_reduction(reduction)
    ignore_index = _check_int(ignore_index, "ignore_index")
    w = _check_class_weight(weight, x.size(_class_dim(x)), x)
    index, keep = _class_target_for(target, x, ignore_index)
    return _nll(x, index, keep, w, reduction)


def _nll(log_p: Tensor, index: Tensor, keep: Tensor, w: Tensor | None, reduction: str) -> Tensor:
    """:func:`nll_loss` on checked arguments."""
    dim = _class_dim(log_p)
    picked = log_p.gather(dim, index.unsqueeze(dim)).squeeze(dim)  # x_{n, y_n}
    w_n = keep.to(log_p.dtype) if w is None else torch.where(keep, w[index], 0.0)
    # where, not w_n * ...: an ignored sample adds an exact 0 (never 0 * -inf) and no gradient
    loss = torch.where(keep, -w_n * picked, 0.0)
    return _reduce(loss, reduction, total=w_n.sum())


def cross_entropy(
    input,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy from logits, as ``torch.nn.functional.cross_entropy``.

    ``log_softmax`` over the class dimension, then :func:`nll_loss`. With class indices
    :math:`y_n`, log-probabilities :math:`\log p_n = \operatorname{log\_softmax}(x_n)` and
    smoothing :math:`\varepsilon` (``label_smoothing``) over :math:`C` classes,

    .. math::
        \ell_n = (1 - \varepsilon)\,\big(-w_{y_n} \log p_{n, y_n}\big)
        + \frac{\varepsilon}{C}\,\Big(-\sum_{c} w_c \log p_{n, c}\Big)

    that is, the cross-entropy with the target :math:`(1 - \varepsilon)\,\text{one-hot}(y_n)
    + \varepsilon / C`. ``"mean"`` divides **both** terms by :math:`\sum_n w_{y_n}` over the
    samples that are not ignored. Ignored samples contribute 0 to both terms. Note that the
    smoothing term weighs class :math:`c` by :math:`w_c`, yet is normalised by the weights of
    the *targets*: as PyTorch does.

    With class **probabilities** (``target`` of ``input``'s shape, floating point),

    .. math::
        \ell_n = -\sum_c w_c\, t_{n, c} \log p_{n, c}, \qquad
        t = (1 - \varepsilon)\, \text{target} + \varepsilon / C

    and ``"mean"`` divides by the number of samples :math:`N d_1 \cdots d_k`, **not** by any
    weights. Probability targets reject ``ignore_index >= 0`` (there is no index to compare);
    the default -100 is accepted and means nothing for them.

    Everything else as :func:`nll_loss`: the weighted mean, ``NaN`` for ``"mean"`` when every
    target is ignored. Logits may be ``-inf`` (a masked class); NaN is an error.

    Args:
        input: logits of shape ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``: the classes on
            dim 1 (dim 0 for ``(C)``). Channels-last logits need ``input.movedim(-1, 1)``.
        target: class indices (shape ``()``, ``(N)`` or ``(N, d1, ..., dk)``, integer dtype,
            each in ``0..C-1`` or ``ignore_index``) or class probabilities (``input``'s shape,
            floating point, values in [0, 1]; converted to ``input``'s dtype).
        weight: ``None`` or ``C`` finite non-negative class weights :math:`w_c`.
        ignore_index: the class-index target value of samples to skip.
        reduction: ``"none"`` (one loss per sample), ``"mean"`` or ``"sum"``.
        label_smoothing: :math:`\varepsilon \in [0, 1]`.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` or ``weight`` not floating point; class indices not an integer
            dtype, or an integer ``target`` of ``input``'s shape (probabilities must be
            floating point); ``ignore_index`` not an int; ``label_smoothing`` not a number.
        ValueError: a 0-dim, empty or NaN ``input``; ``target`` of the wrong shape, with a
            class out of range, or probabilities outside [0, 1]; ``weight`` of the wrong length,
            negative or not finite; ``label_smoothing`` outside [0, 1] (PyTorch quietly ignores
            a negative one); ``ignore_index >= 0`` with probabilities; an unknown ``reduction``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, 0.0]])  # p = e^2 / (e^2 + 2) = 0.787
        >>> cross_entropy(logits, torch.tensor([0]))  # -log 0.787
        tensor(0.2395)
        >>> cross_entropy(logits, torch.tensor([[1.0, 0.0, 0.0]]))  # the same, as probabilities
        tensor(0.2395)

    References:
        PyTorch ``torch.nn.CrossEntropyLoss`` documentation; Szegedy et al. (2016), section 7
        (label smoothing).
    """
    x = as_float_tensor(input, "input")
    check_no_nan(x, "input")
    check_reduction(reduction)
    ignore_index = _check_int(ignore_index, "ignore_index")
    eps = _check_label_smoothing(label_smoothing)
    dim = _class_dim(x)
    num_classes = x.size(dim)
    w = _check_class_weight(weight, num_classes, x)
    if isinstance(target, Tensor) and target.shape == x.shape:
        return _cross_entropy_probabilities(x, target, w, ignore_index, reduction, eps)
    index, keep = _class_target_for(target, x, ignore_index)
    log_p = log_softmax(x, dim=dim)
    nll = _nll(log_p, index, keep, w, reduction)
    if eps == 0.0:
        return nll
    w_c = log_p.new_ones(()) if w is None else _along_class_dim(w, log_p)
    smooth = torch.where(keep, -(w_c * log_p).sum(dim), 0.0)
    total = keep.sum() if w is None else torch.where(keep, w[index], 0.0).sum()
    return (1 - eps) * nll + _reduce(smooth, reduction, total) * (eps / num_classes)


def _along_class_dim(w: Tensor, x: Tensor) -> Tensor:
    """Class weights shaped to broadcast along the class dimension of ``x``."""
    return w.view([-1] + [1] * (x.dim() - 2)) if x.dim() > 1 else w


def _cross_entropy_probabilities(
    x: Tensor, target: Tensor, w: Tensor | None, ignore_index: int, reduction: str, eps: float
) -> Tensor:
    """:func:`cross_entropy` with class-probability targets, on checked logits and weights."""
    if not target.is_floating_point():
        raise TypeError(
            f"target has input's shape {tuple(x.shape)}, so it holds class probabilities, which must "
            f"be floating point; got {target.dtype} (class indices have shape {tuple(_index_shape(x))})"
        )
    if ignore_index >= 0:
        raise ValueError(
            f"ignore_index={ignore_index} cannot be used with class-probability targets "
            f"(PyTorch rejects ignore_index >= 0 there); a sample whose target row is all zeros adds "
            f"nothing to the sum (but still counts in the mean)"
        )
    _check_probabilities(target, "target")
    dim = _class_dim(x)
    num_classes = x.size(dim)
    t = target.to(x.dtype)
    if eps > 0.0:
        t = t * (1 - eps) + eps / num_classes
    log_p = log_softmax(x, dim=dim)
    if w is not None:
        t = t * _along_class_dim(w, x)
    loss = -(log_p * t).sum(dim)
    return _reduce(loss, reduction)  # the mean is over samples, whatever the weights


# --- binary cross-entropy (chapter 7) -----------------------------------------------------------


def _binary_inputs(input, target, weight, reduction: str) -> tuple[Tensor, Tensor, Tensor | None]:
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


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> Tensor:
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


# === Chapters 8-10: kl_div, label_smoothing_kl_loss, focal losses (PyTorch APIs II) ===========

# The shared checks and _reduce above (chapters 6-7) are used here too.

#: The reductions of :func:`kl_div`, as ``torch.nn.functional.kl_div`` accepts them.
KL_REDUCTIONS = ("none", "batchmean", "sum", "mean")

# Word for word what torch.nn.functional.kl_div (PyTorch 2.13) warns for reduction="mean".
KL_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)


def _check_real(value, name: str, low: float, high: float = math.inf, high_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``[low, high)`` if ``high_open``), or raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and low <= value and (value < high if high_open else value <= high)):
        closing = ")" if high_open else "]"
        raise ValueError(f"{name} must be a finite number in [{low:g}, {high:g}{closing}; got {value:g}")
    return value


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return value


def _modulating_factor(one_minus_p: Tensor, gamma: float) -> Tensor:
    r""":math:`(1 - p_t)^\gamma`, with a gradient that stays finite where :math:`1 - p_t = 0`."""
    # (1 - p)**gamma has an infinite slope at 1 - p = 0 when gamma < 1; below the smallest
    # normal number the clamp makes the slope 0 instead (the factor is 0 or 1 there anyway)
    return one_minus_p.clamp(min=torch.finfo(one_minus_p.dtype).tiny) ** gamma


def kl_div(input, target, reduction: str = "mean", log_target: bool = False) -> Tensor:
    r"""KL divergence loss, as ``torch.nn.functional.kl_div``: ``input`` is log-probabilities.

    .. math::
        \ell_i = y_i \,(\log y_i - x_i), \qquad
        \text{so}\ \sum_i \ell_i = \mathrm{KL}(y \,\|\, e^{x}) = \sum_i y_i \log \frac{y_i}{q_i}

    with :math:`x = \log q` the model's log-probabilities (``input``) and :math:`y` the target
    probabilities: the divergence of the model *from the target*, the argument order opposite
    to the mathematical :math:`\mathrm{KL}(y \,\|\, q)`. A target entry 0 contributes 0
    (:math:`0 \log 0 = 0`). With ``log_target=True`` the target is given as :math:`\log y` and
    :math:`\ell_i = e^{\log y_i} (\log y_i - x_i)`.

    Reductions: ``"none"`` (the pointwise :math:`\ell`), ``"sum"``, ``"batchmean"`` (the sum
    divided by ``input.size(0)``: the true KL per sample when rows are distributions), and
    ``"mean"`` (the sum divided by *every* element, i.e. by batch size times number of classes:
    not a KL divergence). ``"mean"`` is the default and warns with PyTorch's own
    ``UserWarning``, exactly as ``torch.nn.functional.kl_div`` does.

    Unlike PyTorch, ``input`` and ``target`` must have the same shape (no broadcasting), and a
    negative probability target is rejected (PyTorch returns NaN).

    Args:
        input: log-probabilities :math:`\log q` (e.g. ``log_softmax`` output), any shape;
            ``-inf`` allowed.
        target: same shape: probabilities (``log_target=False``) or log-probabilities.
        reduction: ``"none"``, ``"batchmean"``, ``"sum"`` or ``"mean"``.
        log_target: whether ``target`` holds log-probabilities.

    Returns:
        The pointwise loss (``"none"``) or a 0-dim tensor.

    Raises:
        TypeError: ``input`` or ``target`` is not floating point, or ``log_target`` is not a bool.
        ValueError: shapes differ, NaN in either, a negative ``target`` with
            ``log_target=False``, or an unknown ``reduction``.

    Example:
        >>> q = torch.tensor([[0.5, 0.25, 0.25]])
        >>> y = torch.tensor([[0.25, 0.25, 0.5]])
        >>> kl_div(q.log(), y, reduction="batchmean")  # 0.25 log 0.5 + 0.5 log 2 = 0.25 log 2
        tensor(0.1733)

    References:
        Kullback & Leibler (1951); PyTorch ``torch.nn.KLDivLoss``.
    """
    x = as_float_tensor(input, "input")
    y = as_float_tensor(target, "target")
    check_reduction(reduction, KL_REDUCTIONS)
    _check_bool(log_target, "log_target")
    _check_same_shape_as_input(y, x)
    check_no_nan(x, "input")
    check_no_nan(y, "target")
    if log_target:
        pointwise = torch.exp(y) * (y - x)
    else:
        if (y < 0).any():
            raise ValueError(
                f"target has a negative value {y.min().item():g}; with log_target=False it holds "
                f"probabilities (>= 0); pass log-probabilities with log_target=True"
            )
        pointwise = torch.xlogy(y, y) - y * x
    if reduction == "none":
        return pointwise
    if reduction == "mean":
        warnings.warn(KL_MEAN_WARNING, stacklevel=2)
        return pointwise.mean()
    total = pointwise.sum()
    return total / x.size(0) if reduction == "batchmean" and x.dim() > 0 else total


def label_smoothing_kl_loss(
    input, target, smoothing: float, padding_idx: int = -1, normalize_length: bool = False
) -> Tensor:
    r"""Label-smoothing loss of sequence models, as in WeNet's ``LabelSmoothingLoss``.

    The smoothed target of a token with class :math:`y` over :math:`C` classes is

    .. math::
        t_k = \begin{cases} 1 - \varepsilon & k = y \\ \varepsilon / (C - 1) & k \ne y \end{cases}

    and the loss is the KL divergence from it to the model,
    :math:`\mathrm{KL}(t \,\|\, q) = \sum_k t_k (\log t_k - \log q_k)` with
    :math:`\log q = \operatorname{log\_softmax}(\text{input})`, summed over the tokens whose
    target is not ``padding_idx`` and divided by the batch size :math:`B` (default) or by the
    number of non-padding tokens (``normalize_length=True``; NaN when there are none, as in
    WeNet). It differs from the cross-entropy with the same smoothed target,
    :math:`H(t, q) = H(t) + \mathrm{KL}(t \,\|\, q)`, by the constant entropy :math:`H(t)` per
    token: the same gradient, a smaller number. PyTorch's ``label_smoothing`` argument of
    ``cross_entropy`` instead puts :math:`\varepsilon / C` on every class, the true one included.

    Args:
        input: logits of shape ``(B, T, C)``, finite, :math:`C \ge 2`.
        target: class indices of shape ``(B, T)``, integer dtype, in ``0..C-1`` or ``padding_idx``.
        smoothing: :math:`\varepsilon \in [0, 1)`; 0 gives the negative log-likelihood.
        padding_idx: the target value of padding positions (WeNet's ``IGNORE_ID`` is -1).
        normalize_length: divide by the number of non-padding tokens instead of :math:`B`.

    Returns:
        A 0-dim tensor of ``input``'s dtype.

    Raises:
        TypeError: ``input`` not floating point, ``target`` not an integer tensor,
            ``smoothing`` not a real number, ``padding_idx`` not an int or
            ``normalize_length`` not a bool.
        ValueError: ``input`` not 3-D, :math:`C < 2`, non-finite logits, ``target`` of the
            wrong shape or with a class out of range, ``smoothing`` outside [0, 1).

    Example:
        >>> logits = torch.zeros(1, 2, 3)  # uniform model over 3 classes, 2 tokens
        >>> target = torch.tensor([[0, -1]])  # the second token is padding
        >>> label_smoothing_kl_loss(logits, target, smoothing=0.0)  # one token of log 3
        tensor(1.0986)

    References:
        Yao et al. (2021), WeNet, ``wenet/transformer/label_smoothing_loss.py``;
        Szegedy et al. (2016), section 7; Müller et al. (2019).
    """
    x = as_float_tensor(input, "input")
    if x.dim() != 3:
        raise ValueError(f"input must have shape (B, T, C); got {x.dim()} dimension(s) {tuple(x.shape)}")
    num_classes = x.size(2)
    if num_classes < 2:
        raise ValueError(f"input must have at least 2 classes (C >= 2) to smooth over; got C={num_classes}")
    check_finite(x, "input")
    eps = _check_real(smoothing, "smoothing", 0.0, 1.0, high_open=True)
    padding_idx = _check_int(padding_idx, "padding_idx")
    _check_bool(normalize_length, "normalize_length")
    index, keep = _check_class_target(target, x.shape[:2], num_classes, padding_idx, "padding_idx")
    smoothed = torch.full_like(x, eps / (num_classes - 1)).scatter(2, index.unsqueeze(2), 1.0 - eps)
    per_token = (torch.xlogy(smoothed, smoothed) - smoothed * log_softmax(x, dim=2)).sum(dim=2)
    total = torch.where(keep, per_token, 0.0).sum()
    return total / (keep.sum() if normalize_length else x.size(0))


def _check_alpha(alpha, num_classes: int, like: Tensor) -> Tensor | None:
    if alpha is None:
        return None
    a = as_float_tensor(alpha, "alpha")
    if a.shape != (num_classes,):
        raise ValueError(f"alpha must have shape ({num_classes},), one weight per class; got {tuple(a.shape)}")
    _check_nonnegative(a, "alpha")
    return a.to(like.dtype)


def focal_loss(
    input,
    target,
    alpha=None,
    gamma: float = 2.0,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Multi-class focal loss from logits: cross-entropy scaled down for easy examples.

    .. math::
        \ell_n = -\,\alpha_{y_n} (1 - p_{n, y_n})^{\gamma} \log p_{n, y_n},
        \qquad p_n = \operatorname{softmax}(x_n)

    The modulating factor :math:`(1 - p_t)^\gamma` is near 0 for a well-classified example
    (:math:`p_t \to 1`) and near 1 for a misclassified one. With :math:`\gamma = 0` and no
    ``alpha`` it is exactly ``torch.nn.functional.cross_entropy``. :math:`\log p_t` comes from a
    stable ``log_softmax`` and :math:`1 - p_t` from ``-expm1(log p_t)``, so neither cancels.

    ``reduction="mean"`` divides the sum by the **number of non-ignored samples**, whatever
    ``alpha`` is. ``cross_entropy(weight=alpha)`` divides by the **sum of the weights**
    :math:`\sum_n \alpha_{y_n}` instead, so the two differ by that factor even at
    :math:`\gamma = 0`.

    Args:
        input: logits of shape ``(C)``, ``(N, C)`` or ``(N, C, d1, ...)`` (classes on dim 1,
            as for ``cross_entropy``), finite.
        target: class indices of shape ``()``, ``(N,)`` or ``(N, d1, ...)``, integer dtype, in
            ``0..C-1`` or ``ignore_index``.
        alpha: ``None`` or a tensor of ``C`` non-negative per-class weights :math:`\alpha_c`.
        gamma: the focusing parameter :math:`\gamma \ge 0`.
        ignore_index: target value whose positions contribute nothing (and are not counted).
        reduction: ``"none"`` (shape of ``target``, 0 at ignored positions), ``"mean"`` or
            ``"sum"``. ``"mean"`` of an all-ignored batch is NaN, as for ``cross_entropy``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` not floating point, ``target`` not an integer tensor, ``gamma``
            not a real number or ``ignore_index`` not an int.
        ValueError: ``input`` 0-dim or with non-finite values, ``target`` of the wrong shape
            or with a class out of range, ``alpha`` of the wrong shape or negative, ``gamma``
            negative or infinite, or an unknown ``reduction``.

    Example:
        >>> logits = torch.tensor([[0.0, 0.0]])  # p_t = 1/2
        >>> focal_loss(logits, torch.tensor([0]), gamma=2.0)  # (1/2)^2 log 2 = 0.1733
        tensor(0.1733)

    References:
        Lin, Goyal, Girshick, He & Dollár (2017), *Focal loss for dense object detection*,
        eq. (5), with per-class :math:`\alpha` as in their multi-class use.
    """
    x = as_float_tensor(input, "input")
    dim = _class_dim(x)
    check_finite(x, "input")
    g = _check_real(gamma, "gamma", 0.0)
    ignore_index = _check_int(ignore_index, "ignore_index")
    check_reduction(reduction)
    a = _check_alpha(alpha, x.size(dim), x)
    index, keep = _class_target_for(target, x, ignore_index)
    log_pt = log_softmax(x, dim=dim).gather(dim, index.unsqueeze(dim)).squeeze(dim)
    loss = -_modulating_factor(-torch.expm1(log_pt), g) * log_pt
    if a is not None:
        loss = a[index] * loss
    return _reduce(torch.where(keep, loss, 0.0), reduction, total=keep.sum())


def sigmoid_focal_loss(inputs, targets, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none") -> Tensor:
    r"""Binary (multi-label) focal loss from logits, as ``torchvision.ops.sigmoid_focal_loss``.

    .. math::
        \ell = -\,\alpha_t (1 - p_t)^{\gamma} \log p_t, \quad
        p_t = y\,\sigma(x) + (1 - y)(1 - \sigma(x)), \quad
        \alpha_t = y\,\alpha + (1 - y)(1 - \alpha)

    for every element independently: each logit is its own binary problem (one anchor and one
    class, in dense detection). For soft targets :math:`y \in [0, 1]` the :math:`\log p_t` term
    is the binary cross-entropy :math:`-y \log\sigma(x) - (1 - y)\log(1 - \sigma(x))`, as in
    torchvision. Computed from :math:`\log\sigma(\pm x)` (stable ``log_sigmoid``), and
    :math:`1 - p_t = y\,\sigma(-x) + (1 - y)\,\sigma(x)` as a sum of non-negative terms, so a
    logit of any size gives a finite, accurate loss. ``alpha < 0`` drops the
    :math:`\alpha_t` factor; the same signature and defaults as torchvision's.

    Args:
        inputs: logits, any shape, finite.
        targets: same shape, floating point, values in [0, 1] (1 = positive).
        alpha: weight of the positives in [0, 1], or negative to disable (default 0.25).
        gamma: the focusing parameter :math:`\gamma \ge 0` (default 2).
        reduction: ``"none"`` (default, as in torchvision), ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked.

    Raises:
        TypeError: ``inputs`` or ``targets`` not floating point, ``alpha`` or ``gamma`` not
            real numbers.
        ValueError: shapes differ, non-finite ``inputs``, ``targets`` outside [0, 1],
            ``alpha`` above 1 or NaN, ``gamma`` negative or infinite, or an unknown ``reduction``.

    Example:
        >>> x, y = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])  # p_t = 1/2 for both
        >>> sigmoid_focal_loss(x, y)  # 0.25 / 4 * log 2 and 0.75 / 4 * log 2
        tensor([0.0433, 0.1300])

    References:
        Lin et al. (2017), eq. (5); torchvision ``torchvision.ops.sigmoid_focal_loss``.
    """
    x = as_float_tensor(inputs, "inputs")
    y = as_float_tensor(targets, "targets")
    if y.shape != x.shape:
        raise ValueError(f"targets has shape {tuple(y.shape)} but inputs has {tuple(x.shape)}; they must be the same")
    check_finite(x, "inputs")
    _check_probabilities(y, "targets")
    if isinstance(alpha, bool) or not isinstance(alpha, Real):
        raise TypeError(f"alpha must be a real number; got {type(alpha).__name__}")
    if not alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], or be negative to disable it; got {alpha:g}")
    g = _check_real(gamma, "gamma", 0.0)
    check_reduction(reduction)
    log_p, log_1mp = log_sigmoid(x), log_sigmoid(-x)
    bce = -(y * log_p + (1 - y) * log_1mp)
    one_minus_pt = y * torch.exp(log_1mp) + (1 - y) * torch.exp(log_p)
    loss = _modulating_factor(one_minus_pt, g) * bce
    if alpha >= 0:
        loss = (y * alpha + (1 - y) * (1 - alpha)) * loss
    return _reduce(loss, reduction)
