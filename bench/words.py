"""Does the README's default run write real words, and how long does it take?

    python bench/words.py [--threads 2] [--no-reference] [--out DIR]

Runs `python -m numogpt train` with its defaults (the command the README shows) on
`--threads` threads, timed from the start of the command to its end, then samples 500
characters at temperature 0.8 after each of numogpt.sample.WORD_PROMPTS and prints the share
of their words that occur in the training text (numogpt.sample.sampled_word_share). The
reference, in the same run: the same command with one token per character (--tokenizer char).
"""
import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import torch

from numogpt.__main__ import main
from numogpt.data import load_corpus
from numogpt.sample import WORD_PROMPTS, sample_chars, sampled_word_share
from numogpt.checkpoint import load_model


def timed_run(extra_args, out):
    """Run the train command into `out`; return (wall seconds, CPU seconds, the last line it printed)."""
    printed = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):  # no progress bar
        main(["train", "--out", str(out), *extra_args])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    loss_line = next(line for line in printed.getvalue().splitlines() if line.startswith("validation loss"))
    return wall, cpu, loss_line


def report(name, extra_args, corpus, out):
    wall, cpu, loss_line = timed_run(extra_args, out)
    model, tokenizer = load_model(Path(out) / "checkpoint.pt")
    share = sampled_word_share(model, tokenizer, corpus)
    example = sample_chars(model, tokenizer, WORD_PROMPTS[0], 160, temperature=0.8,
                           generator=torch.Generator().manual_seed(0))
    print(f"{name}: {wall:.1f} s ({cpu:.1f} s of CPU), {loss_line}")
    print(f"  real words: {share:.1%} over {len(WORD_PROMPTS)} prompts of 500 characters at temperature 0.8")
    print(f"  {WORD_PROMPTS[0]!r} -> {example!r}")
    return share


def main_bench():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, a 2-core laptop)")
    parser.add_argument("--no-reference", action="store_true", help="skip the character-level reference run")
    parser.add_argument("--out", help="keep the runs' checkpoints in DIR/default and DIR/char (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus = load_corpus("train-nn")  # the default run's text: its samples are checked against it
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        ours = report("python -m numogpt train (defaults)", [], corpus, out / "default")
        if not args.no_reference:
            chars = report("reference: --tokenizer char", ["--tokenizer", "char"], corpus, out / "char")
            print(f"real words: {ours:.1%} with the defaults, {chars:.1%} with one token per character")


if __name__ == "__main__":
    main_bench()
