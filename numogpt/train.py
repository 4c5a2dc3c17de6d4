"""Lesson 05: training a GPT.

Training is a loop: take a batch, measure how wrong the model's next-token guesses are (the
cross-entropy loss), let backpropagation say which way each weight should move, and let the
optimizer (AdamW) move it a little. Around that loop sit the habits that make it work:
a learning rate that warms up and then decays along a cosine, gradient clipping, weight
decay on the weight matrices only, and a validation loss measured in eval mode. Saving a run
and resuming it exactly is numogpt.checkpoint's part.

    >>> import torch.nn as nn
    >>> config = TrainConfig(max_iters=100, learning_rate=1e-3, min_lr=1e-4, warmup_iters=10)
    >>> [round(lr_at(step, config), 6) for step in (0, 9, 10, 55, 100)]
    [0.0001, 0.001, 0.001, 0.00055, 0.0001]
    >>> decay, no_decay = weight_decay_groups(nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Linear(4, 4)))
    >>> decay, no_decay
    (['2.weight'], ['0.weight', '1.weight', '1.bias', '2.bias'])

Any model with `forward(idx, targets) -> (logits, loss)` trains here: numogpt's GPT
(lesson 04) is the one the course uses. `train` runs its steps in one process, on the CPU, in
float32; lesson 08's `numogpt.scaling.Runtime` runs the same loop on any device, in lower
precision, in slices of a batch and in many processes (`train(..., runtime=Runtime())`).
"""
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
# the text bar, also in Jupyter: a notebook widget bar is stored as its text at the start
# ("0/1000"), while the text bar's last state is what a saved notebook shows
from tqdm import tqdm

from numogpt.checkpoint import load_run, restore_run, rng_kept, rng_state, save_run, set_rng_state
from numogpt.data import IGNORE_INDEX, ShuffledBatches
from numogpt.model import eval_mode
from numogpt.tools.arguments import require_int, require_number

