"""The learner's copy of the course: every notebook with its solutions cut out.

A solution sits between `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markers).
The cut replaces it with `raise NotImplementedError()`, exactly as nbgrader's ClearSolutions
does (tests/test_student.py compares the two on every lesson), so each check after it fails
with "not written yet" until the learner writes the answer. Outputs are cleared too: a stored
output would show the answer. The cut is ours so that learners need not install nbgrader
(it adds grading menus to JupyterLab); teachers get the same copy either way.

The solved lessons stay in notebooks/: that is where a learner looks to reveal a solution.
"""
import re
from pathlib import Path

import nbformat

from numogpt import NOTEBOOKS_DIR
from numogpt.tools.notebooks import lesson_notebooks

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]  # nbgrader's stub for Python


def clear_solutions(source):
    """Replace each solution region of a code cell's `source` by the stub, at the marker's indent.

    >>> print(clear_solutions("def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n    ### END SOLUTION"))
    def f():
        # YOUR CODE HERE
        raise NotImplementedError()
    """
    lines, in_solution = [], False
    for line in source.split("\n"):
        if BEGIN in line:
            if in_solution:
                raise ValueError(f"a solution starts inside another one: {source[:80]!r}")
            in_solution = True
            indent = re.match(r"\s*", line).group(0)
            lines += [indent + stub for stub in STUB]
        elif END in line:
            in_solution = False
        elif not in_solution:
            lines.append(line)
    if in_solution:
        raise ValueError(f"a solution has no {END!r}: {source[:80]!r}")
    return "\n".join(lines)


def student_notebook(nb):
    """Return a copy of notebook `nb` without solutions or outputs."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.source = clear_solutions(cell.source)
    nb.metadata.pop("celltoolbar", None)  # as nbgrader does
    return nb


def write_student_copy(out_dir, notebooks_dir=NOTEBOOKS_DIR):
    """Write the student copy of every lesson notebook into `out_dir`; return (written, kept).

    A notebook already in `out_dir` is the learner's work: it is kept, never overwritten
    (delete it to start that lesson again from blank).
    """
    out_dir = Path(out_dir)
    if out_dir.resolve() == Path(notebooks_dir).resolve():
        raise ValueError("the student copy would overwrite the course: choose another folder")
    sources = lesson_notebooks(notebooks_dir)
    if not sources:
        raise ValueError(f"no lesson notebooks (NN_topic.ipynb) in {notebooks_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for src in sources:
        target = out_dir / src.name
        if target.exists():
            kept.append(target)
            continue
        nbformat.write(student_notebook(nbformat.read(src, as_version=4)), target)
        written.append(target)
    return written, kept
