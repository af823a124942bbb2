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
        raise ValueError(
            f"{name} has a negative value {t.min().item():g}; probabilities must lie in [0, 1]"
        )
    if (t > 1).any():
        raise ValueError(
            f"{name} has a value {t.max().item():g} above 1; probabilities must lie in [0, 1]"
        )
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


def check_distribution_pair(p, q, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Return ``p`` and ``q`` broadcast to one shape, after checking both are distributions.

    The shapes must be equal or broadcast against each other (NumPy rules); each tensor is
    checked as a distribution along ``dim`` of the broadcast shape.

    Raises:
        TypeError: ``p`` or ``q`` is not a float tensor, array or list.
        ValueError: as :func:`check_distribution` for ``p`` or ``q``, or shapes that do not
            broadcast.
    """
    tp, tq = check_probabilities(p, "p"), check_probabilities(q, "q")
    try:
        shape = torch.broadcast_shapes(tp.shape, tq.shape)
    except RuntimeError:
        raise ValueError(
            f"p has shape {tuple(tp.shape)} and q has shape {tuple(tq.shape)}; "
            f"expected equal shapes or shapes that broadcast"
        ) from None
    return check_distribution(tp.expand(shape), dim, "p"), check_distribution(
        tq.expand(shape), dim, "q"
    )


def _q_for_log(p: Tensor, q: Tensor) -> Tensor:
    """``q`` with 1 where both ``p`` and ``q`` are 0, for the ``xlogy(p, q)`` of a 0 log 0 term.

    ``xlogy(0, 0)`` is already 0, but its gradient is ``0 / 0 = NaN``; with ``log 1`` there the
    term and its gradient are 0. Where ``p > 0`` and ``q = 0``, ``xlogy(p, 0) = -inf`` is kept:
    the support mismatch that makes cross-entropy and KL divergence infinite.
    """
    return torch.where((p == 0) & (q == 0), torch.ones_like(q), q)


def cross_entropy(p, q, base: float | None = None, dim: int = -1) -> Tensor:
    r"""Cross-entropy of the model distribution(s) ``q`` relative to the true ``p``, along ``dim``.

    .. math::
        H(p, q) = -\sum_k p_k \log_b q_k, \qquad 0 \log q_k := 0

    The expected surprisal under ``q`` of an outcome drawn from ``p``. It equals
    :math:`H(p) + \mathrm{KL}(p \,\|\, q)`, so it is never below :math:`H(p)`, and it equals the
    KL divergence when ``p`` is one-hot. An outcome with :math:`p_k = 0` contributes 0 whatever
    :math:`q_k` is; one with :math:`p_k > 0` but :math:`q_k = 0` makes the result ``+inf``.

    Args:
        p: the true distribution(s), summing to 1 along ``dim`` (within :data:`SUM_ATOL`).
        q: the model distribution(s), likewise. ``p`` and ``q`` must have the same shape or
            shapes that broadcast (NumPy rules): one ``p`` against a batch of ``q`` works.
        base: logarithm base; ``None`` for nats, ``2`` for bits.
        dim: the dimension that indexes outcomes, of the broadcast shape.

    Returns:
        A tensor of the broadcast shape with ``dim`` removed.

    Raises:
        TypeError: ``p`` or ``q`` is not floating point, or ``base`` is not a number.
        ValueError: ``p`` or ``q`` is empty, outside [0, 1], holds NaN or inf, or does not sum
            to 1; the shapes do not broadcast; ``dim`` is out of range; ``base`` is not positive
            or equals 1.

    Example:
        >>> cross_entropy([0.5, 0.5], [0.25, 0.75], base=2)
        tensor(1.2075)
        >>> cross_entropy([0.0, 1.0], [[0.5, 0.5], [0.2, 0.8]])
        tensor([0.6931, 0.2231])
        >>> cross_entropy([0.5, 0.5], [1.0, 0.0])
        tensor(inf)

    References:
        Cover & Thomas (2006), *Elements of Information Theory*, section 5.4; Goodfellow,
        Bengio & Courville (2016), *Deep Learning*, section 3.13.
    """
    scale = log_base(base)
    tp, tq = check_distribution_pair(p, q, dim)
    return (0.0 - torch.special.xlogy(tp, _q_for_log(tp, tq)).sum(dim=dim)) / scale


def kl_divergence(p, q, base: float | None = None, dim: int = -1) -> Tensor:
    r"""Kullback-Leibler divergence of ``q`` from ``p`` along ``dim``.

    .. math::
        \mathrm{KL}(p \,\|\, q) = \sum_k p_k \log_b \frac{p_k}{q_k}
        = H(p, q) - H(p), \qquad 0 \log \frac{0}{q_k} := 0

    The extra surprisal, on average, of describing outcomes drawn from ``p`` with the model
    ``q``. It is :math:`\ge 0`, and 0 only when ``q`` equals ``p`` (Gibbs' inequality); it is not
    symmetric in ``p`` and ``q``. Outcomes with :math:`p_k = 0` contribute 0 (also where
    :math:`q_k = 0`); an outcome with :math:`p_k > 0` but :math:`q_k = 0` makes it ``+inf``.

    Args:
        p: the true distribution(s), summing to 1 along ``dim`` (within :data:`SUM_ATOL`).
        q: the model distribution(s), likewise. ``p`` and ``q`` must have the same shape or
            shapes that broadcast (NumPy rules).
        base: logarithm base; ``None`` for nats, ``2`` for bits.
        dim: the dimension that indexes outcomes, of the broadcast shape.

    Returns:
        A tensor of the broadcast shape with ``dim`` removed.

    Raises:
        TypeError: ``p`` or ``q`` is not floating point, or ``base`` is not a number.
        ValueError: ``p`` or ``q`` is empty, outside [0, 1], holds NaN or inf, or does not sum
            to 1; the shapes do not broadcast; ``dim`` is out of range; ``base`` is not positive
            or equals 1.

    Example:
        >>> kl_divergence([0.1, 0.1, 0.1, 0.7], [0.25, 0.25, 0.25, 0.25], base=2)
        tensor(0.6432)
        >>> kl_divergence([0.5, 0.5], [1.0, 0.0]), kl_divergence([1.0, 0.0], [0.5, 0.5])
        (tensor(inf), tensor(0.6931))

    References:
        Kullback & Leibler (1951), *On Information and Sufficiency*; Cover & Thomas (2006),
        eq. (2.26) and theorem 2.6.3.
    """
    scale = log_base(base)
    tp, tq = check_distribution_pair(p, q, dim)
    # term by term, p log p - p log q: a ratio p / q would overflow for a subnormal q
    terms = torch.special.xlogy(tp, tp) - torch.special.xlogy(
        tp, _q_for_log(tp, tq)
    )
    return terms.sum(dim=dim) / scale
