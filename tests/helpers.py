"""What the exercise tests share."""
import pytest

from numogpt.exercises import ExerciseError


def not_written(*args, **kwargs):
    """The student copy's stub: every exercise starts as this."""
    raise NotImplementedError()


def assert_right_passes_and_wrong_fails(check, right, wrong, message, capsys):
    """`check` accepts `right` (and says so) and rejects `wrong` with a message matching `message`."""
    check(right)
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match=message):
        check(wrong)
