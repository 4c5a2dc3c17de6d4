"""How fast does numogpt's GPT train? `python bench/model.py [--nanogpt DIR] [--rounds 3]`

One training step at nanoGPT's CPU "baby GPT" shape (4 layers, 4 heads, 128 dims, block 64,
batch 12, vocabulary 65, dropout 0, biases on), one thread, as each trainer takes it:
forward and loss, backward, gradient clipping at 1.0, AdamW step (lr 1e-3, weight decay 0.1,
betas 0.9/0.99). Measured in the same run, taking turns step by step so that a busy machine
slows all alike; each round gives its own medians and ratios, and the figures are medians
over the rounds.
- numogpt: GPT with its defaults (the exact GELU), its own loss (model(x, y)) and the optimizer
  numogpt.train builds (configure_optimizer: fused AdamW, one kernel for all tensors).
- numogpt, Muon: the same with lesson 08's speed-run optimizer (TrainConfig(optimizer="muon"):
  Muon for the weight matrices, AdamW for the rest), what a step of bench/train.py's recipe costs.
- nanoGPT, with --nanogpt DIR: that checkout's own model.py, its own loss (model(x, y)) and the
  optimizer its train.py builds on a CPU (GPT.configure_optimizers: AdamW, not fused).
- transformers' GPT2LMHeadModel of the same shape (its default attention, PyTorch's
  scaled_dot_product_attention, and GPT-2's tanh GELU), cross-entropy on its logits, and
  numogpt's optimizer, so that against numogpt only the models differ.
Forward+backward and clip+optimizer are timed apart too, to show where a difference comes from.
"""
import argparse
import dataclasses
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from nanogpt_checkout import NOT_MEASURED, add_option, load_model_module, quietly
from numogpt.model import GPT, GPTConfig
from numogpt.train import TrainConfig, configure_optimizer

SHAPE = dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=True)
BATCH = 12
RECIPE = TrainConfig(learning_rate=1e-3, weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0)
PARTS = ("step", "forward+backward", "clip+optimizer")


def transformers_model():
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    logging.set_verbosity_error()  # it warns that vocab 65 cannot hold its default eos id
    config = GPT2Config(
        vocab_size=SHAPE["vocab_size"], n_positions=SHAPE["block_size"], n_layer=SHAPE["n_layer"],
        n_head=SHAPE["n_head"], n_embd=SHAPE["n_embd"], activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    return model, model.config._attn_implementation


def cross_entropy_of_logits(model, x, y):
    logits = model(input_ids=x).logits  # (B, T, V)
    return F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))


def own_loss(model, x, y):
    return model(x, y)[1]


def make_step(model, loss_of, optimizer):
    """A training step that returns its milliseconds: (whole, forward+backward, clip+optimizer)."""
    model.train()

    def step(x, y):
        start = time.perf_counter()
        loss_of(model, x, y).backward()
        middle = time.perf_counter()
        nn.utils.clip_grad_norm_(model.parameters(), RECIPE.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        end = time.perf_counter()
        return (end - start) * 1000, (middle - start) * 1000, (end - middle) * 1000

    return step


def contenders(nanogpt_dir):
    ours = GPT(GPTConfig(**SHAPE))
    steps = {"numogpt": make_step(ours, own_loss, configure_optimizer(ours, RECIPE))}
    with_muon = GPT(GPTConfig(**SHAPE))
    steps["numogpt, Muon"] = make_step(with_muon, own_loss,
                                       configure_optimizer(with_muon, dataclasses.replace(RECIPE, optimizer="muon")))
    if nanogpt_dir:
        module = load_model_module(nanogpt_dir)
        nano = quietly(module.GPT, module.GPTConfig(**SHAPE))
        optimizer = quietly(nano.configure_optimizers, RECIPE.weight_decay, RECIPE.learning_rate, RECIPE.betas, "cpu")
        steps["nanoGPT"] = make_step(nano, own_loss, optimizer)
    theirs, attn_impl = transformers_model()
    steps[f"transformers ({attn_impl})"] = make_step(theirs, cross_entropy_of_logits, configure_optimizer(theirs, RECIPE))
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_option(parser)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the figures are medians over rounds")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model in each round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per model first")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    steps = contenders(args.nanogpt)
    gen = torch.Generator().manual_seed(0)
    blocks = [torch.randint(0, SHAPE["vocab_size"], (BATCH, SHAPE["block_size"] + 1), generator=gen) for _ in range(8)]
    batches = [(b[:, :-1].contiguous(), b[:, 1:].contiguous()) for b in blocks]  # as a DataLoader gives them
    for i in range(args.warmup):
        for step in steps.values():
            step(*batches[i % len(batches)])

    print(f"torch {torch.__version__}, 1 thread; shape {SHAPE}, batch {BATCH}; "
          f"{args.rounds} rounds of {args.steps} steps per model, turn about")
    medians = {name: {part: [] for part in PARTS} for name in steps}  # one median per round
    for r in range(args.rounds):
        times = {name: [] for name in steps}
        for i in range(args.steps):
            for name, step in steps.items():  # take turns: the same load hits all
                times[name].append(step(*batches[i % len(batches)]))
        for name, rows in times.items():
            for part, column in zip(PARTS, zip(*rows)):
                medians[name][part].append(statistics.median(column))
        print(f"  round {r + 1}: " + ", ".join(f"{name} {m['step'][-1]:.1f} ms" for name, m in medians.items()))

    def ratio(name, part, over="numogpt"):  # per round, then the median: rounds may differ in load
        return statistics.median(a / b for a, b in zip(medians[name][part], medians[over][part]))

    print("medians over rounds, ms (time over numogpt's):")
    for name, m in medians.items():
        print(f"{name:>26}: " + ";  ".join(f"{part} {statistics.median(m[part]):5.1f} ({ratio(name, part):.2f}x)"
                                           for part in PARTS))
    if "nanoGPT" in medians:
        print(f"numogpt's step takes {ratio('numogpt', 'step', 'nanoGPT'):.2f}x nanoGPT's (goal <= 0.95x): "
              f"forward+backward {ratio('numogpt', 'forward+backward', 'nanoGPT'):.2f}x, "
              f"clip+optimizer {ratio('numogpt', 'clip+optimizer', 'nanoGPT'):.2f}x")
    else:
        print(NOT_MEASURED)


if __name__ == "__main__":
    main()
