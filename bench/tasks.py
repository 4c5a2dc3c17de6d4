"""Lesson 07's goals: each task trains with the command's defaults, on one thread, and is scored
on problems it never saw.

    python bench/tasks.py [--only sort6]

Each run is `python -m numogpt train --task ...` in a fresh process with OMP_NUM_THREADS=1,
exactly as a learner types it. The figures: the held-out exact match the command prints, the
wall-clock seconds of the whole command (start-up, data, training, scoring) and the CPU seconds
it used (the same as the wall clock on a quiet machine; less when other processes share it).
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

# name: (the command's options, the goal for held-out exact match, the goal in seconds); the runs
# without a goal compare the two orders of writing a sum
RUNS = {
    "sort6": (["--task", "sort"], 0.995, 60),
    "sort8x10": (["--task", "sort", "--length", "8", "--symbols", "10"], 0.95, 120),
    "add2": (["--task", "add"], 0.99, 60),
    "add2-plain": (["--task", "add", "--order", "plain"], None, 60),
    "add3": (["--task", "add", "--digits", "3"], None, None),
    "add3-plain": (["--task", "add", "--digits", "3", "--order", "plain"], None, None),
}


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(options):
    """Run the command once; return (held-out exact match, right, held out, wall s, CPU s)."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        start, start_cpu = time.perf_counter(), children_cpu()
        done = subprocess.run([sys.executable, "-m", "numogpt", "train", *options, "--out", out],
                              capture_output=True, text=True, env=env)
        wall, cpu = time.perf_counter() - start, children_cpu() - start_cpu
    if done.returncode != 0:
        raise SystemExit(f"the command failed:\n{done.stderr}")
    found = re.search(r"held-out exact match: ([\d.]+)% \(([\d,]+) of ([\d,]+)", done.stdout)
    right, held = (int(n.replace(",", "")) for n in found.group(2, 3))
    return right / held, right, held, wall, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=RUNS, action="append", help="run only these (default: all)")
    args = parser.parse_args()
    print("python -m numogpt train --task ..., one thread each: exact match on held-out problems, seconds")
    for name in args.only or RUNS:
        options, goal, seconds = RUNS[name]
        accuracy, right, held, wall, cpu = run(options)
        goals = f" (goal >= {goal:.1%}, <= {seconds} s)" if goal is not None else " (no goal: for comparison)"
        print(f"{name:11} {' '.join(options):50} exact match {accuracy:7.2%} ({right:,}/{held:,}); "
              f"{wall:5.1f} s wall, {cpu:5.1f} s CPU{goals}", flush=True)


if __name__ == "__main__":
    main()
