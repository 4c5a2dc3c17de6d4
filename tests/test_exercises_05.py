"""Lesson 05's checks: right answers pass, wrong answers get a message that says what is wrong."""
import math

import pytest
import torch

from numogpt.exercises.lesson05 import (
    check_clip_gradients,
    check_cross_entropy,
    check_decayed_names,
    check_lr_at_step,
)
from tests.helpers import assert_right_passes_and_wrong_fails, not_written


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

def lr_at_step(step, warmup_iters, decay_iters, max_lr, min_lr):
    if step < warmup_iters:
        return max_lr * (step + 1) / warmup_iters
    if step >= decay_iters:
        return min_lr
    progress = (step - warmup_iters) / (decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def from_zero(step, warmup_iters, decay_iters, max_lr, min_lr):
    if step < warmup_iters:
        return max_lr * step / warmup_iters
    return lr_at_step(step, warmup_iters, decay_iters, max_lr, min_lr)


def never_settles(step, warmup_iters, decay_iters, max_lr, min_lr):
    return lr_at_step(min(step, decay_iters - 1), warmup_iters, decay_iters, max_lr, min_lr) if step < decay_iters \
        else min_lr + 0.5 * (1 + math.cos(math.pi * step / decay_iters)) * (max_lr - min_lr)


def linear_decay(step, warmup_iters, decay_iters, max_lr, min_lr):
    if step < warmup_iters or step >= decay_iters:
        return lr_at_step(step, warmup_iters, decay_iters, max_lr, min_lr)
    return max_lr - (step - warmup_iters) / (decay_iters - warmup_iters) * (max_lr - min_lr)


@pytest.mark.parametrize("wrong, message", [
    (from_zero, r"max_lr \* \(step \+ 1\)"),
    (never_settles, "stays at min_lr"),
    (linear_decay, "cos"),
    (lambda *a: max(lr_at_step(*a), a[3]), "warmup"),  # no warmup at all
    (not_written, "not written yet"),
])
def test_lr_at_step(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_lr_at_step, lr_at_step, wrong, message, capsys)


# --- which parameters get weight decay ----------------------------------------------------------

def decayed_names(model):
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return [n for n, p in model.named_parameters() if p.dim() >= 2 and id(p) not in embeddings]


@pytest.mark.parametrize("wrong, message", [
    (lambda m: [n for n, p in m.named_parameters() if p.dim() >= 2], "embeddings"),  # nanoGPT's choice
    (lambda m: [n for n, p in m.named_parameters() if "wte" not in n and "wpe" not in n], "biases or LayerNorm"),
    (lambda m: [n for n, p in m.named_parameters() if n.endswith("c_fc.weight")], "should be decayed too"),
    (lambda m: ["c_attn"], "not parameter names"),
    (lambda m: [p for n, p in m.named_parameters() if p.dim() >= 2 and "wte" not in n and "wpe" not in n],
     "return the parameter NAMES"),  # the tensors instead of their names
    (lambda m: [(n, p) for n, p in m.named_parameters() if p.dim() >= 2], "NAMES"),
    (lambda m: "transformer.h.0.mlp.c_fc.weight", "list"),
    (not_written, "not written yet"),
])
def test_decayed_names(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_decayed_names, decayed_names, wrong, message, capsys)


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
