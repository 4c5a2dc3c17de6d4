"""Lesson 02's checks: right answers pass, wrong answers get a message that says what is wrong."""
import pytest
import torch
import torch.nn.functional as F

from numogpt.data import TokenBlocks
from numogpt.exercises.lesson02 import check_count_blocks, check_loss_ignoring_padding, check_next_token_pair, check_padded_pair
from tests.helpers import assert_right_passes_and_wrong_fails, not_written


# --- the (x, y) pair at position i -----------------------------------------------------------

def next_token_pair(ids, i, block_size):
    return ids[i : i + block_size], ids[i + 1 : i + 1 + block_size]


def as_tensors(ids, i, block_size):  # tensors are as good as lists
    return TokenBlocks(ids[i:], block_size)[0]


@pytest.mark.parametrize("wrong, message", [
    (lambda ids, i, T: (ids[i : i + T], ids[i : i + T]), "y equals x"),
    (lambda ids, i, T: (ids[i : i + T], ids[i - 1 : i - 1 + T]) if i else (ids[:T], ids[1 : T + 1]), "wrong way"),
    (lambda ids, i, T: (ids[i : i + T], ids[i + 1 : i + T]), r"each hold block_size = \d+ ids"),
    (lambda ids, i, T: (ids[i + 1 : i + 1 + T], ids[i + 2 : i + 2 + T]), r"x should be ids\[i : i \+ block_size\]"),
    (lambda ids, i, T: (ids[i : i + T], ids[i + 2 : i + 2 + T]), r"y should be ids\[i \+ 1"),
    (lambda ids, i, T: ids[i : i + T + 1], "should return two things"),
    (lambda ids, i, T: ("abc", ids[i + 1 : i + 1 + T]), "list of ints"),
    (not_written, "not written yet"),
])
def test_next_token_pair(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_next_token_pair, next_token_pair, wrong, message, capsys)
    check_next_token_pair(as_tensors)


# --- counting blocks -------------------------------------------------------------------------

def count_blocks(n_ids, block_size, stride):
    return max(0, (n_ids - block_size - 1) // stride + 1)


def count_by_trying(n_ids, block_size, stride):  # the slow way is right too
    return len(range(0, n_ids - block_size, stride))


def count_with_token_blocks(n_ids, block_size, stride):  # and the library's own count agrees
    return len(TokenBlocks(list(range(n_ids)), block_size, stride)) if n_ids > block_size else 0


@pytest.mark.parametrize("right", [count_by_trying, count_with_token_blocks])
def test_other_right_counts_pass(right, capsys):
    check_count_blocks(right)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda n, T, s: max(0, (n - T) // s + 1), "one block too many"),
    (lambda n, T, s: max(0, (n - T - 1) // s), "one block too few"),
    (lambda n, T, s: (n - T - 1) // s + 1, "never negative"),
    (lambda n, T, s: max(0, (n - T - 1) / s + 1), "whole number"),
    (lambda n, T, s: (n - 1) // s, r"there are 90 blocks, you count 99"),
    (not_written, "not written yet"),
])
def test_count_blocks(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_count_blocks, count_blocks, wrong, message, capsys)


# --- a padded block --------------------------------------------------------------------------

def padded_pair(tokens, next_token, block_size, pad_id):
    pad = block_size - len(tokens)
    last = -100 if next_token is None else next_token
    return tokens + [pad_id] * pad, tokens[1:] + [last] + [-100] * pad


def pad_x_with(value):
    def wrong(tokens, next_token, T, pad_id):
        x, y = padded_pair(tokens, next_token, T, pad_id)
        return x[: len(tokens)] + [value] * (T - len(tokens)), y
    return wrong


def pad_in_place(tokens, next_token, T, pad_id):
    y = tokens[1:] + [-100 if next_token is None else next_token] + [-100] * (T - len(tokens))
    tokens += [pad_id] * (T - len(tokens))  # extends the caller's list too
    return tokens, y


def pad_y_with_pad_id(tokens, next_token, T, pad_id):
    x, y = padded_pair(tokens, next_token, T, pad_id)
    return x, y[: len(tokens)] + [pad_id] * (T - len(tokens))


@pytest.mark.parametrize("wrong, message", [
    (pad_x_with(-100), "no row -100"),
    (pad_x_with(0), "x should be the tokens, then pad_id"),
    (pad_y_with_pad_id, "predict padding"),
    (lambda tokens, nxt, T, pad_id: (padded_pair(tokens, nxt, T, pad_id)[0], tokens[1:] + [-100] * (T - len(tokens) + 1)),
     "still has a target"),
    (lambda tokens, nxt, T, pad_id: padded_pair(tokens, pad_id if nxt is None else nxt, T, pad_id), "end of the text"),
    (lambda tokens, nxt, T, pad_id: (padded_pair(tokens, nxt, T, pad_id)[0], padded_pair(tokens, nxt, T, pad_id)[0]),
     r"y should be \["),
    (lambda tokens, nxt, T, pad_id: (tokens, tokens[1:] + [-100]), "each hold block_size"),
    (pad_in_place, "changed the tokens list"),
    (lambda tokens, nxt, T, pad_id: (tokens + [pad_id] * (T - len(tokens)), tokens[1:] + [nxt] + [-100] * (T - len(tokens))),
     "y holds None"),
    (not_written, "not written yet"),
])
def test_padded_pair(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_padded_pair, padded_pair, wrong, message, capsys)


# --- a loss that ignores padding -------------------------------------------------------------

def loss_ignoring_padding(logits, targets):
    keep = targets != -100
    log_probs = logits[keep].log_softmax(dim=-1)  # (kept, V)
    return -log_probs[torch.arange(len(log_probs)), targets[keep]].mean()


def every_position(logits, targets):  # crashes on -100: it is not a class
    log_probs = logits.log_softmax(dim=-1)
    return -log_probs[torch.arange(len(targets)), targets].mean()


def divide_by_all(logits, targets):
    keep = targets != -100
    log_probs = logits[keep].log_softmax(dim=-1)
    return -log_probs[torch.arange(len(log_probs)), targets[keep]].sum() / len(targets)


def summed(logits, targets):
    return loss_ignoring_padding(logits, targets) * (targets != -100).sum()


def softmax_over_positions(logits, targets):
    keep = targets != -100
    log_probs = logits.log_softmax(dim=0)[keep]
    return -log_probs[torch.arange(len(log_probs)), targets[keep]].mean()


@pytest.mark.parametrize("wrong, message", [
    (every_position, "-100 is not a class"),
    (divide_by_all, "divided by all"),
    (summed, "sum of the losses"),
    (softmax_over_positions, "last dim"),
    (lambda logits, targets: F.cross_entropy(logits, targets, ignore_index=0), "without `F.cross_entropy`"),
    (lambda logits, targets: F.cross_entropy(logits, targets), "without `F.cross_entropy`"),
    (lambda logits, targets: F.nll_loss(logits.log_softmax(-1), targets), "without `F.nll_loss`"),
    (lambda logits, targets: [1.0, 2.0], "one number"),
    (not_written, "not written yet"),
])
def test_loss_ignoring_padding(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_loss_ignoring_padding, loss_ignoring_padding, wrong, message, capsys)
