"""Lesson 04: the GPT model, checked against transformers' GPT-2 (the reference) and by its properties."""
import json
import math

import pytest
import torch

from numogpt.model import GPT, MLP, GPTConfig, PRESETS
from numogpt.pretrained import from_pretrained
from tests.test_attention import ListCache

transformers = pytest.importorskip("transformers")
transformers.utils.logging.set_verbosity_error()  # small vocabularies cannot hold GPT-2's eos id 50256; it warns


# --- the reference: transformers' GPT2LMHeadModel ------------------------------------------


def hf_gpt2(n_layer, n_head, n_embd, vocab_size, n_positions, seed=0):
    """transformers' GPT-2 of this shape with random weights, dropout off.

    Its own init (std 0.02, zero biases, unit LayerNorms) keeps every activation so small that
    a wrong GELU or a wrong attention scale would hide under 1e-5; so every tensor is drawn
    again at the scale of a trained model: activations of order 1, biases and LayerNorms random.
    """
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size, n_positions=n_positions,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("wte.weight", "wpe.weight")):  # logits of order 1 too: wte is the head
                p.normal_(0.0, 2.0 / n_embd**0.5)
            elif p.dim() == 2:  # Conv1D weights are (in, out)
                p.normal_(0.0, 1.0 / p.size(0) ** 0.5)
            elif ".ln_" in name and name.endswith("weight"):
                p.normal_(1.0, 0.2)
            else:  # biases
                p.normal_(0.0, 0.2)
    return model


def save_as_pytorch_bin(hf_model, directory):
    """The older layout of the Hub's gpt2: pytorch_model.bin, no "transformer." prefix, the causal
    mask kept as attn.bias / attn.masked_bias buffers. (transformers 5 only writes safetensors.)"""
    hf_model.config.save_pretrained(directory)
    state = {k.removeprefix("transformer."): v.clone() for k, v in hf_model.state_dict().items()}
    n = hf_model.config.n_positions
    for i in range(hf_model.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n, dtype=torch.bool)).view(1, 1, n, n)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, directory / "pytorch_model.bin")


SHAPES = [  # (n_layer, n_head, n_embd, vocab_size, n_positions): odd on purpose
    (1, 1, 12, 17, 9),
    (2, 3, 12, 101, 33),
    (3, 3, 48, 17, 33),
    (2, 1, 48, 101, 9),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "L{}-H{}-C{}-V{}-T{}".format(*s))
@pytest.mark.parametrize("layout", ["safetensors", "pytorch_model.bin"])
def test_from_pretrained_gives_the_logits_of_transformers(tmp_path, shape, layout):
    reference = hf_gpt2(*shape)
    if layout == "safetensors":
        reference.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").is_file()
    else:
        save_as_pytorch_bin(reference, tmp_path)
    model = from_pretrained(tmp_path).eval()
    n_layer, n_head, n_embd, vocab_size, n_positions = shape
    assert model.config == GPTConfig(vocab_size, n_positions, n_layer, n_head, n_embd, gelu="tanh")
    idx = torch.randint(0, vocab_size, (3, n_positions), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(input_ids=idx).logits
        logits, _ = model(idx)
        short, _ = model(idx[:, :5])  # shorter than the context
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(short, expected[:, :5], atol=1e-5, rtol=0)


def test_a_gpt2_checkpoint_loads_with_the_tanh_gelu_it_was_trained_with(tmp_path):
    hf_gpt2(*SHAPES[1]).save_pretrained(tmp_path)
    model = from_pretrained(tmp_path)
    assert model.config.gelu == "tanh"
    assert [block.mlp.gelu.approximate for block in model.transformer.h] == ["tanh"] * SHAPES[1][0]
    assert GPTConfig.preset("gpt-numo").gelu == "exact"  # the course's own models train with the exact one


@pytest.mark.parametrize("gelu, approximate", [("exact", "none"), ("tanh", "tanh")])
def test_the_gelu_field_picks_the_mlp_activation(gelu, approximate):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=17, block_size=8, n_layer=1, n_head=1, n_embd=12, gelu=gelu)
    mlp = MLP(config)
    x = 3 * torch.randn(2, 5, 12)  # wide enough that the two GELUs differ
    with torch.no_grad():
        expected = mlp.c_proj(torch.nn.functional.gelu(mlp.c_fc(x), approximate=approximate))
        torch.testing.assert_close(mlp(x), expected, atol=0, rtol=0)


