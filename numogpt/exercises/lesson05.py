"""The checks behind the exercises of notebooks/05_training.ipynb (lesson 05, training).

The lesson's finished code is numogpt.train. How a check works: see numogpt.exercises.
"""
import copy
import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from numogpt.data import make_loaders
from numogpt.exercises import ExerciseError, attempt, expect, passed, refusing
from numogpt.model import GPT, GPTConfig
from numogpt.train import TrainConfig, lr_at, train, train_step, weight_decay_groups


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


def check_lr_at(lr_at_):
    """lr_at(step, config): linear warmup to config.learning_rate, then a cosine to min_lr at config.decay_end."""
    configs = [TrainConfig(max_iters=100, warmup_iters=10, learning_rate=1e-3, min_lr=1e-4),
               TrainConfig(max_iters=50, warmup_iters=0, learning_rate=6e-4, min_lr=0.0),
               TrainConfig(max_iters=20, warmup_iters=5, lr_decay_iters=30, learning_rate=2e-3, min_lr=2e-4)]
    for config in configs:
        warmup, decay, max_lr, min_lr = config.warmup_iters, config.decay_end, config.learning_rate, config.min_lr
        for step in sorted({0, 1, warmup - 1, warmup, (warmup + decay) // 2, config.max_iters - 1, decay - 1,
                            decay, decay + 7} - {-1}):
            right = lr_at(step, config)
            with refusing({"numogpt.train.lr_at": lr_at}, why="it is the finished schedule; write the warmup "
                                                              "and the cosine from the formulas above"):
                got = _as_float(attempt(lr_at_, step, config), "lr_at")
            if math.isclose(got, right, rel_tol=1e-6, abs_tol=1e-12):
                continue
            if step < warmup:
                expect(not math.isclose(got, max_lr * step / warmup, rel_tol=1e-6),
                       f"At step {step} of the warmup: count the steps from 1, learning_rate * (step + 1) / "
                       "warmup_iters, so step 0 already learns a little and the last warmup step reaches the peak.")
                expect(False, f"At step {step} (warmup of {warmup}) expected {right:.3g}, got {got:.3g}: "
                              "the rate climbs linearly, config.learning_rate * (step + 1) / config.warmup_iters.")
            if config.lr_decay_iters is not None and step >= config.max_iters - 1:
                stretched = dataclasses.replace(config, lr_decay_iters=None)
                expect(not math.isclose(got, lr_at(step, stretched), rel_tol=1e-6),
                       f"With max_iters={config.max_iters} and lr_decay_iters={decay}, the cosine ends at step "
                       f"{decay}, not at max_iters: use config.decay_end (lr_decay_iters when it is set, else max_iters).")
            expect(step < decay, f"At step {step}, past the end of the decay ({decay}), the rate stays at "
                                 f"min_lr={min_lr}, got {got:.3g}.")
            expect(False, f"At step {step} (warmup {warmup}, decay to step {decay}) expected {right:.3g}, got {got:.3g}. "
                          "After the warmup, progress = (step - warmup_iters) / (decay_end - warmup_iters) goes 0 -> 1 "
                          "and lr = min_lr + 0.5 * (1 + cos(pi * progress)) * (learning_rate - min_lr).")
    passed("warmup then cosine decay, the same rate as numogpt.train.lr_at at every step tried")


class _WatchedGPT(GPT):
    """A GPT that notes, at every training forward (with targets), whether it was in train mode."""

    def __init__(self, config):
        super().__init__(config)
        self.modes = []

    def forward(self, idx, targets=None):
        if targets is not None and torch.is_grad_enabled():
            self.modes.append(self.training)
        return super().forward(idx, targets)


