"""Hygiene of the lesson notebooks, read as files (nbval runs them; this checks how they were saved)."""
import json
import re

import pytest

from numogpt.tools.notebooks import INSTALL_CELL, lesson_notebooks

NOTEBOOKS = lesson_notebooks()
CHECK_CALL = re.compile(r"\bcheck_\w+\(")


def code_cells(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_lessons_are_numbered_without_gaps():
    assert [int(p.name[:2]) for p in NOTEBOOKS] == list(range(1, len(NOTEBOOKS) + 1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_numogpt_where_it_is_missing(path):
    first = code_cells(path)[0]
    assert "".join(first["source"]) == INSTALL_CELL, "re-run it: python -m numogpt rerun NOTEBOOK (it writes the install cell)"
    assert first["outputs"] == [], "where numogpt is installed, the install cell prints nothing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_top_to_bottom_in_one_run(path):
    counts = [c["execution_count"] for c in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), "run the notebook top to bottom in a fresh kernel and save it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stored_errors(path):
    for cell in code_cells(path):
        if "raises-exception" in cell["metadata"].get("tags", []):
            continue
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        assert not errors, f"stored error in cell: {''.join(cell['source'])[:80]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_three_or_more_exercises_each_followed_by_a_check(path):
    sources = ["".join(c["source"]) for c in code_cells(path)]
    solutions = [i for i, s in enumerate(sources) if "### BEGIN SOLUTION" in s]
    assert len(solutions) >= 3
    for n, i in enumerate(solutions):
        until_next = solutions[n + 1] if n + 1 < len(solutions) else len(sources)
        assert any(CHECK_CALL.search(s) for s in sources[i:until_next]), f"exercise {n + 1} has no check"