def test_exact_and_tanh_gelu_give_different_logits_from_the_same_weights():
    exact, tanh = small_model(gelu="exact"), small_model(gelu="tanh")
    with torch.no_grad():
        for p in exact.parameters():  # activations of order 1, so the GELUs' difference shows
            p.normal_(0.0, 0.5)
    tanh.load_state_dict(exact.state_dict())
    idx = torch.randint(0, 37, (2, 16))
    with torch.no_grad():
        assert (exact(idx)[0] - tanh(idx)[0]).abs().max() > 1e-4


def test_config_rejects_an_unknown_gelu():
    with pytest.raises(ValueError, match=r"gelu must be 'exact' or 'tanh'.*got 'erf'"):
        GPTConfig(vocab_size=65, block_size=8, n_layer=2, n_head=4, n_embd=32, gelu="erf")


def test_parameter_count_matches_transformers_and_the_formula():
    n_layer, n_head, C, V, T = 3, 3, 48, 101, 33
    model = GPT(GPTConfig(V, T, n_layer, n_head, C))
    reference = hf_gpt2(n_layer, n_head, C, V, T)
    assert model.num_params() == sum(p.numel() for p in reference.parameters())  # tied head counted once
    per_block = 12 * C * C + 13 * C  # qkv 3C^2+3C, proj C^2+C, MLP 8C^2+5C, two LayerNorms 4C
    assert model.num_params() == V * C + T * C + n_layer * per_block + 2 * C
    parts = model.parameter_counts()
    assert parts["attention"] == n_layer * (4 * C * C + 4 * C)
    assert parts["MLP"] == n_layer * (8 * C * C + 5 * C)
    assert parts["layer norms"] == (2 * n_layer + 1) * 2 * C
    assert (parts["token embedding"], parts["position embedding"]) == (V * C, T * C)


def test_gpt2_preset_is_the_124m_model():
    config = GPTConfig.preset("gpt2")
    assert (config.n_layer, config.n_head, config.n_embd, config.block_size, config.vocab_size) == (12, 12, 768, 1024, 50257)
    with torch.device("meta"):  # shapes only: no memory, no init time
        assert GPT(config).num_params() == 124_439_808


def test_presets_grow_and_take_overrides():
    names = ["nano", "gpt-numo", "micro", "play", "mini", "gpt2"]
    assert list(PRESETS) == names
    sizes = []
    for name in names:
        with torch.device("meta"):
            sizes.append(GPT(GPTConfig.preset(name)).num_params())
    assert sizes == sorted(sizes)
    numo = GPTConfig.preset("gpt-numo", vocab_size=65, dropout=0.1)
    assert (numo.n_layer, numo.n_head, numo.n_embd, numo.vocab_size, numo.dropout) == (4, 4, 64, 65, 0.1)
    with pytest.raises(ValueError, match="unknown preset 'gpt-3'.*nano, gpt-numo, micro, play, mini, gpt2"):
        GPTConfig.preset("gpt-3")


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(n_embd=30), r"n_embd \(30\) must be a multiple of n_head \(4\)"),
        (dict(n_layer=-1), "n_layer must be 0 or more, got -1"),
        (dict(n_head=0), "n_head must be 1 or more, got 0"),
        (dict(dropout=1.0), r"dropout must be a number >= 0 and < 1, got 1.0"),
        (dict(bias="yes"), "bias must be True or False"),
    ],
)
def test_config_rejects_bad_sizes(bad, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**dict(vocab_size=65, block_size=8, n_layer=2, n_head=4, n_embd=32), **bad})


