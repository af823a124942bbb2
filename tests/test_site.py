"""What a reader and an instructor rely on, checked on the book's sources.

Every chapter (a notebook ``book/NN_topic.ipynb``) has at least three exercises,
each with a collapsed solution whose code asserts its answer; the theorems the
chapters promise exist; every technical term in a chapter heading is in the
English-Chinese glossary; every chapter cites its sources and every source in
``book/references.bib`` is cited; every figure has alt text; the API page documents
every public module of ``lossnotes``.

Sphinx (``-W -n``) already fails on a ``{term}``, ``{cite}`` or ``{prf:ref}`` that
does not resolve; these tests check what Sphinx cannot see. What needs the built
HTML (no CDN, images, the browser) is in ``tests/browser/``.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
GLOSSARY = BOOK / "glossary.md"
BIB = BOOK / "references.bib"

# A directive fence: ```{name} argument  or  :::{name} argument (MyST colon fences).
FENCE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*)$", re.M
)
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def markdown(path: Path) -> str:
    return "\n\n".join(
        source(c) for c in cells(path) if c["cell_type"] == "markdown"
    )


def directives(text: str) -> list[dict]:
    """Every fenced directive in ``text``: name, argument, ``:key: value`` options
    and body."""
    found = []
    for m in FENCE.finditer(text):
        options, lines = {}, text[m.end() :].lstrip("\n").splitlines()
        while lines and OPTION.match(lines[0].strip()):
            option = OPTION.match(lines.pop(0).strip())
            options[option["key"]] = option["value"].strip()
        close = next(
            (i for i, line in enumerate(lines) if line.strip() == m["fence"]),
            len(lines),
        )
        found.append(
            {
                "name": m["name"],
                "arg": m["arg"].strip(),
                "options": options,
                "body": "\n".join(lines[:close]).strip(),
            }
        )
    return found


def chapter_id(path: Path) -> str:
    return path.name


# --- exercises and solutions ------------------------------------------------------


def exercise_structure(
    path: Path,
) -> tuple[list[dict], list[dict], list[tuple[str, list[str]]]]:
    """Exercises, solutions, and for each gated solution its label and the code of
    its cells.

    A gated solution is a ``{solution-start}`` ... ``{solution-end}`` pair of
    markdown cells with the solution's code cells between them; the test fails on a
    pair that is not closed.
    """
    exercises, solutions, gated = [], [], []
    open_label = None
    for cell in cells(path):
        if cell["cell_type"] == "code":
            if open_label is not None:
                gated[-1][1].append(source(cell))
            continue
        if cell["cell_type"] != "markdown":
            continue
        for d in directives(source(cell)):
            if d["name"] == "exercise":
                assert open_label is None, (
                    f"{path.name}: an exercise inside solution {open_label}"
                )
                exercises.append(d)
            elif d["name"] in ("solution", "solution-start"):
                assert open_label is None, (
                    f"{path.name}: solution {open_label} is not closed by a "
                    f"{{solution-end}}"
                )
                solutions.append(d)
                if d["name"] == "solution-start":
                    open_label = d["arg"]
                    gated.append((open_label, []))
            elif d["name"] == "solution-end":
                assert open_label is not None, (
                    f"{path.name}: a {{solution-end}} without a {{solution-start}}"
                )
                open_label = None
    assert open_label is None, (
        f"{path.name}: solution {open_label} is not closed by a {{solution-end}}"
    )
    return exercises, solutions, gated


def test_there_are_chapters():
    assert CHAPTERS, "no chapter notebooks book/NN_topic.ipynb found"


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_id)
def test_chapter_has_at_least_three_labelled_exercises(path):
    exercises, _, _ = exercise_structure(path)
    assert len(exercises) >= 3, (
        f"{path.name}: {len(exercises)} exercises, the house style asks for at "
        "least 3"
    )
    unlabelled = [e for e in exercises if not e["options"].get("label")]
    assert not unlabelled, (
        f"{path.name}: every exercise needs a :label: (ex-<topic>-...) for its "
        "solution"
    )


# Each exercise says what kind it is in its first words; every chapter has all three
# kinds.
EXERCISE_KINDS = ("*(Derivation.)*", "*(Computation.)*", "*(Predict, then run.)*")


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_id)
def test_chapter_mixes_the_three_kinds_of_exercise(path):
    exercises, _, _ = exercise_structure(path)
    kinds = {
        kind
        for e in exercises
        for kind in EXERCISE_KINDS
        if e["body"].startswith(kind)
    }
    missing = [kind for kind in EXERCISE_KINDS if kind not in kinds]
    assert not missing, (
        f"{path.name}: no exercise starts with {missing}; the house style mixes a "
        "derivation, "
        "a computation and a predict-then-run question, each marked in its first "
        "words"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_id)
def test_every_exercise_has_exactly_one_solution(path):
    exercises, solutions, _ = exercise_structure(path)
    labels = [e["options"]["label"] for e in exercises if e["options"].get("label")]
    targets = [s["arg"] for s in solutions]
    missing = [label for label in labels if label not in targets]
    assert not missing, f"{path.name}: exercises without a solution: {missing}"
    orphans = [t for t in targets if t not in labels]
    assert not orphans, (
        f"{path.name}: solutions to no exercise of this chapter: {orphans}"
    )
    doubles = sorted({t for t in targets if targets.count(t) > 1})
    assert not doubles, (
        f"{path.name}: exercises with more than one solution: {doubles}"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_id)
def test_solutions_are_collapsed(path):
    _, solutions, _ = exercise_structure(path)
    shown = [
        s["arg"]
        for s in solutions
        if "dropdown" not in s["options"].get("class", "").split()
    ]
    assert not shown, (
        f"{path.name}: solutions without `:class: dropdown` (shown to the reader "
        f"at once): {shown}"
    )


def asserts(code: str) -> bool:
    """Whether ``code`` has an ``assert`` statement (not merely the word in a
    comment)."""
    return any(re.match(r"\s*assert\b", line) for line in code.splitlines())


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_id)
def test_solution_code_asserts_its_answer(path):
    _, _, gated = exercise_structure(path)
    assert any(code for _, code in gated), (
        f"{path.name}: no solution computes anything; at least one exercise should "
        "be a computation "
        "whose solution code cells sit between {solution-start} and {solution-end}"
    )
    for label, code_cells in gated:
        assert code_cells, (
            f"{path.name}: gated solution {label} has no code cell (use "
            f"{{solution}} for prose)"
        )
        for code in code_cells:
            assert asserts(code), (
                f"{path.name}: a code cell of solution {label} asserts nothing:\n"
                f"{code[:300]}"
            )


# --- theorems ---------------------------------------------------------------------

# The results the book proves, each in the chapter that owns it.
THEOREMS = {"03": "thm-gibbs", "05": "thm-mle-ce", "07": "thm-lse-bound"}


def proof_labels(path: Path) -> set[str]:
    return {
        d["options"]["label"]
        for d in directives(markdown(path))
        if d["name"].startswith("prf:") and d["options"].get("label")
    }


@pytest.mark.parametrize(
    "path", [p for p in CHAPTERS if p.name[:2] in THEOREMS], ids=chapter_id
)
def test_chapter_states_its_theorem(path):
    label = THEOREMS[path.name[:2]]
    assert label in proof_labels(path), (
        f"{path.name}: no sphinx-proof directive with :label: {label}"
    )
    kinds = [d["name"] for d in directives(markdown(path))]
    assert "prf:proof" in kinds, (
        f"{path.name}: states {label} but proves nothing ({{prf:proof}})"
    )


def test_theorems_are_referenced_from_the_chapters():
    defined = {THEOREMS[p.name[:2]] for p in CHAPTERS if p.name[:2] in THEOREMS}
    text = "\n".join(markdown(p) for p in CHAPTERS)
    referenced = set(re.findall(r"\{prf:ref\}`(?:[^`<]*<)?([\w-]+)>?`", text))
    assert defined <= referenced, (
        f"theorems no chapter refers to with {{prf:ref}}: "
        f"{sorted(defined - referenced)}"
    )


def test_theorem_labels_are_unique():
    seen = {}
    for path in CHAPTERS:
        for label in proof_labels(path):
            assert label not in seen, (
                f"{label} is defined in both {seen[label]} and {path.name}"
            )
            seen[label] = path.name


def test_exercise_and_proof_extensions_are_configured():
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    block = re.search(
        r"^  extra_extensions:\n((?:    - .*\n)+)", config, flags=re.M
    )
    assert block, "_config.yml has no sphinx.extra_extensions list"
    extensions = re.findall(r"^    - (\S+)", block[1], flags=re.M)
    for name in (
        "sphinx_exercise",
        "sphinx_proof",
        "sphinx.ext.autodoc",
        "sphinx.ext.napoleon",
    ):
        assert name in extensions, (
            f"_config.yml: sphinx.extra_extensions lacks {name}"
        )


# --- glossary ---------------------------------------------------------------------


def glossary_entries() -> list[dict]:
    """The entries of the ``{glossary}`` block: English terms, Chinese terms,
    definition lines.

    An entry is its term lines (a line with a CJK character is a Chinese term), then
    its definition indented by two spaces; entries are separated by blank lines.
    """
    text = GLOSSARY.read_text(encoding="utf-8")
    block = re.search(
        r"^```\{glossary\}[^\n]*\n(.*?)^```\s*$", text, flags=re.M | re.S
    )
    assert block, "book/glossary.md has no ```{glossary} block"
    entries = []
    for chunk in re.split(r"\n\s*\n", block[1].strip()):
        lines = [line for line in chunk.splitlines() if not OPTION.match(line)]
        terms = [line.strip() for line in lines if line and not line[0].isspace()]
        definition = [line.strip() for line in lines if line and line[0].isspace()]
        entries.append(
            {
                "en": [t for t in terms if not CJK.search(t)],
                "zh": [t for t in terms if CJK.search(t)],
                "definition": definition,
                "chunk": chunk,
            }
        )
    return entries


def glossary_terms() -> set[str]:
    return {t.casefold() for e in glossary_entries() for t in e["en"]}


def test_glossary_entries_are_english_chinese_and_defined():
    entries = glossary_entries()
    assert len(entries) >= 20, f"the glossary has only {len(entries)} entries"
    for e in entries:
        assert e["en"], f"glossary entry without an English term:\n{e['chunk']}"
        assert e["zh"], f"glossary entry {e['en'][0]!r} has no Chinese term"
        assert len(e["definition"]) == 1 and e["definition"][0], (
            f"glossary entry {e['en'][0]!r}: the definition must be one line "
            "indented by 2 spaces"
        )


def test_glossary_has_no_duplicate_terms():
    terms = [t.casefold() for e in glossary_entries() for t in e["en"] + e["zh"]]
    doubles = sorted({t for t in terms if terms.count(t) > 1})
    assert not doubles, f"terms listed twice in the glossary: {doubles}"


# The book's technical vocabulary (English, lower case, singular). A heading that
# uses one of these phrases must find it, as a term, in the glossary. Add here every
# new technical term that a chapter puts in a heading (and to the glossary, in
# English and Chinese).
VOCABULARY = [
    "all-reduce",
    "bernoulli distribution",
    "binary cross-entropy",
    "binary entropy",
    "bit",
    "calibration",
    "catastrophic cancellation",
    "chunked cross-entropy",
    "class imbalance",
    "class weight",
    "condition number",
    "cross-entropy",
    "empirical distribution",
    "entropy",
    "floating-point number",
    "focal loss",
    "fused linear cross-entropy",
    "gibbs' inequality",
    "gradient",
    "gradient saturation",
    "hinge loss",
    "ignore index",
    "information content",
    "kl divergence",
    "kullback–leibler divergence",
    "label smoothing",
    "likelihood",
    "log-likelihood",
    "log-sigmoid",
    "log-softmax",
    "log-sum-exp",
    "logistic function",
    "logistic regression",
    "logit",
    "margin loss",
    "maximum likelihood",
    "maximum likelihood estimation",
    "modulating factor",
    "multi-class classification",
    "multi-label classification",
    "multinomial logistic regression",
    "nat",
    "negative log-likelihood",
    "numerical stability",
    "one-hot",
    "one-hot encoding",
    "overflow",
    "perplexity",
    "probability distribution",
    "probability target",
    "reduction",
    "relative entropy",
    "semantic segmentation",
    "sigmoid",
    "soft target",
    "softmax",
    "softmax regression",
    "softplus",
    "subnormal number",
    "support",
    "surprisal",
    "temperature",
    "ulp",
    "underflow",
    "uniform distribution",
    "unit in the last place",
    "vocab-parallel cross-entropy",
    "vocabulary",
]
# Any heading word built on one of these stems is technical even when VOCABULARY
# lacks it ("log-odds", "cross-entropies"): it must be a glossary term too.
TECHNICAL_STEM = re.compile(
    r"(?<![\w-])[\w'-]*(?:entrop|likelihood|divergence|softmax|sigmoid|softplus|logit|sum-exp|perplexit)[\w'-]*"
)


def test_glossary_has_the_whole_vocabulary():
    terms = glossary_terms()
    missing = [phrase for phrase in VOCABULARY if not singulars(phrase) & terms]
    assert not missing, (
        f"VOCABULARY phrases missing from book/glossary.md: {missing}"
    )


def headings(path: Path) -> list[str]:
    """The H1 and H2 headings of a chapter, with math (``$...$``) and code spans
    removed."""
    found = []
    for cell in cells(path):
        if cell["cell_type"] != "markdown":
            continue
        in_fence = False
        for line in source(cell).splitlines():
            if re.match(r"^\s*(`{3,}|:{3,})", line):
                in_fence = not in_fence
            elif not in_fence and re.match(r"^#{1,2} ", line):
                found.append(
                    re.sub(r"\$[^$]*\$|`[^`]*`", " ", line.lstrip("#").strip())
                )
    return found


def singulars(word: str) -> set[str]:
    """``word`` and what it is if it is an English plural."""
    forms = {word}
    if word.endswith("ies"):
        forms.add(word[:-3] + "y")
    if word.endswith("es"):
        forms.add(word[:-2])
    if word.endswith("s"):
        forms.add(word[:-1])
    return forms


def technical_phrases(heading: str) -> set[str]:
    """The technical terms of a heading, as VOCABULARY phrases or stem-matched
    words.

    Each VOCABULARY phrase is matched as whole words, any word of it possibly plural
    ("units in the last place" finds "unit in the last place"); a match inside a
    longer match ("likelihood" in "maximum likelihood") is dropped. A TECHNICAL_STEM
    word outside every match is returned as it stands, unless it is an identifier
    (``CrossEntropyLoss``, ``log_softmax``).
    """
    low = heading.lower().replace("\u2019", "'")  # as long as heading: spans match
    spans = []
    for phrase in VOCABULARY:
        words = [re.escape(w) + "(?:s|es)?" for w in phrase.split()]
        for m in re.finditer(
            r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])", low
        ):
            spans.append((m.start(), m.end(), phrase))
    kept = [
        s
        for s in spans
        if not any(o[0] <= s[0] and s[1] <= o[1] and o[:2] != s[:2] for o in spans)
    ]
    phrases = {phrase for _, _, phrase in kept}
    for m in TECHNICAL_STEM.finditer(low):
        word = heading[m.start() : m.end()]
        if re.search(r"[a-z][A-Z]|_", word):
            continue  # an identifier such as CrossEntropyLoss: code, not vocabulary
        if not any(a <= m.start() and m.end() <= b for a, b, _ in kept):
            phrases.add(m.group(0).strip("'-"))
    return phrases


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_id)
def test_heading_terms_are_in_the_glossary(path):
    """Every technical term in a chapter's H1/H2 headings is a term of the glossary.

    The rule: a heading phrase is technical when it is in VOCABULARY (this file's
    explicit list of the book's vocabulary; plurals count) or when a word of it is
    built on a technical stem (TECHNICAL_STEM: entropy, likelihood, divergence,
    softmax, ...). Each such phrase must be an English term line of book/glossary.md
    (where its Chinese name and definition live); a plural heading word matches a
    singular term. Math, code spans and identifiers (``CrossEntropyLoss``) in
    headings are ignored.
    """
    terms = glossary_terms()
    missing = {}
    for heading in headings(path):
        for phrase in technical_phrases(heading):
            if not singulars(phrase) & terms:
                missing.setdefault(phrase, heading)
    assert not missing, (
        f"{path.name}: technical terms in headings that the glossary lacks (add "
        "them to "
        f"book/glossary.md, English and Chinese): "
        + "; ".join(
            f"{term!r} in {heading!r}" for term, heading in sorted(missing.items())
        )
    )


def test_vocabulary_rule_finds_terms():
    """The heading rule itself: listed phrases, plurals, longest match, stem
    words."""
    assert technical_phrases(
        "Maximum likelihood and the negative log-likelihood"
    ) == {"maximum likelihood", "negative log-likelihood"}
    assert technical_phrases("Accuracy in units in the last place") == {
        "unit in the last place"
    }
    assert technical_phrases("Cross-checks with SciPy and PyTorch") == set()
    assert technical_phrases("Cross-entropies of log-odds ratios") == {
        "cross-entropies"
    }
    assert "cross-entropy" in singulars("cross-entropies")
    assert technical_phrases("The logit-adjusted loss") == {"logit-adjusted"}
    assert technical_phrases("NLLLoss and CrossEntropyLoss") == set()


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_id)
def test_chapter_links_terms_to_the_glossary(path):
    terms = re.findall(r"\{term\}`([^`]+)`", markdown(path))
    assert terms, (
        f"{path.name}: links no term to the glossary; link the first use of each "
        f"with {{term}}`term`"
    )


# --- bibliography -----------------------------------------------------------------


def bib_keys() -> list[str]:
    return re.findall(
        r"^@\w+\s*\{\s*([^,\s]+)\s*,", BIB.read_text(encoding="utf-8"), flags=re.M
    )


def cited_keys(text: str) -> set[str]:
    return {key.strip() for group in CITE.findall(text) for key in group.split(",")}


def book_sources() -> list[Path]:
    return sorted(BOOK.glob("**/*.ipynb")) + sorted(BOOK.glob("**/*.md"))


def test_bibliography_keys_are_unique():
    keys = bib_keys()
    assert keys, "book/references.bib has no entries"
    doubles = sorted({k for k in keys if keys.count(k) > 1})
    assert not doubles, f"book/references.bib defines these keys twice: {doubles}"


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_id)
def test_chapter_cites_its_sources(path):
    cited = cited_keys(markdown(path))
    assert cited, (
        f"{path.name}: cites no source; cite them with {{cite}}`key` (keys in "
        "book/references.bib)"
    )
    unknown = sorted(cited - set(bib_keys()))
    assert not unknown, (
        f"{path.name}: cites keys that book/references.bib lacks: {unknown}"
    )


def test_every_bibliography_entry_is_cited():
    """references.md lists the whole .bib (``:all:``), so an entry nobody cites is
    padding."""
    cited = set()
    for path in book_sources():
        text = (
            markdown(path)
            if path.suffix == ".ipynb"
            else path.read_text(encoding="utf-8")
        )
        cited |= cited_keys(text)
    uncited = sorted(set(bib_keys()) - cited)
    assert not uncited, (
        f"book/references.bib entries cited nowhere in book/: {uncited}"
    )


# The sources the book stands on; each must be cited where its result is used.
CANONICAL_SOURCES = {
    "shannon1948": "Shannon 1948, information and entropy",
    "kullback1951": "Kullback & Leibler 1951, KL divergence",
    "cover2006": "Cover & Thomas, Elements of Information Theory",
    "lin2017focal": "Lin et al. 2017, focal loss",
    "szegedy2016rethinking": "Szegedy et al. 2016, label smoothing",
    "muller2019when": "Muller et al. 2019, when label smoothing helps",
    "blanchard2021": "Blanchard, Higham & Higham 2021, accurate log-sum-exp",
    "pytorchdocs": "the PyTorch documentation",
}


def test_the_canonical_sources_are_cited():
    cited = set().union(*(cited_keys(markdown(p)) for p in CHAPTERS))
    missing = [
        f"{key} ({what})"
        for key, what in CANONICAL_SOURCES.items()
        if key not in cited
    ]
    assert not missing, f"no chapter cites: {missing}"


# --- figures and the API page -----------------------------------------------------


@pytest.mark.parametrize("path", CHAPTERS, ids=chapter_id)
def test_every_figure_has_alt_text(path):
    for cell in cells(path):
        if cell["cell_type"] != "code":
            continue
        images = [
            o
            for o in cell.get("outputs", [])
            if "image/png" in o.get("data", {})
            or "image/svg+xml" in o.get("data", {})
        ]
        alt = (
            cell.get("metadata", {})
            .get("mystnb", {})
            .get("image", {})
            .get("alt", "")
        )
        assert not images or alt.strip(), (
            f"{path.name}: a cell draws a figure without alt text; give it cell "
            "metadata "
            f"mystnb.image.alt (nbtools: code(..., alt=...)):\n{source(cell)[:200]}"
        )


def test_api_page_documents_every_public_module():
    api = (BOOK / "api.md").read_text(encoding="utf-8")
    documented = set(
        re.findall(r"^\.\. automodule:: (lossnotes\.\w+)\s*$", api, flags=re.M)
    )
    modules = {
        f"lossnotes.{p.stem}"
        for p in (ROOT / "lossnotes").glob("*.py")
        if not p.stem.startswith("_")
    } | {
        f"lossnotes.{p.parent.name}"
        for p in (ROOT / "lossnotes").glob("*/__init__.py")
    }
    assert modules - documented == set(), (
        f"book/api.md lacks an automodule for {sorted(modules - documented)}"
    )
    assert documented - modules == set(), (
        "book/api.md documents modules that do not exist: "
        f"{sorted(documented - modules)}"
    )


def test_api_page_is_in_the_toc():
    assert re.search(
        r"^\s*-\s*file:\s*book/api\s*$",
        (ROOT / "_toc.yml").read_text(encoding="utf-8"),
        flags=re.M,
    )
