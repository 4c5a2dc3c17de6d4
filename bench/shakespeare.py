"""The real run: a GPT that writes a play in three minutes. `python bench/shakespeare.py [--threads 2]`

Runs the command below (the README's, for the Shakespeare model) in this process on two threads,
timed from start to end: the tokenizer, the data, the dtype trial, every step and evaluation and
the final evaluation all count. Then it measures the model the command wrote:
- the validation loss per character on Tiny Shakespeare's last 10% (the command's validation
  split): a BPE model's loss per token times the split's tokens, over its characters;
- five samples of 400 characters at temperature 0.8, each after a newline: the share of their
  words that are words of the training split (numogpt.sample.real_word_share), and how many of
  their lines name a speaker (a short capitalised line ending in ':', as the play's do).

Any option after the known ones goes to the command, e.g. `--max-iters 300` to try a shorter run.
"""
import argparse
import re
import time
from pathlib import Path

import torch

from numogpt.__main__ import main as command
from numogpt.checkpoint import load_checkpoint, load_model, saved_run, saved_tokenizer
from numogpt.runs import TextRun, characters_per_token
from numogpt.sample import real_word_share, sample_chars
from numogpt.train import evaluate

COMMAND = ["train", "--data", "tinyshakespeare", "--tokenizer", "bpe", "--vocab-size", "1024", "--preset", "play",
           "--optimizer", "muon", "--batch-size", "16", "--max-iters", "540", "--lr", "5e-3",
           "--lr-decay-iters", "540", "--eval-interval", "90"]
SPEAKER = re.compile(r"^[A-Z][A-Za-z ']{0,30}:$")  # "ROMEO:", "KING RICHARD II:", "First Citizen:", "Nurse:"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("out/shakespeare"))
    args, more = parser.parse_known_args()
    torch.set_num_threads(args.threads)
    argv = COMMAND + more + ["--out", str(args.out)]
    print("python -m numogpt " + " ".join(argv), flush=True)
    start = time.perf_counter()
    command(argv)
    seconds = time.perf_counter() - start

    path = args.out / "checkpoint.pt"
    model, _ = load_model(path, device="cpu")
    tokenizer = saved_tokenizer(load_checkpoint(path))
    built = TextRun().build(saved_run(path), tokenizer)  # the command's own splits
    loss, _ = evaluate(model, built.val_loader)
    val_ids = built.val_loader.dataset.ids
    per_char = loss / characters_per_token(tokenizer, val_ids)
    training_text = tokenizer.decode(built.train_loader.dataset.ids.tolist())
    samples = [sample_chars(model, tokenizer, "\n", 400, temperature=0.8, generator=torch.Generator().manual_seed(seed))
               for seed in range(5)]
    words = sum(real_word_share(s, training_text) for s in samples) / len(samples)
    lines = [line.strip() for s in samples for line in s.splitlines() if line.strip()]
    speakers = sum(bool(SPEAKER.match(line)) for line in lines)
    print(f"\nthe whole command: {seconds:.1f} s on {args.threads} thread(s)")
    print(f"validation loss {loss:.4f} per token = {per_char:.4f} per character ({len(val_ids):,} tokens)")
    print(f"5 samples of 400 characters at temperature 0.8: {words:.1%} real words, "
          f"{speakers} of {len(lines)} lines name a speaker")
    print("\nthe first sample:\n" + samples[0])


if __name__ == "__main__":
    main()
