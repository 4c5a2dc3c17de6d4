"""Lesson 04, last part: OpenAI's GPT-2 weights in our GPT, read from a Hugging Face checkpoint.

Our parameter names are GPT-2's, so loading is mostly copying tensors by name. Two things
differ: Hugging Face keeps the attention and MLP matrices in a Conv1D layout, (in, out), the
transpose of nn.Linear's, and it stores the causal mask as a buffer we do not need. Nothing
here needs `transformers`, and nothing downloads: `gpt2_in_cache` looks on disk only.

    folder = gpt2_in_cache()            # None unless GPT-2 is in your Hugging Face cache
    model = from_pretrained(folder)     # a GPT with GPT-2 small's 124M weights
"""
import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from numogpt.model import GPT, GPTConfig


def from_pretrained(path, dropout=0.0):
    """A GPT with the weights of a Hugging Face GPT-2 checkpoint directory.

    The directory holds config.json and model.safetensors (or the older pytorch_model.bin),
    e.g. what `huggingface-cli download gpt2` or `GPT2LMHeadModel.save_pretrained(dir)`
    writes. Anything that does not fit raises a ValueError naming the file.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory: give the checkpoint's directory (config.json and weights)")
    config = _read_gpt2_config(path / "config.json", dropout)
    file, state = _read_gpt2_weights(path)
    model = GPT(config)
    _load_gpt2_state(model, state, file)
    return model

@torch.no_grad()
def _load_gpt2_state(model, state, file):
    # Hugging Face names may lack the "transformer." prefix (older files); attn.bias and
    # attn.masked_bias are the causal mask kept as buffers, not learned: skip them.
    state = {k.removeprefix("transformer."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    head = state.pop("lm_head.weight", None)
    ours = {k.removeprefix("transformer."): p for k, p in model.named_parameters()}  # no lm_head: tied
    missing, extra = sorted(ours.keys() - state.keys()), sorted(state.keys() - ours.keys())
    if missing or extra:
        raise ValueError(f"{file} does not fit a GPT-2 of this config: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, p in ours.items():
        w = state[name]
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            w = w.t()  # transformers' Conv1D stores (in, out); nn.Linear wants (out, in)
        if w.shape != p.shape:
            raise ValueError(f"{file}: {name} has shape {tuple(w.shape)}, the config asks for {tuple(p.shape)}")
        p.copy_(w)
    if head is not None and not torch.equal(head.to(model.lm_head.weight.dtype), model.lm_head.weight):
        raise ValueError(f"{file}: lm_head.weight differs from wte.weight; this model needs them tied")


def _read_gpt2_config(file, dropout):
    if not file.is_file():
        raise ValueError(f"{file} not found: a GPT-2 checkpoint directory holds config.json and model.safetensors")
    try:
        hf = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{file} is not readable JSON ({e})") from None
    if not isinstance(hf, dict):
        raise ValueError(f"{file} should hold a JSON object, got {type(hf).__name__}")
    if hf.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"{file} does not describe a GPT-2 (model_type {hf['model_type']!r})")
    missing = [k for k in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd") if k not in hf]
    if missing:
        raise ValueError(f"{file} lacks {', '.join(missing)}")
    # settings our GPT has fixed; a checkpoint that changes them would give other logits
    fixed = {
        "layer_norm_epsilon": (1e-5, hf.get("layer_norm_epsilon", 1e-5)),  # nn.LayerNorm's default eps
        "activation_function": ("gelu_new", hf.get("activation_function", "gelu_new")),
        "n_inner": (4 * hf["n_embd"], hf.get("n_inner") or 4 * hf["n_embd"]),
        "scale_attn_weights": (True, hf.get("scale_attn_weights", True)),
        "scale_attn_by_inverse_layer_idx": (False, hf.get("scale_attn_by_inverse_layer_idx", False)),
        "tie_word_embeddings": (True, hf.get("tie_word_embeddings", True)),
    }
    for key, (want, got) in fixed.items():
        same = math.isclose(got, want, rel_tol=1e-6) if key == "layer_norm_epsilon" else got == want
        if not same and not (key == "activation_function" and got == "gelu_pytorch_tanh"):  # same function
            raise ValueError(f"{file}: {key} is {got!r}; this GPT supports only {want!r}")
    try:
        return GPTConfig(
            vocab_size=hf["vocab_size"], block_size=hf["n_positions"], n_layer=hf["n_layer"],
            n_head=hf["n_head"], n_embd=hf["n_embd"], dropout=dropout, gelu="tanh",  # GPT-2 was trained with it
        )
    except (TypeError, ValueError) as e:  # a size that is not a whole number, or too small
        raise ValueError(f"{file}: {e}") from None


def _read_gpt2_weights(directory):
    safetensors_file, torch_file = directory / "model.safetensors", directory / "pytorch_model.bin"
    if safetensors_file.is_file():
        file = safetensors_file
    elif torch_file.is_file():
        file = torch_file
    elif (directory / "model.safetensors.index.json").is_file():
        raise ValueError(f"{directory} holds a sharded checkpoint; only single-file checkpoints are supported")
    else:
        raise ValueError(f"{directory} holds neither model.safetensors nor pytorch_model.bin")
    try:
        if file is safetensors_file:
            state = load_file(file, device="cpu")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors and pickle raise many kinds; all mean the same to us
        raise ValueError(f"{file} cannot be read, it may be truncated or corrupt (download it again): {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{file} should hold a dict of named tensors, got {type(state).__name__}")
    return file, state


GET_GPT2 = """GPT-2 small (124M) is not in your Hugging Face cache. To get it (about 550 MB):
    pip install huggingface_hub && hf download gpt2
then run this again. numogpt never downloads it for you."""


def gpt2_in_cache(cache_dir=None):
    """The folder of OpenAI's GPT-2 small in the Hugging Face cache (`cache_dir`, by default
    the usual one), or None. Looks on disk only.

    Give it to `GPT.from_pretrained`; when it is None, print GET_GPT2 to learn how to get it.
    """
    try:
        from huggingface_hub import try_to_load_from_cache  # optional: it comes with transformers
    except ImportError:
        return None
    weights = try_to_load_from_cache("gpt2", "model.safetensors", cache_dir=cache_dir)
    return Path(weights).parent if isinstance(weights, str) else None
