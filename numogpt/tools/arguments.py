"""The argument checks every lesson needs: whole numbers, numbers in a range, token ids.

Python counts True and False as ints, but `block_size=True` or `temperature=False` is surely a
mistake, so none of these accept a bool. A value of the wrong kind is a TypeError, one out of
range a ValueError; both name the argument and the value, so the fix is plain.
"""
import math
import operator

import torch


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


def require_int(name, value, least=1, most=None, hint=""):
    """Raise unless `value` is an int in least..most (`most` None: no upper bound).

    >>> require_int("block_size", 64)
    >>> require_int("block_size", 0)
    Traceback (most recent call last):
    ValueError: block_size must be 1 or more, got 0
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}{hint}")
    if value < least or (most is not None and value > most):
        bounds = f"{least} or more" if most is None else f"between {least} and {most}"
        raise ValueError(f"{name} must be {bounds}, got {value}{hint}")


_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def require_number(name, value, least=None, most=None, above=None, below=None, hint=""):
    """Raise unless `value` is a finite number within the bounds given: `least` <= value <= `most`,
    `above` < value < `below` (each left out when None). `hint` ends the message: an example, a fix.

    >>> require_number("top_p", 0.9, above=0, most=1)
    >>> require_number("top_p", 0, above=0, most=1, hint=" (1 keeps every token)")
    Traceback (most recent call last):
    ValueError: top_p must be a number > 0 and <= 1, got 0 (1 keeps every token)
    """
    bounds = [(op, bound) for op, bound in ((">=", least), (">", above), ("<=", most), ("<", below)) if bound is not None]
    wanted = f"{name} must be a number " + " and ".join(f"{op} {bound}" for op, bound in bounds)
    if not is_number(value):
        raise TypeError(f"{wanted.rstrip()}, got {value!r}{hint}")
    if not all(_COMPARE[op](value, bound) for op, bound in bounds):
        raise ValueError(f"{wanted}, got {value}{hint}")


TOKEN_DTYPES = (torch.long, torch.int)  # the integer types nn.Embedding takes


def token_ids(name, ids, vocab_size=None, skip=None, tensor=False):
    """`ids` as token ids, or a clear error: a str where ids belong, values that are not
    integers, an id below 0 or (given `vocab_size`) past the vocabulary. `skip`, if given, is
    the one other value allowed (targets mark the positions to skip with it).

    A list, an array or an integer tensor comes back as a LongTensor (no copy when it is one).
    With tensor=True, `ids` must already be a tensor of a type nn.Embedding takes: the model's
    input, where a list would be a mistake (on a GPU, a slow one) and is better named.

    The values are read only on the CPU, where it costs one min and max: on a GPU, reading them
    back would make the CPU wait for the GPU at every step, so there the kernels check them.

    >>> token_ids("ids", [3, 1]).tolist()
    [3, 1]
    >>> token_ids("ids", [3, 7], vocab_size=5)
    Traceback (most recent call last):
    ValueError: ids: token id 7 is outside the vocabulary 0..4; was the text encoded by another tokenizer?
    """
    if isinstance(ids, str):
        raise TypeError(f"{name} is a str: encode the text into token ids first, e.g. tokenizer.encode(text)")
    if tensor:
        if not isinstance(ids, torch.Tensor) or ids.dtype not in TOKEN_DTYPES:
            kind = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise TypeError(f"{name} must be a tensor of integer token ids, got {kind}; "
                            f"try torch.tensor({name}) or {name}.long()")
    else:
        try:
            ids = torch.as_tensor(ids)
        except (TypeError, ValueError, RuntimeError, OverflowError) as e:
            raise TypeError(f"{name} must be token ids, a list of ints or an integer tensor ({e})") from None
        if (ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool) and ids.numel():
            raise TypeError(f"{name} must be integers, got a tensor of {ids.dtype}")  # an empty list is float32: fine
        ids = ids.long()
    if ids.device.type != "cpu" or ids.numel() == 0:
        return ids
    valid = (ids >= 0) if vocab_size is None else (ids >= 0) & (ids < vocab_size)
    if skip is not None:
        valid |= ids == skip
    if not valid.all():
        bad = int(ids[~valid][0])
        if vocab_size is None:
            raise ValueError(f"{name}: token ids are never negative, found {bad}")
        also = f" ({skip} is the only other value allowed: it marks a position to skip)" if skip is not None else ""
        raise ValueError(f"{name}: token id {bad} is outside the vocabulary 0..{vocab_size - 1}{also}; "
                         f"was the text encoded by another tokenizer?")
    return ids
