"""How cheap are numogpt's training blocks? `python bench/data.py [path/to/tinyshakespeare.txt]`

Tiny Shakespeare as character-level ids (one id per character: 1.1 M ids; its GPT-2
encoding is 338 K ids, so characters are the bigger case), cut by TokenBlocks with block 64
and stride 1, the most overlapping blocks there are: one per position. The GPT-2 ids
(numogpt's gpt2_tokenizer) get the same build and pass, for the record.

1. Building TokenBlocks: time, and memory beyond the ids (new tensor storage, and Python
   allocations seen by tracemalloc). Reference, same run: a naive dataset that copies every
   (x, y) pair up front, built on a slice and scaled up to the full text.
2. One pass over all its batches (batch 64) from make_loaders' training DataLoader: time
   and peak memory. Reference, same run: the same batches gathered straight from an
   unfold view of the ids, without a DataLoader, i.e. the cost of the loader itself.

One thread; each figure is the median of several runs.
"""
import argparse
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import torch

import numogpt
from numogpt.data import TokenBlocks, load_corpus, make_loaders
from numogpt.tokenizer import gpt2_tokenizer

DEFAULT_PATH = numogpt.DATA_DIR / "tinyshakespeare.txt"
BLOCK, BATCH = 64, 64
NAIVE_SLICE = 100_000  # ids the naive reference copies; scaled up to the whole text


def char_ids(text):
    """One id per character, ids given in sorted order of the characters (like CharTokenizer)."""
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    return torch.tensor([stoi[c] for c in text], dtype=torch.long)


def median_of(runs, fn):
    """Run fn `runs` times; return the median seconds and the last result."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def python_peak(fn):
    """Peak bytes of Python allocations (tracemalloc) while fn runs, and fn's result."""
    tracemalloc.start()
    result = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, result


def max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def naive_blocks(ids, block_size):
    """The reference: every (x, y) pair copied into its own tensors, stride 1."""
    return [(ids[i : i + block_size].clone(), ids[i + 1 : i + block_size + 1].clone())
            for i in range(len(ids) - block_size)]


def loader_pass(loader):
    tokens = 0
    for x, y in loader:  # (B, T) each
        tokens += x.numel()
    return tokens


