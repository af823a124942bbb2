r"""Class-index losses: ``nll_loss`` and ``cross_entropy`` (chapter 8).

``cross_entropy`` runs one ``autograd.Function`` over the rows of logits: one
fused softmax pass for the exponentials (kept for the gradient, which the backward
writes over it), float32 row sums, and where the loss is small (below
:data:`ACCURATE_BELOW`) the sum of the terms other than the target's accumulated
in float64 and ``log1p`` of its ratio to the target's. The per-sample loss is
within 2 ulp of the exact value, confident rows included (rows whose loss is below
:data:`FIXUP_BELOW` are summed again from float64 logits, where a float32 shift
would lose digits). Label smoothing adds one row sum to the forward and one pass
to the backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import (
    TensorLike,
    as_float_tensor,
    check_no_nan,
    check_reduction,
    is_transformed,
    result_dtype,
)
from lossnotes.functional._common import (
    _check_class_weight,
    _check_int,
    _check_label_smoothing,
    _check_probabilities,
    _class_dim,
    _class_target_for,
    _index_shape,
    _reduce,
)
from lossnotes.stability import _SUM_BLOCK, _row_sums_f64, log_softmax

#: Rows whose cross-entropy is below this are recomputed from float64 logits: there
#: the rounding of the float32 shift :math:`x_j - m` (up to :math:`|x_j - m| \cdot
#: 2^{-24}` relative in :math:`e^{x_j - m}`) would show in the small loss.
FIXUP_BELOW = 0.01
#: With fewer classes than this the rounding errors of the few dominant terms do
#: not average out (up to 6 ulp at 2 classes, measured), so rows whose loss is
#: below :data:`FIXUP_BELOW_FEW_CLASSES` are recomputed from float64 logits too.
FEW_CLASSES = 100
#: The loss below which rows of fewer than :data:`FEW_CLASSES`
#: classes are recomputed from float64 logits.
FIXUP_BELOW_FEW_CLASSES = 0.3
#: Rows whose cross-entropy is below this have their row sums accumulated again in
#: float64: a float32 sum is off by a few :math:`2^{-24}` relative, which is at most
#: a fraction of an ulp of a loss :math:`\ge 2` (whose ulp is :math:`2^{-22}`) but
#: could show in a smaller one.
ACCURATE_BELOW = 2.0


def _rows(x: Tensor, dim: int) -> Tensor:
    """Logits with the classes on ``dim`` as a contiguous ``(M, C)`` matrix."""
    if x.dim() == 1:
        return x.reshape(1, -1)
    if x.dim() == 2:
        return x.contiguous()
    return x.movedim(dim, -1).reshape(-1, x.size(dim))


#: Beyond this magnitude a row maximum :math:`m` makes :math:`C m - \sum_c x_c`
#: cancel too much in float64, and the gaps :math:`m - x_c` are summed instead.
_FAST_GAP_LIMIT = 2.0**24


def _gap_sums(x: Tensor, m: Tensor, w: Tensor | None) -> Tensor:
    r""":math:`\sum_c w_c (m - x_c)` per row (:math:`w = 1` if None), in float64,
    kept dim; ``m`` is the row maximum.

    Unweighted, with every finite :math:`|m| \le 2^{24}`: :math:`C m - \sum_c x_c`
    from one float64 row sum (for float32 logits the float64 difference is exact or
    within :math:`2^{-52} \max|x|` of it, far below the result's :math:`C \log C`
    floor). Otherwise the gaps :math:`m - x_c \ge 0` are formed and summed, so that
    nothing cancels, not even a class of tiny weight. A class of weight 0 adds 0
    even where its logit is ``-inf``; a masked class of positive weight makes the
    sum ``+inf``.
    """
    m64 = m.to(torch.float64)
    if w is None and bool(((m64.abs() <= _FAST_GAP_LIMIT) | m64.isinf()).all()):
        return x.size(1) * m64 - _row_sums_f64(x)
    gap = m - x  # >= 0, exact where the exponents are close
    sums = _row_sums_f64(gap, w)
    if w is not None and bool(torch.isnan(sums).any()):  # 0 * inf: weight 0
        sums = _row_sums_f64(torch.where(w == 0, 0.0, gap), w)
    return sums


def _softmax_rows(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, bool]:
    """``(p, xe, m, finite, all_finite)`` for ``(M, C)`` logits ``x``.

    ``p`` is the softmax of each row (0 in rows with no finite maximum), from one
    fused pass over ``xe``, the logits in the working dtype (float32, or float64
    for float64 input); ``m`` the row maxima (kept dim) and ``finite`` whether they
    are finite, per row and for all rows. A NaN anywhere in a row makes its
    maximum NaN, which raises: the one NaN check, on M values.
    """
    xe = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    m = xe.amax(dim=1, keepdim=True)
    check_no_nan(m, "input")
    finite = torch.isfinite(m)
    all_finite = bool(finite.all())
    p = torch.softmax(xe, dim=1)  # e^{x_j - m} / (their float32 sum)
    if not all_finite:
        p.masked_fill_(~finite, 0.0)
    return p, xe, m, finite, all_finite


def _other_terms_f64(
    a: Tensor, rows: Tensor, y: Tensor, shifted_exp: bool = False
) -> Tensor:
    r""":math:`\sum_{j \ne y_i} a_{ij}` for the ``rows`` of an ``(M, C)`` matrix,
    accumulated in float64 (kept dim); with ``shifted_exp``, :math:`\sum_{j \ne
    y_i} e^{a_{ij} - a_{i y_i}}` with every difference and exponential in float64.

    ``y`` holds the targets of those rows (kept dim). The rows go through one
    float64 buffer a cache-sized block at a time: fresh full-size temporaries would
    cost a page fault per 4 KiB, more than the arithmetic.
    """
    out = torch.empty(rows.numel(), 1, dtype=torch.float64)
    step = max(1, min(rows.numel(), _SUM_BLOCK // max(a.size(1), 1)))
    picked = torch.empty(step, a.size(1), dtype=a.dtype)
    wide = torch.empty(step, a.size(1), dtype=torch.float64)
    for i in range(0, rows.numel(), step):
        index, y_block = rows[i : i + step], y[i : i + step]
        k = index.numel()
        block = wide[:k].copy_(torch.index_select(a, 0, index, out=picked[:k]))
        if shifted_exp:
            block.sub_(block.gather(1, y_block)).exp_()
        block.scatter_(1, y_block, 0.0)
        torch.sum(block, dim=1, keepdim=True, out=out[i : i + k])
    return out


def _near_rows(
    p: Tensor, rows: Tensor, y: Tensor, p_y: Tensor, p_max: Tensor, gap_y: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""``(rest, total, log_norm, loss)`` of the ``rows`` of softmax ``p`` whose
    loss is below :data:`ACCURATE_BELOW`, from row sums accumulated in float64.

    ``y`` holds those rows' targets (kept dim), ``p_y`` and ``p_max`` their target's
    and largest probabilities and ``gap_y`` their :math:`m - x_y`, in float64. The
    loss is :math:`\log(1 + r / p_y)` where :math:`r \le p_y` (no :math:`1 - p_y`
    is formed), else :math:`(m - x_y) + \log(P / p_{\max})`.
    """
    rest = _other_terms_f64(p, rows, y)
    total = rest + p_y
    log_norm = torch.log(total) - torch.log(p_max)
    ratio = rest / p_y
    loss = torch.where(ratio <= 1.0, torch.log1p(ratio), gap_y + log_norm)
    return rest, total, log_norm, loss


