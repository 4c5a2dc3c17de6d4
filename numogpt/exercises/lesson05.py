"""The checks behind the exercises of notebooks/05_training.ipynb (lesson 05, training).

The lesson's finished code is numogpt.train. How a check works: see numogpt.exercises.
"""
import math

import torch
import torch.nn.functional as F

from numogpt.exercises import attempt, expect, passed, refusing
from numogpt.model import GPT, GPTConfig
from numogpt.train import TrainConfig, lr_at, weight_decay_groups


def _as_float(got, name):
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        return got.item()
    expect(isinstance(got, (int, float)) and not isinstance(got, bool),
           f"`{name}` should return one number (a float or a one-element tensor), got {type(got).__name__}.")
    return float(got)


def check_cross_entropy(cross_entropy):
    """cross_entropy(logits (N, V), targets (N,)) -> the mean of -log softmax(logits)[target]."""
    g = torch.Generator().manual_seed(8)
    cases = [(torch.randn(5, 7, generator=g), torch.randint(0, 7, (5,), generator=g)),
             (torch.zeros(3, 65), torch.tensor([0, 10, 64])),  # uniform: the loss is ln(65)
             (torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]]), torch.tensor([0, 2]))]  # huge logits
    for logits, targets in cases:
        right = F.cross_entropy(logits, targets).item()
        with refusing({"F.cross_entropy": F.cross_entropy, "F.nll_loss": F.nll_loss},
                      why="they are the finished answer; take log_softmax, pick the target's entry, negate and average"):
            got = _as_float(attempt(cross_entropy, logits.clone(), targets.clone()), "cross_entropy")
        probs = logits.softmax(-1)[torch.arange(len(targets)), targets]
        expect(not math.isclose(got, -probs.mean().item(), abs_tol=1e-4),
               "You averaged -p(target). The loss is the mean of -LOG p(target): take the log of the softmax.")
        expect(not math.isclose(got, right * len(targets), rel_tol=1e-4) or len(targets) == 1,
               "You summed over the positions; the loss is their mean (divide by N), so it does not grow with the batch.")
        expect(math.isfinite(got),
               f"Your loss is {got} for logits as large as 1000: softmax(x) overflows in exp. Use "
               "logits.log_softmax(dim=-1), or subtract each row's max before exp (log-sum-exp).")
        expect(math.isclose(got, right, rel_tol=1e-4, abs_tol=1e-4),
               f"Expected {right:.4f}, got {got:.4f}: per row take log_softmax over the V scores, pick the "
               "target's entry (logp[torch.arange(N), targets]), negate, and average.")
    passed("cross-entropy by hand equals F.cross_entropy, also for uniform and for huge logits")


