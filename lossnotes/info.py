r"""Information content, entropy, cross-entropy and KL divergence of discrete distributions.

The functions of chapters 1 to 3. Each accepts a torch tensor, a NumPy array or a list, and
returns a torch tensor. ``base=None`` measures in nats (natural logarithm), ``base=2`` in bits.

A *distribution* is a tensor of probabilities in [0, 1] that sum to 1 along ``dim``, within
:data:`SUM_ATOL`. Anything else is rejected with a ``ValueError`` that says what is wrong.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import as_float_tensor, check_dim, check_no_nan, log_base

#: How far the sum of a distribution may be from 1 and still be accepted.
SUM_ATOL = 1e-5


def check_probabilities(p, name: str = "p") -> Tensor:
    """Return ``p`` as a floating tensor after checking every value is a probability.

    Raises:
        TypeError: ``p`` is not a float tensor, array or list.
        ValueError: ``p`` is empty, holds NaN or inf, or a value outside [0, 1].
    """
    t = as_float_tensor(p, name)
    check_no_nan(t, name)
    if torch.isinf(t).any():
        raise ValueError(f"{name} contains inf; probabilities must lie in [0, 1]")
    if (t < 0).any():
        raise ValueError(f"{name} has a negative value {t.min().item():g}; probabilities must lie in [0, 1]")
    if (t > 1).any():
        raise ValueError(f"{name} has a value {t.max().item():g} above 1; probabilities must lie in [0, 1]")
    return t


def check_distribution(p, dim: int = -1, name: str = "p") -> Tensor:
    """Return ``p`` as a floating tensor after checking it is a distribution along ``dim``.

    Raises:
        TypeError: ``p`` is not a float tensor, array or list.
        ValueError: as :func:`check_probabilities`, or a sum along ``dim`` further than
            :data:`SUM_ATOL` from 1.
    """
    t = check_probabilities(p, name)
    d = check_dim(t, dim, name)
    total = t.sum(dim=d, dtype=torch.float64) if t.dim() else t.double()
    worst = (total - 1).abs().max().item()
    if worst > SUM_ATOL:
        raise ValueError(
            f"{name} does not sum to 1 along dim={dim}: a sum is off by {worst:.3g} "
            f"(tolerance {SUM_ATOL:g})"
        )
    return t


def surprisal(p, base: float | None = None) -> Tensor:
    r"""Information content (surprisal) of events with probability ``p``.

    .. math::
        I(p) = -\log_b p

    An impossible event (:math:`p = 0`) has infinite surprisal; a certain one (:math:`p = 1`)
    has none. Element-wise: ``p`` may have any shape and need not sum to 1.

    Args:
        p: probabilities in [0, 1], any shape.
        base: logarithm base; ``None`` for nats, ``2`` for bits.

    Returns:
        A tensor of the shape of ``p``.

    Raises:
        TypeError: ``p`` is not floating point, or ``base`` is not a number.
        ValueError: ``p`` is empty or outside [0, 1] (NaN and inf included); ``base`` is not
            positive or equals 1.

    Example:
        >>> surprisal(torch.tensor([0.5, 0.25, 1.0]), base=2)
        tensor([1., 2., 0.])

    References:
        Shannon (1948), *A Mathematical Theory of Communication*, section 6.
    """
    scale = log_base(base)
    t = check_probabilities(p)
    # 0 - log p rather than -log p, so that a certain event gives 0 and not -0.
    return (0.0 - torch.log(t)) / scale


def entropy(p, base: float | None = None, dim: int = -1) -> Tensor:
    r"""Shannon entropy of the distribution(s) ``p`` along ``dim``.

    .. math::
        H(p) = -\sum_k p_k \log_b p_k, \qquad 0 \log 0 := 0

    The expected surprisal of an outcome drawn from ``p``. It is 0 for a certain outcome and
    :math:`\log_b K` for the uniform distribution over :math:`K` outcomes, its maximum.

    Args:
        p: probabilities summing to 1 along ``dim`` (within :data:`SUM_ATOL`).
        base: logarithm base; ``None`` for nats, ``2`` for bits.
        dim: the dimension that indexes outcomes; the others are batch dimensions.

    Returns:
        A tensor with ``dim`` removed.

    Raises:
        TypeError: ``p`` is not floating point, or ``base`` is not a number.
        ValueError: ``p`` is empty, outside [0, 1], holds NaN or inf, or does not sum to 1;
            ``dim`` is out of range; ``base`` is not positive or equals 1.

    Example:
        >>> entropy(torch.tensor([0.25, 0.25, 0.25, 0.25]), base=2)
        tensor(2.)
        >>> entropy([[1.0, 0.0], [0.5, 0.5]])
        tensor([0.0000, 0.6931])

    References:
        Shannon (1948), section 6; Cover & Thomas (2006), *Elements of Information Theory*,
        eq. (2.1).
    """
    scale = log_base(base)
    t = check_distribution(p, dim)
    # xlogy(0, 0) is 0: the convention 0 log 0 = 0. Subtracting from 0 keeps a certain outcome at
    # 0 rather than -0.
    return (0.0 - torch.special.xlogy(t, t).sum(dim=dim)) / scale
