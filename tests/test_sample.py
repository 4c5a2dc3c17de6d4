"""Lesson 06: sampling. References: transformers' GPT-2 generate and its logits warpers,
brute-force loops, and our own generation without the cache."""
import inspect

import torch
import torch.nn.functional as F
import pytest
from hypothesis import given, settings, strategies as st

from numogpt.model import GPT, GPTConfig
from numogpt.pretrained import from_pretrained
from numogpt.sample import (
    WORD_PROMPTS, KVCache, apply_temperature, generate, lower_words, pick_next, real_word_share, sample_chars,
    sampled_word_share, stream, top_k_filter, top_p_filter,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


def tiny_gpt(seed=0, vocab_size=13, block_size=16):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():  # bigger weights than GPT-2's init: distinct logits, no near-ties
        for p in model.parameters():
            p.mul_(10)
    return model.eval()


def prompts(batch=1, length=5, vocab_size=13, seed=1):
    return torch.randint(0, vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))


class Successor(torch.nn.Module):
    """A stand-in model that always predicts (last token + 1) % V, whatever the cache."""

    def __init__(self, vocab_size=10, block_size=4):
        super().__init__()
        self.config = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=1, n_head=1, n_embd=4)
        self.seen = []  # the inputs it was given

    def forward(self, idx, targets=None, cache=None):
        if idx.size(1) > self.config.block_size:
            raise ValueError("longer than the context")
        self.seen.append(idx.clone())
        return F.one_hot((idx + 1) % self.config.vocab_size, self.config.vocab_size).float() * 10, None


# --- the filters ----------------------------------------------------------------------------


def brute_force_top_p(logits, p):
    """The nucleus by a plain loop: most likely first, stop once the kept probability reaches p."""
    probs = F.softmax(logits, dim=-1).tolist()
    keep, total = set(), 0.0
    for i in sorted(range(len(probs)), key=lambda i: -probs[i]):
        keep.add(i)
        total += probs[i]
        if total >= p:
            break
    return keep


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), p=st.floats(0.01, 1.0), scale=st.floats(0.1, 5.0))
def test_top_p_keeps_the_nucleus_like_a_brute_force_loop(seed, p, scale):
    logits = torch.randn(20, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    kept = set(torch.nonzero(top_p_filter(logits, p) > float("-inf")).flatten().tolist())
    assert kept == brute_force_top_p(logits, p)


def test_top_p_matches_transformers_warper():
    from transformers.generation.logits_process import TopPLogitsWarper

    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(0)) * 3
    for p in (0.05, 0.3, 0.9, 0.99):
        ours = top_p_filter(logits, p)
        theirs = TopPLogitsWarper(top_p=p)(None, logits.clone())
        assert torch.equal(ours, theirs)


def test_top_p_always_keeps_the_top_token_and_p_1_keeps_all():
    logits = torch.tensor([[5.0, 0.0, 0.0, -1.0]])
    assert torch.equal(top_p_filter(logits, 1e-6) > float("-inf"), torch.tensor([[True, False, False, False]]))
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_top_k_keeps_exactly_k_distinct_values():
    logits = torch.randn(32, 40, generator=torch.Generator().manual_seed(0))
    for k in (1, 5, 39):
        kept = top_k_filter(logits, k) > float("-inf")
        assert (kept.sum(-1) == k).all()
        assert torch.equal(kept, F.one_hot(logits.topk(k).indices, 40).sum(1).bool())  # the k largest


def test_top_k_matches_transformers_warper_and_keeps_ties():
    from transformers.generation.logits_process import TopKLogitsWarper

    logits = torch.tensor([[3.0, 1.0, 1.0, 0.0, 2.0]])
    theirs = TopKLogitsWarper(top_k=3)(None, logits.clone())
    assert torch.equal(top_k_filter(logits, 3), theirs)
    # 3, 2 and both 1s share the 3rd place: all four stay, the 0 goes
    assert torch.equal(top_k_filter(logits, 3) > float("-inf"), torch.tensor([[True, True, True, False, True]]))
    assert torch.equal(top_k_filter(logits, 100), logits)  # k beyond the vocabulary keeps all