def _tiny_gpt(dropout=0.0):
    """A small GPT with the same weights every time, made without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _WatchedGPT(GPTConfig.preset("nano", vocab_size=20, block_size=8, dropout=dropout))


def check_weight_decay_groups(weight_decay_groups_):
    """weight_decay_groups(model) -> (names of the parameters that get weight decay, names of the others)."""
    model = _tiny_gpt()
    right, _ = weight_decay_groups(model)
    with refusing({"numogpt.train.weight_decay_groups": weight_decay_groups},
                  why="it is the finished split; walk model.named_parameters() and decide for each"):
        got = attempt(weight_decay_groups_, model)
    expect(isinstance(got, (tuple, list)) and len(got) == 2 and not isinstance(got[0], str),
           "Return two lists, (decayed names, not decayed names): `return decay, no_decay`.")
    decay, no_decay = got
    for group in (decay, no_decay):
        expect(not isinstance(group, str) and hasattr(group, "__iter__"),
               f"Return two lists (or sets) of parameter names, got a {type(group).__name__} in the pair.")
    decay, no_decay = list(decay), list(no_decay)
    expect(all(isinstance(n, str) for n in decay + no_decay),
           "Some items are not strings: return the parameter NAMES (strings) from model.named_parameters(), "
           "not the tensors (for name, p in model.named_parameters(): ... name).")
    names = {name for name, _ in model.named_parameters()}
    unknown = sorted((set(decay) - names - {"lm_head.weight"}) | (set(no_decay) - names))
    expect(not unknown, f"These are not parameter names of the model: {unknown[:3]}. "
                        "Use the names from model.named_parameters().")
    decay = set(decay)
    embeddings = {"transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"} & decay
    expect(not embeddings, f"{sorted(embeddings)} are embeddings (lm_head.weight is wte.weight, tied). "
                           "Decaying them is a convention, not a must: minGPT leaves them undecayed, nanoGPT "
                           "decays them, and both train well. This course leaves them out.")
    small = sorted(n for n in decay if n.endswith(".bias") or ".ln_" in n)
    expect(not small, f"{small[:3]} are biases or LayerNorm parameters (1-D). Decay pulls weights towards 0, "
                      "but a LayerNorm gain should stay near its natural value 1 (it is a scale, not an offset) "
                      "and a bias is an offset: decaying them only hurts.")
    missing = sorted(set(right) - decay)
    expect(not missing, f"These weight matrices should be decayed too: {missing[:3]}. Decay every parameter "
                        "with p.dim() >= 2 except the embeddings.")
    both = sorted(decay & set(no_decay))
    expect(not both, f"{both[:3]} are in both lists: each parameter goes into exactly one group.")
    left_out = sorted(names - decay - set(no_decay))
    expect(not left_out, f"{left_out[:3]} are in neither list: the second list holds every parameter that is not "
                         "decayed, or the optimizer would never train them.")
    expect(len(no_decay) == len(set(no_decay)), "A name appears twice in the second list: list each parameter once "
                                                "(model.named_parameters() gives each once, even the tied one).")
    passed(f"the {len(right)} weight matrices of the attention and MLP layers get decay; "
           f"the other {len(names) - len(right)} parameters do not")


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


# --- the training step and the loop --------------------------------------------------------------


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    return all(torch.allclose(x, y, rtol=1e-5, atol=1e-6) for x, y in zip(a, b))


def _step_by_hand(model, optimizer, x, y, grad_clip, zero_grad=True, clip=True):
    """A training step with one habit left out: the mistakes the check can name."""
    if zero_grad:
        optimizer.zero_grad(set_to_none=True)
    _, loss = model(x, y)
    loss.backward()
    if clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def check_train_step(train_step_):
    """train_step(model, optimizer, x, y, grad_clip) -> the batch's loss (a float): numogpt.train.train_step's
    zero_grad, forward, backward, clip, step."""
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randint(0, 20, (4, 8), generator=g), torch.randint(0, 20, (4, 8), generator=g))
               for _ in range(3)]
    grad_clip = 0.05  # far below the gradients' norm here, so clipping changes the step
    start = _tiny_gpt()

    def same_start():  # plain SGD: every change to the gradients shows in the weights
        model = copy.deepcopy(start)
        return model, torch.optim.SGD(model.parameters(), lr=0.5)

    (theirs, their_opt), (ours, our_opt) = same_start(), same_start()
    variants = {name: same_start() for name in ("no clip", "no zero_grad")}
    for i, (x, y) in enumerate(batches):
        clip = grad_clip if i < 2 else None  # the last call: grad_clip=None, no clipping
        before = _weights(theirs)
        right = train_step(ours, our_opt, x, y, clip)
        for name, (model, optimizer) in variants.items():
            _step_by_hand(model, optimizer, x, y, clip, zero_grad=name != "no zero_grad",
                          clip=name != "no clip" and clip is not None)
        with refusing({"numogpt.train.train_step": train_step},
                      why="it is the finished step; write zero_grad, forward, backward, clip and step yourself"):
            try:
                got = attempt(train_step_, theirs, their_opt, x, y, clip)
            except ExerciseError as e:
                if clip is None and "crashed" in str(e):
                    raise ExerciseError(f"{e}\nWith grad_clip=None there is no clipping: clip only "
                                        "`if grad_clip is not None`.") from None
                raise
        expect(not isinstance(got, torch.Tensor),
               "Return the loss as a Python float, `loss.item()`: a tensor would keep the step's whole graph "
               "alive, and the history would fill with tensors.")
        expect(isinstance(got, float), f"Return the loss as a float (`loss.item()`), got {type(got).__name__}.")
        after = _weights(theirs)
        expect(not _same(before, after),
               f"Call {i + 1} did not move the weights. The order is: optimizer.zero_grad(), forward, "
               "loss.backward(), clip, optimizer.step(); the step uses the gradients backward() has just "
               "computed (stepping before backward, or clearing the gradients after it, moves nothing).")
        if not _same(after, _weights(ours)):
            if i == 1 and _same(after, _weights(variants["no zero_grad"][0])):
                expect(False, "The first call was right, the second not: its gradients added up with the first "
                              "call's. Clear them at the start of every step: optimizer.zero_grad().")
            if i < 2 and _same(after, _weights(variants["no clip"][0])):
                clipped = all(torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7)
                              for a, b in zip(theirs.parameters(), ours.parameters()))
                expect(not clipped, "You clipped the gradients after optimizer.step(): the step has already "
                                    "used them unclipped. Clip between loss.backward() and optimizer.step().")
                expect(False, f"The gradients were not clipped: with grad_clip={grad_clip}, call "
                              "nn.utils.clip_grad_norm_(model.parameters(), grad_clip) before optimizer.step().")
            expect(False, f"After call {i + 1} the weights differ from numogpt.train.train_step's. The order is: "
                          "optimizer.zero_grad(), forward `_, loss = model(x, y)`, loss.backward(), "
                          "clip (if grad_clip is not None), optimizer.step().")
        expect(math.isclose(got, right, rel_tol=1e-6, abs_tol=1e-6),
               f"Call {i + 1} returned {got:.6f}, the batch's loss is {right:.6f}: return the loss of the forward "
               "you backpropagated (before the step), as loss.item().")
    passed("zero_grad, forward, backward, clip and step: the same weights and loss as numogpt.train.train_step, "
           "three steps in a row (the last without clipping)")


def _first_difference(got, right, tol):
    """The index of the first pair of numbers that differ by more than `tol`, or None."""
    for i, (a, b) in enumerate(zip(got, right)):
        if not math.isclose(a, b, rel_tol=tol, abs_tol=tol):
            return i
    return None


def check_train(train_):
    """train(model, train_loader, val_loader, config, callbacks=()) -> history, step for step the same as
    numogpt.train.train's."""
    ids = torch.randint(0, 20, (400,), generator=torch.Generator().manual_seed(6))
    ids[1::2] = (ids[::2] + 1) % 20  # every second token follows from the one before: something to learn
    train_loader, val_loader = make_loaders(ids, block_size=8, batch_size=4, val_fraction=0.2, stride=8, seed=1)
    per_epoch = len(train_loader.batch_sampler)  # 10 batches: the run below walks three epochs
    config = TrainConfig(max_iters=25, learning_rate=1e-2, min_lr=1e-3, warmup_iters=4, eval_interval=10,
                         eval_iters=2, seed=3, progress=False)

    def run(fn):
        model = _tiny_gpt(dropout=0.1).eval()  # in eval mode, as a loaded model comes: train must switch it
        calls = []

        def callback(step, model, history):
            calls.append((step, model.training, history["val"][-1][0] if history["val"] else None))

        train_loader.batch_sampler.set_epoch(0)  # as if new: a loader walked directly starts where the last run left it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)  # not config.seed: the run must seed itself
            history = attempt(fn, model, train_loader, val_loader, config, callbacks=[callback])
        return model, history, calls

    _, right, right_calls = run(train)
    with refusing({"numogpt.train.train": train, "numogpt.train.train_step": train_step},
                  why="it is the finished trainer; write the loop yourself, with your train_step"):
        model, got, calls = run(train_)
    expect(isinstance(got, dict) and {"train", "val", "lr"} <= got.keys(),
           'Return the history, a dict {"train": [(step, loss)], "val": [(step, loss)], "lr": [lr per step]}.')
    for key in ("train", "val"):
        expect(all(isinstance(e, (tuple, list)) and len(e) == 2 for e in got[key]),
               f'history["{key}"] holds (step, loss) pairs: history["{key}"].append((step, loss)).')
    expect(len(got["lr"]) == config.max_iters and len(got["train"]) == config.max_iters,
           f"The run has max_iters={config.max_iters} steps; your history holds {len(got['train'])} training "
           f"losses and {len(got['lr'])} learning rates: record one of each per step.")
    expect(model.modes, "No training step ran: call your train_step(model, optimizer, x, y, config.grad_clip) "
                        "at every step.")
    expect(all(model.modes), "Some training steps ran in eval mode (dropout off). Call model.train() before the "
                             "loop (a model may come in eval mode, as a loaded one does), and keep evaluation "
                             "inside eval_mode(model), which gives the model back in train mode.")
    step = _first_difference(got["lr"], right["lr"], 1e-9)
    if step is not None:
        expect(False, f"At step {step} your learning rate is {got['lr'][step]:.4g}, the library's "
                      f"{right['lr'][step]:.4g}: take it from your lr_at(step, config).")
    val_steps, right_val_steps = [s for s, _ in got["val"]], [s for s, _ in right["val"]]
    expect(val_steps == right_val_steps,
           f"You evaluated at steps {val_steps}; with max_iters={config.max_iters} and eval_interval="
           f"{config.eval_interval} that is {right_val_steps}: before the first step (step 0), after every "
           "eval_interval steps (when (step + 1) % eval_interval == 0, recorded as step + 1), and after the last.")
    train_steps = [s for s, _ in got["train"]]
    expect(train_steps == list(range(config.max_iters)),
           f'history["train"] should hold (0, loss), (1, loss), ... (the step before its update); yours starts '
           f"with steps {train_steps[:3]}.")
    step = _first_difference([loss for _, loss in got["train"]], [loss for _, loss in right["train"]], 1e-6)
    if step is not None:
        mine, library = got["train"][step][1], right["train"][step][1]
        expect(step != 0, f"The first step's loss is {mine:.5f}, the library's {library:.5f}. Seed dropout first, "
                          "torch.manual_seed(config.seed), and take the batches from batches_from(train_loader, 0).")
        expect(step % per_epoch != 0,
               f"Step {step} starts epoch {step // per_epoch + 1} of the loader ({per_epoch} batches each), and "
               f"from there your loss ({mine:.5f}) differs from the library's ({library:.5f}): every epoch is a "
               "new shuffle. Take the batches from batches_from(train_loader, 0), which walks epoch after epoch.")
        expect(False, f"Your run agrees with the library's up to step {step - 1}; at step {step} your training loss "
                      f"is {mine:.5f}, the library's {library:.5f}. Set the learning rate on EVERY param group "
                      "(for group in optimizer.param_groups), build the optimizer with configure_optimizer, and "
                      "call your train_step(model, optimizer, x, y, config.grad_clip).")
    step = _first_difference([loss for _, loss in got["val"]], [loss for _, loss in right["val"]], 1e-6)
    if step is not None:
        (at, mine), (_, library) = got["val"][step], right["val"][step]
        expect(False, f"At step {at} your validation loss is {mine:.5f}, the library's {library:.5f}: measure it "
                      "with evaluate(model, val_loader, config.eval_iters) (eval mode, no gradients).")
    expect([s for s, _, _ in calls] == [s for s, _, _ in right_calls],
           f"Your callbacks ran at steps {[s for s, _, _ in calls]}; call each callback(step, model, history) at "
           f"every evaluation: {[s for s, _, _ in right_calls]}.")
    expect(not any(training for _, training, _ in calls),
           "The callbacks ran with the model in train mode: call them inside `with eval_mode(model):` "
           "(a callback that samples text should not see dropout).")
    expect(calls == right_calls, "Call the callbacks after recording the evaluation in history['val']: a callback "
                                 "may read the latest validation loss.")
    passed(f"{config.max_iters} steps over three epochs, with dropout, the same learning rates, training and "
           "validation losses and callbacks as numogpt.train.train, step for step")
