"""Lesson 04: the GPT model, a stack of attention and MLP blocks between two embeddings.

Token ids go in; for every position the model returns scores (logits) for the next token:

    ids (B, T) -> token embedding + position embedding (B, T, C)
               -> n_layer x Block: x + attn(ln_1(x)), then x + mlp(ln_2(x))
               -> ln_f -> lm_head (its weight is the token embedding's) -> logits (B, T, V)

The parameter names are GPT-2's, so `numogpt.pretrained.from_pretrained` loads OpenAI's weights
from a Hugging Face checkpoint without `transformers`.

    >>> import torch
    >>> config = GPTConfig.preset("nano", vocab_size=65)
    >>> model = GPT(config)
    >>> idx = torch.randint(0, 65, (2, 8))                      # (B, T)
    >>> logits, loss = model(idx, targets=idx)
    >>> logits.shape                                             # (B, T, V)
    torch.Size([2, 8, 65])
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from numogpt.attention import CausalSelfAttention, require_heads
from numogpt.data import IGNORE_INDEX
from numogpt.tools.arguments import require_int, require_number, token_ids

# Sizes by name. Every preset uses GPT-2's vocabulary unless you override vocab_size (a
# character tokenizer needs ~65). From small to large:
PRESETS = {
    "nano": dict(n_layer=2, n_head=2, n_embd=32, block_size=64),  # tests and quick demos
    "gpt-numo": dict(n_layer=4, n_head=4, n_embd=64, block_size=128),  # the course's own model
    "micro": dict(n_layer=4, n_head=4, n_embd=128, block_size=128),  # nanoGPT's CPU "baby GPT" width
    "play": dict(n_layer=4, n_head=4, n_embd=256, block_size=128),  # Shakespeare in three minutes on a laptop CPU
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
    n_layer: int  # how many blocks are stacked; 0 leaves a bigram model (each position sees only its own token)
    n_head: int  # attention heads per block; each gets n_embd // n_head dims
    n_embd: int  # the width C of every position's vector
    dropout: float = 0.0  # training only: 0.0 for short runs and tiny models; raise it (0.1-0.2) when a long run overfits
    bias: bool = True  # biases in the Linear layers and LayerNorms, as in GPT-2
    gelu: str = "exact"  # the MLP's GELU: "exact" (cheaper on a CPU) or "tanh" (GPT-2's approximation)

    def __post_init__(self):
        require_int("vocab_size", self.vocab_size)
        require_int("block_size", self.block_size)
        require_int("n_layer", self.n_layer, least=0)
        require_heads(self.n_embd, self.n_head)
        require_number("dropout", self.dropout, least=0, below=1)
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

    block_class = Block  # what the stack is made of; lesson 04's notebook builds it from the learner's Block
    config_class = GPTConfig  # what a checkpoint's model_config rebuilds (numogpt.checkpoint.load_model)

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
                h=nn.ModuleList(self.block_class(config) for _ in range(config.n_layer)),
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

        targets (B, T): the next token at every position; IGNORE_INDEX (-100) marks positions to skip.
        cache: None, or a KV cache (`.layers`, one per block, and `len(cache)` = positions
        already seen); idx then holds only the new tokens, which sit at positions
        len(cache), len(cache) + 1, ...
        """
        past = 0 if cache is None else len(cache)
        self._validate_input(idx, targets, cache, past)
        T = idx.size(1)
        tok = self.transformer.wte(idx)  # (B, T, C)
        pos = self.transformer.wpe.weight[past : past + T]  # (T, C), broadcast over the batch
        x = self.transformer.drop(tok + pos)  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache=None if cache is None else cache.layers[i])
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss

    def _validate_input(self, idx, targets, cache, past):
        token_ids("idx", idx, self.config.vocab_size, tensor=True)
        if idx.dim() != 2 or idx.numel() == 0:
            raise ValueError(f"idx must have shape (B, T) with B, T >= 1, got {tuple(idx.shape)}; add a batch dim with idx[None]")
        T = idx.size(1)
        if past + T > self.config.block_size:
            held = f" ({past} cached + {T} new)" if cache is not None else ""
            raise ValueError(
                f"input of {past + T} tokens{held} is longer than block_size {self.config.block_size}: "
                f"crop the context to its last {self.config.block_size} tokens"
            )
        if targets is not None:
            token_ids("targets", targets, self.config.vocab_size, skip=IGNORE_INDEX, tensor=True)
            if targets.shape != idx.shape:
                raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got {tuple(targets.shape)}")
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


@contextmanager
def eval_mode(model):
    """Run the block in eval mode (no dropout), then give the model back in its own mode,
    even if the block fails.

    Switching walks every submodule, which costs as much as a cached sampling step: skip it
    when the model is in eval mode already, as a loaded model is.
    """
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()
