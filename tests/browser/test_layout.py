"""The built book as a reader sees it on a phone (390 x 844) and a wide screen (1400
px), in light and dark mode: nothing is cut off, nothing widens the page, the
phone's menu works.

Every page is loaded at both widths and in both modes (``layouts``, below); the
tests then check what was measured, and each failure lists exactly which page,
equation or code cell is at fault, so one run gives the whole list to fix:

- no page scrolls horizontally, at 390 or at 1400 px (the elements that stick out
  are named);
- at 1400 px every displayed equation fits its column; at 390 px one that is wider
  scrolls inside its own box, and none is cut;
- at 1400 px no code cell's input needs horizontal scrolling;
- equation references print one pair of brackets, "(3.2)", never "((3.2))";
- the API page shows no raw reST (``:raises ...:``, double back-quotes,
  ``.. math::``);
- in dark mode, math has a contrast of at least 4.5:1 against what is behind it;
- at 390 x 844 the visible ☰ opens the list of chapters.

Screenshots of every page at both widths in both modes go to ``_build/screenshots/``
(``<page>--<width>-<mode>.png``), for a person to look at.
"""

import re
import time

import pytest
from builtbook import SCREENSHOTS, open_page, page_script, pages
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WIDE, PHONE = 1400, 390
SIZES = {WIDE: 900, PHONE: 844}
MODES = ("light", "dark")
MIN_CONTRAST = 4.5

# Runs in the page once it is laid out (MathJax done): what overflows, and by how
# much.
MEASURE = page_script("measure.js")


def set_viewport(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": height,
            "deviceScaleFactor": 1,
            "mobile": width < 600,
        },
    )


def set_mode(driver, mode: str) -> None:
    """The theme's colour mode, as its switcher sets it (and remembers it)."""
    driver.execute_script(
        "localStorage.setItem('mode', arguments[0]);"
        "localStorage.setItem('theme', arguments[0]);"
        "document.documentElement.dataset.mode = arguments[0];"
        "document.documentElement.dataset.theme = arguments[0];",
        mode,
    )


def shot_path(page: str, width: int, mode: str):
    return (
        SCREENSHOTS
        / f"{page.replace('/', '_').removesuffix('.html')}--{width}-{mode}.png"
    )


def full_page_shot(driver, path, width: int, height: int) -> None:
    set_viewport(driver, width, min(max(height, SIZES[width]), 16000))
    try:
        time.sleep(0.2)
        driver.save_screenshot(str(path))
    finally:
        set_viewport(driver, width, SIZES[width])


