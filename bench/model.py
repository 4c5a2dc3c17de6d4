"""How fast is numogpt's GPT at training? `python bench/model.py`

One training step (forward, backward, AdamW step) at nanoGPT's CPU "baby GPT" shape:
4 layers, 4 heads, 128 dims, block 64, batch 12, vocabulary 65, dropout 0, one thread.
The reference is transformers' GPT2LMHeadModel of the same shape (its default attention,
which is PyTorch's scaled_dot_product_attention), measured in the same run: the two
models take turns, step by step, so a busy machine slows both alike. Both get the same
optimizer and the same cross-entropy on their logits, so only the models differ.

nanoGPT's own model cannot be shipped here; its time on the course machine is quoted from
the course plan (about 61 ms a step; minGPT's 1.22x that), not measured.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from numogpt.model import GPT, GPTConfig

NANOGPT_MS = 61.0  # nanoGPT's model at this shape on the course machine, from the course plan
SHAPE = dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
BATCH = 12


def reference_model():
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


def make_step(model, logits_of):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(x, y):
        logits = logits_of(model, x)  # (B, T, V)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def timed(step, x, y):
    start = time.perf_counter()
    step(x, y)
    return (time.perf_counter() - start) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model (after warmup)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per model first")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ours = GPT(GPTConfig(**SHAPE)).train()
    theirs, attn_impl = reference_model()
    theirs.train()
    steps = {
        "numogpt": make_step(ours, lambda m, x: m(x)[0]),
        f"transformers ({attn_impl})": make_step(theirs, lambda m, x: m(input_ids=x).logits),
    }
    gen = torch.Generator().manual_seed(0)
    blocks = [torch.randint(0, SHAPE["vocab_size"], (BATCH, SHAPE["block_size"] + 1), generator=gen) for _ in range(8)]
    batches = [(b[:, :-1].contiguous(), b[:, 1:].contiguous()) for b in blocks]  # as a DataLoader gives them

    times = {name: [] for name in steps}
    for i in range(args.warmup + args.steps):
        x, y = batches[i % len(batches)]
        for name, step in steps.items():  # take turns: the same load hits both
            ms = timed(step, x, y)
            if i >= args.warmup:
                times[name].append(ms)

    print(f"torch {torch.__version__}, 1 thread; shape {SHAPE}, batch {BATCH}; {args.steps} steps each")
    median = {name: statistics.median(t) for name, t in times.items()}
    ours_ms = median["numogpt"]
    for name, ms in median.items():  # the fastest step shows what a busy machine hides
        print(f"{name:>24}: {ms:6.1f} ms/step (median; fastest {min(times[name]):5.1f})   {ms / ours_ms:4.2f}x numogpt's time")
    print(f"{'nanoGPT (course plan)':>24}: {NANOGPT_MS:6.1f} ms/step (quoted, not measured)       {NANOGPT_MS / ours_ms:4.2f}x numogpt's time")


if __name__ == "__main__":
    main()
