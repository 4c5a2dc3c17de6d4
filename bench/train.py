"""Time to loss: numogpt against nanoGPT's own training loop, on tiny Shakespeare, one thread.

    python bench/train.py [PATH] [--nanogpt DIR] [--runs 1] [--save-curves FILE] [--baseline]

nanoGPT (with --nanogpt DIR, a checkout you fetched): its own train.py, run as a subprocess
with one thread at the CPU settings of its README (config/train_shakespeare_char.py with
--device=cpu --compile=False --eval_iters=20 --block_size=64 --batch_size=12 --n_layer=4
--n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0). Its
data/shakespeare_char/{train,val}.bin and meta.pkl are made here from PATH, in a temporary
folder, as its prepare.py makes them (characters in sorted order, the first 90% for
training), since prepare.py would download the text. Its clock runs from the start of its
training loop (the line it prints just before) to each "step N: ... val loss X" line.
The figure: its time to its own final validation loss, at 2000 iterations.

numogpt: the fast recipe below (why: notebooks/05_training.ipynb, "speed run") until its
validation loss first shows 1.88 or less. The loss is measured as nanoGPT measures it, the
mean over 20 random validation batches of 12 blocks, and evaluation time counts on both
sides. The final loss is also measured on 200 random batches (less noisy), off the clock.

With --runs N the two take turns N times and medians are printed. --save-curves FILE writes
both validation-loss curves against wall-clock time (the first run's) as JSON, for
numogpt.viz.plot_loss_against_time. --baseline also trains numogpt with nanoGPT's recipe.
"""
import argparse
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import numogpt
from nanogpt_checkout import NOT_MEASURED, add_option
from numogpt.data import TokenBlocks, train_val_split
from numogpt.model import GPT, GPTConfig
from numogpt.tokenizer import CharTokenizer
from numogpt.train import TrainConfig, evaluate, train

TARGET = 1.88
BABY_GPT = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0)
NANOGPT_RECIPE = dict(batch_size=12, max_iters=2000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
                      eval_interval=250)
# What we changed: batches of 8, which cost the same per block on one core, so 2000 steps see
# 2/3 of nanoGPT's blocks; a 3x learning rate with a shorter warmup; the cosine ending with the budget.
FAST_RECIPE = dict(batch_size=8, max_iters=2000, learning_rate=3e-3, min_lr=3e-4, warmup_iters=50,
                   eval_interval=100)
# nanoGPT's README, "I only have a macbook": its CPU run of the baby GPT
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]
TRAINING_STARTS = re.compile(r"using fused AdamW")  # its last line before the loop
EVAL_LINE = re.compile(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)")
ITER_LINE = re.compile(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms")


# --- nanoGPT's own train.py ------------------------------------------------------------------------


def prepare_shakespeare_char(text, folder):
    """What nanoGPT's data/shakespeare_char/prepare.py writes, from `text` instead of a download."""
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    split = int(len(text) * 0.9)
    folder.mkdir(parents=True)
    for name, part in (("train", text[:split]), ("val", text[split:])):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(folder / f"{name}.bin")
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}
    (folder / "meta.pkl").write_bytes(pickle.dumps(meta))


def run_nanogpt(directory, text):
    """Run nanoGPT's train.py once; return its curve [(seconds, step, val loss)] and its step times (ms)."""
    with tempfile.TemporaryDirectory(prefix="nanogpt-") as work:
        work = Path(work)
        prepare_shakespeare_char(text, work / "data" / "shakespeare_char")  # it reads data/<dataset> from its cwd
        (work / "configurator.py").symlink_to(directory / "configurator.py")  # it execs ./configurator.py
        (work / "config").symlink_to(directory / "config")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen([sys.executable, str(directory / "train.py"), *NANOGPT_ARGS], cwd=work, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        start, curve, step_ms, tail = None, [], [], []
        for line in process.stdout:
            now = time.perf_counter()
            tail = (tail + [line])[-20:]
            if start is None and TRAINING_STARTS.search(line):
                start = now
            elif start is not None and (match := EVAL_LINE.match(line)):
                curve.append((now - start, int(match[1]), float(match[3])))
                print(f"  step {match[1]}: val loss {match[3]} at {now - start:.1f} s", flush=True)
            elif match := ITER_LINE.match(line):
                step_ms.append(float(match[2]))
        if process.wait() != 0 or not curve:
            raise RuntimeError(f"nanoGPT's train.py failed or printed no evaluations; its last lines:\n{''.join(tail)}")
    return curve, step_ms


# --- numogpt -----------------------------------------------------------------------------------------------


def run_numogpt(ids_train, ids_val, vocab_size, recipe, seed=0):
    """Train one baby GPT with `recipe`; return (curve [(seconds, step, val loss)], final loss on 200 batches)."""
    recipe = dict(recipe)
    batch_size = recipe.pop("batch_size")
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, **BABY_GPT))
    # nanoGPT samples random windows: stride 1 lets any position start a block
    train_loader = DataLoader(TokenBlocks(ids_train, 64, stride=1), batch_size=batch_size)
    random_val = TokenBlocks(ids_val, 64, stride=1)

    def val_loader(seed):
        return DataLoader(random_val, batch_size=12, shuffle=True, generator=torch.Generator().manual_seed(seed))

    config = TrainConfig(**recipe, weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, eval_iters=20,
                         seed=seed, progress=False)
    curve = []

    def clock(step, model, history):
        curve.append((time.perf_counter() - start, step, history["val"][-1][1]))
        if step % 500 == 0 or step == config.max_iters:
            print(f"  step {step}: val loss {curve[-1][2]:.4f} at {curve[-1][0]:.1f} s", flush=True)

    start = time.perf_counter()
    train(model, train_loader, val_loader(seed), config, callbacks=[clock])
    final, _ = evaluate(model, val_loader(seed + 1), max_batches=200)
    return curve, final


