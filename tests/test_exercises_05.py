"""Lesson 05's checks: right answers pass, wrong answers get a message that says what is wrong."""
import contextlib
import dataclasses
import itertools
import math
import re

import nbformat
import pytest
import torch

import numogpt.train
from numogpt import NOTEBOOKS_DIR
from numogpt.model import eval_mode
from numogpt.train import batches_from, configure_optimizer, evaluate

from numogpt.exercises.lesson05 import (
    check_clip_gradients,
    check_cross_entropy,
    check_lr_at,
    check_train,
    check_train_step,
    check_weight_decay_groups,
)
from tests.helpers import assert_right_passes_and_wrong_fails, not_written
from tests.test_notebooks import CHECK_CALL


# --- cross-entropy by hand ----------------------------------------------------------------------

def cross_entropy(logits, targets):
    logp = logits.log_softmax(dim=-1)
    return -logp[torch.arange(len(targets)), targets].mean()


def naive(logits, targets):
    p = logits.exp() / logits.exp().sum(-1, keepdim=True)
    return -p[torch.arange(len(targets)), targets].log().mean()


@pytest.mark.parametrize("wrong, message", [
    (lambda lg, t: -lg.softmax(-1)[torch.arange(len(t)), t].mean(), "LOG p"),
    (lambda lg, t: -lg.log_softmax(-1)[torch.arange(len(t)), t].sum(), "summed"),
    (naive, "overflows"),
    (lambda lg, t: -lg.log_softmax(0)[torch.arange(len(t)), t].mean(), "Expected"),
    (lambda lg, t: "2.3", "one number"),
    (not_written, "not written yet"),
])
def test_cross_entropy(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_cross_entropy, cross_entropy, wrong, message, capsys)


# --- the learning-rate schedule -----------------------------------------------------------------

def lr_at(step, config):
    if step < config.warmup_iters:
        return config.learning_rate * (step + 1) / config.warmup_iters
    if step >= config.decay_end:
        return config.min_lr
    progress = (step - config.warmup_iters) / (config.decay_end - config.warmup_iters)
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (config.learning_rate - config.min_lr)


def from_zero(step, config):
    if step < config.warmup_iters:
        return config.learning_rate * step / config.warmup_iters
    return lr_at(step, config)


def never_settles(step, config):
    if step < config.decay_end:
        return lr_at(step, config)
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * step / config.decay_end)) * (config.learning_rate - config.min_lr)


def linear_decay(step, config):
    if step < config.warmup_iters or step >= config.decay_end:
        return lr_at(step, config)
    progress = (step - config.warmup_iters) / (config.decay_end - config.warmup_iters)
    return config.learning_rate - progress * (config.learning_rate - config.min_lr)


def to_max_iters(step, config):  # ignores lr_decay_iters
    return lr_at(step, dataclasses.replace(config, lr_decay_iters=None))


@pytest.mark.parametrize("wrong, message", [
    (from_zero, r"learning_rate \* \(step \+ 1\)"),
    (never_settles, "stays at min_lr"),
    (linear_decay, "cos"),
    (lambda step, config: lr_at(max(step, config.warmup_iters), config), "warmup"),  # no warmup at all
    (to_max_iters, "decay_end"),
    (lambda step, config: lr_at(step, config) * 10, "expected"),
    (not_written, "not written yet"),
])
def test_lr_at(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_lr_at, lr_at, wrong, message, capsys)


# --- which parameters get weight decay ----------------------------------------------------------

def weight_decay_groups(model):
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(name)
    return decay, no_decay


def split(decide):
    """The groups made by `decide(name, p)` (True: decayed), as a learner might write them."""
    def weight_decay_groups(model):
        named = list(model.named_parameters())
        return [n for n, p in named if decide(n, p)], [n for n, p in named if not decide(n, p)]
    return weight_decay_groups


