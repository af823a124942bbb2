"""Helpers of the class-index losses of :mod:`lossnotes.functional`.

The generic checks (``check_int``, ``check_probabilities``, ``reduce_loss``, ...)
live in :mod:`lossnotes._checks`, the one validation module of the package; the
underscore names below are kept as aliases of them so that code importing them from
here keeps working.
"""

from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor

from lossnotes._checks import (
    as_float_tensor,
    check_bool,
    check_index_tensor,
    check_int,
    check_nonnegative,
    check_probabilities,
    check_real,
    check_same_shape,
    is_transformed,
    reduce_loss,
)

#: PyTorch clamps both logarithms of ``binary_cross_entropy`` at this value (so a
#: term is <= 100).
BCE_LOG_CLAMP = -100.0
#: PyTorch's floor under :math:`p(1 - p)` in the gradient of
#: ``binary_cross_entropy``: 1e-12 : stored as a float32 (PyTorch's constant is a C
#: ``float``, also for float64 tensors).
BCE_GRAD_EPS = 9.999999960041972e-13

# aliases of the generic checks, under the names the loss modules used before
_reduce = reduce_loss
_check_int = check_int
_check_bool = check_bool
_check_real = check_real
_check_nonnegative = check_nonnegative
_check_probabilities = check_probabilities
_check_same_shape_as_input = check_same_shape


def _class_dim(x: Tensor) -> int:
    """The class dimension of ``x``: 0 for an input of shape ``(C)``, else 1."""
    if x.dim() == 0:
        raise ValueError(
            "input must have shape (C), (N, C) or (N, C, d1, ..., dk); got a 0-dim "
            "tensor"
        )
    return 0 if x.dim() == 1 else 1


def _index_shape(x: Tensor) -> torch.Size:
    """The shape of class indices for ``x``: ``x``'s shape without its class
    dimension.
    """
    return x.shape[:1] + x.shape[2:] if x.dim() > 1 else torch.Size([])


def _check_class_target(
    target,
    shape: torch.Size,
    num_classes: int,
    ignore_index: int,
    ignore_name: str = "ignore_index",
) -> tuple[Tensor, Tensor]:
    """Check class indices of shape ``shape``, each in ``0..num_classes-1`` or
    ``ignore_index``.

    Returns ``(index, keep)``: the indices as ``torch.long`` with ignored positions
    set to 0 (safe to ``gather``) and the boolean mask of the positions that count.
    The range check reads the values, so it is skipped inside a ``torch.func``
    transform.
    """
    check_index_tensor(target, "target")
    if target.shape != shape:
        raise ValueError(
            f"target has shape {tuple(target.shape)}; class indices for this input "
            "need "
            f"shape {tuple(shape)}, the input's shape without its class dimension"
        )
    target = target.long()
    keep = target != ignore_index
    index = torch.where(keep, target, 0)
    if not is_transformed(target) and target.numel() > 0:
        low, high = torch.aminmax(index)  # one pass; the details only on failure
        if int(low) < 0 or int(high) >= num_classes:
            bad = (index < 0) | (index >= num_classes)
            where = tuple(bad.nonzero()[0].tolist())
            raise ValueError(
                f"target has class {index[bad][0].item()} at position {where} but "
                "input "
                f"has only {num_classes} classes (valid: 0..{num_classes - 1}, or "
                f"{ignore_name}={ignore_index} to skip)"
            )
    return index, keep


def _class_target_for(
    target, x: Tensor, ignore_index: int
) -> tuple[Tensor, Tensor]:
    """:func:`_check_class_target` for an input with classes on dim 1, with a hint
    for dim -1.
    """
    shape = _index_shape(x)
    if (
        isinstance(target, Tensor)
        and x.dim() > 2
        and target.shape != shape
        and target.shape == x.shape[:-1]
    ):
        raise ValueError(
            f"target has shape {tuple(target.shape)}, input {tuple(x.shape)}: the "
            "classes "
            "must be on dim 1 of input, (N, C, d1, ..., dk); for channels-last "
            "logits "
            f"pass input.movedim(-1, 1)"
        )
    return _check_class_target(target, shape, x.size(_class_dim(x)), ignore_index)


def _check_class_weight(
    weight, num_classes: int, like: Tensor, name: str = "weight"
) -> Tensor | None:
    """``weight`` as ``C`` finite, non-negative class weights in ``like``'s dtype,
    or None.

    Serves ``weight`` of the class-index losses and ``alpha`` of :func:`focal_loss`
    alike.
    """
    if weight is None:
        return None
    w = as_float_tensor(weight, name)
    if w.shape != (num_classes,):
        raise ValueError(
            f"{name} must hold one weight per class, shape ({num_classes},); "
            f"got {tuple(w.shape)}"
        )
    check_nonnegative(w, name)
    return w.to(like.dtype)


def _check_broadcast_weight(
    weight, name: str, shape: torch.Size, like: Tensor
) -> Tensor | None:
    """``weight`` as finite, non-negative weights that broadcast to ``shape``, or
    None.
    """
    if weight is None:
        return None
    w = as_float_tensor(weight, name, allow_empty=True)
    try:
        fits = torch.broadcast_shapes(w.shape, shape) == shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{name} has shape {tuple(w.shape)}, which does not broadcast to "
            "input's "
            f"{tuple(shape)}"
        )
    check_nonnegative(w, name)
    return w.to(like.dtype)


def _check_label_smoothing(value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"label_smoothing must be a real number; got {type(value).__name__}"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1]; got {value:g}")
    return float(value)


def _modulating_factor(one_minus_p: Tensor, gamma: float) -> Tensor:
    r""":math:`(1 - p_t)^\gamma`, with a gradient that stays finite where :math:`1 -
    p_t = 0`.
    """
    # (1 - p)**gamma has an infinite slope at 1 - p = 0 when gamma < 1; below the
    # smallest normal number the clamp makes the slope 0 instead (the factor is 0 or
    # 1 there anyway)
    return one_minus_p.clamp(min=torch.finfo(one_minus_p.dtype).tiny) ** gamma