def check_lr_at_step(lr_at_step):
    """lr_at_step(step, warmup_iters, decay_iters, max_lr, min_lr): linear warmup, then a cosine to min_lr."""
    for warmup, decay, max_lr, min_lr in [(10, 100, 1e-3, 1e-4), (0, 50, 6e-4, 0.0), (5, 30, 2e-3, 2e-4)]:
        config = TrainConfig(max_iters=decay, warmup_iters=warmup, learning_rate=max_lr, min_lr=min_lr)
        for step in sorted({0, 1, warmup - 1, warmup, (warmup + decay) // 2, decay - 1, decay, decay + 7} - {-1}):
            right = lr_at(step, config)
            with refusing({"numogpt.train.lr_at": lr_at}, why="it is the finished schedule; write the warmup "
                                                              "and the cosine from the formulas above"):
                got = _as_float(attempt(lr_at_step, step, warmup, decay, max_lr, min_lr), "lr_at_step")
            if math.isclose(got, right, rel_tol=1e-6, abs_tol=1e-12):
                continue
            if step < warmup:
                expect(not math.isclose(got, max_lr * step / warmup, rel_tol=1e-6),
                       f"At step {step} of the warmup: count the steps from 1, max_lr * (step + 1) / warmup_iters, "
                       "so step 0 already learns a little and the last warmup step reaches max_lr.")
                expect(False, f"At step {step} (warmup of {warmup}) expected {right:.3g}, got {got:.3g}: "
                              "the rate climbs linearly, max_lr * (step + 1) / warmup_iters.")
            expect(step < decay, f"At step {step}, past decay_iters={decay}, the rate stays at min_lr={min_lr}, got {got:.3g}.")
            expect(False, f"At step {step} (warmup {warmup}, decay to step {decay}) expected {right:.3g}, got {got:.3g}. "
                          "After the warmup, progress = (step - warmup) / (decay - warmup) goes 0 -> 1 and "
                          "lr = min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr).")
    passed("warmup then cosine decay, the same rate as numogpt.train.lr_at at every step tried")


def check_decayed_names(decayed_names):
    """decayed_names(model) -> the names of the parameters that get weight decay."""
    model = GPT(GPTConfig.preset("nano", vocab_size=20, block_size=8))
    right, _ = weight_decay_groups(model)
    with refusing({"numogpt.train.weight_decay_groups": weight_decay_groups},
                  why="it is the finished split; walk model.named_parameters() and decide for each"):
        got = attempt(decayed_names, model)
    expect(not isinstance(got, str) and hasattr(got, "__iter__"),
           f"Return a list (or set) of parameter names, got {type(got).__name__}.")
    got = list(got)
    expect(all(isinstance(n, str) for n in got),
           "Some items are not strings: return the parameter NAMES (strings) from model.named_parameters(), "
           "not the tensors (for name, p in model.named_parameters(): ... name).")
    got = set(got)
    names = {name for name, _ in model.named_parameters()} | {"lm_head.weight"}
    expect(got <= names, f"These are not parameter names of the model: {sorted(got - names)[:3]}. "
                         "Use the names from model.named_parameters().")
    embeddings = {"transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"} & got
    expect(not embeddings, f"{sorted(embeddings)} are embeddings (lm_head.weight is wte.weight, tied). "
                           "Decaying them is a convention, not a must: minGPT leaves them undecayed, nanoGPT "
                           "decays them, and both train well. This course leaves them out.")
    small = sorted(n for n in got if n.endswith(".bias") or ".ln_" in n)
    expect(not small, f"{small[:3]} are biases or LayerNorm parameters (1-D). Decay pulls weights towards 0, "
                      "but a LayerNorm gain should stay near its natural value 1 (it is a scale, not an offset) "
                      "and a bias is an offset: decaying them only hurts.")
    missing = sorted(set(right) - got)
    expect(not missing, f"These weight matrices should be decayed too: {missing[:3]}. Decay every parameter "
                        "with p.dim() >= 2 except the embeddings.")
    passed(f"the {len(right)} weight matrices of the attention and MLP layers get decay, nothing else")


def check_clip_gradients(clip_gradients):
    """clip_gradients(grads, max_norm) -> the grads scaled together so that their joint norm <= max_norm."""
    g = torch.Generator().manual_seed(9)
    for scale, max_norm in [(10.0, 1.0), (0.01, 1.0), (3.0, 0.5)]:
        grads = [scale * torch.randn(4, 3, generator=g), scale * torch.randn(5, generator=g)]
        params = [torch.nn.Parameter(torch.zeros_like(t)) for t in grads]
        for p, t in zip(params, grads):
            p.grad = t.clone()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        got = attempt(clip_gradients, [t.clone() for t in grads], max_norm)
        expect(isinstance(got, (list, tuple)) and len(got) == len(grads) and all(
            isinstance(t, torch.Tensor) and t.shape == r.shape for t, r in zip(got, grads)),
               "Return a list with one tensor per gradient, each of its gradient's shape.")
        total = torch.cat([t.flatten() for t in grads]).norm().item()
        per_tensor = [t * min(1.0, max_norm / t.norm().item()) for t in grads]
        expect(not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, per_tensor)) or total <= max_norm,
               "You clipped each tensor on its own. Clip them together: compute the norm of ALL gradients "
               "as one long vector, sqrt(sum of every tensor's squared entries), and scale all by the same factor.")
        expect(total > max_norm or all(torch.allclose(a, b) for a, b in zip(got, grads)),
               f"The gradients' norm ({total:.3f}) is already below max_norm={max_norm}: leave them as they are "
               "(clipping only ever scales down).")
        expect(all(torch.allclose(a, p.grad, rtol=1e-4, atol=1e-6) for a, p in zip(got, params)),
               f"With a joint norm of {total:.3f} and max_norm={max_norm}, every gradient should be multiplied by "
               f"max_norm / norm = {max_norm / total:.4f}.")
    passed("clipping by the joint norm, like torch.nn.utils.clip_grad_norm_")
