r"""Class-index losses: ``nll_loss`` and ``cross_entropy`` (chapter 8)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import (
    as_float_tensor,
    check_no_nan,
    check_reduction,
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


def nll_loss(
    input, target, weight=None, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor:
    r"""Negative log-likelihood loss, as ``torch.nn.functional.nll_loss``: ``input`` is log-probabilities.

    For sample :math:`n` with class :math:`y_n` and log-probabilities :math:`x_n`,

    .. math::
        \ell_n = -\,w_{y_n}\, x_{n, y_n}, \qquad
        \text{mean} = \frac{\sum_n \ell_n}{\sum_n w_{y_n}}

    where both sums run over the samples whose target is not ``ignore_index`` (an ignored
    sample has :math:`\ell_n = 0` and does not count), and :math:`w = 1` without ``weight``.

    Two things that surprise, both as in PyTorch:

    - With ``weight``, ``"mean"`` is a **weighted** mean: it divides by the sum of the weights
      of the targets, not by the number of samples, so it is *not* ``reduction="none"``
      followed by ``.mean()``.
    - If every target is ignored (or the targets' weights sum to 0), ``"mean"`` is
      :math:`0/0 = \mathrm{NaN}`; ``"sum"`` is 0 and ``"none"`` is all zeros.

    ``input`` is not checked to be log-probabilities (PyTorch does not either): passing raw
    logits gives a number that is not a loss; use :func:`cross_entropy` for logits.

    Args:
        input: log-probabilities of shape ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``:
            the classes on dim 1 (dim 0 for ``(C)``).
        target: class indices of shape ``()``, ``(N)`` or ``(N, d1, ..., dk)``, an integer
            dtype (PyTorch asks for ``torch.long``), each in ``0..C-1`` or ``ignore_index``.
        weight: ``None`` or ``C`` finite non-negative class weights :math:`w_c`.
        ignore_index: the target value of samples to skip (e.g. padding); any int, a class
            index included.
        reduction: ``"none"`` (the shape of ``target``), ``"mean"`` or ``"sum"``.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` or ``weight`` not floating point, ``target`` not an integer
            tensor, ``ignore_index`` not an int.
        ValueError: a 0-dim, empty or NaN ``input``; ``target`` of the wrong shape or with a
            class out of range; ``weight`` of the wrong length, negative or not finite; an
            unknown ``reduction``.

    Example:
        >>> logp = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
        >>> nll_loss(logp, torch.tensor([0, 1]), reduction="none")  # -log 0.5, -log 0.8
        tensor([0.6931, 0.2231])
        >>> nll_loss(logp, torch.tensor([0, -100]))  # the second sample is ignored
        tensor(0.6931)

    References:
        PyTorch ``torch.nn.NLLLoss`` documentation.
    """
    x = as_float_tensor(input, "input")
    check_no_nan(x, "input")
    check_reduction(reduction)
    ignore_index = _check_int(ignore_index, "ignore_index")
    w = _check_class_weight(weight, x.size(_class_dim(x)), x)
    index, keep = _class_target_for(target, x, ignore_index)
    return _nll(x, index, keep, w, reduction)


def _nll(
    log_p: Tensor, index: Tensor, keep: Tensor, w: Tensor | None, reduction: str
) -> Tensor:
    """:func:`nll_loss` on checked arguments."""
    dim = _class_dim(log_p)
    picked = log_p.gather(dim, index.unsqueeze(dim)).squeeze(dim)  # x_{n, y_n}
    w_n = keep.to(log_p.dtype) if w is None else torch.where(keep, w[index], 0.0)
    # where, not w_n * ...: an ignored sample adds an exact 0 (never 0 * -inf) and no gradient
    loss = torch.where(keep, -w_n * picked, 0.0)
    return _reduce(loss, reduction, total=w_n.sum())


def cross_entropy(
    input,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy from logits, as ``torch.nn.functional.cross_entropy``.

    ``log_softmax`` over the class dimension, then :func:`nll_loss`. With class indices
    :math:`y_n`, log-probabilities :math:`\log p_n = \operatorname{log\_softmax}(x_n)` and
    smoothing :math:`\varepsilon` (``label_smoothing``) over :math:`C` classes,

    .. math::
        \ell_n = (1 - \varepsilon)\,\big(-w_{y_n} \log p_{n, y_n}\big)
        + \frac{\varepsilon}{C}\,\Big(-\sum_{c} w_c \log p_{n, c}\Big)

    that is, the cross-entropy with the target :math:`(1 - \varepsilon)\,\text{one-hot}(y_n)
    + \varepsilon / C`. ``"mean"`` divides **both** terms by :math:`\sum_n w_{y_n}` over the
    samples that are not ignored. Ignored samples contribute 0 to both terms. Note that the
    smoothing term weighs class :math:`c` by :math:`w_c`, yet is normalised by the weights of
    the *targets*: as PyTorch does.

    With class **probabilities** (``target`` of ``input``'s shape, floating point),

    .. math::
        \ell_n = -\sum_c w_c\, t_{n, c} \log p_{n, c}, \qquad
        t = (1 - \varepsilon)\, \text{target} + \varepsilon / C

    and ``"mean"`` divides by the number of samples :math:`N d_1 \cdots d_k`, **not** by any
    weights. Probability targets reject ``ignore_index >= 0`` (there is no index to compare);
    the default -100 is accepted and means nothing for them.

    Everything else as :func:`nll_loss`: the weighted mean, ``NaN`` for ``"mean"`` when every
    target is ignored. Logits may be ``-inf`` (a masked class); NaN is an error.

    Args:
        input: logits of shape ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``: the classes on
            dim 1 (dim 0 for ``(C)``). Channels-last logits need ``input.movedim(-1, 1)``.
        target: class indices (shape ``()``, ``(N)`` or ``(N, d1, ..., dk)``, integer dtype,
            each in ``0..C-1`` or ``ignore_index``) or class probabilities (``input``'s shape,
            floating point, values in [0, 1]; converted to ``input``'s dtype).
        weight: ``None`` or ``C`` finite non-negative class weights :math:`w_c`.
        ignore_index: the class-index target value of samples to skip.
        reduction: ``"none"`` (one loss per sample), ``"mean"`` or ``"sum"``.
        label_smoothing: :math:`\varepsilon \in [0, 1]`.

    Returns:
        The loss, reduced as asked, in ``input``'s dtype.

    Raises:
        TypeError: ``input`` or ``weight`` not floating point; class indices not an integer
            dtype, or an integer ``target`` of ``input``'s shape (probabilities must be
            floating point); ``ignore_index`` not an int; ``label_smoothing`` not a number.
        ValueError: a 0-dim, empty or NaN ``input``; ``target`` of the wrong shape, with a
            class out of range, or probabilities outside [0, 1]; ``weight`` of the wrong length,
            negative or not finite; ``label_smoothing`` outside [0, 1] (PyTorch quietly ignores
            a negative one); ``ignore_index >= 0`` with probabilities; an unknown ``reduction``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, 0.0]])  # p = e^2 / (e^2 + 2) = 0.787
        >>> cross_entropy(logits, torch.tensor([0]))  # -log 0.787
        tensor(0.2395)
        >>> cross_entropy(logits, torch.tensor([[1.0, 0.0, 0.0]]))  # the same, as probabilities
        tensor(0.2395)

    References:
        PyTorch ``torch.nn.CrossEntropyLoss`` documentation; Szegedy et al. (2016), section 7
        (label smoothing).
    """
    x = as_float_tensor(input, "input")
    check_no_nan(x, "input")
    check_reduction(reduction)
    ignore_index = _check_int(ignore_index, "ignore_index")
    eps = _check_label_smoothing(label_smoothing)
    dim = _class_dim(x)
    num_classes = x.size(dim)
    w = _check_class_weight(weight, num_classes, x)
    if isinstance(target, Tensor) and target.shape == x.shape:
        return _cross_entropy_probabilities(
            x, target, w, ignore_index, reduction, eps
        )
    index, keep = _class_target_for(target, x, ignore_index)
    log_p = log_softmax(x, dim=dim)
    nll = _nll(log_p, index, keep, w, reduction)
    if eps == 0.0:
        return nll
    w_c = log_p.new_ones(()) if w is None else _along_class_dim(w, log_p)
    smooth = torch.where(keep, -(w_c * log_p).sum(dim), 0.0)
    total = keep.sum() if w is None else torch.where(keep, w[index], 0.0).sum()
    return (1 - eps) * nll + _reduce(smooth, reduction, total) * (eps / num_classes)


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
    """:func:`cross_entropy` with class-probability targets, on checked logits and weights."""
    if not target.is_floating_point():
        raise TypeError(
            f"target has input's shape {tuple(x.shape)}, so it holds class probabilities, which must "
            f"be floating point; got {target.dtype} (class indices have shape {tuple(_index_shape(x))})"
        )
    if ignore_index >= 0:
        raise ValueError(
            f"ignore_index={ignore_index} cannot be used with class-probability targets "
            f"(PyTorch rejects ignore_index >= 0 there); a sample whose target row is all zeros adds "
            f"nothing to the sum (but still counts in the mean)"
        )
    _check_probabilities(target, "target")
    dim = _class_dim(x)
    num_classes = x.size(dim)
    t = target.to(x.dtype)
    if eps > 0.0:
        t = t * (1 - eps) + eps / num_classes
    log_p = log_softmax(x, dim=dim)
    if w is not None:
        t = t * _along_class_dim(w, x)
    loss = -(log_p * t).sum(dim)
    return _reduce(
        loss, reduction
    )  # the mean is over samples, whatever the weights


# --- binary cross-entropy (chapter 9) -----------------------------------------------------------
