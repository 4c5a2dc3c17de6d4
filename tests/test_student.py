"""The student copy: no solutions left, and every check fails until the learner answers."""
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from numogpt import NOTEBOOKS_DIR
from numogpt.notebooks import lesson_notebooks
from tests.test_notebooks import CHECK_CALL

NOTEBOOKS = lesson_notebooks()


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    subprocess.run([sys.executable, "-m", "numogpt", "student", str(out)], check=True, capture_output=True)
    return out


def test_the_command_refuses_to_overwrite_the_course():
    done = subprocess.run([sys.executable, "-m", "numogpt", "student", str(NOTEBOOKS_DIR)], capture_output=True, text=True)
    assert done.returncode != 0 and "overwrite" in done.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_copy_holds_no_solution_and_its_checks_fail(student_dir, path):
    original = nbformat.read(path, as_version=4)
    nb = nbformat.read(student_dir / path.name, as_version=4)
    stubs = [c for c in nb.cells if "raise NotImplementedError()" in c.source]
    assert "### BEGIN SOLUTION" not in "".join(c.source for c in nb.cells)
    assert len(stubs) == sum("### BEGIN SOLUTION" in c.source for c in original.cells) >= 3
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")

    # run it from a folder outside the course, as a student would, up to its last check
    is_check = [c.cell_type == "code" and bool(CHECK_CALL.search(c.source)) for c in nb.cells]
    nb.cells = nb.cells[: max(i for i, yes in enumerate(is_check) if yes) + 1]
    NotebookClient(nb, timeout=600, allow_errors=True, resources={"metadata": {"path": str(student_dir)}}).execute()
    for cell, check in zip(nb.cells, is_check):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if check:
            assert errors and errors[0].ename == "ExerciseError", f"check passed in the student copy: {cell.source!r}"
            assert "not written yet" in errors[0].evalue
        else:
            assert not errors, f"only the checks may fail in the student copy, not: {cell.source[:80]!r}"
