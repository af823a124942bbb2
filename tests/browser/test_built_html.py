"""The built HTML, read as files: offline, accessible figures, downloads, every page
there.

Run on a fresh build by ``make test-build`` (see conftest.py). The book is read by
people who cannot reach a CDN, so no page may load a script, stylesheet, font or
image from another host: MathJax comes from the book's own ``_static/mathjax``
(scripts/book_assets.py).
"""

import functools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from builtbook import ROOT, chapter_pages, pages

MATHJAX_SCRIPT = "_static/mathjax/tex-mml-chtml.js"


class _Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text of its inline
    styles."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"
        if "style" in dict(attrs):
            self.styles.append(dict(attrs)["style"] or "")

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


@functools.cache
def parse(path: Path) -> _Tags:
    tags = _Tags()
    tags.feed(path.read_text(encoding="utf-8"))
    return tags


def is_remote(url: str) -> bool:
    parts = urlsplit(url.strip())
    return bool(parts.netloc) or parts.scheme not in (
        "",
        "data",
        "mailto",
        "javascript",
    )


def loaded_urls(tags: _Tags) -> list[tuple[str, str]]:
    """(tag, url) of everything a browser fetches to render the page; ``<a href>``
    is not."""
    urls = []
    for tag, attrs in tags.tags:
        if tag in (
            "script",
            "img",
            "iframe",
            "source",
            "audio",
            "video",
            "embed",
            "track",
        ) and attrs.get("src"):
            urls.append((tag, attrs["src"]))
        if (
            tag == "link"
            and attrs.get("href")
            and not {"next", "prev", "index", "search", "canonical", "alternate"}
            & set(attrs.get("rel", "").split())
        ):
            urls.append((tag, attrs["href"]))
        if tag == "object" and attrs.get("data"):
            urls.append((tag, attrs["data"]))
    for style in tags.styles:
        urls.extend(
            ("style", u) for u in re.findall(r"url\(\s*['\"]?([^'\")]+)", style)
        )
    return urls


def test_the_book_has_its_pages(site):
    built = set(pages(site))
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    entries = re.findall(r"^\s*(?:-\s*file|root):\s*(\S+)\s*$", toc, flags=re.M)
    missing = [e for e in entries if f"{e}.html" not in built]
    assert not missing, (
        f"pages in _toc.yml that the build did not produce: {missing}"
    )
    assert {
        "search.html",
        "genindex.html",
        "book/api.html",
        "book/glossary.html",
    } <= built


def test_no_page_loads_anything_from_another_host(site):
    remote = []
    for page in pages(site):
        for tag, url in loaded_urls(parse(site / page)):
            if is_remote(url):
                remote.append(f"{page}: <{tag}> {url}")
    assert not remote, (
        "pages load assets from other hosts (readers without a CDN lose them):\n"
        + "\n".join(remote)
    )


def test_no_stylesheet_imports_from_another_host(site):
    remote = []
    for css in sorted((site / "_static").rglob("*.css")):
        text = css.read_text(encoding="utf-8", errors="replace")
        for url in re.findall(
            r"(?:url\(\s*['\"]?|@import\s+['\"])([^'\")]+)", text
        ):
            if is_remote(url):
                remote.append(f"{css.relative_to(site)}: {url}")
    assert not remote, "stylesheets fetch from other hosts:\n" + "\n".join(remote)


def test_local_assets_exist(site):
    broken = []
    for page in pages(site):
        for tag, url in loaded_urls(parse(site / page)):
            if is_remote(url) or url.startswith("data:"):
                continue
            target = (site / page).parent / urlsplit(url).path
            if not target.resolve().is_file():
                broken.append(f"{page}: <{tag}> {url}")
    assert not broken, "pages reference local files the build lacks:\n" + "\n".join(
        broken
    )


def test_internal_links_lead_to_pages(site):
    broken = []
    for page in pages(site):
        for tag, attrs in parse(site / page).tags:
            href = attrs.get("href", "") if tag == "a" else ""
            path = urlsplit(href).path
            if href and not is_remote(href) and path:
                if not ((site / page).parent / path).resolve().exists():
                    broken.append(f"{page}: <a href={href!r}>")
    assert not broken, "links to pages or files the build lacks:\n" + "\n".join(
        sorted(set(broken))
    )


