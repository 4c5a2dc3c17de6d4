"""The checks behind the exercises of notebooks/06_sampling.ipynb (lesson 06, sampling).

The lesson's finished code is numogpt.sample. How a check works: see numogpt.exercises.
"""
import torch

from numogpt.exercises import attempt, expect, passed, refusing
from numogpt import sample
from numogpt.model import GPT, GPTConfig


def _expect_logits_like(got, logits, name):
    expect(isinstance(got, torch.Tensor), f"`{name}` should return a tensor, got {type(got).__name__}.")
    expect(got.shape == logits.shape, f"`{name}` should return the shape of its input {tuple(logits.shape)}, "
                                      f"got {tuple(got.shape)}.")


def _kept(logits):
    return logits > float("-inf")


def check_softmax_with_temperature(softmax_with_temperature):
    """softmax_with_temperature(logits, temperature) -> probabilities (..., V), temperature > 0."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 3.0, 0.0]])
    for temperature in (1.0, 0.5, 2.0, 0.1):
        right = torch.softmax(logits / temperature, dim=-1)
        given = logits.clone()
        got = attempt(softmax_with_temperature, given, temperature)
        _expect_logits_like(got, logits, "softmax_with_temperature")
        expect(torch.equal(given, logits), "Your function changed the logits it was given (in place): "
                                           "compute a new tensor, e.g. logits / temperature.")
        expect(torch.allclose(got.sum(dim=-1), torch.ones(2), atol=1e-5),
               "Each row of probabilities must sum to 1: apply the softmax over the last dim (dim=-1), "
               "after dividing by the temperature (dividing the probabilities afterwards breaks the sum).")
        if temperature != 1.0:
            expect(not torch.allclose(got, torch.softmax(logits, dim=-1), atol=1e-5),
                   f"At temperature {temperature} you returned the plain softmax: divide the logits by the temperature first.")
            expect(not torch.allclose(got, torch.softmax(logits * temperature, dim=-1), atol=1e-5),
                   "You multiplied by the temperature; divide by it: a low temperature must make the "
                   "distribution sharper (the big logits grow further apart).")
        expect(torch.allclose(got, right, atol=1e-5),
               f"At temperature {temperature} the probabilities are not softmax(logits / temperature) yet.")
    passed("softmax(logits / temperature): sharper below 1, flatter above 1")


def check_top_k_filter(top_k_filter):
    """top_k_filter(logits, k) -> logits with all but the k largest of each row set to -inf."""
    logits = torch.randn(3, 10, generator=torch.Generator().manual_seed(6))  # distinct values, no ties
    for k in (3, 1, 10):
        right = logits.masked_fill(logits < logits.topk(k).values[..., -1:], float("-inf"))
        with refusing({"numogpt.sample.top_k_filter": sample.top_k_filter},
                      why="it is the finished filter; find each row's k-th largest logit with torch.topk"):
            got = attempt(top_k_filter, logits.clone(), k)
        _expect_logits_like(got, logits, "top_k_filter")
        expect(not ((got == 0) & (right == float("-inf"))).any(),
               "You set the removed logits to 0, but a logit of 0 still has probability (exp(0) = 1): "
               "set them to float('-inf') so that softmax gives them exactly 0.")
        counts = _kept(got).sum(dim=-1).tolist()
        expect(counts == [k] * 3, f"With k = {k} every row must keep exactly {k} tokens; your rows keep {counts}. "
                                  "Compare each logit with the k-th largest of its row (torch.topk(logits, k).values[..., -1:]).")
        smallest = logits.masked_fill(logits > logits.topk(k, largest=False).values[..., -1:], float("-inf"))
        expect(k == 10 or not torch.equal(_kept(got), _kept(smallest)),
               "You kept the k SMALLEST logits: keep the k largest (torch.topk returns the largest by default).")
        expect(torch.equal(_kept(got), _kept(right)), f"With k = {k} you kept the wrong tokens: keep the k largest logits of each row.")
        expect(torch.equal(got[_kept(right)], logits[_kept(right)]),
               "The kept logits must stay exactly as they were; only the others become -inf.")
    passed("top-k keeps the k most likely tokens of each row and sets the rest to -inf")


def check_top_p_filter(top_p_filter):
    """top_p_filter(logits, p) -> logits with all but the nucleus of each row set to -inf."""
    # one row's probabilities, shuffled so that the answer must sort: 0.45, 0.25, 0.15, 0.1, 0.05
    probs = torch.tensor([[0.1, 0.45, 0.05, 0.25, 0.15]])
    cases = [(0.6, [1, 3]), (0.3, [1]), (0.8, [1, 3, 4]), (1.0, [0, 1, 2, 3, 4])]
    for p, nucleus in cases:
        logits = probs.log()
        with refusing({"numogpt.sample.top_p_filter": sample.top_p_filter},
                      why="it is the finished filter; sort, take the cumulative sum, and map back"):
            got = attempt(top_p_filter, logits.clone(), p)
        _expect_logits_like(got, logits, "top_p_filter")
        expect(not (got == 0).any(), "You set the removed logits to 0, but a logit of 0 still has probability "
                                     "(exp(0) = 1): set them to float('-inf') so that softmax gives them exactly 0.")
        kept = torch.nonzero(_kept(got)[0]).flatten().tolist()
        if kept == nucleus:
            expect(torch.equal(got[0, nucleus], logits[0, nucleus]),
                   "The kept logits must stay exactly as they were; only the others become -inf.")
            continue
        expect(len(kept) > 0, f"With p = {p} you kept no token at all: the most likely token is always kept, "
                              "even when its probability alone is above p.")
        if len(kept) == len(nucleus) - 1:
            expect(False, f"With p = {p} you kept {kept}, one token short of the nucleus {nucleus}: keep "
                          "tokens until the total REACHES p, including the token that crosses it. A token is "
                          "kept when the probability of the tokens before it (in sorted order) is still below p.")
        expect(False, f"With p = {p} the nucleus of probabilities {probs[0].tolist()} is the tokens {nucleus} "
                      f"(most likely first, until their total reaches p); you kept {kept}. Sort by probability "
                      "(descending), take the cumulative sum, and map the decision back to the original order.")
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(7)) * 2
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    sorted_probs = sorted_logits.softmax(dim=-1)
    keep = (sorted_probs.cumsum(dim=-1) - sorted_probs) < 0.9
    right = torch.zeros_like(keep).scatter(-1, order, keep)
    with refusing({"numogpt.sample.top_p_filter": sample.top_p_filter},
                  why="it is the finished filter; sort, take the cumulative sum, and map back"):
        got = attempt(top_p_filter, logits.clone(), 0.9)
    _expect_logits_like(got, logits, "top_p_filter")
    expect(torch.equal(_kept(got), right), "On a batch of 4 rows of 30 logits with p = 0.9 you kept other tokens than "
                                           "the nucleus: work row by row (sort and cumsum along dim=-1).")
    passed("top-p keeps the smallest set of most likely tokens whose probability reaches p")


def check_greedy_step(greedy_step):
    """greedy_step(model, idx) -> (B, 1): the most likely next token of each row, the context cropped."""
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10)  # bigger weights: distinct logits, one clear favourite
    g = torch.Generator().manual_seed(1)
    for shape in [(2, 5), (1, 1), (3, 8), (2, 12)]:
        idx = torch.randint(0, 11, shape, generator=g)
        with torch.no_grad():
            logits, _ = model(idx[:, -8:])  # (B, T, V)
        right = logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (B, 1)
        got = attempt(greedy_step, model, idx.clone())
        expect(isinstance(got, torch.Tensor), f"`greedy_step` should return a tensor of token ids, got {type(got).__name__}.")
        expect(not (got.shape == logits[:, -1, :].shape and got.is_floating_point()),
               "You returned the logits (B, V); return the id of the largest one: argmax over the last dim.")
        expect(tuple(got.shape) != (shape[0],),
               f"Return shape (B, 1) = ({shape[0]}, 1), not ({shape[0]},), so it can be appended with "
               "torch.cat([idx, next_id], dim=1): use argmax(dim=-1, keepdim=True).")
        expect(tuple(got.shape) == (shape[0], 1), f"For idx {tuple(idx.shape)} return shape ({shape[0]}, 1), got {tuple(got.shape)}.")
        if shape[1] > 1:
            expect(not torch.equal(got, logits[:, 0, :].argmax(dim=-1, keepdim=True)) or torch.equal(got, right),
                   "You took the prediction of the FIRST position: the next token comes from the last one, logits[:, -1, :].")
        expect(torch.equal(got, right), f"For idx {tuple(idx.shape)} the most likely next tokens are {right.flatten().tolist()}, "
                                        f"you gave {got.flatten().tolist()}: crop idx to the last block_size tokens, "
                                        "run the model, take the last position's logits and their argmax.")
    passed("greedy step: crop to the context, last position's logits, argmax -> (B, 1)")
