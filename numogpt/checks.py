"""The argument check every lesson needs: a count that must be a whole number.

A float where a count belongs (block_size=2.0) is a TypeError, a count too small a
ValueError; both name the argument and the value, so the fix is plain.
"""


def check_int(name, value, least=1):
    """Raise unless `value` is an int >= `least` (True and False do not count as numbers).

    >>> check_int("block_size", 64)
    >>> check_int("block_size", 0)
    Traceback (most recent call last):
    ValueError: block_size must be 1 or more, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be {least} or more, got {value}")
