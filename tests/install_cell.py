"""The first code cell of every lesson: it installs numogpt on Colab and other hosted notebooks.

Where numogpt is installed (a clone set up as the README says), the cell prints nothing and
changes nothing, so the stored outputs stay as they are. For a new lesson, or after changing
the cell here, run `python -m tests.install_cell` from the clone, then re-run the
notebooks it changed (`python -m numogpt rerun`); tests/test_notebooks.py checks every lesson.
"""
import sys

import nbformat

from numogpt.notebooks import lesson_notebooks

# OWNER is a placeholder: the course has no public address yet. When it has one, change it
# here and in README.md (its Colab links), then run this script.
COURSE_REPOSITORY = "https://github.com/OWNER/numogpt"
INSTALL_CELL_ID = "install-numogpt"
INSTALL_CELL = f"""\
# On Colab and other hosted notebooks: install numogpt first. Where it is installed, this does nothing.
try:
    import numogpt
except ImportError:
    %pip install -q "numogpt @ git+{COURSE_REPOSITORY}"
"""
INSTALL_CELL = INSTALL_CELL.rstrip("\n")  # a cell's source has no final newline


def with_install_cell(nb):
    """`nb` whose first code cell is the install cell: added before the others, or brought up to date."""
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    first = nb.cells[code[0]] if code else None
    if first is not None and first.get("id") == INSTALL_CELL_ID:
        first.source = INSTALL_CELL
    else:
        cell = nbformat.v4.new_code_cell(INSTALL_CELL)
        cell.id = INSTALL_CELL_ID
        nb.cells.insert(code[0] if code else len(nb.cells), cell)
    return nb


def main():
    for path in lesson_notebooks():
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        if nbformat.writes(with_install_cell(nb)) != before:
            nbformat.write(nb, path)
            print(f"{path.name}: install cell written; re-run it: python -m numogpt rerun {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
