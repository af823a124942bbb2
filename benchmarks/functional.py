"""Benchmark: lossnotes.functional and lossnotes.stability against PyTorch, speed
and accuracy.

Run with `make bench` (not part of `make test`). Writes
benchmarks/results/functional.json.

For every loss of lossnotes.functional (and log_softmax, softmax, logsumexp) at two
sizes, (N, C) = (4096, 1000) and (64, 32000), in float32 on one thread
(torch.set_num_threads(1)):

- time: the wall time of forward + backward (`out = f(...); out.backward()`),
  lossnotes and its PyTorch counterpart taking turns (interleaved) in blocks of
  BLOCK calls, each block timed by the median of its last KEPT calls (so that each
  function runs in the allocator state it leaves itself); `ratio` is the median
  over --reps block pairs of lossnotes' time over PyTorch's in the same
  back-to-back pair (below 1: faster), `ratio_of_medians` the ratio of the two
  medians.
- accuracy: the largest error, in float32 ulps, of the per-sample loss
  (reduction="none"; per element for the pointwise losses, per row for logsumexp,
  per entry for softmax and log_softmax) against a float64 reference written in the
  stable form (for cross-entropy log1p(sum_{j != y} exp(x_j - x_y)), each term exact
  in float64); a handful of rows is checked against mpmath at 50 digits
  (`mpmath_check`). The inputs hold confident rows on purpose: one row in eight has
  its target logit raised by 25, one in eight by 12, the rest are 3 * randn logits
  (the float64 fix-up of lossnotes' cross-entropy runs on the confident ones).

Counterparts without a PyTorch function are written from PyTorch operations as their
papers' reference code does: focal_loss (Lin et al.: from F.log_softmax),
sigmoid_focal_loss (torchvision.ops.sigmoid_focal_loss's code),
label_smoothing_kl_loss (WeNet's LabelSmoothingLoss: F.kl_div of F.log_softmax
against the smoothed target).

The machine this runs on may be shared: interleaving and medians make the ratios
robust to load that affects both sides alike; the absolute times are not.

Usage:
    python benchmarks/functional.py                 # the full run (a few minutes)
    python benchmarks/functional.py --reps 3 --out /tmp/f.json   # a smoke test
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import mpmath
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lossnotes.functional as LF  # noqa: E402
from lossnotes import stability  # noqa: E402
from lossnotes.stability import ulp_error  # noqa: E402

SIZES = [(4096, 1000), (64, 32000)]
BLOCK, KEPT = 6, 3  # calls per timed block, and how many of the last are kept
OUT = Path(__file__).resolve().parent / "results" / "functional.json"


# --- inputs and float64 references ------------------------------------------------


def make_logits(n: int, c: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """3 * randn logits with confident rows.

    The target logit is raised by 25 in one row in 8 and by 12 in another.
    """
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(n, c, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    rows = torch.arange(n)
    x[rows[::8], y[::8]] += 25.0
    x[rows[1::8], y[1::8]] += 12.0
    return x, y


def ref_ce(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-log softmax(x)[y] in float64 as log1p(sum_{j != y} exp(x_j - x_y))."""
    xd = x.double()
    d = torch.exp(xd - xd.gather(1, y[:, None])).scatter(1, y[:, None], 0.0)
    return torch.log1p(d.sum(1))


def ref_lse(x: torch.Tensor) -> torch.Tensor:
    xd = x.double()
    m, k = xd.max(1, keepdim=True)
    rest = torch.exp(xd - m).scatter(1, k, 0.0).sum(1, keepdim=True)
    return m + torch.log1p(rest)


def ref_log_softmax(x: torch.Tensor) -> torch.Tensor:
    xd = x.double()
    m, k = xd.max(1, keepdim=True)
    rest = torch.exp(xd - m).scatter(1, k, 0.0).sum(1, keepdim=True)
    return (xd - m) - torch.log1p(rest)


def ref_softplus(x: torch.Tensor) -> torch.Tensor:
    return torch.logaddexp(x, torch.zeros((), dtype=x.dtype))


