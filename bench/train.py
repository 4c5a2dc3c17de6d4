"""Time to loss: numogpt against nanoGPT's own training loop, on tiny Shakespeare, one thread.

    python bench/train.py [PATH] [--nanogpt DIR] [--runs 1] [--save-curves FILE] [--baseline] [--dtype float32]

nanoGPT (with --nanogpt DIR, a checkout you fetched): its own train.py, run as a subprocess
with one thread at the CPU settings of its README (config/train_shakespeare_char.py with
--device=cpu --compile=False --eval_iters=20 --block_size=64 --batch_size=12 --n_layer=4
--n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0). Its
data/shakespeare_char/{train,val}.bin and meta.pkl are made here from PATH, in a temporary
folder, as its prepare.py makes them (characters in sorted order, the first 90% for
training), since prepare.py would download the text. Its clock starts at the line it prints
just before its training loop and stops at each "step N: ... val loss X" line.
The figure: its time to its own final validation loss, at 2000 iterations.

numogpt: the fast recipe below (why: notebooks/08_scaling.ipynb, "speed run") until its
validation loss first shows 1.88 or less. The loss is measured as nanoGPT measures it, the
mean over 20 random validation batches of 12 blocks, and evaluation time counts on both
sides. The final loss is also measured on 200 random batches (less noisy), off the clock.
Both clocks run from the start of training (numogpt's: after its imports, as nanoGPT's) and
read wall-clock time and CPU time; CPU time moves less when other jobs share the cores.
Each run of either side is a fresh Python process with one thread, so neither inherits the
other's memory or warmed caches (ours once trained in the bench's own process, after
nanoGPT's, and its step time drifted more than nanoGPT's).

--dtype bfloat16 trains numogpt under bfloat16 autocast (lesson 08's runtime); run i is seeded
with i, so `--runs 3` once per dtype compares the two precisions on the same three seeds.

With --runs N the two take turns N times and medians are printed. --save-curves FILE writes
both validation-loss curves against wall-clock time (the first run's) as JSON, for
numogpt.viz.plot_loss_curves (lesson 08 shows them). --baseline also trains numogpt with nanoGPT's recipe.
"""
import argparse
import json
import math
import multiprocessing
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch._dynamo  # noqa: F401  AdamW imports it on first use (seconds): here, before either clock starts
from torch.utils.data import DataLoader

import numogpt
from nanogpt_checkout import NOT_MEASURED, add_option
from numogpt.data import TokenBlocks, shuffled_loader, train_val_split
from numogpt.model import GPT, GPTConfig
from numogpt.scaling import Runtime
from numogpt.tokenizer import CharTokenizer
from numogpt.train import TrainConfig, evaluate, train

TARGET = 1.88
BABY_GPT = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0)
NANOGPT_RECIPE = dict(batch_size=12, max_iters=2000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
                      eval_interval=250)
# What we changed: Muon for the weight matrices (AdamW for the rest), which learns so much more per
# step that half of nanoGPT's steps reach its final loss; batches of 8, which cost little more than
# 2/3 of a batch of 12 on one core; a 3x learning rate with a shorter warmup; the cosine ending with
# the budget, down to 1% of the peak.
FAST_RECIPE = dict(optimizer="muon", batch_size=8, max_iters=1000, learning_rate=3e-3, min_lr=3e-5,
                   warmup_iters=50, eval_interval=100)
