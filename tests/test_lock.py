"""The environment is the locked one: `pip freeze` gives exactly requirements.lock.

nbval compares printed text and the site depends on theme versions, so a package
that drifted (installed by hand, or left from an older lock) can change what the
book prints or shows.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lines(name: str) -> list[str]:
    return (ROOT / name).read_text(encoding="utf-8").splitlines()


def pins(text: list[str]) -> set[str]:
    """``name==version`` lines, names normalised as pip compares them."""
    found = set()
    for line in text:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-e"):
            name, _, version = line.partition("==")
            found.add(f"{name.lower().replace('_', '-')}=={version}")
    return found


def test_venv_matches_the_lock():
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    locked = lines("requirements.lock")
    extra, missing = pins(frozen) - pins(locked), pins(locked) - pins(frozen)
    assert not extra and not missing, (
        f"the venv differs from requirements.lock: installed but not locked "
        f"{sorted(extra)}, locked but not installed {sorted(missing)}; run `make` "
        f"again, or `make lock` if requirements.txt changed"
    )


def test_every_direct_dependency_is_pinned_and_locked():
    direct = [line for line in lines("requirements.txt") if line.strip()]
    direct = [line for line in direct if not line.startswith(("#", "-e"))]
    assert all("==" in line for line in direct), "pin every direct dependency"
    # a local version label names the build, not the release: 2.13.0+cpu is 2.13.0
    locked = {pin.split("+", 1)[0] for pin in pins(lines("requirements.lock"))}
    assert pins(direct) <= locked, sorted(pins(direct) - locked)
