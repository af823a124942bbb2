r"""Connectionist temporal classification (CTC), from first principles (chapter 13).

An input of :math:`T` frames, a label sequence :math:`y` of :math:`L` tokens and no
alignment between them. CTC adds a **blank** symbol, lets every frame emit one
symbol (a label or the blank), and maps such a frame-level **alignment** :math:`\pi`
to a label sequence with the **collapse map** :math:`\mathcal{B}`: merge repeated
symbols, then drop the blanks. The loss is the negative log-likelihood of the sum
over every alignment that collapses to :math:`y`,

.. math::
    \ell = -\log p(y \mid x), \qquad
    p(y \mid x) = \sum_{\pi \in \mathcal{B}^{-1}(y)} \prod_{t=1}^{T} p_t(\pi_t),

computed by the forward-backward recursions over the **extended labels**
:math:`y' = (\varnothing, y_1, \varnothing, y_2, \ldots, y_L, \varnothing)` of
length :math:`2L + 1` (Graves et al., 2006).

What is here:

- :func:`ctc_collapse`: the collapse map :math:`\mathcal{B}`.
- :func:`ctc_forward_backward`: the log forward and backward variables
  :math:`\log\alpha`, :math:`\log\beta` (the lattice the chapter draws) and the
  log-likelihood.
- :func:`ctc_loss`: ``torch.nn.functional.ctc_loss``'s semantics, with an explicit
  backward pass in an ``autograd.Function`` (no autograd through :math:`T` steps):
  the :math:`\beta` recursion runs with :math:`\alpha` in one loop over time, and
  the gradient is minus the occupancy, scattered into the classes.
- :func:`ctc_best_path` (the Viterbi alignment) and :func:`ctc_greedy_decode`.

The recursions loop over time only, vectorised over the batch and the extended-label
positions, in log space, accumulated in float64 whatever the input's dtype. Memory
is :math:`O(N T (2L + 1))` beside the :math:`T \times N \times C` gradient.

Reference: Graves, Fernández, Gomez & Schmidhuber (2006), *Connectionist temporal
classification: labelling unsegmented sequence data with recurrent neural
networks*, ICML.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import NamedTuple

import torch
from torch import Tensor

from lossnotes._checks import (
    as_float_tensor,
    check_index_tensor,
    check_no_nan,
    check_reduction,
)

_NEG_INF = -math.inf


# === the collapse map =============================================================


def ctc_collapse(path, blank: int = 0) -> list[int]:
    r"""The collapse map :math:`\mathcal{B}`: merge repeats, then drop the blanks.

    .. math::
        \begin{aligned}
        \mathcal{B}(\pi) = \pi &\text{ with each run of equal symbols replaced}\\
        &\text{ by one symbol, and every blank removed}
        \end{aligned}

    The order matters: ``a a _ a`` collapses to ``a a`` (the blank separates two
    runs of ``a``), while ``a a a`` collapses to ``a``. That is why a repeated label
    needs a blank between its copies in every alignment of it.

    Args:
        path: one alignment, a 1-D integer tensor or a sequence of ints.
        blank: the index of the blank symbol.

    Returns:
        The label sequence, a list of ints.

    Raises:
        TypeError: ``path`` is not a 1-D integer tensor or a sequence of ints;
            ``blank`` is not an int.

    Example:
        >>> ctc_collapse([1, 1, 0, 1, 2, 2, 0])  # a a _ a b b _  ->  a a b
        [1, 1, 2]

    References:
        Graves et al. (2006), section 3.1.
    """
    blank = _check_int(blank, "blank")
    if isinstance(path, Tensor):
        if path.dim() != 1 or path.is_floating_point() or path.is_complex():
            raise TypeError(
                f"path must be a 1-D integer tensor; "
                f"got dim {path.dim()}, {path.dtype}"
            )
        symbols = path.tolist()
    else:
        try:
            symbols = [_check_int(s, "path element") for s in path]
        except TypeError as exc:
            raise TypeError(
                "path must be a 1-D integer tensor or a sequence of ints; "
                f"got {path!r}"
            ) from exc
    out, previous = [], None
    for s in symbols:
        if s != previous and s != blank:
            out.append(s)
        previous = s
    return out


# === input checks =================================================================


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    return int(value)


def _as_lengths(lengths, name: str, batch: int, batched: bool) -> Tensor:
    """``lengths`` as a ``(N,)`` long tensor of non-negative values, or raise."""
    if isinstance(lengths, Tensor):
        if (
            lengths.is_floating_point()
            or lengths.is_complex()
            or lengths.dtype == torch.bool
        ):
            raise TypeError(f"{name} must hold integers; got dtype {lengths.dtype}")
        t = lengths.detach().to(device="cpu", dtype=torch.long)
    elif isinstance(lengths, (list, tuple)) or (
        isinstance(lengths, Integral) and not isinstance(lengths, bool)
    ):
        if isinstance(lengths, Integral):
            t = torch.tensor(int(lengths))
        else:
            t = torch.tensor(
                [_check_int(v, f"an element of {name}") for v in lengths]
            )
            t = t.long()
    else:
        raise TypeError(
            f"{name} must be an integer tensor, a list of ints or an int; "
            f"got {type(lengths).__name__}"
        )
    expected = (batch,) if batched else (1,)
    if t.numel() != expected[0] or (batched and t.dim() != 1) or t.dim() > 1:
        shape = f"({batch},)" if batched else "() or (1,)"
        raise ValueError(
            f"{name} must have shape {shape}, one length per sample; "
            f"got {tuple(t.shape)}"
        )
    t = t.reshape(expected)
    if (t < 0).any():
        raise ValueError(f"{name} must be >= 0; got {t.min().item()}")
    return t


class _Checked(NamedTuple):
    log_probs: Tensor  # (T, N, C)
    targets: Tensor  # (N, L_max) long, padding = blank
    input_lengths: Tensor  # (N,) long, on the CPU
    target_lengths: Tensor  # (N,) long, on the CPU
    blank: int
    batched: bool


def _check_inputs(
    log_probs, targets, input_lengths, target_lengths, blank, *, need_targets=True
) -> _Checked:
    """Check the CTC functions' arguments; pad the targets to ``(N, L_max)``."""
    lp = as_float_tensor(log_probs, "log_probs")
    if lp.dim() not in (2, 3):
        raise ValueError(
            f"log_probs must have shape (T, N, C), or (T, C) for one sample; "
            f"got {tuple(lp.shape)}"
        )
    batched = lp.dim() == 3
    if not batched:
        lp = lp.unsqueeze(1)
    T, N, C = lp.shape
    blank = _check_int(blank, "blank")
    if not 0 <= blank < C:
        raise ValueError(
            f"blank={blank} is not a class of log_probs, which has C={C} classes "
            f"(valid: 0..{C - 1})"
        )
    il = _as_lengths(input_lengths, "input_lengths", N, batched)
    if (il > T).any():
        raise ValueError(
            f"input_lengths must be <= T={T}, the frames in log_probs; "
            f"got {il.max().item()}"
        )
    if not need_targets:
        return _Checked(lp, None, il, None, blank, batched)
    tl = _as_lengths(target_lengths, "target_lengths", N, batched)
    tg = _padded_targets(targets, tl, N, batched)
    L = tg.shape[1]
    inside = torch.arange(L) < tl.unsqueeze(1)
    labels = tg.cpu()[inside]
    bad = (labels < 0) | (labels >= C)
    if bad.any():
        raise ValueError(
            f"targets hold class {labels[bad][0].item()}, "
            f"but log_probs has only {C} "
            f"classes (valid: 0..{C - 1})"
        )
    if (labels == blank).any():
        raise ValueError(
            f"targets contain the blank ({blank}) within target_lengths; a label "
            f"sequence never contains the blank"
        )
    tg = torch.where(inside.to(tg.device), tg, blank)
    return _Checked(lp, tg.to(lp.device), il, tl, blank, batched)