# nanoGPT's README, "I only have a macbook": its CPU run of the baby GPT
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]
TRAINING_STARTS = re.compile(r"using fused AdamW")  # its last line before the loop
EVAL_LINE = re.compile(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)")
ITER_LINE = re.compile(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms")


Point = namedtuple("Point", "seconds cpu_seconds step val_loss")  # one evaluation on a loss curve


class Clock:
    """Wall-clock and CPU seconds since it was made, of this process or of process `pid`.

    CPU time counts only the moments the process ran, so it moves less than wall-clock time
    when other jobs share the cores (it is read from /proc: Linux; NaN elsewhere).
    """

    def __init__(self, pid=None):
        self.pid = pid
        self.start = self.read()

    def read(self):
        return time.perf_counter(), time.process_time() if self.pid is None else cpu_seconds_of(self.pid)

    def lap(self):
        """(wall seconds, CPU seconds) since the start."""
        wall, cpu = self.read()
        return wall - self.start[0], cpu - self.start[1]


def cpu_seconds_of(pid):
    try:  # fields 14 and 15 of /proc/PID/stat: user and system time, in clock ticks
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    """Run nanoGPT's train.py once; return its curve [(seconds, CPU seconds, step, val loss)] and its step times (ms)."""
    with tempfile.TemporaryDirectory(prefix="nanogpt-") as work:
        work = Path(work)
        prepare_shakespeare_char(text, work / "data" / "shakespeare_char")  # it reads data/<dataset> from its cwd
        (work / "configurator.py").symlink_to(directory / "configurator.py")  # it execs ./configurator.py
        (work / "config").symlink_to(directory / "config")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen([sys.executable, str(directory / "train.py"), *NANOGPT_ARGS], cwd=work, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        clock, curve, step_ms, tail = None, [], [], []
        for line in process.stdout:
            tail = (tail + [line])[-20:]
            if clock is None and TRAINING_STARTS.search(line):
                clock = Clock(process.pid)
            elif clock is not None and (match := EVAL_LINE.match(line)):
                curve.append(Point(*clock.lap(), int(match[1]), float(match[3])))
                print(f"  step {match[1]}: val loss {match[3]} at {curve[-1].seconds:.1f} s", flush=True)
            elif match := ITER_LINE.match(line):
                step_ms.append(float(match[2]))
        if process.wait() != 0 or not curve:
            raise RuntimeError(f"nanoGPT's train.py failed or printed no evaluations; its last lines:\n{''.join(tail)}")
    return curve, step_ms


# --- numogpt -----------------------------------------------------------------------------------------------


def run_numogpt(ids_train, ids_val, vocab_size, recipe, seed=0, dtype="float32"):
    """Train one baby GPT with `recipe`; return (curve [(seconds, CPU seconds, step, val loss)], final loss
    on 200 batches)."""
    recipe = dict(recipe)
    batch_size = recipe.pop("batch_size")
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, **BABY_GPT))
    # nanoGPT samples random windows: stride 1 lets any position start a block, in a shuffled order
    train_loader = shuffled_loader(TokenBlocks(ids_train, 64, stride=1), batch_size, seed)
    random_val = TokenBlocks(ids_val, 64, stride=1)

    def val_loader(seed):
        return DataLoader(random_val, batch_size=12, shuffle=True, generator=torch.Generator().manual_seed(seed))

    config = TrainConfig(**recipe, weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, eval_iters=20,
                         seed=seed, progress=False, dtype=dtype)
    curve = []

    def record(step, model, history):
        curve.append(Point(*clock.lap(), step, history["val"][-1][1]))
        if step % 500 == 0 or step == config.max_iters:
            print(f"  step {step}: val loss {curve[-1].val_loss:.4f} at {curve[-1].seconds:.1f} s", flush=True)

    clock = Clock()
    # lesson 08's runtime for another precision; lesson 05's own (float32 on the CPU) otherwise
    train(model, train_loader, val_loader(seed), config, callbacks=[record],
          runtime=Runtime() if dtype != "float32" else None)
    final, _ = evaluate(model, val_loader(seed + 1), max_batches=200)
    return curve, final


def one_thread():
    torch.set_num_threads(1)


