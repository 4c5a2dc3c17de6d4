"""Lesson 05: training a GPT, evaluating it, and saving it.

Training is a loop: take a batch, measure how wrong the model's next-token guesses are (the
cross-entropy loss), let backpropagation say which way each weight should move, and let the
optimizer (AdamW) move it a little. Around that loop sit the habits that make it work:
a learning rate that warms up and then decays along a cosine, gradient clipping, weight
decay on the weight matrices only, a validation loss measured in eval mode, and checkpoints
that a run can resume from exactly.

    >>> import torch.nn as nn
    >>> config = TrainConfig(max_iters=100, learning_rate=1e-3, min_lr=1e-4, warmup_iters=10)
    >>> [round(lr_at(step, config), 6) for step in (0, 9, 10, 55, 100)]
    [0.0001, 0.001, 0.001, 0.00055, 0.0001]
    >>> decay, no_decay = weight_decay_groups(nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Linear(4, 4)))
    >>> decay, no_decay
    (['2.weight'], ['0.weight', '1.weight', '1.bias', '2.bias'])

Any model with `forward(idx, targets) -> (logits, loss)` trains here: numogpt's GPT
(lesson 04) is the one the course uses.

Lesson 08 runs the same loop on bigger hardware: any device, mixed precision, torch.compile,
gradient accumulation and many processes under torchrun. Its parts are marked "lesson 08";
with TrainConfig's defaults they do nothing.
"""
import dataclasses
import functools
import itertools
import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
# the text bar, also in Jupyter: a notebook widget bar is stored as its text at the start
# ("0/1000"), while the text bar's last state is what a saved notebook shows
from tqdm import tqdm

from numogpt import DATA_DIR
from numogpt.tools.arguments import require_int
from numogpt.data import IGNORE_INDEX, ShuffledBatches
from numogpt.tools.files import write_atomically
from numogpt.model import GPT, GPTConfig
from numogpt.tokenizer import tokenizer_from_dict

# The model the course ships: the checkpoint of `python -m numogpt train` with its defaults (the
# run of lesson 05), made by `python bench/words.py --threads 1 --no-reference --out out/bench`
# (the default command, run in-process and measured) and copied from out/bench/default/. Lesson 06
# samples from it, so it needs no training first.
COURSE_MODEL = DATA_DIR / "course_model.pt"


