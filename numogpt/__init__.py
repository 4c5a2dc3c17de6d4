"""numoGPT: build a GPT in PyTorch, one lesson at a time.

Each lesson's notebook teaches an idea step by step; the finished version lives in one
module here, and later lessons import it:

    01 tokenizer -> numogpt.tokenizer    04 GPT model -> numogpt.model
    02 dataset   -> numogpt.data         05 training  -> numogpt.train
    03 attention -> numogpt.attention    06 sampling  -> numogpt.sample
    07 algorithms (sorting, addition) -> numogpt.tasks
    08 scaling (devices, precision, many processes) -> numogpt.train, numogpt.distributed

The course's files are found from here, never by relative paths, so a notebook runs from
any folder (the set-up installs numogpt in editable mode, so these point into the clone).
"""
from pathlib import Path

__version__ = "0.1.0"

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"  # the course corpus and the stopword list
GPT2_DIR = ROOT / "gpt-2"  # GPT-2's encoder.json and vocab.bpe, copied here on first use
NOTEBOOKS_DIR = ROOT / "notebooks"
