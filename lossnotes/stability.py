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
- **float32 at PyTorch's speed**: float32 input (and float16/bfloat16, computed
  through float32) takes one fused ``torch.softmax`` pass for the exponentials, the
  maximum found once, and :math:`s` from the softmax's row sums accumulated in
  float64, relative to the maximum's probability, so that nothing of a small
  :math:`s` cancels. Rows with :math:`s <` :data:`FIXUP_BELOW` (a confident
  prediction) and log-sum-exps that cancel are summed again from float64 logits.
  The softmax is kept for the backward. Measured on chapter 7's sweep and on the
  confident rows of ``benchmarks/functional.py``: ``logsumexp`` within 1 ulp
  (0.62) except where it cancels (see its docstring), ``log_softmax`` within 2
  ulp (1.26 with PyTorch's AVX-512 and AVX2 kernels, 1.57 with its scalar ones: two
  float32 roundings, :math:`x_i - m` then :math:`- \log(1 + s)`, and :math:`s`
  carries the rounding of the float32 exponentials),
  ``softmax`` within :math:`|x_i - m| + 4` ulp (the float32 shift :math:`x_i - m`
  carries up to :math:`2^{-24}|x_i - m|` absolute error into the exponential).
- **float64 for the correctly rounded answer**: float64 input is computed in
  float64. ``softmax(x, dtype=torch.float64).float()``, ``log_softmax(x,
  dtype=torch.float64).float()`` and ``logsumexp(x.double()).float()`` are the
  float32 results correctly rounded (within 0.5 ulp), at two to six times the cost.

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

#: The dtype of the accurate path: float64 input, the float64 fix-up of the float32
#: fast path, and ``torch.func`` transforms.
WORK_DTYPE = torch.float64

#: Rows whose sum of the non-maximum terms, relative to the maximum's,
#: :math:`s = \sum_{j \ne k} e^{x_j - m}`, is below this are summed again from
#: float64 logits: there :math:`\log(1 + s) \approx s` keeps the relative error of
#: the float32 exponentials, in which the rounding of the float32 shift
#: :math:`x_j - m` (up to :math:`|x_j - m| \cdot 2^{-24}` relative) would show.
FIXUP_BELOW = 0.01
#: With fewer classes than this the rounding errors of the few dominant terms do not
#: average out, so rows with :math:`s <` :data:`FIXUP_BELOW_FEW_CLASSES` are summed
#: again from float64 logits too.
FEW_CLASSES = 100
#: The :math:`s` below which rows of fewer than
#: :data:`FEW_CLASSES` classes are summed again from float64 logits.
FIXUP_BELOW_FEW_CLASSES = 1.0


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


#: Elements converted to float64 at a time for the row sums: a block that stays in
#: the cache (a sum with ``dtype=torch.float64`` converts the whole matrix first).
_SUM_BLOCK = 1 << 18


