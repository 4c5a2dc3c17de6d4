"""The examples in the package's docstrings run, and give what they show."""
import doctest
import importlib
import pkgutil

import pytest

import numogpt

# walk_packages, not iter_modules: the checks' modules in numogpt.exercises count too
MODULES = [m.name for m in pkgutil.walk_packages(numogpt.__path__, "numogpt.") if m.name != "numogpt.__main__"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, one_thread):
    module = importlib.import_module(name)
    assert doctest.testmod(module).failed == 0
