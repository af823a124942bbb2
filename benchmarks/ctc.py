"""Benchmark of the CTC loss: lossnotes.ctc.ctc_loss against F.ctc_loss.

Run with `make bench` (not part of `make test`). Writes benchmarks/results/ctc.json,
which chapter 13 reads to draw its table.

What is timed: `loss = ctc(log_softmax(logits), ...); loss.backward()`, float32, on
1 thread (torch.set_num_threads(1)), for the sizes (T, N, C, L) of the issue: two
speech-recognition batches and a character vocabulary. Input lengths are drawn in
[T/2, T] (the longest is T) and target lengths in [L/2, L] (the longest is L),
labels uniformly from 1..C-1 (blank = 0), with a fixed seed, the same for both
contenders. The two contenders take turns, repetition after repetition, so that a
change in the machine's load falls on both alike; each figure is the median over the
repetitions, and the ratio is the median of the per-repetition ratios.

Usage:
    python benchmarks/ctc.py  # the full benchmark, about 2 to 4 minutes
    python benchmarks/ctc.py --reps 3 --out /tmp/ctc.json  # a quick smoke test
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from machine import describe

from lossnotes.ctc import ctc_loss
from lossnotes.stability import logsumexp

RESULTS = Path(__file__).parent / "results" / "ctc.json"
SIZES = {  # name: (T, N, C, L)
    "speech, 200 frames": (200, 16, 5000, 40),
    "speech, 500 frames": (500, 8, 5000, 100),
    "characters": (100, 32, 30, 20),
}
GOALS = {"speech, 200 frames": 0.75, "speech, 500 frames": 0.75, "characters": 1.5}
CONTENDERS = {"torch": F.ctc_loss, "lossnotes": ctc_loss}


def problem(T: int, N: int, C: int, L: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, C, generator=g)
    input_lengths = torch.randint(T // 2, T + 1, (N,), generator=g)
    input_lengths[0] = T
    target_lengths = torch.randint(L // 2, L + 1, (N,), generator=g)
    target_lengths[0] = L
    targets = torch.randint(1, C, (N, L), generator=g)
    return logits, targets, input_lengths, target_lengths


def run_once(
    fn, logits, targets, input_lengths, target_lengths
) -> tuple[float, float]:
    x = logits.detach().requires_grad_()
    start = time.perf_counter()
    loss = fn(x.log_softmax(2), targets, input_lengths, target_lengths)
    loss.backward()
    return time.perf_counter() - start, loss.item()


def measure(name: str, size: tuple[int, int, int, int], reps: int) -> dict:
    args = problem(*size)
    for fn in CONTENDERS.values():  # warm up
        run_once(fn, *args)
    times = {k: [] for k in CONTENDERS}
    losses = {}
    for _ in range(reps):
        for key, fn in CONTENDERS.items():
            elapsed, losses[key] = run_once(fn, *args)
            times[key].append(elapsed)
    ratios = [
        a / b for a, b in zip(times["lossnotes"], times["torch"], strict=True)
    ]
    T, N, C, L = size
    record = {
        "name": name,
        "T": T,
        "N": N,
        "C": C,
        "L": L,
        "times_s": times,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "ratio_median": statistics.median(ratios),
        "ratio_quartiles": statistics.quantiles(ratios, n=4)
        if reps > 1
        else ratios,
        "goal": GOALS[name],
        "losses": losses,
        "loadavg_after": os.getloadavg()[0],
    }
    print(
        f"{name:20s} torch {record['median_s']['torch'] * 1e3:8.1f} ms  lossnotes "
        f"{record['median_s']['lossnotes'] * 1e3:8.1f} ms  ratio "
        f"{record['ratio_median']:.2f} (goal <= {GOALS[name]})",
        flush=True,
    )
    return record


def accuracy(size: tuple[int, int, int, int]) -> dict:
    """float32 loss and gradient of each contender against torch's float64 ones."""
    logits, targets, il, tl = problem(*size)

    def run(fn, dtype):
        x = logits.to(dtype, copy=True).requires_grad_()
        loss = fn(x.log_softmax(2), targets, il, tl, reduction="sum")
        loss.backward()
        return loss.item(), x.grad.to(torch.float64)

    loss64, grad64 = run(F.ctc_loss, torch.float64)
    scale = grad64.abs().max().item()
    out = {"T": size[0], "N": size[1], "C": size[2], "L": size[3]}
    for key, fn in CONTENDERS.items():
        loss32, grad32 = run(fn, torch.float32)
        out[key] = {
            "loss_rel_error": abs(loss32 - loss64) / abs(loss64),
            "grad_error_over_max_grad": (grad32 - grad64).abs().max().item()
            / scale,
        }
    print(f"float32 accuracy at {size}: {json.dumps(out)}", flush=True)
    return out


def step_cost(N: int = 16, S: int = 81, reps: int = 2000) -> dict:
    """One step of the alpha recursion: a 3-term log-sum-exp of (N, S) float64."""
    g = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(3, N, S, generator=g, dtype=torch.float64)
    out = torch.empty(N, S, dtype=torch.float64)

    def with_logaddexp():
        torch.logaddexp(a, b, out=out)
        torch.logaddexp(out, c, out=out)

    def with_stability_logsumexp():
        logsumexp(torch.stack([a, b, c]), dim=0)

    fns = {
        "torch.logaddexp": with_logaddexp,
        "stability.logsumexp": with_stability_logsumexp,
    }
    times = {k: [] for k in fns}
    for _ in range(5):
        for key, fn in fns.items():
            fn()
            start = time.perf_counter()
            for _ in range(reps // 5):
                fn()
            times[key].append((time.perf_counter() - start) / (reps // 5))
    out = {
        "N": N,
        "S": S,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
    }
    print(f"one step: {json.dumps(out)}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = datetime.datetime.now(datetime.UTC)
    report = {
        "what": "CTC loss through log_softmax, forward + backward, float32, CPU, "
        "1 thread",
        "machine": describe(torch.get_num_threads()),
        "started_utc": started.isoformat(timespec="seconds"),
        "loadavg_start": os.getloadavg()[0],
        "reps": args.reps,
        "runs": [measure(name, size, args.reps) for name, size in SIZES.items()],
        "accuracy": accuracy(SIZES["speech, 500 frames"]),
        "step": step_cost(),
    }
    report["finished_utc"] = datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds"
    )
    report["loadavg_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
