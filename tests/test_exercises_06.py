"""Lesson 06's checks: right answers pass, wrong answers get a message that says what is wrong."""
from contextlib import nullcontext

import nbformat
import pytest
import torch

from numogpt import NOTEBOOKS_DIR, sample
from numogpt.exercises.lesson06 import (
    _eot_case, _watched_gpt, check_cached_generate, check_generate, check_greedy_step, check_next_logits,
    check_softmax_with_temperature, check_top_k_filter, check_top_p_filter,
)
from numogpt.sample import KVCache, pick_next
from numogpt.model import eval_mode
from tests.helpers import assert_right_passes_and_wrong_fails, not_written
from tests.test_notebooks import CHECK_CALL

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


# --- softmax with temperature --------------------------------------------------------------

def softmax_with_temperature(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (lambda logits, t: torch.softmax(logits * t, dim=-1), "multiplied"),
    (lambda logits, t: torch.softmax(logits, dim=-1), "plain softmax"),
    (lambda logits, t: torch.softmax(logits, dim=-1) / t, "sum to 1"),
    (lambda logits, t: torch.softmax(logits / t, dim=0), "sum to 1"),
    (lambda logits, t: logits.div_(t).softmax(dim=-1), "in place"),
    (lambda logits, t: torch.softmax(logits / t, dim=-1)[0], "shape"),
])
def test_softmax_with_temperature(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_softmax_with_temperature, softmax_with_temperature, wrong, message, capsys)


# --- top-k ------------------------------------------------------------------------------------

def top_k_by_scatter(logits, k):  # keeps exactly k even on ties: also right
    kept = torch.full_like(logits, float("-inf"))
    values, indices = torch.topk(logits, k)
    return kept.scatter(-1, indices, values)


def test_top_k_by_scatter_passes_too(capsys):
    check_top_k_filter(top_k_by_scatter)
    assert "Correct" in capsys.readouterr().out


def kth(logits, k, largest=True):
    return torch.topk(logits, k, largest=largest).values[..., -1:]


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (lambda logits, k: logits.masked_fill(logits < kth(logits, k), 0.0), "to 0"),
    (lambda logits, k: logits.masked_fill(logits <= kth(logits, k), float("-inf")), "keep exactly"),
    (lambda logits, k: logits.masked_fill(logits > kth(logits, k, largest=False), float("-inf")), "SMALLEST"),
    (lambda logits, k: torch.where(logits < kth(logits, k), float("-inf"), 1.0), "stay exactly"),
    (lambda logits, k: logits.masked_fill(logits < kth(logits[:1], k), float("-inf")), "keep exactly|wrong tokens"),
])
def test_top_k_filter(wrong, message, capsys):
    right = lambda logits, k: logits.masked_fill(logits < kth(logits, k), float("-inf"))  # noqa: E731
    assert_right_passes_and_wrong_fails(check_top_k_filter, right, wrong, message, capsys)


# --- top-p ------------------------------------------------------------------------------------

def nucleus_by(rule):
    """A top-p filter whose keep decision is rule(sorted_probs, p)."""
    def top_p(logits, p):
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        keep = rule(sorted_logits.softmax(dim=-1), p)
        return logits.masked_fill(~torch.zeros_like(keep).scatter(-1, order, keep), float("-inf"))
    return top_p


top_p_filter = nucleus_by(lambda sorted_probs, p: (sorted_probs.cumsum(-1) - sorted_probs) < p)  # the right answer


def unsorted(logits, p):  # cumsum in vocabulary order, never sorted
    probs = logits.softmax(dim=-1)
    return logits.masked_fill((probs.cumsum(-1) - probs) >= p, float("-inf"))


