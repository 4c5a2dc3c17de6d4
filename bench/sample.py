"""Generation speed with the KV cache vs without it: python bench/sample.py

One thread; batch 1; a GPT of 4 layers, 4 heads, 128 dims, block 256, vocabulary 65 (random
init, seeded); 200 new tokens after a 56-token prompt, so the sequence just fills the context.
The two ways run interleaved in the same process, and medians of several runs are quoted.
Then plain generation at a full 256-token context, where every step recomputes 256 positions.

Reference, not measured here: nanoGPT's generate (no cache) does about 250 tokens/s from a
short prompt and about 110 at a full 256-token context on this machine (the course's issue).
"""
import statistics
import time

import torch

from numogpt.model import GPT, GPTConfig
from numogpt.sample import generate

RUNS = 5
NEW_TOKENS = 200


def tokens_per_second(model, prompt, use_cache):
    start = time.perf_counter()
    generate(model, prompt, NEW_TOKENS, temperature=0, use_cache=use_cache)
    return NEW_TOKENS / (time.perf_counter() - start)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=256, n_layer=4, n_head=4, n_embd=128)).eval()
    short_prompt = torch.randint(0, 65, (1, 56))  # 56 + 200 = 256 = block_size
    full_prompt = torch.randint(0, 65, (1, 256))  # the window slides at every step
    tokens_per_second(model, short_prompt, True)  # warm-up
    with_cache, without, full = [], [], []
    for _ in range(RUNS):  # interleaved: a busy neighbour slows both ways alike
        with_cache.append(tokens_per_second(model, short_prompt, use_cache=True))
        without.append(tokens_per_second(model, short_prompt, use_cache=False))
        full.append(tokens_per_second(model, full_prompt, use_cache=False))
    cached, plain = statistics.median(with_cache), statistics.median(without)
    print(f"200 new tokens after a 56-token prompt, batch 1, 4L/4H/128d, block 256, 1 thread, median of {RUNS}:")
    print(f"  with the KV cache     {cached:7.0f} tokens/s")
    print(f"  without the cache     {plain:7.0f} tokens/s")
    print(f"  ratio                 {cached / plain:7.1f}x  (goal >= 4x)")
    print(f"  full 256-token context, no cache (the cache cannot help once the window slides): "
          f"{statistics.median(full):.0f} tokens/s")
    print("  reference, not measured: nanoGPT's generate ~250 tokens/s short prompt, ~110 at full context")


if __name__ == "__main__":
    main()
