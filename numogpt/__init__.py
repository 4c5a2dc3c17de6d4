"""numoGPT: build a GPT in PyTorch, one lesson at a time.

Each lesson's notebook teaches an idea step by step; the finished version lives in one
module here, and later lessons import it:

    01 tokenizer -> numogpt.tokenizer    04 GPT model -> numogpt.model
    02 dataset   -> numogpt.data         05 training  -> numogpt.train, numogpt.checkpoint
    03 attention -> numogpt.attention    06 sampling  -> numogpt.sample
    07 algorithms (sorting, addition) -> numogpt.tasks
    08 scaling (devices, precision, slices, many processes) -> numogpt.scaling

Beside them: numogpt.viz (the pictures), numogpt.runs (the command's runs), numogpt.exercises
(the checks) and numogpt.tools (course tooling and small shared helpers).

The course's files are found from here, never by relative paths, so a notebook runs from
any folder, however numogpt was installed.
"""
from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "course_data"  # the corpora and the stopword list, shipped inside the package
# A clone of the course (installed with -e, or on PYTHONPATH) has its folders beside the package.
# Installed from a wheel or from git there is no clone: what a lesson writes (out/) then goes
# under the folder Python started in, never into site-packages.
IN_CLONE = (PACKAGE_DIR.parent / "pyproject.toml").is_file()
ROOT = PACKAGE_DIR.parent if IN_CLONE else Path.cwd()
NOTEBOOKS_DIR = ROOT / "notebooks"
