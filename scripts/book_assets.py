"""Sphinx extension: what the built book's pages load, and from where.

**MathJax from the book's own ``_static``, never from a CDN.** Many readers cannot
reach a CDN, and a book that renders its formulas only when one is up is broken for
them. ``requirements.txt`` pins ``django-static-mathjax``, a Python package that
ships MathJax's own npm package ``mathjax-full`` (the ``es5`` bundles and their web
fonts). After every HTML build this extension copies that ``es5`` tree to
``_static/mathjax/`` of the output, and ``_config.yml`` points ``mathjax_path`` at
it (Sphinx takes a relative path relative to ``_static``). The build fails, rather
than silently falling back to a CDN, when ``mathjax_path`` names another host, when
the pinned package is missing, or when it holds another MathJax version.

**Each script once.** sphinx-thebe 0.3.1, which Jupyter Book always loads, adds its
inline configuration script to every page twice, so each page declared ``const
THEBE_JS_URL`` twice: a console error on every page. Identical scripts are dropped.

**The book's own stylesheet and script.** ``book/_static/lossnotes.css`` and
``lossnotes.js`` are added to every page: displayed equations that scroll inside
their own box, wrapping code and signatures, tables that fit, figures in dark mode,
print layout.

**References in author–year order.** The pybtex style ``lossnotes``
(``bibtex_default_style``) labels entries "Shannon 1948", "Cover and Thomas 2006",
"Lin et al. 2017", sorts them by author, year and title, and prints an arXiv
preprint once, as its arXiv id (linked), not also as the same URL given in
``howpublished``.

**A proof index a reader can use.** sphinx-proof's index lists internal labels
(``thm-gibbs``); it is replaced by one that lists "Theorem 3.1 (Gibbs' inequality)"
under its chapter, in the book's order.

**One pair of brackets.** ``({eq}`label`)`` in the text would print "((3.2))", since
the role already brackets the number: the brackets around such a reference are
dropped.

**The PDF.** ``make pdf`` prints the single-page HTML (scripts/make_pdf.py); the
builders of that page get every node handler of the HTML pages, and every HTML
build publishes ``_build/loss-notes.pdf`` next to its pages when it exists, so that
the landing page links to it.

``_config.yml`` enables it with ``sphinx: local_extensions: {book_assets:
scripts/}``.
"""

import importlib.util
import json
import shutil
from pathlib import Path

from docutils import nodes
from pybtex.database import Entry
from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

MATHJAX_VERSION = "3.2.2"
TARGET = "mathjax"  # under _static/ of the built site
STATIC = Path(__file__).resolve().parents[1] / "book" / "_static"
CSS_FILES = ["lossnotes.css"]
JS_FILES = ["lossnotes-pdf.js", "lossnotes.js"]
#: The PDF of the whole book, as `make pdf` writes it; published next to the HTML
#: when it exists.
PDF = Path(__file__).resolve().parents[1] / "_build" / "loss-notes.pdf"


