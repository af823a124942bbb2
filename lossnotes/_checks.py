"""Input validation shared by the lossnotes modules: the one validation module of
the package.

Every public function validates at its boundary, with a message that says what was
wrong and what was expected. These helpers keep those messages the same everywhere.

Checks that read tensor *values* (NaN, ranges, signs) are skipped inside a
``torch.func`` transform (``grad``, ``vmap``, ``jvp``), where a value is not known
to Python and branching on it would fail: :func:`is_transformed` says when. Run the
function once outside the transform to have its input checked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import torch
from torch import Tensor

#: What a tensor argument of lossnotes accepts: a tensor, a NumPy array, a (nested)
#: list of
#: numbers or a number.
TensorLike = Tensor | np.ndarray | Sequence | float

try:  # the test torch.func uses to tell its wrapped tensors apart
    from torch._C._functorch import is_functorch_wrapped_tensor as _is_wrapped
except ImportError:  # pragma: no cover - every supported torch has it

    def _is_wrapped(t: Tensor) -> bool:
        return False


def is_transformed(*tensors) -> bool:
    """Whether any of ``tensors`` is wrapped by a ``torch.func`` transform (grad,
    vmap, jvp).

    Example:
        >>> is_transformed(torch.ones(2))
        False
        >>> seen = []
        >>> def f(t):
        ...     seen.append(is_transformed(t))
        ...     return t
        >>> _ = torch.func.vmap(f)(torch.ones(2))
        >>> seen
        [True]
    """
    return any(isinstance(t, Tensor) and _is_wrapped(t) for t in tensors)


def check_dense(t: Tensor, name: str) -> Tensor:
    """Raise ``TypeError`` if ``t`` is not a dense (strided) tensor, e.g. a sparse
    one.
    """
    if t.layout != torch.strided:
        raise TypeError(
            f"{name} is a {t.layout} tensor; lossnotes needs a dense tensor "
            f"(call {name}.to_dense() first)"
        )
    return t


def check_index_tensor(t, name: str) -> Tensor:
    """``t`` as a dense tensor of integer class indices, or raise ``TypeError``.

    Only the type is checked here; shapes and ranges belong to the caller, who
    knows the input the indices refer to.
    """
    if not isinstance(t, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of class indices; "
            f"got {type(t).__name__}"
        )
    check_dense(t, name)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(
            f"{name} holds class indices, which need an integer dtype "
            f"(torch.long); got {t.dtype}"
        )
    return t


def as_float_tensor(x, name: str, allow_empty: bool = False) -> Tensor:
    """Return ``x`` as a dense floating-point tensor, or raise.

    Tensors and NumPy arrays keep their dtype; a Python list or scalar becomes a
    tensor of PyTorch's default dtype (float32), as ``torch.tensor`` would make it.

    Raises:
        TypeError: ``x`` is not a tensor, array, list or number, is sparse, or its
            dtype is not floating.
        ValueError: ``x`` is empty (unless ``allow_empty``).
    """
    if isinstance(x, Tensor):
        t = check_dense(x, name)
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(x)
    elif isinstance(x, (list, tuple, Real)) and not isinstance(x, bool):
        try:
            t = torch.tensor(x, dtype=torch.get_default_dtype())
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a list of numbers; got {x!r}") from exc
    else:
        raise TypeError(
            f"{name} must be a torch.Tensor, a NumPy array or a list of numbers; "
            f"got {type(x).__name__}"
        )
    if not t.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype; got {t.dtype}")
    if t.numel() == 0 and not allow_empty:
        raise ValueError(f"{name} is empty; expected at least one value")
    return t


def check_no_nan(t: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds a NaN (unchecked in a transform)."""
    if not is_transformed(t) and torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")


