"""The examples in the package's docstrings run, and give what they show."""
import doctest
import importlib
import pkgutil

import pytest

import numogpt

MODULES = [m.name for m in pkgutil.iter_modules(numogpt.__path__) if m.name != "__main__"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, one_thread):
    module = importlib.import_module(f"numogpt.{name}")
    assert doctest.testmod(module).failed == 0
