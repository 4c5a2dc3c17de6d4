"""The checks behind the exercises of notebooks/06_sampling.ipynb (lesson 06, sampling).

The lesson's finished code is numogpt.sample. How a check works: see numogpt.exercises.
"""
import torch

from numogpt.exercises import ExerciseError, attempt, expect, passed, refusing
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


class _WatchedGPT(GPT):
    """A toy GPT that notes every forward call: what it read, how many positions the cache held
    before it (None: no cache), its logits, and whether gradients and training mode were on."""

    def __init__(self, config):
        super().__init__(config)
        self.calls = []

    def forward(self, idx, targets=None, cache=None):
        call = dict(idx=idx.detach().clone(), cached=None if cache is None else len(cache),
                    grad=torch.is_grad_enabled(), training=self.training)
        self.calls.append(call)
        logits, loss = super().forward(idx, targets, cache=cache)
        call["logits"] = logits.detach()
        return logits, loss


def _watched_gpt(dropout=0.0):
    """The checks' toy GPT: context 8, 11 tokens, weights scaled up so that its logits differ clearly."""
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(0)
        model = _WatchedGPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=dropout))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(6)
    return model.eval()


def check_greedy_step(greedy_step):
    """greedy_step(model, idx) -> (B, 1): the most likely next token of each row, the context cropped."""
    model = _watched_gpt()
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


# --- the generation loop and its cache ------------------------------------------------------


def _prompts(shape, seed):
    return torch.randint(0, 11, shape, generator=torch.Generator().manual_seed(seed))


_CROP = "crop idx to its last block_size tokens before each forward pass: idx[:, -model.config.block_size:]"


def _run_generate(generate, model, idx, max_new_tokens, options, seed=None):
    """Call the learner's generate like a lesson cell would; check what any generation must do.

    Returns its output; model.calls holds the calls it made. `seed`: the sampling generator's seed.
    """
    if seed is not None:
        options = dict(options, generator=torch.Generator().manual_seed(seed))
    model.calls.clear()
    was_training, state = model.training, torch.get_rng_state()
    try:
        got = attempt(generate, model, idx.clone(), max_new_tokens, **options)
    except ExerciseError as e:
        if "longer than block_size" not in str(e) or not model.calls:
            raise
        last = model.calls[-1]
        expect(last["cached"] is None,
               f"The model was handed {last['idx'].size(1)} new tokens and a cache already holding "
               f"{last['cached']} positions, more than its context of {model.config.block_size}. Past block_size "
               "the window slides, every token moves one position, and the cached keys and values are stale: "
               "next_logits must then crop to the last block_size tokens and run them WITHOUT the cache.")
        expect(False, f"The model was handed {last['idx'].size(1)} tokens, more than its context of "
                      f"{model.config.block_size}: {_CROP}.")
    B, T = idx.shape
    expect(isinstance(got, torch.Tensor), f"`generate` should return a tensor of token ids, got {type(got).__name__}.")
    expect(got.dim() == 2 and got.size(0) == B, f"For idx of shape {(B, T)} return shape (B, T + new) = ({B}, ...), "
                                                f"got {tuple(got.shape)}.")
    expect(got.size(1) >= T and torch.equal(got[:, :T], idx),
           f"The result must start with the whole prompt idx ({T} tokens), then the new tokens: crop only what the "
           f"model reads, and append each new token to idx (torch.cat([idx, next_ids], dim=1)). Got shape "
           f"{tuple(got.shape)}.")
    expect(got.size(1) <= T + max_new_tokens,
           f"You returned {got.size(1) - T} new tokens; max_new_tokens was {max_new_tokens}.")
    expect(not any(call["grad"] for call in model.calls),
           "The model ran with gradients on: generation never calls backward, so wrap the loop in "
           "`with torch.no_grad():` (it saves the memory and time of recording the graph).")
    expect(not any(call["training"] for call in model.calls),
           "The model ran in training mode, so dropout changed its logits at random: run it in eval mode "
           "(`with eval_mode(model):`, from numogpt.model).")
    expect(model.training == was_training,
           f"The model came in {'training' if was_training else 'eval'} mode and left in "
           f"{'training' if model.training else 'eval'} mode: give it back as it came, which "
           "`with eval_mode(model):` does for you.")
    expect(torch.equal(torch.get_rng_state(), state),
           "Your generation drew from torch's global random state: pass the `generator` argument on to the draw "
           "(pick_next(..., generator=generator), or torch.multinomial(probs, 1, generator=generator)). "
           "Otherwise a seed does not reproduce the text, and sampling changes the random state of whatever runs next.")
    return got


