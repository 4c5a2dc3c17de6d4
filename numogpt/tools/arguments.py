"""The argument checks every lesson needs: whole numbers and numbers in a range.

Python counts True and False as ints, but `block_size=True` or `temperature=False` is surely a
mistake, so none of these accept a bool. A value of the wrong kind is a TypeError, one out of
range a ValueError; both name the argument and the value, so the fix is plain.
"""
import math


def is_int(value):
    """An int that is not a bool.

    >>> is_int(3), is_int(3.0), is_int(True)
    (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    """A finite int or float that is not a bool.

    >>> is_number(0.5), is_number(float("nan")), is_number(False)
    (True, False, False)
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require_int(name, value, least=1):
    """Raise unless `value` is an int >= `least`.

    >>> require_int("block_size", 64)
    >>> require_int("block_size", 0)
    Traceback (most recent call last):
    ValueError: block_size must be 1 or more, got 0
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be {least} or more, got {value}")
