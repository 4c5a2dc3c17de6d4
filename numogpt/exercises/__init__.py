"""The checks behind the exercises, one module per lesson.

An exercise asks the learner to finish a function. Its check calls that function on a few
cases, compares with the right answer, and either prints what it verified or raises an
`ExerciseError` whose message says, in plain words, what is wrong and how to look for it.
Every check is tested with wrong answers too (tests/test_exercises_NN.py).

Each lesson's checks live in their own module, which imports only that lesson's module and
earlier ones, so checking lesson 01 never loads the GPT of lesson 04:

    numogpt.exercises.lesson01   notebooks/01_tokenizer.ipynb   (numogpt.tokenizer, numogpt.bpe)
    numogpt.exercises.lesson02   notebooks/02_dataset.ipynb     (numogpt.data)
    numogpt.exercises.lesson03   notebooks/03_attention.ipynb   (numogpt.attention)
    numogpt.exercises.lesson04   notebooks/04_gpt.ipynb         (numogpt.model)
    numogpt.exercises.lesson05   notebooks/05_training.ipynb    (numogpt.train, numogpt.checkpoint)
    numogpt.exercises.lesson06   notebooks/06_sampling.ipynb    (numogpt.sample)
    numogpt.exercises.lesson07   notebooks/07_algorithms.ipynb  (numogpt.tasks)
    numogpt.exercises.lesson08   notebooks/08_scaling.ipynb     (numogpt.scaling)

This module holds only what they share, and imports none of them.
"""
import sys
from contextlib import contextmanager

import torch


class ExerciseError(AssertionError):
    """The answer is not right yet; the message says why."""


def attempt(fn, *args, **kwargs):
    """Call the learner's `fn`; turn 'not written yet' and crashes into plain messages."""
    name = getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseError(
            f"`{name}` is not written yet: replace `raise NotImplementedError()` with your answer."
        ) from None
    except ExerciseError:
        raise
    except Exception as e:
        raise ExerciseError(f"`{name}` crashed with {type(e).__name__}: {e}") from e


@contextmanager
def refusing(shortcuts, why):
    """Inside the block, a call to any of `shortcuts` ({name: function}) fails the exercise.

    A "by hand" exercise is pointless if the answer calls the ready-made function it is
    meant to rebuild (F.cross_entropy, or numogpt's own finished version). Watching names
    would miss `from torch.nn.functional import cross_entropy` or a wrapper, so this watches
    the calls themselves: Python's profiler hook sees every call, by its code object (a Python
    function) or by the function itself (a builtin such as torch.layer_norm).
    """
    codes = {fn.__code__: name for name, fn in shortcuts.items() if hasattr(fn, "__code__")}
    builtins = {fn: name for name, fn in shortcuts.items() if not hasattr(fn, "__code__")}
    used = []

    def watch(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            used.append(codes[frame.f_code])
        elif event == "c_call" and arg in builtins:
            used.append(builtins[arg])

    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        yield
    finally:
        sys.setprofile(previous)
        if used:  # this message wins over whatever the block raised: it is the real problem
            raise ExerciseError(f"this exercise is to write it yourself, without `{used[0]}`: {why}.")


def expect(ok, message):
    """Fail with `message` unless `ok`."""
    if not ok:
        raise ExerciseError(message)


def passed(what):
    """Tell the learner what their answer got right."""
    print(f"Correct: {what}")


def expect_tensor_of_shape(got, shape, name):
    """Fail unless the learner's `name` returned a tensor of `shape`."""
    expect(isinstance(got, torch.Tensor), f"`{name}` should return a tensor, got {type(got).__name__}.")
    expect(tuple(got.shape) == tuple(shape), f"`{name}` should return shape {tuple(shape)}, got {tuple(got.shape)}.")