class _SoftmaxCrossEntropy(torch.autograd.Function):
    r"""Per row of ``(M, C)`` logits: the loss :math:`-\log p_y` and the LSE.

    Outputs ``(loss, lse, smooth, p, total, rest)``: the loss and the LSE in
    float64 (so that the caller rounds once, and forms ``x - lse`` without its
    rounding), both differentiable; ``smooth``, the label-smoothing term
    :math:`-\sum_c w_c \log p_c` in float64 and differentiable, when class weights
    ``w`` (or ``True`` for :math:`w = 1`) are passed as the third input, else None;
    then, kept for the gradient, the softmax :math:`p` in the working dtype and,
    in float64, the row sums :math:`P = \sum_j p_j` (1 up to rounding) and
    :math:`r = \sum_{j \ne y} p_j`: from float32 sums where the loss is at least
    :data:`ACCURATE_BELOW`, accumulated in float64 where it is below.

    The loss is :math:`\log(1 + r / p_y)` where :math:`p_y \ge 1/2` (a confident
    row keeps its digits: no :math:`1 - p_y` is formed), else :math:`(m - x_y) +
    \log(P / p_{\max})`, two terms :math:`\ge 0`. The softmax's own normalisation
    cancels in both. Rows whose loss is below :data:`FIXUP_BELOW` are summed again
    from float64 logits. A row holding NaN raises; a row with no finite maximum (all
    ``-inf``, or a ``+inf``) gives a NaN loss, as in torch, and gradient 0.

    The smoothing term is :math:`W (\operatorname{LSE} - m) + \sum_c w_c (m -
    x_c)`, two sums of terms :math:`\ge 0` (:math:`W = \sum_c w_c`, see
    :func:`_gap_sums`); its gradient :math:`W p_j / P - w_j` goes into the same
    gradient matrix, so smoothing costs one row sum in the forward and one pass in
    the backward.
    """

    @staticmethod
    def forward(x: Tensor, y: Tensor, sum_weights=None):
        p, xe, m, finite, all_finite = _softmax_rows(x)
        yi = y.unsqueeze(1)
        m64 = m.to(torch.float64)
        # every row from float32 sums first: the loss (m - x_y) + log(P / p_max)
        total = p.sum(dim=1, keepdim=True).to(torch.float64)  # P = sum_j p_j
        p_max = p.amax(dim=1, keepdim=True).to(torch.float64)
        p_y = p.gather(1, yi).to(torch.float64)
        log_norm = torch.log(total) - torch.log(p_max)
        loss = (m64 - x.gather(1, yi).to(torch.float64)) + log_norm
        rest = total - p_y  # r = sum_{j != y} p_j, no cancellation where loss >= 2
        near = (loss < ACCURATE_BELOW).squeeze(1)
        if bool(near.any()):
            rows = near.nonzero().squeeze(1)
            rest[rows], total[rows], log_norm[rows], loss[rows] = _near_rows(
                p,
                rows,
                yi[rows],
                p_y[rows],
                p_max[rows],
                loss[rows] - log_norm[rows],
            )
        lse = m64 + log_norm
        if not all_finite:
            loss = torch.where(finite, loss, torch.nan)
            lse = torch.where(finite, lse, m64)
        few = x.size(1) < FEW_CLASSES
        small = (loss < (FIXUP_BELOW_FEW_CLASSES if few else FIXUP_BELOW)).squeeze(
            1
        )
        if bool(small.any()):
            rows = small.nonzero().squeeze(1)
            terms = _other_terms_f64(x, rows, yi[rows], shifted_exp=True)
            loss[rows] = torch.log1p(terms)
        smooth = None
        if sum_weights is not None:
            w = None if sum_weights is True else sum_weights
            total_w = x.size(1) if w is None else w.to(torch.float64).sum()
            smooth = (total_w * log_norm + _gap_sums(xe, m, w)).squeeze(1)
        return loss.squeeze(1), lse.squeeze(1), smooth, p, total, rest

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, y, *maybe_w = inputs
        _, lse, _, p, total, rest = output
        ctx.mark_non_differentiable(p, total, rest)
        # no zero-filled (M, C) gradient for the non-differentiable outputs
        ctx.set_materialize_grads(False)
        w = maybe_w[0] if maybe_w else None
        ctx.sum_weights = w  # None, True (w = 1) or the class weights
        ctx.save_for_backward(x, y, lse, total, rest)
        # p is kept outside the saved tensors, whose version check would refuse
        # the in-place use the first backward makes of it (p has no grad_fn, so
        # no reference cycle); a second backward (retain_graph=True) recomputes it
        ctx.p = p

    @staticmethod
    def backward(ctx, g_loss, g_lse, g_smooth, *_):
        x, y, lse, total, rest = ctx.saved_tensors
        yi = y.unsqueeze(1)
        g_loss = lse.new_zeros(()) if g_loss is None else g_loss.unsqueeze(1)
        g_lse = lse.new_zeros(()) if g_lse is None else g_lse.unsqueeze(1)
        g_w = None  # d smooth / dx_j = W p_j / P - w_j: the -w_j part, times g
        if g_smooth is not None:
            w = ctx.sum_weights
            total_w = x.size(1) if w is True else w.to(torch.float64).sum()
            g_smooth = g_smooth.unsqueeze(1)
            g_lse = g_lse + total_w * g_smooth
            g_w = -g_smooth.to(x.dtype) * (1.0 if w is True else w.to(x.dtype))
        if torch.is_grad_enabled():
            # a second derivative is asked for: the same gradient from
            # differentiable operations, softmax(x) = exp(x - lse), 0 in rows
            # without a finite maximum
            q = torch.exp(x - lse.unsqueeze(1))
            q = q.masked_fill(~torch.isfinite(lse).unsqueeze(1), 0.0).to(x.dtype)
            one_hot = torch.zeros_like(x).scatter_(1, yi, 1.0)
            grad = (g_loss + g_lse) * q - g_loss * one_hot
            return (grad if g_w is None else grad + g_w), None, None
        # d loss / dx_j = p_j / P - [j = y] and d lse / dx_j = p_j / P; the target's
        # entry is (g_lse p_y - g_loss r) / P, which does not cancel
        ok = total > 0
        g_both = (g_loss + g_lse).to(torch.float64)
        # p / (P / g), not p * (g / P): torch's CPU multiply by an (M, 1) column
        # can be many times slower than its divide; g = 0, or a row without a
        # maximum, give p / inf = 0
        inv = torch.where(ok & (g_both != 0), total / g_both, torch.inf)
        # the first backward takes p and turns it into the gradient, in place: a
        # fresh (M, C) matrix would cost page faults as long as the division
        # itself; letting go of it lets autograd store it as x.grad without a copy
        p = ctx.p if ctx.p is not None else _softmax_rows(x)[0]  # the same p again
        ctx.p = None
        grad = p.div_(inv.to(p.dtype))
        p_y = total - rest
        at_y = (
            g_lse.to(torch.float64) * p_y - g_loss.to(torch.float64) * rest
        ) / total
        grad.scatter_(1, yi, torch.where(ok, at_y, 0.0).to(p.dtype))
        if g_w is not None:
            grad += g_w  # in place: no second (M, C) matrix
        return grad.to(x.dtype), None, None


