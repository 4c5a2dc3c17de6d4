"""Lesson 08: the same training on bigger hardware.

Lesson 05's `train` asks a runtime where and how to run each step. Its own, OneProcess, runs
them in one process on the CPU in float32. `Runtime` here runs the very same loop
- on any device: a CUDA GPU, Apple's MPS or the CPU (`resolve_device`, "auto" picks the best);
- in mixed precision: the forward under torch.autocast in bfloat16 or float16, float16 with a
  gradient scaler (`Precision`);
- in slices: each batch as `grad_accum` micro-batches whose gradients add up (`micro_batches`);
- compiled: torch.compile for the training steps;
- in many processes: under torchrun each process joins one process group (`processes`), takes
  its share of every batch, and DistributedDataParallel averages the gradients:

      torchrun --standalone --nproc_per_node=2 -m numogpt train --max-iters 200

    config = TrainConfig(max_iters=10, dtype="bfloat16", grad_accum=2)
    history = train(model, train_loader, val_loader, config, runtime=Runtime())   # numogpt.train.train

The batch size stays the whole batch whatever the split, so the same run learns the same model
on 1 or N processes, in 1 or N slices.
"""
import contextlib
import copy
import dataclasses
import os
import platform
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn

from numogpt.checkpoint import rng_state, set_rng_state
from numogpt.data import IGNORE_INDEX
from numogpt.train import PRECISIONS, OneProcess, require_finite

# --- any device ------------------------------------------------------------------------------------


def best_device():
    """The fastest device here: a CUDA GPU, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(name):
    """torch.device(name) ("auto": best_device()), or a ValueError if this machine does not have it."""
    if name == "auto":
        name = best_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }.get(device.type, False)
    if not available:
        raise ValueError(f"device {name!r} is not available on this machine: use 'cpu' (or 'auto')")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # under torchrun: this process's GPU
    return device


# --- mixed precision ---------------------------------------------------------------------------------

DTYPES = {name: getattr(torch, name) for name in PRECISIONS}


def cpu_bfloat16_units():
    """The bfloat16 instructions this CPU has for matrix products, by the name the system gives
    them: on Linux Intel's AMX and AVX512-BF16 (amx_bf16, avx512_bf16) or Arm's bf16, on a Mac
    Apple's FEAT_BF16. Empty where it has none, or where the system does not say (Windows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        flags = {flag for line in cpuinfo.read_text().splitlines() if line.startswith(("flags", "Features"))
                 for flag in line.split(":", 1)[1].split()}
        return sorted(flags & {"amx_bf16", "avx512_bf16", "bf16"})
    if platform.system() == "Darwin":
        found = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True)
        return ["FEAT_BF16"] if found.stdout.strip() == "1" else []
    return []


def step_seconds(model, x, dtype, repeats=3, budget=0.3):
    """The fastest of the forward and backward passes of `model` on the batch x (B, T) under
    autocast in `dtype`, in seconds, after one pass to warm up: at least `repeats` passes, more
    while they take under `budget` seconds (at most 30). The fastest, because other work on the
    machine only ever adds time. The optimizer is left out: it runs in float32 whatever the
    forward's dtype."""
    precision, seconds = Precision(dtype, x.device), []
    while len(seconds) < repeats + 1 or (sum(seconds[1:]) < budget and len(seconds) <= 30):
        start = time.perf_counter()
        with precision.autocast():
            _, loss = model(x, targets=x)
        loss.backward()
        seconds.append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return min(seconds[1:])


BFLOAT16_MARGIN = 0.95  # on a CPU, bfloat16 must take under 95% of float32's time


