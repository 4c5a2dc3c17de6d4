"""Hygiene of the lesson notebooks, read as files (nbval runs them; this checks how they were saved)."""
import json
import re
from pathlib import Path

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


# --- every figure in the prose is one a cell prints ---------------------------------------------

# a figure: a number with a decimal point (1.47), a percentage (91%, 91.4 %) or a ratio (0.48x)
FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?\s?%|\d[\d,]*(?:\.\d+)?x|\d[\d,]*\.\d+)(?!\w|\.\d)")
README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def prose_figures(markdown):
    """The figures of a markdown cell, outside formulas ($...$) and code (`...`), written as the prose writes them."""
    prose = re.sub(r"`[^`]*`", "", re.sub(r"\$[^$]*\$", "", markdown))
    return [figure.replace(" ", "") for figure in FIGURE.findall(prose)]


def printed(path):
    """Everything the code cells of the notebook at `path` printed or showed as text."""
    texts = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            texts.append("".join(text))
    return "\n".join(texts)


def test_prose_figures_are_found_by_the_rule():
    assert prose_figures("1.47 per character, 91.4% or 91 % real, 0.48x nanoGPT's, $1.5$ and `0.5` aside, "
                         "torch 2.13.0 and step 500") == ["1.47", "91.4%", "91%", "0.48x"]  # not a version, not a count


@pytest.mark.parametrize("path", lesson_notebooks(), ids=lambda p: p.name)
def test_every_figure_in_the_prose_is_printed_by_a_cell(path):
    """A figure in a lesson's text is one that a cell of it, or of an earlier lesson, prints at the same
    precision, or one of the README's figures: so the text cannot drift from what the code measures."""
    lessons = lesson_notebooks()
    shown = "\n".join(printed(p) for p in lessons[:lessons.index(path) + 1]) + README
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    missing = [(i, figure) for i, cell in enumerate(cells) if cell["cell_type"] == "markdown"
               for figure in prose_figures("".join(cell["source"])) if figure not in shown]
    assert not missing, f"figures in the prose that no cell prints (cell, figure): {missing}"