def _expect_steps_like_the_library(model, idx, got, options, seed):
    """Walk the learner's uncached generation step by step and say where it first went wrong.

    Each step must read the last block_size tokens of the sequence so far (the prompt and the
    tokens the learner has appended), and pick from the logits of the last position exactly as
    pick_next does with the same generator; rows that wrote eot_id get eot_id; the loop stops
    when every row has written it, or after max_new_tokens.
    """
    block_size, T, calls = model.config.block_size, idx.size(1), model.calls
    new = got.size(1) - T
    expect(len(calls) == new, f"You ran the model {len(calls)} times for {new} new tokens: run it once per new token.")
    for step, call in enumerate(calls):
        so_far = got[:, :T + step]  # (B, T + step): what the model should read, cropped
        read = call["idx"]
        if torch.equal(read, so_far[:, -block_size:]):
            continue
        expect(not (step > 0 and torch.equal(read, calls[0]["idx"])),
               f"At step {step + 1} the model read the same tokens as at step 1: append each new token to idx "
               "(idx = torch.cat([idx, next_ids], dim=1)) so that the next step reads it.")
        expect(not torch.equal(read, so_far[:, :block_size]),
               f"At step {step + 1} the model read the FIRST {block_size} tokens of a sequence of {so_far.size(1)}: "
               f"the next token follows the end of the text, so keep the LAST ones: {_CROP}.")
        expect(False, f"At step {step + 1} the model read {tuple(read.shape)} tokens that are not the last "
                      f"block_size tokens of the sequence so far {tuple(so_far.shape)}: {_CROP}.")
    wrote = got[:, T:]  # (B, new)
    eot_id, max_new = options.get("eot_id"), options["max_new_tokens"]
    replay = _replay_picks(calls, wrote, options, seed)
    if replay["wrong_at"] is not None:
        step, finished = replay["wrong_at"], replay["finished"]
        expect(not (finished & (wrote[:, step:step + 1] != eot_id)).any(),
               f"At step {step + 1} a row that had already written eot_id = {eot_id} got another token: pad "
               "finished rows with eot_id (next_ids.masked_fill(finished, eot_id)) until every row has finished.")
        expect(_replay_picks(calls, wrote, options, seed, position=0)["wrong_at"] is not None,
               "You picked from the logits of the FIRST position: only the LAST position has read the whole text, "
               "so the next token comes from logits[:, -1, :].")
        if options.get("temperature"):  # sampling: which setting did the draws leave out?
            for key, off in (("temperature", 1.0), ("top_k", None), ("top_p", None)):
                expect(options.get(key) in (None, off) or
                       _replay_picks(calls, wrote, options, seed, **{key: off})["wrong_at"] is not None,
                       f"You ignored {key}: hand temperature, top_k and top_p on to pick_next.")
        expect(False, f"At step {step + 1} you wrote {wrote[:, step].tolist()}; the last position's logits give "
                      f"{replay['right'].flatten().tolist()} with {_picking(options)}. Use pick_next(logits[:, -1, :], "
                      "temperature, top_k, top_p, generator) on the whole batch at every step (finished rows draw "
                      "too, so that the generator advances the same way).")
    done_at = replay["all_finished_at"]
    expect(done_at is None or done_at == len(calls) - 1,
           f"Every row had written eot_id = {eot_id} by step {(done_at or 0) + 1}, yet you went on: stop the loop "
           "once all rows have finished (if finished.all(): break).")
    if len(calls) < max_new:
        expect(eot_id is not None, f"You returned {len(calls)} new tokens; without eot_id generate must write all "
                                   f"max_new_tokens = {max_new}.")
        expect(done_at is not None,
               f"You stopped after {len(calls)} steps, but rows "
               f"{(~replay['finished']).flatten().nonzero().flatten().tolist()} had not written eot_id = {eot_id} "
               "yet: stop only when EVERY row has finished (rows that finish early are padded with eot_id).")


def _picking(options):
    return {k: options[k] for k in ("temperature", "top_k", "top_p") if k in options}


