r"""Regression losses as negative log-likelihoods (chapter 6).

``mse_loss`` is the Gaussian negative log-likelihood with a fixed variance,
``l1_loss`` the Laplace one, ``gaussian_nll_loss`` the Gaussian one with a predicted
variance, and ``huber_loss``/``smooth_l1_loss`` the robust compromise between the
first two. Each mirrors its ``torch.nn.functional`` namesake; every argument after
the tensors is keyword-only, so no call can bind an argument differently from
PyTorch (whose third positional argument is the deprecated ``size_average``).
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

from lossnotes._checks import as_float_tensor, check_no_nan, check_reduction
from lossnotes.functional._common import (
    _check_bool,
    _check_nonnegative,
    _check_real,
    _check_same_shape_as_input,
    _reduce,
)


def _regression_inputs(input, target, reduction: str, promote: bool) -> tuple:
    """``input`` and ``target``: float tensors of one shape and dtype, no NaN.

    The dtype is the promoted one when ``promote`` (as PyTorch's ``mse_loss``,
    ``l1_loss``, ``smooth_l1_loss``), else ``input``'s (as ``huber_loss``).
    """
    x = as_float_tensor(input, "input")
    y = as_float_tensor(target, "target")
    check_reduction(reduction)
    _check_same_shape_as_input(y, x)
    check_no_nan(x, "input")
    check_no_nan(y, "target")
    dtype = torch.result_type(x, y) if promote else x.dtype
    return x.to(dtype), y.to(dtype)


def _check_elementwise_weight(weight, x: Tensor) -> Tensor | None:
    """``weight`` as finite, non-negative weights of ``x``'s shape, or None."""
    if weight is None:
        return None
    w = as_float_tensor(weight, "weight")
    if w.shape != x.shape:
        raise ValueError(
            f"weight has shape {tuple(w.shape)} but input has {tuple(x.shape)}; "
            "they must be the same (one weight per element)"
        )
    _check_nonnegative(w, "weight")
    return w.to(x.dtype)


def _weighted_mean_over_weights(loss: Tensor, w: Tensor | None, reduction: str):
    """Reduce ``w * loss``; ``"mean"`` divides by the sum of the weights."""
    if w is None:
        return _reduce(loss, reduction)
    if reduction == "mean":
        total = w.sum()
        if total == 0:
            raise ValueError(
                "weight sums to 0, so the weighted mean is 0/0; "
                "use reduction='sum' or give some element a positive weight"
            )
        return (w * loss).sum() / total
    return _reduce(w * loss, reduction)


def mse_loss(input, target, *, reduction: str = "mean", weight=None) -> Tensor:
    r"""Mean squared error, as ``torch.nn.functional.mse_loss``.

    .. math::
        \ell_i = w_i\,(x_i - y_i)^2

    Up to a constant and a factor, the negative log-likelihood of :math:`y_i` under
    a Gaussian of mean :math:`x_i` and any fixed variance :math:`\sigma^2`:
    :math:`-\log \mathcal N(y_i; x_i, \sigma^2) = (x_i - y_i)^2 / (2\sigma^2)
    + \tfrac12 \log(2\pi\sigma^2)`. Minimising it over a constant prediction gives
    the mean of the targets.

    ``"mean"`` divides by the number of elements, or, with ``weight``, by the sum of
    the weights (as PyTorch).

    Args:
        input: predictions :math:`x`, any shape.
        target: :math:`y`, ``input``'s shape (no broadcasting, where PyTorch warns
            and broadcasts).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        weight: ``None`` or finite, non-negative weights of ``input``'s shape.

    Returns:
        The loss, reduced as asked, in the promoted dtype of ``input`` and
        ``target``.

    Raises:
        TypeError: ``input``, ``target`` or ``weight`` not floating point.
        ValueError: empty ``input``, shapes differ, NaN in ``input`` or ``target``,
            a ``weight`` of another shape, negative or not finite, weights summing
            to 0 with ``"mean"``, or an unknown ``reduction``.

    Example:
        >>> mse_loss(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0]))
        tensor(4.3333)

    References:
        PyTorch ``torch.nn.MSELoss``; Bishop (2006), section 3.1.1.
    """
    x, y = _regression_inputs(input, target, reduction, promote=True)
    w = _check_elementwise_weight(weight, x)
    return _weighted_mean_over_weights((x - y) ** 2, w, reduction)


