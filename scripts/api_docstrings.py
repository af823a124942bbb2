"""Sphinx extension for ``book/api.md``: module constants keep their ``#:`` comments
as written.

napoleon reads the first line of a constant's doc comment as "type: description", so
the comment "PyTorch's floor under p(1 - p) in the gradient of binary_cross_entropy:
1e-12 ..." of ``lossnotes.functional.BCE_GRAD_EPS`` was rendered with "PyTorch's
floor ..." as its *type*. In ``lossnotes`` a doc comment is prose and the type is
the value's own, so this extension hands napoleon's result for data and attributes
back to the comment as written: it keeps the lines before napoleon runs and restores
them after.

``_config.yml`` enables it with ``sphinx: local_extensions: {api_docstrings:
scripts/}``.
"""

from sphinx.application import Sphinx

PROSE = ("data", "attribute")  # what napoleon would parse as "type: description"
_written: dict[str, list[str]] = {}


def _keep(
    app: Sphinx, what: str, name: str, obj, options, lines: list[str]
) -> None:
    if what in PROSE:
        _written[name] = list(lines)


def _restore(
    app: Sphinx, what: str, name: str, obj, options, lines: list[str]
) -> None:
    if what in PROSE and name in _written:
        lines[:] = _written.pop(name)


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.napoleon")
    app.connect(
        "autodoc-process-docstring", _keep, priority=100
    )  # napoleon runs at 500
    app.connect("autodoc-process-docstring", _restore, priority=900)
    return {
        "version": "1.0",
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
