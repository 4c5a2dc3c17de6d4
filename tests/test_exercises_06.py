"""Lesson 06's checks: right answers pass, wrong answers get a message that says what is wrong."""
import pytest
import torch

from numogpt.exercises.lesson06 import (
    check_greedy_step, check_softmax_with_temperature, check_top_k_filter, check_top_p_filter,
)
from tests.helpers import assert_right_passes_and_wrong_fails, not_written


# --- softmax with temperature --------------------------------------------------------------

def softmax_with_temperature(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (lambda logits, t: torch.softmax(logits * t, dim=-1), "multiplied"),
    (lambda logits, t: torch.softmax(logits, dim=-1), "plain softmax"),
    (lambda logits, t: torch.softmax(logits, dim=-1) / t, "sum to 1"),
    (lambda logits, t: torch.softmax(logits / t, dim=0), "sum to 1"),
    (lambda logits, t: logits.div_(t).softmax(dim=-1), "in place"),
    (lambda logits, t: torch.softmax(logits / t, dim=-1)[0], "shape"),
])
def test_softmax_with_temperature(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_softmax_with_temperature, softmax_with_temperature, wrong, message, capsys)


# --- top-k ------------------------------------------------------------------------------------

def top_k_by_scatter(logits, k):  # keeps exactly k even on ties: also right
    kept = torch.full_like(logits, float("-inf"))
    values, indices = torch.topk(logits, k)
    return kept.scatter(-1, indices, values)


def test_top_k_by_scatter_passes_too(capsys):
    check_top_k_filter(top_k_by_scatter)
    assert "Correct" in capsys.readouterr().out


def kth(logits, k, largest=True):
    return torch.topk(logits, k, largest=largest).values[..., -1:]


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (lambda logits, k: logits.masked_fill(logits < kth(logits, k), 0.0), "to 0"),
    (lambda logits, k: logits.masked_fill(logits <= kth(logits, k), float("-inf")), "keep exactly"),
    (lambda logits, k: logits.masked_fill(logits > kth(logits, k, largest=False), float("-inf")), "SMALLEST"),
    (lambda logits, k: torch.where(logits < kth(logits, k), float("-inf"), 1.0), "stay exactly"),
    (lambda logits, k: logits.masked_fill(logits < kth(logits[:1], k), float("-inf")), "keep exactly|wrong tokens"),
])
def test_top_k_filter(wrong, message, capsys):
    right = lambda logits, k: logits.masked_fill(logits < kth(logits, k), float("-inf"))  # noqa: E731
    assert_right_passes_and_wrong_fails(check_top_k_filter, right, wrong, message, capsys)


# --- top-p ------------------------------------------------------------------------------------

def nucleus_by(rule):
    """A top-p filter whose keep decision is rule(sorted_probs, p)."""
    def top_p(logits, p):
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        keep = rule(sorted_logits.softmax(dim=-1), p)
        return logits.masked_fill(~torch.zeros_like(keep).scatter(-1, order, keep), float("-inf"))
    return top_p


top_p_filter = nucleus_by(lambda sorted_probs, p: (sorted_probs.cumsum(-1) - sorted_probs) < p)  # the right answer


def unsorted(logits, p):  # cumsum in vocabulary order, never sorted
    probs = logits.softmax(dim=-1)
    return logits.masked_fill((probs.cumsum(-1) - probs) >= p, float("-inf"))


def whole_batch(logits, p):  # sorts the flattened batch, not each row
    flat = top_p_filter(logits.flatten(), p)
    return flat.view_as(logits)


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (nucleus_by(lambda probs, p: probs.cumsum(-1) < p), "one token short"),  # stops before crossing p
    (nucleus_by(lambda probs, p: probs.cumsum(-1) <= p), "one token short|no token"),
    (nucleus_by(lambda probs, p: probs.cumsum(-1) - probs <= p + 0.2), "nucleus"),
    (unsorted, "Sort"),
    (lambda logits, p: top_p_filter(logits, p).nan_to_num(neginf=0.0), "to 0"),
    (lambda logits, p: top_p_filter(logits, p) / 2, "stay exactly"),
    (whole_batch, "row by row"),
])
def test_top_p_filter(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_top_p_filter, top_p_filter, wrong, message, capsys)


# --- the greedy step --------------------------------------------------------------------------

def greedy_step(model, idx):
    logits, _ = model(idx[:, -model.config.block_size:])
    return logits[:, -1, :].argmax(dim=-1, keepdim=True)


def test_greedy_step_check_leaves_the_random_state_alone():
    state = torch.get_rng_state()
    check_greedy_step(greedy_step)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (lambda model, idx: model(idx)[0][:, -1, :].argmax(dim=-1, keepdim=True), "crop the context"),
    (lambda model, idx: greedy_step(model, idx).flatten(), r"not \(2,\)"),
    (lambda model, idx: model(idx[:, -8:])[0][:, -1, :], "returned the logits"),
    (lambda model, idx: model(idx[:, -8:])[0][:, 0, :].argmax(dim=-1, keepdim=True), "FIRST position"),
    (lambda model, idx: model(idx[:, :8])[0][:, -1, :].argmax(dim=-1, keepdim=True), "last block_size"),
])
def test_greedy_step(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_greedy_step, greedy_step, wrong, message, capsys)