def mpmath_check(x: torch.Tensor, y: torch.Tensor, rows: list[int]) -> float:
    """Largest relative difference between ref_ce and mpmath (50 digits) on
    ``rows``.
    """
    mpmath.mp.dps = 50
    worst = 0.0
    ref = ref_ce(x[rows], y[rows])
    for i, r in enumerate(rows):
        vals = x[r].double().tolist()
        xy = mpmath.mpf(vals[int(y[r])])
        s = mpmath.fsum(mpmath.exp(mpmath.mpf(v) - xy) for v in vals)
        exact = mpmath.log(s)
        worst = max(worst, float(abs((ref[i].item() - exact) / exact)))
    return worst


# --- the cases --------------------------------------------------------------------


def focal_torch(x, y, gamma=2.0, reduction="mean"):
    log_pt = F.log_softmax(x, 1).gather(1, y[:, None]).squeeze(1)
    loss = -((1 - log_pt.exp()) ** gamma) * log_pt
    return loss.mean() if reduction == "mean" else loss


def sigmoid_focal_torch(x, t, alpha=0.25, gamma=2.0, reduction="mean"):
    # torchvision.ops.sigmoid_focal_loss, as written there
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    loss = alpha_t * loss
    return loss.mean() if reduction == "mean" else loss


def wenet_torch(x, target, smoothing=0.1, padding_idx=-1):
    # WeNet's LabelSmoothingLoss.forward, normalize_length=False
    b, c = x.size(0), x.size(-1)
    xs, t = x.view(-1, c), target.view(-1)
    true_dist = torch.full_like(xs, smoothing / (c - 1))
    ignore = t == padding_idx
    t = t.masked_fill(ignore, 0)
    true_dist = true_dist.scatter(1, t.unsqueeze(1), 1 - smoothing)
    kl = F.kl_div(torch.log_softmax(xs, dim=1), true_dist, reduction="none")
    return kl.masked_fill(ignore.unsqueeze(1), 0).sum() / b


