r"""Knowledge distillation: the soft-target loss of Hinton et al. (chapter 14)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossnotes._checks import as_float_tensor, check_finite, check_reduction
from lossnotes.functional._common import _check_real, _class_dim
from lossnotes.functional.divergence import KL_REDUCTIONS, reduce_kl
from lossnotes.stability import log_softmax


def distillation_loss(
    student_logits,
    teacher_logits,
    temperature: float,
    *,
    reduction: str = "batchmean",
) -> Tensor:
    r"""Soft-target distillation loss: :math:`T^2` times the KL divergence at T.

    With student logits :math:`z`, teacher logits :math:`v` and temperature
    :math:`T`, the softened distributions are
    :math:`q = \operatorname{softmax}(z / T)` and
    :math:`p = \operatorname{softmax}(v / T)`, and the loss of one sample is

    .. math::
        \ell = T^2\, \mathrm{KL}(p \,\|\, q)
        = T^2 \sum_c p_c \,(\log p_c - \log q_c)

    the forward KL divergence from the teacher to the student, as
    ``T**2 * F.kl_div(F.log_softmax(z / T, dim=1), F.softmax(v / T, dim=1),
    reduction="batchmean")`` computes it. The gradient with respect to the
    student's logits is :math:`T\,(q_c - p_c)`. Without the factor :math:`T^2` it
    would be :math:`(q_c - p_c) / T`, and for large :math:`T` (logits of zero mean)
    :math:`q_c - p_c \approx (z_c - v_c) / (C T)`, so the soft term's gradient
    would shrink as :math:`1/T^2`. Multiplying by :math:`T^2` keeps its size
    independent of :math:`T`, so the weight given to it beside the hard-label
    cross-entropy need not change with the temperature (Hinton et al. 2015,
    section 2).

    The teacher's log-probabilities enter the KL divergence as a log-target, so a
    teacher probability that underflows to 0 contributes exactly 0, never
    :math:`0 \cdot \log 0`. The teacher is not detached: compute its logits under
    ``torch.no_grad()`` (or pass ``teacher_logits.detach()``) as usual.

    Args:
        student_logits: logits of shape ``(C)``, ``(N, C)`` or
            ``(N, C, d1, ..., dk)`` (classes on dim 1, as for ``cross_entropy``),
            finite.
        teacher_logits: logits of the same shape, finite.
        temperature: :math:`T > 0`, finite.
        reduction: ``"batchmean"`` (default: the sum divided by ``N``, the mean KL
            per sample; an input of shape ``(C)`` is one sample and is not divided,
            where ``F.kl_div`` would divide by ``C``), ``"sum"``, ``"none"`` (one
            term per element, the input's shape) or ``"mean"`` (the sum divided by
            every element, ``N`` times ``C`` and more; warns as
            ``torch.nn.functional.kl_div`` does).

    Returns:
        The loss, reduced as asked, in the student's dtype.

    Raises:
        TypeError: logits not floating point, or ``temperature`` not a real number.
        ValueError: a 0-dim input, shapes that differ, non-finite logits,
            ``temperature`` not positive and finite, or an unknown ``reduction``.

    Example:
        >>> z = torch.tensor([[0.0, 0.0]])  # the student: q = (1/2, 1/2)
        >>> v = torch.tensor([[0.0, 2.0]]) * torch.tensor(3.0).log()
        >>> distillation_loss(z, v, temperature=2.0)  # p = (1/4, 3/4) at T = 2
        tensor(0.5232)

    (That is :math:`4\,(\tfrac{3}{4}\log 3 - \log 2)`.)

    References:
        Hinton, Vinyals & Dean (2015), *Distilling the knowledge in a neural
        network*, section 2 and its equation for :math:`\partial C / \partial z_i`;
        PyTorch ``torch.nn.KLDivLoss``.
    """
    z = as_float_tensor(student_logits, "student_logits")
    v = as_float_tensor(teacher_logits, "teacher_logits")
    if z.dim() == 0:
        raise ValueError(
            "student_logits must have shape (C), (N, C) or (N, C, d1, ..., dk); "
            "got a 0-dim tensor"
        )
    if v.shape != z.shape:
        raise ValueError(
            f"teacher_logits has shape {tuple(v.shape)} but student_logits has "
            f"{tuple(z.shape)}; they must be the same"
        )
    check_finite(z, "student_logits")
    check_finite(v, "teacher_logits")
    t = _check_real(temperature, "temperature", 0.0)
    if t == 0.0:
        raise ValueError("temperature must be > 0; got 0")
    check_reduction(reduction, KL_REDUCTIONS)
    dim = _class_dim(z)
    log_q = log_softmax(z / t, dim=dim)
    log_p = log_softmax(v.to(z.dtype) / t, dim=dim)
    pointwise = torch.exp(log_p) * (log_p - log_q) * t**2
    # a 1-D input is one sample here, where kl_div would divide by its C classes
    return reduce_kl(pointwise, reduction, z.size(0) if z.dim() > 1 else 1)