def test_temperature_sharpens_and_flattens_like_transformers():
    from transformers.generation.logits_process import TemperatureLogitsWarper

    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    for t in (0.1, 0.5, 1.0, 2.0):
        assert torch.allclose(apply_temperature(logits, t), TemperatureLogitsWarper(t)(None, logits.clone()))
    top = [F.softmax(apply_temperature(logits, t), -1)[0, 0].item() for t in (0.1, 0.5, 1.0, 2.0, 10.0)]
    assert top == sorted(top, reverse=True)  # the favourite loses probability as T grows
    assert top[0] > 0.99 and top[-1] < 0.3  # near one-hot when cold, near uniform when hot


def test_a_tiny_temperature_is_greedy_not_nan():
    # logits / 1e-40 overflow to +-inf, and softmax of +inf is NaN: the row's max must go first
    logits = torch.tensor([[2.0, 1.0, 3.0, -1.0], [0.5, 0.0, 0.25, 0.5]])
    for top_k, top_p in [(None, None), (2, None), (None, 0.9)]:
        picked = pick_next(logits, temperature=1e-40, top_k=top_k, top_p=top_p, generator=torch.Generator().manual_seed(0))
        assert picked[0].item() == 2 and picked[1].item() in (0, 3)  # the largest (either of a tie)
    model, idx = tiny_gpt(), prompts()
    assert torch.equal(generate(model, idx, 8, temperature=1e-40), generate(model, idx, 8, temperature=0))


def test_draws_follow_the_filtered_distribution():
    logits = torch.log(torch.tensor([0.5, 0.25, 0.15, 0.1])).expand(40000, 4)
    gen = torch.Generator().manual_seed(0)
    counts = lambda **kw: torch.bincount(pick_next(logits, generator=gen, **kw).flatten(), minlength=4) / 40000
    assert torch.allclose(counts(), torch.tensor([0.5, 0.25, 0.15, 0.1]), atol=0.01)
    assert torch.allclose(counts(top_k=2), torch.tensor([2 / 3, 1 / 3, 0, 0]), atol=0.01)
    assert torch.allclose(counts(top_p=0.8), torch.tensor([0.5, 0.25, 0.15, 0]) / 0.9, atol=0.01)
    cold = torch.tensor([0.5, 0.25, 0.15, 0.1]) ** 2
    assert torch.allclose(counts(temperature=0.5), cold / cold.sum(), atol=0.01)  # softmax(logits / T)


# --- generation ------------------------------------------------------------------------------