def nll_loss(
    input: TensorLike,
    target: Tensor,
    weight: TensorLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Negative log-likelihood loss, as ``torch.nn.functional.nll_loss``: ``input``
    is log-probabilities.

    For sample :math:`n` with class :math:`y_n` and log-probabilities :math:`x_n`,

    .. math::
        \ell_n = -\,w_{y_n}\, x_{n, y_n}, \qquad
        \text{mean} = \frac{\sum_n \ell_n}{\sum_n w_{y_n}}

    where both sums run over the samples whose target is not ``ignore_index`` (an
    ignored sample has :math:`\ell_n = 0` and does not count), and :math:`w = 1`
    without ``weight``.

    Two things that surprise, both as in PyTorch:

    - With ``weight``, ``"mean"`` is a **weighted** mean: it divides by the sum of
      the weights of the targets, not by the number of samples, so it is *not*
      ``reduction="none"`` followed by ``.mean()``.
    - If every target is ignored (or the targets' weights sum to 0), ``"mean"`` is
      :math:`0/0 = \mathrm{NaN}`; ``"sum"`` is 0 and ``"none"`` is all zeros.

    ``input`` is not checked to be log-probabilities (PyTorch does not either):
    passing raw logits gives a number that is not a loss; use :func:`cross_entropy`
    for logits. A masked class (log-probability ``-inf``) as a target gives ``inf``,
    as in PyTorch. Only the picked values :math:`x_{n, y_n}` are read, so only a NaN
    among them is an error.

    Every argument after ``weight`` is keyword-only: PyTorch's third to fifth
    positional parameters are the deprecated ``size_average``/``reduce``, so a
    positional call that would bind differently there raises ``TypeError`` here. An
    empty batch (:math:`N = 0`) gives what PyTorch gives: an empty ``"none"``, 0 for
    ``"sum"`` and NaN for ``"mean"``.

    Args:
        input: log-probabilities of shape ``(C)``, ``(N, C)`` or ``(N, C, d1, ...,
            dk)``: the classes on dim 1 (dim 0 for ``(C)``).
        target: class indices of shape ``()``, ``(N)`` or ``(N, d1, ..., dk)``, an
            integer dtype (PyTorch asks for ``torch.long``), each in ``0..C-1`` or
            ``ignore_index``.
        weight: ``None`` or ``C`` finite non-negative class weights :math:`w_c`.
        ignore_index: the target value of samples to skip (e.g. padding); any int, a
            class index included.
        reduction: ``"none"`` (the shape of ``target``), ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` or ``weight`` not floating point or sparse, ``target``
            not an integer tensor, ``ignore_index`` not an int; an option passed
            positionally.
        ValueError: a 0-dim ``input`` or one without classes, a NaN picked value;
            ``target`` of the wrong shape or with a class out of range; ``weight``
            of the wrong length, negative or not finite; an unknown ``reduction``.

    Example:
        >>> logp = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
        >>> # -log 0.5, -log 0.8
        >>> nll_loss(logp, torch.tensor([0, 1]), reduction="none")
        tensor([0.6931, 0.2231])
        >>> nll_loss(logp, torch.tensor([0, -100]))  # the second sample is ignored
        tensor(0.6931)

    References:
        PyTorch ``torch.nn.NLLLoss`` documentation.
    """
    x = as_float_tensor(input, "input", allow_empty=True)
    check_reduction(reduction)
    ignore_index = _check_int(ignore_index, "ignore_index")
    num_classes = _num_classes(x)
    w = _check_class_weight(weight, num_classes, x)
    index, keep = _class_target_for(target, x, ignore_index)
    return _nll(x, index, keep, w, reduction)


def _num_classes(x: Tensor) -> int:
    num_classes = x.size(_class_dim(x))
    if num_classes == 0:
        raise ValueError(
            f"input of shape {tuple(x.shape)} has no classes (size 0 on its class "
            f"dimension); expected at least one"
        )
    return num_classes


def _nll(
    log_p: Tensor, index: Tensor, keep: Tensor, w: Tensor | None, reduction: str
) -> Tensor:
    """:func:`nll_loss` on checked arguments."""
    dim = _class_dim(log_p)
    w_n = None if w is None else _target_weights(w, index, keep, log_p.dtype)
    total = keep.sum() if w is None else w_n.sum()
    if is_transformed(log_p, index, w) or (w is not None and w.requires_grad):
        # plain differentiable operations: torch.func, or a gradient for the weights
        picked = log_p.gather(dim, index.unsqueeze(dim)).squeeze(dim)  # x_{n, y_n}
        loss = -picked if w is None else -w_n * picked
        out = _reduce(torch.where(keep, loss, 0.0), reduction, total=total)
    else:
        out = _PickedLoss.apply(log_p, index, keep, w_n, total, reduction)
    # a NaN among the picked values makes the result NaN (0 * NaN too): one check on
    # the result, then on the N picked values, never on the N * C inputs
    if not is_transformed(out) and out.numel() > 0:
        if bool(torch.isnan(out if out.dim() == 0 else out.detach().sum())):
            picked = log_p.detach().gather(dim, index.unsqueeze(dim)).squeeze(dim)
            check_no_nan(torch.where(keep, picked, 0.0), "input")
    return out


class _PickedLoss(torch.autograd.Function):
    r"""The reduced :math:`-w_{y_n} x_{n, y_n}` of :func:`nll_loss`, as one node.

    Forward: one ``gather``; an ignored sample adds an exact 0 (never :math:`0
    \cdot (-\infty)`); ``w_n`` is None for unit weights. Backward: the
    coefficients :math:`-w_{y_n}` (0 where ignored, divided by the total weight for
    ``"mean"``) scattered into zeros, as
    PyTorch's own ``nll_loss`` does, without an autograd node for each small
    operation.

    Written in the old style (``forward(ctx, ...)``): ``apply`` binds the
    arguments of a Function with ``setup_context`` through ``inspect.signature``
    on every call (about 20 us, a tenth of PyTorch's whole ``nll_loss`` at
    (64, 32000)), and this Function never runs inside a ``torch.func`` transform
    (:func:`_nll` takes plain operations there).
    """

    @staticmethod
    def forward(ctx, log_p, index, keep, w_n, total, reduction):
        dim = _class_dim(log_p)
        picked = log_p.gather(dim, index.unsqueeze(dim)).squeeze(dim)
        ctx.reduction, ctx.shape, ctx.dtype = reduction, log_p.shape, log_p.dtype
        ctx.save_for_backward(index, keep, w_n, total)
        loss = -picked if w_n is None else -w_n * picked
        return _reduce(torch.where(keep, loss, 0.0), reduction, total)

    @staticmethod
    def backward(ctx, grad):
        index, keep, w_n, total = ctx.saved_tensors
        if ctx.reduction == "mean":
            grad = grad / total
        coef = -grad if w_n is None else -w_n * grad
        coef = torch.where(keep, coef, 0.0)  # 0 even for 0 / 0 weights
        dim = 0 if len(ctx.shape) == 1 else 1
        zeros = torch.zeros(ctx.shape, dtype=ctx.dtype)
        src = coef.unsqueeze(dim).to(ctx.dtype)
        if torch.is_grad_enabled():  # a second derivative: differentiable in grad
            g = zeros.scatter(dim, index.unsqueeze(dim), src)
        else:
            g = zeros.scatter_(dim, index.unsqueeze(dim), src)
        return g, None, None, None, None, None


def _target_weights(w: Tensor | None, index: Tensor, keep: Tensor, dtype) -> Tensor:
    """:math:`w_{y_n}` of the samples that count, 0 for the ignored ones."""
    return keep.to(dtype) if w is None else torch.where(keep, w[index], 0.0)


def cross_entropy(
    input: TensorLike,
    target: Tensor,
    weight: TensorLike | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy from logits, as ``torch.nn.functional.cross_entropy``.

    ``log_softmax`` over the class dimension, then :func:`nll_loss`. With class
    indices :math:`y_n`, log-probabilities :math:`\log p_n =
    \operatorname{log\_softmax}(x_n)` and smoothing :math:`\varepsilon`
    (``label_smoothing``) over :math:`C` classes,

    .. math::
        \ell_n = (1 - \varepsilon)\,\big(-w_{y_n} \log p_{n, y_n}\big)
        + \frac{\varepsilon}{C}\,\Big(-\sum_{c} w_c \log p_{n, c}\Big)

    that is, the cross-entropy with the target :math:`(1 -
    \varepsilon)\,\text{one-hot}(y_n) + \varepsilon / C`. ``"mean"`` divides
    **both** terms by :math:`\sum_n w_{y_n}` over the samples that are not ignored.
    Ignored samples contribute 0 to both terms. Note that the smoothing term weighs
    class :math:`c` by :math:`w_c`, yet is normalised by the weights of the
    *targets*: as PyTorch does.

    With class **probabilities** (``target`` of ``input``'s shape, floating point),

    .. math::
        \ell_n = -\sum_c w_c\, t_{n, c} \log p_{n, c}, \qquad
        t = (1 - \varepsilon)\, \text{target} + \varepsilon / C

    and ``"mean"`` divides by the number of samples :math:`N d_1 \cdots d_k`,
    **not** by any weights. Probability targets reject ``ignore_index >= 0`` (there
    is no index to compare); the default -100 is accepted and means nothing for
    them.

    Everything else as :func:`nll_loss`: the weighted mean, ``NaN`` for ``"mean"``
    when every target is ignored, keyword-only options, an empty batch as in
    PyTorch. NaN is an error.

    Masked classes (logit ``-inf``), the rule of the whole package: a masked class
    has probability 0 and gets gradient 0. A term that puts positive weight on it is
    ``+inf``, as in PyTorch: the masked class as the target, label smoothing (which
    puts :math:`\varepsilon / C` on every class), a positive target probability. A
    term that puts weight 0 on it adds exactly 0 (:math:`0 \cdot \log 0 = 0`), where
    PyTorch computes :math:`0 \cdot (-\infty) = \mathrm{NaN}`: a probability target
    0, a class weight 0. A row with no finite logit (all ``-inf``, or a ``+inf``)
    gives NaN, as in PyTorch.

    Accuracy: the per-sample loss (float32) is within 2 ulp of the exact
    value, also for confident rows, where PyTorch's can be off by millions of ulps
    (``benchmarks/`` measures both). Inside ``torch.func`` transforms the loss is
    computed from :func:`~lossnotes.stability.log_softmax` instead, without the
    value checks.

    Args:
        input: logits of shape ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``: the
            classes on dim 1 (dim 0 for ``(C)``). Channels-last logits need
            ``input.movedim(-1, 1)``.
        target: class indices (shape ``()``, ``(N)`` or ``(N, d1, ..., dk)``,
            integer dtype, each in ``0..C-1`` or ``ignore_index``) or class
            probabilities (``input``'s shape, floating point, values in [0, 1]; the
            result takes the wider of the two dtypes, as in PyTorch).
        weight: ``None`` or ``C`` finite non-negative class weights :math:`w_c`.
        ignore_index: the class-index target value of samples to skip.
        reduction: ``"none"`` (one loss per sample), ``"mean"`` or ``"sum"``.
        label_smoothing: :math:`\varepsilon \in [0, 1]`.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype (promoted with a
        probability target's).

    Raises:
        TypeError: ``input`` or ``weight`` not floating point or sparse; class
            indices not an integer dtype, or an integer ``target`` of ``input``'s
            shape (probabilities must be floating point); ``ignore_index`` not an
            int; ``label_smoothing`` not a number; an option passed positionally.
        ValueError: a 0-dim ``input``, one without classes, or a NaN in it;
            ``target`` of the wrong shape, with a class out of range, or
            probabilities outside [0, 1]; ``weight`` of the wrong length, negative
            or not finite; ``label_smoothing`` outside [0, 1] (PyTorch quietly
            ignores a negative one); ``ignore_index >= 0`` with probabilities; an
            unknown ``reduction``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, 0.0]])  # p = e^2 / (e^2 + 2) = 0.787
        >>> cross_entropy(logits, torch.tensor([0]))  # -log 0.787
        tensor(0.2395)
        >>> # the same, as probabilities
        >>> cross_entropy(logits, torch.tensor([[1.0, 0.0, 0.0]]))
        tensor(0.2395)

    References:
        PyTorch ``torch.nn.CrossEntropyLoss`` documentation; Szegedy et al. (2016),
        section 7 (label smoothing).
    """
    x = as_float_tensor(input, "input", allow_empty=True)
    check_reduction(reduction)
    ignore_index = _check_int(ignore_index, "ignore_index")
    eps = _check_label_smoothing(label_smoothing)
    dim = _class_dim(x)
    num_classes = _num_classes(x)
    w = _check_class_weight(weight, num_classes, x)
    if isinstance(target, Tensor) and target.shape == x.shape:
        return _cross_entropy_probabilities(
            x, target, w, ignore_index, reduction, eps
        )
    index, keep = _class_target_for(target, x, ignore_index)
    w_n = _target_weights(w, index, keep, x.dtype)
    total = w_n.sum()
    if is_transformed(x, index, w):
        # torch.func: plain differentiable operations, no branch on values
        log_p = log_softmax(x, dim=dim)
        loss = _nll(log_p, index, keep, w, "none")
        smooth = None
        if eps > 0.0:
            w_c = log_p.new_ones(()) if w is None else _along_class_dim(w, log_p)
            smooth = torch.where(keep, -(w_c * log_p).sum(dim), 0.0)
    else:
        x2 = _rows(x, dim)
        smooth_w = (True if w is None else w) if eps > 0.0 else None
        loss_n, _, smooth_n, *_ = _SoftmaxCrossEntropy.apply(
            x2, index.reshape(-1), smooth_w
        )
        loss_n = loss_n.to(x.dtype).reshape(index.shape)  # rounded once
        # where, not w_n * ...: an ignored sample adds an exact 0 and no gradient
        loss = torch.where(keep, w_n * loss_n, 0.0)
        smooth = None
        if eps > 0.0:
            smooth_n = smooth_n.to(x.dtype).reshape(index.shape)  # rounded once
            smooth = torch.where(keep, smooth_n, 0.0)
    if smooth is None:
        return _reduce(loss, reduction, total)
    return (1 - eps) * _reduce(loss, reduction, total) + _reduce(
        smooth, reduction, total
    ) * (eps / num_classes)


def _along_class_dim(w: Tensor, x: Tensor) -> Tensor:
    """Class weights shaped to broadcast along the class dimension of ``x``."""
    return w.view([-1] + [1] * (x.dim() - 2)) if x.dim() > 1 else w


def _cross_entropy_probabilities(
    x: Tensor,
    target: Tensor,
    w: Tensor | None,
    ignore_index: int,
    reduction: str,
    eps: float,
) -> Tensor:
    """:func:`cross_entropy` with class-probability targets, on checked logits and
    weights.
    """
    if not target.is_floating_point():
        raise TypeError(
            f"target has input's shape {tuple(x.shape)}, so it holds class "
            "probabilities, which must "
            f"be floating point; got {target.dtype} (class indices have shape "
            f"{tuple(_index_shape(x))})"
        )
    if ignore_index >= 0:
        raise ValueError(
            f"ignore_index={ignore_index} cannot be used with class-probability "
            "targets "
            "(PyTorch rejects ignore_index >= 0 there); a sample whose target row "
            "is all zeros adds "
            f"nothing to the sum (but still counts in the mean)"
        )
    t = target.to(result_dtype(x, target))
    _check_probabilities(t, "target")
    x = x.to(t.dtype)
    dim = _class_dim(x)
    num_classes = x.size(dim)
    if eps > 0.0:
        t = t * (1 - eps) + eps / num_classes
    if w is not None:
        t = t * _along_class_dim(w.to(t.dtype), x)
    if is_transformed(x, t):
        log_p = log_softmax(x, dim=dim)
    else:
        x2 = _rows(x, dim)
        lse = _SoftmaxCrossEntropy.apply(
            x2, x2.new_zeros(x2.size(0), dtype=torch.long)
        )[1]
        log_p = (x2.to(torch.float64) - lse.unsqueeze(1)).to(x.dtype)
        if x.dim() > 2:
            log_p = log_p.reshape(*x.shape[:1], *x.shape[2:], num_classes).movedim(
                -1, 1
            )
        else:
            log_p = log_p.reshape(x.shape)
    # a target of 0 on a masked class (log p = -inf) adds 0, not 0 * -inf = NaN
    terms = torch.where((t == 0) & torch.isneginf(log_p), 0.0, t * log_p)
    loss = -terms.sum(dim)
    return _reduce(
        loss, reduction
    )  # the mean is over samples, whatever the weights


# --- binary cross-entropy (chapter 9) ---------------------------------------------
