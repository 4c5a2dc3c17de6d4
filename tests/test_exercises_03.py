"""Lesson 03's checks: right answers pass, wrong answers get a message that says what is wrong."""
import math

import pytest
import torch

from numogpt.exercises.lesson03 import check_masked_softmax, check_merge_heads, check_scaled_scores, check_split_heads
from tests.helpers import assert_right_passes_and_wrong_fails, not_written


def future(T):
    return torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)


# --- scaled scores ---------------------------------------------------------------------------

def scaled_scores(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))


@pytest.mark.parametrize("wrong, message", [
    (lambda q, k: q @ k.transpose(-2, -1), "raw scores"),
    (lambda q, k: q @ k.transpose(-2, -1) / q.size(-1), "divide by its square root"),
    (lambda q, k: k @ q.transpose(-2, -1) / math.sqrt(q.size(-1)), "swapped"),
    (lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(q.size(2)), r"not q @ kᵀ / sqrt\(D\) yet"),
    (lambda q, k: (q @ k.transpose(-2, -1)).tolist(), "should return a tensor"),
    (lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) if q.size(2) == k.size(2) else q, "shape"),
    (not_written, "not written yet"),
])
def test_scaled_scores(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_scaled_scores, scaled_scores, wrong, message, capsys)


# --- masked softmax --------------------------------------------------------------------------

def masked_softmax(scores):
    T = scores.size(-1)
    return scores.masked_fill(future(T), float("-inf")).softmax(dim=-1)


def exp_by_hand(scores):  # right on small scores, overflows on big ones
    e = scores.masked_fill(future(scores.size(-1)), float("-inf")).exp()
    return e / e.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("wrong, message", [
    (lambda s: s.softmax(dim=-1), "look into the future"),
    (lambda s: s.masked_fill(future(s.size(-1)), 0.0).softmax(dim=-1), "exp\\(0\\) = 1"),
    (lambda s: s.masked_fill(future(s.size(-1)).T, float("-inf")).softmax(dim=-1), "wrong side"),
    (lambda s: s.masked_fill(torch.ones(s.size(-1), s.size(-1), dtype=torch.bool).triu(), float("-inf")).softmax(-1), "NaN"),
    (lambda s: s.softmax(dim=-1).masked_fill(future(s.size(-1)), 0.0), "BEFORE the softmax"),
    (lambda s: s.masked_fill(future(s.size(-1)), float("-inf")).softmax(dim=-2), "columns sum to 1"),
    (lambda s: s.masked_fill(future(s.size(-1)), float("-inf")).mul(2).softmax(dim=-1), "Not the masked softmax yet"),
    (exp_by_hand, "overflows"),
    (lambda s: s.masked_fill_(future(s.size(-1)), float("-inf")).softmax(dim=-1), "changed the scores"),
    (not_written, "not written yet"),
])
def test_masked_softmax(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_masked_softmax, masked_softmax, wrong, message, capsys)


# --- split and merge heads -------------------------------------------------------------------

def split_heads(x, n_head):
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(y):
    B, H, T, D = y.shape
    return y.transpose(1, 2).contiguous().view(B, T, H * D)


@pytest.mark.parametrize("wrong, message", [
    (lambda x, h: x.view(x.size(0), h, x.size(1), x.size(2) // h), "reshaped straight"),
    (lambda x, h: x.view(x.size(0), x.size(1), h, -1), "shape"),
    (lambda x, h: x.view(x.size(0), x.size(1), -1, h).permute(0, 3, 1, 2), "must hold channels"),  # interleaved
    (not_written, "not written yet"),
])
def test_split_heads(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_split_heads, split_heads, wrong, message, capsys)


@pytest.mark.parametrize("wrong, message", [
    (lambda y: y.reshape(y.size(0), y.size(2), -1), "without moving the heads back"),
    (lambda y: y.transpose(1, 2).view(y.size(0), y.size(2), -1), "crashed"),  # view needs .contiguous()
    (lambda y: y.transpose(1, 2), "shape"),
    (lambda y: y.permute(0, 2, 3, 1).reshape(y.size(0), y.size(2), -1), "head 0's D channels"),
    (not_written, "not written yet"),
])
def test_merge_heads(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_merge_heads, merge_heads, wrong, message, capsys)


def test_the_numogpt_layer_passes_its_own_lesson_checks():
    from numogpt.attention import CausalSelfAttention

    check_split_heads(lambda x, h: CausalSelfAttention(x.size(-1), h).split_heads(x))
    check_merge_heads(CausalSelfAttention(8, 2).merge_heads)
