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
positions, in log space, accumulated in float64 whatever the input's dtype. Each
sample's positions are packed back to back, without padding, so that a step is a
few operations on one flat vector (see ``_log_alpha``). Memory is
:math:`O(T \sum_n (2 L_n + 3))` beside the :math:`T \times N \times C` gradient.

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


def _extended_labels(c: _Checked) -> Tensor:
    """``(N, 2 L_max + 1)``: a blank before, between and after the labels."""
    N, L = c.targets.shape
    labels = torch.full(
        (N, 2 * L + 1), c.blank, dtype=torch.long, device=c.targets.device
    )
    labels[:, 1::2] = c.targets
    return labels


def _skip(labels: Tensor, position: Tensor) -> Tensor:
    """0 where position ``s - 2`` may go straight to ``s``, else -inf.

    ``labels`` holds :math:`y'_s` along its last dimension, at ``position``. A skip
    is allowed into a label that differs from the label before it, and into the
    first label (from position -1, where :func:`_log_alpha` waits).
    """
    new_label = (position >= 3) & (labels != labels.roll(2, dims=-1))
    allowed = (position % 2 == 1) & (new_label | (position == 1))
    skip = torch.zeros(allowed.shape, dtype=WORK_DTYPE, device=labels.device)
    return skip.masked_fill_(~allowed, _NEG_INF)


def _check_emissions(emit: Tensor) -> Tensor:
    """Raise if a log-probability the loss reads is NaN or +inf."""
    # the loss reads only these values: checking them, not all T x N x C, is enough
    top = emit.max()
    if torch.isnan(top) or top == math.inf:
        raise ValueError(
            "log_probs holds NaN or +inf at the blank or a target label; "
            "log-probabilities are <= 0 (use log_softmax)"
        )
    return emit


def _extend(c: _Checked) -> _Extended:
    """The extended labels and the log-probabilities of their symbols, padded."""
    labels = _extended_labels(c)
    T, N, _ = c.log_probs.shape
    S = labels.shape[1]
    lp = _check_emissions(c.log_probs.gather(2, labels.expand(T, N, S)))
    lp = lp.to(WORK_DTYPE)
    device = lp.device
    position = torch.arange(S, device=device)
    ends = (2 * c.target_lengths.to(device) + 1)[:, None]
    lp.masked_fill_(position >= ends, _NEG_INF)
    return _Extended(labels, lp, _skip(labels, position))


class _Packed(NamedTuple):
    r"""The lattice's rows packed back to back, one row per sample.

    Row :math:`n` has :math:`2 L_n + 3` columns: positions -2 and -1 in front,
    then :math:`0, \ldots, 2 L_n`. No padding: a short label sequence costs only its
    own columns.
    """

    sample: Tensor  # (M,) the sample of each column
    position: Tensor  # (M,) its position s, -2 and -1 for the two in front
    labels: Tensor  # (M,) the symbol at that position (the blank in front)
    front: Tensor  # (rows,) the column of each row's position -2


def _pack(c: _Checked, labels: Tensor) -> _Packed:
    """Pack the ``(N, S)`` extended labels, ``S >= 2 L_n + 1``."""
    device = labels.device
    widths = 2 * c.target_lengths.to(device) + 3
    front = torch.cumsum(widths, 0) - widths
    n = torch.arange(len(widths), device=device)
    sample = torch.repeat_interleave(n, widths)
    position = torch.arange(len(sample), device=device) - front[sample] - 2
    return _Packed(sample, position, labels[sample, position.clamp(min=0)], front)


