r"""Focal losses: multi-class and sigmoid (chapter 11)."""

from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor

from lossnotes._checks import (
    TensorLike,
    as_float_tensor,
    check_finite,
    check_no_nan,
    check_reduction,
    check_same_shape,
    is_transformed,
    result_dtype,
)
from lossnotes.functional._common import (
    _check_class_weight,
    _check_int,
    _check_probabilities,
    _check_real,
    _class_dim,
    _class_target_for,
    _modulating_factor,
    _reduce,
)
from lossnotes.functional.classification import (
    _num_classes,
    _rows,
    _SoftmaxCrossEntropy,
)
from lossnotes.stability import log_softmax


def _check_alpha(alpha, num_classes: int, like: Tensor) -> Tensor | None:
    """``alpha`` as ``C`` class weights: the check of ``weight``, under its own
    name.
    """
    return _check_class_weight(alpha, num_classes, like, "alpha")


def _raise_if_no_finite_maximum(x: Tensor, per_sample: Tensor, name: str) -> None:
    """A NaN per-sample result: a NaN logit, or a row without a finite maximum."""
    if is_transformed(per_sample) or per_sample.numel() == 0:
        return
    if bool(torch.isnan(per_sample.detach().sum())):
        check_no_nan(x, name)
        raise ValueError(
            f"{name} contains inf: a row with a +inf logit, or only -inf logits, "
            "has no "
            "finite maximum (a masked class is -inf, and at least one class must "
            "be finite)"
        )


