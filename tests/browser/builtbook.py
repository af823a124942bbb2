"""What the tests of the built book share: where things are, and which pages are
chapters."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHAPTER_PAGE = re.compile(r"^book/\d\d_[\w-]+\.html$")


def pages(site: Path) -> list[str]:
    """Every HTML page of the built site, as paths relative to its root, in a stable
    order."""
    return sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if "_static" not in p.parts
    )


def chapter_pages(site: Path) -> list[str]:
    """The chapters (``book/NN_topic.html``), in the book's order."""
    return [p for p in pages(site) if CHAPTER_PAGE.match(p)]


def page_script(name: str) -> str:
    """A script of this folder to run in a page, after ``page_started.js``, which
    defines the wait both of them begin with."""
    here = Path(__file__).parent
    return "\n".join(
        (here / f).read_text(encoding="utf-8") for f in ("page_started.js", name)
    )


def screenshot_path(page: str) -> Path:
    return SCREENSHOTS / page.replace("/", "_").replace(".html", ".png")


def open_page(driver, server: str, site: Path, page: str) -> None:
    """Load ``page``; for a page that only redirects (index.html), wait for the
    target."""
    url = f"{server}/{page}"
    driver.get(url)
    if 'http-equiv="Refresh"' in (site / page).read_text(encoding="utf-8"):
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 10).until(lambda d: d.current_url != url)
        WebDriverWait(driver, 10).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