def test_greedy_is_the_argmax_chain_of_a_manual_loop():
    model, idx = tiny_gpt(), prompts(batch=2)
    manual = idx
    for _ in range(8):
        logits, _ = model(manual)
        manual = torch.cat([manual, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    for use_cache in (True, False):
        assert torch.equal(generate(model, idx, 8, temperature=0, use_cache=use_cache), manual)


@pytest.fixture(scope="module")
def hf_pair(tmp_path_factory):
    """A small random GPT-2 in transformers and the same weights in our GPT."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50, n_positions=32, n_embd=32, n_layer=2, n_head=2, initializer_range=0.3)
    hf = GPT2LMHeadModel(config).eval()
    path = tmp_path_factory.mktemp("gpt2")
    hf.save_pretrained(path)
    return hf, from_pretrained(path).eval()


def test_greedy_and_sampled_match_transformers_generate(hf_pair):
    hf, ours = hf_pair
    idx = prompts(batch=3, length=6, vocab_size=50)
    kw = dict(max_new_tokens=20, pad_token_id=0, attention_mask=torch.ones_like(idx))
    assert torch.equal(generate(ours, idx, 20, temperature=0), hf.generate(idx, do_sample=False, **kw))
    # sampling: the same warpers in the same order, the same multinomial draws from the global RNG
    torch.manual_seed(7)
    theirs = hf.generate(idx, do_sample=True, temperature=0.8, top_k=20, top_p=0.9, **kw)
    torch.manual_seed(7)
    assert torch.equal(generate(ours, idx, 20, temperature=0.8, top_k=20, top_p=0.9), theirs)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("temperature", [0, 1.0, 1.5])
def test_the_cache_changes_nothing_also_past_block_size(batch, temperature):
    model, idx = tiny_gpt(), prompts(batch=batch)  # 5 + 30 tokens: the 16-token window slides
    runs = [
        generate(model, idx, 30, temperature=temperature, top_k=8, top_p=0.95,
                 use_cache=use_cache, generator=torch.Generator().manual_seed(3))
        for use_cache in (True, False)
    ]
    assert runs[0].shape == (batch, 35)
    assert torch.equal(runs[0], runs[1])


def test_the_cache_runs_one_token_per_step_until_the_window_slides():
    model, lengths = tiny_gpt(), []
    hook = model.register_forward_pre_hook(lambda m, args, kwargs: lengths.append(args[0].size(1)), with_kwargs=True)
    generate(model, prompts(length=5), 14, temperature=0)
    hook.remove()
    # the prompt (5), then one token a step while the sequence fits 16, then the whole window
    assert lengths == [5] + [1] * 11 + [16] * 2


def test_stream_yields_the_tokens_of_generate():
    model, idx = tiny_gpt(), prompts(batch=2)
    steps = list(stream(model, idx, 12, temperature=1.0, generator=torch.Generator().manual_seed(0)))
    assert all(s.shape == (2, 1) for s in steps)
    same = generate(model, idx, 12, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([idx, *steps], dim=1), same)


def test_seeded_generators_reproduce_and_other_seeds_differ():
    model, idx = tiny_gpt(), prompts()
    run = lambda seed: generate(model, idx, 40, temperature=2.0, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_stop_token_ends_generation_and_pads_finished_rows():
    model = Successor(vocab_size=10)
    out = generate(model, torch.tensor([[3], [1]]), max_new_tokens=20, temperature=0, eot_id=5)
    # row 0 reaches 5 after 2 steps and is padded; row 1 after 4 steps, then all stop
    assert out.tolist() == [[3, 4, 5, 5, 5], [1, 2, 3, 4, 5]]
    assert generate(model, torch.tensor([[3]]), 20, temperature=0, eot_id=5).tolist() == [[3, 4, 5]]
    assert generate(model, torch.tensor([[3]]), 3, temperature=0).tolist() == [[3, 4, 5, 6]]


def test_long_prompts_are_cropped_to_the_context():
    model = Successor(vocab_size=10, block_size=4)
    prompt = torch.tensor([[0, 1, 2, 3, 4, 5, 6]])
    out = generate(model, prompt, 3, temperature=0)
    assert out.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]  # the whole prompt is returned
    assert [s.tolist() for s in model.seen] == [[[3, 4, 5, 6]], [[4, 5, 6, 7]], [[5, 6, 7, 8]]]

    gpt, long = tiny_gpt(), prompts(batch=2, length=40)
    assert torch.equal(generate(gpt, long, 5, temperature=0)[:, 40:],
                       generate(gpt, long[:, -16:], 5, temperature=0)[:, 16:])


def test_mode_and_grad_mode_come_back():
    model = tiny_gpt()
    model.train()
    steps = stream(model, prompts(), 3)
    next(steps)
    assert model.training and torch.is_grad_enabled()  # untouched between steps
    list(steps)
    assert model.training
    # dropout is off while sampling: greedy answers are the eval-mode answers
    dropping = GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.5))
    dropping.load_state_dict(tiny_gpt().state_dict())
    dropping.train()
    assert torch.equal(generate(dropping, prompts(), 10, temperature=0), generate(tiny_gpt(), prompts(), 10, temperature=0))


def test_zero_new_tokens_returns_the_prompt():
    idx = prompts()
    assert torch.equal(generate(tiny_gpt(), idx, 0), idx)


def test_kv_cache_appends_along_time():
    cache = KVCache(n_layer=2)
    assert len(cache) == 0 and len(cache.layers) == 2
    for T in (3, 1, 2):
        for layer in cache.layers:
            k_all, v_all = layer.extend(torch.randn(2, 4, T, 8), torch.randn(2, 4, T, 8))
    assert len(cache) == 6 and k_all.shape == v_all.shape == (2, 4, 6, 8)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(temperature=-0.5), ValueError, "-0.5"),
        (dict(temperature=float("nan")), TypeError, "temperature"),
        (dict(top_k=0), ValueError, "top_k"),
        (dict(top_k=2.5), TypeError, "2.5"),
        (dict(top_k=True), TypeError, "True"),
        (dict(temperature=True), TypeError, "temperature must be .* got True"),
        (dict(top_p=0.0), ValueError, "top_p"),
        (dict(top_p=1.5), ValueError, "1.5"),
        (dict(top_p=True), TypeError, "top_p must be .* got True"),
        (dict(max_new_tokens=-1), ValueError, "-1"),
        (dict(eot_id=99), ValueError, "eot_id"),
        (dict(eot_id=False), TypeError, "eot_id must be .* got False"),
        (dict(idx=torch.tensor([1, 2, 3])), ValueError, "batch dim"),
        (dict(idx=torch.zeros(1, 0, dtype=torch.long)), ValueError, "empty prompt"),
        (dict(idx=torch.tensor([[1, 99]])), ValueError, "99"),
        (dict(idx=torch.tensor([[1.0, 2.0]])), TypeError, "integer token ids, got torch.float32"),
        (dict(idx=[[1, 2]]), TypeError, "list"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, words):
    args = dict(model=tiny_gpt(), idx=prompts(), max_new_tokens=3) | kwargs
    for fn in (generate, stream):  # stream checks at the call, not at the first step
        with pytest.raises(error, match=words):
            fn(**args)


# --- the command: python -m numogpt sample ------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny checkpoints saved by lesson 05's save_checkpoint: a char tokenizer, a byte-level BPE
    (its tokens can split a character), and a BPE model that always says <|endoftext|>."""
    from numogpt.tokenizer import BPETokenizer, CharTokenizer
    from numogpt.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("checkpoints")
    char = CharTokenizer("abcdefghij klmnop.")
    bpe = BPETokenizer().train("héllo wörld, ça va? " * 10, vocab_size=270, pattern=None, special_tokens=["<|endoftext|>"])
    paths = {}
    for name, tok in [("char", char), ("bpe", bpe), ("eot", bpe)]:
        model = tiny_gpt(vocab_size=tok.vocab_size)
        if name == "eot":  # every position's vector becomes <|endoftext|>'s embedding: it wins the argmax
            with torch.no_grad():
                model.transformer.ln_f.weight.zero_()
                model.transformer.ln_f.bias.copy_(model.transformer.wte.weight[tok.eot_id])
        paths[name] = save_checkpoint(folder / f"{name}.pt", model, tokenizer=tok)
    return paths


def sample_command(capsys, *args):
    from numogpt.__main__ import main

    try:
        main(["sample", *map(str, args)])
    except SystemExit as e:
        return e.code, capsys.readouterr()
    return 0, capsys.readouterr()


@pytest.mark.parametrize("name, prompt", [("char", "hello"), ("bpe", "ça")])
@pytest.mark.parametrize("flags", [[], ["--no-cache"], ["--temperature", "0"], ["--top-k", "5", "--top-p", "0.8"]])
def test_the_command_prints_the_prompt_and_its_continuation(checkpoints, capsys, name, prompt, flags):
    from numogpt.checkpoint import load_model

    code, out = sample_command(capsys, "--checkpoint", checkpoints[name], "--prompt", prompt,
                               "--max-new-tokens", 25, "--seed", 4, *flags)
    assert code == 0 and out.err == ""
    # what streamed out, piece by piece, is the decoded whole: prompt, then continuation
    model, tok = load_model(checkpoints[name])
    temperature = float(flags[1]) if flags[:1] == ["--temperature"] else 1.0
    top_k, top_p = (5, 0.8) if "--top-k" in flags else (None, None)
    ids = generate(model, torch.tensor([tok.encode(prompt)]), 25, temperature=temperature, top_k=top_k,
                   top_p=top_p, generator=torch.Generator().manual_seed(4))
    assert out.out == tok.decode(ids[0].tolist()) + "\n"
    assert out.out.startswith(prompt)


def test_the_command_streams_one_flush_per_token(checkpoints, capsys, monkeypatch):
    flushes = []
    monkeypatch.setattr("builtins.print", lambda *a, flush=False, **kw: flushes.append(flush))
    sample_command(capsys, "--checkpoint", checkpoints["char"], "--prompt", "ab", "--max-new-tokens", 7)
    assert flushes == [True] * 8 + [False]  # the prompt, each of the 7 tokens, the final newline


def test_the_command_stops_at_end_of_text_without_printing_it(checkpoints, capsys):
    code, out = sample_command(capsys, "--checkpoint", checkpoints["eot"], "--prompt", "héllo", "--temperature", 0)
    assert code == 0 and out.out == "héllo\n"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--checkpoint", "missing.pt", "--prompt", "ab"], "no checkpoint at missing.pt"),
        (["--prompt", "xyz"], "character 'x'"),
        (["--prompt", ""], "no tokens"),
        (["--prompt", "ab", "--temperature", "-1"], "temperature"),
        (["--prompt", "ab", "--top-p", "2"], "top_p"),
        (["--prompt", "ab", "--max-new-tokens", "-3"], "max_new_tokens"),
        (["--prompt", "ab", "--top-k", "many"], "invalid int value: 'many'"),
    ],
)
def test_the_command_explains_bad_input(checkpoints, capsys, args, words):
    if "--checkpoint" not in args:
        args = ["--checkpoint", checkpoints["char"], *args]
    code, out = sample_command(capsys, *args)
    assert code == 2 and words in out.err and "Traceback" not in out.err