def in_fresh_process(function, *args, **kwargs):
    """function(*args, **kwargs) run in a new Python process with one thread, as nanoGPT's train.py runs."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=one_thread) as pool:
        return pool.submit(function, *args, **kwargs).result()


def time_to(curve, loss, clock):
    """The `clock` time ("seconds" or "cpu_seconds") of the first evaluation at or below `loss`, or None."""
    return next((getattr(point, clock) for point in curve if point.val_loss <= loss), None)


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def both_clocks(runs, loss=None):
    """'W s (C s of CPU)': the medians over `runs` of the time to `loss` (None: to the end of the run)."""
    pick = (lambda curve, clock: getattr(curve[-1], clock)) if loss is None else \
        (lambda curve, clock: time_to(curve, loss, clock))
    wall, cpu = (median_or_none(pick(curve, clock) for curve in runs) for clock in ("seconds", "cpu_seconds"))
    return None if wall is None else (wall, cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", default=numogpt.DATA_DIR / "tinyshakespeare.txt",
                        help="tiny Shakespeare (default: the copy in numogpt/course_data/)")
    add_option(parser)
    parser.add_argument("--runs", type=int, default=1, help="runs of each (turn about; medians are printed)")
    parser.add_argument("--save-curves", metavar="FILE", type=Path,
                        help="write the first run's loss-against-time curves here (JSON)")
    parser.add_argument("--baseline", action="store_true", help="also train numogpt with nanoGPT's recipe")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "auto"],
                        help="numogpt's forward precision (bfloat16: under autocast, lesson 08's runtime)")
    for name, value in FAST_RECIPE.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    if not Path(args.path).is_file():
        parser.error(f"no tiny Shakespeare at {args.path}: give its path as the first argument")
    torch.set_num_threads(1)
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # for the processes of both sides

    text = Path(args.path).read_text(encoding="utf-8")
    tokenizer = CharTokenizer(text)
    ids_train, ids_val = train_val_split(tokenizer.encode(text), 0.1)
    fast = {name: getattr(args, name) for name in FAST_RECIPE}
    ours = {"numogpt, fast recipe": fast} | ({"numogpt, nanoGPT's recipe": NANOGPT_RECIPE} if args.baseline else {})
    print(f"tiny Shakespeare: {len(ids_train):,} train / {len(ids_val):,} val characters; baby GPT {BABY_GPT}; "
          f"torch {torch.__version__}, 1 thread; numogpt in {args.dtype}")
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
            curve, final = in_fresh_process(run_numogpt, ids_train, ids_val, tokenizer.vocab_size, recipe, seed=i,
                                            dtype=args.dtype)
            curves[name].append(curve)
            finals[name].append(final)
            print(f"  final val loss {final:.4f} (200 batches)", flush=True)

    def shown(times):
        return "not reached" if times is None else f"{times[0]:.1f} s ({times[1]:.1f} s of CPU)"

    print(f"\nmedians over {args.runs} run(s), wall-clock seconds (CPU seconds: less moved by other jobs):")
    for name in ours:
        print(f"  {name}: time to {TARGET}: {shown(both_clocks(curves[name], TARGET))}; whole run "
              f"{shown(both_clocks(curves[name]))}; final val loss {statistics.median(finals[name]):.3f} (200 batches)")
    if not args.nanogpt:
        print(NOT_MEASURED)
    else:
        theirs = both_clocks(curves["nanoGPT"])
        their_loss = statistics.median(curve[-1].val_loss for curve in curves["nanoGPT"])
        print(f"  nanoGPT: val loss {their_loss:.3f} after {curves['nanoGPT'][0][-1].step} iterations in {shown(theirs)}; "
              f"its own timing: {statistics.median(nano_step_ms):.1f} ms per iteration")
        for loss in (TARGET, their_loss):
            mine = both_clocks(curves["numogpt, fast recipe"], loss)
            if mine is not None:
                print(f"numogpt reaches {loss:.3f} in {mine[0] / theirs[0]:.2f}x the time nanoGPT takes to reach "
                      f"{their_loss:.3f} ({mine[1] / theirs[1]:.2f}x in CPU time)")

    if args.save_curves:
        settings = {name: " ".join(NANOGPT_ARGS) if name == "nanoGPT" else ours[name] for name in curves}
        saved = {
            "what": "validation loss (20 random batches of 12) against seconds since the start of training, "
                    "one thread, both measured in the same run, turn about",
            "command": "python bench/train.py --nanogpt DIR --save-curves FILE",
            "torch": torch.__version__, "cpus": os.cpu_count(), "target": TARGET, "settings": settings,
            "curves": {name: [{"seconds": round(p.seconds, 2), "cpu_seconds": round(p.cpu_seconds, 2), "step": p.step,
                               "val_loss": round(p.val_loss, 4)} for p in runs[0]] for name, runs in curves.items()},
        }
        args.save_curves.parent.mkdir(parents=True, exist_ok=True)
        args.save_curves.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
        print(f"curves written to {args.save_curves}")


if __name__ == "__main__":
    main()