def focal_loss(
    input: TensorLike,
    target: Tensor,
    alpha: TensorLike | None = None,
    *,
    gamma: float = 2.0,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Multi-class focal loss from logits: cross-entropy scaled down for easy
    examples.

    .. math::
        \ell_n = -\,\alpha_{y_n} (1 - p_{n, y_n})^{\gamma} \log p_{n, y_n},
        \qquad p_n = \operatorname{softmax}(x_n)

    The modulating factor :math:`(1 - p_t)^\gamma` is near 0 for a well-classified
    example (:math:`p_t \to 1`) and near 1 for a misclassified one. With
    :math:`\gamma = 0` and no ``alpha`` it is exactly
    ``torch.nn.functional.cross_entropy``. :math:`\log p_t` comes from a stable
    ``log_softmax`` and :math:`1 - p_t` from ``-expm1(log p_t)``, so neither
    cancels.

    ``reduction="mean"`` divides the sum by the **number of non-ignored samples**,
    whatever ``alpha`` is. ``cross_entropy(weight=alpha)`` divides by the **sum of
    the weights** :math:`\sum_n \alpha_{y_n}` instead, so the two differ by that
    factor even at :math:`\gamma = 0`.

    Masked classes follow :func:`cross_entropy`: a ``-inf`` logit has probability 0
    and gradient 0, and a masked class as the target gives ``inf``; a row needs one
    finite logit. :math:`\log p_t` is the per-sample loss of ``cross_entropy``'s
    fused function, accurate for confident rows too. Options after ``alpha`` are
    keyword-only; an empty batch gives NaN for ``"mean"``.

    Args:
        input: logits of shape ``(C)``, ``(N, C)`` or ``(N, C, d1, ...)`` (classes
            on dim 1, as for ``cross_entropy``); ``-inf`` marks a masked class.
        target: class indices of shape ``()``, ``(N,)`` or ``(N, d1, ...)``, integer
            dtype, in ``0..C-1`` or ``ignore_index``.
        alpha: ``None`` or a tensor of ``C`` non-negative per-class weights
            :math:`\alpha_c`.
        gamma: the focusing parameter :math:`\gamma \ge 0`.
        ignore_index: target value whose positions contribute nothing (and are not
            counted).
        reduction: ``"none"`` (shape of ``target``, 0 at ignored positions),
            ``"mean"`` or ``"sum"``. ``"mean"`` of an all-ignored batch is NaN, as
            for ``cross_entropy``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` not floating point, ``target`` not an integer tensor,
            ``gamma`` not a real number or ``ignore_index`` not an int.
        ValueError: ``input`` 0-dim, with NaN, or with a row without a finite logit
            (a ``+inf``, or only ``-inf``), ``target`` of the wrong shape or with a
            class out of range, ``alpha`` of the wrong shape or negative, ``gamma``
            negative or infinite, or an unknown ``reduction``.

    Example:
        >>> logits = torch.tensor([[0.0, 0.0]])  # p_t = 1/2
        >>> # (1/2)^2 log 2 = 0.1733
        >>> focal_loss(logits, torch.tensor([0]), gamma=2.0)
        tensor(0.1733)

    References:
        Lin, Goyal, Girshick, He & Dollár (2017), *Focal loss for dense object
        detection*,
        eq. (5), with per-class :math:`\alpha` as in their multi-class use.
    """
    x = as_float_tensor(input, "input", allow_empty=True)
    dim = _class_dim(x)
    g = _check_real(gamma, "gamma", 0.0)
    ignore_index = _check_int(ignore_index, "ignore_index")
    check_reduction(reduction)
    a = _check_alpha(alpha, _num_classes(x), x)
    index, keep = _class_target_for(target, x, ignore_index)
    if is_transformed(x):
        log_pt = (
            log_softmax(x, dim=dim).gather(dim, index.unsqueeze(dim)).squeeze(dim)
        )
    else:
        nll = _SoftmaxCrossEntropy.apply(_rows(x, dim), index.reshape(-1))[0]
        _raise_if_no_finite_maximum(x, nll, "input")
        log_pt = -nll.reshape(index.shape)  # float64: the loss is rounded once
    loss = (-_modulating_factor(-torch.expm1(log_pt), g) * log_pt).to(x.dtype)
    if a is not None:
        loss = a[index] * loss
    return _reduce(torch.where(keep, loss, 0.0), reduction, total=keep.sum())


def sigmoid_focal_loss(
    inputs: TensorLike,
    targets: TensorLike,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Tensor:
    r"""Binary (multi-label) focal loss from logits, as
    ``torchvision.ops.sigmoid_focal_loss``.

    .. math::
        \ell = -\,\alpha_t (1 - p_t)^{\gamma} \log p_t, \quad
        p_t = y\,\sigma(x) + (1 - y)(1 - \sigma(x)), \quad
        \alpha_t = y\,\alpha + (1 - y)(1 - \alpha)

    for every element independently: each logit is its own binary problem (one
    anchor and one class, in dense detection). For soft targets :math:`y \in [0, 1]`
    the :math:`\log p_t` term is the binary cross-entropy :math:`-y \log\sigma(x) -
    (1 - y)\log(1 - \sigma(x))`, as in torchvision. Computed from
    :math:`-\log\sigma(\pm x) = \operatorname{LSE}(0, \mp x)` (``torch.logaddexp``:
    stable, in the input's dtype), and :math:`1 - p_t = y\,\sigma(-x) + (1 -
    y)\,\sigma(x)` as a sum of non-negative terms, so a logit of any size gives a
    finite, accurate loss. ``alpha < 0`` drops the :math:`\alpha_t` factor; the same
    signature, positional order and defaults as torchvision's (so a positional call
    binds as there). A float64 ``targets`` makes the result float64.

    Args:
        inputs: logits, any shape, finite.
        targets: same shape, floating point, values in [0, 1] (1 = positive).
        alpha: weight of the positives in [0, 1], or negative to disable (default
            0.25).
        gamma: the focusing parameter :math:`\gamma \ge 0` (default 2).
        reduction: ``"none"`` (default, as in torchvision), ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked.

    Raises:
        TypeError: ``inputs`` or ``targets`` not floating point, ``alpha`` or
            ``gamma`` not real numbers.
        ValueError: shapes differ, non-finite ``inputs``, ``targets`` outside [0,
            1], ``alpha`` above 1 or NaN, ``gamma`` negative or infinite, or an
            unknown ``reduction``.

    Example:
        >>> # p_t = 1/2 for both
        >>> x, y = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])
        >>> sigmoid_focal_loss(x, y)  # 0.25 / 4 * log 2 and 0.75 / 4 * log 2
        tensor([0.0433, 0.1300])

    References:
        Lin et al. (2017), eq. (5); torchvision
        ``torchvision.ops.sigmoid_focal_loss``.
    """
    x = as_float_tensor(inputs, "inputs", allow_empty=True)
    y = as_float_tensor(targets, "targets", allow_empty=True)
    check_same_shape(y, x, ("targets", "inputs"))
    check_finite(x, "inputs")
    _check_probabilities(y, "targets")
    dtype = result_dtype(x, y)
    x, y = x.to(dtype), y.to(dtype)
    if isinstance(alpha, bool) or not isinstance(alpha, Real):
        raise TypeError(f"alpha must be a real number; got {type(alpha).__name__}")
    if not alpha <= 1:
        raise ValueError(
            f"alpha must lie in [0, 1], or be negative to disable it; got {alpha:g}"
        )
    g = _check_real(gamma, "gamma", 0.0)
    check_reduction(reduction)
    # -log sigmoid(x) = max(-x, 0) + log(1 + e^-|x|), -log(1 - sigmoid(x)) = max(x,
    # 0) + ...
    zero = torch.zeros((), dtype=x.dtype)
    bce = y * torch.logaddexp(-x, zero) + (1 - y) * torch.logaddexp(x, zero)
    one_minus_pt = y * torch.sigmoid(-x) + (1 - y) * torch.sigmoid(x)
    loss = _modulating_factor(one_minus_pt, g) * bce
    if alpha >= 0:
        loss = (y * alpha + (1 - y) * (1 - alpha)) * loss
    return _reduce(loss, reduction)
