"""The built book in a real browser: headless Chromium opens every page, as a reader
would.

For every page: MathJax has typeset all the math (no raw ``$$`` or ``\\(`` left in
the text, no MathJax error), every image and font has loaded, the console has no
error, and nothing was fetched from another host than the local server. The search
page finds "entropy"; on every chapter the exercises are shown and each solution
opens and closes. Screenshots of the first two chapters go to
``_build/screenshots/`` for a person to look at.

Each page is loaded once (``visits``, below); the tests then check what was
recorded, so a failure lists every page at fault at once. See conftest.py for how to
run these.
"""

import json
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from builtbook import (
    CHAPTER_PAGE,
    SCREENSHOTS,
    chapter_pages,
    open_page,
    page_script,
    pages,
    screenshot_path,
)
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

# Runs in the page once it has loaded: makes lazy images load, waits for them and
# for MathJax, then reports what a reader would see.
INSPECT = page_script("inspect.js")

# TeX that MathJax should have replaced: display or inline delimiters, or a TeX
# command.
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\(?:frac|sum|log|mathrm|operatorname)\b|\$[^\s$][^$]{0,80}\$"
)


# Chromium asks every server for /favicon.ico whatever the page says; the 404 is not
# the book's.
FAVICON_404 = re.compile(r"/favicon\.ico - Failed to load resource")


def console_errors(driver) -> list[str]:
    """The console's errors since the last call (reading the log empties it)."""
    return [
        f"{e['level']}: {e['message']}"
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not FAVICON_404.search(e["message"])
    ]


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last call, from DevTools' network
    events."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@dataclass
class Visit:
    page: str
    report: dict
    console_errors: list[str]
    requests: list[str] = field(default_factory=list)
    toggles: list[str] = field(
        default_factory=list
    )  # problems with exercises and solutions
    exercises: int = 0
    solutions: int = 0


def full_page_screenshot(driver, path, height: int) -> None:
    size = driver.get_window_size()
    driver.set_window_size(size["width"], min(max(height, 900), 16000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])


def check_exercises(driver) -> tuple[int, int, list[str]]:
    """Exercises visible; every solution collapsed at first, opened and closed by
    its title."""
    problems = []
    exercises = driver.find_elements(By.CSS_SELECTOR, "div.exercise.admonition")
    solutions = driver.find_elements(By.CSS_SELECTOR, "div.solution.admonition")
    problems += [
        f"exercise {e.get_attribute('id')} is not shown"
        for e in exercises
        if not e.is_displayed()
    ]
    for solution in solutions:
        name = solution.get_attribute("id")
        body = solution.find_elements(
            By.CSS_SELECTOR, ":scope > :not(.admonition-title)"
        )
        title = solution.find_element(By.CSS_SELECTOR, ":scope > .admonition-title")
        if not body:
            problems.append(f"solution {name} is empty")
            continue
        if any(b.is_displayed() for b in body):
            problems.append(
                f"solution {name} is open before the reader asks for it"
            )
        for want_open in (True, False):
            driver.execute_script(
                "arguments[0].scrollIntoView("
                "{block: 'center', behavior: 'instant'})",
                title,
            )
            title.click()
            try:
                WebDriverWait(driver, 3, poll_frequency=0.05).until(
                    lambda _, body=body, want_open=want_open: all(
                        b.is_displayed() == want_open for b in body
                    )
                )
            except TimeoutException:
                problems.append(
                    f"solution {name} did not {'open' if want_open else 'close'} "
                    "on a click"
                )
                break
    return len(exercises), len(solutions), problems


