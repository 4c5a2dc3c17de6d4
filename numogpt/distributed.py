"""Lesson 08: many processes train one model, with torchrun and DistributedDataParallel.

    torchrun --standalone --nproc_per_node=2 -m numogpt train --max-iters 200

starts 2 copies of the command, each with RANK, LOCAL_RANK and WORLD_SIZE in its environment.
`processes()` makes each join one process group (gloo between CPU processes, NCCL between
GPUs). From there `numogpt.train.train` does the rest: every process reads the same batch and
takes its own 1/N of it, DistributedDataParallel averages the gradients during backward (so
every copy of the model takes the same step), and process 0 alone evaluates, prints and
writes the checkpoint. The batch size stays the global batch: the same command learns the same
model on 1 or N processes.
"""
import contextlib
import os


def launched_processes():
    """How many processes torchrun started for this run (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def processes(device="auto"):
    """Join torchrun's process group for the block (when it started more than one process);
    yields this process's rank. Only process 0 prints: the others' stdout goes nowhere.

    Unless `device` (the command's --device) keeps the run off the GPUs, each process gets
    GPU number LOCAL_RANK of its machine.
    """
    if launched_processes() == 1:
        yield 0
        return
    import torch
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
        with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere) if rank else contextlib.nullcontext():
            yield rank
    finally:
        dist.destroy_process_group()
