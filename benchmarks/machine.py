"""What a benchmark was measured on, stored beside its results."""

import os
import platform
import re

import torch


def describe(threads: int) -> dict:
    """The CPU, cores, memory, platform and library versions of this machine."""
    with open("/proc/cpuinfo") as f:
        model = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": threads,
        "memory_gib": round(memory / 2**30, 1),
    }
