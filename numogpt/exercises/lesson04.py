"""The checks behind the exercises of notebooks/04_gpt.ipynb (lesson 04, the GPT model).

The lesson's finished code is numogpt.model. How a check works: see numogpt.exercises.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from numogpt.exercises import attempt, expect, expect_tensor_of_shape, passed, refusing
from numogpt.model import Block, GPTConfig


def check_layer_norm(layer_norm):
    """layer_norm(x, weight, bias, eps=1e-5): normalise each position's C numbers, then scale and shift."""
    g = torch.Generator().manual_seed(5)
    constant_row = torch.randn(2, 3, 6, generator=g)
    constant_row[0, 1] = 4.0  # every channel equal: variance 0
    tiny = 1e-3 * torch.randn(3, 4, 8, generator=g)  # variance about 1e-6, below eps: where eps goes shows
    for x in [3 * torch.randn(2, 4, 8, generator=g) + 1, constant_row, torch.randn(5, 16, generator=g), tiny]:
        C = x.size(-1)
        weight, bias = 1 + torch.randn(C, generator=g) / 2, torch.randn(C, generator=g) / 2
        right = F.layer_norm(x, (C,), weight, bias, eps=1e-5)
        ready_made = {"F.layer_norm": F.layer_norm, "torch.layer_norm": torch.layer_norm, "nn.LayerNorm": nn.LayerNorm.forward}
        with refusing(ready_made,
                      why="the point is to see the mean, the variance and eps at work: compute them over the last dim"):
            got = attempt(layer_norm, x.clone(), weight, bias)
        expect_tensor_of_shape(got, x.shape, "layer_norm")
        expect(not got.isnan().any() and not got.isinf().any(),
               "Your output has NaN or inf: a position whose channels are all equal has variance 0. "
               "Divide by torch.sqrt(var + eps), not by the standard deviation alone.")
        mean = x.mean(-1, keepdim=True)
        unbiased = (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5) * weight + bias
        expect(not torch.allclose(got, unbiased, atol=1e-5),
               "You used the unbiased variance (it divides by C - 1). LayerNorm divides by C: "
               "x.var(dim=-1, keepdim=True, unbiased=False), or ((x - mean) ** 2).mean(dim=-1, keepdim=True).")
        plain = F.layer_norm(x, (C,), eps=1e-5)
        expect(not torch.allclose(got, plain, atol=1e-5),
               "The normalising is right; now scale by `weight` and shift by `bias` (both of shape (C,)).")
        expect(x is not tiny or torch.allclose(got, right, atol=1e-4),
               "Right for ordinary inputs, wrong when a position's numbers barely differ (variance 1e-6, "
               "below eps): eps goes inside the square root, (x - mean) / torch.sqrt(var + eps), not "
               "(x - mean) / (std + eps) and not torch.sqrt(var.clamp(min=eps)).")
        expect(torch.allclose(got, right, atol=1e-4),
               f"For x of shape {tuple(x.shape)} this is not LayerNorm yet: over the LAST dim (keepdim=True), "
               "subtract the mean, divide by sqrt(variance + eps), then * weight + bias.")
    passed("LayerNorm by hand equals F.layer_norm, also on a row of equal numbers")


def check_gelu_mlp(mlp_forward):
    """mlp_forward(x, c_fc, c_proj): GPT-2's MLP, c_proj(GELU_tanh(c_fc(x))), x (B, T, C) -> (B, T, C)."""
    torch.manual_seed(6)
    for B, T, C in [(2, 5, 8), (1, 1, 4), (3, 2, 12)]:
        c_fc, c_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        x = 3 * torch.randn(B, T, C)  # wide enough that the two GELUs differ
        with torch.no_grad():
            right = c_proj(F.gelu(c_fc(x), approximate="tanh"))
            got = attempt(mlp_forward, x, c_fc, c_proj)
            expect_tensor_of_shape(got, (B, T, C), "mlp_forward")
            for wrong, message in [
                (c_proj(F.gelu(c_fc(x))), "You used the exact GELU (with erf). GPT-2 uses its tanh approximation, "
                 "F.gelu(h, approximate='tanh'): the two differ by up to ~5e-4, enough to change GPT-2's logits."),
                (c_proj(F.relu(c_fc(x))), "That is ReLU; GPT-2 bends with GELU: F.gelu(h, approximate='tanh')."),
                (c_proj(c_fc(x)), "Two Linear layers with nothing between them are just one Linear layer: "
                 "put F.gelu(h, approximate='tanh') between c_fc and c_proj."),
            ]:
                expect(not torch.allclose(got, wrong, atol=1e-6), message)
            expect(torch.allclose(got, right, atol=1e-5),
                   "Not the MLP yet: widen with c_fc (C -> 4C), apply F.gelu(h, approximate='tanh'), "
                   "project back with c_proj (4C -> C).")
    passed("the GELU MLP: C -> 4C -> GELU (tanh) -> C, position by position")


