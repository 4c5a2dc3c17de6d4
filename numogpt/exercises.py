"""The checks behind the exercises.

An exercise asks the learner to finish a function. Its check calls that function on a few
cases, compares with the right answer, and either prints what it verified or raises an
`ExerciseError` whose message says, in plain words, what is wrong and how to look for it.
Every check is tested with wrong answers too (tests/test_exercises.py).
"""


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


def expect(ok, message):
    """Fail with `message` unless `ok`."""
    if not ok:
        raise ExerciseError(message)


def passed(what):
    print(f"Correct: {what}")


# --- lesson 01: the tokenizer -------------------------------------------------------------


# --- lesson 02: the dataset ---------------------------------------------------------------


# --- lesson 03: attention -----------------------------------------------------------------


# --- lesson 04: the GPT model -------------------------------------------------------------


# --- lesson 05: training ------------------------------------------------------------------


# --- lesson 06: sampling ------------------------------------------------------------------