def _padded_targets(targets, tl: Tensor, N: int, batched: bool) -> Tensor:
    """The targets as ``(N, max(target_lengths))``, from either layout."""
    check_index_tensor(targets, "targets")
    tg = targets.long()
    L = int(tl.max()) if N else 0
    if batched and tg.dim() == 2:  # padded (N, S)
        if tg.shape[0] != N or tg.shape[1] < L:
            raise ValueError(
                f"padded targets must have shape (N, S) = ({N}, S) with "
                f"S >= max(target_lengths) = {L}; got {tuple(tg.shape)}"
            )
        return tg[:, :L]
    if tg.dim() != 1:
        expected = "(N, S) or (sum(target_lengths),)" if batched else "(S,)"
        raise ValueError(
            f"targets must have shape {expected}; got {tuple(tg.shape)}"
        )
    if not batched:  # one sample: (S,)
        if tg.numel() < L:
            raise ValueError(
                f"targets has {tg.numel()} labels but target_lengths is {L}"
            )
        return tg[:L].unsqueeze(0)
    total = int(tl.sum())
    if tg.numel() != total:
        raise ValueError(
            f"concatenated targets must have sum(target_lengths) = {total} labels; "
            f"got {tg.numel()}"
        )
    padded = tg.new_zeros((N, L))
    padded[torch.arange(L) < tl.unsqueeze(1)] = tg.cpu().to(tg.device)
    return padded