def cases(n: int, c: int):
    """name -> (inputs needing grad, lossnotes fn, torch fn, accuracy fn | None)."""
    x, y = make_logits(n, c)
    g = torch.Generator().manual_seed(1)
    labels = (torch.rand(n, c, generator=g) < 0.1).float()
    log_p = torch.log_softmax(x, 1)
    p_bin = torch.sigmoid(x / 3)
    q_target = torch.softmax(3 * torch.randn(n, c, generator=g), 1)
    w = torch.randn(
        n, c, generator=g
    )  # backward weights of the unreduced functions

    def acc_ce(ours, theirs):
        ref = ref_ce(x, y)
        return (
            ulp_error(ours(x, y, reduction="none"), ref),
            ulp_error(theirs(x, y, reduction="none"), ref),
        )

    def acc_focal():
        ref_l = ref_ce(x, y)
        ref = (-torch.expm1(-ref_l)) ** 2 * ref_l
        return (
            ulp_error(LF.focal_loss(x, y, reduction="none"), ref),
            ulp_error(focal_torch(x, y, reduction="none"), ref),
        )

    def acc_bce_logits():
        xd, yd = x.double(), labels.double()
        ref = yd * ref_softplus(-xd) + (1 - yd) * ref_softplus(xd)
        return (
            ulp_error(
                LF.binary_cross_entropy_with_logits(x, labels, reduction="none"),
                ref,
            ),
            ulp_error(
                F.binary_cross_entropy_with_logits(x, labels, reduction="none"), ref
            ),
        )

    def acc_bce():
        pd, yd = p_bin.double(), labels.double()
        ref = -(
            yd * torch.log(pd).clamp(min=-100)
            + (1 - yd) * torch.log1p(-pd).clamp(min=-100)
        )
        return (
            ulp_error(
                LF.binary_cross_entropy(p_bin, labels, reduction="none"), ref
            ),
            ulp_error(F.binary_cross_entropy(p_bin, labels, reduction="none"), ref),
        )

    def acc_kl():
        xd, td = log_p.double(), q_target.double()
        ref = torch.xlogy(td, td) - td * xd
        return (
            ulp_error(LF.kl_div(log_p, q_target, reduction="none"), ref),
            ulp_error(F.kl_div(log_p, q_target, reduction="none"), ref),
        )

    def acc_sigmoid_focal():
        xd, yd = x.double(), labels.double()
        ce = yd * ref_softplus(-xd) + (1 - yd) * ref_softplus(xd)
        one_minus_pt = yd * torch.sigmoid(-xd) + (1 - yd) * torch.sigmoid(xd)
        ref = (0.25 * yd + 0.75 * (1 - yd)) * one_minus_pt**2 * ce
        return (
            ulp_error(LF.sigmoid_focal_loss(x, labels, reduction="none"), ref),
            ulp_error(sigmoid_focal_torch(x, labels, reduction="none"), ref),
        )

    def acc_wenet():
        # WeNet's formula in float64 is exact enough: no term cancels in a way
        # float64 feels
        x3, t3 = x.double()[:, None, :], y[:, None]
        ref = wenet_torch(x3, t3).reshape(1)
        ours = LF.label_smoothing_kl_loss(x[:, None, :], y[:, None], 0.1)
        return (
            ulp_error(ours.reshape(1), ref),
            ulp_error(wenet_torch(x[:, None, :], y[:, None]).reshape(1), ref),
        )

    def acc_elementwise(ours, theirs, ref):
        return ulp_error(ours(x, -1), ref), ulp_error(theirs(x, -1), ref)

    return {
        "cross_entropy": (
            [x],
            lambda a: LF.cross_entropy(a, y),
            lambda a: F.cross_entropy(a, y),
            lambda: acc_ce(LF.cross_entropy, F.cross_entropy),
        ),
        "cross_entropy(label_smoothing=0.1)": (
            [x],
            lambda a: LF.cross_entropy(a, y, label_smoothing=0.1),
            lambda a: F.cross_entropy(a, y, label_smoothing=0.1),
            None,
        ),
        "nll_loss": (
            [log_p],
            lambda a: LF.nll_loss(a, y),
            lambda a: F.nll_loss(a, y),
            lambda: (
                ulp_error(
                    LF.nll_loss(log_p, y, reduction="none"),
                    -log_p.double().gather(1, y[:, None]).squeeze(1),
                ),
                ulp_error(
                    F.nll_loss(log_p, y, reduction="none"),
                    -log_p.double().gather(1, y[:, None]).squeeze(1),
                ),
            ),
        ),
        "binary_cross_entropy_with_logits": (
            [x],
            lambda a: LF.binary_cross_entropy_with_logits(a, labels),
            lambda a: F.binary_cross_entropy_with_logits(a, labels),
            acc_bce_logits,
        ),
        "binary_cross_entropy": (
            [p_bin],
            lambda a: LF.binary_cross_entropy(a, labels),
            lambda a: F.binary_cross_entropy(a, labels),
            acc_bce,
        ),
        "kl_div(batchmean)": (
            [log_p],
            lambda a: LF.kl_div(a, q_target, reduction="batchmean"),
            lambda a: F.kl_div(a, q_target, reduction="batchmean"),
            acc_kl,
        ),
        "focal_loss": (
            [x],
            lambda a: LF.focal_loss(a, y),
            lambda a: focal_torch(a, y),
            acc_focal,
        ),
        "sigmoid_focal_loss": (
            [x],
            lambda a: LF.sigmoid_focal_loss(a, labels, reduction="mean"),
            lambda a: sigmoid_focal_torch(a, labels),
            acc_sigmoid_focal,
        ),
        "label_smoothing_kl_loss": (
            [x],
            lambda a: LF.label_smoothing_kl_loss(a[:, None, :], y[:, None], 0.1),
            lambda a: wenet_torch(a[:, None, :], y[:, None]),
            acc_wenet,
        ),
        "log_softmax": (
            [x],
            lambda a: (stability.log_softmax(a, 1) * w).sum(),
            lambda a: (torch.log_softmax(a, 1) * w).sum(),
            lambda: acc_elementwise(
                stability.log_softmax, torch.log_softmax, ref_log_softmax(x)
            ),
        ),
        "softmax": (
            [x],
            lambda a: (stability.softmax(a, 1) * w).sum(),
            lambda a: (torch.softmax(a, 1) * w).sum(),
            lambda: acc_elementwise(
                stability.softmax, torch.softmax, torch.exp(ref_log_softmax(x))
            ),
        ),
        "logsumexp": (
            [x],
            lambda a: (stability.logsumexp(a, 1) * w[:, 0]).sum(),
            lambda a: (torch.logsumexp(a, 1) * w[:, 0]).sum(),
            lambda: acc_elementwise(
                stability.logsumexp, torch.logsumexp, ref_lse(x).squeeze(1)
            ),
        ),
    }


