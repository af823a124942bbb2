r"""Focal losses: multi-class and sigmoid (chapter 11)."""

from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor
from torch.autograd import forward_ad

from lossnotes._checks import (
    TensorLike,
    as_float_tensor,
    check_finite,
    check_no_nan,
    check_reduction,
    check_same_shape,
    is_transformed,
    result_dtype,
)
from lossnotes.functional._common import (
    _check_class_weight,
    _check_int,
    _check_probabilities,
    _check_real,
    _class_dim,
    _class_target_for,
    _modulating_factor,
    _reduce,
)
from lossnotes.functional.classification import (
    _num_classes,
    _rows,
    _SoftmaxCrossEntropy,
)
from lossnotes.stability import log_softmax


def _check_alpha(alpha, num_classes: int, like: Tensor) -> Tensor | None:
    """``alpha`` as ``C`` class weights: the check of ``weight``, under its own
    name.
    """
    return _check_class_weight(alpha, num_classes, like, "alpha")


def _raise_if_no_finite_maximum(x: Tensor, per_sample: Tensor, name: str) -> None:
    """A NaN per-sample result: a NaN logit, or a row without a finite maximum."""
    if is_transformed(per_sample) or per_sample.numel() == 0:
        return
    if bool(torch.isnan(per_sample.detach().sum())):
        check_no_nan(x, name)
        raise ValueError(
            f"{name} contains inf: a row with a +inf logit, or only -inf logits, "
            "has no "
            "finite maximum (a masked class is -inf, and at least one class must "
            "be finite)"
        )