def whole_batch(logits, p):  # sorts the flattened batch, not each row
    flat = top_p_filter(logits.flatten(), p)
    return flat.view_as(logits)


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (nucleus_by(lambda probs, p: probs.cumsum(-1) < p), "one token short"),  # stops before crossing p
    (nucleus_by(lambda probs, p: probs.cumsum(-1) <= p), "one token short|no token"),
    (nucleus_by(lambda probs, p: probs.cumsum(-1) - probs <= p + 0.2), "nucleus"),
    (unsorted, "Sort"),
    (lambda logits, p: top_p_filter(logits, p).nan_to_num(neginf=0.0), "to 0"),
    (lambda logits, p: top_p_filter(logits, p) / 2, "stay exactly"),
    (whole_batch, "row by row"),
])
def test_top_p_filter(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_top_p_filter, top_p_filter, wrong, message, capsys)


# --- the greedy step --------------------------------------------------------------------------

def greedy_step(model, idx):
    logits, _ = model(idx[:, -model.config.block_size:])
    return logits[:, -1, :].argmax(dim=-1, keepdim=True)


def test_greedy_step_check_leaves_the_random_state_alone():
    state = torch.get_rng_state()
    check_greedy_step(greedy_step)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (lambda model, idx: model(idx)[0][:, -1, :].argmax(dim=-1, keepdim=True), "crop the context"),
    (lambda model, idx: greedy_step(model, idx).flatten(), r"not \(2,\)"),
    (lambda model, idx: model(idx[:, -8:])[0][:, -1, :], "returned the logits"),
    (lambda model, idx: model(idx[:, -8:])[0][:, 0, :].argmax(dim=-1, keepdim=True), "FIRST position"),
    (lambda model, idx: model(idx[:, :8])[0][:, -1, :].argmax(dim=-1, keepdim=True), "last block_size"),
])
def test_greedy_step(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_greedy_step, greedy_step, wrong, message, capsys)


# --- the generation loop ----------------------------------------------------------------------

def generation_loop(window=lambda idx, n: idx[:, -n:], position=-1, pad=True, stop=lambda finished: finished.all(),
                    pick=pick_next, no_grad=True, mode="eval_mode"):
    """The notebook's generate (exercise 5) with one part swapped for a learner's slip."""
    def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, eot_id=None, generator=None):
        finished = torch.zeros(idx.size(0), 1, dtype=torch.bool)  # (B, 1)
        with torch.no_grad() if no_grad else nullcontext(), eval_mode(model) if mode == "eval_mode" else nullcontext():
            if mode == "eval":
                model.eval()  # and never back
            for _ in range(max_new_tokens):
                logits, _ = model(window(idx, model.config.block_size))  # (B, t, V)
                next_ids = pick(logits[:, position, :], temperature, top_k, top_p, generator)  # (B, 1)
                if eot_id is not None:
                    if pad:
                        next_ids = next_ids.masked_fill(finished, eot_id)
                    finished |= next_ids == eot_id
                idx = torch.cat([idx, next_ids], dim=1)  # (B, T + 1)
                if eot_id is not None and stop(finished):
                    break
        return idx
    return generate


def returning_only_the_new_tokens(model, idx, max_new_tokens, **options):
    return generation_loop()(model, idx, max_new_tokens, **options)[:, idx.size(1):]


def never_appending(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, eot_id=None, generator=None):
    new = []
    with torch.no_grad(), eval_mode(model):
        for _ in range(max_new_tokens):
            logits, _ = model(idx[:, -model.config.block_size:])
            new.append(pick_next(logits[:, -1, :], temperature, top_k, top_p, generator))
    return torch.cat([idx, *new], dim=1)


def test_the_stop_token_case_stops_rows_at_different_steps():
    model = _watched_gpt()
    idx, options, seed = _eot_case(model)
    eot_id, T = options["eot_id"], idx.size(1)
    out = sample.generate(model, idx, use_cache=False, generator=torch.Generator().manual_seed(seed), **options)
    firsts = [row[T:].tolist().index(eot_id) for row in out]
    assert len(set(firsts)) == 3 and out.size(1) < T + options["max_new_tokens"]


