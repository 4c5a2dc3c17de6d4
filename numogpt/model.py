"""Lesson 04: the GPT model, a stack of attention and MLP blocks between two embeddings.

Token ids go in; for every position the model returns scores (logits) for the next token:

    ids (B, T) -> token embedding + position embedding (B, T, C)
               -> n_layer x Block: x + attn(ln_1(x)), then x + mlp(ln_2(x))
               -> ln_f -> lm_head (its weight is the token embedding's) -> logits (B, T, V)

The parameter names are GPT-2's, so `GPT.from_pretrained` loads OpenAI's weights from a
Hugging Face checkpoint without `transformers`.

    >>> import torch
    >>> config = GPTConfig.preset("nano", vocab_size=65)
    >>> model = GPT(config)
    >>> idx = torch.randint(0, 65, (2, 8))                      # (B, T)
    >>> logits, loss = model(idx, targets=idx)
    >>> logits.shape                                             # (B, T, V)
    torch.Size([2, 8, 65])
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file
from torch.nn import functional as F

from numogpt.attention import CausalSelfAttention
from numogpt.checks import check_int

# Sizes by name. Every preset uses GPT-2's vocabulary unless you override vocab_size (a
# character tokenizer needs ~65). From small to large:
PRESETS = {
    "nano": dict(n_layer=2, n_head=2, n_embd=32, block_size=64),  # tests and quick demos
    "gpt-numo": dict(n_layer=4, n_head=4, n_embd=64, block_size=128),  # the course's own model
    "micro": dict(n_layer=4, n_head=4, n_embd=128, block_size=128),  # nanoGPT's CPU "baby GPT" width
    "mini": dict(n_layer=6, n_head=6, n_embd=384, block_size=256),  # nanoGPT's Shakespeare model
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024),  # GPT-2 small, 124M parameters
}
GPT2_VOCAB_SIZE = 50257  # 50,000 merges + 256 bytes + <|endoftext|>


@dataclass
class GPTConfig:
    """The sizes that fix a GPT's shape.

    >>> GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128).n_embd // 4
    32
    """

    vocab_size: int  # how many different token ids there are
    block_size: int  # the longest input (context) the model can read: positions 0..block_size-1
    n_layer: int  # how many blocks are stacked
    n_head: int  # attention heads per block; each gets n_embd // n_head dims
    n_embd: int  # the width C of every position's vector
    dropout: float = 0.0  # training only: 0.0 for short runs and tiny models; raise it (0.1-0.2) when a long run overfits
    bias: bool = True  # biases in the Linear layers and LayerNorms, as in GPT-2
    gelu: str = "exact"  # the MLP's GELU: "exact" (cheaper on a CPU) or "tanh" (GPT-2's approximation)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head}): "
                f"each head gets n_embd // n_head dims"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be True or False, got {self.bias!r}")
        if self.gelu not in ("exact", "tanh"):
            raise ValueError(f"gelu must be 'exact' or 'tanh' (GPT-2's weights need 'tanh'), got {self.gelu!r}")

    @classmethod
    def preset(cls, name, **overrides):
        """A config by name, e.g. `GPTConfig.preset("gpt-numo", vocab_size=65)`. See PRESETS."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{"vocab_size": GPT2_VOCAB_SIZE, **PRESETS[name], **overrides})