def gather_pass(ids, block_size, batch_size, seed):
    """The same shuffled blocks straight from an unfold view: no Dataset, no DataLoader."""
    windows = ids.unfold(0, block_size + 1, 1)  # (N, T + 1), a view
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(seed))
    tokens = 0
    for start in range(0, len(order), batch_size):
        batch = windows[order[start : start + batch_size]]  # (B, T + 1), a copy of the batch only
        x = batch[:, :-1]  # (B, T); its target batch[:, 1:] is a view too, free to take
        tokens += x.numel()
    return tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help="tiny Shakespeare as a text file")
    parser.add_argument("--runs", type=int, default=3, help="runs of the loader pass (the build runs 5x more)")
    args = parser.parse_args()
    if not args.path.is_file():
        sys.exit(f"no tiny Shakespeare at {args.path}: give its path, e.g. python bench/data.py path/to/input.txt")
    torch.set_num_threads(1)

    text = load_corpus(args.path)
    ids = char_ids(text)  # (N,)
    ids_mib = ids.untyped_storage().nbytes() / 2**20
    print(f"tiny Shakespeare: {len(ids):,} character ids ({ids_mib:.1f} MiB as int64); torch {torch.__version__}, 1 thread")

    # 1. building the blocks
    build_s, blocks = median_of(5 * args.runs, lambda: TokenBlocks(ids, BLOCK, stride=1))
    py_peak, blocks = python_peak(lambda: TokenBlocks(ids, BLOCK, stride=1))
    shares = blocks.ids.untyped_storage().data_ptr() == ids.untyped_storage().data_ptr()
    new_tensor_bytes = 0 if shares else blocks.ids.untyped_storage().nbytes()
    x, y = blocks[len(blocks) - 1]
    views = x.untyped_storage().data_ptr() == y.untyped_storage().data_ptr() == ids.untyped_storage().data_ptr()
    print(f"\nTokenBlocks(block {BLOCK}, stride 1): {len(blocks):,} blocks")
    print(f"  build: {build_s * 1e6:.0f} µs (median of {5 * args.runs})")
    print(f"  memory beyond the ids: {new_tensor_bytes} bytes of tensors, {py_peak} bytes of Python objects (tracemalloc peak); "
          f"blocks are views of the ids: {views}")

    # 2. one pass over every batch
    rss_before = max_rss_mib()
    train, _ = make_loaders(ids, BLOCK, BATCH, val_fraction=0.1, stride=1, seed=0)
    n_train = len(train.dataset.ids)
    pass_s, tokens = median_of(args.runs, lambda: loader_pass(train))
    rss_growth = max_rss_mib() - rss_before  # before tracemalloc, whose own bookkeeping costs memory
    py_peak, _ = python_peak(lambda: loader_pass(train))
    gather_s, gather_tokens = median_of(args.runs, lambda: gather_pass(ids[:n_train], BLOCK, BATCH, seed=0))
    assert gather_tokens == tokens
    print(f"\nmake_loaders(block {BLOCK}, batch {BATCH}, stride 1), training split: {len(train.dataset):,} blocks in {len(train):,} batches")
    print(f"  one pass: {pass_s:.2f} s (median of {args.runs}), {tokens / pass_s / 1e6:.1f} M tokens/s, "
          f"{pass_s / len(train) * 1e6:.0f} µs a batch")
    print(f"  peak memory: {py_peak / 2**20:.2f} MiB of Python objects (tracemalloc), "
          f"most of it the shuffled order as a list of ints (RandomSampler); process peak grew {rss_growth:.0f} MiB (ru_maxrss)")
    print(f"  reference, the same batches indexed from an unfold view without a DataLoader: {gather_s:.2f} s "
          f"(the DataLoader pass takes {pass_s / gather_s:.1f}x that)")

    # the same over GPT-2 ids
    start = time.perf_counter()
    gpt2_ids = torch.tensor(gpt2_tokenizer().encode(text))  # (N,)
    encode_s = time.perf_counter() - start
    gpt2_build_s, gpt2_blocks = median_of(5 * args.runs, lambda: TokenBlocks(gpt2_ids, BLOCK, stride=1))
    gpt2_train, _ = make_loaders(gpt2_ids, BLOCK, BATCH, val_fraction=0.1, stride=1, seed=0)
    gpt2_pass_s, _ = median_of(args.runs, lambda: loader_pass(gpt2_train))
    print(f"\nGPT-2 ids: {len(gpt2_ids):,} (encoded once in {encode_s:.2f} s); TokenBlocks build {gpt2_build_s * 1e6:.0f} µs, "
          f"{len(gpt2_blocks):,} blocks; one training pass {gpt2_pass_s:.2f} s over {len(gpt2_train):,} batches")

    # last: the naive reference's copies would hide the loader's own peak in ru_maxrss
    sliced = ids[:NAIVE_SLICE]
    naive_s, naive = median_of(args.runs, lambda: naive_blocks(sliced, BLOCK))
    naive_bytes = sum(t.untyped_storage().nbytes() for pair in naive for t in pair)
    scale = (len(ids) - BLOCK) / len(naive)
    del naive
    print(f"\nreference for the build, copies of every pair up front on the first {NAIVE_SLICE:,} ids: {naive_s:.2f} s and "
          f"{naive_bytes / 2**20:.0f} MiB of tensors; scaled to the whole text about {naive_s * scale:.0f} s "
          f"and {naive_bytes * scale / 2**30:.1f} GiB ({naive_s * scale / build_s:,.0f}x slower to build)")


if __name__ == "__main__":
    main()
