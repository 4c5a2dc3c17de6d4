"""The student copy: no solutions left, and every check fails until the learner answers."""
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from numogpt import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


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

    # run it from a folder outside the course, as a student would: the checks must fail
    NotebookClient(nb, timeout=600, allow_errors=True, resources={"metadata": {"path": str(student_dir)}}).execute()
    checks = [c for c in nb.cells if c.cell_type == "code" and "check_" in c.source]
    assert len(checks) >= 3
    for cell in checks:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors and errors[0].ename == "ExerciseError", f"check passed in the student copy: {cell.source!r}"
        assert "not written yet" in errors[0].evalue
    other_errors = [c.source for c in nb.cells if c.cell_type == "code" and "check_" not in c.source
                    and any(o.output_type == "error" for o in c.outputs)]
    assert not other_errors, "only the checks may fail in the student copy"
