"""Lesson 08's checks: right answers pass, wrong answers get a message that says what is wrong."""
import pytest
import torch

from numogpt.data import IGNORE_INDEX
from numogpt.exercises.lesson08 import check_accumulate_gradients, check_training_flops, check_unscale_or_skip
from tests.helpers import assert_right_passes_and_wrong_fails, not_written

# --- FLOPs per token ----------------------------------------------------------------------------


def training_flops_per_token(n_params, n_layer, n_embd, block_size):
    return 6 * n_params + 12 * n_layer * n_embd * block_size


@pytest.mark.parametrize("wrong, message", [
    (lambda n, layers, embd, block: 2 * n, "forward pass only"),
    (lambda n, layers, embd, block: 6 * n, "activations by activations"),
    (lambda n, layers, embd, block: 6 * n + 12 * layers * embd, "expected"),
    (lambda n, layers, embd, block: "6N", "one number"),
    (not_written, "not written yet"),
])
def test_training_flops(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_training_flops, training_flops_per_token, wrong, message, capsys)


# --- float16's gradient scaler -------------------------------------------------------------------


def unscale_or_skip(grads, scale):
    if not all(torch.isfinite(g).all() for g in grads):
        return None
    return [g / scale for g in grads]


@pytest.mark.parametrize("wrong, message", [
    (lambda grads, scale: grads, "still scaled"),
    (lambda grads, scale: [g * scale for g in grads], "divided by scale"),
    (lambda grads, scale: None if any(torch.isinf(g).any() for g in grads) else [g / scale for g in grads], "NaN"),
    (lambda grads, scale: [g / scale for g in grads], "inf"),
    (lambda grads, scale: None, "do not skip"),
    (not_written, "not written yet"),
])
def test_unscale_or_skip(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_unscale_or_skip, unscale_or_skip, wrong, message, capsys)


# --- gradient accumulation -----------------------------------------------------------------------


def accumulate_gradients(model, x, y, n):
    counted = (y != IGNORE_INDEX).sum()
    for xs, ys in zip(x.chunk(n), y.chunk(n)):
        _, loss = model(xs, ys)
        (loss * (ys != IGNORE_INDEX).sum() / counted).backward()


def unweighted(model, x, y, n):
    for xs, ys in zip(x.chunk(n), y.chunk(n)):
        model(xs, ys)[1].backward()


def mean_of_means(model, x, y, n):
    for xs, ys in zip(x.chunk(n), y.chunk(n)):
        (model(xs, ys)[1] / n).backward()


def cleared_between(model, x, y, n):
    for xs, ys in zip(x.chunk(n), y.chunk(n)):
        model.zero_grad()
        (model(xs, ys)[1] / n).backward()


@pytest.mark.parametrize("wrong, message", [
    (unweighted, "times too big"),
    (mean_of_means, "padding"),
    (cleared_between, "zero_grad"),
    (lambda model, x, y, n: None, "no gradient"),
    (not_written, "not written yet"),
])
def test_accumulate_gradients(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_accumulate_gradients, accumulate_gradients, wrong, message, capsys)