def test_the_command_runs_as_a_module(checkpoints):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "numogpt", "sample", "--checkpoint", str(checkpoints["char"]),
                           "--prompt", "hello", "--max-new-tokens", "10"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("hello") and len(done.stdout) == len("hello") + 10 + 1


# --- streaming text ---------------------------------------------------------------------------


class Script(torch.nn.Module):
    """A stand-in model that writes the given token ids, one per step, after any prompt."""

    def __init__(self, script, prompt_length, vocab_size):
        super().__init__()
        self.script, self.prompt_length = script, prompt_length
        self.config = GPTConfig(vocab_size=vocab_size, block_size=64, n_layer=1, n_head=1, n_embd=4)

    def forward(self, idx, targets=None, cache=None):
        step = (idx.size(1) if cache is None else len(cache) + idx.size(1)) - self.prompt_length
        logits = torch.zeros(idx.size(0), idx.size(1), self.config.vocab_size)
        logits[:, -1, self.script[step]] = 10.0
        if cache is not None:  # keep the cache's length honest: one fake layer of keys
            cache.layers[0].extend(torch.zeros(idx.size(0), 1, idx.size(1), 1), torch.zeros(idx.size(0), 1, idx.size(1), 1))
        return logits, None


def test_stream_text_holds_back_a_character_split_across_tokens():
    from numogpt.sample import stream_text
    from numogpt.tokenizer import BPETokenizer

    raw_bytes = BPETokenizer()  # no merges: one token per byte, so "é" is two tokens
    script = list("aé".encode()) + list("b€".encode())  # 61 c3 a9 62 e2 82 ac
    for use_cache in (True, False):
        model = Script(script, prompt_length=1, vocab_size=256)
        pieces = list(stream_text(model, raw_bytes, "x", len(script), temperature=0, use_cache=use_cache))
        assert pieces == ["a", "é", "b", "€"]
    # bytes that never complete a character come out at the end, as U+FFFD
    model = Script(list("a€".encode())[:3], prompt_length=1, vocab_size=256)
    assert list(stream_text(model, raw_bytes, "x", 3, temperature=0)) == ["a", "\ufffd"]


