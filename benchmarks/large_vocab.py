"""Benchmark: memory and time of a large-vocabulary cross-entropy, forward+backward.

Run with `make bench` (not part of `make test`). Writes
benchmarks/results/large_vocab.json, which chapter 15 reads to draw its table and
figure.

Contenders, all computing mean cross-entropy of the logits `hidden @ weight.T` in
float32:

- naive: F.cross_entropy(hidden @ weight.T, target)
- torch_default: F.linear_cross_entropy(..., options=nn.LinearCrossEntropyOptions())
- torch_best: F.linear_cross_entropy(..., options=TORCH_BEST), the fastest options
  found (the `explore` section of the JSON) with a chunk of logits <= 1/16 of all
- lossnotes: lossnotes.large_vocab.chunked_linear_cross_entropy with its defaults
- lossnotes_recompute: the same with backward="recompute"

Option rows, at the goal size only, each with the same three contenders (naive,
PyTorch's chunked path with the best options, lossnotes):

- label_smoothing=0.1: `*_ls`. PyTorch's chunked path does not support it: it warns
  and falls back to materialising every logit (the warning is stored in the JSON).
- z_loss=1e-4 (PaLM's z-loss, mean over the tokens of logsumexp^2): `*_z`. PyTorch
  has no z-loss; its row adds it the only way a user can, from the materialised
  logits.
- bfloat16 hidden and weight: `*_bf16`.

Each repetition of each (contender, size) runs in its own process, the contenders
taking turns. Memory is the peak resident set size (VmHWM, reset through
/proc/self/clear_refs) above the process's resident size just before the call, when
the inputs exist and no gradient does. "extra" subtracts the gradients of hidden and
weight, which every method must hold: it is what the loss itself costs. Time is the
wall time of `loss = f(...); loss.backward()` (and, less sensitive to other programs
on a shared machine, the CPU time of this process's threads over the same span).
Each figure is a median over the repetitions (--reps at the goal size, --sweep-reps
below it).

Usage:
    python benchmarks/large_vocab.py  # the full benchmark (heavy: ~40-60 min)
    python benchmarks/large_vocab.py --keep-explore  # without re-running `explore`
    python benchmarks/large_vocab.py --quick --out /tmp/lv.json  # a smoke test
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from machine import describe

from lossnotes.large_vocab import chunked_linear_cross_entropy

RESULTS = Path(__file__).parent / "results" / "large_vocab.json"
GOAL = {"N": 4096, "d": 1024, "V": 131072}
V_SWEEP = [16384, 32768, 65536, 131072]
EXPLORE_V = 32768
EXPLORE_POINTS = [
    ("compact", 16),
    ("compact", 64),
    ("compact", 256),
    ("compact", 1024),
    ("accurate", 256),
]

#: Best options found (see the `explore` section of the JSON): the largest chunk
#: within the memory budget of lossnotes' default (N/16 rows, a sixteenth of the
#: logits) and "compact", which adds each chunk's weight gradient in place
#: ("accurate"/"balanced" add a V x d scratch buffer; "compact" is also what "auto"
#: picks for CPU float32, spelled out here).
TORCH_BEST_ROWS_FRACTION = 16


def torch_best_options(n: int) -> nn.LinearCrossEntropyOptions:
    return nn.LinearCrossEntropyOptions(
        batch_chunk_size=max(1, n // TORCH_BEST_ROWS_FRACTION), acc_policy="compact"
    )


def naive(hidden, weight, target):
    return F.cross_entropy(hidden @ weight.T, target)


def torch_default(hidden, weight, target):
    return F.linear_cross_entropy(
        hidden, weight, target, options=nn.LinearCrossEntropyOptions()
    )


def torch_best(hidden, weight, target):
    return F.linear_cross_entropy(
        hidden, weight, target, options=torch_best_options(len(hidden))
    )


def lossnotes_default(hidden, weight, target):
    return chunked_linear_cross_entropy(hidden, weight, target)


def lossnotes_recompute(hidden, weight, target):
    return chunked_linear_cross_entropy(
        hidden, weight, target, backward="recompute"
    )


EPS, Z_LOSS = 0.1, 1e-4

#: Every contender runs on one thread: CPU time is then the time the work takes, and
#: a loaded machine (other programs on the same cores) disturbs it least. With two
#: threads the OpenMP threads spin between the many small operations of a chunked
#: loop, which CPU time counts as work.
THREADS = 1


def naive_ls(hidden, weight, target):
    return F.cross_entropy(hidden @ weight.T, target, label_smoothing=EPS)


def torch_ls(hidden, weight, target):  # warns and falls back to naive
    return F.linear_cross_entropy(
        hidden,
        weight,
        target,
        label_smoothing=EPS,
        options=torch_best_options(len(hidden)),
    )


def lossnotes_ls(hidden, weight, target):
    return chunked_linear_cross_entropy(hidden, weight, target, label_smoothing=EPS)


def _z_term(logits):
    return Z_LOSS * torch.logsumexp(logits, dim=1).square().mean()


def naive_z(hidden, weight, target):
    logits = hidden @ weight.T
    return F.cross_entropy(logits, target) + _z_term(logits)


def torch_z(hidden, weight, target):  # no z-loss in torch: from the logits
    return torch_best(hidden, weight, target) + _z_term(hidden @ weight.T)


def lossnotes_z(hidden, weight, target):
    return chunked_linear_cross_entropy(hidden, weight, target, z_loss=Z_LOSS)


VARIANTS = {
    "naive": naive,
    "torch_default": torch_default,
    "torch_best": torch_best,
    "lossnotes": lossnotes_default,
    "lossnotes_recompute": lossnotes_recompute,
    "naive_ls": naive_ls,
    "torch_ls": torch_ls,
    "lossnotes_ls": lossnotes_ls,
    "naive_z": naive_z,
    "torch_z": torch_z,
    "lossnotes_z": lossnotes_z,
    "naive_bf16": naive,
    "torch_bf16": torch_best,
    "lossnotes_bf16": lossnotes_default,
}
PLAIN = ["naive", "torch_default", "torch_best", "lossnotes", "lossnotes_recompute"]
OPTION_ROWS = {
    "label_smoothing=0.1": ["naive_ls", "torch_ls", "lossnotes_ls"],
    "z_loss=1e-4": ["naive_z", "torch_z", "lossnotes_z"],
    "bfloat16": ["naive_bf16", "torch_bf16", "lossnotes_bf16"],
}


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1))


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current VmRSS (Linux >= 4.0)


def measure(
    variant: str, n: int, d: int, v: int, reps: int, options: dict | None
) -> dict:
    """Run one contender in this process; its times and peaks per repetition."""
    fn = VARIANTS.get(variant)
    if (
        options is not None
    ):  # an exploration point: torch's chunked path with these options

        def fn(hidden, weight, target):
            return F.linear_cross_entropy(
                hidden,
                weight,
                target,
                options=nn.LinearCrossEntropyOptions(**options),
            )

    dtype = torch.bfloat16 if variant.endswith("_bf16") else torch.float32
    torch.manual_seed(0)
    hidden = torch.randn(n, d).to(dtype).requires_grad_()
    weight = (torch.randn(v, d) / d**0.5).to(dtype).requires_grad_()
    target = torch.randint(v, (n,))
    # warm up every kernel on the same code path at a small size
    small = [
        x[: max(1, len(x) // 64)].detach().requires_grad_()
        for x in (hidden, weight)
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(small[0], small[1], target[: len(small[0])] % len(small[1])).backward()
    del small
    times, cpu_times, peaks, losses = [], [], [], []
    for _ in range(reps):
        hidden.grad = weight.grad = None
        gc.collect()
        _reset_peak()
        base = _status_kib("VmRSS")
        start, cpu_start = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fallback warning, recorded above
            loss = fn(hidden, weight, target)
        loss.backward()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        peaks.append((_status_kib("VmHWM") - base) * 1024)
        losses.append(loss.item())
        del loss
    grad_bytes = (hidden.numel() + weight.numel()) * hidden.element_size()
    return {
        "variant": variant,
        "dtype": str(dtype).removeprefix("torch."),
        "warnings": sorted({str(w.message) for w in caught}),
        "N": n,
        "d": d,
        "V": v,
        "options": options,
        "times_s": times,
        "cpu_times_s": cpu_times,
        "peak_bytes": peaks,
        "loss": losses[-1],
        "time_s": statistics.median(times),
        "cpu_time_s": statistics.median(cpu_times),
        "peak_above_baseline_bytes": statistics.median(peaks),
        "extra_bytes": statistics.median(peaks) - grad_bytes,
        "required_grad_bytes": grad_bytes,
        "logits_bytes": n * v * hidden.element_size(),
        "loadavg_after": os.getloadavg(),
    }


def run_child(variant, n, d, v, reps, options=None) -> dict:
    """`measure` in a fresh process, so that no contender sees another's memory."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        variant,
        str(n),
        str(d),
        str(v),
        str(reps),
    ]
    if options is not None:
        cmd += ["--options", json.dumps(options)]
    load_before = os.getloadavg()
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, env=env
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["loadavg_before"] = load_before
    print(
        f"{variant:20s} V={v:6d} {json.dumps(options) if options else '':45s}"
        f" time {result['time_s']:7.2f} s"
        f"  extra {result['extra_bytes'] / 2**20:8.1f} MiB"
        f"  load {load_before[0]:.2f}",
        flush=True,
    )
    return result