class MLP(nn.Module):
    """Per position: widen to 4C, bend with GELU, project back to C. No mixing across positions."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # "exact" computes x * Phi(x) with erf; "tanh" is GPT-2's approximation ("gelu_new")
        self.gelu = nn.GELU(approximate="none" if config.gelu == "exact" else "tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One transformer block, pre-norm: tokens talk (attention), then each thinks alone (MLP).

    Each half adds to the residual stream x instead of replacing it, so the gradient has a
    straight path from the loss to the first layer, and normalising only the input of each
    half (pre-norm, as GPT-2) leaves that path untouched.
    """

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config.n_embd, config.n_head, config.dropout, config.bias)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None):  # (B, T, C) -> (B, T, C)
        x = x + self.attn(self.ln_1(x), cache=cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT-2 style language model. `model.config` holds its GPTConfig."""

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT wants a GPTConfig, got {type(config).__name__}; try GPTConfig.preset('gpt-numo')")
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token id -> vector
                wpe=nn.Embedding(config.block_size, config.n_embd),  # position -> vector
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: reading a token in (wte) and scoring it as the next token (lm_head) use
        # one matrix. Similar tokens get similar vectors either way, and it saves V * C parameters.
        self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        # Every block adds two outputs (attention's and the MLP's c_proj) to the residual
        # stream; scaling them by 1/sqrt(2 * n_layer) keeps the stream's variance from
        # growing with depth (GPT-2 paper, section 2.3).
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        # GPT-2's recipe: small normal weights, zero biases (LayerNorms keep ones and zeros)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None, cache=None):
        """idx (B, T) token ids -> (logits (B, T, vocab_size), loss or None).

        targets (B, T): the next token at every position; -100 marks positions to ignore.
        cache: None, or a KV cache (`.layers`, one per block, and `len(cache)` = positions
        already seen); idx then holds only the new tokens, which sit at positions
        len(cache), len(cache) + 1, ...
        """
        past = 0 if cache is None else len(cache)
        self._check_input(idx, targets, cache, past)
        T = idx.size(1)
        tok = self.transformer.wte(idx)  # (B, T, C)
        pos = self.transformer.wpe.weight[past : past + T]  # (T, C), broadcast over the batch
        x = self.transformer.drop(tok + pos)  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache=None if cache is None else cache.layers[i])
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def _check_input(self, idx, targets, cache, past):
        # cheap checks (one min/max each) so that bad ids fail here, in words, not deep in torch
        if not isinstance(idx, torch.Tensor) or idx.dtype.is_floating_point or idx.dtype == torch.bool:
            kind = idx.dtype if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise TypeError(f"idx must be a tensor of integer token ids, got {kind}; try torch.tensor(ids)")
        if idx.dim() != 2 or idx.numel() == 0:
            raise ValueError(f"idx must have shape (B, T) with B, T >= 1, got {tuple(idx.shape)}; add a batch dim with idx[None]")
        V, T = self.config.vocab_size, idx.size(1)
        if past + T > self.config.block_size:
            held = f" ({past} cached + {T} new)" if cache is not None else ""
            raise ValueError(
                f"input of {past + T} tokens{held} is longer than block_size {self.config.block_size}: "
                f"crop the context to its last {self.config.block_size} tokens"
            )
        lo, hi = torch.aminmax(idx)
        if lo < 0 or hi >= V:
            bad = int(lo) if lo < 0 else int(hi)
            raise ValueError(f"token id {bad} is outside the vocabulary 0..{V - 1}; was the text encoded by another tokenizer?")
        if targets is not None:
            if not isinstance(targets, torch.Tensor) or targets.dtype.is_floating_point or targets.dtype == torch.bool:
                kind = targets.dtype if isinstance(targets, torch.Tensor) else type(targets).__name__
                raise TypeError(f"targets must be a tensor of integer token ids (or -100 to skip a position), "
                                f"got {kind}; try torch.tensor(ids)")
            if targets.shape != idx.shape:
                raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got {tuple(targets.shape)}")
            bad = targets[((targets < 0) | (targets >= V)) & (targets != -100)]
            if bad.numel():
                raise ValueError(f"target id {int(bad[0])} is outside the vocabulary 0..{V - 1} "
                                 f"(-100 is the only other value allowed: it marks a position to skip)")
        if cache is not None and len(cache.layers) != self.config.n_layer:
            raise ValueError(f"the cache has {len(cache.layers)} layers but the model has {self.config.n_layer}")

    def parameter_counts(self):
        """Parameters by part, e.g. {'token embedding': ..., 'attention': ..., ...}.

        The LM head is not listed: it shares the token embedding's matrix.
        """
        parts = {"token embedding": 0, "position embedding": 0, "attention": 0, "MLP": 0, "layer norms": 0}
        for name, p in self.named_parameters():  # each tied tensor appears once
            if ".attn." in name:
                parts["attention"] += p.numel()
            elif ".mlp." in name:
                parts["MLP"] += p.numel()
            elif "wte" in name:
                parts["token embedding"] += p.numel()
            elif "wpe" in name:
                parts["position embedding"] += p.numel()
            else:  # ln_1, ln_2 and ln_f
                parts["layer norms"] += p.numel()
        return parts

    def num_params(self):
        """How many numbers the model learns (the tied head counted once).

        >>> with torch.device("meta"):  # shapes only: no memory, no init time
        ...     GPT(GPTConfig.preset("gpt2")).num_params()
        124439808
        """
        return sum(self.parameter_counts().values())

    @classmethod
    def from_pretrained(cls, path, dropout=0.0):
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
        model = cls(config)
        model._load_gpt2_state(state, file)
        return model

    @torch.no_grad()
    def _load_gpt2_state(self, state, file):
        # Hugging Face names may lack the "transformer." prefix (older files); attn.bias and
        # attn.masked_bias are the causal mask kept as buffers, not learned: skip them.
        state = {k.removeprefix("transformer."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
        head = state.pop("lm_head.weight", None)
        ours = {k.removeprefix("transformer."): p for k, p in self.named_parameters()}  # no lm_head: tied
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
        if head is not None and not torch.equal(head.to(self.lm_head.weight.dtype), self.lm_head.weight):
            raise ValueError(f"{file}: lm_head.weight differs from wte.weight; this model needs them tied")


# --- reading a Hugging Face GPT-2 checkpoint (no transformers needed) ---------------------


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