@dataclass
class TrainConfig:
    """Everything that shapes a training run except the model and the data.

    The batch size is the training loader's; everything else is here.
    """
    max_iters: int = 2000  # optimizer steps in the whole run
    learning_rate: float = 1e-3  # the peak, reached at the end of the warmup
    min_lr: float = 1e-4  # where the cosine decay ends
    warmup_iters: int = 100  # steps of linear warmup from learning_rate / warmup_iters
    lr_decay_iters: int | None = None  # the step where the cosine reaches min_lr (None: max_iters)
    weight_decay: float = 0.1  # on weight matrices only (see weight_decay_groups)
    betas: tuple = (0.9, 0.99)  # AdamW's averaging of gradients and squared gradients
    optimizer: str = "adamw"  # or "muon": Muon for the weight matrices, AdamW for the rest (configure_optimizer)
    grad_clip: float | None = 1.0  # largest gradient norm allowed (None: no clipping)
    eval_interval: int = 250  # evaluate (and save the checkpoint) every this many steps
    eval_iters: int | None = 20  # validation batches per evaluation (None: the whole split)
    seed: int = 0  # the weights' random init is the caller's; this seeds data order and dropout
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", "mps", or "auto" (the best one here)
    progress: bool = True  # show a tqdm progress bar and a line per evaluation
    # lesson 08: the same run on bigger hardware
    dtype: str = "float32"  # the forward's precision: float32, bfloat16, float16 (see Precision) or auto
    compile: bool = False  # torch.compile the model for the training steps
    grad_accum: int = 1  # run each batch in this many slices, adding up their gradients

    def __post_init__(self):
        for name in ("max_iters", "eval_interval"):
            require_int(name, getattr(self, name), least=1)
        require_int("warmup_iters", self.warmup_iters, least=0)
        require_int("grad_accum", self.grad_accum, least=1)
        if self.dtype not in ("auto", *DTYPES):
            raise ValueError(f"unknown dtype {self.dtype!r}: use one of auto, {', '.join(DTYPES)}")
        if self.lr_decay_iters is not None:
            require_int("lr_decay_iters", self.lr_decay_iters, least=self.warmup_iters + 1)
        if self.eval_iters is not None:
            require_int("eval_iters", self.eval_iters, least=1)
        if not 0 <= self.min_lr <= self.learning_rate:
            raise ValueError(f"need 0 <= min_lr <= learning_rate, got min_lr={self.min_lr}, "
                             f"learning_rate={self.learning_rate}")
        if self.optimizer not in ("adamw", "muon"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use 'adamw' or 'muon'")
        if self.optimizer == "muon" and not hasattr(torch.optim, "Muon"):
            raise ValueError(f"optimizer='muon' needs torch.optim.Muon (PyTorch 2.9 or later); this is torch "
                             f"{torch.__version__}: upgrade torch, or use optimizer='adamw'")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 (or None for no clipping), got {self.grad_clip}")
        self.betas = tuple(self.betas)  # a checkpoint may hand it back as a list

    @property
    def decay_end(self):
        """The step where the cosine decay reaches min_lr."""
        return self.lr_decay_iters if self.lr_decay_iters is not None else self.max_iters


# --- the learning-rate schedule --------------------------------------------------------------


def lr_at(step, config):
    """The learning rate for optimizer step `step` (0-based): linear warmup, then a cosine.

    Warmup: the first steps see large, badly aimed gradients (AdamW's running averages are
    still empty), so the rate climbs linearly to its peak over `warmup_iters` steps. Then it
    follows half a cosine down to `min_lr` at `decay_end` and stays there: big steps while
    the loss falls fast, small ones to settle into a minimum.
    """
    if step < config.warmup_iters:
        return config.learning_rate * (step + 1) / config.warmup_iters
    if step >= config.decay_end:
        return config.min_lr
    progress = (step - config.warmup_iters) / (config.decay_end - config.warmup_iters)  # 0 -> 1
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return config.min_lr + cosine * (config.learning_rate - config.min_lr)


# --- the optimizer -----------------------------------------------------------------------------


def weight_decay_groups(model):
    """Split the parameter names into (decayed, not decayed).

    Weight decay pulls weights towards 0, which keeps the big matrices (attention and MLP
    projections) from growing without need. It only hurts elsewhere: a LayerNorm gain should
    stay near its natural value 1 (it is a scale, not an offset) and a bias is an offset, so
    pulling either to 0 fights the model. For embeddings it is a convention: minGPT leaves them
    undecayed, nanoGPT decays them, and both train well; numogpt leaves them out. So: decay
    parameters with 2 or more dimensions that do not belong to an nn.Embedding. GPT's output
    head shares its matrix with the token embedding (weight tying), so that matrix is an
    embedding here and is not decayed.
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # a tied parameter is listed once
        if p.requires_grad:
            (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(name)
    return decay, no_decay


def configure_optimizer(model, config):
    """AdamW with weight decay on the weight matrices only (see weight_decay_groups), or, with
    config.optimizer "muon", Muon for those matrices and AdamW for the rest (see MuonWithAdamW).

    The learning rate is set at every step by `train` from `lr_at`.
    """
    params = dict(model.named_parameters())
    decay, no_decay = weight_decay_groups(model)
    matrices = [params[n] for n in decay]
    the_rest = {"params": [params[n] for n in no_decay], "weight_decay": 0.0}
    lr = lr_at(0, config)
    # fused AdamW (in both branches): one kernel updates every tensor, instead of a handful of ops per tensor
    if config.optimizer == "muon":
        # match_rms_adamw scales Muon's steps to the size of AdamW's, so one learning rate serves both
        return MuonWithAdamW(torch.optim.Muon(matrices, lr=lr, weight_decay=config.weight_decay,
                                              adjust_lr_fn="match_rms_adamw"),
                             torch.optim.AdamW([the_rest], lr=lr, betas=config.betas, fused=True))
    return torch.optim.AdamW([{"params": matrices, "weight_decay": config.weight_decay}, the_rest], lr=lr,
                             betas=config.betas, fused=True)


class MuonWithAdamW:
    """Lesson 05's speed run: Muon for the weight matrices, AdamW for embeddings, gains and biases,
    driven as one optimizer.

    Muon keeps a momentum of each matrix's gradient like SGD, then replaces that update by the
    nearest orthogonal matrix (a few Newton-Schulz iterations): every direction the matrix maps
    moves by the same amount, where a raw gradient is dominated by a few of them. It is defined
    for matrices only, hence AdamW for the rest. `train` uses what every torch optimizer has:
    param_groups (it sets each group's learning rate), zero_grad, step and the state dicts.
    """

    def __init__(self, muon, adamw):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self):
        return self.muon.param_groups + self.adamw.param_groups

    def zero_grad(self, set_to_none=True):
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def step(self):
        self.muon.step()
        self.adamw.step()

    def state_dict(self):
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state):
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


# --- evaluation ----------------------------------------------------------------------------------


@contextmanager
def eval_mode(model):
    """Run the block in eval mode (no dropout), then give the model back in its own mode,
    even if the block fails.

    Switching walks every submodule, which costs as much as a cached sampling step: skip it
    when the model is in eval mode already, as a loaded model is.
    """
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


@torch.no_grad()
def evaluate(model, loader, max_batches=None):
    """Mean cross-entropy per target token over `loader` (at most `max_batches`), and its perplexity.

    Eval mode (dropout off), no gradients, and the global random state is left untouched, so
    evaluating in the middle of a run does not change the run. Targets of IGNORE_INDEX
    (padding) do not count. Perplexity = exp(loss): the model is as unsure as if it chose
    uniformly among that many tokens.
    """
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with eval_mode(model), rng_kept(device):
        for x, y in itertools.islice(loader, max_batches):
            x, y = x.to(device), y.to(device)
            logits, _ = model(x)  # (B, T, vocab_size)
            total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(),
                                     ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += (y != IGNORE_INDEX).sum().item()
    if count == 0:
        raise ValueError("the validation loader gave no target tokens: use more text or a smaller block_size")
    loss = total / count
    return loss, math.exp(loss)


# --- the data order ---------------------------------------------------------------------------


def batches_from(loader, step):
    """The training batches (x, y) of optimizer steps `step`, step + 1, ..., epoch after epoch.

    The order is the loader's own (lesson 02's ShuffledBatches): epoch e is one shuffle, and a
    resumed run starts in the middle of its epoch without replaying the batches before it.
    """
    sampler = loader.batch_sampler
    if not isinstance(sampler, ShuffledBatches):
        raise TypeError("train_loader must come from numogpt.data.make_loaders (or shuffled_loader): "
                        "its seeded order is what lets a run resume exactly")
    epoch, start = divmod(step, len(sampler))
    while True:
        sampler.set_epoch(epoch, start)
        yield from loader
        epoch, start = epoch + 1, 0


# --- checkpoints -----------------------------------------------------------------------------------


def save_checkpoint(path, model, optimizer=None, *, step=0, tokenizer=None, **extra):
    """Write the model (and optimizer, step, tokenizer, `extra`) to `path`, atomically.

    The file is written next to `path` under a temporary name and then renamed over it:
    a crash or Ctrl-C in the middle leaves the previous checkpoint whole. Only tensors and
    plain Python values go in, so `torch.load(weights_only=True)` can read it back.
    `tokenizer` is a numogpt tokenizer (or its to_dict()).
    """
    config = getattr(model, "config", None)
    checkpoint = {
        "model_config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "tokenizer": tokenizer.to_dict() if hasattr(tokenizer, "to_dict") else tokenizer,
        **extra,
    }
    return write_atomically(path, lambda f: torch.save(checkpoint, f))


def load_checkpoint(path):
    """Read a checkpoint written by save_checkpoint (weights_only=True: no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}: train one first (python -m numogpt train)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # PyTorch's own message runs for lines and may advise weights_only=False, which would run
        # whatever code the file holds: keep only its type and first sentence
        first = str(e).strip().split("\n")[0].split(". ")[0]
        raise ValueError(f"{path} is not a readable checkpoint: the file may be truncated, or not a numogpt "
                         f"checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(checkpoint, dict) or not {"model", "model_config", "step"} <= checkpoint.keys():
        raise ValueError(f"{path} is not a numogpt checkpoint (no model, model_config and step in it)")
    if isinstance(checkpoint["model_config"], dict):  # saved before GPTConfig had `gelu`: trained with the tanh GELU
        checkpoint["model_config"].setdefault("gelu", "tanh")
    return checkpoint


def load_state(model, checkpoint):
    """Copy a checkpoint's weights into `model`, or say clearly why they do not fit."""
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config) and checkpoint["model_config"] is not None:
        ours = dataclasses.asdict(config)
        for key, theirs in checkpoint["model_config"].items():
            if key in ours and ours[key] != theirs and key != "dropout":
                raise ValueError(f"the checkpoint was trained with {key}={theirs!r} but this model has "
                                 f"{key}={ours[key]!r}: build it from the checkpoint's model_config")
    own = model.state_dict()
    saved = checkpoint["model"]
    if own.keys() != saved.keys():
        missing, unexpected = sorted(own.keys() - saved.keys()), sorted(saved.keys() - own.keys())
        raise ValueError(f"the checkpoint does not fit this model: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    for name, tensor in saved.items():
        if tensor.shape != own[name].shape:
            raise ValueError(f"the checkpoint's {name} has shape {tuple(tensor.shape)} but this model's "
                             f"has {tuple(own[name].shape)}: build the model from the checkpoint's model_config")
    model.load_state_dict(saved)


def load_model(path, device="cpu"):
    """Rebuild the GPT and tokenizer saved at `path`: (model in eval mode, tokenizer or None)."""
    checkpoint = load_checkpoint(path)
    if checkpoint["model_config"] is None:
        raise ValueError(f"{path} holds no model_config: it was not saved from a numogpt GPT")
    model = GPT(GPTConfig(**checkpoint["model_config"]))
    load_state(model, checkpoint)
    tokenizer = checkpoint["tokenizer"]
    return model.to(resolve_device(device)).eval(), tokenizer_from_dict(tokenizer) if tokenizer else None


def rng_state(device):
    """The random state that dropout draws from on `device`, as tensors."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_state(states, device):
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def rng_kept(device):
    """A context in which random draws on the CPU and on `device` leave the run's random state as it was."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def best_device():
    """Lesson 08: the fastest device here: a CUDA GPU, else Apple's MPS, else the CPU."""
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


# --- resuming ------------------------------------------------------------------------------------

# What a resumed run may change: how long it runs, how often it looks, and where and how fast it
# runs: the device, compiling, and how many slices a batch is cut into (lesson 08: each learns
# the same model, to float rounding). Anything else would make another run than the one saved:
# the dtype too, since lower precision changes what the run computes (and a float16 run has a
# gradient scaler in its state). `python -m numogpt train --resume` follows the same rule,
# through `changed_on_resume`.
MAY_CHANGE_ON_RESUME = ("max_iters", "eval_interval", "eval_iters", "device", "progress", "compile", "grad_accum")
# what older checkpoints ran with: before lesson 08, and before the speed run could choose Muon
OLDER_DEFAULTS = {"dtype": "float32", "compile": False, "grad_accum": 1, "optimizer": "adamw"}


def changed_on_resume(saved, given):
    """The settings in `given` that differ from `saved` and may not change on resume:
    [(name, saved value, given value)], by name."""
    return [(name, saved.get(name), value) for name, value in sorted(given.items())
            if name not in MAY_CHANGE_ON_RESUME and saved.get(name) != value]


def resume_run(checkpoint, model, optimizer, precision, config, train_loader, device):
    """Load a run saved by `train` into `model`, `optimizer` and `precision` (its float16
    gradient scaler); return its (step, history)."""
    state = load_checkpoint(checkpoint)
    missing = [k for k in ("optimizer", "history", "rng_state", "batches_per_epoch", "train_config")
               if state.get(k) is None]
    if missing:
        raise ValueError(f"{checkpoint} cannot be resumed: it has no {', '.join(missing)} "
                         f"(only checkpoints written by train() can be)")
    saved = {**OLDER_DEFAULTS, **state["train_config"]}
    changed = changed_on_resume(saved, dataclasses.asdict(config))
    if changed:
        raise ValueError(f"{checkpoint} was trained with other settings: "
                         + "; ".join(f"{name}={old!r} in the checkpoint, {new!r} now" for name, old, new in changed)
                         + f". Resume with the checkpoint's settings (only {', '.join(MAY_CHANGE_ON_RESUME)} may change)")
    order = _data_order(train_loader)
    if state["batches_per_epoch"] != order["batches_per_epoch"] or state.get("data_seed", 0) != order["data_seed"]:
        raise ValueError(f"the checkpoint at {checkpoint} was trained on data with {state['batches_per_epoch']} "
                         f"batches per epoch in the order of seed {state.get('data_seed', 0)}; this loader has "
                         f"{order['batches_per_epoch']}, seed {order['data_seed']}: resume with the same data, "
                         f"block size, batch size and seed")
    load_state(model, state)
    optimizer.load_state_dict(state["optimizer"])
    if state["step"] > config.max_iters:
        raise ValueError(f"the checkpoint is at step {state['step']}, past max_iters={config.max_iters}: "
                         f"raise max_iters to continue it")
    if state.get("grad_scaler"):
        precision.scaler.load_state_dict(state["grad_scaler"])
    # lesson 08: each process its own random state; a process the saved run did not have starts afresh
    rank = rank_and_world()[0]
    states = state.get("rng_states") or [state["rng_state"]]
    if rank < len(states):
        set_rng_state(states[rank], device)
    else:
        torch.manual_seed(config.seed + rank)
    return state["step"], state["history"]


def _data_order(train_loader):
    """What fixes the training order, saved so that a resumed run can check it is on the same data."""
    sampler = train_loader.batch_sampler
    return {"batches_per_epoch": len(sampler), "data_seed": getattr(sampler, "seed", 0)}


# --- lesson 08: lower precision, slices of a batch, many processes ----------------------------------
# A lesson-05 reader can skip this section: with the defaults (float32, one slice, one process)
# each piece below does nothing.

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name, device):
    """The dtype's name, with "auto" chosen for `device`: bfloat16 on a CUDA GPU that has it
    (Ampere and later), float16 on an older CUDA GPU, float32 elsewhere (a CPU computes
    bfloat16 slowly unless it has matrix units for it, and MPS autocast is young)."""
    if name != "auto":
        return name
    if device.type != "cuda":
        return "float32"
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


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


def rank_and_world():
    """(this process's rank, how many processes): (0, 1) unless torchrun started several."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


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


def sum_over_processes(value, device):
    """The sum of a float over all processes (itself, with one)."""
    if rank_and_world()[1] == 1:
        return value
    total = torch.tensor(value, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(total)
    return total.item()


def model_for_steps(model, config, device):
    """The module the training steps call: `model`, wrapped in DistributedDataParallel under
    torchrun (it averages the gradients over the processes during backward) and compiled with
    config.compile. Evaluation, callbacks and checkpoints use `model` itself: the weights are
    the same tensors, and it needs no recompiling for eval mode or a growing KV cache."""
    if rank_and_world()[1] > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if config.compile else model


def all_rng_states(device):
    """Every process's random state, by rank (each draws its own dropout)."""
    states = [None] * rank_and_world()[1]
    if len(states) == 1:
        return [rng_state(device)]
    torch.distributed.all_gather_object(states, rng_state(device))
    return states


# --- the training loop ----------------------------------------------------------------------------


def set_learning_rate(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(model, optimizer, x, y, grad_clip, grad_accum=1, precision=None):
    """One optimizer step on the batch (x, y); returns its mean loss before the step (a float).

    With the defaults: forward, backward, clip, step. Lesson 08's parts (marked) run the batch
    as `grad_accum` slices whose gradients add up (the same step in less memory), under
    mixed precision (`precision`), and as one of many processes (DDP: each takes its share).
    """
    precision = precision or Precision("float32", x.device)
    device = x.device
    rank, world_size = rank_and_world()
    optimizer.zero_grad(set_to_none=True)  # gradients add up until cleared
    slices = list(micro_batches(x, y, grad_accum, rank, world_size))
    total = 0.0
    for i, (xs, ys, share) in enumerate(slices):
        # lesson 08: DDP syncs gradients on the last slice only (model.no_sync() before it)
        syncing = i == len(slices) - 1 or not hasattr(model, "no_sync")
        with precision.autocast(), nullcontext() if syncing else model.no_sync():
            _, loss = model(xs, ys)
        if not torch.isfinite(loss):
            raise ValueError(f"the loss became {loss.item()}: lower the learning rate or check the data; "
                             f"the last checkpoint is intact")
        # DDP averages gradients over the processes: times world_size, they add up to the batch's
        precision.scaler.scale(loss * share * world_size).backward()
        total += loss.item() * share
    if grad_clip is not None:
        precision.scaler.unscale_(optimizer)  # lesson 08: clip the true gradients, not scaled ones
        # scale all gradients down together if their joint norm exceeds grad_clip:
        # one unlucky batch cannot throw the weights far away
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    precision.scaler.step(optimizer)  # optimizer.step(), unless float16 gradients overflowed
    precision.scaler.update()
    return sum_over_processes(total, device)


def evaluate_and_save(step, model, optimizer, precision, val_loader, config, history, callbacks, checkpoint, log,
                      saved):
    """Evaluate at `step`, call the callbacks, and write the checkpoint (when there is a path).

    Lesson 08: under torchrun every process calls this; process 0 alone evaluates, calls back
    and writes, and the others wait for its validation loss.
    """
    device = next(model.parameters()).device
    rng_states = all_rng_states(device)  # lesson 08: one per process; with one, [rng_state(device)]
    rank, world_size = rank_and_world()
    if rank == 0:
        loss, perplexity = evaluate(model, val_loader, config.eval_iters)
        history["val"].append((step, loss))
        if config.progress:
            log(f"step {step}: val loss {loss:.4f}, perplexity {perplexity:.2f}")
        with eval_mode(model), rng_kept(device):  # sampling in a callback must not change the run
            for callback in callbacks:
                callback(step, model, history)
        if checkpoint is not None:
            many = {"rng_states": rng_states} if world_size > 1 else {}
            scaler = {"grad_scaler": precision.scaler.state_dict()} if precision.scaler.is_enabled() else {}
            save_checkpoint(checkpoint, model, optimizer, step=step, history=history,
                            train_config=dataclasses.asdict(config), rng_state=rng_states[0],
                            **many, **scaler, **saved)
    if world_size > 1:  # lesson 08: the others wait here, then keep the same history
        shared = [history["val"][-1] if rank == 0 else None]
        torch.distributed.broadcast_object_list(shared, src=0)
        if rank != 0:
            history["val"].append(shared[0])


def train(model, train_loader, val_loader, config, callbacks=(), *, checkpoint=None, resume=False, **extra):
    """Train `model` for config.max_iters steps on the batches of `train_loader`; return its history.

    The batches come in the loader's own order (make_loaders' ShuffledBatches), epoch after
    epoch. Every `eval_interval` steps and at the end: evaluate on `val_loader`, call each
    `callback(step, model, history)` (the model in eval mode, the random state saved and
    restored around it, so sampling text there does not change the run), and save `checkpoint`
    (a path; `extra`, e.g. tokenizer=..., goes into it). With resume=True the run continues
    from `checkpoint`: weights, optimizer, step, random state and history, and it ends in the
    same state as a run that never stopped. Its config must match the saved one except for
    MAY_CHANGE_ON_RESUME (ValueError otherwise).

    history = {"train": [(step, loss)], "val": [(step, loss)], "lr": [lr per step]}.
    A loss that becomes NaN or infinite stops the run with a ValueError naming the step.

    Lesson 08: config.device, dtype, compile and grad_accum run the same training faster or in
    less memory. Under torchrun (a process group joined, see numogpt.distributed) every process
    calls train with the same arguments and takes its share of each batch; process 0 alone
    shows progress, evaluates, calls back and writes the checkpoint.
    """
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint path to resume from")
    device = resolve_device(config.device)
    config = dataclasses.replace(config, dtype=resolve_dtype(config.dtype, device))  # lesson 08: "auto" -> a dtype
    rank, world_size = rank_and_world()  # lesson 08: (0, 1) unless torchrun started several processes
    if isinstance(train_loader.batch_sampler, ShuffledBatches):  # else batches_from says what is wrong
        require_splits(train_loader.batch_sampler.batch_size, config.grad_accum, world_size)
    model.to(device)
    optimizer = configure_optimizer(model, config)
    precision = Precision(config.dtype, device)
    step, history = 0, {"train": [], "val": [], "lr": []}
    if resume:
        step, history = resume_run(checkpoint, model, optimizer, precision, config, train_loader, device)
    else:
        torch.manual_seed(config.seed + rank)  # dropout's random draws (lesson 08: each process its own)
    model.train()
    step_model = model_for_steps(model, config, device)  # lesson 08: `model`, or it compiled / under DDP
    bar = tqdm(total=config.max_iters, initial=step, disable=not config.progress or rank != 0, desc="training")
    evaluate_and_save_at = functools.partial(evaluate_and_save, model=model, optimizer=optimizer, precision=precision,
                                             val_loader=val_loader, config=config, history=history,
                                             callbacks=callbacks, checkpoint=checkpoint, log=bar.write,
                                             saved={**_data_order(train_loader), **extra})
    with bar:
        if not history["val"] or history["val"][-1][0] != step:  # a resumed run has evaluated here
            evaluate_and_save_at(step)
        for step, (x, y) in zip(range(step, config.max_iters), batches_from(train_loader, step)):
            lr = lr_at(step, config)
            set_learning_rate(optimizer, lr)
            try:
                loss = train_step(step_model, optimizer, x.to(device), y.to(device), config.grad_clip,
                                  config.grad_accum, precision)
            except ValueError as e:
                raise ValueError(f"step {step} (learning rate {lr:.2e}): {e}") from None
            history["train"].append((step, loss))
            history["lr"].append(lr)
            bar.update()
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", refresh=False)
            if (step + 1) % config.eval_interval == 0 or step + 1 == config.max_iters:
                evaluate_and_save_at(step + 1)
    return history
