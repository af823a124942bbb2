"""Fixtures for the tests of the built book: the site, a local server, a headless
Chromium.

These tests need a freshly built book. ``make test-build`` builds it with ``-W -n``
into ``_build/check`` and runs them with ``LOSSNOTES_SITE`` pointing at its HTML; by
hand:

    LOSSNOTES_SITE=_build/check/_build/html .venv/bin/python -m pytest tests/browser

Without ``LOSSNOTES_SITE`` they are skipped (``make test-unit`` leaves them out).
The browser is Debian's ``chromium`` with ``chromium-driver``: when it is missing
the browser tests are skipped with the command that installs it, except under
``CI=true``, where they fail.
"""

import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

INSTALL_HINT = (
    "sudo apt-get install chromium chromium-driver  "
    "(Debian/Ubuntu; .ci/run does it in CI)"
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


@pytest.fixture(scope="session")
def site() -> Path:
    """The root of the built HTML book (``LOSSNOTES_SITE``)."""
    path = os.environ.get("LOSSNOTES_SITE")
    if not path:
        pytest.skip(
            "no built book: `make test-build` builds one and runs these tests on it"
        )
    root = Path(path).resolve()
    assert (root / "index.html").is_file(), (
        f"LOSSNOTES_SITE={path} has no index.html: is it the HTML of a build?"
    )
    return root


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="session")
def server(site):
    """The built book served on 127.0.0.1 at a free port, for as long as the session
    lasts."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or next(
            (
                p
                for p in (f"/usr/bin/{name}", f"/usr/lib/chromium/{name}")
                if Path(p).is_file()
            ),
            None,
        )
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    """Paths of Chromium and its driver; a skip (or, under CI=true, a failure) when
    missing."""
    chromium = _find("chromium", "chromium-browser")
    driver = _find("chromedriver", "chromium-driver")
    if chromium and driver:
        return chromium, driver
    missing = " and ".join(
        n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p
    )
    message = (
        f"{missing} not found, so the real-browser test cannot run; "
        f"install it with: {INSTALL_HINT}"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def driver(browser_paths):
    """A headless Chromium driven by Selenium, its console and network logged; quit
    at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    profile = tempfile.mkdtemp(prefix="lossnotes-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    # "browser": the console; "performance": DevTools events, for every request the
    # page makes
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    browser = webdriver.Chrome(
        options=options, service=Service(executable_path=chromedriver)
    )
    browser.set_page_load_timeout(30)
    browser.set_script_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