def check_embed(embed):
    """embed(idx, wte, wpe, past=0): token embeddings plus the embeddings of positions past .. past + T - 1."""
    torch.manual_seed(7)
    V, block_size, C = 11, 9, 6
    wte, wpe = nn.Embedding(V, C), nn.Embedding(block_size, C)
    for B, T, past in [(2, 4, 0), (1, 9, 0), (3, 1, 5), (2, 3, 6)]:
        idx = torch.randint(0, V, (B, T))
        with torch.no_grad():
            positions = torch.arange(past, past + T)  # (T,)
            right = wte(idx) + wpe(positions)  # (B, T, C) + (T, C)
            got = attempt(embed, idx, wte, wpe, past)
            expect_tensor_of_shape(got, (B, T, C), "embed")
            expect(not torch.allclose(got, wte(idx), atol=1e-6),
                   "Only the token embeddings: add the position embeddings too, or the model cannot tell "
                   "'dog bites man' from 'man bites dog'.")
            expect(not torch.allclose(got, wte(idx) + wpe(idx.clamp(max=block_size - 1)), atol=1e-6),
                   "wpe is looked up by POSITION (0, 1, 2, ...), not by token id: wpe(torch.arange(past, past + T)).")
            if past > 0:
                expect(not torch.allclose(got, wte(idx) + wpe(torch.arange(T)), atol=1e-6),
                       f"With {past} tokens already cached, the new tokens sit at positions {past}.."
                       f"{past + T - 1}: use torch.arange(past, past + T).")
            expect(torch.allclose(got, right, atol=1e-6),
                   "Not the input embedding yet: wte(idx) (B, T, C) + wpe(torch.arange(past, past + T)) (T, C).")
    passed("token + position embeddings, positions counted from `past`")


def check_block_params(block_params):
    """block_params(n_embd, bias): how many parameters one transformer Block has."""
    for C, bias in [(64, True), (768, True), (4, True), (64, False), (128, False)]:
        config = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=C, bias=bias)
        right = sum(p.numel() for p in Block(config).parameters())
        got = attempt(block_params, C, bias)
        expect(isinstance(got, int), f"`block_params` should return an int, got {type(got).__name__}.")
        expect(got != 12 * C * C,
               f"{got:,} counts the weight matrices only (12·C²). Add the biases of the four Linear layers "
               "(3C + C + 4C + C) and the two LayerNorms' weight and bias (2C each).")
        if not bias:
            expect(got != 12 * C * C + 13 * C,
                   f"With bias=False the Linear layers and LayerNorms have no biases ({got:,} counts them); "
                   "each LayerNorm still has its weight of C numbers.")
            expect(got != 12 * C * C + 4 * C,
                   f"With bias=False the LayerNorms lose their biases too ({got:,} keeps them): C numbers each, not 2C.")
        expect(got == right,
               f"For n_embd={C}, bias={bias}: {got:,} is not {right:,}. Count c_attn (C -> 3C), attn.c_proj (C -> C), "
               "mlp.c_fc (C -> 4C), mlp.c_proj (4C -> C), each weight in x out (+ out biases), and ln_1, ln_2.")
    passed("a block has 12·C² + 13·C parameters (12·C² + 2·C without biases)")
