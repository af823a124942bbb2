r"""Information content, entropy, cross-entropy, KL divergence, mutual information.

The functions of discrete distributions of chapters 1 to 3, and of chapter 4 on
several variables: joint and conditional entropy and mutual information of a joint
probability table; and of chapter 6, the differential entropy and KL divergence of
Gaussians. Each accepts a torch tensor, a NumPy array or a list, and
returns a torch tensor. ``base=None`` measures in nats (natural logarithm),
``base=2`` in bits.

A *distribution* is a tensor of probabilities in [0, 1] that sum to 1 along ``dim``,
within :func:`sum_tolerance` (:data:`SUM_ATOL` in float32 and float64, more in
float16 and bfloat16). Anything else is rejected with a ``ValueError`` that says
what is wrong.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import as_float_tensor, check_dim, check_no_nan, log_base

#: How far the sum of a distribution may be from 1 and still be accepted: the
#: floor of :func:`sum_tolerance`, and all of it for float32 and float64.
SUM_ATOL = 1e-5


def sum_tolerance(dtype: torch.dtype, k: int) -> float:
    r"""How far from 1 the sum of ``k`` probabilities of floating ``dtype`` may be.

    .. math::
        \tau = \max(\mathrm{SUM\_ATOL},\; 2\varepsilon + k\,s)

    where :math:`\varepsilon` is the machine epsilon of ``dtype`` and :math:`s` its
    smallest positive subnormal number. Rounding a distribution to ``dtype`` (say
    ``torch.softmax(x, 0).half()``) moves each probability in the normal range by at
    most :math:`\varepsilon / 2` of itself, :math:`\varepsilon / 2` in all, and each
    one in the subnormal range by at most :math:`s / 2`; :math:`\tau` allows twice
    that, for a softmax computed in ``dtype`` itself. For float32 and float64 it is
    :data:`SUM_ATOL`; for float16 it is about :math:`2 \times 10^{-3}` (more past
    30,000 classes), for bfloat16 :math:`1.6 \times 10^{-2}`.

    Example:
        >>> sum_tolerance(torch.float64, 10), sum_tolerance(torch.bfloat16, 10)
        (1e-05, 0.015625)

    References:
        Higham (2002), *Accuracy and Stability of Numerical Algorithms*, section
        2.1.
    """
    info = torch.finfo(dtype)
    return max(SUM_ATOL, 2 * info.eps + k * info.smallest_normal * info.eps)


def check_probabilities(p, name: str = "p") -> Tensor:
    """Return ``p`` as a floating tensor after checking each value is a probability.

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
            f"{name} has a negative value {t.min().item():g}; "
            "probabilities must lie in [0, 1]"
        )
    if (t > 1).any():
        raise ValueError(
            f"{name} has a value {t.max().item():g} above 1; "
            "probabilities must lie in [0, 1]"
        )
    return t


def check_distribution(p, dim: int = -1, name: str = "p") -> Tensor:
    """Return ``p`` as a floating tensor after checking it is a distribution along
    ``dim``.

    Raises:
        TypeError: ``p`` is not a float tensor, array or list.
        ValueError: as :func:`check_probabilities`, or a sum along ``dim`` further
            than :func:`sum_tolerance` (:data:`SUM_ATOL` in float32 and float64)
            from 1.
    """
    t = check_probabilities(p, name)
    d = check_dim(t, dim, name)
    total = t.sum(dim=d, dtype=torch.float64) if t.dim() else t.double()
    worst = (total - 1).abs().max().item()
    tolerance = sum_tolerance(t.dtype, t.shape[d] if t.dim() else 1)
    if worst > tolerance:
        raise ValueError(
            f"{name} does not sum to 1 along dim={dim}: "
            f"a sum is off by {worst:.3g} (tolerance {tolerance:.3g})"
        )
    return t