def l1_loss(input, target, *, reduction: str = "mean", weight=None) -> Tensor:
    r"""Mean absolute error, as ``torch.nn.functional.l1_loss``.

    .. math::
        \ell_i = w_i\,|x_i - y_i|

    Up to a constant and a factor, the negative log-likelihood of :math:`y_i` under
    a Laplace distribution of location :math:`x_i` and fixed scale :math:`b`:
    :math:`-\log p(y_i) = |x_i - y_i| / b + \log(2b)`. Minimising it over a constant
    prediction gives a median of the targets. The gradient at :math:`x_i = y_i` is
    0.

    Args:
        input: predictions :math:`x`, any shape.
        target: :math:`y`, ``input``'s shape.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        weight: ``None`` or finite, non-negative weights of ``input``'s shape;
            ``"mean"`` then divides by their sum.

    Returns:
        The loss, reduced as asked, in the promoted dtype of ``input`` and
        ``target``.

    Raises:
        TypeError: ``input``, ``target`` or ``weight`` not floating point.
        ValueError: as :func:`mse_loss`.

    Example:
        >>> l1_loss(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0]))
        tensor(1.6667)

    References:
        PyTorch ``torch.nn.L1Loss``.
    """
    x, y = _regression_inputs(input, target, reduction, promote=True)
    w = _check_elementwise_weight(weight, x)
    return _weighted_mean_over_weights((x - y).abs(), w, reduction)


def _huber(d: Tensor, delta: float) -> Tensor:
    r"""Huber's function of the residual: :math:`d^2/2` for :math:`|d| \le \delta`,
    else :math:`\delta(|d| - \delta/2)`."""
    a = d.abs()
    return torch.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta))


def huber_loss(
    input, target, *, reduction: str = "mean", delta: float = 1.0, weight=None
) -> Tensor:
    r"""Huber loss, as ``torch.nn.functional.huber_loss``.

    .. math::
        \ell_i = w_i \begin{cases}
            \tfrac12 (x_i - y_i)^2 & |x_i - y_i| \le \delta \\
            \delta\,(|x_i - y_i| - \tfrac12 \delta) & \text{otherwise}
        \end{cases}

    Quadratic near the target, linear beyond :math:`\delta`: the squared error's
    behaviour for small residuals and the absolute error's for outliers, with a
    continuous slope :math:`\operatorname{clip}(x_i - y_i, -\delta, \delta)`. It is
    :math:`\delta` times :func:`smooth_l1_loss` with ``beta`` :math:`= \delta`.

    ``"mean"`` divides by the number of elements, also with ``weight`` (unlike
    :func:`mse_loss` and :func:`l1_loss`, which divide by the sum of the weights:
    PyTorch does the same).

    Args:
        input: predictions :math:`x`, any shape.
        target: :math:`y`, ``input``'s shape; converted to ``input``'s dtype, as
            PyTorch.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        delta: the threshold :math:`\delta > 0`, finite.
        weight: ``None`` or finite, non-negative weights of ``input``'s shape.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input``, ``target`` or ``weight`` not floating point; ``delta``
            not a real number.
        ValueError: as :func:`mse_loss` (but weights may sum to 0), or ``delta`` not
            positive and finite.

    Example:
        >>> huber_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction="none")
        tensor([0.1250, 2.5000])

    References:
        Huber (1964), *Robust Estimation of a Location Parameter*; PyTorch
        ``torch.nn.HuberLoss``.
    """
    x, y = _regression_inputs(input, target, reduction, promote=False)
    delta = _check_real(delta, "delta", 0.0)
    if delta == 0:
        raise ValueError("delta must be positive; got 0")
    w = _check_elementwise_weight(weight, x)
    loss = _huber(x - y, delta)
    return _reduce(loss if w is None else w * loss, reduction)


