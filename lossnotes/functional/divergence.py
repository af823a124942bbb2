r"""Divergences: ``kl_div`` and WeNet's label-smoothing KL loss (chapter 10)."""

from __future__ import annotations

import math
import warnings

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
    _check_bool,
    _check_class_target,
    _check_int,
    _check_real,
    _check_same_shape_as_input,
)
from lossnotes.functional.classification import (
    _SoftmaxCrossEntropy,
)
from lossnotes.functional.focal import _raise_if_no_finite_maximum
from lossnotes.stability import log_softmax

#: The reductions of :func:`kl_div`, as ``torch.nn.functional.kl_div`` accepts them.
KL_REDUCTIONS = ("none", "batchmean", "sum", "mean")

# Word for word what torch.nn.functional.kl_div (PyTorch 2.13) warns for
# reduction="mean".
KL_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the "
    "support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math "
    "definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major "
    "release."
)


def kl_div(
    input: TensorLike,
    target: TensorLike,
    *,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    r"""KL divergence loss, as ``torch.nn.functional.kl_div``: ``input`` is
    log-probabilities.

    .. math::
        \ell_i = y_i \,(\log y_i - x_i), \qquad
        \text{so}\ \sum_i \ell_i = \mathrm{KL}(y \,\|\, e^{x}) = \sum_i y_i \log
        \frac{y_i}{q_i}

    with :math:`x = \log q` the model's log-probabilities (``input``) and :math:`y`
    the target
    probabilities: the divergence of the model *from the target*, the argument order
    opposite to the mathematical :math:`\mathrm{KL}(y \,\|\, q)`. A target entry 0
    contributes 0 (:math:`0 \log 0 = 0`). With ``log_target=True`` the target is
    given as :math:`\log y` and :math:`\ell_i = e^{\log y_i} (\log y_i - x_i)`.

    Reductions: ``"none"`` (the pointwise :math:`\ell`), ``"sum"``, ``"batchmean"``
    (the sum divided by ``input.size(0)``: the true KL per sample when rows are
    distributions), and ``"mean"`` (the sum divided by *every* element, i.e. by
    batch size times number of classes: not a KL divergence). ``"mean"`` is the
    default and warns with PyTorch's own ``UserWarning``, exactly as
    ``torch.nn.functional.kl_div`` does.

    Unlike PyTorch, ``input`` and ``target`` must have the same shape (no
    broadcasting), and a
    negative probability target is rejected (PyTorch returns NaN).

    ``reduction`` and ``log_target`` are keyword-only: PyTorch's third positional
    parameter is the deprecated ``size_average``, so ``kl_div(x, y, "sum")`` would
    mean something else there; here it raises ``TypeError``. The result takes the
    wider dtype of ``input`` and ``target``, as in PyTorch; an empty input gives NaN
    for ``"mean"``/``"batchmean"``.

    Masked classes (``input`` ``-inf``, i.e. :math:`q_i = 0`) follow the package's
    rule: a target 0 there contributes exactly 0 (:math:`0 \log 0 = 0`, where
    PyTorch computes :math:`0 \cdot \infty = \mathrm{NaN}`), with gradient 0; a
    positive target gives ``+inf``.

    Args:
        input: log-probabilities :math:`\log q` (e.g. ``log_softmax`` output), any
            shape; ``-inf`` allowed (a masked class).
        target: same shape: probabilities (``log_target=False``) or
            log-probabilities.
        reduction: ``"none"``, ``"batchmean"``, ``"sum"`` or ``"mean"``.
        log_target: whether ``target`` holds log-probabilities.

    Returns:
        The pointwise loss (``"none"``) or a 0-dim tensor.

    Raises:
        TypeError: ``input`` or ``target`` is not floating point or is sparse,
            ``log_target`` is not a bool, or an option is passed positionally.
        ValueError: shapes differ, NaN in either, a negative ``target`` with
            ``log_target=False``, or an unknown ``reduction``.

    Example:
        >>> q = torch.tensor([[0.5, 0.25, 0.25]])
        >>> y = torch.tensor([[0.25, 0.25, 0.5]])
        >>> # 0.25 log 0.5 + 0.5 log 2 = 0.25 log 2
        >>> kl_div(q.log(), y, reduction="batchmean")
        tensor(0.1733)

    References:
        Kullback & Leibler (1951); PyTorch ``torch.nn.KLDivLoss``.
    """
    x = as_float_tensor(input, "input", allow_empty=True)
    y = as_float_tensor(target, "target", allow_empty=True)
    check_reduction(reduction, KL_REDUCTIONS)
    _check_bool(log_target, "log_target")
    _check_same_shape_as_input(y, x)
    dtype = result_dtype(x, y)
    x, y = x.to(dtype), y.to(dtype)
    transformed = is_transformed(x, y)
    if log_target:
        check_no_nan(y, "target")
        pointwise = torch.exp(y) * (y - x)
        zero_target = torch.isneginf(y)
    else:
        if not transformed and y.numel() > 0:
            low = y.min()  # one read: NaN or a negative value make it fail
            if not low >= 0:
                check_no_nan(y, "target")
                raise ValueError(
                    f"target has a negative value {low.item():g}; with "
                    "log_target=False it "
                    f"holds probabilities (>= 0); pass log-probabilities with "
                    f"log_target=True"
                )
        pointwise = torch.xlogy(y, y) - y * x
        zero_target = y == 0
    if transformed:
        pointwise = torch.where(zero_target & torch.isneginf(x), 0.0, pointwise)
    elif x.numel() > 0 and bool(torch.isnan(pointwise.detach().sum())):
        check_no_nan(
            x, "input"
        )  # a NaN input, or 0 * inf at a masked class: 0 there
        pointwise = torch.where(zero_target & torch.isneginf(x), 0.0, pointwise)
    return reduce_kl(pointwise, reduction, x.size(0) if x.dim() > 0 else 1)


def reduce_kl(pointwise: Tensor, reduction: str, batch_size: int) -> Tensor:
    """The reductions of :func:`kl_div`: ``"batchmean"`` divides the sum by
    ``batch_size``; ``"mean"`` averages over every element, with PyTorch's warning.
    """
    if reduction == "none":
        return pointwise
    if reduction == "mean":
        warnings.warn(KL_MEAN_WARNING, stacklevel=3)
        return pointwise.mean()
    total = pointwise.sum()
    return total / batch_size if reduction == "batchmean" else total


def label_smoothing_kl_loss(
    input: TensorLike,
    target: Tensor,
    smoothing: float,
    padding_idx: int = -1,
    normalize_length: bool = False,
) -> Tensor:
    r"""Label-smoothing loss of sequence models, as in WeNet's
    ``LabelSmoothingLoss``.

    The smoothed target of a token with class :math:`y` over :math:`C` classes is

    .. math::
        t_k = \begin{cases} 1 - \varepsilon & k = y \\ \varepsilon / (C - 1) & k \ne
        y \end{cases}

    and the loss is the KL divergence from it to the model, :math:`\mathrm{KL}(t
    \,\|\, q) = \sum_k t_k (\log t_k - \log q_k)` with :math:`\log q =
    \operatorname{log\_softmax}(\text{input})`, summed over the tokens whose target
    is not ``padding_idx`` and divided by the batch size :math:`B` (default) or by
    the number of non-padding tokens (``normalize_length=True``; NaN when there are
    none, as in WeNet). It differs from the cross-entropy with the same smoothed
    target, :math:`H(t, q) = H(t) + \mathrm{KL}(t \,\|\, q)`, by the constant
    entropy :math:`H(t)` per
    token: the same gradient, a smaller number. PyTorch's ``label_smoothing``
    argument of ``cross_entropy`` instead puts :math:`\varepsilon / C` on every
    class, the true one included.

    Args:
        input: logits of shape ``(B, T, C)``, :math:`C \ge 2`; ``-inf`` marks a
            masked class (which makes the loss ``inf`` when ``smoothing > 0``, as
            every class gets :math:`\varepsilon / (C - 1)`), but each row needs a
            finite logit.
        target: class indices of shape ``(B, T)``, integer dtype, in ``0..C-1`` or
            ``padding_idx``.
        smoothing: :math:`\varepsilon \in [0, 1)`; 0 gives the negative
            log-likelihood.
        padding_idx: the target value of padding positions (WeNet's ``IGNORE_ID`` is
            -1).
        normalize_length: divide by the number of non-padding tokens instead of
            :math:`B`.

    Returns:
        A 0-dim tensor of ``input``'s dtype.

    Raises:
        TypeError: ``input`` not floating point, ``target`` not an integer tensor,
            ``smoothing`` not a real number, ``padding_idx`` not an int or
            ``normalize_length`` not a bool.
        ValueError: ``input`` not 3-D, :math:`C < 2`, NaN or ``+inf`` logits (or a
            row of only ``-inf``), ``target`` of the wrong shape or with a class out
            of range, ``smoothing`` outside [0, 1).

    Example:
        >>> logits = torch.zeros(1, 2, 3)  # uniform model over 3 classes, 2 tokens
        >>> target = torch.tensor([[0, -1]])  # the second token is padding
        >>> # one token of log 3
        >>> label_smoothing_kl_loss(logits, target, smoothing=0.0)
        tensor(1.0986)

    References:
        Yao et al. (2021), WeNet, ``wenet/transformer/label_smoothing_loss.py``;
        Szegedy et al. (2016), section 7; Müller et al. (2019).
    """
    x = as_float_tensor(input, "input")
    if x.dim() != 3:
        raise ValueError(
            f"input must have shape (B, T, C); got {x.dim()} dimension(s) "
            f"{tuple(x.shape)}"
        )
    num_classes = x.size(2)
    if num_classes < 2:
        raise ValueError(
            "input must have at least 2 classes (C >= 2) to smooth over; got "
            f"C={num_classes}"
        )
    eps = _check_real(smoothing, "smoothing", 0.0, 1.0, high_open=True)
    padding_idx = _check_int(padding_idx, "padding_idx")
    _check_bool(normalize_length, "normalize_length")
    index, keep = _check_class_target(
        target, x.shape[:2], num_classes, padding_idx, "padding_idx"
    )
    off = eps / (
        num_classes - 1
    )  # the smoothed target: 1 - eps at y, off elsewhere
    # sum_k t_k log t_k, a constant per token (0 log 0 = 0)
    entropy_term = (1.0 - eps) * math.log1p(-eps) + (
        (num_classes - 1) * off * math.log(off) if off > 0 else 0.0
    )
    if is_transformed(x):
        smoothed = torch.full_like(x, off).scatter(2, index.unsqueeze(2), 1.0 - eps)
        log_q = log_softmax(x, dim=2)
        cross = -torch.where(smoothed == 0, 0.0, smoothed * log_q).sum(dim=2)
    else:
        x2 = x.reshape(-1, num_classes)
        nll, _, smooth, *_ = _SoftmaxCrossEntropy.apply(
            x2, index.reshape(-1), True if off > 0 else None
        )
        _raise_if_no_finite_maximum(x, nll, "input")
        # -sum_k t_k log q_k = (1 - eps - off) (-log q_y) + off sum_k (lse - x_k)
        cross = (1.0 - eps - off) * nll  # float64, like lse: rounded once below
        if off > 0:
            cross = cross + off * smooth
        cross = cross.to(x.dtype).reshape(index.shape)
    per_token = entropy_term + cross
    total = torch.where(keep, per_token, 0.0).sum()
    return total / (keep.sum() if normalize_length else x.size(0))