def _replay_picks(calls, wrote, options, seed, position=-1, **changed):
    """Replay pick_next on the logits the learner's steps got, with `changed` settings (a slip to test).

    Returns wrong_at: the first step whose tokens differ from `wrote` (B, new), or None; right: the
    tokens expected there; finished: the rows (B, 1) that had written eot_id before it (or after the
    last step); all_finished_at: the step at which the last row wrote eot_id, or None.
    """
    eot_id = options.get("eot_id")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    finished = torch.zeros(wrote.size(0), 1, dtype=torch.bool)  # (B, 1)
    replay = dict(wrong_at=None, right=None, finished=finished, all_finished_at=None)
    for step, call in enumerate(calls):
        right = sample.pick_next(call["logits"][:, position, :], generator=generator,
                                 **dict(_picking(options), **changed))  # (B, 1)
        if eot_id is not None:
            right = right.masked_fill(finished, eot_id)
        if not torch.equal(right, wrote[:, step:step + 1]):
            return dict(replay, wrong_at=step, right=right, finished=finished)
        if eot_id is not None:
            finished = finished | (right == eot_id)
            if finished.all() and replay["all_finished_at"] is None:
                replay["all_finished_at"] = step
    return dict(replay, finished=finished)


def _eot_case(model):
    """Prompts (3, 2), sampled: an eot_id that the rows write first at three different steps, all before the end."""
    idx, max_new = _prompts((3, 2), 5), 12
    for seed in range(10):
        free = sample.generate(model, idx, max_new, temperature=1.0, use_cache=False,
                               generator=torch.Generator().manual_seed(seed))[:, 2:]  # (3, 12): no stop token
        for eot_id in range(model.config.vocab_size):
            firsts = [row.tolist().index(eot_id) if eot_id in row else None for row in free]
            if None not in firsts and len(set(firsts)) == 3 and max(firsts) < max_new - 1:
                return idx, dict(max_new_tokens=max_new, temperature=1.0, eot_id=eot_id), seed
    raise AssertionError("no token makes a stop-token case for this toy model")  # tests/test_exercises_06.py


def _generation_cases(model):
    """(what, idx, options, seed): greedy, greedy past the context, sampled with both filters, a batch that
    stops at eot_id row by row, and a prompt longer than the context."""
    return [
        ("greedy", _prompts((2, 3), 1), dict(max_new_tokens=4, temperature=0), None),
        ("greedy, past the context", _prompts((2, 3), 2), dict(max_new_tokens=9, temperature=0), None),
        ("sampled, with top-k and top-p", _prompts((3, 4), 3),
         dict(max_new_tokens=10, temperature=1.5, top_k=3, top_p=0.7), 0),
        ("a batch with a stop token", *_eot_case(model)),
        ("a prompt longer than the context", _prompts((1, 12), 4), dict(max_new_tokens=5, temperature=1.5), 1),
    ]


def check_generate(generate):
    """generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, eot_id=None, generator=None),
    without a cache: the same tokens as numogpt.sample.generate(..., use_cache=False)."""
    model = _watched_gpt()
    for what, idx, options, seed in _generation_cases(model):
        options = dict(options)
        n = options.pop("max_new_tokens")
        got = _run_generate(generate, model, idx, n, options, seed)
        _expect_steps_like_the_library(model, idx, got, dict(options, max_new_tokens=n), seed)
        right = sample.generate(model, idx, n, use_cache=False, **options,
                                generator=None if seed is None else torch.Generator().manual_seed(seed))
        expect(torch.equal(got, right), f"{what}: your tokens {got.tolist()} differ from {right.tolist()}.")
    trained = _watched_gpt(dropout=0.2).train()
    _run_generate(generate, trained, _prompts((2, 3), 6), 3, dict(temperature=0))
    passed("generate: crop, last position, pick, append; eot rows padded, stops when all have; "
           "the same tokens as numogpt.sample.generate")


def _expect_logits_of_the_window(got, model, seq, what):
    """Whether got holds the model's logits (B, V) for the token after seq (B, T), read from its last block_size
    tokens; a tensor of another shape fails the exercise at once."""
    with torch.no_grad():
        all_logits, _ = model(seq[:, -model.config.block_size:])  # (B, t, V)
    model.calls.pop()  # the check's own call
    right = all_logits[:, -1, :]  # (B, V)
    expect(isinstance(got, torch.Tensor), f"`next_logits` should return a tensor of logits, got {type(got).__name__}.")
    expect(tuple(got.shape) == tuple(right.shape),
           f"{what}: return the logits of the last position only, shape (B, V) = {tuple(right.shape)}: "
           f"logits[:, -1, :]. Got shape {tuple(got.shape)}.")
    return torch.allclose(got.detach().float(), right, atol=1e-4)