@pytest.mark.parametrize("wrong, message", [
    (split(lambda n, p: p.dim() >= 2), "embeddings"),  # nanoGPT's choice
    (split(lambda n, p: "wte" not in n and "wpe" not in n), "biases or LayerNorm"),
    (split(lambda n, p: n.endswith("c_fc.weight")), "should be decayed too"),
    (lambda m: (["c_attn"], []), "not parameter names"),
    (lambda m: ([p for n, p in m.named_parameters() if p.dim() >= 2 and "wte" not in n and "wpe" not in n], []),
     "return the parameter NAMES"),  # the tensors instead of their names
    (lambda m: weight_decay_groups(m)[0], "two lists"),  # only the decayed names, as the old exercise asked
    (lambda m: (weight_decay_groups(m)[0], []), "in neither list"),
    (lambda m: (weight_decay_groups(m)[0], [n for n, _ in m.named_parameters()]), "in both lists"),
    (lambda m: ("transformer.h.0.mlp.c_fc.weight", "transformer.wte.weight"), "two lists"),
    (not_written, "not written yet"),
])
def test_weight_decay_groups(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_weight_decay_groups, weight_decay_groups, wrong, message, capsys)


# --- gradient clipping --------------------------------------------------------------------------

def clip_gradients(grads, max_norm):
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    return [g * min(1.0, max_norm / norm.item()) for g in grads]


@pytest.mark.parametrize("wrong, message", [
    (lambda grads, m: [g * min(1.0, m / g.norm().item()) for g in grads], "each tensor on its own"),
    (lambda grads, m: [g * m / torch.cat([x.flatten() for x in grads]).norm() for g in grads], "already below"),
    (lambda grads, m: [g.clamp(-m, m) for g in grads], "multiplied by"),
    (lambda grads, m: torch.cat([g.flatten() for g in grads]), "one tensor per gradient"),
    (not_written, "not written yet"),
])
def test_clip_gradients(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_clip_gradients, clip_gradients, wrong, message, capsys)


# --- the training step --------------------------------------------------------------------------

def a_step(zero_grad=True, clip="before", step_first=False, result=lambda loss: loss.item()):
    """train_step as the lesson asks for it, or with one habit changed."""
    def train_step(model, optimizer, x, y, grad_clip):
        if zero_grad:
            optimizer.zero_grad()
        _, loss = model(x, y)
        if step_first:
            optimizer.step()
        loss.backward()
        if clip == "before" and grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if clip == "always":
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if not step_first:
            optimizer.step()
        if clip == "after" and grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        return result(loss)
    return train_step


def clipped_by_hand(model, optimizer, x, y, grad_clip):  # the learner's own clipping, as in Exercise 4
    optimizer.zero_grad()
    _, loss = model(x, y)
    loss.backward()
    if grad_clip is not None:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm = math.sqrt(sum((g ** 2).sum().item() for g in grads))
        for g in grads:
            g.mul_(min(1.0, grad_clip / norm))
    optimizer.step()
    return loss.item()


def test_train_step_with_clipping_by_hand(capsys, one_thread):
    check_train_step(clipped_by_hand)
    assert "Correct" in capsys.readouterr().out


def recomputed_loss(model, optimizer, x, y, grad_clip):
    a_step()(model, optimizer, x, y, grad_clip)
    with torch.no_grad():
        return model(x, y)[1].item()  # the loss after the step


@pytest.mark.parametrize("wrong, message", [
    (a_step(zero_grad=False), "added up"),
    (a_step(clip=None), "not clipped"),
    (a_step(clip="after"), "after optimizer.step"),
    (a_step(clip="always"), "grad_clip=None"),
    (a_step(step_first=True), "did not move the weights"),
    (a_step(result=lambda loss: loss), "Python float"),
    (a_step(result=lambda loss: round(loss.item())), "as a float"),
    (recomputed_loss, "before the step"),
    (lambda *args: numogpt.train.train_step(*args), "without `numogpt.train.train_step`"),
    (not_written, "not written yet"),
])
def test_train_step(wrong, message, capsys, one_thread):
    assert_right_passes_and_wrong_fails(check_train_step, a_step(), wrong, message, capsys)


# --- the training loop ----------------------------------------------------------------------------