def test_the_generation_checks_leave_the_random_state_alone():
    state = torch.get_rng_state()
    check_generate(generation_loop())
    check_cached_generate(cached_generation())
    check_next_logits(next_logits)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (generation_loop(window=lambda idx, n: idx), "more than its context .*crop idx"),
    (generation_loop(window=lambda idx, n: idx[:, :n]), "FIRST 8 tokens"),
    (generation_loop(position=0), "FIRST position: only the LAST"),
    (generation_loop(pad=False), "pad finished rows"),
    (generation_loop(stop=lambda finished: False), "stop the loop once all"),
    (generation_loop(stop=lambda finished: finished.any()), "EVERY row"),
    (generation_loop(pick=lambda logits, t, k, p, g: pick_next(logits, t, k, p)), "global random state"),
    (generation_loop(pick=lambda logits, t, k, p, g: pick_next(logits, t if t == 0 else 1.0, k, p, g)),
     "ignored temperature"),
    (generation_loop(pick=lambda logits, t, k, p, g: pick_next(logits, t, None, p, g)), "ignored top_k"),
    (generation_loop(pick=lambda logits, t, k, p, g: pick_next(logits, t, k, None, g)), "ignored top_p"),
    (generation_loop(pick=lambda logits, t, k, p, g: logits.argmax(dim=-1, keepdim=True)), "you wrote"),
    (generation_loop(no_grad=False), "gradients on"),
    (generation_loop(mode="none"), "training mode"),
    (generation_loop(mode="eval"), "give it back"),
    (returning_only_the_new_tokens, "start with the whole prompt"),
    (never_appending, "append each new token"),
])
def test_generate(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_generate, generation_loop(), wrong, message, capsys)


# --- next_logits, with the cache ------------------------------------------------------------------

def cached_logits(fits=lambda T, block_size: T <= block_size, in_sync=lambda n, T: n == T - 1,
                  new=lambda idx: idx[:, -1:], reset=True, fallback_cache=False,
                  fallback_window=lambda idx, n: idx[:, -n:], position=-1):
    """The notebook's next_logits (exercise 6) with one part swapped for a learner's slip."""
    def next_logits(model, idx, cache=None):
        block_size = model.config.block_size
        if cache is not None and fits(idx.size(1), block_size):
            if in_sync(len(cache), idx.size(1)):
                idx = new(idx)
            elif reset:
                cache.reset()
        else:
            idx, cache = fallback_window(idx, block_size), cache if fallback_cache else None
        logits, _ = model(idx, cache=cache)  # (B, t, V)
        return logits[:, position, :]
    return next_logits


next_logits = cached_logits()


def test_next_logits_that_resets_before_the_fallback_passes_too(capsys):
    def resetting(model, idx, cache=None):
        if cache is not None and idx.size(1) > model.config.block_size:
            cache.reset()  # runs the window into an emptied cache: more work, the same positions
            return model(idx[:, -model.config.block_size:], cache=cache)[0][:, -1, :]
        return next_logits(model, idx, cache)
    check_next_logits(resetting)
    assert "Correct" in capsys.readouterr().out