def _expect_one_call(model, step):
    expect(len(model.calls) == 1, f"At step {step} `next_logits` ran the model {len(model.calls)} times: run it once.")
    return model.calls[0]


def _attempt_watched(next_logits, model, *args):
    """The learner's next_logits(*args), or None where the model refused the input it was handed:
    model.calls then says what that was, which explains the mistake better than the model's error."""
    model.calls.clear()
    try:
        return attempt(next_logits, model, *args)
    except ExerciseError:
        if not model.calls or "logits" in model.calls[-1]:  # the model did not fail: something else did
            raise
        return None


def check_next_logits(next_logits):
    """next_logits(model, idx, cache=None) -> (B, V): the logits for the token after idx, reusing the cache while
    the sequence fits the context and the cache holds all but its newest token; past block_size, the cropped
    window without the cache."""
    model = _watched_gpt()
    block_size = model.config.block_size
    # without a cache: crop, run, last position
    for T in (3, block_size, block_size + 3):
        seq = _prompts((2, T), T)
        got = _attempt_watched(next_logits, model, seq.clone())
        what = f"For idx {tuple(seq.shape)} without a cache"
        if got is None or not _expect_logits_of_the_window(got, model, seq, what):
            call = _expect_one_call(model, 1)
            expect(call["idx"].size(1) == min(T, block_size) and torch.equal(call["idx"], seq[:, -block_size:]),
                   f"For idx {tuple(seq.shape)} without a cache the model read {tuple(call['idx'].shape)} tokens: "
                   f"{_CROP}.")
            expect(False, f"For idx {tuple(seq.shape)} without a cache you returned other logits than the last "
                          "position's: return logits[:, -1, :].")
    # one sequence, step by step, with one cache: from a 3-token prompt to past the context
    cache = sample.KVCache(model.config.n_layer)
    seq = _prompts((2, 3), 7)
    for step in range(1, block_size + 1):
        T = seq.size(1)
        got = _attempt_watched(next_logits, model, seq.clone(), cache)
        call = _expect_one_call(model, step)
        read, cached = call["idx"], call["cached"]
        if T > block_size:
            expect(cached in (None, 0),
                   f"At step {step} the sequence has {T} tokens, more than the context ({block_size}), and you handed "
                   f"the model a cache holding {cached} positions. Past block_size the window slides: every token "
                   "moves one position down, so every cached key and value is stale. Run the cropped window "
                   "idx[:, -block_size:] WITHOUT the cache (cache=None), as plain generation does.")
            expect(torch.equal(read, seq[:, -block_size:]), f"At step {step} (past the context) the model read "
                                                            f"{tuple(read.shape)} tokens: {_CROP}.")
        elif step == 1:
            expect(cached is not None, "At the first step you ran the model without the cache, so it stays empty: "
                                       "run the whole prompt with cache=cache to fill it.")
            expect(read.size(1) == T, f"At the first step the cache is empty, so the model must read the whole "
                                      f"prompt ({T} tokens) to fill it; it read {read.size(1)}. The newest token "
                                      "alone would sit at position 0 and see nothing before it.")
        else:
            expect(read.size(1) != T or cached not in (None, 0),
                   f"At step {step} the cache held all but the newest token of {T}, yet the model read all {T} "
                   + ("again without it" if cached is None else "again into an emptied cache")
                   + (f": the sequence still fits the context (T <= block_size = {block_size}), so the cache "
                      "still helps: test idx.size(1) <= block_size." if T == block_size else
                      ": the cache was never used. When len(cache) == idx.size(1) - 1, run only the newest token, "
                      "idx[:, -1:], with cache=cache."))
            expect(cached is not None and cached + read.size(1) == T,
                   f"At step {step} the cache held {cached} positions and the model read {read.size(1)} new tokens: "
                   f"{cached} + {read.size(1)} is not the {T} tokens of the sequence, so the new tokens sit at the "
                   "wrong positions and every later one shifts. The cache holds all but the newest token: run "
                   "only idx[:, -1:].")
            expect(torch.equal(read, seq[:, -1:]), f"At step {step} the model read {read.tolist()}: the newest "
                                                   "token is idx[:, -1:].")
        expect(got is not None and _expect_logits_of_the_window(got, model, seq, f"At step {step}"),
               f"At step {step} (a sequence of {T} tokens) your logits differ from the model's for the last "
               "position: return logits[:, -1, :].")
        seq = torch.cat([seq, got.argmax(dim=-1, keepdim=True)], dim=1)  # (B, T + 1)
    # a cache left from another sequence: it does not hold all but the newest token, so start again
    stale = len(cache)
    for T in (3, 5):
        seq = _prompts((2, T), 20 + T)
        got = _attempt_watched(next_logits, model, seq.clone(), cache)
        call = _expect_one_call(model, 1)
        expect(call["cached"] in (None, 0) and call["idx"].size(1) == T,
               f"The cache held {stale} positions of another sequence and idx has {T} tokens: a cache that does not "
               f"hold exactly all but the newest token ({T - 1}) belongs to something else. Empty it "
               "(cache.reset()) and run the whole idx with it.")
        expect(got is not None and _expect_logits_of_the_window(got, model, seq, "With a reset cache"),
               "After resetting the cache, return the logits of the last position: logits[:, -1, :].")
        stale = len(cache)
    passed("next_logits: the newest token alone while the cache holds the rest, the whole prompt into an empty "
           "cache, the cropped window without it past block_size; the same logits as without a cache")


