"""Checks and the reduction shared by the losses of :mod:`lossnotes.functional`."""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
from torch import Tensor

from lossnotes._checks import (
    as_float_tensor,
    check_no_nan,
)

#: PyTorch clamps both logarithms of ``binary_cross_entropy`` at this value (so a term is <= 100).
BCE_LOG_CLAMP = -100.0
#: PyTorch's floor under :math:`p(1 - p)` in the gradient of ``binary_cross_entropy``: 1e-12
#: stored as a float32 (PyTorch's constant is a C ``float``, also for float64 tensors).
BCE_GRAD_EPS = 9.999999960041972e-13


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
        raise ValueError(
            "input must have shape (C), (N, C) or (N, C, d1, ..., dk); got a 0-dim tensor"
        )
    return 0 if x.dim() == 1 else 1


def _index_shape(x: Tensor) -> torch.Size:
    """The shape of class indices for ``x``: ``x``'s shape without its class dimension."""
    return x.shape[:1] + x.shape[2:] if x.dim() > 1 else torch.Size([])


def _check_class_target(
    target,
    shape: torch.Size,
    num_classes: int,
    ignore_index: int,
    ignore_name: str = "ignore_index",
) -> tuple[Tensor, Tensor]:
    """Check class indices of shape ``shape``, each in ``0..num_classes-1`` or ``ignore_index``.

    Returns ``(index, keep)``: the indices as ``torch.long`` with ignored positions set to 0
    (safe to ``gather``) and the boolean mask of the positions that count.
    """
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


def _class_target_for(
    target, x: Tensor, ignore_index: int
) -> tuple[Tensor, Tensor]:
    """:func:`_check_class_target` for an input with classes on dim 1, with a hint for dim -1."""
    shape = _index_shape(x)
    if (
        isinstance(target, Tensor)
        and x.dim() > 2
        and target.shape != shape
        and target.shape == x.shape[:-1]
    ):
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
        raise ValueError(
            f"weight must hold one weight per class, shape ({num_classes},); got {tuple(w.shape)}"
        )
    _check_nonnegative(w, "weight")
    return w.to(like.dtype)


def _check_broadcast_weight(
    weight, name: str, shape: torch.Size, like: Tensor
) -> Tensor | None:
    """``weight`` as finite, non-negative weights that broadcast to ``shape``, or None."""
    if weight is None:
        return None
    w = as_float_tensor(weight, name)
    try:
        fits = torch.broadcast_shapes(w.shape, shape) == shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{name} has shape {tuple(w.shape)}, which does not broadcast to input's {tuple(shape)}"
        )
    _check_nonnegative(w, name)
    return w.to(like.dtype)


def _check_nonnegative(w: Tensor, name: str) -> None:
    bad = ~(torch.isfinite(w) & (w >= 0))
    if bad.any():
        raise ValueError(
            f"{name} must be finite and >= 0; got {w[bad][0].item():g}"
        )


def _check_probabilities(t: Tensor, name: str) -> None:
    check_no_nan(t, name)
    outside = (t < 0) | (t > 1)
    if outside.any():
        raise ValueError(
            f"{name} must hold probabilities in [0, 1]; got {t[outside][0].item():g}"
        )


def _check_label_smoothing(value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"label_smoothing must be a real number; got {type(value).__name__}"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1]; got {value:g}")
    return float(value)


def _check_same_shape_as_input(target: Tensor, x: Tensor) -> None:
    if target.shape != x.shape:
        raise ValueError(
            f"target has shape {tuple(target.shape)} but input has {tuple(x.shape)}; "
            f"they must be the same (no broadcasting)"
        )


# --- negative log-likelihood and cross-entropy (chapter 8) -------------------------------------


def _check_real(
    value, name: str, low: float, high: float = math.inf, high_open: bool = False
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``[low, high)`` if ``high_open``), or raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not (
        math.isfinite(value)
        and low <= value
        and (value < high if high_open else value <= high)
    ):
        closing = ")" if high_open else "]"
        raise ValueError(
            f"{name} must be a finite number in [{low:g}, {high:g}{closing}; got {value:g}"
        )
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
