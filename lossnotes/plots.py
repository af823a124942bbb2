"""One look for every figure in the book.

Chapters call :func:`axes` to start a figure and :func:`show` to finish it.
``show`` returns ``None``, so a notebook cell that ends with it stores no object
repr (which would change on every run and break nbval).

In a notebook, importing this module switches the inline backend to PNG at twice
the resolution with a fixed display size ("retina"): figures stay crisp on
high-resolution screens and in print. Not SVG: nbval compares an SVG as text, and
its path coordinates carry the last bits of float32 results, which differ between
CPU kernel sets (AVX-512, AVX2, none); PNG images are not compared. Backgrounds are
transparent; the book's stylesheet adapts the figures to its dark mode. Axis
labels may use mathtext, e.g. ``r"$p_t$"``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

#: The book's colours, in the order lines are drawn.
PALETTE = ["#1f5fa8", "#d1495b", "#2e9e6b", "#edae49", "#6a4c93", "#5c5c5c"]

#: Width in inches of a figure that spans the text column (about 730 CSS pixels):
#: figures are shown at their natural size there, so 10.5-point text reads as 14
#: pixels.
COLUMN_WIDTH = 7.6

STYLE = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    # transparent, so the figure sits on the page's own background (light or dark)
    "figure.facecolor": "none",
    "axes.facecolor": "none",
    "savefig.facecolor": "none",
    "savefig.transparent": True,
    # reproducible SVG: the same figure gives the same bytes on every run
    "svg.hashsalt": "lossnotes",
    "svg.fonttype": "path",
    "font.size": 10.5,
    "axes.titlesize": 11.5,
    "figure.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    # math in labels in the same Computer Modern as the equations of the text
    "mathtext.fontset": "cm",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": plt.cycler(color=PALETTE),
    "legend.frameon": False,
    "lines.linewidth": 2.0,
}

#: What the inline backend passes to ``savefig``: no creation date, so outputs
#: are stable.
_PRINT_KWARGS = {"bbox_inches": "tight", "metadata": {"Date": None}}


def _use_hidpi_png() -> None:
    """In IPython, make the inline backend emit 2x PNG (else a no-op)."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.config import InlineBackend
    except ImportError:  # pragma: no cover - plain Python without IPython
        return
    if get_ipython() is None:
        return
    cfg = InlineBackend.instance()
    # assigning the traits re-registers the formatters when the backend is already
    # active, and is what the backend reads when it activates later
    cfg.print_figure_kwargs = dict(_PRINT_KWARGS)
    cfg.figure_formats = {"retina"}


plt.rcParams.update(STYLE)
_use_hidpi_png()


def axes(title: str, xlabel: str, ylabel: str, ncols: int = 1):
    """Start a figure in the book's style; return its axes (a list if ncols > 1).

    A figure with several panels is as wide as the text column, so its text is not
    shrunk.

    Example:
        >>> ax = axes("Surprisal", "p", "-log p")
        >>> ax.get_title()
        'Surprisal'
        >>> plt.close("all")
    """
    plt.rcParams.update(STYLE)
    width, height = STYLE["figure.figsize"]
    if ncols > 1:
        width, height = COLUMN_WIDTH, 3.3
    fig, axs = plt.subplots(1, ncols, figsize=(width, height))
    _use_hidpi_png()
    for ax in [axs] if ncols == 1 else axs:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    if ncols == 1:
        axs.set_title(title)
        return axs
    fig.suptitle(title)
    return list(axs)


def show(legend: bool = True) -> None:
    """Finish the current figure: legends where lines are labelled, layout, show.

    Returns ``None`` so that a notebook cell ending with ``show()`` stores only the
    image.
    """
    fig = plt.gcf()
    for ax in fig.axes:
        if legend and ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    _use_hidpi_png()
    plt.show()
