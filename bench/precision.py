"""float32 or bfloat16? `python bench/precision.py [--threads 1] [--rounds 5] [--device cpu]`

For each preset of numogpt.model.PRESETS that fits a laptop (and the speed run's baby GPT), a
whole training step (forward and loss, backward, fused AdamW) in float32 and under bfloat16
autocast, on a batch of 8 full contexts of a 65-character vocabulary, as Tiny Shakespeare's
character model has. Beside each time, the share of that dtype's matrix-product peak the step
reaches: the peak is measured here too (a square product of 1024, the best size for the units),
and the step's work is 6N FLOPs per token plus attention's 12 * n_layer * n_embd * T
(numogpt.exercises.lesson08 counts it the same way). Last, what `--dtype auto` chooses for the
model, and why (numogpt.scaling.resolve_dtype, which times the model itself).

The dtypes take turns step by step, so a busy machine slows both alike; the figures are medians.
"""
import argparse
import statistics
import time

import torch

from numogpt.model import GPT, PRESETS, GPTConfig
from numogpt.scaling import Precision, resolve_device, resolve_dtype
from numogpt.train import TrainConfig, configure_optimizer

VOCAB, BATCH = 65, 8
MODELS = {name: PRESETS[name] for name in ("nano", "gpt-numo", "micro", "play", "mini")}
MODELS["speed run (baby GPT)"] = dict(n_layer=4, n_head=4, n_embd=128, block_size=64)
DTYPES = ("float32", "bfloat16")


def matmul_peak(dtype, device, size=1024, repeats=10):
    """The FLOP/s of the fastest of `repeats` (size x size) @ (size x size) products in `dtype`: a peak,
    which other work on the machine can only lower."""
    a, b = (torch.randn(size, size, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
    seconds = []
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        seconds.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(seconds[1:])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_flops(config, n_params):
    tokens = BATCH * config.block_size
    return tokens * (6 * n_params + 12 * config.n_layer * config.n_embd * config.block_size)


def measure(name, sizes, device, rounds, peaks):
    config = GPTConfig(vocab_size=VOCAB, dropout=0.0, **sizes)
    torch.manual_seed(0)
    models = {dtype: GPT(config).to(device) for dtype in DTYPES}
    optimizers = {dtype: configure_optimizer(model, TrainConfig()) for dtype, model in models.items()}
    precisions = {dtype: Precision(dtype, device) for dtype in DTYPES}
    x = torch.randint(VOCAB, (BATCH, config.block_size), device=device)
    seconds = {dtype: [] for dtype in DTYPES}
    for round_ in range(rounds + 1):  # the first round warms up
        for dtype in DTYPES:
            model, optimizer = models[dtype], optimizers[dtype]
            sync(device)
            start = time.perf_counter()
            with precisions[dtype].autocast():
                _, loss = model(x, targets=x)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync(device)
            if round_:
                seconds[dtype].append(time.perf_counter() - start)
    n_params = sum(p.numel() for p in models["float32"].parameters())
    flops = step_flops(config, n_params)
    medians = {dtype: statistics.median(seconds[dtype]) for dtype in DTYPES}
    chosen, why = resolve_dtype("auto", device, models["float32"], (BATCH, config.block_size))
    shape = f"{config.n_layer} x {config.n_embd}, {BATCH} x {config.block_size} tokens"
    cells = "  ".join(f"{dtype} {1000 * medians[dtype]:7.1f} ms ({flops / medians[dtype] / peaks[dtype]:4.0%} of peak)"
                      for dtype in DTYPES)
    print(f"{name:>21} ({shape:>26}): {cells}  bfloat16/float32 {medians['bfloat16'] / medians['float32']:.2f}x;"
          f" auto: {chosen}")
    return why


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    peaks = {dtype: matmul_peak(dtype, device) for dtype in DTYPES}
    print(f"torch {torch.__version__} on {device}, {args.threads} thread(s), median of {args.rounds} steps each; "
          f"matrix-product peak (1024 x 1024): " + ", ".join(f"{dtype} {peaks[dtype] / 1e9:,.0f} GFLOP/s"
                                                             for dtype in DTYPES))
    reasons = [measure(name, sizes, device, args.rounds, peaks) for name, sizes in MODELS.items()]
    print(f"auto's reason for the last model: {reasons[-1]}")


if __name__ == "__main__":
    main()