def test_the_sampler_widget_streams_into_the_page():
    from numogpt.tokenizer import CharTokenizer
    from numogpt.widgets import sampler_widget

    tok = CharTokenizer("abcdefghijklm")
    widget = sampler_widget(tiny_gpt(vocab_size=tok.vocab_size), tok, prompt="abc", max_new_tokens=12)
    prompt_box, button, page = widget.children[0], widget.children[3], widget.children[4]
    button.click()
    assert page.value.startswith("<pre") and "abc<b" in page.value and not button.disabled
    prompt_box.value = "xyz"  # not in the alphabet: the tokenizer's message, in the page
    button.click()
    assert "character &#x27;x&#x27;" in page.value


def test_show_source_shows_a_decorated_functions_own_code(capsys):
    """Lesson 06 shows eval_mode, a @contextmanager: its own file and lines, not contextlib's wrapper."""
    from numogpt.model import eval_mode
    from numogpt.viz import show_source
    show_source(eval_mode)
    lines, first = inspect.getsourcelines(inspect.unwrap(eval_mode))
    assert capsys.readouterr().out == f"# numogpt/model.py, line {first}\n" + "".join(lines).rstrip() + "\n"
    assert lines[:2] == ["@contextmanager\n", "def eval_mode(model):\n"]


# --- real words: the measure of README and lesson 05 --------------------------------------------


