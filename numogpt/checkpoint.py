"""Lesson 05: saving a run, loading it, and resuming it exactly.

A checkpoint is a dict of tensors and plain values, written with torch.save and read back with
`weights_only=True` (no code runs on loading, so a file from anywhere is safe to open):

    model         the model's state_dict           model_config   its config, as a dict
    model_class   "numogpt.model.GPT": what to build from model_config
    step          optimizer steps taken             tokenizer      the tokenizer's to_dict(), or None
    optimizer     the optimizer's state_dict, or None
and, for a run that `numogpt.train.train` can resume:
    history       {"train", "val", "lr"}            train_config   the TrainConfig, as a dict
    data_order    what fixes the batches' order     runtime        the random state(s), a gradient scaler
    run           the command's description of the run (`python -m numogpt train` writes it)

This module is the one place that writes and reads those keys. A resumed run must be the run
that was saved: `resume_settings` is the one rule for what may change (how long it runs, how
often it evaluates, where and in how many slices it computes) and what may not.
"""
import dataclasses
import importlib
from pathlib import Path

import torch

from numogpt import DATA_DIR
from numogpt.tokenizer import tokenizer_from_dict
from numogpt.tools.files import write_atomically

# The model the course ships: the checkpoint of `python -m numogpt train` with its defaults (the
# run of lesson 05), made by `python bench/words.py --threads 1 --no-reference --out out/bench`
# (the default command, run in-process and measured) and copied from out/bench/default/. Lesson 06
# samples from it, so it needs no training first.
COURSE_MODEL = DATA_DIR / "course_model.pt"

REQUIRED = ("model", "model_config", "step")
RESUMABLE = ("optimizer", "history", "train_config", "data_order", "runtime")


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
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
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
    if not isinstance(checkpoint, dict) or not set(REQUIRED) <= checkpoint.keys():
        raise ValueError(f"{path} is not a numogpt checkpoint (no {', '.join(REQUIRED)} in it)")
    return checkpoint


# --- a model from a checkpoint ---------------------------------------------------------------------


def load_state(model, checkpoint):
    """Copy a checkpoint's weights into `model`, or say clearly why they do not fit."""
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config) and checkpoint["model_config"] is not None:
        ours = dataclasses.asdict(config)
        for key, theirs in checkpoint["model_config"].items():
            if key in ours and ours[key] != theirs and key != "dropout":
                raise ValueError(f"the checkpoint was trained with {key}={theirs!r} but this model has "
                                 f"{key}={ours[key]!r}: build it from the checkpoint's model_config")
    own, saved = model.state_dict(), checkpoint["model"]
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
    """Rebuild the model and tokenizer saved at `path`: (model in eval mode on `device`, tokenizer or None).

    The checkpoint names the model's class (numogpt.model.GPT, or a later lesson's model), whose
    `config_class` rebuilds the config from the saved dict.
    """
    checkpoint = load_checkpoint(path)
    if checkpoint["model_config"] is None:
        raise ValueError(f"{path} holds no model_config: it was not saved from a numogpt model")
    model_class = _numogpt_class(checkpoint.get("model_class", "numogpt.model.GPT"), path)
    model = model_class(model_class.config_class(**checkpoint["model_config"]))
    load_state(model, checkpoint)
    return model.to(device).eval(), saved_tokenizer(checkpoint)


def saved_tokenizer(checkpoint):
    """The tokenizer a checkpoint (as load_checkpoint reads it) holds, rebuilt; None if it holds none."""
    return tokenizer_from_dict(checkpoint["tokenizer"]) if checkpoint["tokenizer"] else None


def _numogpt_class(name, path):
    """The class a checkpoint names; only numogpt's own models are built (the file chooses nothing else)."""
    module, _, qualname = name.rpartition(".")
    found = getattr(importlib.import_module(module), qualname, None) if module.startswith("numogpt.") else None
    if not hasattr(found, "config_class"):
        raise ValueError(f"{path} holds a {name}, which is not a numogpt model: load its state_dict into the "
                         f"model yourself (load_checkpoint(path)['model'])")
    return found


# --- the random state ---------------------------------------------------------------------------


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


