"""The student copy of the course: every notebook with its solutions cut out.

A solution sits between `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markers);
nbgrader's ClearSolutions replaces it with `raise NotImplementedError()`, so each check
after it fails with "not written yet" until the learner writes the answer. Outputs are
cleared too: a stored output would show the answer.
"""
from pathlib import Path

import nbformat

from numogpt import NOTEBOOKS_DIR
from numogpt.notebooks import lesson_notebooks

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def student_notebook(nb):
    """Return a copy of notebook `nb` without solutions or outputs."""
    try:
        from nbgrader.preprocessors import ClearSolutions
    except ImportError:
        raise SystemExit(
            "The student copy needs nbgrader, a teachers' tool: pip install -e '.[dev]'"
        ) from None
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # enforce_metadata=False: our cells carry no nbgrader metadata, the markers are enough
    nb, _ = ClearSolutions(enforce_metadata=False).preprocess(nb, {})
    return nb


def write_student_copy(out_dir, notebooks_dir=NOTEBOOKS_DIR):
    """Write the student copy of every lesson notebook into `out_dir`; return the paths."""
    out_dir = Path(out_dir)
    if out_dir.resolve() == Path(notebooks_dir).resolve():
        raise ValueError("the student copy would overwrite the course: choose another folder")
    sources = lesson_notebooks(notebooks_dir)
    if not sources:
        raise ValueError(f"no lesson notebooks (NN_topic.ipynb) in {notebooks_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        nb = student_notebook(nbformat.read(src, as_version=4))
        nbformat.write(nb, out_dir / src.name)
        written.append(out_dir / src.name)
    return written