def surprisal(p, base: float | None = None) -> Tensor:
    r"""Information content (surprisal) of events with probability ``p``.

    .. math::
        I(p) = -\log_b p

    An impossible event (:math:`p = 0`) has infinite surprisal; a certain one
    (:math:`p = 1`) has none. Element-wise: ``p`` may have any shape and need not
    sum to 1.

    Args:
        p: probabilities in [0, 1], any shape.
        base: logarithm base; ``None`` for nats, ``2`` for bits.

    Returns:
        A tensor of the shape of ``p``.

    Raises:
        TypeError: ``p`` is not floating point, or ``base`` is not a number.
        ValueError: ``p`` is empty or outside [0, 1] (NaN and inf included);
            ``base`` is not positive or equals 1.

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

    The expected surprisal of an outcome drawn from ``p``. It is 0 for a certain
    outcome and :math:`\log_b K` for the uniform distribution over :math:`K`
    outcomes, its maximum.

    Gradient: :math:`\partial H / \partial p_k = -(\log p_k + 1) / \ln b` where
    :math:`p_k > 0`, and 0 where :math:`p_k = 0`. There the one-sided derivative is
    :math:`+\infty`, and the term :math:`0 \log 0`, the constant 0 by convention, is
    given gradient 0; this keeps every gradient finite, one-hot ``p`` included, and
    the chain rule through a softmax whose output underflowed to 0 gives its exact
    limit, 0.

    Args:
        p: probabilities summing to 1 along ``dim`` (within :func:`sum_tolerance`);
            float16 and bfloat16 are accepted and the result has the dtype of ``p``.
        base: logarithm base; ``None`` for nats, ``2`` for bits.
        dim: the dimension that indexes outcomes; the others are batch dimensions.

    Returns:
        A tensor with ``dim`` removed.

    Raises:
        TypeError: ``p`` is not floating point, or ``base`` is not a number.
        ValueError: ``p`` is empty, outside [0, 1], holds NaN or inf, or does not
            sum to 1; ``dim`` is out of range; ``base`` is not positive or equals 1.

    Example:
        >>> entropy(torch.tensor([0.25, 0.25, 0.25, 0.25]), base=2)
        tensor(2.)
        >>> entropy([[1.0, 0.0], [0.5, 0.5]])
        tensor([0.0000, 0.6931])

    References:
        Shannon (1948), section 6; Cover & Thomas (2006), *Elements of Information
        Theory*, eq. (2.1).
    """
    scale = log_base(base)
    t = check_distribution(p, dim)
    # Subtracting from 0 keeps a certain outcome at 0 rather than -0.
    return (0.0 - _xlogx(t).sum(dim=dim)) / scale


