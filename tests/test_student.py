"""The learner's copy: no solutions left, and every check fails until the learner answers."""
import re
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from numogpt import NOTEBOOKS_DIR
from numogpt.tools.notebooks import lesson_notebooks
from numogpt.tools.student import BEGIN, END, student_notebook, write_student_copy
from tests.test_notebooks import CHECK_CALL

NOTEBOOKS = lesson_notebooks()


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    subprocess.run([sys.executable, "-m", "numogpt", "student", str(out)], check=True, capture_output=True)
    return out


def solutions(nb):
    """Each solution region's lines, stripped and without blanks."""
    found, region = [], None
    for cell in nb.cells:
        for line in cell.source.split("\n"):
            if BEGIN in line:
                region = []
            elif END in line:
                found.append(region)
                region = None
            elif region is not None and line.strip():
                region.append(line.strip())
    return found


def test_the_command_refuses_to_overwrite_the_course():
    done = subprocess.run([sys.executable, "-m", "numogpt", "student", str(NOTEBOOKS_DIR)], capture_output=True, text=True)
    assert done.returncode != 0 and "overwrite" in done.stderr


def test_a_second_run_keeps_the_learners_work(tmp_path):
    written, kept = write_student_copy(tmp_path)
    assert len(written) == len(NOTEBOOKS) and not kept
    written[0].write_text(written[0].read_text(encoding="utf-8") + " ", encoding="utf-8")  # the learner's edits
    mine = written[0].read_text(encoding="utf-8")
    written_again, kept = write_student_copy(tmp_path)
    assert not written_again and kept == written
    assert written[0].read_text(encoding="utf-8") == mine


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_our_cut_is_nbgraders(path):
    clear_solutions = pytest.importorskip("nbgrader.preprocessors").ClearSolutions
    nb = nbformat.read(path, as_version=4)
    theirs, _ = clear_solutions(enforce_metadata=False).preprocess(student_notebook(nb), {})  # nothing left to cut
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbgraders, _ = clear_solutions(enforce_metadata=False).preprocess(nb, {})
    assert student_notebook(nbformat.read(path, as_version=4)) == nbgraders == theirs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_copy_holds_no_solution_and_its_checks_fail(student_dir, path):
    original = nbformat.read(path, as_version=4)
    nb = nbformat.read(student_dir / path.name, as_version=4)
    stubs = [c for c in nb.cells if "raise NotImplementedError()" in c.source]
    page = nbformat.writes(nb)  # all a learner sees: sources, outputs, metadata
    assert BEGIN not in page
    page_lines = {line.strip() for line in "\n".join(c.source for c in nb.cells).split("\n")}
    leaked = [region for region in solutions(original) if set(region) <= page_lines]
    assert not leaked, f"a solution is on the learner's page: {leaked[:1]}"
    assert len(stubs) == sum(BEGIN in c.source for c in original.cells) >= 3
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")

    # run it from a folder outside the course, as a student would, up to its last check
    is_check = [c.cell_type == "code" and bool(CHECK_CALL.search(c.source)) for c in nb.cells]
    nb.cells = nb.cells[: max(i for i, yes in enumerate(is_check) if yes) + 1]
    NotebookClient(nb, timeout=600, allow_errors=True, resources={"metadata": {"path": str(student_dir)}}).execute()
    unwritten = ""  # the cells stopped by an unwritten answer: the names they would have made stay undefined
    for cell, check in zip(nb.cells, is_check):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if check:
            assert errors and errors[0].ename == "ExerciseError", f"check passed in the student copy: {cell.source!r}"
            assert "not written yet" in errors[0].evalue
        elif errors:
            # a later cell runs the learner's code for real, so it may meet an unwritten answer, or miss
            # a name that such a cell would have made; nothing else
            error = errors[0]
            missing = re.fullmatch(r"name '(\w+)' is not defined", error.evalue) if error.ename == "NameError" else None
            assert error.ename == "NotImplementedError" or (missing and missing.group(1) in unwritten), \
                f"only the checks and the learner's unwritten code may fail in the student copy, not: {cell.source[:80]!r}"
            unwritten += cell.source
