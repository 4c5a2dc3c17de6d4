"""Lesson 01 figures: numogpt's tokenizers against references, measured in the same run.

    python bench/tokenizer.py [path/to/tinyshakespeare.txt]

The default is the copy shipped in numogpt/course_data/. One thread
(numogpt's tokenizers are plain Python; tiktoken's thread pool is held to one thread).
1. GPT-2 encode of the whole file: the first call in a fresh process (chunk cache cold),
   vs tiktoken's "gpt2" in a fresh process of its own, interleaved; the ids must be identical.
2. BPE training, vocab 512 on the first 100 KB, vs a plain most-frequent-pair trainer
   (the textbook loop below): same merges, so the same compression.
3. BPE training, vocab 4096 on the whole file.
Each figure is the median of RUNS runs.
"""
import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # tiktoken's thread pool (encode is one thread anyway)
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.references

import regex  # noqa: E402

import numogpt  # noqa: E402
from numogpt.bpe import merge_pair  # noqa: E402
from numogpt.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer  # noqa: E402

RUNS = 5
DEFAULT_TEXT = numogpt.DATA_DIR / "tinyshakespeare.txt"


def first_encode_in_fresh_process(which, path):
    """Time the first encode of `path` by `which` ("numogpt" or "tiktoken") in a new process.

    Each tokenizer gets a process of its own, so neither pays for nor profits from what the
    other left in memory. Loading the tokenizer is not timed. Returns (seconds, ids hash).
    """
    make = {"numogpt": "from numogpt.tokenizer import gpt2_tokenizer as make",
            "tiktoken": "from tests.references import tiktoken_gpt2 as make"}[which]
    code = f"""
import hashlib, sys, time
sys.path.insert(0, {str(ROOT)!r})
{make}
text = open({str(path)!r}, encoding="utf-8").read()
tok = make()
start = time.perf_counter()
ids = tok.encode(text)
seconds = time.perf_counter() - start
print(seconds, hashlib.sha1(repr(ids).encode()).hexdigest())
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), out[1]


def naive_train(text, vocab_size):
    """The textbook trainer: recount every pair of every word after each merge.

    Same split and the same tie rule as numogpt (most frequent pair; ties to the smaller
    pair), so it must learn the same merges, only slower.
    """
    words = Counter(regex.findall(GPT2_SPLIT_PATTERN, text))
    seqs = {w: list(w.encode("utf-8")) for w in words}
    merges = {}
    for new_id in range(256, vocab_size):
        counts = Counter()
        for w, seq in seqs.items():
            for pair in zip(seq, seq[1:]):
                counts[pair] += words[w]
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges[best] = new_id
        seqs = {w: merge_pair(seq, best, new_id) for w, seq in seqs.items()}
    return merges


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


def median_time(fn, *args, runs=RUNS, **kwargs):
    times, result = [], None
    for _ in range(runs):
        t, result = timed(fn, *args, **kwargs)
        times.append(t)
    return statistics.median(times), result


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_TEXT
    if not path.exists():
        sys.exit(f"no Tiny Shakespeare at {path}: pass its path, python bench/tokenizer.py PATH")
    text = path.read_text(encoding="utf-8")
    print(f"text: {path.name}, {len(text.encode('utf-8')):,} bytes; median of {RUNS} runs")

    print("\n1. GPT-2 encode of the whole file, first call in a fresh process")
    ours, ref, hashes = [], [], set()
    for _ in range(RUNS):  # interleaved, so a busy moment hits both
        for which, times in (("numogpt", ours), ("tiktoken", ref)):
            seconds, ids_hash = first_encode_in_fresh_process(which, path)
            times.append(seconds)
            hashes.add(ids_hash)
    ours, ref = statistics.median(ours), statistics.median(ref)
    mb = len(text.encode("utf-8")) / 1e6
    print(f"   tiktoken {ref:.3f} s ({mb / ref:.1f} MB/s)   numogpt {ours:.3f} s ({mb / ours:.1f} MB/s)")
    print(f"   numogpt throughput / tiktoken's = {ref / ours:.2f} (goal >= 0.33)   identical ids: {len(hashes) == 1}")

    print("\n2. BPE training, vocab 512, first 100 KB")
    head = text[:100_000]
    ours, tok = median_time(BPETokenizer().train, head, 512)
    ref, ref_merges = timed(naive_train, head, 512)
    same = list(tok.merges.items()) == list(ref_merges.items())
    n_tokens = len(tok.encode(head))
    print(f"   numogpt {ours:.3f} s (goal < 0.5 s)   textbook trainer {ref:.2f} s (1 run)   speed-up {ref / ours:.0f}x")
    print(f"   same merges as the textbook trainer: {same}   "
          f"compression: {len(head.encode('utf-8')) / n_tokens:.2f} bytes per token")

    print("\n3. BPE training, vocab 4096, the whole file")
    ours, tok = median_time(BPETokenizer().train, text, 4096, runs=3)
    print(f"   numogpt {ours:.2f} s (goal <= 10 s, median of 3)   "
          f"compression: {len(text.encode('utf-8')) / len(tok.encode(text)):.2f} bytes per token")


if __name__ == "__main__":
    main()