def _log_alpha(
    blocks: list[Tensor], front: Tensor, starts: Tensor, skip: Tensor
) -> Tensor:
    r"""Log forward variables of packed rows, from emissions ``(T, M)``.

    .. math::
        \log\alpha_t(s) = \log p_t(y'_s)
        + \operatorname{LSE}\big(\log\alpha_{t-1}(s),\
        \log\alpha_{t-1}(s-1),\ \log\alpha_{t-1}(s-2) + \text{skip}_s\big)

    The emissions come as ``blocks`` of packed rows, ``(T, M_k)`` each, side by
    side; the row whose position -2 is column ``front[r]`` starts at frame
    ``starts[r]``. Returns ``(T, M)`` :math:`\log\alpha`.

    Position -2 is impossible (``-inf``). Position -1 is where a row waits, with
    probability 1, until the frame before its start: from there the same step
    that moves every other position enters the first blank (:math:`s - 1`) or the
    first label (:math:`s - 2`). Every position then has its three predecessors at
    the same offsets, 0, 1 and 2, in one flat vector per frame, so a step is four
    operations on contiguous vectors. The two columns in front are computed too,
    from the end of the row before, then reset: position -2 by its ``-inf``
    emission; position -1 has skip ``-inf``, so it adds only its own value to its
    emission, 0 while it waits and ``-inf`` after.
    """
    T = blocks[0].shape[0]
    M = sum(block.shape[1] for block in blocks)
    # buffer frame 0 is the frame before the first, t = -1; every frame starts as
    # its emissions, in float64, and each step adds its log-sum-exp to them
    alpha = torch.empty((T + 1, M), dtype=WORK_DTYPE, device=skip.device)
    alpha[0] = _NEG_INF
    column = 0
    for block in blocks:
        alpha[1:, column : column + block.shape[1]] = block
        column += block.shape[1]
    alpha.index_fill_(1, front, _NEG_INF)
    waiting = torch.arange(T + 1, device=skip.device)[:, None] <= starts
    zero = torch.zeros((), dtype=WORK_DTYPE, device=skip.device)
    alpha.index_copy_(1, front + 1, zero.where(waiting, _NEG_INF))
    # a row leaves position -1 only into positions 0 and 1: closed while it waits
    # (position 1 of a row with no label is the next row's -2, always -inf anyway)
    door = torch.cat([front + 2, (front + 3).clamp(max=M - 1)])
    shut = alpha.index_select(1, door).masked_fill_(waiting.repeat(1, 2), _NEG_INF)
    alpha.index_copy_(1, door, shut)
    # the views alpha_t(s), alpha_t(s - 1), alpha_t(s - 2) of every frame, made once
    stay, advance, skip_from = (
        alpha[:, k : M - 2 + k].unbind(0) for k in (2, 1, 0)
    )
    skip = skip[2:]
    lse = skip.new_empty(M - 2)
    steps = zip(skip_from[:-1], advance[:-1], stay[:-1], stay[1:], strict=True)
    for from_s_2, from_s_1, from_s, out in steps:
        # torch.logaddexp is the two-term log-sum-exp, max + log1p(exp(-|a - b|)),
        # -inf for two -inf. lossnotes.stability.logsumexp computes the same stable
        # formula but checks and converts its input on every call, about 10x slower
        # per step here: over T steps that would cost more than all of F.ctc_loss
        # (chapter 13 measures it).
        torch.add(from_s_2, skip, out=lse)
        torch.logaddexp(from_s_1, lse, out=lse)
        torch.logaddexp(from_s, lse, out=lse)
        out.add_(lse)
    return alpha[1:]


def _log_likelihood(alpha: Tensor, packed: _Packed, c: _Checked) -> Tensor:
    """:math:`\\log p(y \\mid x)` per sample, from the packed forward variables."""
    device = alpha.device
    tn = c.input_lengths.to(device)
    last = (tn - 1).clamp(min=0)[:, None]  # the frame T_n - 1
    end = packed.front + 2 + 2 * c.target_lengths.to(device)  # position 2 L_n
    ends = alpha[last, torch.stack([end, end - 1], dim=1)]
    ll = torch.logaddexp(ends[:, 0], ends[:, 1])
    # no frame: only the empty label sequence is possible, with probability 1
    empty = torch.where(c.target_lengths.to(device) == 0, 0.0, _NEG_INF)
    return torch.where(tn == 0, empty.to(ll.dtype), ll)


class _Lattice(NamedTuple):
    packed: _Packed  # the columns
    log_alpha: Tensor  # (T, M)
    log_beta: Tensor | None  # (T, M), the emission at t included
    log_emit: Tensor  # (T, M) log p_t(y'_s), in the input's dtype
    log_likelihood: Tensor  # (N,)


def _emissions(log_probs: Tensor, packed: _Packed) -> Tensor:
    """``(T, M)`` :math:`\\log p_t(y'_s)` of every packed column."""
    T, N, C = log_probs.shape
    index = packed.sample * C + packed.labels
    return log_probs.reshape(T, N * C).gather(1, index.expand(T, -1))


