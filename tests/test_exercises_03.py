"""Lesson 03's checks: right answers pass, wrong answers get a message that says what is wrong."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import numogpt.attention
from numogpt.attention import causal_mask
from numogpt.exercises.lesson03 import (check_attention, check_causal_mask, check_masked_softmax, check_merge_heads, check_scaled_scores,
                                        check_self_attention, check_split_heads)
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


# --- the causal mask ------------------------------------------------------------------------

def mask_by_hand(t_q, t_k, device=None):
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


@pytest.mark.parametrize("wrong, message", [
    (lambda t_q, t_k, device=None: torch.ones(t_q, t_k, dtype=torch.bool).tril(), "LAST"),
    (lambda t_q, t_k, device=None: ~mask_by_hand(t_q, t_k), "True means 'may look'"),
    (lambda t_q, t_k, device=None: mask_by_hand(t_q, t_k).int(), "dtype torch.bool"),
    (lambda t_q, t_k, device=None: mask_by_hand(t_k, t_k), "shape"),
    (lambda t_q, t_k: mask_by_hand(t_q, t_k), "device"),
    (lambda t_q, t_k, device=None: torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_q - t_k), r"tril\(diagonal"),
    (not_written, "not written yet"),
])
def test_causal_mask(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_causal_mask, mask_by_hand, wrong, message, capsys)


# --- attention -------------------------------------------------------------------------------

def attention_with(mask=causal_mask, scale=True, softmax_dim=-1, pair=True, respect_causal=True):
    """The notebook's answer, with one thing changed by an argument."""
    def attention(q, k, v, causal=True):
        scores = q @ k.transpose(-2, -1) / (math.sqrt(q.size(-1)) if scale else 1)
        if causal or not respect_causal:
            scores = scores.masked_fill(~mask(q.size(2), k.size(2)), float("-inf"))
        weights = scores.softmax(dim=softmax_dim)
        return (weights @ v, weights) if pair else weights @ v
    return attention


def top_left_mask(t_q, t_k):
    return torch.ones(t_q, t_k, dtype=torch.bool).tril()


def mask_after_softmax(q, k, v, causal=True):
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(dim=-1)
    if causal:
        weights = weights.masked_fill(~causal_mask(q.size(2), k.size(2)), 0.0)
    return weights @ v, weights


@pytest.mark.parametrize("wrong, message", [
    (attention_with(scale=False), "not scaled"),
    (attention_with(mask=top_left_mask), "queries are the LAST"),
    (attention_with(respect_causal=False), "causal=False"),
    (attention_with(softmax_dim=-2), "sum to 1"),
    (attention_with(pair=False), "a pair"),
    (mask_after_softmax, "sum to 1"),
    (lambda q, k, v, causal=True: (F.scaled_dot_product_attention(q, k, v, is_causal=causal), None), "without `F.scaled"),
    (lambda q, k, v, causal=True: numogpt.attention.attention(q, k, v, causal), "without `numogpt.attention.attention`"),
    (not_written, "not written yet"),
])
def test_attention(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_attention, attention_with(), wrong, message, capsys)


# --- the layer -------------------------------------------------------------------------------

def layer_with(forward):
    """A layer with numogpt's parameters and the given forward(self, x) -> (y, weights)."""
    class Layer(nn.Module):
        def __init__(self, n_embd, n_head):
            super().__init__()
            self.n_embd, self.n_head = n_embd, n_head
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)

        def forward(self, x, return_weights=False):
            y, weights = forward(self, x)
            return (y, weights) if return_weights else y
    return Layer


def heads_then(attend, split=split_heads, project=True):
    def forward(self, x):
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        y, weights = attend(split(q, self.n_head), split(k, self.n_head), split(v, self.n_head))
        y = merge_heads(y)
        return (self.c_proj(y) if project else y), weights
    return forward


right_layer = layer_with(heads_then(attention_with()))


class LayerWithOtherNames(right_layer):
    def __init__(self, n_embd, n_head):
        super().__init__(n_embd, n_head)
        self.proj = self.c_proj


def numogpt_forward(self, x):
    reference = numogpt.attention.CausalSelfAttention(self.n_embd, self.n_head).double()
    reference.load_state_dict(self.state_dict())
    return reference(x, return_weights=True)


@pytest.mark.parametrize("wrong, message", [
    (layer_with(heads_then(attention_with(), project=False)), "output projection"),
    (layer_with(heads_then(lambda q, k, v: attention_with()(q, k, v, causal=False))), "looks into the future"),
    (layer_with(heads_then(attention_with(), split=lambda t, h: t[:, None])), "one head over all C channels"),
    (layer_with(heads_then(attention_with(scale=False))), "differs from F.scaled_dot_product_attention"),
    (layer_with(lambda self, x: (right_layer.forward(self, x), None)), "weights` should return a tensor"),
    (LayerWithOtherNames, "parameters should be numogpt's"),
    (layer_with(numogpt_forward), "without `numogpt.attention.CausalSelfAttention.forward`"),
    (layer_with(lambda self, x: not_written()), "not written yet"),
])
def test_self_attention(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_self_attention, right_layer, wrong, message, capsys)
