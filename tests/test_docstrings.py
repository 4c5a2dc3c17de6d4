"""The examples in the package's docstrings run, and give what they show."""
import doctest
import importlib
import pkgutil

import pytest

import numogpt

# walk_packages, not iter_modules: the checks' modules in numogpt.exercises count too
NAMES = [m.name for m in pkgutil.walk_packages(numogpt.__path__, "numogpt.") if m.name != "numogpt.__main__"]


def has_examples(name):
    return any(test.examples for test in doctest.DocTestFinder().find(importlib.import_module(name)))


# a module without examples would make a test that checks nothing: it is not listed
MODULES = [name for name in NAMES if has_examples(name)]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, one_thread):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_the_lesson_modules_all_show_examples():
    lessons = ["tokenizer", "bpe", "data", "attention", "model", "train", "sample"]
    assert {f"numogpt.{name}" for name in lessons} <= set(MODULES)