def focal_loss(
    input: TensorLike,
    target: Tensor,
    alpha: TensorLike | None = None,
    *,
    gamma: float = 2.0,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Multi-class focal loss from logits: cross-entropy scaled down for easy
    examples.

    .. math::
        \ell_n = -\,\alpha_{y_n} (1 - p_{n, y_n})^{\gamma} \log p_{n, y_n},
        \qquad p_n = \operatorname{softmax}(x_n)

    The modulating factor :math:`(1 - p_t)^\gamma` is near 0 for a well-classified
    example (:math:`p_t \to 1`) and near 1 for a misclassified one. With
    :math:`\gamma = 0` and no ``alpha`` it is exactly
    ``torch.nn.functional.cross_entropy``. :math:`\log p_t` comes from a stable
    ``log_softmax`` and :math:`1 - p_t` from ``-expm1(log p_t)``, so neither
    cancels.

    ``reduction="mean"`` divides the sum by the **number of non-ignored samples**,
    whatever ``alpha`` is. ``cross_entropy(weight=alpha)`` divides by the **sum of
    the weights** :math:`\sum_n \alpha_{y_n}` instead, so the two differ by that
    factor even at :math:`\gamma = 0`.

    Masked classes follow :func:`cross_entropy`: a ``-inf`` logit has probability 0
    and gradient 0, and a masked class as the target gives ``inf``; a row needs one
    finite logit. :math:`\log p_t` is the per-sample loss of ``cross_entropy``'s
    fused function, accurate for confident rows too. Options after ``alpha`` are
    keyword-only; an empty batch gives NaN for ``"mean"``.

    Args:
        input: logits of shape ``(C)``, ``(N, C)`` or ``(N, C, d1, ...)`` (classes
            on dim 1, as for ``cross_entropy``); ``-inf`` marks a masked class.
        target: class indices of shape ``()``, ``(N,)`` or ``(N, d1, ...)``, integer
            dtype, in ``0..C-1`` or ``ignore_index``.
        alpha: ``None`` or a tensor of ``C`` non-negative per-class weights
            :math:`\alpha_c`.
        gamma: the focusing parameter :math:`\gamma \ge 0`.
        ignore_index: target value whose positions contribute nothing (and are not
            counted).
        reduction: ``"none"`` (shape of ``target``, 0 at ignored positions),
            ``"mean"`` or ``"sum"``. ``"mean"`` of an all-ignored batch is NaN, as
            for ``cross_entropy``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` not floating point, ``target`` not an integer tensor,
            ``gamma`` not a real number or ``ignore_index`` not an int.
        ValueError: ``input`` 0-dim, with NaN, or with a row without a finite logit
            (a ``+inf``, or only ``-inf``), ``target`` of the wrong shape or with a
            class out of range, ``alpha`` of the wrong shape or negative, ``gamma``
            negative or infinite, or an unknown ``reduction``.

    Example:
        >>> logits = torch.tensor([[0.0, 0.0]])  # p_t = 1/2
        >>> # (1/2)^2 log 2 = 0.1733
        >>> focal_loss(logits, torch.tensor([0]), gamma=2.0)
        tensor(0.1733)

    References:
        Lin, Goyal, Girshick, He & Dollár (2017), *Focal loss for dense object
        detection*,
        eq. (5), with per-class :math:`\alpha` as in their multi-class use.
    """
    x = as_float_tensor(input, "input", allow_empty=True)
    dim = _class_dim(x)
    g = _check_real(gamma, "gamma", 0.0)
    ignore_index = _check_int(ignore_index, "ignore_index")
    check_reduction(reduction)
    a = _check_alpha(alpha, _num_classes(x), x)
    index, keep = _class_target_for(target, x, ignore_index)
    if is_transformed(x):
        log_pt = (
            log_softmax(x, dim=dim).gather(dim, index.unsqueeze(dim)).squeeze(dim)
        )
    else:
        nll = _SoftmaxCrossEntropy.apply(_rows(x, dim), index.reshape(-1))[0]
        _raise_if_no_finite_maximum(x, nll, "input")
        log_pt = -nll.reshape(index.shape)  # float64: the loss is rounded once
    loss = (-_modulating_factor(-torch.expm1(log_pt), g) * log_pt).to(x.dtype)
    if a is not None:
        loss = a[index] * loss
    return _reduce(torch.where(keep, loss, 0.0), reduction, total=keep.sum())


def sigmoid_focal_loss(
    inputs: TensorLike,
    targets: TensorLike,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Tensor:
    r"""Binary (multi-label) focal loss from logits, as
    ``torchvision.ops.sigmoid_focal_loss``.

    .. math::
        \ell = -\,\alpha_t (1 - p_t)^{\gamma} \log p_t, \quad
        p_t = y\,\sigma(x) + (1 - y)(1 - \sigma(x)), \quad
        \alpha_t = y\,\alpha + (1 - y)(1 - \alpha)

    for every element independently: each logit is its own binary problem (one
    anchor and one class, in dense detection). For soft targets :math:`y \in [0, 1]`
    the :math:`\log p_t` term is the binary cross-entropy :math:`-y \log\sigma(x) -
    (1 - y)\log(1 - \sigma(x))`, as in torchvision.

    :math:`1 - p_t = y\,\sigma(-x) + (1 - y)\,\sigma(x)` and the cross-entropy
    are formed from :math:`e^{-|x|}` as sums of non-negative terms, never as a
    difference such as torchvision's :math:`1 - p_t`, so a logit of any size gives
    a finite, accurate loss. The work is done in float64 (block by block, in the
    cache) and rounded once: a float32 loss is within an ulp of the exact value,
    confident logits included (float32 ``sigmoid`` alone is off by about 2 ulp,
    and :math:`\gamma = 2` doubles that). The gradient is computed in the same
    pass. Inside ``torch.func`` transforms, under forward-mode AD, and for
    ``targets`` that need a gradient, the loss is computed from differentiable
    operations instead (``torch.logaddexp`` and ``torch.sigmoid``, in the input's
    dtype).

    ``alpha < 0`` drops the :math:`\alpha_t` factor. The same signature,
    positional order and defaults as torchvision's (so a positional call
    binds as there). A float64 ``targets`` makes the result float64.

    Args:
        inputs: logits, any shape, finite.
        targets: same shape, floating point, values in [0, 1] (1 = positive).
        alpha: weight of the positives in [0, 1], or negative to disable (default
            0.25).
        gamma: the focusing parameter :math:`\gamma \ge 0` (default 2).
        reduction: ``"none"`` (default, as in torchvision), ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked.

    Raises:
        TypeError: ``inputs`` or ``targets`` not floating point, ``alpha`` or
            ``gamma`` not real numbers.
        ValueError: shapes differ, non-finite ``inputs``, ``targets`` outside [0,
            1], ``alpha`` above 1 or NaN, ``gamma`` negative or infinite, or an
            unknown ``reduction``.

    Example:
        >>> # p_t = 1/2 for both
        >>> x, y = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])
        >>> sigmoid_focal_loss(x, y)  # 0.25 / 4 * log 2 and 0.75 / 4 * log 2
        tensor([0.0433, 0.1300])

    References:
        Lin et al. (2017), eq. (5); torchvision
        ``torchvision.ops.sigmoid_focal_loss``.
    """
    x = as_float_tensor(inputs, "inputs", allow_empty=True)
    y = as_float_tensor(targets, "targets", allow_empty=True)
    check_same_shape(y, x, ("targets", "inputs"))
    _check_probabilities(y, "targets")
    dtype = result_dtype(x, y)
    x, y = x.to(dtype), y.to(dtype)
    if isinstance(alpha, bool) or not isinstance(alpha, Real):
        raise TypeError(f"alpha must be a real number; got {type(alpha).__name__}")
    if not alpha <= 1:
        raise ValueError(
            f"alpha must lie in [0, 1], or be negative to disable it; got {alpha:g}"
        )
    g = _check_real(gamma, "gamma", 0.0)
    check_reduction(reduction)
    a = float(alpha)
    if is_transformed(x, y) or y.requires_grad or _has_tangent(x, y):
        check_finite(x, "inputs")
        return _reduce(_sigmoid_focal_composite(x, y, a, g), reduction)
    want_grad = x.requires_grad and torch.is_grad_enabled()
    out, total, _ = _SigmoidFocal.apply(x, y, a, g, reduction, want_grad)
    # a NaN or infinite logit makes the float64 sum NaN or inf: one look at it,
    # and at the inputs only then
    if not bool(torch.isfinite(total)):
        check_finite(x, "inputs")
    return out


def _has_tangent(*tensors: Tensor) -> bool:
    """Whether any of ``tensors`` is a dual tensor of forward-mode AD
    (``torch.autograd.forward_ad``), which the fused function does not serve."""
    return any(forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def _sigmoid_focal_composite(x: Tensor, y: Tensor, alpha: float, gamma: float):
    """The per-element sigmoid focal loss from differentiable torch operations: the
    path inside ``torch.func`` transforms, for targets that need a gradient, and
    for a second derivative of :class:`_SigmoidFocal`.
    """
    # -log sigmoid(x) = LSE(0, -x), -log(1 - sigmoid(x)) = LSE(0, x)
    zero = torch.zeros((), dtype=x.dtype)
    bce = y * torch.logaddexp(-x, zero) + (1 - y) * torch.logaddexp(x, zero)
    one_minus_pt = y * torch.sigmoid(-x) + (1 - y) * torch.sigmoid(x)
    loss = _modulating_factor(one_minus_pt, gamma) * bce
    if alpha >= 0:
        loss = (y * alpha + (1 - y) * (1 - alpha)) * loss
    return loss


#: Elements per block of :func:`_sigmoid_focal_f64`: its eight float64 temporaries
#: stay in the cache (whole-size ones would cost a page fault per 4 KiB).
_FOCAL_BLOCK = 1 << 16


def _sigmoid_focal_f64(
    x: Tensor,
    y: Tensor,
    alpha: float,
    gamma: float,
    reduction: str,
    want_grad: bool,
) -> tuple[Tensor, Tensor | None]:
    r"""The sigmoid focal loss, reduced as asked, computed in float64 and rounded
    once; and :math:`d\ell/dx` per element (in ``x``'s dtype) if ``want_grad``.

    With :math:`a = |x|`, :math:`e = e^{-a}`, :math:`d = 1 + e`, :math:`s =
    \operatorname{sign}(x)` and :math:`u = y` where :math:`x \ge 0`, :math:`1 - y`
    where :math:`x < 0` (the weight of the smaller of :math:`\sigma(\pm x)`):

    .. math::
        1 - p_t = \frac{(1 - u) + u e}{d}, \qquad
        \mathrm{ce} = a (1 - u) + \log(1 + e), \qquad
        \alpha_t = \tfrac12 + (2\alpha - 1)(y - \tfrac12),

    .. math::
        \frac{d\ell}{dx} = \frac{s\, \alpha_t (1 - p_t)^\gamma}{d}
        \Big[\gamma (1 - 2u) \frac{e}{d} \frac{\mathrm{ce}}{1 - p_t}
        + (1 - u) - u e\Big].

    Nothing cancels: :math:`(1 - u) + u e` is a ``lerp`` of two non-negative ends,
    :math:`a - a u` has an exact product, and each transcendental is taken once,
    in float64. The float32 loss is then within about half an ulp of the exact
    value (float32 ``sigmoid`` alone is off by about 2 ulp, which :math:`\gamma =
    2` doubles). The work runs over blocks of :data:`_FOCAL_BLOCK` elements, so the
    float64 temporaries never leave the cache.
    """
    wide = torch.float64
    xf, yf = x.reshape(-1), y.reshape(-1)
    n = xf.numel()
    m = max(1, min(_FOCAL_BLOCK, n))
    per_element = torch.empty(n, dtype=x.dtype) if reduction == "none" else None
    slope = torch.empty(n, dtype=x.dtype) if want_grad else None
    a, e, d, h, u, q, ce, t = (torch.empty(m, dtype=wide) for _ in range(8))
    sign = torch.empty(m, dtype=x.dtype)
    partial = torch.empty((n + m - 1) // m, dtype=wide)  # block sums
    one, half = torch.ones((), dtype=x.dtype), torch.full((), 0.5, dtype=wide)
    tiny = torch.finfo(wide).tiny
    for j, i in enumerate(range(0, n, m)):
        k = min(m, n - i)
        xs = xf[i : i + k]
        A, E, D_, H, U, Q, CE, T, S = (
            b[:k] for b in (a, e, d, h, u, q, ce, t, sign)
        )
        A.copy_(xs).abs_()
        torch.neg(A, out=E).exp_()
        torch.add(E, 1.0, out=D_)
        H.copy_(yf[i : i + k]).sub_(0.5)  # y - 1/2, exact
        torch.copysign(one, xs, out=S)
        torch.addcmul(half, S, H, out=U)  # u = 1/2 + s (y - 1/2), exact
        torch.lerp(one.to(wide), E, U, out=Q).div_(D_).clamp_(min=tiny)
        torch.addcmul(A, A, U, value=-1.0, out=CE).add_(torch.log1p(E, out=T))
        # the floor under 1 - p_t keeps the slope finite for gamma < 1 (the factor
        # is 0 or 1 there anyway)
        if gamma == 2.0:
            factor = torch.mul(Q, Q, out=T)
        else:
            factor = torch.pow(Q, gamma, out=T)
        if want_grad:
            # the bracket times d: gamma (1 - 2u) (e / d) ce / q + (1 - u) - u e;
            # 1/d - u itself would cancel where u = 1 and e is small
            G = A  # |x| is spent: the slope goes here
            torch.div(E, D_, out=G).mul_(CE).div_(Q)  # e / d ce / q
            G.addcmul_(G, U, value=-2.0).mul_(gamma)  # times gamma (1 - 2u)
            G.addcmul_(U, E, value=-1.0).add_(torch.sub(U, 1.0, out=E).neg_())
            G.div_(D_).mul_(factor)
        loss = factor.mul_(CE)
        if alpha >= 0:
            alpha_t = H.mul_(2 * alpha - 1).add_(0.5)
            loss.mul_(alpha_t)
            if want_grad:
                G.mul_(alpha_t)
        if want_grad:
            slope[i : i + k].copy_(G.mul_(S))
        torch.sum(loss, dim=0, out=partial[j])
        if per_element is not None:
            per_element[i : i + k].copy_(loss)  # the one rounding
    if per_element is not None:
        out = per_element.reshape(x.shape)
        total = partial.sum()
    else:
        total = partial.sum()
        # NaN for n = 0; a copy, never total itself (which is not differentiable)
        out = total / n if reduction == "mean" else total.clone()
        out = out.to(x.dtype)
    return out, total, None if slope is None else slope.reshape(x.shape)


class _SigmoidFocal(torch.autograd.Function):
    """Sigmoid focal loss, reduced as asked, outside ``torch.func``.

    Outputs ``(loss, total, slope)``: the loss from :func:`_sigmoid_focal_f64`;
    then, not differentiable, the float64 sum of the per-element losses (for the
    caller's finiteness check) and the gradient per element, computed in the same
    pass and kept for the backward (None unless ``want_grad``). With
    ``create_graph=True`` the backward differentiates
    :func:`_sigmoid_focal_composite` instead, so a second derivative works.
    """

    @staticmethod
    def forward(x, y, alpha: float, gamma: float, reduction: str, want_grad: bool):
        return _sigmoid_focal_f64(x, y, alpha, gamma, reduction, want_grad)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, y, alpha, gamma, reduction, _ = inputs
        _, total, slope = output
        ctx.options = (alpha, gamma)
        ctx.scale = 1.0 / x.numel() if reduction == "mean" and x.numel() else 1.0
        ctx.mark_non_differentiable(total)
        if slope is not None:
            ctx.mark_non_differentiable(slope)
        ctx.set_materialize_grads(False)
        ctx.slope = slope  # not a saved tensor: the backward only reads it
        ctx.save_for_backward(x, y)

    @staticmethod
    def backward(ctx, grad: Tensor, *_):
        x, y = ctx.saved_tensors
        if grad is None:
            return None, None, None, None, None, None
        g = grad * ctx.scale if ctx.scale != 1.0 else grad
        if torch.is_grad_enabled() or ctx.slope is None:
            # a second derivative is asked for: the gradient from differentiable
            # operations
            with torch.enable_grad():
                loss = _sigmoid_focal_composite(x, y, *ctx.options)
                (grad_x,) = torch.autograd.grad(
                    loss, x, g.expand_as(loss), create_graph=True
                )
            return grad_x, None, None, None, None, None
        return ctx.slope * g, None, None, None, None, None