def _row_sums_f64(a: Tensor, w: Tensor | None = None) -> Tensor:
    r"""Row sums :math:`\sum_j a_{ij}` (or :math:`\sum_j w_j a_{ij}`) of an ``(M,
    C)`` matrix, accumulated in float64, kept dim; one reused float64 buffer.
    """
    w64 = None if w is None else w.to(torch.float64).unsqueeze(1)
    if a.dtype == torch.float64:
        return a.sum(dim=1, keepdim=True) if w64 is None else a @ w64
    out = torch.empty(a.size(0), 1, dtype=torch.float64)
    rows = max(1, min(a.size(0), _SUM_BLOCK // max(a.size(1), 1)))
    buffer = torch.empty(rows, a.size(1), dtype=torch.float64)
    for i in range(0, a.size(0), rows):
        block = buffer[: min(rows, a.size(0) - i)].copy_(a[i : i + rows])
        if w64 is None:
            torch.sum(block, dim=1, keepdim=True, out=out[i : i + rows])
        else:
            torch.matmul(block, w64, out=out[i : i + rows])
    return out


def _rest_f64(x: Tensor, rows: Tensor, m: Tensor) -> Tensor:
    r""":math:`\sum_{j \ne k} e^{x_j - m}` of the ``rows`` of a float32 matrix
    ``x``, whose maxima ``m`` (kept dim, one per selected row) are finite, from
    float64 logits: each shift exact, the tied maxima other than one adding exactly
    1 each. The rows go through one reused float64 buffer a cache-sized block at a
    time (fresh full-size temporaries would cost a page fault per 4 KiB).
    """
    out = torch.empty(rows.numel(), 1, dtype=WORK_DTYPE)
    step = max(1, min(rows.numel(), _SUM_BLOCK // max(x.size(1), 1)))
    picked = torch.empty(step, x.size(1), dtype=x.dtype)
    buffer = torch.empty(step, x.size(1), dtype=WORK_DTYPE)
    for i in range(0, rows.numel(), step):
        index = rows[i : i + step]
        k = index.numel()
        z = buffer[:k].copy_(torch.index_select(x, 0, index, out=picked[:k]))
        z -= m[i : i + k]  # exact: 0 at a maximum, < 0 elsewhere
        top = z == 0
        z.masked_fill_(top, -math.inf).exp_()  # the maxima add nothing here...
        torch.sum(z, dim=1, keepdim=True, out=out[i : i + k])
        out[i : i + k] += top.sum(dim=1, keepdim=True) - 1  # ...but ties 1 each
    return out


def _fast_rows(
    x: Tensor, cancelling_lse: bool = False
) -> tuple[Tensor, Tensor, Tensor, bool, Tensor]:
    r"""The float32 fast path along the rows of a float32 ``(M, C)`` matrix, without
    gradients.

    Returns ``(p, m, finite, all_finite, log_rest)``: the softmax ``p`` from one
    fused ``torch.softmax`` pass (0 in rows without a finite maximum), the row
    maxima ``m`` (kept dim), whether they are finite, and :math:`\log(1 + s)` in
    float64, with :math:`s = \sum_{j \ne k} e^{x_j - m}` the sum of the
    non-maximum terms relative to the maximum's (NaN in rows without a finite
    maximum).

    :math:`s = (P - p_k) / p_k` with :math:`p_k = \max_j p_j` and :math:`P = \sum_j
    p_j` accumulated in float64, so that nothing of a small :math:`s` cancels: the
    softmax's own normalisation drops out of the ratio. Rows with :math:`s <`
    :data:`FIXUP_BELOW` (and, with ``cancelling_lse``, rows whose log-sum-exp
    :math:`m + \log(1 + s)` cancels, :math:`|m + \log(1 + s)| < \log(1 + s)`) are
    summed again from float64 logits.
    """
    p = torch.softmax(x, dim=1)
    m = x.amax(dim=1, keepdim=True)
    _raise_if_nan(m)  # a NaN anywhere in a row makes its maximum NaN
    finite = torch.isfinite(m)
    all_finite = bool(finite.all())
    if not all_finite:
        p = p.masked_fill_(~finite, 0.0)
    p_top = p.amax(dim=1, keepdim=True).to(WORK_DTYPE)
    rest = (_row_sums_f64(p) - p_top) / p_top
    few = x.size(1) < FEW_CLASSES
    fix = rest < (FIXUP_BELOW_FEW_CLASSES if few else FIXUP_BELOW)
    if cancelling_lse:
        m64 = m.to(WORK_DTYPE)
        lse = m64 + torch.log1p(rest)
        fix |= (m64 < 0) & (lse.abs() < torch.log1p(rest))
    fix = fix.squeeze(1)
    if bool(fix.any()):
        rows = fix.nonzero().squeeze(1)
        rest[rows] = _rest_f64(x, rows, m[rows])
    log_rest = torch.log1p(rest)
    if not all_finite:
        log_rest = torch.where(finite, log_rest, math.nan)
    return p, m, finite, all_finite, log_rest


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


# Each function runs on the rows of an ``(M, C)`` matrix (the public functions
# move ``dim`` last and flatten the others). New-style autograd Functions (forward
# without ctx, then setup_context): float32 input takes the fast path, whose
# backward uses the softmax ``p`` kept from the forward; float64 input is computed
# in float64.
# When a second derivative is asked for (``create_graph=True``), the backward is
# written with differentiable operations on saved tensors (the input, or the output,
# whose own gradient is this Function again), so ``torch.autograd.gradgradcheck``
# works. Inside a ``torch.func`` transform the functions take the composite path
# below instead, which every transform differentiates and batches.


def _is_fast(x: Tensor) -> bool:
    return x.dtype == torch.float32


class _LogSumExp(torch.autograd.Function):
    """Per row: ``m + log1p(rest)``; backward: the softmax."""

    @staticmethod
    def forward(x: Tensor) -> tuple[Tensor, Tensor | None]:
        if _is_fast(x):
            p, m, finite, all_finite, log_rest = _fast_rows(x, cancelling_lse=True)
            m64 = m.to(WORK_DTYPE)
            out = m64 + log_rest
            if not all_finite:
                out = torch.where(finite, out, m64)
            return out.squeeze(1).to(x.dtype), p
        top, finite, _, _, rest = _shifted(x, 1)
        out = torch.where(finite, top + torch.log1p(rest), top)
        return out.squeeze(1).to(x.dtype), None

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        (x,) = inputs
        out, p = output
        if p is not None:
            ctx.mark_non_differentiable(p)
        ctx.save_for_backward(x, out)
        ctx.p = p  # the softmax of the fast path (no grad_fn: no reference cycle)

    @staticmethod
    def backward(ctx, grad: Tensor, _):
        x, out = ctx.saved_tensors
        g = grad.unsqueeze(1)
        if ctx.p is not None and not torch.is_grad_enabled():
            p, ctx.p = ctx.p, None  # spent: in place, no fresh (M, C) matrix
            return p.mul_(g)
        # d LSE / dx = softmax(x) = exp(x - LSE); 0 for a row with no finite maximum
        p = torch.exp(x - out.unsqueeze(1))
        return g * p.masked_fill(~torch.isfinite(out).unsqueeze(1), 0.0)


class _LogSoftmax(torch.autograd.Function):
    """Per row: ``(x - m) - log1p(rest)``; backward ``g - softmax * sum(g)``."""

    @staticmethod
    def forward(x: Tensor) -> tuple[Tensor, Tensor | None]:
        if _is_fast(x):
            p, m, finite, all_finite, log_rest = _fast_rows(x)
            # two float32 passes: x - m is exact by Sterbenz's lemma near the
            # maximum, and 0 exactly at it, so the top entry is -log1p(rest)
            shift = m if all_finite else torch.where(finite, m, 0.0)
            out = (x - shift).sub_(log_rest.to(x.dtype))
            return out, (p, all_finite)
        _, finite, all_finite, z, rest = _shifted(x, 1)
        z -= torch.log1p(rest)
        return _nan_rows_without_max(z, finite, all_finite).to(x.dtype), None

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        out, kept = output
        ctx.p, ctx.all_finite = kept if kept is not None else (None, False)
        ctx.save_for_backward(out)

    @staticmethod
    def backward(ctx, grad: Tensor, _):
        (out,) = ctx.saved_tensors
        total = grad.sum(dim=1, keepdim=True)
        if ctx.p is not None and not torch.is_grad_enabled():
            # g - p * sum(g), written over p: a fresh (M, C) matrix would cost page
            # faults as long as the pass itself. A second backward (retain_graph)
            # finds p spent and takes exp(out) instead.
            p, ctx.p = ctx.p, None
            g = torch.addcmul(grad, p, total, value=-1.0, out=p)
            return g if ctx.all_finite else g.masked_fill_(torch.isnan(out), 0.0)
        g = grad - torch.exp(out) * total
        return _zero_rows_without_max(g, out)


class _Softmax(torch.autograd.Function):
    """Per row: the fused ``torch.softmax``, normalised again; backward ``p * (g -
    sum(g * p))``.
    """

    @staticmethod
    def forward(x: Tensor) -> tuple[Tensor, bool]:
        if _is_fast(x):
            p = torch.softmax(x, dim=1)
            # normalised again by torch.sum's float32 sum, more accurate than the
            # one inside torch.softmax (many ulps off for thousands of classes)
            total = p.sum(dim=1, keepdim=True)
            bad = torch.isnan(total)  # a row holding NaN, or no finite maximum
            all_finite = not bool(bad.any())
            if not all_finite:
                _raise_if_nan(x[bad.squeeze(1)])
                total = total.masked_fill(bad, math.nan)
            return p.div_(total), all_finite
        _, finite, all_finite, z, rest = _shifted(x, 1)
        p = torch.exp(z).div_(1 + rest)
        return _nan_rows_without_max(p, finite, all_finite).to(x.dtype), all_finite

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        out, ctx.all_finite = output
        ctx.save_for_backward(out)

    @staticmethod
    def backward(ctx, grad: Tensor, _):
        (out,) = ctx.saved_tensors
        if not torch.is_grad_enabled() and ctx.all_finite:
            # torch's own fused kernel: out * (grad - sum(grad * out))
            return torch._softmax_backward_data(grad, out, 1, out.dtype)
        g = out * (grad - (grad * out).sum(dim=1, keepdim=True))
        return _zero_rows_without_max(g, out)


def _rows_apply(fn, x: Tensor, dim: int) -> Tensor:
    """``fn`` (an autograd Function of ``(M, C)`` rows, returning ``(out, aux)``)
    along ``dim`` of ``x``; float16 and bfloat16 go through float32.
    """
    xm = x.movedim(dim, -1)
    x2 = xm.reshape(-1, xm.shape[-1])
    if x2.dtype in (torch.float16, torch.bfloat16):
        x2 = x2.float()
    out, _ = fn.apply(x2)
    return out, xm.shape


def _composite_lse(x: Tensor, dim: int) -> Tensor:
    """Log-sum-exp along ``dim`` (kept) from plain differentiable operations, in
    WORK_DTYPE.

    The path taken inside ``torch.func`` transforms: the same shift by the
    (detached) maximum, so nothing overflows, without the ``log1p`` refinement and
    the per-row branches.
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


def _normalised(fn, x: Tensor, dim: int) -> Tensor:
    """``fn`` (:class:`_LogSoftmax` or :class:`_Softmax`) along ``dim`` of ``x``,
    with ``x``'s shape and dtype.
    """
    out, shape = _rows_apply(fn, x, dim)
    return out.to(x.dtype).reshape(shape).movedim(-1, dim)


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

    Accuracy: float32 input takes the fast path (see the module docstring) and is
    within 1 ulp (units in the last place); where the result cancels (:math:`m < 0`
    and :math:`|\operatorname{LSE}(x)| < \log(1 + s)`) the row is summed again in
    float64, and the error is then at most :math:`0.5 + 2\kappa \cdot 2^{-29}` ulp,
    :math:`\kappa` the condition number. ``logsumexp(x.double()).float()`` is
    correctly rounded (0.5 ulp) unless the result nearly cancels to 0.

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
    out, shape = _rows_apply(_LogSumExp, x, dim)
    return out.to(x.dtype).reshape(shape[:-1]).unsqueeze(dim)


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

    Accuracy: float32 input (the fast path of the module docstring) is within 2
    ulp, the top class of a confident prediction included (measured 1.26 to 1.57,
    depending on PyTorch's CPU kernels); ``log_softmax(x,
    dtype=torch.float64).float()`` is correctly rounded (0.5 ulp).

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
        out = _normalised(_LogSoftmax, x1, dim)
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

    Accuracy: float32 input takes ``torch.softmax`` normalised again by a more
    accurate row sum: within :math:`|x_i - m| + 4` ulp (measured 3.7 above
    :math:`|x_i - m|`), the error the float32 shift :math:`x_i - m` brings into the
    exponential of a small probability. ``softmax(x,
    dtype=torch.float64).float()`` is correctly rounded (0.5 ulp).

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
        out = _normalised(_Softmax, x1, dim)
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
