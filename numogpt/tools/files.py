"""Writing a file so that nothing is lost: a crash half-way never leaves half a file.

The data goes to a temporary file beside the target, which then replaces the target in one
step (os.replace is atomic on one filesystem). A reader sees the old file or the new one.
"""
import os
import tempfile
from pathlib import Path


def write_atomically(path, write):
    """Call `write(f)` on a new binary file, then put it at `path`; return the path.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_atomically(folder / "hello.txt", lambda f: f.write(b"hi")).read_bytes()
    b'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; ours are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