PRECISIONS = ("float32", "bfloat16", "float16")  # the forward's dtype under lesson 08's runtime
LESSON_08 = ("device", "dtype", "compile", "grad_accum")  # TrainConfig's settings that only lesson 08's runtime changes


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
    progress: bool = True  # show a tqdm progress bar and a line per evaluation
    # lesson 08: where and how the steps run (numogpt.scaling.Runtime reads these; `train`'s own
    # runtime runs the defaults)
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", "mps", or "auto" (the best one here)
    dtype: str = "float32"  # the forward's precision: one of PRECISIONS, or "auto"
    compile: bool = False  # torch.compile the model for the training steps
    grad_accum: int = 1  # run each batch in this many slices, adding up their gradients

    def __post_init__(self):
        for name in ("max_iters", "eval_interval", "grad_accum"):
            require_int(name, getattr(self, name), least=1)
        require_int("warmup_iters", self.warmup_iters, least=0)
        if self.lr_decay_iters is not None:
            require_int("lr_decay_iters", self.lr_decay_iters, least=self.warmup_iters + 1)
        if self.eval_iters is not None:
            require_int("eval_iters", self.eval_iters, least=1)
        if not 0 <= self.min_lr <= self.learning_rate:
            raise ValueError(f"need 0 <= min_lr <= learning_rate, got min_lr={self.min_lr}, "
                             f"learning_rate={self.learning_rate}")
        require_number("weight_decay", self.weight_decay, least=0)
        if self.grad_clip is not None:
            require_number("grad_clip", self.grad_clip, above=0, hint=" (or None for no clipping)")
        if self.optimizer not in ("adamw", "muon"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use 'adamw' or 'muon'")
        if self.optimizer == "muon" and not hasattr(torch.optim, "Muon"):
            raise ValueError(f"optimizer='muon' needs torch.optim.Muon (PyTorch 2.9 or later); this is torch "
                             f"{torch.__version__}: upgrade torch, or use optimizer='adamw'")
        if self.dtype not in ("auto", *PRECISIONS):
            raise ValueError(f"unknown dtype {self.dtype!r}: use one of auto, {', '.join(PRECISIONS)}")
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
    """Lesson 08's speed run: Muon for the weight matrices, AdamW for embeddings, gains and biases,
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
    sampler = _shuffled_batches(loader)
    epoch, start = divmod(step, len(sampler))
    while True:
        sampler.set_epoch(epoch, start)
        yield from loader
        epoch, start = epoch + 1, 0


def data_order(loader):
    """What fixes the order of `loader`'s batches, saved so that a resumed run can check it has the same."""
    sampler = _shuffled_batches(loader)
    return {"batches_per_epoch": len(sampler), "seed": sampler.seed}


def _shuffled_batches(loader):
    if not isinstance(loader.batch_sampler, ShuffledBatches):
        raise TypeError("train_loader must come from numogpt.data.make_loaders (or shuffled_loader): "
                        "its seeded order is what lets a run resume exactly")
    return loader.batch_sampler


# --- the training loop ----------------------------------------------------------------------------


def train_step(model, optimizer, x, y, grad_clip):
    """One optimizer step on the batch (x, y); returns its mean loss before the step (a float)."""
    optimizer.zero_grad(set_to_none=True)  # gradients add up until cleared
    _, loss = model(x, y)
    require_finite(loss)
    loss.backward()
    if grad_clip is not None:
        # scale all gradients down together if their joint norm exceeds grad_clip:
        # one unlucky batch cannot throw the weights far away
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def require_finite(loss):
    if not torch.isfinite(loss):
        raise ValueError(f"the loss became {loss.item()}: lower the learning rate or check the data; "
                         f"the last checkpoint is intact")


def set_learning_rate(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


class OneProcess:
    """Where and how `train` runs its steps: in one process, on the CPU, in float32, each batch whole.

    `train` asks its runtime to place the model, to seed it, to take each step, and for the
    state a checkpoint keeps of it. Lesson 08's numogpt.scaling.Runtime answers the same
    questions for any device, lower precision, slices of a batch and many processes.
    """

    is_main = True  # the process that evaluates, reports and saves (lesson 08 has others)

    def prepare(self, model, config, train_loader):
        """Place `model`; return `config` as this runtime will run it."""
        lesson_08 = [f"{name}={getattr(config, name)!r}" for name in LESSON_08
                     if getattr(config, name) != getattr(TrainConfig, name)]  # the class holds the defaults
        if lesson_08:
            raise ValueError(f"{', '.join(lesson_08)}: train runs in one process on the CPU in float32; for lesson "
                             f"08's devices, precisions and slices use train(..., runtime=numogpt.scaling.Runtime())")
        self.device = torch.device("cpu")
        model.to(self.device)
        return config

    def seed(self, seed):
        torch.manual_seed(seed)  # dropout's random draws

    def step_model(self, model):
        """The module the training steps call (lesson 08 wraps it)."""
        return model

    def train_step(self, model, optimizer, x, y, grad_clip):
        return train_step(model, optimizer, x, y, grad_clip)

    def state_dict(self):
        """What a checkpoint keeps of the runtime: the random state dropout goes on from."""
        return {"rng_states": [rng_state(self.device)]}

    def load_state_dict(self, state):
        set_rng_state(state["rng_states"][0], self.device)

    def agree(self, history):
        """Every process ends an evaluation with the same history (one process has it already)."""


def train(model, train_loader, val_loader, config, callbacks=(), *, checkpoint=None, resume=False, runtime=None,
          **extra):
    """Train `model` for config.max_iters steps on the batches of `train_loader`; return its history.

    The batches come in the loader's own order (make_loaders' ShuffledBatches), epoch after
    epoch. Every `eval_interval` steps and at the end: evaluate on `val_loader`, call each
    `callback(step, model, history)` (the model in eval mode, the random state saved and
    restored around it, so sampling text there does not change the run), and save `checkpoint`
    (a path; `extra`, e.g. tokenizer=..., goes into it). With resume=True the run continues
    from `checkpoint`: weights, optimizer, step, random state and history, and it ends in the
    same state as a run that never stopped. Its config must match the saved one except for
    numogpt.checkpoint.MAY_CHANGE_ON_RESUME (ValueError otherwise).

    history = {"train": [(step, loss)], "val": [(step, loss)], "lr": [lr per step]}.
    A loss that becomes NaN or infinite stops the run with a ValueError naming the step.

    `runtime` is where and how the steps run: OneProcess() unless given (lesson 08:
    numogpt.scaling.Runtime()).
    """
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint path to resume from")
    runtime = runtime or OneProcess()
    order = data_order(train_loader)
    if resume:
        saved, settings = load_run(checkpoint, config, order)
        config = TrainConfig(**settings)  # "auto" settings are the saved run's choices
    config = runtime.prepare(model, config, train_loader)
    optimizer = configure_optimizer(model, config)
    if resume:
        step, history = restore_run(saved, model, optimizer, runtime)
    else:
        step, history = 0, {"train": [], "val": [], "lr": []}
        runtime.seed(config.seed)
    model.train()
    step_model = runtime.step_model(model)
    bar = tqdm(total=config.max_iters, initial=step, disable=not config.progress or not runtime.is_main,
               desc="training")

    def evaluate_and_save(step):
        state = runtime.state_dict()  # every process takes part (lesson 08: each one's random state)
        if runtime.is_main:
            loss, perplexity = evaluate(model, val_loader, config.eval_iters)
            history["val"].append((step, loss))
            if config.progress:
                bar.write(f"step {step}: val loss {loss:.4f}, perplexity {perplexity:.2f}")
            with eval_mode(model), rng_kept(runtime.device):  # sampling in a callback must not change the run
                for callback in callbacks:
                    callback(step, model, history)
            if checkpoint is not None:
                save_run(checkpoint, model, optimizer, step, history, config, order, state, **extra)
        runtime.agree(history)

    with bar:
        if not history["val"] or history["val"][-1][0] != step:  # a resumed run has evaluated here
            evaluate_and_save(step)
        for step, (x, y) in zip(range(step, config.max_iters), batches_from(train_loader, step)):
            lr = lr_at(step, config)
            set_learning_rate(optimizer, lr)
            try:
                loss = runtime.train_step(step_model, optimizer, x, y, config.grad_clip)
            except ValueError as e:
                raise ValueError(f"step {step} (learning rate {lr:.2e}): {e}") from None
            history["train"].append((step, loss))
            history["lr"].append(lr)
            bar.update()
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", refresh=False)
            if (step + 1) % config.eval_interval == 0 or step + 1 == config.max_iters:
                evaluate_and_save(step + 1)
    return history