# === the lattice ==================================================================

#: The dtype the recursions accumulate in, whatever the input's dtype: over a long
#: utterance the log variables reach :math:`-10^4`, where a float32 ulp is
#: :math:`10^{-3}`, and the occupancy :math:`e^{\log\alpha + \log\beta - \ldots}`
#: would inherit that error.
WORK_DTYPE = torch.float64


class _Extended(NamedTuple):
    labels: Tensor  # (N, S) extended labels y', S = 2 L_max + 1, padding = blank
    log_probs: Tensor  # (T, N, S) log p_t(y'_s) in WORK_DTYPE, -inf past 2 L_n + 1
    skip: Tensor  # (N, S) 0 where s - 2 -> s is allowed, -inf elsewhere


def _skip(labels: Tensor) -> Tensor:
    """0 where the blank before a label may be skipped (a new label), else -inf."""
    allowed = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    allowed[:, 3::2] = labels[:, 3::2] != labels[:, 1:-2:2]
    skip = torch.zeros(labels.shape, dtype=WORK_DTYPE, device=labels.device)
    return skip.masked_fill_(~allowed, _NEG_INF)


def _extend(c: _Checked) -> _Extended:
    """The extended labels and the log-probabilities of their symbols."""
    N, L = c.targets.shape
    S = 2 * L + 1
    T = c.log_probs.shape[0]
    device = c.log_probs.device
    labels = torch.full((N, S), c.blank, dtype=torch.long, device=device)
    labels[:, 1::2] = c.targets
    lp = c.log_probs.gather(2, labels.expand(T, N, S))
    # the loss reads only these values: checking them, not all T x N x C, is enough
    top = lp.max()
    if torch.isnan(top) or top == math.inf:
        raise ValueError(
            "log_probs holds NaN or +inf at the blank or a target label; "
            "log-probabilities are <= 0 (use log_softmax)"
        )
    lp = lp.to(WORK_DTYPE)
    ends = (2 * c.target_lengths + 1).to(device)
    lp.masked_fill_(torch.arange(S, device=device) >= ends[:, None], _NEG_INF)
    return _Extended(labels, lp, _skip(labels))


def _reverse(ext: _Extended, c: _Checked) -> tuple[_Extended, Tensor, Tensor]:
    r"""The same problem with time and labels reversed, sample by sample.

    Returns the reversed problem and the two index maps, ``(T, N)`` frames
    :math:`T_n - 1 - t` and ``(N, S)`` positions :math:`2 L_n - s` (negative past
    the sample's end). The map is its own inverse: :math:`\beta_t(s)` of the problem
    is :math:`\alpha_{T_n - 1 - t}(2 L_n - s)` of the reversed one.
    """
    T, N, S = ext.log_probs.shape
    device = ext.log_probs.device
    frame = c.input_lengths.to(device) - 1 - torch.arange(T, device=device)[:, None]
    position = 2 * c.target_lengths.to(device)[:, None] - torch.arange(
        S, device=device
    )
    labels = ext.labels.gather(1, position.clamp(min=0)).masked_fill_(
        position < 0, c.blank
    )
    lp = _take(ext.log_probs, frame, position)
    return _Extended(labels, lp, _skip(labels)), frame, position


