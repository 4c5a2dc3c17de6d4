"""The checks behind lesson 08's exercises (scaling): as numogpt.exercises, one check per exercise."""
import math

import torch

from numogpt.data import IGNORE_INDEX
from numogpt.exercises import ExerciseError, attempt, expect, passed
from numogpt.model import GPT, GPTConfig

__all__ = ["ExerciseError", "check_training_flops", "check_unscale_or_skip", "check_accumulate_gradients"]


def check_training_flops(training_flops_per_token):
    """training_flops_per_token(n_params, n_layer, n_embd, block_size) -> 6N + 12 * n_layer * n_embd * block_size."""
    for n_params, n_layer, n_embd, block_size in [(124_439_808, 12, 768, 1024), (28_256, 2, 32, 64),
                                                  (10_000_000, 6, 384, 256)]:
        attention = 12 * n_layer * n_embd * block_size
        right = 6 * n_params + attention
        got = attempt(training_flops_per_token, n_params, n_layer, n_embd, block_size)
        expect(isinstance(got, (int, float)) and not isinstance(got, bool),
               f"Return one number (the FLOPs for one token), got {type(got).__name__}.")
        if math.isclose(got, right, rel_tol=1e-9):
            continue
        expect(not math.isclose(got, 2 * n_params + attention / 3, rel_tol=1e-9) and
               not math.isclose(got, 2 * n_params, rel_tol=1e-9),
               "That is the forward pass only (2 FLOPs per weight: a multiply and an add). Training also runs "
               "the backward pass, which costs about twice the forward: 6 per weight in all.")
        expect(not math.isclose(got, 6 * n_params, rel_tol=1e-9),
               "6N counts the weights, but attention also multiplies activations by activations: every "
               "token's query meets up to block_size keys and values in every layer. Add "
               "12 * n_layer * n_embd * block_size (2 matmuls x 2 FLOPs x 3 for forward + backward).")
        expect(False, f"For N={n_params:,}, {n_layer} layers, {n_embd} dims, block {block_size}: expected "
                      f"{right:,} FLOPs per token, got {got:,}: 6 * N + 12 * n_layer * n_embd * block_size.")
    passed("6 FLOPs per weight per token (forward + backward) plus attention's share, as PaLM's appendix counts")


def check_unscale_or_skip(unscale_or_skip):
    """unscale_or_skip(grads, scale) -> the grads divided by scale, or None if any is inf or NaN."""
    g = torch.Generator().manual_seed(8)
    scale = 1024.0
    good = [torch.randn(3, 4, generator=g) * scale, torch.randn(5, generator=g) * scale]
    got = attempt(unscale_or_skip, [t.clone() for t in good], scale)
    expect(got is not None, "All these gradients are finite: return them unscaled, do not skip the step.")
    expect(isinstance(got, (list, tuple)) and len(got) == len(good) and
           all(isinstance(t, torch.Tensor) and t.shape == r.shape for t, r in zip(got, good)),
           "Return a list with one tensor per gradient, each of its gradient's shape (or None to skip).")
    expect(not all(torch.allclose(a, b) for a, b in zip(got, good)),
           "The gradients came back still scaled: the loss was multiplied by `scale` before backward, "
           "so every gradient is `scale` times too big. Divide them by it.")
    expect(all(torch.allclose(a, b / scale) for a, b in zip(got, good)),
           f"Each gradient should be divided by scale={scale:g}: got values that are not grad / scale.")
    for bad, what in [(float("inf"), "inf"), (float("nan"), "NaN")]:
        grads = [t.clone() for t in good]
        grads[1][2] = bad
        got = attempt(unscale_or_skip, grads, scale)
        expect(got is None, f"One gradient holds {what}: float16 overflowed (an overflow can also give NaN, "
                            f"e.g. inf - inf), so this step must be skipped: return None. "
                            f"torch.isfinite(t).all() is False for both inf and NaN.")
    passed("gradients are divided by the scale, and a step with inf or NaN in them is skipped")


def check_accumulate_gradients(accumulate_gradients):
    """accumulate_gradients(model, x, y, n): backward on n slices of (x, y), leaving in every .grad
    the gradient of the whole batch's loss."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16, bias=False))
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 13, (8, 8), generator=g)
    y = torch.randint(0, 13, (8, 8), generator=g)
    padded = y.clone()
    padded[:6, 3:] = IGNORE_INDEX  # the first slices count fewer targets than the last ones
    for targets, n, padding in [(y, 4, False), (padded, 4, True), (padded, 2, True), (y, 1, False)]:
        model.zero_grad(set_to_none=True)
        model(x, targets)[1].backward()
        right = [p.grad.clone() for p in model.parameters()]
        model.zero_grad(set_to_none=True)
        attempt(accumulate_gradients, model, x, targets, n)
        grads = [p.grad for p in model.parameters()]
        expect(all(t is not None for t in grads), "Some parameters have no gradient: call loss.backward() on "
                                                  "every slice's loss.")
        ratio = (grads[0].norm() / right[0].norm()).item()
        expect(not (n > 1 and math.isclose(ratio, n, rel_tol=0.2)),
               f"The gradients are about {n} times too big: backward adds every slice's gradient, and each "
               f"slice's loss is already a mean, so weight each slice's loss before backward.")
        expect(not (n > 1 and _points_like(grads, _last_slice_gradient(model, x, targets, n))),
               "The gradients are those of the last slice only: did you clear them (zero_grad) between the "
               "slices? Backward adds into .grad; that is exactly what accumulation needs.")
        if all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(grads, right)):
            continue
        expect(not padding, "Right on full batches, wrong once some targets are padding (-100): a slice's loss "
                            "is a mean over ITS counted targets, so slices with fewer targets must weigh less. "
                            "Weight each slice's loss by (its targets != -100) / (the batch's targets != -100).")
        expect(False, f"With {n} slices the summed gradients differ from the whole batch's: cut x and y into n "
                      f"equal slices (x.chunk(n)) and backward each slice's loss times its share.")
    passed("n slices leave exactly the whole batch's gradient, padding included")


def _last_slice_gradient(model, x, y, n):
    kept = [p.grad for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    model(x.chunk(n)[-1], y.chunk(n)[-1])[1].backward()
    last = [p.grad for p in model.parameters()]
    for p, grad in zip(model.parameters(), kept):
        p.grad = grad
    return last


def _points_like(grads, other):
    """The two gradients point the same way (whatever their lengths)."""
    a, b = torch.cat([t.flatten() for t in grads]), torch.cat([t.flatten() for t in other])
    return torch.nn.functional.cosine_similarity(a, b, dim=0).item() > 0.999