def resolve_dtype(name, device, model=None, batch_shape=None):
    """(the dtype's name, why), with "auto" chosen for `device`: bfloat16 on a CUDA GPU that has it
    (Ampere and later), float16 on an older one (with a gradient scaler); on a CPU with bfloat16
    units, bfloat16 if it runs a step of `model` on a batch of `batch_shape` clearly faster than
    float32 (BFLOAT16_MARGIN), timed here on a copy (small matrices gain nothing from the units;
    large ones, several times); float32 on other CPUs and on MPS, whose autocast is young."""
    if name != "auto":
        return name, "as asked"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bfloat16", "auto: this GPU computes bfloat16 natively"
        return "float16", "auto: this GPU has no bfloat16; float16 with a gradient scaler"
    units = cpu_bfloat16_units() if device.type == "cpu" else []
    if not units:
        return "float32", f"auto: this {'CPU has no bfloat16 units' if device.type == 'cpu' else 'is MPS'}"
    trial = copy.deepcopy(model)  # the run's own model, its gradients and random state stay untouched
    x = torch.randint(model.config.vocab_size, batch_shape, generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng(devices=[]):
        seconds = {dtype: step_seconds(trial, x, dtype) for dtype in ("float32", "bfloat16")}
    # bfloat16 only when clearly faster: a step's time varies by a few percent, and the same command should not
    # flip between dtypes (and so between results) on that noise
    chosen = "bfloat16" if seconds["bfloat16"] < BFLOAT16_MARGIN * seconds["float32"] else "float32"
    return chosen, (f"auto: this CPU has {', '.join(units)}, and a forward and backward of this model took "
                    f"{1000 * seconds['bfloat16']:.0f} ms in bfloat16, {1000 * seconds['float32']:.0f} ms in float32")


class Precision:
    """Mixed precision: the weights stay float32; inside `autocast()` the matrix multiplies run
    in `dtype` (half the memory traffic, and GPUs have fast units for it), while PyTorch keeps
    the sums that need it (softmax, layer norm, the loss) in float32.

    bfloat16 has float32's range, so nothing overflows. float16 overflows above 65504 and
    rounds small gradients to 0, so its `scaler` multiplies the loss by a large factor before
    backward and divides the gradients by it before the step, skipping steps whose gradients
    overflowed (and lowering the factor). With float32 both do nothing.
    """

    def __init__(self, dtype, device):
        self.dtype = DTYPES[dtype]
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype != torch.float32)


# --- slices of a batch ----------------------------------------------------------------------------


def require_splits(batch_size, grad_accum, world_size):
    """A ValueError unless a batch of `batch_size` cuts into world_size x grad_accum equal slices."""
    if batch_size % (grad_accum * world_size):
        raise ValueError(f"a batch of {batch_size} does not split into {world_size} process(es) x grad_accum "
                         f"{grad_accum}: make the batch size a multiple of {grad_accum * world_size}")


def micro_batches(x, y, grad_accum=1, rank=0, world_size=1):
    """This process's slices of the batch (x, y) (B, T), each with its share of the batch's loss.

    The batch is cut into world_size * grad_accum equal slices, and process `rank` takes
    grad_accum of them, so the data is the same whatever the split. A slice's loss is a mean
    over its own target tokens; weighted by share = its tokens / the batch's tokens, the
    slices' losses add up to the mean over the whole batch, and so do their gradients.

    >>> x = y = torch.arange(8).view(4, 2)
    >>> [(xs.tolist(), share) for xs, _, share in micro_batches(x, y, grad_accum=2, rank=1, world_size=2)]
    [([[4, 5]], 0.25), ([[6, 7]], 0.25)]
    """
    require_splits(x.size(0), grad_accum, world_size)
    parts = world_size * grad_accum
    counted = (y != IGNORE_INDEX).sum().item()
    for xs, ys in list(zip(x.chunk(parts), y.chunk(parts)))[rank * grad_accum:(rank + 1) * grad_accum]:
        yield xs, ys, (ys != IGNORE_INDEX).sum().item() / counted


def scaled_train_step(model, optimizer, x, y, grad_clip, grad_accum=1, precision=None):
    """Lesson 05's train_step, in slices, in mixed precision and as one of many processes.

    The batch (x, y) runs as `grad_accum` slices whose gradients add up (the same step in less
    memory), the forward under `precision`'s autocast and its loss scaled for float16; under
    torchrun each process takes its share (DDP averages the gradients). Returns the batch's
    mean loss, the same number on every process.
    """
    precision = precision or Precision("float32", x.device)
    rank, world_size = rank_and_world()
    optimizer.zero_grad(set_to_none=True)
    slices = list(micro_batches(x, y, grad_accum, rank, world_size))
    total = 0.0
    for i, (xs, ys, share) in enumerate(slices):
        # DDP all-reduces the gradients in backward: once per step, on the last slice (no_sync before it)
        syncing = i == len(slices) - 1 or not hasattr(model, "no_sync")
        with precision.autocast(), nullcontext() if syncing else model.no_sync():
            _, loss = model(xs, ys)
        require_finite(loss)
        # DDP averages gradients over the processes: times world_size, they add up to the batch's
        precision.scaler.scale(loss * share * world_size).backward()
        total += loss.item() * share
    if grad_clip is not None:
        precision.scaler.unscale_(optimizer)  # clip the true gradients, not scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    precision.scaler.step(optimizer)  # optimizer.step(), unless float16 gradients overflowed
    precision.scaler.update()
    return sum_over_processes(total, x.device)


# --- many processes ---------------------------------------------------------------------------------