def _take(x: Tensor, frame: Tensor, position: Tensor) -> Tensor:
    """``x[frame[t, n], n, position[n, s]]``, ``-inf`` where an index is < 0."""
    T, N, S = x.shape
    out = x.gather(0, frame.clamp(min=0)[:, :, None].expand(T, N, S))
    out = out.gather(2, position.clamp(min=0).expand(T, N, S))
    out.masked_fill_((frame < 0)[:, :, None], _NEG_INF)
    return out.masked_fill_((position < 0).expand(T, N, S), _NEG_INF)


def _log_alpha(ext: _Extended) -> Tensor:
    r"""Log forward variables, ``(T, N, S + 2)``, two ``-inf`` columns in front.

    The columns stand for the :math:`s-1` and :math:`s-2` of the first positions, so
    that every step is the same three views of the previous frame:

    .. math::
        \log\alpha_t(s) = \log p_t(y'_s)
        + \operatorname{LSE}\big(\log\alpha_{t-1}(s),\
        \log\alpha_{t-1}(s-1),\ \log\alpha_{t-1}(s-2) + \text{skip}_s\big).
    """
    lp, skip = ext.log_probs, ext.skip
    T, N, S = lp.shape
    alpha = lp.new_full((T, N, S + 2), _NEG_INF)
    alpha[0, :, 2:4] = lp[0, :, :2]  # start in the first blank or the first label
    # the views alpha_t(s), alpha_t(s - 1), alpha_t(s - 2) of every frame, made once
    stay, advance, skip_from = (
        alpha[:, :, k:].narrow(2, 0, S).unbind(0) for k in (2, 1, 0)
    )
    emit = lp.unbind(0)
    skipped, step = lp.new_empty((N, S)), lp.new_empty((N, S))
    for t in range(1, T):
        # torch.logaddexp is the two-term log-sum-exp, max + log1p(exp(-|a - b|)),
        # -inf for two -inf. lossnotes.stability.logsumexp computes the same stable
        # formula but checks and converts its input on every call, about 10x slower
        # per step here: over T steps that would cost more than all of F.ctc_loss
        # (chapter 13 measures it).
        torch.add(skip_from[t - 1], skip, out=skipped)
        torch.logaddexp(advance[t - 1], skipped, out=step)
        torch.logaddexp(step, stay[t - 1], out=step)
        torch.add(step, emit[t], out=stay[t])
    return alpha


def _log_likelihood(alpha: Tensor, c: _Checked) -> Tensor:
    """:math:`\\log p(y \\mid x)` per sample, from the forward variables."""
    N = alpha.shape[1]
    device = alpha.device
    tn = c.input_lengths.to(device)
    n = torch.arange(N, device=device)
    last = alpha[(tn - 1).clamp(min=0), n]  # the frame T_n - 1
    end = 2 * c.target_lengths.to(device)[:, None] + 2  # column of position 2 L_n
    ll = torch.logaddexp(last.gather(1, end), last.gather(1, end - 1)).squeeze(1)
    # no frame: only the empty label sequence is possible, with probability 1
    empty = torch.where(c.target_lengths.to(device) == 0, 0.0, _NEG_INF)
    return torch.where(tn == 0, empty.to(ll.dtype), ll)


class _Lattice(NamedTuple):
    ext: _Extended
    log_alpha: Tensor  # (T, N, S + 2), two -inf columns in front
    log_beta: Tensor | None  # (T, N, S), the emission at t included
    log_likelihood: Tensor  # (N,)


def _lattice(c: _Checked, backward: bool) -> _Lattice:
    """α, and β when ``backward``: one loop over time for both problems."""
    ext = _extend(c)
    if not backward:
        alpha = _log_alpha(ext)
        return _Lattice(ext, alpha, None, _log_likelihood(alpha, c))
    N = ext.labels.shape[0]
    rev, frame, position = _reverse(ext, c)
    both = _log_alpha(
        _Extended(
            None,
            torch.cat([ext.log_probs, rev.log_probs], dim=1),
            torch.cat([ext.skip, rev.skip]),
        )
    )
    alpha = both[:, :N]
    beta = _take(both[:, N:, 2:], frame, position)
    return _Lattice(ext, alpha, beta, _log_likelihood(alpha, c))


