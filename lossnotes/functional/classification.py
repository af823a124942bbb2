r"""Class-index losses: ``nll_loss`` and ``cross_entropy`` (chapter 8).

``cross_entropy`` runs one ``autograd.Function`` over the rows of logits: one
fused softmax pass for the exponentials (kept for the gradient), the row sums of
the terms other than the target's accumulated in float64, and ``log1p`` of their
ratio to the target's. The per-sample loss is within about 1 ulp of the exact
value, confident rows included (rows whose loss is below :data:`FIXUP_BELOW` are
summed again from float64 logits, where a float32 shift would lose digits).
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
from lossnotes.stability import log_softmax

#: Rows whose cross-entropy is below this are recomputed from float64 logits: there
#: the : rounding of the float32 shift :math:`x_j - m` (up to :math:`|x_j - m| \cdot
#: 2^{-24}`
#: relative in :math:`e^{x_j - m}`) would show in the small loss.
FIXUP_BELOW = 0.01


def _rows(x: Tensor, dim: int) -> Tensor:
    """Logits with the classes on ``dim`` as a contiguous ``(M, C)`` matrix."""
    if x.dim() == 1:
        return x.reshape(1, -1)
    if x.dim() == 2:
        return x.contiguous()
    return x.movedim(dim, -1).reshape(-1, x.size(dim))


#: Elements converted to float64 at a time for the row sums: a block that stays in
#: the cache (a sum with ``dtype=torch.float64`` converts the whole matrix first).
_SUM_BLOCK = 1 << 18


def _row_sums_f64(p: Tensor) -> Tensor:
    """Row sums of an ``(M, C)`` matrix, accumulated in float64, kept dim."""
    if p.dtype == torch.float64:
        return p.sum(dim=1, keepdim=True)
    out = torch.empty(p.size(0), 1, dtype=torch.float64)
    rows = max(1, _SUM_BLOCK // max(p.size(1), 1))
    for i in range(0, p.size(0), rows):
        torch.sum(
            p[i : i + rows].to(torch.float64),
            dim=1,
            keepdim=True,
            out=out[i : i + rows],
        )
    return out


class _SoftmaxCrossEntropy(torch.autograd.Function):
    r"""Per row of ``(M, C)`` logits: the loss :math:`-\log p_y` and the LSE.

    Outputs ``(loss, lse, p, total, rest)``: the loss and the LSE in float64 (so
    that the caller rounds once, and forms ``x - lse`` without its rounding), both
    differentiable; then, kept for the gradient, the softmax :math:`p` in the
    working dtype and, in float64, the row sums :math:`P = \sum_j p_j` (1 up to
    rounding) and :math:`r = \sum_{j \ne y} p_j`.

    The loss is :math:`\log(1 + r / p_y)` where :math:`p_y \ge 1/2` (a confident row
    keeps its digits: no :math:`1 - p_y` is formed), else :math:`(m - x_y) + \log(P
    / p_{\max})`, two terms :math:`\ge 0`. The softmax's own normalisation cancels
    in both. Rows whose loss is below :data:`FIXUP_BELOW` are summed again from
    float64 logits. A row holding NaN raises; a row with no finite maximum (all
    ``-inf``, or a ``+inf``) gives a NaN loss, as in torch, and gradient 0.
    """

    @staticmethod
    def forward(x: Tensor, y: Tensor):
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        xe = x.to(work)
        m = xe.amax(dim=1, keepdim=True)
        check_no_nan(m, "input")  # a NaN anywhere in a row makes its maximum NaN
        finite = torch.isfinite(m)
        all_finite = bool(finite.all())
        # one fused pass for the exponentials: e^{x_j - m} / (their float32 sum)
        p = torch.softmax(xe, dim=1)
        if not all_finite:
            p.masked_fill_(~finite, 0.0)
        yi = y.unsqueeze(1)
        p_y = p.gather(1, yi)
        p.scatter_(1, yi, 0.0)
        rest = _row_sums_f64(p)  # float64 row accumulation of the other terms
        p.scatter_(1, yi, p_y)
        p_y = p_y.to(torch.float64)
        total = rest + p_y
        m64 = m.to(torch.float64)
        log_norm = torch.log(total) - torch.log(
            p.amax(dim=1, keepdim=True).to(torch.float64)
        )
        lse = m64 + log_norm
        ratio = rest / p_y
        far = (m64 - x.gather(1, yi).to(torch.float64)) + log_norm
        loss = torch.where(ratio <= 1.0, torch.log1p(ratio), far)
        if not all_finite:
            loss = torch.where(finite, loss, torch.nan)
            lse = torch.where(finite, lse, m64)
        small = (loss < FIXUP_BELOW).squeeze(1)
        if bool(small.any()):
            rows = small.nonzero().squeeze(1)
            xr = x[rows].to(torch.float64)
            yr = yi[rows]
            d = torch.exp(xr - xr.gather(1, yr)).scatter_(1, yr, 0.0)
            loss[rows] = torch.log1p(d.sum(dim=1, keepdim=True))
        return loss.squeeze(1), lse.squeeze(1), p, total, rest

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, y = inputs
        _, lse, p, total, rest = output
        ctx.mark_non_differentiable(p, total, rest)
        # no zero-filled (M, C) gradient for the non-differentiable outputs
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, y, lse, p, total, rest)

    @staticmethod
    def backward(ctx, g_loss, g_lse, *_):
        x, y, lse, p, total, rest = ctx.saved_tensors
        yi = y.unsqueeze(1)
        g_loss = lse.new_zeros(()) if g_loss is None else g_loss.unsqueeze(1)
        g_lse = lse.new_zeros(()) if g_lse is None else g_lse.unsqueeze(1)
        if torch.is_grad_enabled():
            # a second derivative is asked for: the same gradient from
            # differentiable operations, softmax(x) = exp(x - lse), 0 in rows
            # without a finite maximum
            q = torch.exp(x - lse.unsqueeze(1))
            q = q.masked_fill(~torch.isfinite(lse).unsqueeze(1), 0.0).to(x.dtype)
            one_hot = torch.zeros_like(x).scatter_(1, yi, 1.0)
            return (g_loss + g_lse) * q - g_loss * one_hot, None
        # d loss / dx_j = p_j / P - [j = y] and d lse / dx_j = p_j / P; the target's
        # entry is (g_lse p_y - g_loss r) / P, which does not cancel
        ok = total > 0
        g_both = (g_loss + g_lse).to(torch.float64)
        # p / (P / g), not p * (g / P): torch's CPU multiply by an (M, 1) column
        # can be many times slower than its divide; g = 0, or a row without a
        # maximum, give p / inf = 0
        inv = torch.where(ok & (g_both != 0), total / g_both, torch.inf)
        grad = p / inv.to(p.dtype)
        p_y = total - rest
        at_y = (
            g_lse.to(torch.float64) * p_y - g_loss.to(torch.float64) * rest
        ) / total
        grad.scatter_(1, yi, torch.where(ok, at_y, 0.0).to(p.dtype))
        return grad.to(x.dtype), None


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
    picked = log_p.gather(dim, index.unsqueeze(dim)).squeeze(dim)  # x_{n, y_n}
    # where, not w_n * ...: an ignored sample adds an exact 0 (never 0 * -inf) and
    # no gradient
    if w is None:
        loss = torch.where(keep, -picked, 0.0)
        total = keep.sum()
    else:
        w_n = _target_weights(w, index, keep, log_p.dtype)
        loss = torch.where(keep, -w_n * picked, 0.0)
        total = w_n.sum()
    out = _reduce(loss, reduction, total=total)
    # a NaN among the picked values makes the result NaN (0 * NaN too): one check on
    # the result, then on the N picked values, never on the N * C inputs
    if not is_transformed(out) and out.numel() > 0:
        if bool(torch.isnan(out if out.dim() == 0 else out.detach().sum())):
            check_no_nan(torch.where(keep, picked, 0.0), "input")
    return out


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

    Accuracy: the per-sample loss (float32) is within about 1 ulp of the exact
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
        loss_n, lse_n, *_ = _SoftmaxCrossEntropy.apply(x2, index.reshape(-1))
        loss_n = loss_n.to(x.dtype).reshape(index.shape)  # rounded once
        # where, not w_n * ...: an ignored sample adds an exact 0 and no gradient
        loss = torch.where(keep, w_n * loss_n, 0.0)
        smooth = None
        if eps > 0.0:
            smooth = torch.where(
                keep, _smoothing_term(x2, lse_n, w, index.shape), 0.0
            )
    if smooth is None:
        return _reduce(loss, reduction, total)
    return (1 - eps) * _reduce(loss, reduction, total) + _reduce(
        smooth, reduction, total
    ) * (eps / num_classes)


def _smoothing_term(x2: Tensor, lse: Tensor, w: Tensor | None, shape) -> Tensor:
    r""":math:`-\sum_c w_c \log p_c` per row, as two sums of terms :math:`\ge 0`.

    :math:`-\log p_c = (m - x_c) + (\operatorname{LSE}(x) - m)` with :math:`m` the
    row maximum: :math:`\sum_c w_c (m - x_c) + W (\operatorname{LSE} - m)`, nothing
    cancels (as :math:`W \operatorname{LSE} - \sum_c w_c x_c` would). A class of
    weight 0 adds 0 even where its logit is ``-inf``; a masked class of positive
    weight makes the term ``+inf``.
    """
    return _sum_minus_log_q(x2, lse, w).to(x2.dtype).reshape(shape)


def _sum_minus_log_q(x2: Tensor, lse: Tensor, w: Tensor | None = None) -> Tensor:
    r""":math:`\sum_c w_c (\operatorname{LSE} - x_c)` per row, in float64.

    ``w = 1`` if None; ``lse`` is the float64 LSE of the rows of ``x2``.
    """
    # m cancels from the sum, so no gradient flows through it (amax's backward would
    # cost several passes over the logits)
    m = x2.detach().amax(dim=1, keepdim=True)
    gap = m - x2  # >= 0, exact where the exponents are close
    if w is None:
        dot, total_w = gap.sum(dim=1), x2.size(1)
    else:
        dot, total_w = gap @ w, w.sum()
        if bool(torch.isnan(dot).any()):  # 0 * inf: a masked class of weight 0
            dot = torch.where(w == 0, 0.0, gap * w).sum(dim=1)
    m64 = m.squeeze(1).to(torch.float64)
    log_norm = torch.where(torch.isfinite(m64), lse - m64, 0.0)
    return dot.to(torch.float64) + total_w * log_norm


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