def combine(runs: list[dict]) -> dict:
    """One record from several one-repetition runs of one contender: medians."""
    out = dict(runs[0])
    for key in ["times_s", "cpu_times_s", "peak_bytes"]:
        out[key] = [x for r in runs for x in r[key]]
    out["loadavg_before"] = [r["loadavg_before"][0] for r in runs]
    out["loadavg_after"] = [r["loadavg_after"][0] for r in runs]
    out["time_s"] = statistics.median(out["times_s"])
    out["cpu_time_s"] = statistics.median(out["cpu_times_s"])
    out["peak_above_baseline_bytes"] = statistics.median(out["peak_bytes"])
    out["extra_bytes"] = (
        out["peak_above_baseline_bytes"] - out["required_grad_bytes"]
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--child", nargs=5, metavar=("VARIANT", "N", "d", "V", "REPS")
    )
    parser.add_argument("--options", type=json.loads, default=None)
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions at the goal size"
    )
    parser.add_argument(
        "--sweep-reps", type=int, default=1, help="repetitions at smaller V"
    )
    parser.add_argument(
        "--default-reps",
        type=int,
        default=1,
        help="repetitions of torch_default at the goal size (the slowest one)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (use with --out)"
    )
    parser.add_argument("--skip-explore", action="store_true")
    parser.add_argument(
        "--keep-explore",
        action="store_true",
        help="copy the `explore` section from the existing results file",
    )
    parser.add_argument(
        "--goal-only",
        action="store_true",
        help="measure only the goal size, plain and option rows, three contenders "
        "each; keep the V sweep (and torch_default, lossnotes_recompute) of the "
        "existing results file as `earlier_runs`",
    )
    parser.add_argument(
        "--more-reps",
        nargs="+",
        metavar="VARIANT",
        help="run these goal-size contenders --reps more times, taking turns, and "
        "add the runs to the existing results file (medians over all their runs)",
    )
    args = parser.parse_args()
    if args.more_reps:
        add_reps(args.more_reps, args.reps, args.out)
        return
    if args.child:
        variant, *sizes = args.child
        print(json.dumps(measure(variant, *map(int, sizes), options=args.options)))
        return

    n, d = GOAL["N"], GOAL["d"]
    v_sweep, explore_v, reps, sweep_reps = (
        V_SWEEP,
        EXPLORE_V,
        args.reps,
        args.sweep_reps,
    )
    if args.quick:
        n, d, v_sweep, explore_v, reps, sweep_reps = (
            512,
            128,
            [4096, 8192],
            4096,
            1,
            1,
        )
    started = datetime.datetime.now(datetime.UTC)
    report = {
        "what": "mean cross-entropy of hidden @ weight.T, forward + backward, CPU; "
        "float32 unless the row says bfloat16",
        "machine": describe(THREADS),
        "started_utc": started.isoformat(timespec="seconds"),
        "loadavg_start": os.getloadavg(),
        "reps": reps,
        "sweep_reps": sweep_reps,
        "default_reps": args.default_reps,
        "N": n,
        "d": d,
        "explore_V": explore_v,
        "torch_best_options": {
            "batch_chunk_size": f"N // {TORCH_BEST_ROWS_FRACTION}",
            "acc_policy": "compact",
        },
        "label_smoothing": EPS,
        "z_loss": Z_LOSS,
        "option_rows": OPTION_ROWS,
        "explore": [],
        "runs": [],
    }
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else None
    if args.keep_explore or args.goal_only:
        report["explore"] = old["explore"]
        report["explore_from_run_started_utc"] = old["started_utc"]
    if args.goal_only:
        report["earlier_runs"] = old.get("earlier_runs") or {
            key: old[key]
            for key in ["machine", "started_utc", "finished_utc", "reps", "runs"]
        }
        v_sweep = [max(v_sweep)]
    if not (args.skip_explore or args.keep_explore or args.goal_only):
        # torch's chunked path: which options are fastest on this machine?
        for policy, rows in EXPLORE_POINTS:
            opts = {"batch_chunk_size": rows, "acc_policy": policy}
            report["explore"].append(
                run_child("torch_options", n, d, explore_v, 1, opts)
            )
    goal_v = max(v_sweep)
    for v in sorted(v_sweep, reverse=True):
        variants = list(PLAIN)
        if args.goal_only:
            variants = ["naive", "torch_best", "lossnotes"]
        if v == goal_v:
            variants += [x for row in OPTION_ROWS.values() for x in row]
        elif "lossnotes_recompute" in variants:
            variants.remove("lossnotes_recompute")
        per_variant = {x: [] for x in variants}
        # one process per repetition, the contenders taking turns: a change in the
        # machine's load during the run then falls on all of them alike
        done = list(report["runs"])
        for rep in range(reps if v == goal_v else sweep_reps):
            for variant in variants:
                if variant == "torch_default" and rep >= args.default_reps:
                    continue
                per_variant[variant].append(run_child(variant, n, d, v, 1))
                # write what is measured so far: an interrupted run leaves it
                report["runs"] = done + [
                    combine(runs) for runs in per_variant.values() if runs
                ]
                write(report, args.out, finished=False)
    write(report, args.out, finished=True)
    print(f"wrote {args.out}")