def slicing_off_the_cached(model, idx, cache=None):  # never resets: right while the cache is its own, not otherwise
    if cache is None or idx.size(1) > model.config.block_size:
        return model(idx[:, -model.config.block_size:])[0][:, -1, :]
    return model(idx[:, len(cache):], cache=cache)[0][:, -1, :]


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (cached_logits(fallback_window=lambda idx, n: idx), "without a cache the model read .*crop idx"),
    (cached_logits(position=0), "other logits than the last position's|return the logits of the last position"),
    (lambda model, idx, cache=None: model(idx[:, -8:])[0], r"shape \(B, V\)"),
    (lambda model, idx, cache=None: model(idx[:, -8:])[0][:, -1, :], "without the cache, so it stays empty"),
    (cached_logits(in_sync=lambda n, T: n == T), "emptied cache: the cache was never used"),
    (cached_logits(new=lambda idx: idx[:, -2:]), "wrong positions"),
    (cached_logits(in_sync=lambda n, T: True), "At the first step the cache is empty"),
    (cached_logits(fits=lambda T, block_size: T < block_size), r"test idx.size\(1\) <= block_size"),
    (cached_logits(fits=lambda T, block_size: True), "Past block_size the window slides"),
    (cached_logits(fallback_cache=True), "Past block_size the window slides"),
    (cached_logits(reset=False), "another sequence"),
    (slicing_off_the_cached, "another sequence"),
])
def test_next_logits(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_next_logits, next_logits, wrong, message, capsys)


# --- generate with the cache ------------------------------------------------------------------------

def fresh_cache(model, use_cache):
    return KVCache(model.config.n_layer) if use_cache else None


def cached_generation(logits_for=next_logits, make_cache=fresh_cache, every_step=False):
    """The notebook's generate with a cache (exercise 7), with one part swapped for a learner's slip."""
    def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, eot_id=None,
                 use_cache=True, generator=None):
        cache = make_cache(model, use_cache)
        finished = torch.zeros(idx.size(0), 1, dtype=torch.bool)  # (B, 1)
        with torch.no_grad(), eval_mode(model):
            for _ in range(max_new_tokens):
                if every_step:
                    cache = make_cache(model, use_cache)
                next_ids = pick_next(logits_for(model, idx, cache), temperature, top_k, top_p, generator)  # (B, 1)
                if eot_id is not None:
                    next_ids = next_ids.masked_fill(finished, eot_id)
                    finished |= next_ids == eot_id
                idx = torch.cat([idx, next_ids], dim=1)  # (B, T + 1)
                if finished.all():
                    break
        return idx
    return generate


@pytest.mark.parametrize("wrong, message", [
    (not_written, "not written yet"),
    (cached_generation(make_cache=lambda model, use_cache: None), "never got a cache"),
    (cached_generation(every_step=True), "BEFORE the loop"),
    (cached_generation(make_cache=lambda model, use_cache: KVCache(model.config.n_layer)), "use_cache=False"),
    (cached_generation(logits_for=lambda model, idx, cache: model(idx[:, -8:])[0][:, -1, :]), "never got a cache"),
    (cached_generation(logits_for=cached_logits(new=lambda idx: idx[:, -2:])), "off-by-one that shifts"),
    (cached_generation(logits_for=cached_logits(fits=lambda T, block_size: True)), "WITHOUT the cache"),
    (lambda model, idx, n, use_cache=True, **options: generation_loop()(model, idx, n, **options), "never got a cache"),
])
def test_cached_generate(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_cached_generate, cached_generation(), wrong, message, capsys)


def test_an_off_by_one_cache_shows_in_the_lessons_own_text():
    """Lesson 06 writes with the learner's generate and next_logits: a cache off by one changes the lesson's
    text, not only its check."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS_DIR / "06_sampling.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    written = next(i for i, c in enumerate(cells) if "with_cache = generate(" in c.source)
    stored = "".join(o.get("text", "") for o in cells[written].outputs)
    solution = next(c for c in cells if c.source.startswith("def next_logits("))
    right = "idx = idx[:, -1:]"
    assert right in solution.source and stored
    # the cache holds all but the newest token, yet the last two run: each other step sits one position late
    solution.source = solution.source.replace(right, "idx = idx[:, -2:]")
    # the checks would stop the run (they refuse this next_logits); every other cell up to the text runs as stored
    nb.cells = [c for c in cells[: written + 1] if not CHECK_CALL.search(c.source)]
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}).execute()
    wrong = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert wrong.startswith("'The model") and wrong != stored, f"off by one it wrote {wrong!r}, right {stored!r}"
