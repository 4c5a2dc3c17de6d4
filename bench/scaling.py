"""Training throughput on bigger hardware (lesson 08), in tokens per second.

    python bench/scaling.py [--runs 3] [--steps 30]

On the CPU: the same training steps (lesson 08's numogpt.scaling.Runtime, gpt-numo on characters,
block 128, a global batch of 16) run as 1 process with 1 thread (the reference), 1 process
with 2 threads, and 2 processes with 1 thread each under torchrun (DistributedDataParallel
over gloo). All see the same batches, so the ratios say what threads or processes gain here.

On a CUDA GPU, where there is one: GPT-2 small (the gpt2 preset, block 1024) in float32,
in bfloat16 autocast, and in bfloat16 compiled with torch.compile, with the model FLOPs
utilisation against the GPU's peak when it is known. Without a GPU that part says so.

Each figure is the median over --runs runs, measured in the same invocation; the ratios are
against the first line of each part.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere: `python bench/scaling.py`

from torch.utils.data import TensorDataset  # noqa: E402

from numogpt.data import shuffled_loader  # noqa: E402
from numogpt.model import GPT, GPTConfig  # noqa: E402
from numogpt.scaling import Runtime, rank_and_world  # noqa: E402
from numogpt.train import TrainConfig, configure_optimizer  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989, "H200": 989, "A100": 312, "L4": 121, "A10": 125}  # dense, from NVIDIA's sheets


def tokens_per_second(config, batch_size, steps, device, dtype="float32", compile=False, warmup=5):
    """Tokens per second of the global batch over `steps` training steps, timed after `warmup`
    steps (which also compile). Under torchrun every process calls this and takes its share."""
    torch.manual_seed(0)
    model = GPT(config)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, config.vocab_size, (batch_size, config.block_size), generator=g)
    y = torch.randint(0, config.vocab_size, (batch_size, config.block_size), generator=g)
    runtime = Runtime()  # as `train` uses it: the device, the precision, DDP and compiling
    train_config = runtime.prepare(model, TrainConfig(dtype=dtype, compile=compile, device=str(device), progress=False),
                                   shuffled_loader(TensorDataset(x, y), batch_size))
    optimizer = configure_optimizer(model, train_config)
    step_model = runtime.step_model(model)
    for _ in range(warmup):
        runtime.train_step(step_model, optimizer, x, y, 1.0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        runtime.train_step(step_model, optimizer, x, y, 1.0)  # .item() inside: waits for the GPU
    return steps * x.numel() / (time.perf_counter() - start)


def cpu_worker(steps):
    """One measurement on the CPU (run under torchrun for several processes): prints a JSON line."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        torch.distributed.init_process_group("gloo")
    config = GPTConfig.preset("gpt-numo", vocab_size=71)  # block 128, a character vocabulary
    speed = tokens_per_second(config, batch_size=16, steps=steps, device=torch.device("cpu"))
    if rank_and_world()[0] == 0:
        print(json.dumps({"tokens_per_second": speed, "threads": torch.get_num_threads(), "processes": world}))
    if world > 1:
        torch.distributed.destroy_process_group()


def cpu_run(processes, threads, steps):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([*launcher, __file__, "--worker", "--steps", str(steps)], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["tokens_per_second"]


def cpu_part(runs, steps):
    load = ", load average {:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    print(f"CPU ({os.cpu_count()} cores{load}): gpt-numo (block 128, characters), global batch 16, {steps} steps, "
          f"median of {runs} runs")
    layouts = [(1, 1), (1, 2), (2, 1)]  # (processes, threads per process); 1 x 1 is the reference
    speeds = {layout: [] for layout in layouts}
    for _ in range(runs):  # interleaved, so that a busy moment does not hit one layout only
        for layout in layouts:
            speeds[layout].append(cpu_run(*layout, steps))
    reference = statistics.median(speeds[layouts[0]])
    for (processes, threads), measured in speeds.items():
        median = statistics.median(measured)
        print(f"  {processes} process(es) x {threads} thread(s): {median:8,.0f} tokens/s  ({median / reference:.2f}x)")


def gpu_part(runs, steps):
    if not torch.cuda.is_available():
        print("GPU: no CUDA GPU on this machine, so the float32 / bfloat16 / compiled comparison is skipped")
        return
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    config = GPTConfig.preset("gpt2")
    batch_size = 8
    print(f"GPU ({name}): gpt2 preset (124M, block 1024), batch {batch_size}, {steps} steps, median of {runs} runs")
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 here
    variants = {"float32": dict(dtype="float32"), "bfloat16": dict(dtype="bfloat16"),
                "bfloat16 + compile": dict(dtype="bfloat16", compile=True)}
    with torch.device("meta"):
        n_params = GPT(config).num_params()
    flops_per_token = 6 * n_params + 12 * config.n_layer * config.n_embd * config.block_size
    peak = next((tflops for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)
    reference = None
    for label, options in variants.items():
        median = statistics.median(tokens_per_second(config, batch_size, steps, device, **options)
                                   for _ in range(runs))
        reference = reference or median
        mfu = f", MFU {flops_per_token * median / (peak * 1e12):.0%} of bf16 peak" if peak else ""
        print(f"  {label:>18}: {median:9,.0f} tokens/s  ({median / reference:.2f}x){mfu}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        cpu_worker(args.steps)
        return
    print(f"torch {torch.__version__}")
    cpu_part(args.runs, args.steps)
    gpu_part(args.runs, args.steps)


if __name__ == "__main__":
    main()