def mathjax_root() -> Path:
    """The directory of the pinned MathJax package (holds ``package.json`` and
    ``es5/``)."""
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    root = Path(locations[0]) / "static" / "mathjax" if locations else None
    if root is None or not (root / "package.json").is_file():
        raise ExtensionError(
            "MathJax is not installed: `pip install -r requirements.txt` installs "
            "it "
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
            f"mathjax_path must be a file under {prefix} (served locally), "
            f"not {path!r}"
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


def publish_pdf(pdf: Path, site: Path) -> bool:
    """Put ``pdf`` at the root of the HTML ``site`` if it exists, and tell the
    pages.

    ``_static/lossnotes-pdf.js`` is always written (every page loads it): it sets
    ``window.lossnotesPdf`` to the PDF's name, or to null when there is none, and
    lossnotes.js shows the landing page's link to it accordingly.
    """
    exists = pdf.is_file()
    if exists:
        shutil.copy2(pdf, site / pdf.name)
    flag = json.dumps(pdf.name if exists else None)
    (site / "_static").mkdir(parents=True, exist_ok=True)
    (site / "_static" / "lossnotes-pdf.js").write_text(
        f"window.lossnotesPdf = {flag};  // written by scripts/book_assets.py\n",
        encoding="utf-8",
    )
    return exists


def _publish_pdf(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        publish_pdf(PDF, Path(app.outdir))


def _each_script_once(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # an inline script is registered with filename None by one caller and "" by
        # another
        key = (
            script.filename or "",
            script.priority,
            tuple(sorted(script.attributes.items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _add_static(app: Sphinx, config) -> None:
    if str(STATIC) not in map(str, config.html_static_path):
        config.html_static_path.append(str(STATIC))
    for css in CSS_FILES:
        app.add_css_file(css)
    for js in JS_FILES:
        app.add_js_file(js)


# --- references: author-year labels and order
# -------------------------------------------


def _plain(latex: str) -> str:
    return Text.from_latex(latex).render_as("text")


class AuthorYearLabels(BaseLabelStyle):
    """Labels "Shannon 1948", "Cover and Thomas 2006", "Lin et al. 2017" (a, b if
    equal)."""

    def format_labels(self, sorted_entries):
        labels = [self.format_label(entry) for entry in sorted_entries]
        seen: dict[str, int] = {}
        for label in labels:
            seen[label] = seen.get(label, 0) + 1
        suffix: dict[str, int] = {}
        for label in labels:
            if seen[label] > 1:
                suffix[label] = suffix.get(label, 0) + 1
                yield f"{label}{chr(ord('a') + suffix[label] - 1)}"
            else:
                yield label

    def format_label(self, entry) -> str:
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_plain(" ".join(p.prelast_names + p.last_names)) for p in persons]
        if not names:
            who = _plain(entry.fields.get("organization", entry.key))
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who} {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    """pybtex's unsrt entries, labelled and sorted by author and year; arXiv
    once."""

    default_sorting_style = "author_year_title"
    default_label_style = "lossnotes_author_year"

    def format_entry(self, label, entry, bib_data=None):
        url = entry.fields.get("howpublished", "") + entry.fields.get("url", "")
        if "eprint" in entry.fields and "arxiv.org" in url:
            fields = {
                k: v
                for k, v in entry.fields.items()
                if k.lower() not in ("howpublished", "url")
            }
            copy = Entry(entry.type, fields=fields, persons=entry.persons)
            copy.key = entry.key
            entry = copy
        return super().format_entry(label, entry, bib_data=bib_data)


register_plugin("pybtex.style.labels", "lossnotes_author_year", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "lossnotes", AuthorYearStyle)


# --- the proof index: numbers and titles, not labels
# -------------------------------------


def _keep_proof_titles(app: Sphinx, doctree) -> None:
    titles = app.env.__dict__.setdefault("lossnotes_proof_titles", {})
    for node in doctree.findall(nodes.Element):
        if "countertype" in node.attributes and node.get("label"):
            titles[node["label"]] = node.get("title", "")


def _numbered_proof_index():
    from sphinx_proof.domain import ProofDomain, ProofIndex

    class NumberedProofIndex(ProofIndex):
        """Entries "Theorem 3.1 (Gibbs' inequality)", under "Chapter 3", in order.

        A group's heading is also the id the page's jump links point at, and the
        theme's script reads it as a CSS selector: "Chapter 3" is written with a
        no-break space (a selector may not hold a space), and the chapter's title
        goes with each entry instead.
        """

        def generate(self, docnames=None):
            env = self.domain.env
            titles = getattr(env, "lossnotes_proof_titles", {})
            groups: dict[tuple, list] = {}
            for label, info in getattr(env, "proof_list", {}).items():
                doc = info["docname"]
                if info["nonumber"] or (docnames and doc not in docnames):
                    continue
                kind = info["countertype"]
                number = (
                    env.toc_fignumbers.get(doc, {}).get(kind, {}).get(label, ())
                )
                chapter = env.toc_secnumbers.get(doc, {}).get("", ())
                name = info["realtype"].capitalize()
                if number:
                    name += " " + ".".join(map(str, number))
                name += titles.get(label, "")
                title = env.titles[doc].astext() if doc in env.titles else doc
                if chapter:
                    heading = "Chapter\u00a0" + ".".join(map(str, chapter))
                else:
                    heading = "Other"
                key = (chapter or (999,), heading)
                groups.setdefault(key, []).append(
                    (number, [name, 0, doc, label, title, "", ""])
                )
            content = [
                (heading, [entry for _, entry in sorted(entries)])
                for (_, heading), entries in sorted(groups.items())
            ]
            return content, False

    ProofDomain.indices = [NumberedProofIndex]


# --- equation references: one pair of brackets
# -------------------------------------------


def _single_brackets(app: Sphinx, doctree) -> None:
    """``({eq}`x`)`` would print "((3.2))": the role already brackets the number."""
    from sphinx.addnodes import pending_xref

    for ref in list(doctree.findall(pending_xref)):
        if ref.get("reftype") != "eq" or ref.parent is None:
            continue
        parent = ref.parent
        i = parent.index(ref)
        before = parent[i - 1] if i > 0 else None
        after = parent[i + 1] if i + 1 < len(parent) else None
        if (
            isinstance(before, nodes.Text)
            and isinstance(after, nodes.Text)
            and before.astext().endswith("(")
            and after.astext().startswith(")")
        ):
            parent[i - 1] = nodes.Text(before.astext()[:-1])
            parent[i + 1] = nodes.Text(after.astext()[1:])


def _html_nodes_in_singlehtml(app: Sphinx) -> None:
    """The single-page HTML (the PDF's source) renders every node the HTML pages do.

    An extension that registers a node for the ``singlehtml`` builder by name stops
    Sphinx from falling back to the ``html`` handlers for all the others (myst-nb's
    hidden cell inputs then crash the build): give that builder every ``html``
    handler it lacks.
    """
    handlers = app.registry.translation_handlers
    if app.builder.name != "html" and app.builder.name in handlers:
        for name, pair in handlers.get("html", {}).items():
            handlers[app.builder.name].setdefault(name, pair)


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("builder-inited", _html_nodes_in_singlehtml)
    app.connect("doctree-read", _single_brackets)
    _numbered_proof_index()
    app.connect("config-inited", _add_static)
    app.connect("doctree-read", _keep_proof_titles)
    app.connect("config-inited", _check_config)
    app.connect("html-page-context", _each_script_once)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _publish_pdf)
    return {
        "version": MATHJAX_VERSION,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