def check_finite(t: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds a NaN or an infinity (not inside a
    transform).
    """
    check_no_nan(t, name)
    if not is_transformed(t) and torch.isinf(t).any():
        raise ValueError(f"{name} contains inf; expected finite values")


def check_int(value, name: str) -> int:
    """``value`` as an int (any :class:`numbers.Integral` but bool), or
    ``TypeError``.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    return int(value)


def check_bool(value, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``, else ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return value


def check_real(
    value, name: str, low: float, high: float = math.inf, high_open: bool = False
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``[low, high)`` if
    ``high_open``).
    """
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
            f"{name} must be a finite number in [{low:g}, {high:g}{closing}; got "
            f"{value:g}"
        )
    return value


def check_nonnegative(w: Tensor, name: str) -> None:
    """Raise ``ValueError`` unless every value of ``w`` is finite and ``>= 0``."""
    if is_transformed(w):
        return
    bad = ~(torch.isfinite(w) & (w >= 0))
    if bad.any():
        raise ValueError(
            f"{name} must be finite and >= 0; got {w[bad][0].item():g}"
        )


def check_probabilities(t: Tensor, name: str) -> None:
    """Raise ``ValueError`` unless every value of ``t`` lies in [0, 1] (NaN
    included).
    """
    if is_transformed(t) or t.numel() == 0:
        return
    low, high = torch.aminmax(
        t
    )  # one read; NaN makes both NaN, which fails the test below
    if low >= 0 and high <= 1:
        return
    check_no_nan(t, name)
    outside = (t < 0) | (t > 1)
    raise ValueError(
        f"{name} must hold probabilities in [0, 1]; got {t[outside][0].item():g}"
    )


def check_same_shape(target: Tensor, x: Tensor, names=("target", "input")) -> None:
    """Raise ``ValueError`` unless ``target`` has the shape of ``x`` (no
    broadcasting).
    """
    if target.shape != x.shape:
        raise ValueError(
            f"{names[0]} has shape {tuple(target.shape)} but {names[1]} has "
            f"{tuple(x.shape)}; they must be the same (no broadcasting)"
        )


def result_dtype(*tensors: Tensor) -> torch.dtype:
    """The floating dtype torch promotes ``tensors`` to (float32 with float64 is
    float64).
    """
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def reduce_loss(
    loss: Tensor, reduction: str, total: Tensor | None = None
) -> Tensor:
    """``loss`` as it is (``"none"``), summed (``"sum"``), or averaged (``"mean"``).

    The mean divides the sum by ``total`` when given (the sum of the weights, for
    the
    class-index losses), else by the number of elements (NaN for none, as in torch).
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if total is None else loss.sum() / total


def check_dim(t: Tensor, dim: int, name: str) -> int:
    """Return ``dim`` as a non-negative axis of ``t``, or raise ``ValueError``."""
    if isinstance(dim, bool) or not isinstance(dim, Integral):
        raise TypeError(f"dim must be an int; got {type(dim).__name__}")
    if not -t.dim() <= dim < max(t.dim(), 1):
        raise ValueError(
            f"dim={dim} is out of range for {name} with {t.dim()} dimension(s)"
        )
    return int(dim) % max(t.dim(), 1)


def log_base(base) -> float:
    """Natural logarithm of a logarithm ``base``; ``None`` means natural log (nats).

    Raises:
        TypeError: ``base`` is not a real number.
        ValueError: ``base`` is not finite, not positive, or equal to 1.
    """
    if base is None:
        return 1.0
    if isinstance(base, bool) or not isinstance(base, Real):
        raise TypeError(
            "base must be a positive real number other than 1, or None; got "
            f"{base!r}"
        )
    if not math.isfinite(base) or base <= 0 or base == 1:
        raise ValueError(
            f"base must be a positive real number other than 1; got {base}"
        )
    return math.log(base)


REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str, allowed: tuple[str, ...] = REDUCTIONS) -> str:
    """``reduction`` if it is one of ``allowed``, else raise ``ValueError``."""
    if reduction not in allowed:
        expected = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"reduction must be one of {expected}; got {reduction!r}")
    return reduction