# --- saving and resuming a run -------------------------------------------------------------------

# What a resumed run may change: how long it runs, how often it looks, and where and how fast it
# runs: the device, compiling, and how many slices a batch is cut into (lesson 08: each learns
# the same model, to float rounding). Anything else would make another run than the one saved:
# the dtype too, since lower precision changes what the run computes (and a float16 run has a
# gradient scaler in its state). `python -m numogpt train --resume` follows the same rule.
MAY_CHANGE_ON_RESUME = ("max_iters", "eval_interval", "eval_iters", "device", "progress", "compile", "grad_accum")


def resume_settings(saved, given, spell=str):
    """The settings of a resumed run: `saved`, with those of `given` that may change.

    A setting in `given` that differs from `saved` and is not in MAY_CHANGE_ON_RESUME would make
    another run: a ValueError names each, as `spell(name)` writes it for the caller's user (None
    for a setting they cannot give). "auto" asks the run to choose, and a resumed run has chosen:
    it keeps the saved value.
    """
    given = {name: value for name, value in given.items() if value != "auto"}
    changed = [name for name, value in sorted(given.items())
               if name not in MAY_CHANGE_ON_RESUME and saved.get(name) != value]
    if changed:
        may_change = [spell(name) for name in MAY_CHANGE_ON_RESUME if spell(name)]
        raise ValueError("the run was saved with other settings: "
                         + "; ".join(f"{spell(name)} {saved.get(name)!r} in the checkpoint, {given[name]!r} now"
                                     for name in changed)
                         + f". Resume with the checkpoint's settings (only {', '.join(may_change)} may change)")
    return {**saved, **given}


def save_run(path, model, optimizer, step, history, config, data_order, runtime, **extra):
    """Save what `train` needs to resume: the checkpoint's keys above, `extra` beside them."""
    return save_checkpoint(path, model, optimizer, step=step, history=history, train_config=dataclasses.asdict(config),
                           data_order=data_order, runtime=runtime, **extra)


def load_run(path, config, data_order):
    """The checkpoint of a run saved by `save_run`, checked against the run about to resume it:
    the same settings (resume_settings), the same data order, not past config.max_iters.
    Returns (checkpoint, the resumed run's settings as a dict)."""
    checkpoint = load_checkpoint(path)
    missing = [key for key in RESUMABLE if checkpoint.get(key) is None]
    if missing:
        raise ValueError(f"{path} cannot be resumed: it has no {', '.join(missing)} "
                         f"(only checkpoints written by numogpt.train.train can be)")
    settings = resume_settings(checkpoint["train_config"], dataclasses.asdict(config))
    if checkpoint["data_order"] != data_order:
        saved = checkpoint["data_order"]
        raise ValueError(f"the checkpoint at {path} was trained on data with {saved['batches_per_epoch']} batches "
                         f"per epoch in the order of seed {saved['seed']}; this loader has "
                         f"{data_order['batches_per_epoch']}, seed {data_order['seed']}: resume with the same data, "
                         f"block size, batch size and seed")
    if checkpoint["step"] > settings["max_iters"]:
        raise ValueError(f"the checkpoint is at step {checkpoint['step']}, past max_iters={settings['max_iters']}: "
                         f"raise max_iters to continue it")
    return checkpoint, settings


def restore_run(checkpoint, model, optimizer, runtime):
    """Put a run checked by `load_run` back into `model`, `optimizer` and `runtime` (its random
    state, a gradient scaler); return its (step, history)."""
    load_state(model, checkpoint)
    optimizer.load_state_dict(checkpoint["optimizer"])
    runtime.load_state_dict(checkpoint["runtime"])
    return checkpoint["step"], checkpoint["history"]


def saved_run(path):
    """The command's description of the run saved at `path` (its `run`), or None for a checkpoint of
    `save_checkpoint` or `train` called from Python. A setting the command left to the run ("auto")
    is what the run chose (its train_config's)."""
    checkpoint = load_checkpoint(path)
    run, chosen = checkpoint.get("run"), checkpoint.get("train_config") or {}
    if run is None:
        return None
    return {name: chosen.get(name, value) if value == "auto" else value for name, value in run.items()}
