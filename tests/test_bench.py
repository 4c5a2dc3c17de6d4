"""The benches still run against today's library: each with its smallest settings, timing nothing.

The figures they print are not checked (speed goals are never tests); what is checked is that
a change to numogpt has not broken a script that the README quotes. bench/train.py broke once
that way: train() began to refuse a plain DataLoader, and nothing ran the bench.
"""
import subprocess
import sys

import pytest

from numogpt import ROOT

SMALLEST = {
    "train.py": ["--max-iters", "20", "--eval-interval", "10", "--warmup-iters", "5"],
    "model.py": ["--rounds", "1", "--steps", "2", "--warmup", "1"],
    "sample.py": ["--runs", "1"],
}


@pytest.mark.parametrize("script, arguments", SMALLEST.items(), ids=list(SMALLEST))
def test_bench_runs_without_nanogpt(script, arguments):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *arguments], cwd=ROOT / "bench",
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nanoGPT: not measured" in done.stdout  # it says the missing figure is missing