class CTCLattice(NamedTuple):
    """The result of :func:`ctc_forward_backward`, in float64.

    Attributes:
        log_alpha: ``(T, N, S)`` log forward variables :math:`\\log\\alpha_t(s)`,
            with :math:`S = 2 \\max_n L_n + 1`; ``-inf`` past a sample's
            :math:`2 L_n + 1` positions. Frames :math:`t \\ge T_n` hold values that
            mean nothing.
        log_beta: ``(T, N, S)`` log backward variables :math:`\\log\\beta_t(s)` (the
            emission at :math:`t` included, as in Graves et al.); ``-inf`` for
            :math:`t \\ge T_n`.
        extended: ``(N, S)`` the extended labels :math:`y'` (padded with the blank).
        log_likelihood: ``(N,)`` :math:`\\log p(y \\mid x)`; ``-inf`` if no
            alignment fits.
    """

    log_alpha: Tensor
    log_beta: Tensor
    extended: Tensor
    log_likelihood: Tensor


def ctc_forward_backward(
    log_probs, targets, input_lengths, target_lengths, blank: int = 0
) -> CTCLattice:
    r"""The CTC lattice: log forward and backward variables, and the log-likelihood.

    With the extended labels :math:`y'` (a blank before, between and after the
    labels),

    .. math::
        \alpha_t(s) = p_t(y'_s)\big(\alpha_{t-1}(s) + \alpha_{t-1}(s-1)
        + [y'_s \ne \varnothing,\ y'_s \ne y'_{s-2}]\ \alpha_{t-1}(s-2)\big)

    from :math:`\alpha_0(0) = p_0(\varnothing)`, :math:`\alpha_0(1) = p_0(y_1)`, and
    :math:`\beta_t(s)` the same recursion run backwards from
    :math:`\beta_{T-1}(2L) = p_{T-1}(\varnothing)`,
    :math:`\beta_{T-1}(2L-1) = p_{T-1}(y_L)`, so that at every frame

    .. math::
        p(y \mid x) = \sum_s \frac{\alpha_t(s)\,\beta_t(s)}{p_t(y'_s)} .

    :math:`\beta` is computed as :math:`\alpha` of the reversed problem (time and
    labels reversed): :math:`\beta_t(s) = \alpha^{\text{rev}}_{T_n-1-t}(2L_n - s)`.

    Args:
        log_probs, targets, input_lengths, target_lengths, blank: as
            :func:`ctc_loss`.

    Returns:
        A :class:`CTCLattice` (``log_alpha``, ``log_beta``, ``extended``,
        ``log_likelihood``), float64, without gradients. For a ``(T, C)`` input the
        batch dimension is kept, of size 1.

    Raises:
        As :func:`ctc_loss`.

    Example:
        >>> lp = torch.full((2, 1, 2), 0.5).log()  # 2 frames, p(_) = p(a) = 1/2
        >>> lattice = ctc_forward_backward(lp, torch.tensor([[1]]), [2], [1])
        >>> lattice.log_likelihood.exp()  # "aa", "_a", "a_": 3/4
        tensor([0.7500], dtype=torch.float64)

    References:
        Graves et al. (2006), section 4.1.
    """
    c = _check_inputs(log_probs, targets, input_lengths, target_lengths, blank)
    with torch.no_grad():
        lat = _lattice(c, backward=True)
    return CTCLattice(
        lat.log_alpha[:, :, 2:], lat.log_beta, lat.ext.labels, lat.log_likelihood
    )


# === the loss =====================================================================