def test_a_gpt_without_blocks_is_a_bigram_model():
    """n_layer=0: embeddings, the final LayerNorm and the head; a position's logits depend on its own token only."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=0, n_head=1, n_embd=16))
    logits, _ = model(torch.tensor([[3, 5, 7], [9, 9, 7]]))  # (2, 3, V)
    wte, wpe = model.transformer.wte.weight, model.transformer.wpe.weight
    by_hand = model.transformer.ln_f(wte[7] + wpe[2]) @ wte.T  # the tied head
    assert torch.allclose(logits[0, 2], by_hand, atol=1e-6)
    assert torch.allclose(logits[0, 2], logits[1, 2])  # different tokens before it change nothing


def test_config_rejects_a_size_that_is_not_a_whole_number():
    with pytest.raises(TypeError, match="vocab_size must be an int, got 65.0"):
        GPTConfig(vocab_size=65.0, block_size=8, n_layer=2, n_head=4, n_embd=32)


# --- the model's own properties ------------------------------------------------------------


def small_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**dict(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=24), **overrides})).eval()


def test_shapes_and_loss_at_init_is_about_ln_vocab():
    model = small_model(vocab_size=1000)
    idx = torch.randint(0, 1000, (4, 16))
    logits, loss = model(idx, targets=idx)
    assert logits.shape == (4, 16, 1000)
    assert loss.shape == ()
    assert abs(loss.item() - math.log(1000)) < 0.3  # near-uniform guesses at init
    assert model(idx)[1] is None


def test_loss_ignores_minus_100():
    model = small_model()
    idx = torch.randint(0, 37, (3, 10))
    targets = torch.randint(0, 37, (3, 10))
    targets[0, :4] = -100
    targets[2, 7:] = -100
    logits, loss = model(idx, targets=targets)
    keep = targets != -100
    manual = -torch.log_softmax(logits[keep], dim=-1).gather(1, targets[keep][:, None]).mean()
    torch.testing.assert_close(loss, manual)


def test_head_is_tied_to_the_token_embedding():
    model = small_model(bias=False)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert all(p.ndim == 2 or "ln" in n for n, p in model.named_parameters())  # bias=False: only LayerNorm weights are 1-D


def test_residual_projections_start_smaller():
    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=8, n_head=4, n_embd=256))
    scaled = model.transformer.h[0].mlp.c_proj.weight.std().item()
    plain = model.transformer.h[0].mlp.c_fc.weight.std().item()
    assert plain == pytest.approx(0.02, rel=0.05)
    assert scaled == pytest.approx(0.02 / math.sqrt(2 * 8), rel=0.05)


def test_future_tokens_do_not_change_past_logits():
    model = small_model()
    idx = torch.randint(0, 37, (2, 12))
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 37
    with torch.no_grad():
        a, _ = model(idx)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


class SimpleCache:
    """The KV-cache hook as lesson 06 uses it: one ListCache per layer, len = positions held."""

    def __init__(self, n_layer):
        self.layers = [ListCache() for _ in range(n_layer)]

    def __len__(self):
        return 0 if self.layers[0].k is None else self.layers[0].k.size(2)


def test_cached_forward_matches_the_full_forward():
    model = small_model()
    idx = torch.randint(0, 37, (2, 16))
    with torch.no_grad():
        full, _ = model(idx)
        cache = SimpleCache(model.config.n_layer)
        first, _ = model(idx[:, :5], cache=cache)  # a prompt of 5 at once
        steps = [model(idx[:, t : t + 1], cache=cache)[0] for t in range(5, 13)]  # then one at a time
        rest, _ = model(idx[:, 13:], cache=cache)  # and 3 at once after a cache
    torch.testing.assert_close(torch.cat([first, *steps, rest], dim=1), full, atol=1e-5, rtol=1e-5)
    assert len(cache) == 16
    with pytest.raises(ValueError, match=r"17 tokens \(16 cached \+ 1 new\).*block_size 16.*crop"):
        model(idx[:, :1], cache=cache)


# --- bad input -----------------------------------------------------------------------------


def test_input_longer_than_block_size():
    model = small_model()
    with pytest.raises(ValueError, match="input of 17 tokens is longer than block_size 16: crop the context"):
        model(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize(
    "idx, error, message",
    [
        (torch.zeros(1, 4), TypeError, "integer token ids, got torch.float32"),
        ([[1, 2, 3]], TypeError, "integer token ids, got list"),
        (torch.zeros(4, dtype=torch.long), ValueError, r"shape \(B, T\).*got \(4,\).*idx\[None\]"),
        (torch.zeros(2, 0, dtype=torch.long), ValueError, r"got \(2, 0\)"),
        (torch.zeros(0, 3, dtype=torch.long), ValueError, r"B, T >= 1, got \(0, 3\)"),
        (torch.tensor([[1, 37, 2]]), ValueError, r"token id 37 is outside the vocabulary 0..36"),
        (torch.tensor([[1, -1, 2]]), ValueError, r"token id -1 is outside the vocabulary"),
    ],
)
def test_bad_input_gets_a_clear_error(idx, error, message):
    with pytest.raises(error, match=message):
        small_model()(idx)


def test_bad_targets_and_cache():
    model = small_model()
    idx = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"targets must have the shape of idx \(2, 4\), got \(2, 3\)"):
        model(idx, targets=idx[:, :3])
    with pytest.raises(ValueError, match="targets: token id 40 is outside"):
        model(idx, targets=torch.full((2, 4), 40))
    with pytest.raises(ValueError, match="targets: token id -1 is outside the vocabulary 0..36"):
        model(idx, targets=torch.tensor([[-100, 3, -1, 2], [0, 0, 0, 0]]))
    with pytest.raises(TypeError, match="targets must be a tensor of integer token ids.*got torch.float32"):
        model(idx, targets=torch.zeros(2, 4))
    with pytest.raises(TypeError, match="got list"):
        model(idx, targets=[[0, 1, 2, 3], [0, 1, 2, 3]])
    # -100 marks positions to skip: F.cross_entropy's ignore_index
    targets = torch.tensor([[-100, 3, 36, 2], [0, -100, 0, 0]])
    logits, loss = model(idx, targets=targets)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()).item())
    with pytest.raises(ValueError, match="the cache has 3 layers but the model has 2"):
        model(idx, cache=SimpleCache(3))
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT(dict(vocab_size=5))


# --- checkpoints that do not fit -----------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    hf_gpt2(1, 1, 12, 17, 9).save_pretrained(tmp_path)
    return tmp_path


def test_missing_files(tmp_path, checkpoint):
    with pytest.raises(ValueError, match=r"nowhere is not a directory"):
        from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"model.safetensors is not a directory"):
        from_pretrained(checkpoint / "model.safetensors")
    (checkpoint / "config.json").rename(checkpoint / "config.old")
    with pytest.raises(ValueError, match=r"config.json not found"):
        from_pretrained(checkpoint)
    (checkpoint / "config.old").rename(checkpoint / "config.json")
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="neither model.safetensors nor pytorch_model.bin"):
        from_pretrained(checkpoint)


def test_truncated_and_corrupt_weights(checkpoint):
    file = checkpoint / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model.safetensors cannot be read, it may be truncated or corrupt"):
        from_pretrained(checkpoint)
    file.unlink()
    (checkpoint / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"pytorch_model.bin cannot be read"):
        from_pretrained(checkpoint)


def edit_config(directory, **changes):
    file = directory / "config.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), **changes}))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(n_embd=24), r"model.safetensors: wte.weight has shape \(17, 12\), the config asks for \(17, 24\)"),
        (dict(vocab_size=18), r"model.safetensors: wte.weight has shape \(17, 12\), the config asks for \(18, 12\)"),
        (dict(n_layer=2), r"model.safetensors does not fit .*missing \['h.1.attn.c_attn.bias'"),
        (dict(layer_norm_epsilon=1e-6), r"config.json: layer_norm_epsilon is 1e-06; this GPT supports only 1e-05"),
        (dict(activation_function="relu"), r"config.json: activation_function is 'relu'"),
        (dict(model_type="llama"), r"config.json does not describe a GPT-2"),
        (dict(n_head=5), r"config.json: n_embd \(12\) must be a multiple of n_head \(5\)"),
    ],
)
def test_config_that_does_not_fit_the_weights(checkpoint, changes, message):
    edit_config(checkpoint, **changes)
    with pytest.raises(ValueError, match=message):
        from_pretrained(checkpoint)


def test_missing_and_extra_tensors(checkpoint):
    from safetensors.torch import load_file, save_file

    file = checkpoint / "model.safetensors"
    state = load_file(file)
    del state["transformer.ln_f.bias"]
    state["transformer.h.0.attn.q_attn.weight"] = torch.zeros(12, 12)
    save_file(state, file)
    with pytest.raises(ValueError, match=r"model.safetensors does not fit .*missing \['ln_f.bias'\], unexpected \['h.0.attn.q_attn.weight'\]"):
        from_pretrained(checkpoint)


def test_an_untied_head_is_refused(checkpoint):
    from safetensors.torch import load_file, save_file

    file = checkpoint / "model.safetensors"
    state = load_file(file)
    save_file({**state, "lm_head.weight": state["transformer.wte.weight"].clone()}, file)
    from_pretrained(checkpoint)  # a stored copy of the tied matrix is fine
    save_file({**state, "lm_head.weight": torch.randn(17, 12)}, file)
    with pytest.raises(ValueError, match="lm_head.weight differs from wte.weight"):
        from_pretrained(checkpoint)


def test_config_json_broken(checkpoint):
    (checkpoint / "config.json").write_text("{ not json")
    with pytest.raises(ValueError, match="config.json is not readable JSON"):
        from_pretrained(checkpoint)
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1}))
    with pytest.raises(ValueError, match="config.json lacks vocab_size, n_positions, n_head, n_embd"):
        from_pretrained(checkpoint)


def test_gpt2_in_cache_finds_a_snapshot_and_says_none_otherwise(tmp_path):
    from numogpt.pretrained import gpt2_in_cache

    assert gpt2_in_cache(tmp_path) is None
    # the layout huggingface_hub writes: refs/main names the snapshot that holds the files
    repo = tmp_path / "models--gpt2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"")
    assert gpt2_in_cache(tmp_path) == snapshot


def test_value_checks_are_skipped_off_the_cpu_so_a_gpu_step_never_waits_for_them():
    # On the meta device tensors have shapes but no values: reading one back (as a min/max check
    # would, forcing a sync on a GPU) raises. The forward pass must not try.
    config = GPTConfig.preset("nano", vocab_size=37)
    with torch.device("meta"):
        model = GPT(config)
        idx = torch.empty(2, 8, dtype=torch.long)
        logits, loss = model(idx, targets=idx)
    assert logits.shape == (2, 8, 37) and loss.shape == ()
    with pytest.raises(TypeError, match="integer token ids"):  # types and shapes are still checked
        model(torch.empty(2, 8, device="meta"))


def test_the_model_and_generate_take_the_same_token_dtypes():
    from numogpt.sample import generate

    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("nano", vocab_size=37)).eval()
    for dtype in (torch.long, torch.int):
        prompt = torch.tensor([[1, 2, 3]], dtype=dtype)
        model(prompt)
        assert generate(model, prompt, 2, temperature=0).shape == (1, 5)
    for dtype in (torch.int16, torch.uint8):
        prompt = torch.tensor([[1, 2, 3]], dtype=dtype)
        with pytest.raises(TypeError, match="integer token ids"):
            model(prompt)
        with pytest.raises(TypeError, match="integer token ids"):
            generate(model, prompt, 2)
