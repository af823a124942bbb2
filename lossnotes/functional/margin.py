r"""Margin losses: hinge, soft margin, multi-class margin and hinge embedding
(chapter 6).

A margin loss scores the signed margin :math:`y x` of a prediction (labels
:math:`\pm 1`) or the gap between the true class's score and the others', and is
exactly 0 once that margin is large enough; cross-entropy never is.
``soft_margin_loss``, ``multi_margin_loss`` and ``hinge_embedding_loss`` mirror
``torch.nn.functional`` with every argument after the tensors keyword-only;
``hinge_loss`` (binary hinge and squared hinge) has no PyTorch counterpart and
matches ``sklearn.metrics.hinge_loss``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import (
    as_float_tensor,
    check_index_tensor,
    check_no_nan,
    check_reduction,
)
from lossnotes.functional._common import (
    _check_class_weight,
    _check_int,
    _check_real,
    _check_same_shape_as_input,
    _reduce,
)
from lossnotes.stability import softplus


def _signed_inputs(input, target, reduction: str) -> tuple[Tensor, Tensor]:
    """``input`` and ``target`` (in ``input``'s dtype, as PyTorch) of a loss on
    labels
    :math:`\\pm 1`: one shape, no NaN, every label -1 or 1."""
    x = as_float_tensor(input, "input")
    y = as_float_tensor(target, "target")
    check_reduction(reduction)
    _check_same_shape_as_input(y, x)
    check_no_nan(x, "input")
    bad = (y != 1) & (y != -1)
    if bad.any():
        raise ValueError(
            f"target must hold labels -1 or 1; got {y[bad][0].item():g} "
            "(for 0/1 labels pass 2 * target - 1)"
        )
    return x, y.to(x.dtype)


def hinge_loss(
    input, target, *, margin: float = 1.0, p: int = 1, reduction: str = "mean"
) -> Tensor:
    r"""Binary hinge loss (``p=1``) or squared hinge loss (``p=2``) on labels
    :math:`\pm 1`.

    .. math::
        \ell_i = \max(0,\ m - y_i x_i)^p

    The loss of the linear support vector machine: 0 once the signed margin
    :math:`y_i x_i` reaches :math:`m`, growing linearly (or quadratically) below it.
    Its gradient is 0 beyond the margin, where the logistic loss
    :func:`soft_margin_loss` still pushes. PyTorch has no binary hinge; for two
    columns ``[0, x]`` it is twice :func:`multi_margin_loss`.

    Args:
        input: scores :math:`x`, any shape.
        target: labels :math:`y \in \{-1, 1\}`, ``input``'s shape.
        margin: the margin :math:`m`, a finite real number.
        p: 1 (hinge) or 2 (squared hinge).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` or ``target`` not floating point, ``p`` not an int, or
            ``margin`` not a real number.
        ValueError: empty ``input``, shapes differ, NaN in ``input``, a label other
            than -1 or 1, ``p`` not 1 or 2, ``margin`` not finite, or an unknown
            ``reduction``.

    Example:
        >>> x, y = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([1.0, 1.0, 1.0])
        >>> hinge_loss(x, y, reduction="none")
        tensor([0.0000, 0.5000, 2.0000])
        >>> hinge_loss(x, y, p=2, reduction="none")
        tensor([0.0000, 0.2500, 4.0000])

    References:
        Cortes & Vapnik (1995), *Support-Vector Networks*; scikit-learn
        ``sklearn.metrics.hinge_loss``.
    """
    x, y = _signed_inputs(input, target, reduction)
    p = _check_p(p)
    margin = _check_real(margin, "margin", -float("inf"))
    z = margin - y * x
    h = torch.where(z > 0, z, 0.0)
    return _reduce(h if p == 1 else h * h, reduction)


def soft_margin_loss(input, target, *, reduction: str = "mean") -> Tensor:
    r"""Soft margin (logistic) loss, as ``torch.nn.functional.soft_margin_loss``.

    .. math::
        \ell_i = \log\big(1 + e^{-y_i x_i}\big) = \operatorname{softplus}(-y_i x_i)

    The logistic loss on labels :math:`\pm 1`: with :math:`t_i = (1 + y_i)/2 \in
    \{0, 1\}` it equals ``binary_cross_entropy_with_logits(x, t)`` element by
    element, because :math:`-\log\sigma(x) = \operatorname{softplus}(-x)` and
    :math:`-\log(1 - \sigma(x)) = \operatorname{softplus}(x)`.

    Computed with a stable softplus, so it stays finite and exact where PyTorch's
    :math:`\log(1 + e^{-yx})` overflows (float32, :math:`-y x \gtrsim 88.7`: PyTorch
    gives ``inf`` and a NaN gradient). Unlike PyTorch, a label other than -1 or 1 is
    an error.

    Args:
        input: scores :math:`x`, any shape; ``±inf`` allowed.
        target: labels :math:`y \in \{-1, 1\}`, ``input``'s shape; converted to
            ``input``'s dtype, as PyTorch.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` or ``target`` not floating point.
        ValueError: empty ``input``, shapes differ, NaN in ``input``, a label other
            than -1 or 1, or an unknown ``reduction``.

    Example:
        >>> soft_margin_loss(torch.tensor([-200.0, 0.0]), torch.tensor([1.0, -1.0]),
        ...                  reduction="none")
        tensor([200.0000,   0.6931])

    References:
        PyTorch ``torch.nn.SoftMarginLoss``.
    """
    x, y = _signed_inputs(input, target, reduction)
    return _reduce(softplus(-y * x), reduction)


def _check_multi_target(target, shape: torch.Size, num_classes: int) -> Tensor:
    """Class indices of shape ``shape``, each in ``0..num_classes-1``."""
    check_index_tensor(target, "target")
    if target.shape != shape:
        raise ValueError(
            f"target has shape {tuple(target.shape)}; class indices for this input "
            f"need shape {tuple(shape)}, the input's shape without its class dim"
        )
    t = target.long()
    bad = (t < 0) | (t >= num_classes)
    if bad.any():
        raise ValueError(
            f"target has class {t[bad][0].item()} but input has only {num_classes} "
            f"classes (valid: 0..{num_classes - 1})"
        )
    return t


def _check_p(p) -> int:
    p = _check_int(p, "p")
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2; got {p}")
    return p


def multi_margin_loss(
    input,
    target,
    *,
    p: int = 1,
    margin: float = 1.0,
    weight=None,
    reduction: str = "mean",
) -> Tensor:
    r"""Multi-class hinge loss, as ``torch.nn.functional.multi_margin_loss``.

    .. math::
        \ell_i = \frac{1}{C} \sum_{j \ne y_i} w_{y_i}
            \max\big(0,\ m - x_{i, y_i} + x_{i, j}\big)^p

    Every wrong class :math:`j` whose score comes within the margin :math:`m` of the
    true class's pays; a sample whose true score beats every other by :math:`m`
    costs exactly 0. The class weight multiplies *after* the power, as PyTorch
    computes it (its documentation writes :math:`\max(0, w_y(\ldots))^p`, which
    differs for ``p=2``). This is the sum of pairwise hinges of Weston & Watkins;
    Crammer & Singer's multi-class SVM takes the largest term instead of the sum.
    The gradient at a term exactly on the margin is 0.

    Args:
        input: scores, shape ``(N, C)`` or ``(C)``.
        target: class indices (integer dtype), shape ``(N)``, or ``()`` for ``(C)``
            input, each in ``0..C-1``.
        p: 1 or 2.
        margin: the margin :math:`m`, a finite real number.
        weight: ``None`` or ``C`` finite, non-negative class weights.
        reduction: ``"none"``, ``"mean"`` (over the ``N`` samples, not the weights)
            or ``"sum"``.

    Returns:
        The loss, reduced as asked; ``"none"`` gives shape ``(N)`` (``()`` for
        ``(C)``).

    Raises:
        TypeError: ``input`` or ``weight`` not floating point, ``target`` not an
            integer tensor, ``p`` not an int, or ``margin`` not a real number.
        ValueError: ``input`` not 1-D or 2-D, or empty; NaN in ``input``; a target
            shape that does not fit or a class out of range; ``p`` not 1 or 2; a bad
            ``weight``; ``margin`` not finite; or an unknown ``reduction``.

    Example:
        >>> scores = torch.tensor([[3.0, 1.0, 0.5], [0.0, 0.2, 0.1]])
        >>> multi_margin_loss(scores, torch.tensor([0, 1]), reduction="none")
        tensor([0.0000, 0.5667])

    References:
        Weston & Watkins (1999); Crammer & Singer (2001), *On the Algorithmic
        Implementation of Multiclass Kernel-based Vector Machines*; PyTorch
        ``torch.nn.MultiMarginLoss``.
    """
    x = as_float_tensor(input, "input")
    if x.dim() not in (1, 2):
        raise ValueError(
            f"input must have shape (N, C) or (C); got {x.dim()} dimensions "
            f"{tuple(x.shape)}"
        )
    check_no_nan(x, "input")
    p = _check_p(p)
    margin = _check_real(margin, "margin", -float("inf"))
    check_reduction(reduction)
    num_classes = x.size(-1)
    w = _check_class_weight(weight, num_classes, x)
    t = _check_multi_target(target, x.shape[:-1], num_classes).reshape(-1)
    x2 = x.reshape(-1, num_classes)
    true_score = x2.gather(1, t[:, None])
    z = margin - true_score + x2
    h = torch.where(z > 0, z, 0.0)
    if p == 2:
        h = h * h
    others = torch.ones_like(x2, dtype=torch.bool).scatter(1, t[:, None], False)
    loss = (h * others).sum(1) / num_classes
    if w is not None:
        loss = w[t] * loss
    return _reduce(loss.reshape(x.shape[:-1]), reduction)


def hinge_embedding_loss(
    input, target, *, margin: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""Hinge embedding loss, as ``torch.nn.functional.hinge_embedding_loss``.

    .. math::
        \ell_i = \begin{cases} x_i & y_i = 1 \\ \max(0,\ m - x_i) & y_i = -1
        \end{cases}

    For :math:`x_i` a distance between two embeddings and :math:`y_i` whether they
    should be similar (1) or not (-1): similar pairs are pulled together, dissimilar
    ones pushed apart until they are :math:`m` away, and no further. A term exactly
    at the margin has slope -1, as in PyTorch.

    Args:
        input: distances :math:`x` (any real numbers), any shape.
        target: labels :math:`y \in \{-1, 1\}`, ``input``'s shape (PyTorch accepts
            other values and adds both cases; here they are an error).
        margin: the margin :math:`m`, a finite real number.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` or ``target`` not floating point, or ``margin`` not a
            real number.
        ValueError: empty ``input``, shapes differ, NaN in ``input``, a label other
            than -1 or 1, ``margin`` not finite, or an unknown ``reduction``.

    Example:
        >>> d = torch.tensor([0.3, 0.3, 2.0])
        >>> y = torch.tensor([1.0, -1.0, -1.0])
        >>> hinge_embedding_loss(d, y, reduction="none")
        tensor([0.3000, 0.7000, 0.0000])

    References:
        Hadsell, Chopra & LeCun (2006), *Dimensionality Reduction by Learning an
        Invariant Mapping*; PyTorch ``torch.nn.HingeEmbeddingLoss``.
    """
    x, y = _signed_inputs(input, target, reduction)
    margin = _check_real(margin, "margin", -float("inf"))
    loss = torch.where(y == 1, x, (margin - x).clamp(min=0))
    return _reduce(loss, reduction)