def check_distribution_pair(p, q, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Return ``p`` and ``q`` broadcast to one shape, after checking both are
    distributions.

    The shapes must be equal or broadcast against each other (NumPy rules); each
    tensor is checked as a distribution along ``dim`` of the broadcast shape.

    Raises:
        TypeError: ``p`` or ``q`` is not a float tensor, array or list.
        ValueError: as :func:`check_distribution` for ``p`` or ``q``, or shapes that
            do not broadcast.
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


def _xlogx(t: Tensor) -> Tensor:
    """``t log t`` element-wise, 0 at ``t = 0`` with gradient 0 there.

    ``xlogy(t, t)`` has the right value at 0 but the gradient ``log 0 + 0 / 0 =
    NaN``; taking the logarithm of 1 where ``t = 0`` makes both the term and its
    gradient 0 there.
    """
    return torch.special.xlogy(t, torch.where(t == 0, torch.ones_like(t), t))


def _q_for_log(p: Tensor, q: Tensor) -> Tensor:
    """``q`` with 1 where ``p`` and ``q`` are both 0, for ``xlogy(p, q)`` there.

    ``xlogy(0, 0)`` is already 0, but its gradient is ``0 / 0 = NaN``; with ``log
    1`` there the term and its gradient are 0. Where ``p > 0`` and ``q = 0``,
    ``xlogy(p, 0) = -inf`` is kept: the support mismatch that makes cross-entropy
    and KL divergence infinite.
    """
    return torch.where((p == 0) & (q == 0), torch.ones_like(q), q)


def cross_entropy(p, q, base: float | None = None, dim: int = -1) -> Tensor:
    r"""Cross-entropy of model distribution(s) ``q`` relative to the true ``p``.

    .. math::
        H(p, q) = -\sum_k p_k \log_b q_k, \qquad 0 \log q_k := 0

    The expected surprisal under ``q`` of an outcome drawn from ``p``. It equals
    :math:`H(p) + \mathrm{KL}(p \,\|\, q)`, so it is never below :math:`H(p)`, and
    it equals the KL divergence when ``p`` is one-hot. An outcome with
    :math:`p_k = 0` contributes 0 whatever :math:`q_k` is; one with :math:`p_k > 0`
    but :math:`q_k = 0` makes the result ``+inf``. Along ``dim``.

    Args:
        p: the true distribution(s), summing to 1 along ``dim`` (within
            :func:`sum_tolerance`; float16 and bfloat16 are accepted).
        q: the model distribution(s), likewise. ``p`` and ``q`` must have the same
            shape or shapes that broadcast (NumPy rules): one ``p`` against a batch
            of ``q`` works.
        base: logarithm base; ``None`` for nats, ``2`` for bits.
        dim: the dimension that indexes outcomes, of the broadcast shape.

    Returns:
        A tensor of the broadcast shape with ``dim`` removed.

    Raises:
        TypeError: ``p`` or ``q`` is not floating point, or ``base`` is not a
            number.
        ValueError: ``p`` or ``q`` is empty, outside [0, 1], holds NaN or inf, or
            does not sum to 1; the shapes do not broadcast; ``dim`` is out of range;
            ``base`` is not positive or equals 1.

    Example:
        >>> cross_entropy([0.5, 0.5], [0.25, 0.75], base=2)
        tensor(1.2075)
        >>> cross_entropy([0.0, 1.0], [[0.5, 0.5], [0.2, 0.8]])
        tensor([0.6931, 0.2231])
        >>> cross_entropy([0.5, 0.5], [1.0, 0.0])
        tensor(inf)

    References:
        Cover & Thomas (2006), *Elements of Information Theory*, section 5.4;
        Goodfellow, Bengio & Courville (2016), *Deep Learning*, section 3.13.
    """
    scale = log_base(base)
    tp, tq = check_distribution_pair(p, q, dim)
    return (0.0 - torch.special.xlogy(tp, _q_for_log(tp, tq)).sum(dim=dim)) / scale


def kl_divergence(p, q, base: float | None = None, dim: int = -1) -> Tensor:
    r"""Kullback-Leibler divergence of ``q`` from ``p`` along ``dim``.

    .. math::
        \mathrm{KL}(p \,\|\, q) = \sum_k p_k \log_b \frac{p_k}{q_k}
        = H(p, q) - H(p), \qquad 0 \log \frac{0}{q_k} := 0

    The extra surprisal, on average, of describing outcomes drawn from ``p`` with
    the model ``q``. It is :math:`\ge 0`, and 0 only when ``q`` equals ``p`` (Gibbs'
    inequality); it is not symmetric in ``p`` and ``q``. Outcomes with
    :math:`p_k = 0` contribute 0 (also where :math:`q_k = 0`); an outcome with
    :math:`p_k > 0` but :math:`q_k = 0` makes it ``+inf``.

    Gradient with respect to ``p``: :math:`(\log(p_k / q_k) + 1) / \ln b` where
    :math:`p_k > 0`. Where :math:`p_k = 0` the term :math:`p_k \log p_k` is given
    gradient 0, as in :func:`entropy`, so the gradient is that of the cross-entropy,
    :math:`-\log q_k / \ln b` (0 if :math:`q_k = 0` too), and
    :math:`\nabla \mathrm{KL} = \nabla H(p, q) - \nabla H(p)` holds everywhere.
    With respect to ``q``: :math:`-p_k / (q_k \ln b)`, 0 where :math:`p_k = 0`.

    Args:
        p: the true distribution(s), summing to 1 along ``dim`` (within
            :func:`sum_tolerance`; float16 and bfloat16 are accepted).
        q: the model distribution(s), likewise. ``p`` and ``q`` must have the same
            shape or shapes that broadcast (NumPy rules).
        base: logarithm base; ``None`` for nats, ``2`` for bits.
        dim: the dimension that indexes outcomes, of the broadcast shape.

    Returns:
        A tensor of the broadcast shape with ``dim`` removed.

    Raises:
        TypeError: ``p`` or ``q`` is not floating point, or ``base`` is not a
            number.
        ValueError: ``p`` or ``q`` is empty, outside [0, 1], holds NaN or inf, or
            does not sum to 1; the shapes do not broadcast; ``dim`` is out of range;
            ``base`` is not positive or equals 1.

    Example:
        >>> kl_divergence([0.1, 0.1, 0.1, 0.7], [0.25, 0.25, 0.25, 0.25], base=2)
        tensor(0.6432)
        >>> kl_divergence([0.5, 0.5], [1.0, 0.0])
        tensor(inf)
        >>> kl_divergence([1.0, 0.0], [0.5, 0.5])
        tensor(0.6931)

    References:
        Kullback & Leibler (1951), *On Information and Sufficiency*; Cover & Thomas
        (2006), eq. (2.26) and theorem 2.6.3.
    """
    scale = log_base(base)
    tp, tq = check_distribution_pair(p, q, dim)
    # term by term, p log p - p log q: a ratio p / q would overflow for a
    # subnormal q
    terms = _xlogx(tp) - torch.special.xlogy(tp, _q_for_log(tp, tq))
    return terms.sum(dim=dim) / scale


# --- several variables (chapter 4) ---------------------------------------------


def check_joint_table(p_xy, name: str = "p_xy") -> Tensor:
    """Return ``p_xy`` as a floating tensor after checking it is a joint
    distribution.

    A joint table has one dimension per variable, at least one, and all its entries,
    together, sum to 1 within :func:`sum_tolerance` of its number of entries.

    Raises:
        TypeError: ``p_xy`` is not a float tensor, array or list.
        ValueError: as :func:`check_probabilities`; ``p_xy`` is a scalar, or its
            entries do not sum to 1.
    """
    t = check_probabilities(p_xy, name)
    if t.dim() == 0:
        raise ValueError(
            f"{name} is a scalar; expected a table with one dimension per variable"
        )
    off = abs(t.sum(dtype=torch.float64).item() - 1)
    tolerance = sum_tolerance(t.dtype, t.numel())
    if off > tolerance:
        raise ValueError(
            f"{name} does not sum to 1 over all its entries: "
            f"the sum is off by {off:.3g} (tolerance {tolerance:.3g})"
        )
    return t


def _table_dims(dims, t: Tensor, arg: str) -> tuple[int, ...]:
    """``dims`` (an int or a sequence of ints) as sorted dimensions of ``t``."""
    items = list(dims) if isinstance(dims, (tuple, list)) else [dims]
    if any(isinstance(d, bool) or not isinstance(d, int) for d in items):
        raise TypeError(f"{arg} must be an int or a tuple of ints; got {dims!r}")
    bad = [d for d in items if not -t.dim() <= d < t.dim()]
    if bad:
        raise ValueError(
            f"{arg}={dims!r} is out of range for p_xy with {t.dim()} dimension(s)"
        )
    found = [d % t.dim() for d in items]
    if len(set(found)) < len(found):
        raise ValueError(f"{arg}={dims!r} names the same dimension twice")
    return tuple(sorted(found))


def _marginal(t: Tensor, keep: tuple[int, ...]) -> Tensor:
    """The marginal of the table ``t`` over the dimensions ``keep``.

    It keeps ``t``'s number of dimensions, the others of size 1, to broadcast.

    ``torch.sum`` over no dimensions would sum over all of them, hence the two
    special cases.
    """
    drop = [d for d in range(t.dim()) if d not in keep]
    if not drop:
        return t
    if not keep:
        return torch.ones((1,) * t.dim(), dtype=t.dtype)
    return t.sum(dim=drop, keepdim=True)


def _xlog_marginal(t: Tensor, m: Tensor) -> Tensor:
    """``t log m`` for a marginal ``m >= t``; 0 where ``m = 0`` (so ``t = 0``)."""
    return torch.special.xlogy(t, torch.where(m == 0, torch.ones_like(m), m))


def _non_negative(x: Tensor) -> Tensor:
    """``x``, a rounded sum of a non-negative quantity, clamped at 0, never -0."""
    return 0.0 + x.clamp_min(0.0)


def joint_entropy(p_xy, base: float | None = None) -> Tensor:
    r"""Joint entropy of the variables of a joint probability table.

    .. math::
        H(X_1, \dots, X_n) = -\sum_{x_1, \dots, x_n} p(x_1, \dots, x_n)
        \log_b p(x_1, \dots, x_n), \qquad 0 \log 0 := 0

    ``p_xy[i, j]`` is :math:`P(X = i, Y = j)`; a table with :math:`n` dimensions is
    the joint distribution of :math:`n` variables. The joint entropy is the entropy
    of the table read as one distribution over all its cells; gradients follow
    :func:`entropy` (0 for a cell with :math:`p = 0`).

    Args:
        p_xy: the joint distribution, one dimension per variable, all entries
            summing to 1 (within :func:`sum_tolerance`).
        base: logarithm base; ``None`` for nats, ``2`` for bits.

    Returns:
        A scalar tensor of the dtype of ``p_xy``.

    Raises:
        TypeError: ``p_xy`` is not floating point, or ``base`` is not a number.
        ValueError: ``p_xy`` is a scalar or empty, outside [0, 1], holds NaN or inf,
            or does not sum to 1; ``base`` is not positive or equals 1.

    Example:
        >>> joint_entropy([[0.25, 0.25], [0.25, 0.25]], base=2)
        tensor(2.)

    References:
        Cover & Thomas (2006), *Elements of Information Theory*, definition 2.2.1.
    """
    scale = log_base(base)
    t = check_joint_table(p_xy)
    return (0.0 - _xlogx(t).sum()) / scale


def conditional_entropy(p_xy, *, given, base: float | None = None) -> Tensor:
    r"""Conditional entropy of a joint table's variables given the ``given`` ones.

    .. math::
        H(X \mid Y) = -\sum_{x, y} p(x, y) \log_b \frac{p(x, y)}{p(y)}
        = H(X, Y) - H(Y)

    The surprisal left, on average, in :math:`X` once :math:`Y` is known. For a
    table ``p_xy[x, y]``, ``given=1`` gives :math:`H(X \mid Y)` and ``given=0``
    gives :math:`H(Y \mid X)`. With more dimensions every variable not in ``given``
    is on the left: ``p_xyz`` with ``given=2`` gives :math:`H(X, Y \mid Z)`; sum a
    variable out of the table first to leave it out. ``given=()`` gives the joint
    entropy, and conditioning on every variable gives 0. The terms are each
    :math:`\ge 0`, so no cancellation occurs; their rounded sum is clamped at 0.
    Gradients follow :func:`entropy` (the term of a cell with :math:`p = 0` has
    gradient 0).

    Args:
        p_xy: the joint distribution, one dimension per variable (see
            :func:`joint_entropy`).
        given: the dimension, or tuple of dimensions, of the variables conditioned
            on.
        base: logarithm base; ``None`` for nats, ``2`` for bits.

    Returns:
        A scalar tensor of the dtype of ``p_xy``.

    Raises:
        TypeError: as :func:`joint_entropy`, or ``given`` is not an int or a tuple
            of ints.
        ValueError: as :func:`joint_entropy`, or ``given`` is out of range or names
            a dimension twice.

    Example:
        >>> p_xy = torch.tensor([[0.5, 0.0], [0.25, 0.25]])  # rows x, columns y
        >>> conditional_entropy(p_xy, given=0, base=2)  # H(Y | X): half a bit
        tensor(0.5000)

    References:
        Cover & Thomas (2006), definition 2.2.2 and theorem 2.2.1 (the chain rule).
    """
    scale = log_base(base)
    t = check_joint_table(p_xy)
    g = _table_dims(given, t, "given")
    terms = _xlogx(t) - _xlog_marginal(t, _marginal(t, g))
    return _non_negative(0.0 - terms.sum()) / scale


def mutual_information(
    p_xy, dim=0, *, given=(), base: float | None = None
) -> Tensor:
    r"""Mutual information between two groups of variables of a joint table.

    .. math::
        I(X; Y) = \sum_{x, y} p(x, y) \log_b \frac{p(x, y)}{p(x)\, p(y)}
        = \mathrm{KL}\big(p(x, y) \,\|\, p(x)\, p(y)\big) = H(X) - H(X \mid Y)

    How much knowing :math:`Y` reduces the surprisal of :math:`X`, on average, and
    vice versa: it is symmetric, :math:`\ge 0`, and 0 exactly when :math:`X` and
    :math:`Y` are independent. ``dim`` names the dimension(s) of :math:`X`;
    :math:`Y` is every dimension not in ``dim`` or ``given``. With ``given`` it is
    the conditional mutual information

    .. math::
        I(X; Y \mid Z) = \sum_{x, y, z} p(x, y, z)
        \log_b \frac{p(x, y, z)\, p(z)}{p(x, z)\, p(y, z)}.

    Computed term by term from the table, as a KL divergence, not as a difference of
    entropies, so a small value is not lost to cancellation; the rounded sum is
    clamped at 0. Gradients follow :func:`entropy` (the term of a cell with
    :math:`p = 0` has gradient 0).

    Args:
        p_xy: the joint distribution, at least two dimensions (see
            :func:`joint_entropy`).
        dim: the dimension, or tuple of dimensions, of :math:`X`.
        given: the dimension(s) of :math:`Z` conditioned on; none by default.
        base: logarithm base; ``None`` for nats, ``2`` for bits.

    Returns:
        A scalar tensor of the dtype of ``p_xy``.

    Raises:
        TypeError: as :func:`joint_entropy`, or ``dim`` or ``given`` is not an int
            or a tuple of ints.
        ValueError: as :func:`joint_entropy`; ``p_xy`` has fewer than two
            dimensions; ``dim`` or ``given`` is out of range, names a dimension
            twice, ``dim`` is empty or the two overlap, or they leave no dimension
            for :math:`Y`.

    Example:
        >>> mutual_information([[0.5, 0.0], [0.0, 0.5]], base=2)  # Y is a copy of X
        tensor(1.)
        >>> mutual_information([[0.25, 0.25], [0.25, 0.25]])  # independent
        tensor(0.)

    References:
        Cover & Thomas (2006), section 2.4 and definition 2.5.2; MacKay (2003),
        *Information Theory, Inference, and Learning Algorithms*, chapter 8.
    """
    scale = log_base(base)
    t = check_joint_table(p_xy)
    if t.dim() < 2:
        raise ValueError(
            f"p_xy has {t.dim()} dimension; mutual information needs at least two, "
            "one for X and one for Y"
        )
    x = _table_dims(dim, t, "dim")
    z = _table_dims(given, t, "given")
    if not x:
        raise ValueError("dim=() names no dimension for X")
    if set(x) & set(z):
        raise ValueError(f"dim={dim!r} and given={given!r} share a dimension")
    y = tuple(d for d in range(t.dim()) if d not in x + z)
    if not y:
        raise ValueError(
            f"dim={dim!r} and given={given!r} leave no dimension of p_xy for Y"
        )
    terms = (
        _xlogx(t)
        + _xlog_marginal(t, _marginal(t, z))
        - _xlog_marginal(t, _marginal(t, x + z))
        - _xlog_marginal(t, _marginal(t, y + z))
    )
    return _non_negative(terms.sum()) / scale


# === continuous distributions: the Gaussian (chapter 6) ====================

#: :math:`\tfrac12 \log(2\pi e) = \tfrac12 (1 + \log 2\pi)`, the differential
#: entropy of a standard normal in nats.
HALF_LOG_2PI_E = 0.5 * (1.0 + 1.8378770664093453)  # log(2 pi) = 1.83787706640934...


def _gaussian_scale(sigma, name: str) -> Tensor:
    """``sigma`` as a float tensor of finite, positive standard deviations."""
    s = as_float_tensor(sigma, name)
    bad = ~(torch.isfinite(s) & (s > 0))
    if bad.any():
        raise ValueError(
            f"{name} must hold finite standard deviations > 0; "
            f"got {s[bad][0].item():g}"
        )
    return s


def _gaussian_mean(mu, name: str) -> Tensor:
    """``mu`` as a float tensor of finite means, or raise."""
    m = as_float_tensor(mu, name)
    if not torch.isfinite(m).all():
        raise ValueError(f"{name} must hold finite means; got NaN or inf")
    return m


def _cholesky(cov, name: str) -> Tensor:
    """The Cholesky factor of ``cov``, symmetric positive definite matrices."""
    c = as_float_tensor(cov, name)
    if c.dim() < 2 or c.shape[-1] != c.shape[-2]:
        raise ValueError(
            f"{name} must be a (batch of) square matrices, shape (..., d, d); "
            f"got {tuple(c.shape)}"
        )
    if not torch.isfinite(c).all():
        raise ValueError(f"{name} must be finite; got NaN or inf")
    asym = (c - c.mT).abs().amax()
    if asym > 1e-6 * c.abs().amax():
        raise ValueError(
            f"{name} is not symmetric: an entry differs from its transpose by "
            f"{asym.item():.3g}"
        )
    chol, info = torch.linalg.cholesky_ex(0.5 * (c + c.mT))
    if (info != 0).any():
        raise ValueError(
            f"{name} is not positive definite (its Cholesky factorisation failed); "
            "a Gaussian needs a covariance with only positive eigenvalues"
        )
    return chol


def differential_entropy(
    sigma=None, *, covariance=None, base: float | None = None
) -> Tensor:
    r"""Differential entropy of a Gaussian, from its standard deviation or
    covariance.

    .. math::
        h(\mathcal N(\mu, \sigma^2)) = \tfrac12 \log(2\pi e\,\sigma^2), \qquad
        h(\mathcal N(\mu, \Sigma)) = \tfrac12 \log \det(2\pi e\,\Sigma)

    Only Gaussians are accepted: give exactly one of ``sigma`` (univariate, any
    shape, one entropy per element) or ``covariance`` (a ``(..., d, d)`` batch of
    symmetric positive definite matrices, one entropy per matrix). The mean does not
    matter. Unlike a discrete entropy it can be negative: :math:`h < 0` for
    :math:`\sigma < 1/\sqrt{2\pi e} \approx 0.242`, and it changes by :math:`\log a`
    when the variable is scaled by :math:`a`.

    Args:
        sigma: standard deviations :math:`\sigma > 0`, finite, any shape.
        covariance: covariance matrices, shape ``(..., d, d)``; its log-determinant
            is taken from a Cholesky factor.
        base: logarithm base; ``None`` for nats, ``2`` for bits.

    Returns:
        ``sigma``'s shape, or ``covariance``'s shape without the last two
        dimensions.

    Raises:
        TypeError: the argument is not floating point, or ``base`` is not a number.
        ValueError: neither or both of ``sigma`` and ``covariance``; a ``sigma``
            that is not finite and positive; a ``covariance`` that is not square,
            finite, symmetric and positive definite; a bad ``base``.

    Example:
        >>> differential_entropy(torch.tensor([1.0, 0.1]))
        tensor([ 1.4189, -0.8836])
        >>> differential_entropy(covariance=torch.eye(2), base=2)
        tensor(4.0942)

    References:
        Cover & Thomas (2006), theorem 8.4.1 and example 8.1.2.
    """
    scale = log_base(base)
    if (sigma is None) == (covariance is None):
        raise ValueError(
            "give exactly one of sigma (a univariate Gaussian's standard "
            "deviation) "
            "and covariance (a multivariate Gaussian's covariance matrix)"
        )
    if sigma is not None:
        s = _gaussian_scale(sigma, "sigma")
        return (torch.log(s) + HALF_LOG_2PI_E) / scale
    chol = _cholesky(covariance, "covariance")
    d = chol.shape[-1]
    half_logdet = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return (d * HALF_LOG_2PI_E + half_logdet) / scale


def _expm1_minus_x(t: Tensor) -> Tensor:
    r""":math:`e^t - 1 - t`, accurate where tiny (:math:`|t| < 1/2`: a series)."""
    small = t.abs() < 0.5
    ts = torch.where(small, t, 0.0)  # the series never sees a large t
    # t^2 (1/2!)(1 + (t/3)(1 + (t/4)(1 + ...))) to t^17: error < 1e-19 of the result
    p = torch.ones_like(t)
    for k in range(17, 2, -1):
        p = 1.0 + ts * p / k
    tl = torch.where(small, 0.0, t)  # and expm1 never sees a small one
    return torch.where(small, 0.5 * ts * ts * p, torch.expm1(tl) - tl)


def gaussian_kl(mu1, sigma1, mu2, sigma2, base: float | None = None) -> Tensor:
    r"""KL divergence between two univariate Gaussians, in closed form.

    .. math::
        \mathrm{KL}\big(\mathcal N(\mu_1, \sigma_1^2) \,\|\,
            \mathcal N(\mu_2, \sigma_2^2)\big)
        = \log\frac{\sigma_2}{\sigma_1}
            + \frac{\sigma_1^2 + (\mu_1 - \mu_2)^2}{2\sigma_2^2} - \frac12

    Computed as :math:`\tfrac12 (e^t - 1 - t) + \tfrac12 ((\mu_1 -
    \mu_2)/\sigma_2)^2` with :math:`t = 2 \log(1 + (\sigma_1 - \sigma_2)/\sigma_2)`,
    so that two nearly equal Gaussians get a KL accurate to the last digits instead
    of the rounding noise of a difference of logarithms. The arguments broadcast
    against each other.

    Args:
        mu1, sigma1: mean and standard deviation (:math:`> 0`) of the first
            Gaussian, the one the expectation is taken under.
        mu2, sigma2: those of the second.
        base: logarithm base; ``None`` for nats, ``2`` for bits.

    Returns:
        A tensor of the broadcast shape, in the promoted dtype.

    Raises:
        TypeError: an argument not floating point, or ``base`` not a number.
        ValueError: a mean not finite, a standard deviation not finite and positive,
            shapes that do not broadcast, or a bad ``base``.

    Example:
        >>> gaussian_kl(0.0, 1.0, 2.0, 1.0)  # (mu1 - mu2)^2 / 2
        tensor(2.)
        >>> gaussian_kl(0.0, 1.0, 0.0, 2.0), gaussian_kl(0.0, 2.0, 0.0, 1.0)
        (tensor(0.3181), tensor(0.8069))

    References:
        Kullback & Leibler (1951); Cover & Thomas (2006), section 8.5.
    """
    scale = log_base(base)
    m1, m2 = _gaussian_mean(mu1, "mu1"), _gaussian_mean(mu2, "mu2")
    s1, s2 = _gaussian_scale(sigma1, "sigma1"), _gaussian_scale(sigma2, "sigma2")
    try:
        shape = torch.broadcast_shapes(m1.shape, s1.shape, m2.shape, s2.shape)
    except RuntimeError:
        raise ValueError(
            f"mu1, sigma1, mu2, sigma2 have shapes {tuple(m1.shape)}, "
            f"{tuple(s1.shape)}, {tuple(m2.shape)}, {tuple(s2.shape)}, which do "
            "not broadcast"
        ) from None
    dtype = torch.promote_types(
        torch.promote_types(m1.dtype, s1.dtype),
        torch.promote_types(m2.dtype, s2.dtype),
    )
    m1, s1, m2, s2 = (a.to(torch.float64).expand(shape) for a in (m1, s1, m2, s2))
    t = 2 * torch.log1p((s1 - s2) / s2)  # log(sigma1^2 / sigma2^2), exact near 1
    kl = 0.5 * _expm1_minus_x(t) + 0.5 * ((m1 - m2) / s2) ** 2
    return (kl / scale).to(dtype)


def multivariate_gaussian_kl(
    mu1, cov1, mu2, cov2, base: float | None = None
) -> Tensor:
    r"""KL divergence between two multivariate Gaussians, in closed form.

    .. math::
        \mathrm{KL}(\mathcal N_1 \,\|\, \mathcal N_2) = \tfrac12 \Big(
            \operatorname{tr}(\Sigma_2^{-1}\Sigma_1)
            + (\mu_2 - \mu_1)^\top \Sigma_2^{-1} (\mu_2 - \mu_1)
            - d + \log\frac{\det\Sigma_2}{\det\Sigma_1} \Big)

    Through Cholesky factors :math:`\Sigma = L L^\top`: the trace is
    :math:`\|L_2^{-1} L_1\|_F^2`, the quadratic form :math:`\|L_2^{-1}(\mu_2 -
    \mu_1)\|^2` and each log-determinant :math:`2 \sum_i \log L_{ii}`; no inverse is
    formed. Batch dimensions broadcast.

    Args:
        mu1: mean of the first Gaussian, shape ``(..., d)``.
        cov1: its covariance, shape ``(..., d, d)``, symmetric positive definite.
        mu2, cov2: those of the second.
        base: logarithm base; ``None`` for nats, ``2`` for bits.

    Returns:
        A tensor of the broadcast batch shape.

    Raises:
        TypeError: an argument not floating point, or ``base`` not a number.
        ValueError: a mean not finite; a covariance not square, finite, symmetric
            and positive definite; dimensions ``d`` that differ; batch shapes that
            do not broadcast; or a bad ``base``.

    Example:
        >>> mu, cov = torch.zeros(2), torch.eye(2)
        >>> multivariate_gaussian_kl(mu, cov, torch.tensor([1.0, 1.0]), cov)
        tensor(1.)

    References:
        Kullback & Leibler (1951); Cover & Thomas (2006), chapter 8.
    """
    scale = log_base(base)
    m1, m2 = _gaussian_mean(mu1, "mu1"), _gaussian_mean(mu2, "mu2")
    l1, l2 = _cholesky(cov1, "cov1"), _cholesky(cov2, "cov2")
    d = l1.shape[-1]
    for name, t, expected in (("mu1", m1, d), ("mu2", m2, d), ("cov2", l2, d)):
        if t.dim() == 0 or t.shape[-1] != expected:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}, but cov1 is {d} x {d}; the "
                f"means need shape (..., {d}) and the covariances (..., {d}, {d})"
            )
    try:
        batch = torch.broadcast_shapes(
            m1.shape[:-1], m2.shape[:-1], l1.shape[:-2], l2.shape[:-2]
        )
    except RuntimeError:
        raise ValueError(
            "the batch shapes of mu1, cov1, mu2 and cov2 do not broadcast"
        ) from None
    dtype = torch.promote_types(
        torch.promote_types(m1.dtype, l1.dtype),
        torch.promote_types(m2.dtype, l2.dtype),
    )
    l1 = l1.to(torch.float64).expand(*batch, d, d)
    l2 = l2.to(torch.float64).expand(*batch, d, d)
    diff = (m2.to(torch.float64) - m1.to(torch.float64)).expand(*batch, d)
    a = torch.linalg.solve_triangular(l2, l1, upper=False)
    b = torch.linalg.solve_triangular(l2, diff.unsqueeze(-1), upper=False)
    log_diag = torch.log(torch.diagonal(l2, dim1=-2, dim2=-1)) - torch.log(
        torch.diagonal(l1, dim1=-2, dim2=-1)
    )
    kl = 0.5 * (
        a.square().sum((-2, -1)) + b.square().sum((-2, -1)) - d
    ) + log_diag.sum(-1)
    return (kl / scale).to(dtype)