def add_reps(variants: list[str], reps: int, out: Path) -> None:
    """More repetitions of some goal-size contenders, merged into the results."""
    report = json.loads(out.read_text())
    runs = {r["variant"]: r for r in report["runs"]}
    extra = {x: [] for x in variants}
    for _ in range(reps):
        for variant in variants:
            old = runs[variant]
            extra[variant].append(
                run_child(variant, old["N"], old["d"], old["V"], 1)
            )
    for variant, new_runs in extra.items():
        old = runs[variant]
        # the old record, split back into one-repetition runs, then all combined
        singles = [
            dict(old, times_s=[t], cpu_times_s=[c], peak_bytes=[p])
            for t, c, p in zip(
                old["times_s"], old["cpu_times_s"], old["peak_bytes"], strict=True
            )
        ]
        for single, before, after in zip(
            singles, old["loadavg_before"], old["loadavg_after"], strict=True
        ):
            single["loadavg_before"], single["loadavg_after"] = [before], [after]
        runs[variant] = combine(singles + new_runs)
    report["runs"] = [runs[r["variant"]] for r in report["runs"]]
    report["more_reps"] = report.get("more_reps", []) + [
        {"variants": variants, "reps": reps}
    ]
    write(report, out, finished=True)


def write(report: dict, out: Path, finished: bool) -> None:
    now = datetime.datetime.now(datetime.UTC)
    report["finished_utc"] = now.isoformat(timespec="seconds") if finished else None
    report["loadavg_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