def _lattice(c: _Checked, backward: bool) -> _Lattice:
    r"""α, and β when ``backward``: one loop over time for both.

    β is α of the reversed problem, packed after α's rows with the same widths:
    time reversed over all :math:`T` frames (so sample :math:`n` waits until
    frame :math:`T - T_n`, then starts) and labels reversed row by row
    (:math:`s \to 2 L_n - s`), so that
    :math:`\beta_t(s) = \alpha^{\text{rev}}_{T-1-t}(2 L_n - s)`, and
    :math:`\beta_t = 0` for :math:`t \ge T_n`. Past :math:`T_n` the forward rows
    hold values that nothing reads.
    """
    labels = _extended_labels(c)
    device = labels.device
    T, N = c.log_probs.shape[:2]
    packed = _pack(c, labels)
    starts = torch.zeros(N, dtype=torch.long, device=device)
    if not backward:
        emit = _check_emissions(_emissions(c.log_probs, packed))
        skip = _skip(packed.labels, packed.position)
        alpha = _log_alpha([emit], packed.front, starts, skip)
        return _Lattice(
            packed, alpha, None, emit, _log_likelihood(alpha, packed, c)
        )
    # the reversed rows, after the forward ones: position s holds y'_{2 L_n - s}
    sample, position = packed.sample, packed.position
    M = len(sample)
    mirror = 2 * c.target_lengths.to(device)[sample] - position  # 2 L_n - s
    reversed_labels = labels[sample, mirror.clamp(max=labels.shape[1] - 1)]
    both = _Packed(
        sample.repeat(2),
        position.repeat(2),
        torch.cat([packed.labels, reversed_labels]),
        torch.cat([packed.front, M + packed.front]),
    )
    emit = _emissions(c.log_probs, both)
    _check_emissions(emit[:, :M])  # the reversed rows read the same classes
    alpha = _log_alpha(
        [emit[:, :M], emit[:, M:].flip(0)],
        both.front,
        torch.cat([starts, T - c.input_lengths.to(device)]),
        _skip(both.labels, both.position),
    )
    # beta_t(s): the reversed rows read backwards in time, at 2 L_n - s; the
    # columns in front read the reversed row's position -2, always -inf
    front = packed.front[sample]
    column = torch.where(position < 0, front, front + 2 + mirror)
    beta = alpha[:, M:].flip(0).gather(1, column.expand(T, M))
    alpha = alpha[:, :M]
    ll = _log_likelihood(alpha, packed, c)
    return _Lattice(packed, alpha, beta, emit[:, :M], ll)


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
        labels = _extended_labels(c)
        return CTCLattice(
            _unpack(lat.log_alpha, lat.packed, labels.shape[1]),
            _unpack(lat.log_beta, lat.packed, labels.shape[1]),
            labels,
            lat.log_likelihood,
        )


def _unpack(x: Tensor, packed: _Packed, S: int) -> Tensor:
    """``(T, M)`` packed columns as ``(T, N, S)``, ``-inf`` past each row's end."""
    T = x.shape[0]
    N = len(packed.front)
    keep = packed.position >= 0
    out = x.new_full((T, N * S), _NEG_INF)
    where = packed.sample[keep] * S + packed.position[keep]
    return out.index_copy_(1, where, x[:, keep]).view(T, N, S)


# === the loss =====================================================================


def _occupancy(lat: _Lattice, infeasible: Tensor, dtype: torch.dtype) -> Tensor:
    r"""``(T, M)`` :math:`\gamma_t(s) = \alpha_t(s)\beta_t(s) / (p_t(y'_s) p(y|x))`.

    In ``dtype``; 0 for a sample with no alignment. Consumes ``lat.log_beta``.
    """
    log_p = torch.where(infeasible, 0.0, lat.log_likelihood)  # alpha beta = 0 there
    denominator = lat.log_emit + log_p[lat.packed.sample]  # float64
    log_gamma = lat.log_beta.add_(lat.log_alpha).sub_(denominator)
    # the exponential in the output's dtype: log gamma, accurate in float64, is
    # rounded once
    gamma = log_gamma.to(dtype).exp_()
    return gamma.nan_to_num_(nan=0.0)  # -inf - (-inf) where p_t(y'_s) = 0


class _CTCNegLogLikelihood(torch.autograd.Function):
    """Per-sample :math:`-\\log p(y \\mid x)`; its gradient is minus the occupancy.

    When ``log_probs`` needs a gradient, the forward pass runs α and β in one loop
    over time (β is α of the reversed problem, packed beside it), forms the
    occupancy and keeps only it, :math:`T \\sum_n (2 L_n + 3)` numbers; the backward
    pass scales it by the incoming gradient and scatters it into the classes.
    """

    @staticmethod
    def forward(ctx, log_probs: Tensor, c: _Checked, zero_infinity: bool) -> Tensor:
        lat = _lattice(c, backward=ctx.needs_input_grad[0])
        nll = -lat.log_likelihood
        infeasible = torch.isinf(nll)
        if zero_infinity:
            nll = nll.masked_fill(infeasible, 0.0)
        if lat.log_beta is not None:
            ctx.occupancy = _occupancy(lat, infeasible, log_probs.dtype)
            ctx.packed = lat.packed
        ctx.zero_infinity, ctx.infeasible = zero_infinity, infeasible
        ctx.shape, ctx.dtype = log_probs.shape, log_probs.dtype
        ctx.input_lengths = c.input_lengths
        return nll.to(log_probs.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        infeasible, packed = ctx.infeasible, ctx.packed
        T, N, C = ctx.shape
        device = grad.device
        scale = torch.where(infeasible, 0.0, -grad)
        # d nll / d log p_t(k) = -(the sum of gamma_t(s) over the s with y'_s = k)
        out = torch.zeros((T, N, C), dtype=ctx.dtype, device=device)
        index = (packed.sample * C + packed.labels).expand(T, -1)
        out.view(T, N * C).scatter_add_(
            1, index, ctx.occupancy * scale[packed.sample]
        )
        if not ctx.zero_infinity and infeasible.any():
            # as in PyTorch: an infinite loss has a NaN gradient on its frames
            lengths = ctx.input_lengths.to(device)
            frames = torch.arange(T, device=device)[:, None] < lengths
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