def launched_processes():
    """How many processes torchrun started for this run (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def processes(device="auto"):
    """Join torchrun's process group for the block (when it started more than one process);
    yields this process's rank. Only process 0 prints: the others' stdout goes nowhere.

    torchrun starts N copies of the command, each with RANK, LOCAL_RANK and WORLD_SIZE in its
    environment; each joins the group (gloo between CPU processes, NCCL between GPUs). Unless
    `device` (the command's --device) keeps the run off the GPUs, each process gets GPU number
    LOCAL_RANK of its machine.
    """
    if launched_processes() == 1:
        yield 0
        return
    import torch.distributed as dist

    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available() and (device == "auto" or device.startswith("cuda")):
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"torchrun started process {local_rank} on a machine with {torch.cuda.device_count()} "
                             f"GPU(s): use --nproc_per_node={torch.cuda.device_count()} (one process per GPU)")
        torch.cuda.set_device(local_rank)
        backend = "cpu:gloo,cuda:nccl"  # tensors on the CPU go through gloo, on a GPU through NCCL
    else:
        backend = "gloo"
    dist.init_process_group(backend)
    rank = dist.get_rank()
    try:
        with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere) if rank else nullcontext():
            yield rank
    finally:
        dist.destroy_process_group()


def rank_and_world():
    """(this process's rank, how many processes): (0, 1) unless torchrun started several."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def sum_over_processes(value, device):
    """The sum of a float over all processes (itself, with one)."""
    if rank_and_world()[1] == 1:
        return value
    total = torch.tensor(value, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total)
    return total.item()


# --- the runtime lesson 05's loop runs on -------------------------------------------------------------


class Runtime(OneProcess):
    """Lesson 05's loop on any device, in mixed precision, in slices, compiled and in many processes,
    as TrainConfig's device, dtype, grad_accum and compile say, under torchrun or not.

    Process 0 alone evaluates, reports and saves; every process keeps its own random state (its
    dropout), saved by rank, so a run resumed under torchrun continues exactly.
    """

    def __init__(self):
        self.rank, self.world_size = rank_and_world()
        self.is_main = self.rank == 0

    def prepare(self, model, config, train_loader):
        self.device = resolve_device(config.device)
        batch_size = train_loader.batch_sampler.batch_size
        require_splits(batch_size, config.grad_accum, self.world_size)
        model.to(self.device)
        slice_shape = (batch_size // (config.grad_accum * self.world_size), len(train_loader.dataset[0][0]))
        dtype, why = resolve_dtype(config.dtype, self.device, model, slice_shape)
        if self.world_size > 1:  # every process runs process 0's choice
            shared = [(dtype, why)]
            torch.distributed.broadcast_object_list(shared, src=0)
            dtype, why = shared[0]
        config = dataclasses.replace(config, dtype=dtype)
        self.precision = Precision(config.dtype, self.device)
        self.grad_accum, self.compile, self.run_seed = config.grad_accum, config.compile, config.seed
        if config.progress and self.is_main:
            print(f"on {self.device} in {config.dtype} ({why})" + ", compiled" * config.compile + f"; {self.world_size} "
                  f"process(es) x {config.grad_accum} slice(s) of each batch of {batch_size}")
        return config

    def seed(self, seed):
        torch.manual_seed(seed + self.rank)  # each process draws its own dropout

    def step_model(self, model):
        """`model`, under DDP with many processes and compiled with config.compile. Evaluation,
        callbacks and checkpoints use `model` itself: the weights are the same tensors, and it needs
        no recompiling for eval mode or a growing KV cache."""
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return torch.compile(model) if self.compile else model

    def train_step(self, model, optimizer, x, y, grad_clip):
        return scaled_train_step(model, optimizer, x.to(self.device), y.to(self.device), grad_clip,
                                 self.grad_accum, self.precision)

    def state_dict(self):
        states = [None] * self.world_size
        if self.world_size == 1:
            states = [rng_state(self.device)]
        else:
            torch.distributed.all_gather_object(states, rng_state(self.device))
        scaler = {"grad_scaler": self.precision.scaler.state_dict()} if self.precision.scaler.is_enabled() else {}
        return {"rng_states": states, **scaler}

    def load_state_dict(self, state):
        if "grad_scaler" in state:
            self.precision.scaler.load_state_dict(state["grad_scaler"])
        if self.rank < len(state["rng_states"]):
            set_rng_state(state["rng_states"][self.rank], self.device)
        else:  # a process the saved run did not have starts afresh
            self.seed(self.run_seed)

    def agree(self, history):
        if self.world_size > 1:  # the others wait here for process 0's validation loss
            shared = [history["val"][-1] if self.is_main else None]
            torch.distributed.broadcast_object_list(shared, src=0)
            if not self.is_main:
                history["val"].append(shared[0])
