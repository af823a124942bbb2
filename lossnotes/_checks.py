"""Input validation shared by the lossnotes modules.

Every public function validates at its boundary, with a message that says what was wrong and
what was expected. These helpers keep those messages the same everywhere.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from torch import Tensor


def as_float_tensor(x, name: str) -> Tensor:
    """Return ``x`` as a floating-point tensor, or raise.

    Tensors and NumPy arrays keep their dtype; a Python list or scalar becomes a tensor of
    PyTorch's default dtype (float32), as ``torch.tensor`` would make it.

    Raises:
        TypeError: ``x`` is not a tensor, array, list or number, or its dtype is not floating.
        ValueError: ``x`` is empty.
    """
    if isinstance(x, Tensor):
        t = x
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
    if t.numel() == 0:
        raise ValueError(f"{name} is empty; expected at least one value")
    return t


def check_no_nan(t: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds a NaN."""
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")


def check_finite(t: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` holds a NaN or an infinity."""
    check_no_nan(t, name)
    if torch.isinf(t).any():
        raise ValueError(f"{name} contains inf; expected finite values")


def check_dim(t: Tensor, dim: int, name: str) -> int:
    """Return ``dim`` as a non-negative axis of ``t``, or raise ``ValueError``."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int; got {type(dim).__name__}")
    if not -t.dim() <= dim < max(t.dim(), 1):
        raise ValueError(
            f"dim={dim} is out of range for {name} with {t.dim()} dimension(s)"
        )
    return dim % max(t.dim(), 1)


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
            f"base must be a positive real number other than 1, or None; got {base!r}"
        )
    if not math.isfinite(base) or base <= 0 or base == 1:
        raise ValueError(
            f"base must be a positive real number other than 1; got {base}"
        )
    return math.log(base)


REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str, allowed: tuple[str, ...] = REDUCTIONS) -> str:
    """Return ``reduction`` if it is one of ``allowed``, else raise ``ValueError``."""
    if reduction not in allowed:
        expected = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"reduction must be one of {expected}; got {reduction!r}")
    return reduction