def check_cached_generate(generate):
    """generate(..., use_cache=True, generator=None): with the cache, the same tokens as without it, and as
    numogpt.sample.generate; the cache made once per call and used at every step inside the context."""
    model = _watched_gpt()
    block_size = model.config.block_size
    for what, idx, options, seed in _generation_cases(model):
        options = dict(options)
        n = options.pop("max_new_tokens")
        right = sample.generate(model, idx, n, use_cache=False, **options,
                                generator=None if seed is None else torch.Generator().manual_seed(seed))
        for use_cache in (False, True):
            got = _run_generate(generate, model, idx, n, dict(options, use_cache=use_cache), seed)
            calls = model.calls
            if not use_cache:
                expect(all(call["cached"] is None for call in calls),
                       "With use_cache=False the model must run without a cache (cache=None at every step).")
            elif idx.size(1) < block_size and len(calls) > 1:
                expect(any(call["cached"] is not None for call in calls),
                       "With use_cache=True the model never got a cache: make one before the loop, "
                       "KVCache(model.config.n_layer), and hand it to next_logits(model, idx, cache) at every step.")
                expect(calls[1]["cached"] != 0, "With use_cache=True the cache was empty again at the second step: "
                                                "make the KVCache once, BEFORE the loop (a new one each step holds "
                                                "nothing), and let next_logits reset it only when it does not hold "
                                                "all but the newest token.")
                ran, cached = calls[1]["idx"].size(1), calls[1]["cached"]
                expect(ran == 1, f"With use_cache=True the second step ran {ran} tokens"
                                 + (f" on top of a cache of {cached} positions, {cached + ran} for a text of "
                                    f"{idx.size(1) + 1} tokens: an off-by-one that shifts every later position. "
                                    "The cache holds all but the newest token, so next_logits must run only "
                                    "idx[:, -1:]." if cached else
                                    ": get each step's logits from your next_logits(model, idx, cache)."))
            expect(torch.equal(got, right),
                   f"{what}, use_cache={use_cache}: your tokens {got.tolist()} differ from plain generation's "
                   f"{right.tolist()} (first at step {_first_differing_step(got, right, idx.size(1))}). Keep the loop of "
                   "your first generate, and get each step's logits from next_logits(model, idx, cache).")
    passed("generate with a KV cache: the same tokens as without it, greedy and sampled, before and past the "
           "context; one token per step while the text fits")


def _first_differing_step(got, right, prompt_len):
    """The generation step (1 = the first new token) at which two outputs (B, T) first differ in any row."""
    n = min(got.size(1), right.size(1))
    differ = (got[:, :n] != right[:, :n]).any(dim=0).nonzero().flatten().tolist()
    return (differ[0] if differ else n) - prompt_len + 1