# --- measuring --------------------------------------------------------------------


def fwd_bwd(fn, inputs):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]

    def run():
        for t in leaves:
            t.grad = None
        fn(*leaves).backward()

    return run


def timed(run, calls: int = BLOCK, kept: int = KEPT) -> float:
    """The median time of the last ``kept`` of ``calls`` back-to-back calls.

    The first calls of a block let the allocator settle into the state that this
    function alone leaves behind: timing single calls taken in turns would make
    each side pay for the large blocks the other just freed (page faults).
    """
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times[-kept:])


def measure(n: int, c: int, reps: int, only: set[str] | None) -> list[dict]:
    rows = []
    for name, (inputs, ours, theirs, accuracy) in cases(n, c).items():
        if only and name not in only:
            continue
        run_ours, run_torch = fwd_bwd(ours, inputs), fwd_bwd(theirs, inputs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_ours(), run_torch()  # warm-up
            t_ours, t_torch = [], []
            for i in range(reps):  # interleaved, and alternating which goes first
                pair = (
                    (run_ours, run_torch) if i % 2 == 0 else (run_torch, run_ours)
                )
                a, b = timed(pair[0]), timed(pair[1])
                t_ours.append(a if i % 2 == 0 else b)
                t_torch.append(b if i % 2 == 0 else a)
            row = {
                "function": name,
                "N": n,
                "C": c,
                "lossnotes_ms": round(statistics.median(t_ours) * 1e3, 3),
                "torch_ms": round(statistics.median(t_torch) * 1e3, 3),
            }
            # the median of the ratios of back-to-back pairs: robust to load that
            # comes and goes over the run (the ratio of the medians is kept too)
            pairs = [a / b for a, b in zip(t_ours, t_torch, strict=True)]
            row["ratio"] = round(statistics.median(pairs), 3)
            row["ratio_of_medians"] = round(
                row["lossnotes_ms"] / row["torch_ms"], 3
            )
            if accuracy is not None:
                with torch.no_grad():
                    e_ours, e_torch = accuracy()
                row["lossnotes_max_ulp"] = _finite_or_str(e_ours.max().item())
                row["torch_max_ulp"] = _finite_or_str(e_torch.max().item())
        rows.append(row)
        print(
            f"{name:36s} N={n:5d} C={c:6d}  lossnotes {row['lossnotes_ms']:8.2f} ms"
            f"  torch {row['torch_ms']:8.2f} ms  ratio {row['ratio']:5.2f}"
            f"  ulp {row.get('lossnotes_max_ulp', '-')} vs "
            f"{row.get('torch_max_ulp', '-')}",
            flush=True,
        )
    return rows


def _finite_or_str(v: float):
    return round(v, 3) if math.isfinite(v) else str(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", nargs="*", help="function names to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n, c in SIZES:
        rows += measure(n, c, args.reps, set(args.only) if args.only else None)
    x, y = make_logits(64, 1000)
    result = {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(
                timespec="seconds"
            ),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "dtype": "float32",
            "reps": args.reps,
            "timing": (
                f"forward + backward, interleaved blocks of {BLOCK} calls timed by "
                f"the median of the last {KEPT}, median of reps"
            ),
            "accuracy": "max ulp of the per-sample loss vs a float64 reference",
        },
        "mpmath_check": {
            "rows": "the 16 first rows of make_logits(64, 1000): 2 confident per 8",
            "max_relative_difference": mpmath_check(x, y, list(range(16))),
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
