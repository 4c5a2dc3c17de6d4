"""The lesson notebooks as files: which they are, and how a maintainer re-runs them.

The notebooks are stored executed, so the course reads well on GitHub, and nbval compares
every checked cell with its stored output. So they must be re-run the same way every time:
in lesson order, each in a fresh kernel, on one thread (floating-point sums can depend on the
thread count), without per-cell timings or widget state (both would only make diffs noisy).

    python -m numogpt rerun                                  # every lesson
    python -m numogpt rerun notebooks/05_training.ipynb      # one

Before it runs a lesson, `rerun` makes its first code cell INSTALL_CELL, which installs
numogpt on Colab and other hosted notebooks and does nothing where numogpt is installed.
"""
import os
from pathlib import Path

from numogpt import NOTEBOOKS_DIR

LESSON_GLOB = "[0-9][0-9]_*.ipynb"  # 01_tokenizer.ipynb, 02_dataset.ipynb, ...

# OWNER is a placeholder: the course has no public address yet. When it has one, change it here
# and in README.md (its Colab links), then `python -m numogpt rerun`.
COURSE_REPOSITORY = "https://github.com/OWNER/numogpt"
INSTALL_CELL_ID = "install-numogpt"
INSTALL_CELL = (
    "# On Colab and other hosted notebooks: install numogpt first. Where it is installed, this does nothing.\n"
    "try:\n"
    "    import numogpt\n"
    "except ImportError:\n"
    f'    %pip install -q "numogpt @ git+{COURSE_REPOSITORY}"'
)


def lesson_notebooks(folder=NOTEBOOKS_DIR):
    """The lesson notebooks in `folder`, in lesson order."""
    return sorted(Path(folder).glob(LESSON_GLOB))


def with_install_cell(nb):
    """`nb` whose first code cell is INSTALL_CELL: added before the others, or brought up to date."""
    import nbformat

    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    first = nb.cells[code[0]] if code else None
    if first is not None and first.get("id") == INSTALL_CELL_ID:
        first.source = INSTALL_CELL
    else:
        cell = nbformat.v4.new_code_cell(INSTALL_CELL)
        cell.id = INSTALL_CELL_ID
        nb.cells.insert(code[0] if code else len(nb.cells), cell)
    return nb


def rerun(path, timeout=600):
    """Execute the notebook at `path` top to bottom in a fresh kernel and save it in place."""
    import nbformat
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor, ExecutePreprocessor

    path = Path(path)
    nb = with_install_cell(nbformat.read(path, as_version=4))
    os.environ["OMP_NUM_THREADS"] = "1"  # the kernel inherits it: torch starts with one thread
    executor = ExecutePreprocessor(timeout=timeout, kernel_name="python3", record_timing=False,
                                   store_widget_state=False)
    nb, _ = executor.preprocess(nb, {"metadata": {"path": str(path.parent)}})
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})  # one output per print burst, as Jupyter shows it
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return path
