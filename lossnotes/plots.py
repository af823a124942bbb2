"""One look for every figure in the book.

Chapters call :func:`axes` to start a figure and :func:`show` to finish it. ``show`` returns
``None``, so a notebook cell that ends with it stores no object repr (which would change on
every run and break nbval).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

#: The book's colours, in the order lines are drawn.
PALETTE = ["#1f5fa8", "#d1495b", "#2e9e6b", "#edae49", "#6a4c93", "#5c5c5c"]

STYLE = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": plt.cycler(color=PALETTE),
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.frameon": False,
    "lines.linewidth": 2.0,
}


def axes(title: str, xlabel: str, ylabel: str, ncols: int = 1):
    """Start a figure in the book's style and return its axes (a list when ``ncols > 1``).

    Example:
        >>> ax = axes("Surprisal", "p", "-log p")
        >>> ax.get_title()
        'Surprisal'
        >>> plt.close("all")
    """
    plt.rcParams.update(STYLE)
    width, height = STYLE["figure.figsize"]
    fig, axs = plt.subplots(
        1, ncols, figsize=(width * (1 if ncols == 1 else 0.75 * ncols), height)
    )
    for ax in [axs] if ncols == 1 else axs:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    if ncols == 1:
        axs.set_title(title)
        return axs
    fig.suptitle(title)
    return list(axs)


def show(legend: bool = True) -> None:
    """Finish the current figure: add legends where lines are labelled, lay it out, show it.

    Returns ``None`` so that a notebook cell ending with ``show()`` stores only the image.
    """
    fig = plt.gcf()
    for ax in fig.axes:
        if legend and ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    plt.show()
