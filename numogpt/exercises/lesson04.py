"""The checks behind the exercises of notebooks/04_gpt.ipynb (lesson 04, the GPT model).

The lesson's finished code is numogpt.model. How a check works: see numogpt.exercises.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import numogpt.model as library
from numogpt.data import IGNORE_INDEX
from numogpt.exercises import ExerciseError, attempt, expect, expect_tensor_of_shape, passed, refusing
from numogpt.model import Block, GPTConfig

# the finished forwards the learner's subclasses inherit, and must not call
READY_MADE = {"numogpt.model.Block.forward": library.Block.forward, "numogpt.model.GPT.forward": library.GPT.forward}
WHY = "this is the forward the rest of the lesson runs: write it from the parts, not by calling numogpt's"


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


def _loaded(your_class, reference, make):
    """Build the learner's module with `make(your_class)` and give it `reference`'s weights."""
    yours = attempt(make, your_class)
    expect(isinstance(yours, type(reference)),
           f"Your {your_class.__name__} should subclass numogpt.model.{type(reference).__name__}, so that it has "
           "numogpt's parts and parameter names: `class " + your_class.__name__ + f"(numogpt.model.{type(reference).__name__}):`.")
    try:
        yours.load_state_dict(reference.state_dict())
    except RuntimeError as e:
        raise ExerciseError(f"numogpt's weights do not load into your {your_class.__name__}: {e}") from None
    return yours


def check_block(YourBlock):
    """YourBlock(config).forward(x): x + attn(ln_1(x)), then + mlp(ln_2(x)); x (B, T, C) -> (B, T, C)."""
    torch.manual_seed(10)
    for B, T, C, H in [(2, 6, 16, 2), (1, 1, 8, 1), (3, 4, 24, 3)]:
        config = GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=H, n_embd=C)
        reference = Block(config).eval()
        with torch.no_grad():  # random LayerNorm weights, so that ln_1 and ln_2 differ
            for ln in (reference.ln_1, reference.ln_2):
                ln.weight.normal_(1.0, 0.5), ln.bias.normal_(0.0, 0.5)
        yours = _loaded(YourBlock, reference, lambda cls: cls(config)).eval()
        x = 2 * torch.randn(B, T, C)
        with torch.no_grad():
            right = reference(x)
            with refusing(READY_MADE, why=WHY):
                got = attempt(yours, x)
            expect_tensor_of_shape(got, (B, T, C), "your Block")
            r = reference
            attn, mlp = lambda h: r.attn(r.ln_1(h)), lambda h: r.mlp(r.ln_2(h))
            after_attn = x + attn(x)
            for wrong, message in [
                (attn(x) + mlp(attn(x)), "The attention half has no residual: x = x + self.attn(self.ln_1(x)), "
                                         "not x = self.attn(...). Without the addition the block replaces the stream."),
                (mlp(after_attn), "The MLP half has no residual: return x + self.mlp(self.ln_2(x))."),
                (after_attn, "Only the attention half: add the MLP half too, x + self.mlp(self.ln_2(x))."),
                (x + attn(x) + mlp(x), "Both halves read the block's input: the MLP must read the stream AFTER "
                                       "attention has added to it, so update x first."),
                (x + r.attn(r.ln_2(x)) + r.mlp(r.ln_1(x + r.attn(r.ln_2(x)))), "ln_1 and ln_2 are swapped: ln_1 goes "
                                                                                 "before attention, ln_2 before the MLP."),
                (r.ln_2(after_attn + r.mlp(r.ln_2(after_attn))), "That normalises the stream itself (post-norm). GPT-2 "
                                                                 "is pre-norm: normalise only what each half reads."),
                (x + r.attn(x) + r.mlp(x + r.attn(x)), "The halves read the raw stream: normalise first, "
                                                         "self.attn(self.ln_1(x)) and self.mlp(self.ln_2(x))."),
            ]:
                expect(not torch.allclose(got, wrong, atol=1e-6), message)
            expect((got - right).abs().max() <= 1e-6,
                   f"For x {(B, T, C)} your block differs from numogpt's with the same weights: "
                   "x = x + self.attn(self.ln_1(x)), then return x + self.mlp(self.ln_2(x)).")
    passed("your Block equals numogpt's: pre-norm, and each half adds to the residual stream")


def train_a_few_steps(model, batches, seed):
    """Train `model` (in place) on `batches` with AdamW from `seed` (dropout draws); return the losses."""
    torch.manual_seed(seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for x, y in batches:
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def check_gpt(YourGPT):
    """YourGPT(config).forward(idx, targets=None) -> (logits (B, T, V), loss or None), as numogpt.model.GPT."""
    torch.manual_seed(11)
    config = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16)
    reference = library.GPT(config).eval()
    with torch.no_grad():  # random final LayerNorm weights and position vectors that matter
        reference.transformer.ln_f.weight.normal_(1.0, 0.5)
        reference.transformer.wpe.weight.normal_(0.0, 0.5)
    yours = _loaded(YourGPT, reference, lambda cls: cls(config)).eval()
    expect(yours.lm_head.weight is yours.transformer.wte.weight,
           "Your GPT's lm_head is no longer tied to the token embedding: keep numogpt's __init__.")
    for B, T in [(2, 8), (1, 1), (3, 5)]:
        idx = torch.randint(0, config.vocab_size, (B, T))
        targets = torch.randint(0, config.vocab_size, (B, T))
        if B * T > 1:
            targets[0, 0] = IGNORE_INDEX  # a position to skip (not the only one: a loss over nothing is NaN)
        with torch.no_grad():
            right, right_loss = reference(idx, targets)
            with refusing(READY_MADE, why=WHY):
                got = attempt(yours, idx)
                got_with_targets = attempt(yours, idx, targets)
        for answer in (got, got_with_targets):
            expect(isinstance(answer, tuple) and len(answer) == 2,
                   "forward should return a pair (logits, loss), as numogpt's GPT does; the loss is None without targets.")
        logits, no_loss = got
        expect_tensor_of_shape(logits, (B, T, config.vocab_size), "your GPT's logits")
        expect(no_loss is None, "Without targets, return (logits, None): there is nothing to compare with.")
        t = reference.transformer
        with torch.no_grad():
            x = t.wte(idx) + t.wpe(torch.arange(T))
            x_no_pos = t.wte(idx)
            for block in t.h:
                x, x_no_pos = block(x), block(x_no_pos)
            for wrong, message in [
                (reference.lm_head(x), "The final LayerNorm is missing: logits = self.lm_head(self.transformer.ln_f(x))."),
                (reference.lm_head(t.ln_f(x_no_pos)), "The position embeddings are missing: x = wte(idx) + wpe(positions), "
                                                      "your `embed` from exercise 1."),
                (reference.lm_head(t.ln_f(t.wte(idx) + t.wpe(torch.arange(T)))), "The blocks are never run: "
                                                                                  "for block in self.transformer.h: x = block(x)."),
            ]:
                expect(not torch.allclose(logits, wrong, atol=1e-6), message)
        expect((logits - right).abs().max() <= 1e-6,
               f"For idx of shape {(B, T)} your logits differ from numogpt's with the same weights: embed, "
               "self.transformer.drop, every block in order, self.transformer.ln_f, self.lm_head.")
        loss = got_with_targets[1]
        expect(isinstance(loss, torch.Tensor) and loss.dim() == 0,
               "With targets, the loss should be one number (a 0-dim tensor): F.cross_entropy of the logits.")
        with torch.no_grad():
            counting_skipped = F.cross_entropy(right.view(-1, config.vocab_size), targets.clamp(min=0).view(-1))
        expect(not (targets == IGNORE_INDEX).any() or not torch.allclose(loss, counting_skipped),
               f"Your loss counts the positions marked {IGNORE_INDEX}: pass ignore_index={IGNORE_INDEX} to F.cross_entropy.")
        expect((loss - right_loss).abs() <= 1e-6,
               f"Your loss is {loss.item():.6f}, numogpt's {right_loss.item():.6f}: F.cross_entropy(logits.view(-1, V), "
               f"targets.view(-1), ignore_index={IGNORE_INDEX}).")

    # training from the same seed, with dropout: the same losses, step after step
    config = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.1)
    torch.manual_seed(12)
    reference = library.GPT(config)
    yours = _loaded(YourGPT, reference, lambda cls: cls(config))
    batches = [(torch.randint(0, 13, (4, 8)), torch.randint(0, 13, (4, 8))) for _ in range(5)]
    right = train_a_few_steps(reference, batches, seed=13)
    with refusing(READY_MADE, why=WHY):
        got = attempt(train_a_few_steps, yours, batches, 13)
    expect(all(abs(a - b) <= 1e-5 for a, b in zip(got, right)),
           f"Trained from the same seed with dropout 0.1, your GPT's losses {[round(v, 4) for v in got]} differ from "
           f"numogpt's {[round(v, 4) for v in right]}: apply self.transformer.drop to the embeddings, as numogpt does.")
    passed("your GPT gives numogpt's logits and loss with the same weights (to 1e-6), and trains the same, "
           "step for step")
