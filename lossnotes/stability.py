r"""Numerically stable log-sum-exp, softmax, log-softmax, softplus and log-sigmoid.

The functions of chapter 5. Each stable function sits beside the naive form that the chapter
shows failing (``logsumexp_naive`` beside ``logsumexp``), so the contrast is one screen.

The stable forms shift by the maximum before exponentiating, so no ``exp`` of a large positive
number is ever formed, and take ``log1p`` of what remains of the sum, which keeps the result
accurate when it is close to 0 (Blanchard, Higham & Higham, 2021).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import check_dim, check_no_nan


def _check_logits(x, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype; got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty; expected at least one value")
    check_no_nan(x, name)
    return x


def _shift(x: Tensor, dim: int) -> Tensor:
    """The maximum along ``dim`` (kept), replaced by 0 where it is not finite.

    A row of all ``-inf`` (or one holding ``+inf``) has no finite maximum to shift by; shifting
    by 0 there lets the plain formula give the limit: ``-inf`` or ``+inf``.
    """
    m = x.detach().amax(dim=dim, keepdim=True)
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def logsumexp(x: Tensor, dim: int = -1) -> Tensor:
    r"""Log of the sum of exponentials along ``dim``, without overflow or underflow.

    .. math::
        \operatorname{LSE}(x) = \log \sum_j e^{x_j}
        = m + \operatorname{log1p}\Big(\sum_{j \ne k} e^{x_j - m}\Big),
        \quad m = x_k = \max_j x_j

    Every exponent is :math:`\le 0`, so nothing overflows, and the term :math:`e^0 = 1` of the
    maximum is kept out of the sum so that ``log1p`` sees the small remainder exactly. A row of
    all ``-inf`` gives ``-inf`` (the log of an empty sum); any ``+inf`` gives ``+inf``.

    Args:
        x: floating-point tensor of logits.
        dim: the dimension to reduce.

    Returns:
        ``x`` with ``dim`` removed.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` is empty or holds NaN; ``dim`` is out of range.

    Example:
        >>> logsumexp(torch.tensor([1000.0, 1000.0], dtype=torch.float64))
        tensor(1000.6931, dtype=torch.float64)

    References:
        Blanchard, Higham & Higham (2021), *Accurately computing the log-sum-exp and softmax
        functions*, IMA J. Numer. Anal. 41(4).
    """
    x = _check_logits(x)
    dim = check_dim(x, dim, "x")
    m = _shift(x, dim)
    e = torch.exp(x - m)
    # leave the maximum's own term (exactly 1) out of the sum, so log1p gets only the rest
    k = x.detach().argmax(dim=dim, keepdim=True)
    rest = e.scatter(dim, k, torch.zeros_like(k, dtype=e.dtype)).sum(dim=dim, keepdim=True)
    top = e.gather(dim, k)  # exactly 1 for a finite maximum; 0 or inf when there is none
    log_sum = torch.where(top == 1, torch.log1p(rest), torch.log(top + rest))
    return (m + log_sum).squeeze(dim)


def logsumexp_naive(x: Tensor, dim: int = -1) -> Tensor:
    r"""The textbook :math:`\log \sum_j e^{x_j}`, which overflows for :math:`x_j \gtrsim 89` in float32.

    Shown failing in chapter 5; use :func:`logsumexp`.

    Example:
        >>> logsumexp_naive(torch.tensor([1000.0, 1000.0]))
        tensor(inf)
    """
    x = _check_logits(x)
    return torch.log(torch.exp(x).sum(dim=dim))


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    r"""Log of the softmax along ``dim``, computed as :math:`x - \operatorname{LSE}(x)`.

    .. math::
        \log \operatorname{softmax}(x)_i = x_i - \log \sum_j e^{x_j}

    Finite for any finite logits, where ``log(softmax(x))`` gives ``-inf`` once a probability
    underflows. Like ``torch.log_softmax``, a row of all ``-inf`` gives NaN.

    Example:
        >>> log_softmax(torch.tensor([0.0, 200.0]))
        tensor([-200.,    0.])

    References:
        Blanchard, Higham & Higham (2021).
    """
    x = _check_logits(x)
    dim = check_dim(x, dim, "x")
    return x - logsumexp(x, dim).unsqueeze(dim)


def log_softmax_naive(x: Tensor, dim: int = -1) -> Tensor:
    r"""``log(softmax_naive(x))``: overflows, and underflows to ``-inf`` for unlikely classes.

    Example:
        >>> log_softmax_naive(torch.tensor([-200.0, 0.0]))
        tensor([-inf, 0.])
    """
    return torch.log(softmax_naive(x, dim))


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    r"""Softmax along ``dim``, shifted by the maximum so that no exponential overflows.

    .. math::
        \operatorname{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}},
        \quad m = \max_j x_j

    Example:
        >>> softmax(torch.tensor([1000.0, 1000.0]))
        tensor([0.5000, 0.5000])

    References:
        Blanchard, Higham & Higham (2021).
    """
    x = _check_logits(x)
    dim = check_dim(x, dim, "x")
    e = torch.exp(x - _shift(x, dim))
    return e / e.sum(dim=dim, keepdim=True)


def softmax_naive(x: Tensor, dim: int = -1) -> Tensor:
    r""":math:`e^{x_i} / \sum_j e^{x_j}` as written: ``inf / inf = nan`` for large logits.

    Example:
        >>> softmax_naive(torch.tensor([1000.0, 1000.0]))
        tensor([nan, nan])
    """
    x = _check_logits(x)
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def softplus(x: Tensor) -> Tensor:
    r"""Softplus :math:`\log(1 + e^{x})`, stable for every :math:`x`.

    .. math::
        \operatorname{softplus}(x) = \max(x, 0) + \operatorname{log1p}(e^{-|x|})

    Example:
        >>> softplus(torch.tensor([-200.0, 0.0, 200.0]))
        tensor([  0.0000,   0.6931, 200.0000])

    References:
        Blanchard, Higham & Higham (2021), section 2 (the case of two terms).
    """
    x = _check_logits(x)
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-x.abs()))


def softplus_naive(x: Tensor) -> Tensor:
    r""":math:`\log(1 + e^{x})` as written: ``inf`` for :math:`x \gtrsim 89` in float32.

    Example:
        >>> softplus_naive(torch.tensor([200.0]))
        tensor([inf])
    """
    x = _check_logits(x)
    return torch.log(1 + torch.exp(x))


def log_sigmoid(x: Tensor) -> Tensor:
    r"""Log of the logistic sigmoid, :math:`\log \sigma(x) = -\operatorname{softplus}(-x)`.

    Also :math:`\log(1 - \sigma(x)) = \log \sigma(-x) = -\operatorname{softplus}(x)`, which is
    how binary cross-entropy should be written from logits.

    Example:
        >>> log_sigmoid(torch.tensor([-200.0, 0.0]))
        tensor([-200.0000,   -0.6931])

    References:
        PyTorch ``torch.nn.functional.logsigmoid``.
    """
    return -softplus(-_check_logits(x))


def log_sigmoid_naive(x: Tensor) -> Tensor:
    r""":math:`\log(1 / (1 + e^{-x}))` as written: ``-inf`` once the sigmoid underflows.

    Example:
        >>> log_sigmoid_naive(torch.tensor([-200.0]))
        tensor([-inf])
    """
    x = _check_logits(x)
    return torch.log(torch.sigmoid(x))