@pytest.fixture(scope="session")
def visits(driver, server, site) -> dict[str, Visit]:
    """Every page of the site, loaded once; chapters also have their solutions
    toggled."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chapters = chapter_pages(site)
    first_two = chapters[:2]
    results = {}
    start = time.monotonic()
    for page in pages(site):
        open_page(driver, server, site, page)
        report = driver.execute_async_script(INSPECT)
        visit = Visit(page, report, console_errors(driver), requested_urls(driver))
        if page in first_two:
            full_page_screenshot(
                driver, screenshot_path(page), report.get("height", 0)
            )
        if page in chapters:
            visit.exercises, visit.solutions, visit.toggles = check_exercises(
                driver
            )
            visit.console_errors += console_errors(driver)
            visit.requests += requested_urls(driver)
        results[page] = visit
    print(
        f"\nbrowser: {len(results)} pages in {time.monotonic() - start:.1f} s; "
        f"screenshots in {SCREENSHOTS}"
    )
    return results


def test_pages_ran_their_checks(visits):
    errors = [
        f"{v.page}: {v.report['error']}"
        for v in visits.values()
        if "error" in v.report
    ]
    assert not errors, "the in-page check failed:\n" + "\n".join(errors)


def test_math_is_typeset(visits):
    problems = []
    for v in visits.values():
        r = v.report
        if r.get("math_sources"):
            if r["mathjax"] != "3.2.2":
                problems.append(
                    f"{v.page}: has math but MathJax 3.2.2 did not run "
                    f"(version {r['mathjax']})"
                )
            elif r["typeset"] < r["math_sources"]:
                problems.append(
                    f"{v.page}: {r['math_sources']} formulas but only "
                    f"{r['typeset']} typeset"
                )
        if r.get("math_errors"):
            problems.append(f"{v.page}: MathJax errors {r['math_errors']}")
        raw = RAW_TEX.search(r.get("text", ""))
        if raw:
            context = " ".join(
                r["text"][max(0, raw.start() - 80) : raw.end() + 80].split()
            )
            problems.append(f"{v.page}: raw TeX left in the text: ...{context}...")
    assert not problems, "\n".join(problems)
    assert sum(v.report.get("typeset", 0) for v in visits.values()) > 100


def test_every_image_loads(visits):
    broken = [
        f"{v.page}: {src}"
        for v in visits.values()
        for src in v.report.get("broken_images", [])
    ]
    assert not broken, "images that did not load:\n" + "\n".join(broken)
    assert sum(v.report.get("images", 0) for v in visits.values()) >= 4


def test_every_font_loads(visits):
    """The theme's and MathJax's web fonts come from _static and all load."""
    broken = sorted(
        {
            f"{v.page}: {family}"
            for v in visits.values()
            for family in v.report.get("broken_fonts", [])
        }
    )
    assert not broken, "fonts that failed to load:\n" + "\n".join(broken)


def test_no_console_errors(visits):
    errors = [f"{v.page}: {e}" for v in visits.values() for e in v.console_errors]
    assert not errors, "console errors:\n" + "\n".join(errors)


def test_nothing_is_fetched_from_another_host(visits, server):
    """Every request the browser made (DevTools) and every resource loaded went to
    the server."""
    origin = urlsplit(server).netloc
    remote = sorted(
        {
            f"{v.page}: {url}"
            for v in visits.values()
            for url in v.requests + v.report.get("resources", [])
            if urlsplit(url).scheme in ("http", "https", "ws", "wss")
            and urlsplit(url).netloc != origin
        }
    )
    assert not remote, "fetched from other hosts:\n" + "\n".join(remote)
    assert all(v.requests for v in visits.values()), (
        "DevTools logged no request: the check checks nothing"
    )


def test_exercises_show_and_solutions_toggle(visits):
    chapters = [v for v in visits.values() if CHAPTER_PAGE.match(v.page)]
    assert chapters
    problems = [f"{v.page}: {p}" for v in chapters for p in v.toggles]
    problems += [
        f"{v.page}: only {v.exercises} exercises"
        for v in chapters
        if v.exercises < 3
    ]
    problems += [
        f"{v.page}: {v.exercises} exercises, {v.solutions} solutions"
        for v in chapters
        if v.solutions != v.exercises
    ]
    assert not problems, "\n".join(problems)


def test_screenshots_of_the_first_two_chapters(visits):
    chapters = [p for p in visits if CHAPTER_PAGE.match(p)][:2]
    for page in chapters:
        shot = screenshot_path(page)
        assert shot.is_file() and shot.stat().st_size > 20_000, (
            f"no screenshot of {page} in {SCREENSHOTS}"
        )


def test_search_finds_entropy(driver, server):
    driver.get(f"{server}/search.html?q=entropy")
    WebDriverWait(driver, 20).until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, "#search-results .search-summary")
            and "found"
            in d.find_element(
                By.CSS_SELECTOR, "#search-results .search-summary"
            ).text.lower()
        )
    )
    hits = [
        a.get_attribute("href")
        for a in driver.find_elements(
            By.CSS_SELECTOR, "#search-results ul.search li a"
        )
    ]
    assert any("02_entropy" in h for h in hits), (
        f"searching 'entropy' did not find the entropy chapter: {hits}"
    )

    # each chapter found shows a snippet of its text, not of the page's toolbar
    # (a glossary term's result shows the term alone)
    def snippets(d):
        return {
            li.find_element(By.CSS_SELECTOR, "a").get_attribute("href"): p.text
            for li in d.find_elements(
                By.CSS_SELECTOR, "#search-results ul.search li"
            )
            for p in li.find_elements(By.CSS_SELECTOR, "p.context")
            if "#term-"
            not in li.find_element(By.CSS_SELECTOR, "a").get_attribute("href")
        }

    WebDriverWait(driver, 20).until(
        lambda d: any("02_entropy" in h for h in snippets(d)),
        "the entropy chapter's search result has no snippet",
    )
    bad = {
        h: t
        for h, t in snippets(driver).items()
        if len(t) < 40 or ".ipynb" in t or "\\(" in t
    }
    assert not bad, f"search snippets without the chapter's text: {bad}"
    errors = console_errors(driver)
    assert not errors, f"console errors on the search page: {errors}"