def test_real_word_share_counts_lower_cased_alphabetic_words_found_in_the_corpus():
    corpus = "The model learns. Attention, then an MLP!"
    assert lower_words("GPT-2's loss_rate") == ["gpt", "s", "loss", "rate"]
    assert real_word_share("THE Model learns", corpus) == 1.0
    assert real_word_share("the modle 42 learns learns", corpus) == 3 / 4  # numbers are no words; repeats count
    assert real_word_share("zzz", corpus) == 0.0
    with pytest.raises(ValueError, match="no alphabetic words"):
        real_word_share("42 + 7 !", corpus)


def test_a_short_run_of_the_default_recipe_spells_better_than_before_training(tmp_path):
    """The figure quoted in the README comes from sampled_word_share on the default run; here the
    same recipe, cut short, already writes more real words than its untrained model."""
    from numogpt.__main__ import main
    from numogpt.data import load_corpus
    from numogpt.checkpoint import load_checkpoint, load_model

    main(["train", "--max-iters", "150", "--eval-interval", "150", "--out", str(tmp_path)])
    trained, tokenizer = load_model(tmp_path / "checkpoint.pt")
    torch.manual_seed(0)
    untrained = GPT(trained.config).eval()
    corpus = load_corpus(load_checkpoint(tmp_path / "checkpoint.pt")["run"]["data"])
    text = sample_chars(trained, tokenizer, WORD_PROMPTS[0], 500, temperature=0.8,
                        generator=torch.Generator().manual_seed(0))
    assert len(text) == 500 and not text.startswith(WORD_PROMPTS[0])  # the new text only
    share = sampled_word_share(trained, tokenizer, corpus)
    assert share == sampled_word_share(trained, tokenizer, corpus)  # seeded: the same figure every time
    assert share > sampled_word_share(untrained, tokenizer, corpus) + 0.1, share

