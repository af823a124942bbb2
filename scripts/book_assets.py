"""Sphinx extension: what the built book's pages load, and from where.

**MathJax from the book's own ``_static``, never from a CDN.** Many readers cannot reach a CDN,
and a book that renders its formulas only when one is up is broken for them. ``requirements.txt``
pins ``django-static-mathjax``, a Python package that ships MathJax's own npm package
``mathjax-full`` (the ``es5`` bundles and their web fonts). After every HTML build this
extension copies that ``es5`` tree to ``_static/mathjax/`` of the output, and ``_config.yml``
points ``mathjax_path`` at it (Sphinx takes a relative path relative to ``_static``). The build
fails, rather than silently falling back to a CDN, when ``mathjax_path`` names another host,
when the pinned package is missing, or when it holds another MathJax version.

**Each script once.** sphinx-thebe 0.3.1, which Jupyter Book always loads, adds its inline
configuration script to every page twice, so each page declared ``const THEBE_JS_URL`` twice: a
console error on every page. Identical scripts are dropped.

``_config.yml`` enables it with ``sphinx: local_extensions: {book_assets: scripts/}``.
"""

import importlib.util
import json
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

MATHJAX_VERSION = "3.2.2"
TARGET = "mathjax"  # under _static/ of the built site


def mathjax_root() -> Path:
    """The directory of the pinned MathJax package (holds ``package.json`` and ``es5/``)."""
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    root = Path(locations[0]) / "static" / "mathjax" if locations else None
    if root is None or not (root / "package.json").is_file():
        raise ExtensionError(
            "MathJax is not installed: `pip install -r requirements.txt` installs it "
            "(the package django-static-mathjax)"
        )
    version = json.loads((root / "package.json").read_text(encoding="utf-8"))[
        "version"
    ]
    if version != MATHJAX_VERSION:
        raise ExtensionError(
            f"expected MathJax {MATHJAX_VERSION}, found {version} in {root}"
        )
    return root


def _check_config(app: Sphinx, config) -> None:
    path = config.mathjax_path
    prefix = TARGET + "/"
    if "://" in path or path.startswith("/") or not path.startswith(prefix):
        raise ExtensionError(
            f"mathjax_path must be a file under {prefix} (served locally), not {path!r}"
        )
    bundle = mathjax_root() / "es5" / path[len(prefix) :]
    if not bundle.is_file():
        raise ExtensionError(
            f"mathjax_path {path!r}: MathJax {MATHJAX_VERSION} has no {bundle.name}"
        )


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    root = mathjax_root()
    target = Path(app.outdir) / "_static" / TARGET
    stamp = target / ".version"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == MATHJAX_VERSION:
        return  # an incremental build: the copy is already there
    shutil.copytree(root / "es5", target, dirs_exist_ok=True)
    shutil.copy2(root / "LICENSE", target / "LICENSE")  # Apache-2.0 asks for it
    stamp.write_text(MATHJAX_VERSION, encoding="utf-8")


def _each_script_once(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # an inline script is registered with filename None by one caller and "" by another
        key = (
            script.filename or "",
            script.priority,
            tuple(sorted(script.attributes.items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _check_config)
    app.connect("html-page-context", _each_script_once)
    app.connect("build-finished", _copy_mathjax)
    return {
        "version": MATHJAX_VERSION,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