def test_math_pages_load_the_local_mathjax(site):
    math_pages = [
        p
        for p in pages(site)
        if 'class="math' in (site / p).read_text(encoding="utf-8")
    ]
    assert "book/02_entropy.html" in math_pages
    for page in math_pages:
        scripts = [
            a.get("src", "") for t, a in parse(site / page).tags if t == "script"
        ]
        assert any(urlsplit(s).path.endswith(MATHJAX_SCRIPT) for s in scripts), (
            f"{page} has math but does not load {MATHJAX_SCRIPT}: "
            f"{[s for s in scripts if 'math' in s.lower()]}"
        )
    fonts = site / "_static/mathjax/output/chtml/fonts/woff-v2"
    assert (site / MATHJAX_SCRIPT).is_file() and (
        fonts / "MathJax_Main-Regular.woff"
    ).is_file()
    assert (site / "_static/mathjax/input/tex/extensions/ams.js").is_file()


def test_chapters_have_alt_text_on_every_image(site):
    chapters = chapter_pages(site)
    assert chapters, "no chapter pages book/NN_topic.html were built"
    images = 0
    for page in chapters:
        for tag, attrs in parse(site / page).tags:
            if tag == "img":
                images += 1
                assert attrs.get("alt", "").strip(), (
                    f"{page}: <img src={attrs.get('src')!r}> has no alt text; "
                    "set the cell's "
                    "mystnb.image.alt metadata (nbtools: code(..., alt=...))"
                )
    assert images >= len(chapters) // 2, (
        f"only {images} figures in {len(chapters)} chapters"
    )


def test_chapters_offer_their_notebook_for_download(site):
    for page in chapter_pages(site):
        name = Path(page).with_suffix(".ipynb").name
        links = [a.get("href", "") for t, a in parse(site / page).tags if t == "a"]
        download = [h for h in links if h.endswith(f"_sources/book/{name}")]
        assert download, f"{page} has no download link to its notebook {name}"
        notebook = ((site / page).parent / download[0]).resolve()
        assert notebook.is_file(), (
            f"{page}: the download link {download[0]} points at nothing"
        )
        assert json.loads(notebook.read_text(encoding="utf-8"))["cells"], (
            f"{notebook} is not a notebook"
        )


def test_chapters_render_exercises_and_collapsed_solutions(site):
    for page in chapter_pages(site):
        classes = [
            a.get("class", "").split()
            for t, a in parse(site / page).tags
            if t == "div"
        ]
        exercises = sum("exercise" in c and "admonition" in c for c in classes)
        solutions = [c for c in classes if "solution" in c and "admonition" in c]
        assert exercises >= 3, f"{page}: {exercises} exercises rendered"
        assert len(solutions) == exercises, (
            f"{page}: {exercises} exercises but {len(solutions)} solutions"
        )
        assert all("dropdown" in c for c in solutions), (
            f"{page}: a solution is not collapsed (dropdown)"
        )


def test_chapters_are_numbered_and_number_their_contents(site):
    """Chapter NN is "NN." in its title and the sidebar; its equations, figures,
    exercises and theorems are numbered NN.k ("Exercise 3.1", "(3.2)")."""
    problems = []
    for page in chapter_pages(site):
        chapter = int(Path(page).name[:2])
        html = (site / page).read_text(encoding="utf-8")
        if not re.search(
            rf'<h1><span class="section-number">{chapter}\. </span>', html
        ):
            problems.append(f"{page}: the title is not numbered {chapter}.")
        numbers = re.findall(r'class="eqno">\((\d+)\.\d+\)', html)
        numbers += re.findall(r'class="caption-number">\w+ (\d+)\.\d+', html)
        wrong = sorted({n for n in numbers if int(n) != chapter})
        if wrong:
            problems.append(f"{page}: numbers from chapters {wrong}, not {chapter}")
        unnumbered = re.findall(r'class="eqno">\((\d+)\)', html)
        unnumbered += re.findall(r'class="caption-number">\w+ (\d+) ', html)
        if unnumbered:
            problems.append(
                f"{page}: numbers without the chapter: {unnumbered[:5]}"
            )
    sidebar = (site / "book/intro.html").read_text(encoding="utf-8")
    if not re.search(r"1\. Information content", sidebar):
        problems.append("the sidebar does not number the chapters")
    assert not problems, "\n".join(problems)
