"""Lessons never import later lessons: the package reads, and loads, front to back.

The rule, for every module of numogpt (the exercise checks included), read from its source:
- a lesson's module imports only modules of its own lesson, earlier lessons, lesson 0 (the
  basics every lesson shares: paths, argument checks, safe file writing) and the modules
  beside the lessons; at any depth: an import inside a function counts as one at the top;
- a module beside the lessons (viz, widgets, the command, the student copy, the checks' shared
  core) imports only lesson 0 and its neighbours. The one exception: widgets, __main__, runs and
  doctor may import a lesson lazily, inside the function that needs it (widgets.sampler_widget
  needs lesson 06's sampler; the command trains and samples; the doctor checks GPT-2's files and
  times a training step). Every lesson imports viz, so viz imports no lesson at all.
Then fresh interpreters confirm it: importing a lesson's checks, or viz, loads nothing later.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import numogpt

BESIDE = "beside the lessons"

# Every module of numogpt and where it sits: a new module must be placed here, or the test fails.
LESSON = {
    "numogpt": 0, "numogpt.tools": 0, "numogpt.tools.arguments": 0, "numogpt.tools.files": 0,
    "numogpt.tokenizer": 1, "numogpt.bpe": 1, "numogpt.gpt2_files": 1,
    "numogpt.data": 2,
    "numogpt.attention": 3,
    "numogpt.model": 4, "numogpt.pretrained": 4,
    "numogpt.train": 5, "numogpt.checkpoint": 5,
    "numogpt.sample": 6,
    "numogpt.tasks": 7,
    "numogpt.scaling": 8,
    **{f"numogpt.exercises.lesson{n:02d}": n for n in range(1, 9)},
    "numogpt.exercises": BESIDE, "numogpt.viz": BESIDE, "numogpt.widgets": BESIDE,
    "numogpt.tools.student": BESIDE, "numogpt.tools.notebooks": BESIDE,
    "numogpt.__main__": BESIDE, "numogpt.runs": BESIDE, "numogpt.tools.doctor": BESIDE,
}
LAZY_ALLOWED = {"numogpt.widgets", "numogpt.__main__", "numogpt.runs", "numogpt.tools.doctor"}

PACKAGE_DIR = Path(numogpt.__file__).parent


def module_name(path):
    parts = ("numogpt",) + path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def numogpt_imports(name, path):
    """(imported module, lazily?) for every import of a numogpt module in the source at `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lazy = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(fn)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from .lesson01 import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from numogpt import sample` imports the module numogpt.sample; `from numogpt import ROOT` the package
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in LESSON else base for alias in node.names]
        else:
            continue
        found += [(target, id(node) in lazy) for target in targets if target.split(".")[0] == "numogpt"]
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_later_lesson(name):
    where = LESSON.get(name)
    assert where is not None, f"add {name} to LESSON in tests/test_imports.py: which lesson is it part of?"
    for target, lazily in numogpt_imports(name, MODULES[name]):
        assert target in LESSON, f"{name} imports {target}, which is not in LESSON in tests/test_imports.py: add it"
        if where != BESIDE:
            assert LESSON[target] == BESIDE or LESSON[target] <= where, (
                f"{name} (lesson {where}) imports {target} of the later lesson {LESSON[target]}")
        elif not (lazily and name in LAZY_ALLOWED):
            assert LESSON[target] in (0, BESIDE), (
                f"{name}, beside the lessons, imports {target} (lesson {LESSON[target]})"
                + (" at its top: import it inside the function that needs it" if name in LAZY_ALLOWED else ""))


def loaded_by(statement):
    """The numogpt modules a fresh interpreter has loaded after `statement`."""
    code = f"{statement}; import sys, json; print(json.dumps(sorted(m for m in sys.modules if m.startswith('numogpt'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("n", range(1, 9))
def test_a_lessons_checks_load_no_later_lesson(n):
    loaded = loaded_by(f"import numogpt.exercises.lesson{n:02d}")
    later = [m for m in loaded if LESSON[m] != BESIDE and LESSON[m] > n]
    assert not later, f"importing lesson {n:02d}'s checks loads the later {later}"


def test_importing_viz_loads_no_lesson_and_changes_no_matplotlib_setting():
    loaded = loaded_by("import matplotlib; before = dict(matplotlib.rcParams); import numogpt.viz; "
                       "assert dict(matplotlib.rcParams) == before, 'importing numogpt.viz changed "
                       "matplotlib.rcParams: give each figure its settings where it is made'")
    lessons = [m for m in loaded if LESSON[m] not in (0, BESIDE)]
    assert not lessons, f"importing numogpt.viz loads {lessons}: import them inside the function that needs them"


def test_the_command_and_the_trainer_load_no_widgets():
    """`python -m numogpt train` saves a PNG of its loss: matplotlib, but never ipywidgets."""
    done = subprocess.run([sys.executable, "-c", "import numogpt.__main__, numogpt.train, numogpt.sample, numogpt.tasks, "
                           "numogpt.runs, numogpt.viz, sys; print('ipywidgets' in sys.modules)"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"], "the command's path imports ipywidgets: keep widgets in numogpt.widgets"
