"""Print the whole book to one PDF: the single-page HTML, typeset by MathJax, in
Chromium.

Usage (``make pdf`` runs it)::

    python scripts/make_pdf.py SINGLEHTML_DIR OUTPUT.pdf
    python scripts/make_pdf.py --publish OUTPUT.pdf HTML_DIR   # link it from the
    HTML book

``SINGLEHTML_DIR`` is the output of ``jupyter-book build . --builder singlehtml``
(its ``_build/singlehtml``). The page is served on 127.0.0.1, opened in the same
headless Chromium the browser tests use, and printed with Chrome's
``Page.printToPDF`` once MathJax has typeset every formula and every image has
loaded. Before printing, a script on the page adds a title page and a table of
contents (numbered chapters, linked to them, so the PDF's internal links work),
starts each chapter on a new page, opens the solutions, and drops what only makes
sense on screen (sidebars, buttons). Page numbers are in the footer and the chapters
are in the PDF's outline (bookmarks).

Why this route: it prints exactly what the reader sees online (the same MathJax,
fonts, SVG figures and styles) and needs no LaTeX. A LaTeX build (``--builder
pdflatex``) would need a TeX Live installation and handles the notebooks' HTML
outputs and the theme's admonitions less well.
"""

from __future__ import annotations

import base64
import functools
import http.server
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Runs in the page before printing: waits for MathJax and images, then lays out for
# paper.
PREPARE = (HERE / "make_pdf_prepare.js").read_text(encoding="utf-8")

TITLE = "Loss Notes"
SUBTITLE = (
    "An executable book on classification losses, from the information content of "
    "one "
    "event to the loss functions you call every day in PyTorch"
)

PRINT_CSS = (HERE / "make_pdf_print.css").read_text(encoding="utf-8")

FOOTER = (
    '<div style="width:100%;font-size:8pt;color:#666;text-align:center;">'
    '<span class="pageNumber"></span></div>'
)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def _find(*names: str) -> str:
    for name in names:
        path = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
        )
        if path:
            return path
    sys.exit(f"{names[0]} not found: install chromium and chromium-driver")


def make_pdf(site: Path, output: Path) -> dict:
    """Print ``site``'s single page to ``output``; return what the page reported."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    source = site / "book" / "intro.html"
    if not source.is_file():
        sys.exit(f"{site} holds no single-page HTML (book/intro.html)")
    # singlehtml writes the root document under book/ but with URLs relative to the
    # site's root (_static/, _images/): open a copy of it at the root
    page = "lossnotes-print.html"
    shutil.copyfile(source, site / page)
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix="lossnotes-pdf-")
    options = webdriver.ChromeOptions()
    options.binary_location = _find("chromium", "chromium-browser")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=Service(_find("chromedriver", "chromium-driver"))
    )
    # printing a page of a few thousand formulas takes minutes on a loaded machine
    driver.command_executor.client_config.timeout = 900
    try:
        driver.set_page_load_timeout(120)
        driver.set_script_timeout(300)
        driver.get(f"http://127.0.0.1:{httpd.server_address[1]}/{page}")
        driver.execute_script(
            "const s = document.createElement('style');"
            "s.textContent = arguments[0];"
            "document.head.appendChild(s);",
            PRINT_CSS,
        )
        report = driver.execute_async_script(PREPARE, TITLE, SUBTITLE)
        if "error" in report:
            sys.exit(f"preparing the page failed: {report['error']}")
        time.sleep(0.5)
        pdf = driver.execute_cdp_cmd(
            "Page.printToPDF",
            {
                "printBackground": True,
                "preferCSSPageSize": True,
                "displayHeaderFooter": True,
                "headerTemplate": "<div></div>",
                "footerTemplate": FOOTER,
                "generateDocumentOutline": True,
                "generateTaggedPDF": True,
            },
        )
    finally:
        driver.quit()
        httpd.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(base64.b64decode(pdf["data"]))
    return report


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--publish":
        # put a built PDF next to an HTML build: its landing page then links to it
        from book_assets import publish_pdf

        publish_pdf(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    site, output = Path(sys.argv[1]), Path(sys.argv[2])
    start = time.monotonic()
    report = make_pdf(site, output)
    if report["errors"] or report["broken"]:
        sys.exit(f"MathJax errors or broken images: {report}")
    print(
        f"{output}: {output.stat().st_size / 2**20:.1f} MiB, "
        f"{len(report['chapters'])} chapters, {report['typeset']} formulas, "
        f"in {time.monotonic() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
