"""Lesson 04's checks: right answers pass, wrong answers get a message that says what is wrong."""
import pytest
import torch
import torch.nn.functional as F

from numogpt.exercises.lesson04 import check_block_params, check_embed, check_gelu_mlp, check_layer_norm
from tests.helpers import assert_right_passes_and_wrong_fails, not_written


# --- LayerNorm by hand -----------------------------------------------------------------------

def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


@pytest.mark.parametrize("wrong, message", [
    (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, unbiased=False) * w + b, "NaN or inf"),
    (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * w + b, "unbiased variance"),
    (lambda x, w, b, eps=1e-5: layer_norm(x, 1.0, 0.0), "scale by `weight` and shift by `bias`"),
    (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True, unbiased=False) + eps) * w + b,
     "eps goes inside the square root"),
    (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True))
     / torch.sqrt(x.var(-1, keepdim=True, unbiased=False).clamp(min=eps)) * w + b, "eps goes inside the square root"),
    (lambda x, w, b, eps=1e-5: (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, keepdim=True, unbiased=False) + eps) * w + b, "over the LAST dim"),
    (lambda x, w, b, eps=1e-5: layer_norm(x, w, b)[..., :1], "should return shape"),
    (not_written, "not written yet"),
])
def test_layer_norm(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_layer_norm, layer_norm, wrong, message, capsys)


# --- the GELU MLP ----------------------------------------------------------------------------

def mlp_forward(x, c_fc, c_proj):
    return c_proj(F.gelu(c_fc(x), approximate="tanh"))


@pytest.mark.parametrize("wrong, message", [
    (lambda x, fc, proj: proj(F.gelu(fc(x))), "exact GELU"),
    (lambda x, fc, proj: proj(F.relu(fc(x))), "That is ReLU"),
    (lambda x, fc, proj: proj(fc(x)), "just one Linear layer"),
    (lambda x, fc, proj: proj(F.gelu(fc(x), approximate="tanh")) + x, "Not the MLP yet"),
    (lambda x, fc, proj: F.gelu(fc(x), approximate="tanh"), r"should return shape \(2, 5, 8\)"),
    (lambda x, fc, proj: proj(x), "crashed with RuntimeError"),
    (not_written, "not written yet"),
])
def test_gelu_mlp(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_gelu_mlp, mlp_forward, wrong, message, capsys)


# --- token + position embeddings ------------------------------------------------------------

def embed(idx, wte, wpe, past=0):
    return wte(idx) + wpe(torch.arange(past, past + idx.size(1)))


@pytest.mark.parametrize("wrong, message", [
    (lambda idx, wte, wpe, past=0: wte(idx), "add the position embeddings"),
    (lambda idx, wte, wpe, past=0: wte(idx) + wpe(idx.clamp(max=8)), "by POSITION"),
    (lambda idx, wte, wpe, past=0: wte(idx) + wpe(torch.arange(idx.size(1))), r"positions 5..5: use torch.arange\(past"),
    (lambda idx, wte, wpe, past=0: wte(idx) + wpe(torch.arange(past, past + idx.size(1))).flip(0), "Not the input embedding yet"),
    (not_written, "not written yet"),
])
def test_embed(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_embed, embed, wrong, message, capsys)


# --- parameters of a block -------------------------------------------------------------------

def block_params(n_embd, bias=True):
    C = n_embd
    if bias:
        return 12 * C * C + 13 * C
    return 12 * C * C + 2 * C


@pytest.mark.parametrize("wrong, message", [
    (lambda C, bias: 12 * C * C, "weight matrices only"),
    (lambda C, bias: 12 * C * C + 13 * C, "no biases"),
    (lambda C, bias: 12 * C * C + 13 * C if bias else 12 * C * C + 4 * C, "LayerNorms lose their biases too"),
    (lambda C, bias: 12 * C * C + 11 * C, r"For n_embd=64, bias=True: 49,856 is not 49,984"),
    (lambda C, bias: float(block_params(C, bias)), "should return an int"),
    (not_written, "not written yet"),
])
def test_block_params(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_block_params, block_params, wrong, message, capsys)