class _CTCNegLogLikelihood(torch.autograd.Function):
    """Per-sample :math:`-\\log p(y \\mid x)`; its gradient is minus the occupancy.

    When ``log_probs`` needs a gradient, the forward pass runs α and β in one loop
    over time (β is α of the reversed problem, batched with it) and keeps both,
    :math:`O(T N S)`; the backward pass forms the occupancy and scatters it into the
    classes.
    """

    @staticmethod
    def forward(ctx, log_probs: Tensor, c: _Checked, zero_infinity: bool) -> Tensor:
        lat = _lattice(c, backward=ctx.needs_input_grad[0])
        nll = -lat.log_likelihood
        infeasible = torch.isinf(nll)
        if zero_infinity:
            nll = nll.masked_fill(infeasible, 0.0)
        ctx.lattice, ctx.zero_infinity = lat, zero_infinity
        ctx.shape, ctx.dtype = log_probs.shape, log_probs.dtype
        ctx.input_lengths, ctx.infeasible = c.input_lengths, infeasible
        return nll.to(log_probs.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        lat, infeasible = ctx.lattice, ctx.infeasible
        T, N, C = ctx.shape
        lp = lat.ext.log_probs
        # gamma_t(s) = alpha_t(s) beta_t(s) / (p_t(y'_s) p(y|x)), in one buffer
        log_p = torch.where(infeasible, 0.0, lat.log_likelihood)  # then gamma = 0
        occupancy = torch.add(lat.log_alpha[:, :, 2:], lat.log_beta)
        occupancy.sub_(lp).sub_(log_p[:, None]).exp_()
        occupancy.masked_fill_(lp == _NEG_INF, 0.0)  # -inf - (-inf): p_t(y'_s) = 0
        scale = torch.where(infeasible, 0.0, -grad.to(WORK_DTYPE))
        occupancy.mul_(scale[:, None])
        # d nll / d log p_t(k) = -(the sum of gamma_t(s) over the s with y'_s = k)
        out = torch.zeros((T, N, C), dtype=ctx.dtype, device=lp.device)
        labels = lat.ext.labels.expand(T, N, -1)
        out.scatter_add_(2, labels, occupancy.to(ctx.dtype))
        if not ctx.zero_infinity and infeasible.any():
            # as in PyTorch: an infinite loss has a NaN gradient on its frames
            lengths = ctx.input_lengths.to(lp.device)
            frames = torch.arange(T, device=lp.device)[:, None] < lengths
            out.masked_fill_((frames & infeasible)[:, :, None], math.nan)
        return out, None, None


def ctc_loss(
    log_probs,
    targets,
    input_lengths,
    target_lengths,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> Tensor:
    r"""CTC loss, as ``torch.nn.functional.ctc_loss``, with the true gradient.

    For sample :math:`n` with log-probabilities :math:`\log p_t(k)` over :math:`T_n`
    frames and labels :math:`y` of length :math:`L_n`,

    .. math::
        \ell_n = -\log \sum_{\pi \in \mathcal{B}^{-1}(y)}
        \prod_{t=0}^{T_n - 1} p_t(\pi_t),
        \qquad
        \text{mean} = \frac{1}{N}\sum_n \frac{\ell_n}{\max(L_n, 1)}

    computed by the forward recursion of :func:`ctc_forward_backward` in log space.
    ``"mean"`` divides each sample's loss by its **target length**, then averages
    over the batch, as PyTorch does; ``"sum"`` adds the :math:`\ell_n`. A sample
    with no alignment (too few frames for its labels and the blanks between repeats,
    :math:`T_n < L_n + \#\text{repeats}`) has :math:`\ell_n = \infty`, and its
    gradient is NaN, unless ``zero_infinity=True`` makes both 0.

    **The gradient.** The backward pass runs the :math:`\beta` recursion and returns

    .. math::
        \frac{\partial \ell_n}{\partial \log p_t(k)} = -\gamma_t(k), \qquad
        \gamma_t(k) = \sum_{s:\, y'_s = k}
        \frac{\alpha_t(s)\,\beta_t(s)}{p_t(k)\, p(y \mid x)}

    the derivative with respect to ``log_probs``, checked by finite differences.
    PyTorch's backward returns :math:`p_t(k) - \gamma_t(k)` instead, the gradient
    with respect to the **logits**; both give :math:`p_t(k) - \gamma_t(k)` for the
    logits when ``log_probs = log_softmax(logits)``, the only way ``ctc_loss``
    should be used.

    Args:
        log_probs: ``(T, N, C)`` log-probabilities (``log_softmax`` over C), or
            ``(T, C)`` for one sample; floating point, no NaN or ``+inf`` (``-inf``
            allowed).
        targets: class indices, an integer tensor, padded ``(N, S)`` with
            :math:`S \ge \max_n L_n` (values past :math:`L_n` ignored), concatenated
            ``(sum(target_lengths),)``, or ``(S,)`` for one sample. Never the blank.
        input_lengths: :math:`T_n \le T` per sample: ``(N,)`` integer tensor, list
            or tuple (an int or ``()`` tensor for one sample).
        target_lengths: :math:`L_n` per sample, likewise.
        blank: the index of the blank symbol, in ``0..C-1``.
        reduction: ``"none"`` (the ``(N,)`` losses), ``"mean"`` or ``"sum"``.
        zero_infinity: replace infinite losses (and their NaN gradients) by 0.

    Returns:
        The loss, reduced as asked, in ``log_probs``' dtype.

    Raises:
        TypeError: ``log_probs`` not floating point; ``targets`` or the lengths not
            integers; ``blank`` not an int; ``zero_infinity`` not a bool.
        ValueError: ``log_probs`` not 2-D or 3-D, empty, with NaN or ``+inf``;
            ``blank`` out of range; lengths of the wrong shape, negative, or longer
            than the tensors; targets of the wrong shape, out of range or containing
            the blank; an unknown ``reduction``.

    Example:
        >>> lp = torch.full((2, 1, 2), 0.5).log()  # 2 frames, p(_) = p(a) = 1/2
        >>> ctc_loss(lp, torch.tensor([[1]]), [2], [1], reduction="none")  # -ln 3/4
        tensor([0.2877])
        >>> aa = torch.tensor([[1, 1]])  # "aa" needs 3 frames: a _ a
        >>> ctc_loss(lp, aa, [2], [2], reduction="none")
        tensor([inf])

    References:
        Graves et al. (2006), sections 3-4; PyTorch ``torch.nn.CTCLoss``
        documentation.
    """
    check_reduction(reduction)
    if not isinstance(zero_infinity, bool):
        raise TypeError(
            f"zero_infinity must be True or False; got {zero_infinity!r}"
        )
    c = _check_inputs(log_probs, targets, input_lengths, target_lengths, blank)
    # c.log_probs is (T, N, C), a view of a (T, C) input: autograd squeezes its
    # gradient back
    nll = _CTCNegLogLikelihood.apply(c.log_probs, c, zero_infinity)
    if reduction == "sum":
        return nll.sum()
    if reduction == "mean":
        lengths = c.target_lengths.clamp(min=1).to(
            device=nll.device, dtype=nll.dtype
        )
        return (nll / lengths).mean()
    return nll if c.batched else nll.squeeze(0)


# === decoding =====================================================================


class BestPath(NamedTuple):
    """The result of :func:`ctc_best_path`.

    Attributes:
        positions: ``(N, T)`` the extended-label position :math:`s_t` of each frame;
            -1 for frames :math:`t \\ge T_n` and for samples with no alignment.
        labels: ``(N, T)`` the symbol :math:`y'_{s_t}` of each frame (the
            alignment); -1 there.
        log_prob: ``(N,)`` the log-probability of that alignment; ``-inf`` if none
            fits.
    """

    positions: Tensor
    labels: Tensor
    log_prob: Tensor


def ctc_best_path(
    log_probs, targets, input_lengths, target_lengths, blank: int = 0
) -> BestPath:
    r"""The most likely alignment of each sample's labels (Viterbi alignment).

    The forward recursion with the maximum in place of the sum,

    .. math::
        \delta_t(s) = \log p_t(y'_s)
        + \max\big(\delta_{t-1}(s),\ \delta_{t-1}(s-1),\
        \delta_{t-1}(s-2) + \text{skip}_s\big)

    then a walk back from the better of the two last positions. Ties go to staying
    at :math:`s`, then to :math:`s-1`. The alignment collapses to the targets
    (``ctc_collapse(labels[n, :T_n]) == targets[n]``).

    Args:
        log_probs, targets, input_lengths, target_lengths, blank: as
            :func:`ctc_loss`.

    Returns:
        A :class:`BestPath` (``positions``, ``labels``, ``log_prob``), batch
        dimension kept.

    Raises:
        As :func:`ctc_loss`.

    Example:
        >>> lp = torch.tensor([[0.6, 0.4], [0.1, 0.9], [0.8, 0.2]]).log()  # (T, C)
        >>> ctc_best_path(lp, torch.tensor([1]), 3, 1).labels  # _ a _
        tensor([[0, 1, 0]])

    References:
        Graves et al. (2006), section 3.2; forced alignment in WeNet,
        ``wenet/utils/ctc_utils.py``.
    """
    c = _check_inputs(log_probs, targets, input_lengths, target_lengths, blank)
    with torch.no_grad():
        ext = _extend(c)
        lp, skip = ext.log_probs, ext.skip
        T, N, S = lp.shape
        delta = lp.new_full((T, N, S + 2), _NEG_INF)
        delta[0, :, 2:4] = lp[0, :, :2]
        back = torch.zeros((T, N, S), dtype=torch.long, device=delta.device)
        for t in range(1, T):
            prev = delta[t - 1]
            candidates = torch.stack(
                [prev[:, 2:], prev[:, 1:-1], prev[:, :-2] + skip]
            )
            best, back[t] = candidates.max(dim=0)  # first maximum: stay, then s - 1
            torch.add(best, lp[t], out=delta[t, :, 2:])
        ar = torch.arange(N, device=delta.device)
        tn = c.input_lengths.to(delta.device)
        last = delta[(tn - 1).clamp(min=0), ar, 2:]  # (N, S)
        end = 2 * c.target_lengths.to(delta.device)
        blank_end = last.gather(1, end[:, None]).squeeze(1)
        label_end = torch.where(
            end > 0,
            last.gather(1, (end - 1).clamp(min=0)[:, None]).squeeze(1),
            _NEG_INF,
        )
        s = torch.where(label_end > blank_end, end - 1, end)
        log_prob = torch.maximum(blank_end, label_end)
        empty = torch.where(c.target_lengths.to(tn.device) == 0, 0.0, _NEG_INF)
        log_prob = torch.where(tn == 0, empty.to(log_prob.dtype), log_prob)
        positions = torch.full((N, T), -1, dtype=torch.long, device=delta.device)
        for t in range(T - 1, -1, -1):
            active = t < tn
            s = torch.where(
                t == tn - 1, torch.where(label_end > blank_end, end - 1, end), s
            )
            positions[:, t] = torch.where(active, s, -1)
            if t > 0:
                step = back[t, ar, s.clamp(0, S - 1)]
                s = torch.where(active, s - step, s)
        positions[torch.isinf(log_prob)] = -1
        labels = torch.where(
            positions >= 0, ext.labels.gather(1, positions.clamp(min=0)), -1
        )
    return BestPath(positions, labels, log_prob)


def ctc_greedy_decode(
    log_probs, input_lengths=None, blank: int = 0
) -> list[list[int]]:
    r"""Greedy decoding: the most likely symbol of each frame, then collapse.

    .. math::
        \hat y = \mathcal{B}\big(\arg\max_k p_0(k), \ldots,
        \arg\max_k p_{T_n - 1}(k)\big)

    The most likely single alignment, collapsed: fast, and usually close to the most
    likely label sequence, but not always equal to it (that would need a sum over
    alignments, as in prefix beam search). Ties go to the lowest class index.

    Args:
        log_probs: ``(T, N, C)`` or ``(T, C)`` log-probabilities (or logits: the
            argmax is the same).
        input_lengths: :math:`T_n` per sample; ``None`` means all ``T`` frames.
        blank: the index of the blank symbol.

    Returns:
        One list of label indices per sample.

    Raises:
        TypeError, ValueError: as :func:`ctc_loss`, for the arguments it takes.

    Example:
        >>> p = [[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]]
        >>> lp = torch.tensor(p).log()
        >>> ctc_greedy_decode(lp)  # a a _ a -> a a
        [[1, 1]]

    References:
        Graves et al. (2006), section 3.2 (best path decoding).
    """
    lp = as_float_tensor(log_probs, "log_probs")
    if input_lengths is None:
        T = lp.shape[0] if lp.dim() > 0 else 0
        N = lp.shape[1] if lp.dim() == 3 else 1
        input_lengths = [T] * N if lp.dim() == 3 else T
    check_no_nan(lp, "log_probs")
    c = _check_inputs(lp, None, input_lengths, None, blank, need_targets=False)
    best = c.log_probs.argmax(dim=2).T.cpu()  # (N, T)
    return [
        ctc_collapse(best[n, :tn], c.blank)
        for n, tn in enumerate(c.input_lengths.tolist())
    ]