def seconds_to(curve, loss):
    """The time of the first evaluation at or below `loss`, or None."""
    return next((seconds for seconds, _, value in curve if value <= loss), None)


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", default=numogpt.DATA_DIR / "tinyshakespeare.txt",
                        help="tiny Shakespeare (default: the copy in numogpt/course_data/)")
    add_option(parser)
    parser.add_argument("--runs", type=int, default=1, help="runs of each (turn about; medians are printed)")
    parser.add_argument("--save-curves", metavar="FILE", type=Path,
                        help="write the first run's loss-against-time curves here (JSON)")
    parser.add_argument("--baseline", action="store_true", help="also train numogpt with nanoGPT's recipe")
    for name, value in FAST_RECIPE.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    if not Path(args.path).is_file():
        parser.error(f"no tiny Shakespeare at {args.path}: give its path as the first argument")
    torch.set_num_threads(1)

    text = Path(args.path).read_text(encoding="utf-8")
    tokenizer = CharTokenizer(text)
    ids_train, ids_val = train_val_split(tokenizer.encode(text), 0.1)
    fast = {name: getattr(args, name) for name in FAST_RECIPE}
    ours = {"numogpt, fast recipe": fast} | ({"numogpt, nanoGPT's recipe": NANOGPT_RECIPE} if args.baseline else {})
    print(f"tiny Shakespeare: {len(ids_train):,} train / {len(ids_val):,} val characters; baby GPT {BABY_GPT}; "
          f"torch {torch.__version__}, 1 thread")
    curves = {name: [] for name in (["nanoGPT"] if args.nanogpt else []) + list(ours)}
    finals = {name: [] for name in ours}
    nano_step_ms = []
    for i in range(args.runs):  # turn about: nanoGPT, then ours
        if args.nanogpt:
            print(f"run {i}: nanoGPT's train.py ({' '.join(NANOGPT_ARGS)})", flush=True)
            curve, step_ms = run_nanogpt(args.nanogpt, text)
            curves["nanoGPT"].append(curve)
            nano_step_ms += step_ms
        for name, recipe in ours.items():
            print(f"run {i}: {name} {recipe}", flush=True)
            curve, final = run_numogpt(ids_train, ids_val, tokenizer.vocab_size, recipe, seed=i)
            curves[name].append(curve)
            finals[name].append(final)
            print(f"  final val loss {final:.3f} (200 batches)", flush=True)

    print(f"\nmedians over {args.runs} run(s):")
    fast_name = "numogpt, fast recipe"
    ours_time = median_or_none(seconds_to(c, TARGET) for c in curves[fast_name])
    for name in ours:
        reached = median_or_none(seconds_to(c, TARGET) for c in curves[name])
        shown = f"{reached:.1f} s" if reached is not None else "not reached"
        print(f"  {name}: time to {TARGET}: {shown}; whole run {statistics.median(c[-1][0] for c in curves[name]):.1f} s; "
              f"final val loss {statistics.median(finals[name]):.3f} (200 batches)")
    if args.nanogpt:
        nano_time = statistics.median(c[-1][0] for c in curves["nanoGPT"])
        nano_loss = statistics.median(c[-1][2] for c in curves["nanoGPT"])
        print(f"  nanoGPT: val loss {nano_loss:.3f} at {curves['nanoGPT'][0][-1][1]} iterations in {nano_time:.1f} s "
              f"(its own timing: {statistics.median(nano_step_ms):.1f} ms per iteration)")
        ours_to_theirs = median_or_none(seconds_to(c, nano_loss) for c in curves[fast_name])
        if ours_time is not None:
            print(f"numogpt reaches {TARGET} in {ours_time / nano_time:.2f}x the time nanoGPT takes to reach "
                  f"{nano_loss:.3f}" + (f" (and nanoGPT's {nano_loss:.3f} in {ours_to_theirs / nano_time:.2f}x)"
                                        if ours_to_theirs is not None else ""))
    else:
        print(NOT_MEASURED)

    if args.save_curves:
        settings = {name: " ".join(NANOGPT_ARGS) if name == "nanoGPT" else ours[name] for name in curves}
        saved = {
            "what": "validation loss (20 random batches of 12) against seconds since the start of training, "
                    "one thread, both measured in the same run, turn about",
            "command": "python bench/train.py --nanogpt DIR --save-curves FILE",
            "torch": torch.__version__, "cpus": os.cpu_count(), "target": TARGET, "settings": settings,
            "curves": {name: [{"seconds": round(s, 2), "step": step, "val_loss": round(loss, 4)}
                              for s, step, loss in runs[0]] for name, runs in curves.items()},
        }
        args.save_curves.parent.mkdir(parents=True, exist_ok=True)
        args.save_curves.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
        print(f"curves written to {args.save_curves}")


if __name__ == "__main__":
    main()
