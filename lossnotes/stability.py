r"""Numerically stable log-sum-exp, softmax, log-softmax, softplus and log-sigmoid.

The functions of chapter 7. Each stable function sits beside the naive form that the
chapter shows failing (``logsumexp_naive`` beside ``logsumexp``), so the contrast is
one screen, and :func:`ulp_error` measures how far either is from the exact value.

How the stable forms work (Blanchard, Higham & Higham, 2021):

- **Shift by the maximum** :math:`m = x_k = \max_j x_j`: every exponent :math:`x_j -
  m` is :math:`\le 0`, so no exponential overflows, and the largest term is exactly
  :math:`e^0 = 1`.
- **Take** ``log1p`` **of the rest**: :math:`\log \sum_j e^{x_j - m} =
  \operatorname{log1p}(s)` with :math:`s = \sum_{j \ne k} e^{x_j - m}`, so a result
  close to 0 (a dominant class) keeps its digits instead of becoming
  :math:`\log(1) = 0`.
- **Round once**: float32 (and narrower) inputs are computed in float64 and rounded
  to the input's dtype at the end, which makes the results correctly rounded or
  within a hair of it. The temporaries take twice the memory of a float32 input.

Rows with no finite maximum (all ``-inf``, or holding ``+inf``) have no shift to
use; what each function returns for them is documented in its docstring.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

from lossnotes._checks import (
    TensorLike,
    as_float_tensor,
    check_dim,
    check_no_nan,
    is_transformed,
)

#: The dtype the stable functions compute in; results are rounded back to the
#: input's dtype.
WORK_DTYPE = torch.float64


# === validation and the shared shift ==============================================


def _check_logits(x, name: str = "x") -> Tensor:
    """``x`` as a dense float tensor, or raise. NaN is looked for on the row
    results.
    """
    return as_float_tensor(x, name)


def _raise_if_nan(t: Tensor, name: str = "x") -> None:
    """NaN in a row result means NaN in that row of the input: one check on N
    values.
    """
    check_no_nan(t, name)


def _shifted(x: Tensor, dim: int) -> tuple[Tensor, Tensor, bool, Tensor, Tensor]:
    r"""The pieces of a max-shifted reduction along ``dim``, in WORK_DTYPE, without
    gradients.

    Returns ``(top, finite, all_finite, z, rest)``: the row maximum ``top`` (kept
    dim), whether it is finite (per row, and for all rows), the shifted logits ``z =
    x - top`` (0 exactly at the maximum, and exact wherever float64 holds the
    difference of the two numbers, which for float32 input is all but extreme
    spreads) and ``rest``, the sum of :math:`e^{z_j}` over every :math:`j` but one
    maximum ``k``.

    A row whose maximum is not finite is replaced by zeros before anything is
    computed, so that no ``inf - inf`` is formed: the caller chooses that row's
    value, and its gradient is 0. The input is read once for NaN: a row holding NaN
    has a NaN maximum, which raises.
    """
    z = x.detach().to(WORK_DTYPE, copy=True)
    top, k = z.max(dim=dim, keepdim=True)
    _raise_if_nan(top)
    finite = torch.isfinite(top)
    all_finite = bool(finite.all())
    if not all_finite:
        z = torch.where(finite, z, 0.0)
    z -= torch.where(finite, top, 0.0) if not all_finite else top
    # the maximum's own term is exactly e^0 = 1 and stays out of the sum, so that
    # log1p sees the small remainder undisturbed (tied maxima other than k still add
    # exactly 1 each)
    rest = torch.exp(z).scatter_(dim, k, 0.0).sum(dim=dim, keepdim=True)
    return top, finite, all_finite, z, rest


def _nan_rows_without_max(t: Tensor, finite: Tensor, all_finite: bool) -> Tensor:
    """``t`` with NaN in the rows that have no finite maximum, as torch's softmax
    gives there.
    """
    return t if all_finite else torch.where(finite, t, math.nan)


def _zero_rows_without_max(grad: Tensor, out: Tensor) -> Tensor:
    """``grad`` with 0 in the rows where ``out`` is NaN (no finite maximum): no
    gradient there.
    """
    return grad.masked_fill(torch.isnan(out), 0.0)


# New-style autograd Functions (forward without ctx, then setup_context). Each
# backward is written with differentiable tensor operations on saved tensors (the
# input, or the output, whose own gradient is this Function again), so a second
# derivative works (``torch.autograd.gradgradcheck``). Inside a ``torch.func``
# transform the functions take the composite path below instead, which every
# transform differentiates and batches.


class _LogSumExp(torch.autograd.Function):
    """Forward in WORK_DTYPE (accurate), keeping ``dim``; backward: the softmax."""

    @staticmethod
    def forward(x: Tensor, dim: int) -> Tensor:
        top, finite, _, _, rest = _shifted(x, dim)
        return torch.where(finite, top + torch.log1p(rest), top).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, ctx.dim = inputs
        ctx.save_for_backward(x, output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, out = ctx.saved_tensors
        # d LSE / dx = softmax(x) = exp(x - LSE); 0 for a row with no finite maximum
        p = torch.exp(x - out).masked_fill(~torch.isfinite(out), 0.0)
        return grad * p, None


class _LogSoftmax(torch.autograd.Function):
    """Forward in WORK_DTYPE (accurate); backward ``g - softmax * sum(g)``."""

    @staticmethod
    def forward(x: Tensor, dim: int) -> Tensor:
        _, finite, all_finite, z, rest = _shifted(x, dim)
        z -= torch.log1p(rest)
        return _nan_rows_without_max(z, finite, all_finite).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, ctx.dim = inputs
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        g = grad - torch.exp(out) * grad.sum(dim=ctx.dim, keepdim=True)
        return _zero_rows_without_max(g, out), None


class _Softmax(torch.autograd.Function):
    """Forward in WORK_DTYPE (accurate); backward ``p * (g - sum(g * p))``."""

    @staticmethod
    def forward(x: Tensor, dim: int) -> Tensor:
        _, finite, all_finite, z, rest = _shifted(x, dim)
        p = torch.exp(z).div_(1 + rest)
        return _nan_rows_without_max(p, finite, all_finite).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, ctx.dim = inputs
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        g = out * (grad - (grad * out).sum(dim=ctx.dim, keepdim=True))
        return _zero_rows_without_max(g, out), None


def _composite_lse(x: Tensor, dim: int) -> Tensor:
    """Log-sum-exp along ``dim`` (kept) from plain differentiable operations, in
    WORK_DTYPE.

    The path taken inside ``torch.func`` transforms: the same shift by the
    (detached) maximum,
    so nothing overflows, without the ``log1p`` refinement and the per-row branches.
    """
    xw = x.to(WORK_DTYPE)
    top = xw.detach().amax(dim=dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, 0.0)
    return top + torch.log(torch.exp(xw - top).sum(dim=dim, keepdim=True))


def _at_least_1d(x: Tensor, dim) -> tuple[Tensor, int]:
    """``x`` reshaped to 1-D if it is 0-D (torch's reductions accept 0-D), and
    ``dim`` checked.
    """
    x1 = x.reshape(1) if x.dim() == 0 else x
    return x1, check_dim(x1, dim, "x")


def _check_dtype_option(dtype) -> None:
    if dtype is not None and (
        not isinstance(dtype, torch.dtype) or not dtype.is_floating_point
    ):
        raise TypeError(
            f"dtype must be None or a floating torch.dtype; got {dtype!r}"
        )


# === log-sum-exp ==================================================================


def logsumexp(
    x: TensorLike, dim: int | tuple[int, ...] = -1, keepdim: bool = False
) -> Tensor:
    r"""Log of the sum of exponentials along ``dim``, without overflow or underflow.

    .. math::
        \operatorname{LSE}(x) = \log \sum_j e^{x_j}
        = m + \operatorname{log1p}\Big(\sum_{j \ne k} e^{x_j - m}\Big),
        \quad m = x_k = \max_j x_j

    Every exponent is :math:`\le 0`, so nothing overflows, and the term :math:`e^0 =
    1` of the maximum is kept out of the sum so that ``log1p`` sees the small
    remainder exactly. The result satisfies :math:`\max_j x_j \le
    \operatorname{LSE}(x) \le \max_j x_j + \log n`.

    Infinities: ``-inf`` entries contribute nothing (a masked logit); a row of all
    ``-inf``
    gives ``-inf`` (the log of an empty sum) and any ``+inf`` gives ``+inf``, as in
    ``torch.logsumexp``. The gradient is the softmax: 0 at ``-inf`` entries, split
    equally between tied maxima, and 0 for a row with no finite maximum (where
    torch's is NaN), so a fully masked row does not poison a batch's gradients.

    Accuracy: float32 input is computed in float64 and rounded once, so the result
    is within 0.5 ulp (units in the last place) plus a few parts in :math:`10^{9}`
    of an ulp, unless the result nearly cancels to 0 (:math:`|\operatorname{LSE}(x)|
    < 10^{-8} \max_j
    |x_j|`).

    Inside ``torch.func`` transforms (``grad``, ``vmap``, ``jvp``) it takes a
    composite path (shift, ``log`` of the sum) without the ``log1p`` refinement and
    without the NaN check.

    Args:
        x: floating-point logits (tensor, NumPy array or list), any shape; ``±inf``
            allowed.
        dim: the dimension, or a tuple of dimensions, to reduce.
        keepdim: keep the reduced dimensions with size 1, as ``torch.logsumexp``
            does.

    Returns:
        A tensor of ``x``'s dtype with ``dim`` removed (or of size 1 with
        ``keepdim``).

    Raises:
        TypeError: ``x`` is not floating point (an integer tensor, say) or sparse,
            or ``dim`` is not an int or a tuple of ints.
        ValueError: ``x`` is empty or holds NaN; ``dim`` is out of range or
            repeated.

    Example:
        >>> logsumexp(torch.tensor([1000.0, 1000.0], dtype=torch.float64))
        tensor(1000.6931, dtype=torch.float64)
        >>> # log(1 + e^-20 + e^-30)
        >>> logsumexp(torch.tensor([0.0, -20.0, -30.0])).item()
        2.0612471729464232e-09
        >>> # log 12 each
        >>> logsumexp(torch.zeros(2, 3, 4), dim=(1, 2), keepdim=True).shape
        torch.Size([2, 1, 1])

    References:
        Blanchard, Higham & Higham (2021), *Accurately computing the log-sum-exp and
        softmax
        functions*, IMA J. Numer. Anal. 41(4): the shift, then ``log1p`` of the
        rest.
    """
    x = _check_logits(x)
    if not isinstance(keepdim, bool):
        raise TypeError(f"keepdim must be True or False; got {keepdim!r}")
    x1 = x.reshape(1) if x.dim() == 0 else x
    if isinstance(dim, (tuple, list)):
        dims = sorted({check_dim(x1, d, "x") for d in dim})
        if len(dims) != len(dim):
            raise ValueError(f"dim {tuple(dim)} names a dimension more than once")
        if not dims:
            raise ValueError("dim must name at least one dimension; got ()")
        kept = [d for d in range(x1.dim()) if d not in dims]
        flat = x1.permute(*kept, *dims).reshape(*(x1.shape[d] for d in kept), -1)
        out = _logsumexp_1(flat, flat.dim() - 1)  # keepdim along the flattened axis
        shape = [1 if d in dims else x1.shape[d] for d in range(x1.dim())]
        out = out.reshape(shape)
    else:
        d = check_dim(x1, dim, "x")
        dims = [d]
        out = _logsumexp_1(x1, d)
    if keepdim:
        return out if x.dim() > 0 else out.reshape(())
    for d in reversed(dims):
        out = out.squeeze(d)
    return out


def _logsumexp_1(x: Tensor, dim: int) -> Tensor:
    """Log-sum-exp along one checked ``dim``, kept with size 1."""
    if is_transformed(x):
        return _composite_lse(x, dim).to(x.dtype)
    return _LogSumExp.apply(x, dim)


def logsumexp_naive(x: TensorLike, dim: int = -1) -> Tensor:
    r"""The textbook :math:`\log \sum_j e^{x_j}`, in the input's dtype.

    Overflows to ``inf`` once any :math:`x_j \gtrsim 88.7` in float32 (709.8 in
    float64), gives ``-inf`` once every :math:`x_j \lesssim -103.9` (-745.1), and
    loses the digits of a result close to 0. Shown failing in chapter 7; use
    :func:`logsumexp`. Arguments and result as :func:`logsumexp` (one ``dim`` only).

    Raises:
        TypeError: ``x`` is not floating point, or ``dim`` is not an int.
        ValueError: ``x`` is empty or holds NaN; ``dim`` is out of range.

    Example:
        >>> logsumexp_naive(torch.tensor([1000.0, 1000.0]))
        tensor(inf)
    """
    x = _check_logits(x)
    check_no_nan(x, "x")
    dim = check_dim(x, dim, "x")
    return torch.log(torch.exp(x).sum(dim=dim))


# === softmax and log-softmax ======================================================


def log_softmax(
    x: TensorLike, dim: int = -1, *, dtype: torch.dtype | None = None
) -> Tensor:
    r"""Log of the softmax along ``dim``: :math:`x_i - \operatorname{LSE}(x)`,
    computed stably.

    .. math::
        \log \operatorname{softmax}(x)_i = x_i - \operatorname{LSE}(x)
        = (x_i - m) - \operatorname{log1p}\Big(\sum_{j \ne k} e^{x_j - m}\Big)

    Written in the second form, the two terms never cancel: the top class of a
    confident prediction gets :math:`-\operatorname{log1p}(s) \approx -s`, not the 0
    that :math:`x_k - \operatorname{LSE}(x)` rounds to. Finite for any finite
    logits, where ``log(softmax(x))`` gives ``-inf`` once a probability underflows.
    A ``-inf`` entry (a masked class) gives ``-inf`` with gradient 0; like
    ``torch.log_softmax``, a row with no finite maximum (all ``-inf``, or holding
    ``+inf``) gives NaN (with gradient 0 here).

    Args:
        x: floating-point logits (tensor, NumPy array or list), any shape; ``±inf``
            allowed.
        dim: the dimension to normalise over.
        dtype: if given, ``x`` is cast to it first, as ``torch.log_softmax(dtype=)``
            does.

    Returns:
        A tensor of the shape of ``x`` and dtype ``dtype`` (default: ``x``'s).

    Raises:
        TypeError: ``x`` is not floating point or sparse, ``dim`` is not an int, or
            ``dtype`` is not a floating dtype.
        ValueError: ``x`` is empty or holds NaN; ``dim`` is out of range.

    Example:
        >>> # torch.log_softmax gives [-50., 0.]
        >>> log_softmax(torch.tensor([0.0, 50.0]))
        tensor([-5.0000e+01, -1.9287e-22])

    References:
        Blanchard, Higham & Higham (2021).
    """
    x = _check_logits(x)
    _check_dtype_option(dtype)
    if dtype is not None:
        x = x.to(dtype)
    x1, dim = _at_least_1d(x, dim)
    if is_transformed(x1):
        out = (x1.to(WORK_DTYPE) - _composite_lse(x1, dim)).to(x.dtype)
    else:
        out = _LogSoftmax.apply(x1, dim)
    return out.reshape(x.shape)


def log_softmax_naive(x: TensorLike, dim: int = -1) -> Tensor:
    r"""``log(softmax_naive(x))``: overflows, and underflows to ``-inf`` for
    unlikely classes.

    Arguments and result as :func:`log_softmax`.

    Raises:
        TypeError: ``x`` is not floating point, or ``dim`` is not an int.
        ValueError: ``x`` is empty or holds NaN; ``dim`` is out of range.

    Example:
        >>> log_softmax_naive(torch.tensor([-200.0, 0.0]))
        tensor([-inf, 0.])
    """
    return torch.log(softmax_naive(x, dim))


def softmax(
    x: TensorLike, dim: int = -1, *, dtype: torch.dtype | None = None
) -> Tensor:
    r"""Softmax along ``dim``, shifted by the maximum so that no exponential
    overflows.

    .. math::
        \operatorname{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}},
        \quad m = \max_j x_j

    A ``-inf`` entry (a masked class) gets probability 0 and gradient 0; like
    ``torch.softmax``, a row with no finite maximum (all ``-inf``: no distribution
    to speak of, or holding ``+inf``) gives NaN (with gradient 0 here).

    Args:
        x: floating-point logits (tensor, NumPy array or list), any shape; ``±inf``
            allowed.
        dim: the dimension to normalise over.
        dtype: if given, ``x`` is cast to it first, as ``torch.softmax(dtype=)``
            does.

    Returns:
        A tensor of the shape of ``x`` and dtype ``dtype`` (default: ``x``'s),
        non-negative, summing to 1 along ``dim``.

    Raises:
        TypeError: ``x`` is not floating point or sparse, ``dim`` is not an int, or
            ``dtype`` is not a floating dtype.
        ValueError: ``x`` is empty or holds NaN; ``dim`` is out of range.

    Example:
        >>> softmax(torch.tensor([1000.0, 1000.0]))
        tensor([0.5000, 0.5000])

    References:
        Blanchard, Higham & Higham (2021): dividing is more accurate than
        ``exp(log_softmax(x))``.
    """
    x = _check_logits(x)
    _check_dtype_option(dtype)
    if dtype is not None:
        x = x.to(dtype)
    x1, dim = _at_least_1d(x, dim)
    if is_transformed(x1):
        out = torch.exp(x1.to(WORK_DTYPE) - _composite_lse(x1, dim)).to(x.dtype)
    else:
        out = _Softmax.apply(x1, dim)
    return out.reshape(x.shape)


def softmax_naive(x: TensorLike, dim: int = -1) -> Tensor:
    r""":math:`e^{x_i} / \sum_j e^{x_j}` as written: ``inf / inf = nan`` for large
    logits.

    Arguments and result as :func:`softmax`.

    Raises:
        TypeError: ``x`` is not floating point, or ``dim`` is not an int.
        ValueError: ``x`` is empty or holds NaN; ``dim`` is out of range.

    Example:
        >>> softmax_naive(torch.tensor([1000.0, 1000.0]))
        tensor([nan, nan])
    """
    x = _check_logits(x)
    check_no_nan(x, "x")
    dim = check_dim(x, dim, "x")
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


# === softplus and log-sigmoid =====================================================


def _check_positive_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {value:g}")
    return float(value)


def softplus(
    x: TensorLike, beta: float = 1.0, threshold: float | None = None
) -> Tensor:
    r"""Softplus :math:`\frac{1}{\beta}\log(1 + e^{\beta x})`, stable for every
    :math:`x`.

    .. math::
        \operatorname{softplus}(x) = \max(x, 0)
        + \tfrac{1}{\beta}\operatorname{log1p}(e^{-\beta |x|})

    With :math:`\beta = 1`, the two-term log-sum-exp :math:`\operatorname{LSE}(0,
    x)`. ``softplus(-inf) = 0`` and ``softplus(inf) = inf``; the gradient is
    :math:`\sigma(\beta x)` everywhere, 1/2 at 0 included. Float32 input is computed
    in float64 and rounded once.

    ``beta`` and ``threshold`` are those of ``torch.nn.functional.softplus``: where
    :math:`\beta x > \text{threshold}` the result is :math:`x` itself (gradient 1).
    The default ``threshold=None`` never switches, which is exact for all :math:`x`;
    torch's default 20 changes a float64 result by less than :math:`e^{-20}/\beta`
    and a float32 one not at all.

    Args:
        x: floating-point tensor (or NumPy array or list), any shape; ``±inf``
            allowed.
        beta: :math:`\beta > 0`, finite.
        threshold: ``None``, or the value of :math:`\beta x` above which the result
            is ``x``.

    Returns:
        A tensor of the shape and dtype of ``x``.

    Raises:
        TypeError: ``x`` is not floating point or sparse; ``beta``/``threshold`` not
            numbers.
        ValueError: ``x`` is empty or holds NaN; ``beta`` not finite and positive.

    Example:
        >>> softplus(torch.tensor([-20.0, 0.0, 200.0]))
        tensor([2.0612e-09, 6.9315e-01, 2.0000e+02])
        >>> # log(2) / 2, log(1 + e^2) / 2
        >>> softplus(torch.tensor([0.0, 1.0]), beta=2.0)
        tensor([0.3466, 1.0635])

    References:
        Blanchard, Higham & Higham (2021): the log-sum-exp of the two numbers 0 and
        x.
    """
    x = _check_logits(x)
    b = _check_positive_real(beta, "beta")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, Real)
    ):
        raise TypeError(
            "threshold must be a real number or None; got "
            f"{type(threshold).__name__}"
        )
    xw = x.to(WORK_DTYPE)
    u = xw if b == 1.0 else xw * b
    pos = u > 0
    # each branch sees only the inputs it is chosen for, so the other one never
    # makes inf/NaN
    up, un = torch.where(pos, u, 0.0), torch.where(pos, 0.0, u)
    out = torch.where(
        pos, up + torch.log1p(torch.exp(-up)), torch.log1p(torch.exp(un))
    )
    if b != 1.0:
        out = out / b
    if threshold is not None:
        out = torch.where(u > threshold, xw, out)
    out = out.to(x.dtype)
    _raise_if_nan(out)  # NaN in, NaN out: one check, on the result
    return out


def softplus_naive(x: TensorLike) -> Tensor:
    r""":math:`\log(1 + e^{x})` as written: ``inf`` for :math:`x \gtrsim 88.7` in
    float32, and 0 instead of :math:`e^{x}` for :math:`x \lesssim -16.6`, where
    :math:`1 + e^{x}` rounds to 1.

    Arguments and result as :func:`softplus` (without ``beta`` and ``threshold``).

    Raises:
        TypeError: ``x`` is not floating point.
        ValueError: ``x`` is empty or holds NaN.

    Example:
        >>> softplus_naive(torch.tensor([-20.0, 200.0]))
        tensor([0., inf])
    """
    x = _check_logits(x)
    check_no_nan(x, "x")
    return torch.log(1 + torch.exp(x))


def log_sigmoid(x: TensorLike) -> Tensor:
    r"""Log of the logistic sigmoid, :math:`\log \sigma(x) =
    -\operatorname{softplus}(-x)`.

    .. math::
        \log \sigma(x) = -\log(1 + e^{-x}) = -\operatorname{softplus}(-x)

    Also :math:`\log(1 - \sigma(x)) = \log \sigma(-x) =
    -\operatorname{softplus}(x)`, which is
    how the negative class of binary cross-entropy should be written from logits.
    ``log_sigmoid(-inf) = -inf`` and ``log_sigmoid(inf) = 0``.

    Args:
        x: floating-point tensor (or NumPy array or list), any shape; ``±inf``
            allowed.

    Returns:
        A tensor of the shape and dtype of ``x``, all values :math:`\le 0`.

    Raises:
        TypeError: ``x`` is not floating point or sparse.
        ValueError: ``x`` is empty or holds NaN.

    Example:
        >>> log_sigmoid(torch.tensor([-200.0, 0.0]))
        tensor([-200.0000,   -0.6931])

    References:
        PyTorch ``torch.nn.functional.logsigmoid``; Blanchard, Higham & Higham
        (2021).
    """
    return -softplus(-_check_logits(x))


def log_sigmoid_naive(x: TensorLike) -> Tensor:
    r""":math:`\log(1 / (1 + e^{-x}))` as written: ``-inf`` for :math:`x \lesssim
    -88.7` in
    float32, where :math:`e^{-x}` overflows, and 0 instead of :math:`-e^{-x}` for
    :math:`x \gtrsim 16.6`. Arguments and result as :func:`log_sigmoid`.

    Raises:
        TypeError: ``x`` is not floating point.
        ValueError: ``x`` is empty or holds NaN.

    Example:
        >>> log_sigmoid_naive(torch.tensor([-200.0, 20.0]))
        tensor([-inf, 0.])
    """
    x = _check_logits(x)
    check_no_nan(x, "x")
    return torch.log(1 / (1 + torch.exp(-x)))


# === measuring accuracy ===========================================================

#: The dtypes :func:`ulp_error` measures; float64 is the reference, so it cannot be
#: measured.
MEASURED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def ulp(exact, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""The unit in the last place of ``dtype`` at the (real) value ``exact``.

    .. math::
        \operatorname{ulp}(y) = 2^{\max(e, e_{\min}) - p + 1}, \quad 2^e \le |y| <
        2^{e+1}

    with :math:`p` the precision of ``dtype`` (24 bits for float32) and
    :math:`e_{\min}` its smallest normal exponent (-126): the spacing of ``dtype``'s
    numbers around ``y``. Below the normal range (and at 0) it is the smallest
    subnormal, :math:`2^{-149}` in float32. ``ulp(±inf)`` is ``inf`` and
    ``ulp(nan)`` is ``nan``: there is no spacing there.

    Args:
        exact: float64 values (tensor, array or list), any shape.
        dtype: one of :data:`MEASURED_DTYPES`.

    Returns:
        A float64 tensor of the shape of ``exact``.

    Raises:
        TypeError: ``exact`` is not floating point, or ``dtype`` is not measurable.
        ValueError: ``exact`` is empty.

    Example:
        >>> ulp([1.0, 1.5, 2.0, 0.0]).tolist() == [2**-23, 2**-23, 2**-22, 2**-149]
        True
        >>> ulp([math.inf, math.nan]).tolist()
        [inf, nan]

    References:
        Goldberg (1991), *What every computer scientist should know about
        floating-point arithmetic*, ACM Computing Surveys 23(1).
    """
    if dtype not in MEASURED_DTYPES:
        raise TypeError(f"dtype must be one of {MEASURED_DTYPES}; got {dtype}")
    y = as_float_tensor(exact, "exact").to(torch.float64)
    info = torch.finfo(dtype)
    _, e = torch.frexp(y)  # y = mantissa * 2**e with mantissa in [0.5, 1)
    binade = torch.where(
        y == 0, 0.0, torch.ldexp(torch.ones_like(y), e - 1)
    )  # 2**floor(log2 |y|)
    out = binade.clamp(min=info.tiny) * info.eps
    # no spacing at an infinity or a NaN: ulp(±inf) = inf and ulp(nan) = nan
    return torch.where(torch.isfinite(y), out, y.abs())


def ulp_error(computed: Tensor, exact) -> Tensor:
    r"""Error of ``computed`` in units in the last place of its dtype at the exact
    value.

    .. math::
        \operatorname{err}(\hat y) = \frac{|\hat y - y|}{\operatorname{ulp}(y)}

    where :math:`y` is the exact value, given in float64. Correct rounding means an
    error of at most 0.5. Rounding the true value to float64 moves the measured
    float32 error by at most :math:`2^{-29}` ulp (float64 has 29 more bits), so
    float64 is an exact enough reference for float32, float16 and bfloat16 results.
    A ``computed`` infinity equal to ``exact`` counts as 0; any other non-finite
    ``computed`` (inf, ``-inf``, NaN) counts as ``inf``.

    Args:
        computed: a float32, float16 or bfloat16 tensor.
        exact: the exact values as float64 (e.g. from ``mpmath``), same shape;
            ``±inf`` allowed.

    Returns:
        A float64 tensor of the shape of ``computed``.

    Raises:
        TypeError: ``computed`` is not a tensor of one of :data:`MEASURED_DTYPES` (a
            float64 result needs a reference more precise than float64), or
            ``exact`` is not float64.
        ValueError: the shapes differ, or ``exact`` holds NaN.

    Example:
        >>> one_third = torch.tensor([1 / 3], dtype=torch.float64)
        >>> # correctly rounded: at most 0.5
        >>> ulp_error(one_third.float(), one_third)
        tensor([0.3333], dtype=torch.float64)

    References:
        Goldberg (1991); Blanchard, Higham & Higham (2021).
    """
    if not isinstance(computed, Tensor):
        raise TypeError(
            f"computed must be a torch.Tensor; got {type(computed).__name__}"
        )
    if computed.dtype not in MEASURED_DTYPES:
        raise TypeError(
            "computed must have dtype float32, float16 or bfloat16 (its reference "
            "is float64); "
            f"got {computed.dtype}"
        )
    y = as_float_tensor(exact, "exact")
    if y.dtype != torch.float64:
        raise TypeError(
            f"exact must be float64, more precise than computed; got {y.dtype}"
        )
    if y.shape != computed.shape:
        raise ValueError(
            f"computed has shape {tuple(computed.shape)} but exact has "
            f"{tuple(y.shape)}"
        )
    check_no_nan(y, "exact")
    c = computed.to(torch.float64)
    err = (c - y).abs() / ulp(
        torch.where(torch.isfinite(y), y, 0.0), computed.dtype
    )
    err = torch.where(torch.isfinite(c), err, math.inf)
    return torch.where(c == y, 0.0, err)