def a_loop(seed=True, set_train=True, batches=lambda loader: batches_from(loader, 0), groups=all, at_end=True,
           callbacks_in_eval=True, pairs=True):
    """train as the lesson asks for it (with the library's pieces), or with one habit changed."""
    def train(model, train_loader, val_loader, config, callbacks=()):
        if seed:
            torch.manual_seed(config.seed)
        optimizer = configure_optimizer(model, config)
        history = {"train": [], "val": [], "lr": []}

        def evaluate_now(step):
            loss, _ = evaluate(model, val_loader, config.eval_iters)
            history["val"].append((step, loss))
            with eval_mode(model) if callbacks_in_eval else contextlib.nullcontext():
                for callback in callbacks:
                    callback(step, model, history)

        if set_train:
            model.train()
        evaluate_now(0)
        for step, (x, y) in zip(range(config.max_iters), batches(train_loader)):
            lr = lr_at(step, config)
            for group in optimizer.param_groups if groups is all else optimizer.param_groups[:1]:
                group["lr"] = lr
            loss = a_step()(model, optimizer, x, y, config.grad_clip)
            history["train"].append((step, loss) if pairs else loss)
            history["lr"].append(lr)
            if (step + 1) % config.eval_interval == 0 or (at_end and step + 1 == config.max_iters):
                evaluate_now(step + 1)
        return history
    return train


def stepping_without_evaluation(model, train_loader, val_loader, config, callbacks=()):
    history = a_loop()(model, train_loader, val_loader, config, callbacks)
    return {**history, "val": [(step, loss + 0.1) for step, loss in history["val"]]}


@pytest.mark.parametrize("wrong, message", [
    (a_loop(seed=False), "Seed dropout first"),
    (a_loop(set_train=False), "eval mode"),
    (a_loop(batches=lambda loader: itertools.cycle(loader)), "new shuffle"),
    (a_loop(groups=None), "EVERY param group"),
    (a_loop(at_end=False), "You evaluated at steps"),
    (a_loop(callbacks_in_eval=False), "train mode"),
    (a_loop(pairs=False), r"\(step, loss\) pairs"),
    (stepping_without_evaluation, "validation loss"),
    (lambda *args, **kwargs: {"train": [], "val": []}, "Return the history"),
    (lambda *args, **kwargs: numogpt.train.train(*args, **kwargs), "without `numogpt.train.train`"),
    (not_written, "not written yet"),
])
def test_train(wrong, message, capsys, one_thread):
    assert_right_passes_and_wrong_fails(check_train, a_loop(), wrong, message, capsys)


# --- the lesson runs the learner's code ------------------------------------------------------

VAL_LOSSES = re.compile(r"validation loss at each evaluation: \[([^\]]*)\]")


def val_losses(cell):
    printed = "".join(o.get("text", "") for o in cell.outputs)
    return [float(v) for v in VAL_LOSSES.search(printed).group(1).split(",")]


def test_a_missing_zero_grad_shows_in_the_lessons_own_training():
    """Lesson 05's run is the learner's train with the learner's train_step: a step that never clears the
    gradients worsens the lesson's own result, not only its check. The first 150 of the run's 500 steps
    show it (the same schedule, lr_decay_iters=500, so its step 150 is the stored run's) at a third of the cost."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS_DIR / "05_training.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    run = next(i for i, c in enumerate(cells) if "history = train(" in c.source and "# your loop" in c.source)
    report = next(c for c in cells if "validation loss at each evaluation" in c.source)
    stored = val_losses(report)  # at steps 0, 50, ..., 500
    step = next(c for c in cells if c.source.startswith("def train_step("))
    assert "optimizer.zero_grad(" in step.source
    step.source = "\n".join(line for line in step.source.split("\n") if "optimizer.zero_grad(" not in line)
    assert "max_iters=500," in cells[run].source
    cells[run].source = cells[run].source.replace("max_iters=500,", "max_iters=150, lr_decay_iters=500,")
    # the checks would stop the run (they refuse this step); every other cell up to the run runs as stored
    nb.cells = [c for c in cells[: run + 1] if not CHECK_CALL.search(c.source)] + [report]
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}).execute()
    wrong = val_losses(nb.cells[-1])  # at steps 0, 50, 100, 150
    assert wrong[0] == stored[0], "the same model before its first step"
    assert wrong[3] > stored[3] + 0.3, f"without zero_grad the lesson's model reaches {wrong[3]} at step 150, " \
                                       f"the right one {stored[3]}"
