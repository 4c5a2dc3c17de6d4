"""Generation speed: `python bench/sample.py [--nanogpt DIR] [--runs 5]`

One thread; batch 1; a GPT of 4 layers, 4 heads, 128 dims, block 256, vocabulary 65 (random
init, seeded); greedy, 200 new tokens after a 56-token prompt, so the sequence just fills the
context. Taking turns in the same process, medians of several runs:
- numogpt's generate with the KV cache (each step runs the model on the new token only), and
  without it (each step runs it on the whole sequence);
- with --nanogpt DIR, nanoGPT's own GPT.generate from that checkout (no cache), on a copy of
  the same weights (greedy there is top_k=1), so both write the same tokens.
Then the same at a full 256-token context, where the window slides at every step: the cache
cannot help there (every position shifts), so both recompute the whole window.
"""
import argparse
import statistics
import time

import torch

from nanogpt_checkout import NOT_MEASURED, add_option, load_model_module, quietly
from numogpt.model import GPT, GPTConfig
from numogpt.sample import generate

SHAPE = dict(vocab_size=65, block_size=256, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=True)
NEW_TOKENS = 200


def timed(write, prompt):
    """(tokens per second, the tokens written)"""
    start = time.perf_counter()
    with torch.no_grad():
        out = write(prompt)
    return NEW_TOKENS / (time.perf_counter() - start), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_option(parser)
    parser.add_argument("--runs", type=int, default=5, help="runs of each; medians are printed")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ours = GPT(GPTConfig(**SHAPE)).eval()
    writers = {
        "numogpt, KV cache": lambda p: generate(ours, p, NEW_TOKENS, temperature=0),
        "numogpt, no cache": lambda p: generate(ours, p, NEW_TOKENS, temperature=0, use_cache=False),
    }
    if args.nanogpt:
        module = load_model_module(args.nanogpt)
        nano = quietly(module.GPT, module.GPTConfig(**SHAPE)).eval()
        nano.load_state_dict(ours.state_dict())  # the same parameter names: GPT-2's
        writers["nanoGPT generate"] = lambda p: nano.generate(p, NEW_TOKENS, top_k=1)
    prompts = {"56-token prompt": torch.randint(0, 65, (1, 56)),  # 56 + 200 = 256 = block_size
               "full 256-token context": torch.randint(0, 65, (1, 256))}  # the window slides at every step

    print(f"{NEW_TOKENS} new tokens, greedy, batch 1, 4L/4H/128d, block 256, 1 thread, median of {args.runs}:")
    for label, prompt in prompts.items():
        for write in writers.values():
            write(prompt)  # warm-up
        speeds, outputs = {name: [] for name in writers}, {}
        for _ in range(args.runs):  # turn about: a busy neighbour slows all alike
            for name, write in writers.items():
                speed, outputs[name] = timed(write, prompt)
                speeds[name].append(speed)
        median = {name: statistics.median(s) for name, s in speeds.items()}
        print(f"  {label}:")
        for name, speed in median.items():
            print(f"    {name:<18} {speed:6.0f} tokens/s")
        cached = speeds["numogpt, KV cache"]
        per_run = lambda other: statistics.median(a / b for a, b in zip(cached, speeds[other]))  # noqa: E731
        print(f"    numogpt with the cache: {per_run('numogpt, no cache'):.1f}x the speed without it")
        if args.nanogpt:
            same = torch.equal(outputs["numogpt, KV cache"], outputs["nanoGPT generate"])
            print(f"    numogpt with the cache: {per_run('nanoGPT generate'):.1f}x nanoGPT's speed "
                  f"(the same tokens: {'yes' if same else 'NO'})")
    if not args.nanogpt:
        print(NOT_MEASURED)


if __name__ == "__main__":
    main()
