"""Guards that make `pytest --nbval` mean something.

nbval compares what a notebook prints now with what is stored. A notebook that was
never executed stores nothing, so nbval would pass it without checking anything:
these tests make sure every chapter was run top to bottom, is in the table of
contents, and hides no output without saying why.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("**/*.ipynb"))


def toc_files() -> list[str]:
    """Every `file:` and the `root:` of _toc.yml, as paths without suffix."""
    text = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    return re.findall(r"^\s*(?:-\s*file|root):\s*(\S+)\s*$", text, flags=re.M)


def code_cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [
        c
        for c in nb["cells"]
        if c["cell_type"] == "code" and "".join(c["source"]).strip()
    ]


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks found under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_is_in_the_toc(path):
    entry = path.relative_to(ROOT).with_suffix("").as_posix()
    assert entry in toc_files(), f"{entry} is not listed in _toc.yml"


@pytest.mark.parametrize("entry", toc_files())
def test_every_toc_entry_exists(entry):
    matches = [
        p
        for p in (ROOT / entry).parent.glob(Path(entry).name + ".*")
        if p.suffix in {".md", ".ipynb"}
    ]
    assert matches, (
        f"_toc.yml lists {entry}, but there is no {entry}.md or {entry}.ipynb"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_executed_top_to_bottom(path):
    cells = code_cells(path)
    counts = [c["execution_count"] for c in cells]
    expected = list(range(1, len(cells) + 1))
    assert counts == expected, (
        f"{path.name}: execution counts {counts}, expected {expected}; run it top "
        "to bottom "
        f"in a fresh kernel (make execute NB={path.relative_to(ROOT)}) and commit "
        "the outputs"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_stored_outputs(path):
    cells = code_cells(path)
    with_output = [c for c in cells if c["outputs"]]
    # An assertion cell may print nothing, but a chapter whose cells print nothing
    # checks nothing.
    assert len(with_output) >= len(cells) // 2, (
        f"{path.name}: only {len(with_output)} of {len(cells)} code cells have "
        "stored outputs"
    )
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, (
        f"{path.name}: stored outputs include an error: {errors[0].get('ename')}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_say_why(path):
    for cell in code_cells(path):
        src = "".join(cell["source"])
        for marker in (
            "NBVAL_IGNORE_OUTPUT",
            "NBVAL_SKIP",
            "NBVAL_RAISES_EXCEPTION",
        ):
            if marker in src:
                comments = [
                    line
                    for line in src.splitlines()
                    if line.strip().startswith("#") and marker not in line
                ]
                assert comments, (
                    f"{path.name}: a cell uses {marker} without a comment saying "
                    "why"
                )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_object_reprs_in_outputs(path):
    """Memory addresses (``<... at 0x7f...>``) differ on every run; they must never
    be stored."""
    for cell in code_cells(path):
        for out in cell["outputs"]:
            text = "".join(out.get("text", "")) + "".join(
                out.get("data", {}).get("text/plain", "")
            )
            assert not re.search(r" at 0x[0-9a-f]+>", text), (
                f"{path.name}: stored output has a repr: {text[:80]}"
            )
