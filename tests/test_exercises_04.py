"""Lesson 04's checks: right answers pass, wrong answers get a message that says what is wrong."""
import re

import nbformat
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import numogpt.model
from numogpt import NOTEBOOKS_DIR
from numogpt.exercises.lesson04 import (check_block, check_block_params, check_embed, check_gelu_mlp, check_gpt,
                                        check_layer_norm)
from tests.helpers import assert_right_passes_and_wrong_fails, not_written
from tests.test_notebooks import CHECK_CALL


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


# --- the block and the GPT -------------------------------------------------------------------

def block_with(forward):
    return type("Block", (numogpt.model.Block,), {"forward": forward})


def block_forward(self, x):
    x = x + self.attn(self.ln_1(x))
    return x + self.mlp(self.ln_2(x))


class BlockWithAnExtraLayer(numogpt.model.Block):
    def __init__(self, config):
        super().__init__(config)
        self.gate = nn.Linear(config.n_embd, config.n_embd)

    forward = block_forward


class BlockOfItsOwn(nn.Module):  # the right forward, but not numogpt's parts
    def __init__(self, config):
        super().__init__()
        self.inner = numogpt.model.Block(config)

    def forward(self, x):
        return self.inner(x)


@pytest.mark.parametrize("wrong, message", [
    (block_with(lambda self, x: self.attn(self.ln_1(x)) + self.mlp(self.ln_2(self.attn(self.ln_1(x))))),
     "attention half has no residual"),
    (block_with(lambda self, x: self.mlp(self.ln_2(x + self.attn(self.ln_1(x))))), "MLP half has no residual"),
    (block_with(lambda self, x: x + self.attn(self.ln_1(x)) + self.mlp(self.ln_2(x))), "Both halves read the block's input"),
    (block_with(lambda self, x: (lambda h: h + self.mlp(self.ln_1(h)))(x + self.attn(self.ln_2(x)))), "swapped"),
    (block_with(lambda self, x: (lambda h: self.ln_2(h + self.mlp(self.ln_2(h))))(x + self.attn(self.ln_1(x)))),
     "post-norm"),
    (block_with(lambda self, x: (lambda h: h + self.mlp(h))(x + self.attn(x))), "normalise first"),
    (block_with(lambda self, x: x + self.attn(self.ln_1(x))), "Only the attention half"),
    (block_with(lambda self, x: numogpt.model.Block.forward(self, x)), "without `numogpt.model.Block.forward`"),
    (BlockWithAnExtraLayer, "do not load into your Block"),
    (BlockOfItsOwn, "should subclass numogpt.model.Block"),
    (block_with(lambda self, x: not_written()), "not written yet"),
])
def test_block(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_block, block_with(block_forward), wrong, message, capsys)


def gpt_with(forward, block_forward=block_forward):
    return type("GPT", (numogpt.model.GPT,), {"forward": forward, "block_class": block_with(block_forward)})


def gpt_forward(self, idx, targets=None, position=True, final_norm=True, blocks=True, dropout=True, skip=True,
                reduction="mean"):
    """The notebook's answer, with one thing changed by an argument."""
    t = self.transformer
    x = t.wte(idx) + (t.wpe(torch.arange(idx.size(1))) if position else 0)  # (B, T, C)
    x = t.drop(x) if dropout else x
    for block in t.h if blocks else []:
        x = block(x)
    logits = self.lm_head(t.ln_f(x) if final_norm else x)
    if targets is None:
        return logits, None
    targets = targets if skip else targets.clamp(min=0)  # -100 read as token 0
    return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), reduction=reduction)


def gpt_without(**change):
    return gpt_with(lambda self, idx, targets=None: gpt_forward(self, idx, targets, **change))


@pytest.mark.parametrize("wrong, message", [
    (gpt_without(final_norm=False), "final LayerNorm is missing"),
    (gpt_without(position=False), "position embeddings are missing"),
    (gpt_without(blocks=False), "blocks are never run"),
    (gpt_without(skip=False), "counts the positions marked -100"),
    (gpt_without(reduction="none"), "one number"),
    (gpt_without(dropout=False), "apply self.transformer.drop"),
    (gpt_with(lambda self, idx, targets=None: gpt_forward(self, idx, targets)[0]), "a pair"),
    (gpt_with(lambda self, idx, targets=None: (gpt_forward(self, idx, targets)[0], 0.0)), r"return \(logits, None\)"),
    (gpt_with(gpt_forward, block_forward=lambda self, x: x + self.attn(self.ln_1(x))), "your logits differ from numogpt's"),
    (gpt_with(lambda self, idx, targets=None: numogpt.model.GPT.forward(self, idx, targets)),
     "without `numogpt.model.GPT.forward`"),
    (gpt_with(lambda self, idx, targets=None: not_written()), "not written yet"),
])
def test_gpt(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_gpt, gpt_with(gpt_forward), wrong, message, capsys)


# --- the lesson runs the learner's code ------------------------------------------------------

TRAINED = re.compile(r"loss after 300 steps: (\d+\.\d+)")


def test_a_missing_residual_shows_in_the_lessons_own_training():
    """Lesson 04 trains the learner's GPT: a wrong Block worsens the lesson's result, not only its check."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS_DIR / "04_gpt.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    training = next(i for i, c in enumerate(cells) if "loss after 300 steps" in c.source)
    stored = float(TRAINED.search("".join(o.get("text", "") for o in cells[training].outputs)).group(1))
    block = next(c for c in cells if c.source.startswith("class Block(numogpt.model.Block):"))
    right = "x = x + self.attn(self.ln_1(x))"
    assert right in block.source
    block.source = block.source.replace(right, "x = self.attn(self.ln_1(x))")  # the attention half loses its residual
    # the checks would stop the run (they refuse this Block); every other cell up to the training runs as stored
    nb.cells = [c for c in cells[: training + 1] if not CHECK_CALL.search(c.source)]
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}).execute()
    wrong = float(TRAINED.search("".join(o.get("text", "") for o in nb.cells[-1].outputs)).group(1))
    assert wrong > stored + 0.1, f"without the residual the lesson's model trains to {wrong}, the right one to {stored}"