@pytest.fixture(scope="session")
def layouts(driver, server, site) -> dict[tuple[str, int, str], dict]:
    """Every page at both widths, in both modes: what MEASURE saw; screenshots
    taken."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    results = {}
    start = time.monotonic()
    try:
        for width in (WIDE, PHONE):
            set_viewport(driver, width, SIZES[width])
            for page in pages(site):
                open_page(driver, server, site, page)
                for mode in MODES:
                    set_mode(driver, mode)
                    report = driver.execute_async_script(MEASURE)
                    results[(page, width, mode)] = report
                    full_page_shot(
                        driver,
                        shot_path(page, width, mode),
                        width,
                        report.get("height", 0),
                    )
                set_mode(driver, "light")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    print(
        f"\nlayout: {len(results)} page views in {time.monotonic() - start:.1f} s; "
        f"screenshots in {SCREENSHOTS}"
    )
    return results


def light(layouts, width):
    return {p: r for (p, w, m), r in layouts.items() if w == width and m == "light"}


def test_layout_checks_ran(layouts):
    errors = [f"{k}: {r['error']}" for k, r in layouts.items() if "error" in r]
    assert not errors, "the in-page measurement failed:\n" + "\n".join(errors)


@pytest.mark.parametrize("width", [WIDE, PHONE])
def test_no_page_scrolls_horizontally(layouts, width):
    wide = [
        f"{page}: {r['pageWidth']} px wide in a {r['vw']} px window; "
        + "; ".join(r["sticking"])
        for page, r in sorted(light(layouts, width).items())
        if r.get("pageWidth", 0) > r.get("vw", 0) + 1
    ]
    assert not wide, f"pages wider than the screen at {width} px:\n" + "\n".join(
        wide
    )


def _equation(page, e):
    name = e["id"].removeprefix("equation-") or "(unlabelled)"
    return f"{page}: equation {e['number'] or '-'} [{name}]"


def test_displayed_equations_fit_the_column_at_1400px(layouts):
    cut = [
        f"{_equation(page, e)} is {e['width']} px in a {e['box']} px column"
        for page, r in sorted(light(layouts, WIDE).items())
        for e in r.get("equations", [])
        if e["width"] > e["box"] + 1
    ]
    total = sum(len(r.get("equations", [])) for r in light(layouts, WIDE).values())
    assert total > 20, (
        f"only {total} displayed equations found: is MathJax running?"
    )
    assert not cut, (
        f"{len(cut)} of {total} displayed equations do not fit the column at "
        "1400 px "
        "(break them with aligned/split, or shorten them):\n" + "\n".join(cut)
    )


def test_displayed_equations_are_never_cut_at_390px(layouts):
    """A wider equation may scroll inside its own box on a phone; none may be
    clipped."""
    views = light(layouts, PHONE)
    cut = [
        f"{_equation(page, e)}: {e['width']} px in a {e['box']} px box"
        + (", does not scroll" if not e["scrolls"] else "")
        + (", sticks out of the column" if e["outside"] else "")
        for page, r in sorted(views.items())
        for e in r.get("equations", [])
        if e["outside"] or (e["width"] > e["box"] + 1 and not e["scrolls"])
    ]
    scrolling = sum(
        e["width"] > e["box"] + 1 for r in views.values() for e in r["equations"]
    )
    print(
        f"\nat {PHONE} px, {scrolling} displayed equations scroll in their own box"
    )
    assert not cut, "displayed equations cut off at 390 px:\n" + "\n".join(cut)


def test_no_code_cell_scrolls_at_1400px(layouts):
    wide = [
        f"{page}: code cell {c['index'] + 1}: a line of {c['chars']} characters "
        f"({c['width']} px in {c['box']} px): {c['line']!r}"
        for page, r in sorted(light(layouts, WIDE).items())
        for c in r.get("code", [])
        if c["width"] > c["box"] + 1
    ]
    total = sum(len(r.get("code", [])) for r in light(layouts, WIDE).values())
    assert not wide, (
        f"{len(wide)} of {total} code cells need horizontal scrolling at 1400 px "
        "(keep lines within 84 characters):\n" + "\n".join(wide)
    )


DOUBLE_BRACKETS = re.compile(r"\(\(\d+(?:\.\d+)*\)\)")


def test_equation_references_have_one_pair_of_brackets(layouts):
    found = [
        f"{page}: ...{r['text'][max(0, m.start() - 50) : m.end() + 20]!s}..."
        for page, r in sorted(light(layouts, WIDE).items())
        for m in DOUBLE_BRACKETS.finditer(r.get("text", ""))
    ]
    assert not found, 'equation references printed as "((n))":\n' + "\n".join(found)


RAW_REST = re.compile(
    r"(?<![\w`]):(?:raises|param|returns?|rtype|type|func|class|meth|mod|attr|data|math)"
    r"(?::|\s+\w+:)|``|\.\. [a-z-]+::"
)


def test_api_page_shows_no_raw_rest(layouts):
    text = light(layouts, WIDE)["book/api.html"]["text"]
    found = [
        " ".join(text[max(0, m.start() - 60) : m.end() + 40].split())
        for m in RAW_REST.finditer(text)
    ]
    assert not found, "raw reST on the API page:\n" + "\n".join(found)


def test_math_in_dark_mode_has_contrast(layouts):
    low = sorted(
        {
            f"{page} at {width} px: {c['ratio']:.2f}:1 for {c['text']!r}"
            for (page, width, mode), r in layouts.items()
            if mode == "dark"
            for c in r.get("contrast", [])
            if c["ratio"] < MIN_CONTRAST
        }
    )
    measured = sum(
        len(r.get("contrast", []))
        for (_, _, m), r in layouts.items()
        if m == "dark"
    )
    assert measured > 50, f"only {measured} formulas measured in dark mode"
    assert not low, f"math below {MIN_CONTRAST}:1 in dark mode:\n" + "\n".join(low)


def test_screenshots_of_every_page(layouts, site):
    missing = [
        shot_path(page, width, mode).name
        for page in pages(site)
        for width in (WIDE, PHONE)
        for mode in MODES
        if not shot_path(page, width, mode).is_file()
        or shot_path(page, width, mode).stat().st_size < 5_000
    ]
    assert not missing, f"screenshots missing from {SCREENSHOTS}: {missing}"


def test_phone_menu_opens_the_chapter_list(driver, server, site):
    """At 390 x 844 the ☰ a reader sees (the first visible one) shows the
    chapters."""
    page = "book/02_entropy.html"
    set_viewport(driver, PHONE, SIZES[PHONE])
    try:
        driver.get(f"{server}/{page}")
        toggles = [
            t
            for t in driver.find_elements(By.CSS_SELECTOR, ".primary-toggle")
            if t.is_displayed()
        ]
        assert toggles, f"{page}: no visible ☰ (.primary-toggle) at {PHONE} px"
        all_toggles = driver.find_elements(By.CSS_SELECTOR, ".primary-toggle")
        assert all_toggles[0] == toggles[0], (
            f"{page}: the first .primary-toggle in the page, which the theme's "
            "script "
            "binds, is hidden: the ☰ a reader taps does nothing"
        )

        def chapter_links_shown(d):
            return [
                a
                for a in d.find_elements(
                    By.CSS_SELECTOR, "a[href*='03_kl_cross_entropy']"
                )
                if a.is_displayed()
                and 0 <= a.rect["x"] < PHONE
                and 0 <= a.rect["y"] < SIZES[PHONE]
            ]

        assert not chapter_links_shown(driver), (
            f"{page}: the chapter list is open before the ☰ is tapped"
        )
        toggles[0].click()
        WebDriverWait(driver, 5).until(
            chapter_links_shown,
            f"{page}: tapping the visible ☰ at {PHONE} px did not show the "
            "chapters",
        )
        headers = [
            h
            for h in driver.find_elements(By.CSS_SELECTOR, "header.bd-header")
            if h.is_displayed()
        ]
        assert not headers, (
            f"{page}: a second, full-width header strip is shown (theme pairing?)"
        )
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
