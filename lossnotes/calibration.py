r"""Calibration of a classifier's probabilities: ECE, reliability, temperature.

A classifier is *calibrated* when, among the samples to which it gives confidence
:math:`c` (the probability of its predicted class), a fraction :math:`c` is
classified correctly. These functions measure that on held-out data (chapter 14):

- :func:`reliability_curve`: confidence and accuracy in equal-width bins, the data
  of a reliability diagram;
- :func:`expected_calibration_error`: the gap of that curve, weighted by the
  number of samples in each bin;
- :func:`fit_temperature`: the temperature :math:`T` that minimises the negative
  log-likelihood of ``softmax(logits / T)`` on a validation split;
- :func:`temperature_nll`: that negative log-likelihood at a given :math:`T`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from lossnotes._checks import as_float_tensor, check_finite, check_index_tensor
from lossnotes.stability import log_softmax, softmax


class ReliabilityCurve(NamedTuple):
    """What :func:`reliability_curve` returns: float64 tensors, one entry a bin."""

    #: Mean confidence of the samples in each bin (NaN for an empty bin).
    confidence: Tensor
    #: Fraction of the samples in each bin classified correctly (NaN if empty).
    accuracy: Tensor
    #: Number of samples in each bin.
    count: Tensor
    #: The ``n_bins + 1`` bin edges :math:`0, 1/M, \dots, 1`.
    edges: Tensor


def _as_labels(labels, n: int, num_classes: int) -> Tensor:
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    check_index_tensor(labels, "labels")
    if labels.shape != (n,):
        raise ValueError(
            f"labels must have shape ({n},), one class index per row; "
            f"got {tuple(labels.shape)}"
        )
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"labels has class {int(labels[i])} at position {i} but there are only "
            f"{num_classes} classes (valid: 0..{num_classes - 1})"
        )
    return labels.long()


def _check_matrix(x: Tensor, name: str) -> None:
    if x.dim() != 2 or x.size(1) < 2:
        raise ValueError(
            f"{name} must have shape (N, C) with C >= 2 classes; "
            f"got {tuple(x.shape)}"
        )


def _as_probs(probs) -> Tensor:
    p = as_float_tensor(probs, "probs")
    _check_matrix(p, "probs")
    if torch.isnan(p).any():
        raise ValueError("probs contains NaN")
    outside = (p < 0) | (p > 1)
    if outside.any():
        raise ValueError(
            "probs must hold probabilities in [0, 1]; "
            f"got {p[outside][0].item():g} (pass softmax(logits), not logits)"
        )
    # a softmax rounded to its dtype sums to 1 within a few ulp per class
    tol = max(1e-6, 8 * p.size(1) * torch.finfo(p.dtype).eps)
    p = p.double()
    off = (p.sum(dim=1) - 1).abs()
    if (off > tol).any():
        i = int(off.argmax())
        raise ValueError(
            f"each row of probs must sum to 1; row {i} sums to "
            f"{p[i].sum().item():.6g}"
        )
    return p


def _check_n_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, Integral):
        raise TypeError(f"n_bins must be an int; got {type(n_bins).__name__}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    return int(n_bins)


def reliability_curve(probs, labels, n_bins: int = 15) -> ReliabilityCurve:
    r"""Confidence and accuracy in ``n_bins`` equal-width confidence bins.

    Each sample :math:`i` has a prediction :math:`\hat y_i = \arg\max_c p_{ic}`
    (the first maximum on a tie, as ``torch.argmax``) and a confidence
    :math:`\hat c_i = \max_c p_{ic}`. Bin :math:`m` of :math:`M` holds the samples
    with

    .. math::
        \hat c_i \in B_m = \Big(\frac{m - 1}{M}, \frac{m}{M}\Big],
        \qquad m = 1, \dots, M

    (closed on the right, as in Naeini et al. 2015 and Guo et al. 2017; a
    confidence of exactly 0 falls in the first bin). The edges are the float64
    numbers nearest :math:`m / M`, and confidences are compared with them in
    float64. Per bin the curve gives the mean confidence
    :math:`\mathrm{conf}(B_m) = \frac{1}{|B_m|}\sum_{i \in B_m} \hat c_i`, the
    accuracy
    :math:`\mathrm{acc}(B_m) = \frac{1}{|B_m|}\sum_{i \in B_m} [\hat y_i = y_i]`
    and the count :math:`|B_m|`. A perfectly calibrated model has
    :math:`\mathrm{acc} = \mathrm{conf}` in every bin.

    Args:
        probs: probabilities of shape ``(N, C)``, :math:`C \ge 2`, in [0, 1], each
            row summing to 1 (within a few ulp of its dtype per class); NumPy
            arrays accepted.
        labels: the true classes, shape ``(N,)``, integer dtype, in ``0..C-1``.
        n_bins: the number of bins :math:`M \ge 1`.

    Returns:
        A :class:`ReliabilityCurve` ``(confidence, accuracy, count, edges)`` of
        float64 tensors; ``confidence`` and ``accuracy`` are NaN in empty bins.

    Raises:
        TypeError: ``probs`` not floating point, ``labels`` not an integer tensor,
            or ``n_bins`` not an int.
        ValueError: ``probs`` not of shape ``(N, C)`` with :math:`C \ge 2`, NaN,
            values outside [0, 1] or rows that do not sum to 1; ``labels`` of the
            wrong shape or out of range; ``n_bins < 1``.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
        >>> curve = reliability_curve(probs, torch.tensor([0, 1, 1]), n_bins=2)
        >>> curve.count.tolist(), curve.accuracy.tolist()  # (0, 1/2], (1/2, 1]
        ([0.0, 3.0], [nan, 0.6666666666666666])

    References:
        Naeini, Cooper & Hauskrecht (2015); Guo, Pleiss, Sun & Weinberger (2017),
        section 2.
    """
    p = _as_probs(probs)
    y = _as_labels(labels, p.size(0), p.size(1))
    m = _check_n_bins(n_bins)
    conf, pred = p.max(dim=1)
    correct = (pred == y).double()
    edges = torch.arange(m + 1, dtype=torch.float64) / m
    # right=False: bin b holds edges[b] < conf <= edges[b + 1]; 0 goes to bin 0
    index = torch.bucketize(conf, edges[1:-1], right=False)
    zeros = torch.zeros(m, dtype=torch.float64)
    count = zeros.index_add(0, index, torch.ones_like(conf))
    conf_sum = zeros.index_add(0, index, conf)
    acc_sum = zeros.index_add(0, index, correct)
    return ReliabilityCurve(conf_sum / count, acc_sum / count, count, edges)


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    r"""Expected calibration error: the gap between confidence and accuracy.

    .. math::
        \mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{N}\,
        \big|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)\big|

    over the :math:`M` equal-width bins of :func:`reliability_curve`, closed on
    the right, :math:`B_m = ((m - 1)/M, m/M]`; empty bins contribute 0. It lies in
    [0, 1] (papers usually print it in percent). It depends on :math:`M` (15 is the
    common choice, after Guo et al. 2017) and on the edge convention: torchmetrics'
    ``multiclass_calibration_error`` closes its bins on the left instead, which
    matters only for a confidence exactly on an edge. A model that always predicts
    the class frequencies has an ECE near 0 however useless it is: read ECE beside
    accuracy and NLL.

    Args:
        probs: probabilities of shape ``(N, C)``, rows summing to 1.
        labels: true classes, shape ``(N,)``, integer dtype, in ``0..C-1``.
        n_bins: the number of bins :math:`M \ge 1`.

    Returns:
        The ECE as a Python float in [0, 1].

    Raises:
        TypeError: as :func:`reliability_curve`.
        ValueError: as :func:`reliability_curve`.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
        >>> labels = torch.tensor([0, 1, 1])
        >>> # one bin (1/2, 1] of 3 samples: confidence 2.2/3, accuracy 2/3
        >>> round(expected_calibration_error(probs, labels, n_bins=2), 6)
        0.066667

    References:
        Naeini, Cooper & Hauskrecht (2015), *Obtaining well calibrated
        probabilities using Bayesian binning*; Guo, Pleiss, Sun & Weinberger
        (2017), equation (3).
    """
    curve = reliability_curve(probs, labels, n_bins)
    full = curve.count > 0
    n = curve.count.sum()
    gaps = (curve.accuracy[full] - curve.confidence[full]).abs()
    return float((curve.count[full] / n * gaps).sum())


def _check_logits(logits, labels) -> tuple[Tensor, Tensor]:
    z = as_float_tensor(logits, "logits")
    _check_matrix(z, "logits")
    check_finite(z, "logits")
    return z.double(), _as_labels(labels, z.size(0), z.size(1))


def _nll_slope(z: Tensor, y: Tensor, beta: float) -> float:
    """d/d(beta) of the mean NLL of softmax(beta z): E_q[z] - z_y, averaged."""
    q = softmax(beta * z, dim=1)
    return float(((q * z).sum(dim=1) - z.gather(1, y[:, None]).squeeze(1)).mean())


def fit_temperature(
    logits, labels, *, t_min: float = 0.01, t_max: float = 100.0
) -> float:
    r"""The temperature that minimises the NLL of ``softmax(logits / T)``.

    Temperature scaling (Guo et al. 2017) fits one number on a validation split,

    .. math::
        T^\star = \arg\min_{T \in [t_{\min}, t_{\max}]}\ \frac{1}{N}
        \sum_{i=1}^{N} \Big(\operatorname{LSE}(z_i / T) - z_{i, y_i} / T\Big),

    and divides the test logits by it. The argmax, hence the accuracy, does not
    change. In :math:`\beta = 1/T` the NLL is convex (a log-sum-exp of
    :math:`\beta z` minus a linear term), and its derivative
    :math:`\frac{1}{N}\sum_i (\mathbb{E}_{q_i}[z_i] - z_{i, y_i})`, with
    :math:`q_i = \operatorname{softmax}(\beta z_i)`, increases with :math:`\beta`.
    The minimiser is found by bisection on the sign of that derivative over
    :math:`\beta \in [1/t_{\max}, 1/t_{\min}]`, in float64, until no float lies
    between the two ends: the global minimum, never a local one. When it lies
    outside the interval (every validation sample classified correctly, say, so
    that the NLL keeps falling as :math:`T \to 0`) the nearer end is returned.
    Guo et al.'s reference code fits the same one-parameter model with L-BFGS.

    Args:
        logits: validation logits of shape ``(N, C)``, :math:`C \ge 2`, finite.
        labels: their true classes, shape ``(N,)``, integer dtype, in ``0..C-1``.
        t_min: the smallest temperature considered, :math:`> 0`.
        t_max: the largest temperature considered, :math:`> t_{\min}`.

    Returns:
        :math:`T^\star` as a Python float.

    Raises:
        TypeError: ``logits`` not floating point, ``labels`` not an integer
            tensor, or a bound not a real number.
        ValueError: ``logits`` not of shape ``(N, C)`` with :math:`C \ge 2`, or not
            finite; ``labels`` of the wrong shape or out of range; bounds not
            finite with :math:`0 < t_{\min} < t_{\max}`.

    Example:
        >>> # two classes, logit gap 2, 3 of 4 samples labelled 0: the NLL is
        >>> # lowest where sigmoid(2 / T) = 3/4, at T = 2 / log 3
        >>> z = torch.tensor([[2.0, 0.0]] * 4)
        >>> T = fit_temperature(z, torch.tensor([0, 0, 0, 1]))
        >>> round(T, 6), round(2 / math.log(3), 6)
        (1.820478, 1.820478)

    References:
        Guo, Pleiss, Sun & Weinberger (2017), *On calibration of modern neural
        networks*, section 4.2; Platt (1999) for the two-class ancestor.
    """
    z, y = _check_logits(logits, labels)
    for value, name in ((t_min, "t_min"), (t_max, "t_max")):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(
                f"{name} must be a real number; got {type(value).__name__}"
            )
    if not (math.isfinite(t_min) and math.isfinite(t_max) and 0 < t_min < t_max):
        raise ValueError(
            f"need finite bounds with 0 < t_min < t_max; got t_min={t_min:g}, "
            f"t_max={t_max:g}"
        )
    lo, hi = 1.0 / t_max, 1.0 / t_min
    if _nll_slope(z, y, lo) >= 0:
        return float(t_max)
    if _nll_slope(z, y, hi) <= 0:
        return float(t_min)
    while True:
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:  # no float64 left between them
            break
        if _nll_slope(z, y, mid) < 0:
            lo = mid
        else:
            hi = mid
    return 1.0 / (0.5 * (lo + hi))


def temperature_nll(logits, labels, temperature: float) -> float:
    r"""Mean negative log-likelihood of ``softmax(logits / temperature)``.

    .. math::
        \mathrm{NLL}(T) = \frac{1}{N}\sum_{i=1}^{N}
        \Big(\operatorname{LSE}(z_i / T) - z_{i, y_i} / T\Big)

    computed in float64: the objective of :func:`fit_temperature`, for plotting or
    checking it.

    Args:
        logits: shape ``(N, C)``, finite.
        labels: shape ``(N,)``, integer dtype, in ``0..C-1``.
        temperature: :math:`T > 0`.

    Returns:
        The mean NLL in nats, a Python float.

    Raises:
        TypeError: as :func:`fit_temperature`, or ``temperature`` not a number.
        ValueError: as :func:`fit_temperature`, or ``temperature`` not finite and
            positive.

    Example:
        >>> temperature_nll(torch.zeros(3, 4), torch.tensor([0, 1, 2]), 1.0)
        1.3862943611198906

    (A uniform prediction over 4 classes: :math:`\log 4`.)

    References:
        Guo, Pleiss, Sun & Weinberger (2017), section 4.2.
    """
    z, y = _check_logits(logits, labels)
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise TypeError(
            f"temperature must be a real number; got {type(temperature).__name__}"
        )
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0; got {temperature:g}")
    log_q = log_softmax(z / temperature, dim=1)
    return float(-log_q.gather(1, y[:, None]).mean())
