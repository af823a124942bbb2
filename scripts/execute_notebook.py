"""Execute notebooks top to bottom in a fresh kernel and store their outputs in
place.

Usage: python scripts/execute_notebook.py book/01_information.ipynb [more.ipynb ...]

The kernel is this interpreter (the project's .venv), the same one `make test` gives
nbval, so what is stored is what CI re-checks.
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    nbformat.write(nb, path)
    print(f"executed {path}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        execute(Path(arg))
