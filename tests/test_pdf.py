"""The PDF of the whole book (``make pdf``), read back with poppler's pdftotext and
pdfinfo.

Run by ``make pdf`` with ``LOSSNOTES_PDF`` set to the PDF it printed; without it, or
without the PDF, these tests are skipped (under ``CI=true`` a missing PDF fails).
They check that the PDF has a plausible number of pages, a table of contents, every
chapter of ``_toc.yml`` by its title (numbered), typeset math rather than TeX
source, and internal links.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

# TeX source that MathJax should have replaced. Code shows TeX inside "$...$"
# strings (matplotlib labels such as r"$p_t$"), so a command counts only outside a
# $...$ pair.
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\(?:frac|sum|mathrm|tfrac)\b"
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} not found: install poppler-utils")
    return path


@pytest.fixture(scope="module")
def pdf() -> Path:
    path = os.environ.get("LOSSNOTES_PDF", "")
    if not path or not Path(path).is_file():
        message = (
            f"no PDF at LOSSNOTES_PDF={path!r}: `make pdf` builds and checks one"
        )
        if os.environ.get("CI") == "true" and path:
            pytest.fail(message)
        pytest.skip(message)
    return Path(path)


@pytest.fixture(scope="module")
def text(pdf) -> str:
    return subprocess.run(
        [_tool("pdftotext"), "-layout", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(scope="module")
def info(pdf) -> dict[str, str]:
    out = subprocess.run(
        [_tool("pdfinfo"), str(pdf)], check=True, capture_output=True, text=True
    ).stdout
    return dict(
        (k.strip(), v.strip())
        for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)
    )


def chapter_titles() -> list[str]:
    """The title (first "# " heading) of every chapter notebook listed in
    _toc.yml."""
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    titles = []
    for stem in re.findall(r"^\s*-\s*file:\s*book/(\d\d_\w+)\s*$", toc, flags=re.M):
        notebook = json.loads((BOOK / f"{stem}.ipynb").read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            source = "".join(cell["source"])
            match = re.search(r"^# (.+)$", source, flags=re.M)
            if cell["cell_type"] == "markdown" and match:
                titles.append(match.group(1).strip())
                break
    return titles


def _flat(s: str) -> str:
    """Text without markup, quotes or spacing differences, for comparing titles."""
    s = re.sub(r"[`*_]", "", s)
    s = s.replace("’", "'").replace("–", "-").replace("—", "-")
    return " ".join(s.split()).lower()


def test_page_count(info):
    pages = int(info["Pages"])
    chapters = len(chapter_titles())
    assert chapters * 4 <= pages <= 1000, (
        f"{pages} pages for {chapters} chapters: is the book all there?"
    )


def test_contents_and_every_chapter_title(text):
    flat = _flat(text)
    assert "contents" in flat[:3000], "no table of contents at the start of the PDF"
    missing = []
    for number, title in enumerate(chapter_titles(), start=1):
        # a long title may wrap in the contents, so look for its first words,
        # numbered
        words = " ".join(_flat(title).split()[:4])
        if not re.search(rf"\b{number}\.\s+{re.escape(words)}", flat):
            missing.append(f"{number}. {title}")
    assert not missing, "chapters not found, numbered, in the PDF:\n" + "\n".join(
        missing
    )


def test_no_raw_tex(text):
    found = []
    for line in text.splitlines():
        outside = re.sub(r"\$[^$]*\$", "", line)
        if RAW_TEX.search(outside) and 'r"' not in line and "r'" not in line:
            found.append(" ".join(line.split())[:120])
    assert not found, (
        "TeX source in the PDF instead of typeset math:\n" + "\n".join(found)
    )


def test_internal_links(pdf):
    """Chrome writes a link to a place in the same document as a /Dest (or GoTo)
    action."""
    data = pdf.read_bytes()
    internal = len(re.findall(rb"/Dest\b|/S\s*/GoTo\b", data))
    assert internal >= 20, f"only {internal} internal links in the PDF"