def smooth_l1_loss(
    input, target, *, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    r"""Smooth L1 loss, as ``torch.nn.functional.smooth_l1_loss``.

    .. math::
        \ell_i = \begin{cases}
            \tfrac12 (x_i - y_i)^2 / \beta & |x_i - y_i| < \beta \\
            |x_i - y_i| - \tfrac12 \beta & \text{otherwise}
        \end{cases}

    The Huber loss divided by its threshold: :math:`\ell = \mathrm{huber}_\delta /
    \delta` with :math:`\delta = \beta`. Its slope is bounded by 1 whatever ``beta``
    is (Huber's by :math:`\delta`), and ``beta = 0`` is exactly :func:`l1_loss`,
    where Huber's :math:`\delta \to 0` tends to 0.

    Args:
        input: predictions :math:`x`, any shape.
        target: :math:`y`, ``input``'s shape.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        beta: the threshold :math:`\beta \ge 0`, finite.

    Returns:
        The loss, reduced as asked, in the promoted dtype of ``input`` and
        ``target``.

    Raises:
        TypeError: ``input`` or ``target`` not floating point; ``beta`` not a real
            number.
        ValueError: empty ``input``, shapes differ, NaN in ``input`` or ``target``,
            ``beta`` negative or not finite, or an unknown ``reduction``.

    Example:
        >>> x = torch.tensor([0.5, 3.0])
        >>> smooth_l1_loss(x, torch.zeros(2), reduction="none")
        tensor([0.1250, 2.5000])

    References:
        Girshick (2015), *Fast R-CNN*; PyTorch ``torch.nn.SmoothL1Loss``.
    """
    x, y = _regression_inputs(input, target, reduction, promote=True)
    beta = _check_real(beta, "beta", 0.0)
    d = x - y
    if beta == 0:
        return _reduce(d.abs(), reduction)
    a = d.abs()
    loss = torch.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
    return _reduce(loss, reduction)


def _gaussian_var(var, x: Tensor) -> Tensor:
    """``var`` checked and shaped to broadcast against ``x``, as PyTorch does."""
    if isinstance(var, Real) and not isinstance(var, bool):
        if not (math.isfinite(var) and var >= 0):
            raise ValueError(f"var must be finite and >= 0; got {var:g}")
        return torch.full_like(x, float(var))
    if not isinstance(var, Tensor):
        raise TypeError(
            f"var must be a torch.Tensor or a real number; got {type(var).__name__}"
        )
    v = as_float_tensor(var, "var")
    _check_nonnegative(v, "var")
    if v.shape == x.shape:
        return v
    if v.shape == x.shape[:-1]:  # one variance for all the last dimension's entries
        return v.unsqueeze(-1)
    mismatched = [(a, b) for a, b in zip(x.shape, v.shape, strict=False) if a != b]
    if v.dim() == x.dim() and len(mismatched) == 1 and mismatched[0][1] == 1:
        return v  # one variance shared along one dimension
    raise ValueError(
        f"var has shape {tuple(v.shape)} but input has {tuple(x.shape)}; expected "
        "input's shape, input's shape without its last dimension, or input's shape "
        "with one dimension set to 1"
    )


def gaussian_nll_loss(
    input,
    target,
    var,
    *,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    r"""Gaussian negative log-likelihood, as
    ``torch.nn.functional.gaussian_nll_loss``.

    .. math::
        \ell_i = \tfrac12 \Big( \log \max(v_i, \epsilon)
            + \frac{(x_i - y_i)^2}{\max(v_i, \epsilon)} \Big)
            \;\big[+\, \tfrac12 \log 2\pi \ \text{if full}\big]

    :math:`-\log \mathcal N(y_i; x_i, v_i)` for a predicted mean :math:`x_i` and a
    predicted variance :math:`v_i`, without the constant :math:`\tfrac12\log 2\pi`
    unless ``full``. With one variance for every element it is :func:`mse_loss`
    scaled by :math:`1/(2v)` plus a constant; a variance per element makes the model
    heteroscedastic.

    The clamp at ``eps`` is applied, as in PyTorch, without autograd: the gradient
    with respect to :math:`v_i` is that of the formula at :math:`\max(v_i,
    \epsilon)`, also where :math:`v_i < \epsilon` (a straight-through clamp, not a
    zero slope).

    Args:
        input: predicted means :math:`x`, any shape.
        target: :math:`y`, ``input``'s shape or a shape that broadcasts to it.
        var: variances :math:`v \ge 0`: a real number, a tensor of ``input``'s
            shape, of ``input``'s shape without the last dimension, or of
            ``input``'s shape with one dimension set to 1 (one variance shared along
            it).
        full: add the constant :math:`\tfrac12 \log 2\pi`, making it the exact NLL.
        eps: the floor :math:`\epsilon > 0` under the variance.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked (``"none"``: ``input``'s shape).

    Raises:
        TypeError: ``input``, ``target`` or ``var`` not floating point, ``var``
            neither a tensor nor a number, ``full`` not a bool, or ``eps`` not a
            number.
        ValueError: empty ``input``, NaN in ``input`` or ``target``, a ``target`` or
            ``var`` shape that does not fit, a negative or non-finite variance,
            ``eps`` not positive and finite, or an unknown ``reduction``.

    Example:
        >>> x, y = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 2.0])
        >>> gaussian_nll_loss(x, y, torch.tensor([1.0, 4.0]), reduction="none")
        tensor([0.5000, 1.1931])

    References:
        Nix & Weigend (1994), *Estimating the Mean and Variance of the Target
        Probability Distribution*; PyTorch ``torch.nn.GaussianNLLLoss``.
    """
    x = as_float_tensor(input, "input")
    y = as_float_tensor(target, "target")
    check_no_nan(x, "input")
    check_no_nan(y, "target")
    try:
        fits = torch.broadcast_shapes(y.shape, x.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"target has shape {tuple(y.shape)}, which does not broadcast to "
            f"input's {tuple(x.shape)}"
        )
    _check_bool(full, "full")
    eps = _check_real(eps, "eps", 0.0)
    if eps == 0:
        raise ValueError(
            "eps must be positive; got 0 (a zero variance has log -inf)"
        )
    check_reduction(reduction)
    v = _gaussian_var(var, x)
    # the value max(v, eps), the gradient passed straight through (v - v.detach() is
    # an
    # exact 0 of slope 1), as PyTorch's in-place clamp under no_grad
    v = torch.where(v < eps, (v - v.detach()) + eps, v)
    loss = 0.5 * (torch.log(v) + (x - y) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)
