"""Lesson 06: sampling, turning a trained GPT into a text generator.

The model gives, for the next position, one score (a logit) per token in the vocabulary.
Generation repeats three steps: turn the last position's logits into a distribution
(temperature, then top-k and top-p filters, then softmax), pick a token from it (argmax
when the temperature is 0, a random draw otherwise), append it and ask again.

Asking again naively recomputes every earlier position, though their keys and values never
change: a KV cache keeps them, so each step runs the model on the one new token only.
`stream` yields the new tokens one step at a time and `stream_text` the new text, for
showing it as it comes.

    >>> import torch
    >>> from numogpt.model import GPT, GPTConfig
    >>> _ = torch.manual_seed(0)
    >>> model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=16))
    >>> prompt = torch.tensor([[1, 2, 3]])                       # (B, T): add a batch dim
    >>> out = generate(model, prompt, max_new_tokens=4, temperature=0)
    >>> out.shape                                                # (B, T + new)
    torch.Size([1, 7])
    >>> torch.equal(out, generate(model, prompt, 4, temperature=0, use_cache=False))
    True
"""
import regex
import torch
import torch.nn.functional as F

from numogpt.model import eval_mode
from numogpt.tools.arguments import require_int, require_number, token_ids


# --- the KV cache -------------------------------------------------------------------------


class LayerCache:
    """The keys and values one attention layer has seen so far, (B, H, T_cached, D) each."""

    def __init__(self):
        self.k = self.v = None

    def extend(self, k, v):
        """Append this step's keys and values (B, H, T, D); return all of them (B, H, T_total, D)."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            # a cat copies the past each step; preallocating would avoid that, but at a 256-token
            # context the copies take about 5% of a cached step (profiled), so we keep it simple
            self.k = torch.cat([self.k, k], dim=2)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def __len__(self):
        return 0 if self.k is None else self.k.size(2)


class KVCache:
    """One LayerCache per block of the GPT; len(cache) is the number of positions cached.

    The model hands `cache.layers[i]` to block i and numbers the new positions from
    len(cache), so the cache must hold the sequence from its first token (position 0).

    >>> cache = KVCache(n_layer=2)
    >>> k = v = torch.zeros(1, 4, 3, 8)                    # (B, H, T, D)
    >>> _ = cache.layers[0].extend(k, v); _ = cache.layers[1].extend(k, v)
    >>> len(cache)
    3
    """

    def __init__(self, n_layer):
        self.layers = [LayerCache() for _ in range(n_layer)]

    def __len__(self):
        return len(self.layers[0]) if self.layers else 0

    def reset(self):
        """Forget everything, e.g. when the sequence is no longer the one cached."""
        self.layers = [LayerCache() for _ in self.layers]


# --- from logits to the next token --------------------------------------------------------


def apply_temperature(logits, temperature):
    """Divide the logits by the temperature (> 0): below 1 sharpens the distribution, above 1 flattens it.

    >>> apply_temperature(torch.tensor([2.0, 1.0]), 0.5)
    tensor([4., 2.])
    """
    return logits / temperature


def top_k_filter(logits, k):
    """Keep the k largest logits of each row (..., V); set the others to -inf (probability 0).

    Ties at the k-th largest value are all kept, so a row keeps more than k tokens only when
    several share that value: which of them to drop would be arbitrary. k >= V keeps all.

    >>> top_k_filter(torch.tensor([1.0, 3.0, 2.0, 0.0]), 2)
    tensor([-inf, 3., 2., -inf])
    """
    k = min(k, logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits, p):
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches p.

    Sort the tokens from most to least likely and keep each one while the probability of the
    tokens BEFORE it is still below p: so the top token is always kept, and the last kept
    token is the one that brings the total to p or beyond. p = 1 keeps every token.

    >>> top_p_filter(torch.log(torch.tensor([0.5, 0.1, 0.3, 0.1])), 0.7)
    tensor([-0.6931,    -inf, -1.2040,    -inf])
    """
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    sorted_probs = F.softmax(sorted_logits, dim=-1)
    before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # probability of the tokens ahead of each
    keep_sorted = before < p  # (..., V), always True for the top token
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)  # back to vocabulary order
    return logits.masked_fill(~keep, float("-inf"))


def pick_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Choose the next token of each row from its logits (B, V); returns (B, 1).

    Temperature 0 means greedy: the argmax, no randomness (top-k and top-p cannot change it).
    Otherwise: temperature, top-k, top-p, softmax, then one draw per row from `generator`.
    """
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    # shift each row so that its largest logit is 0 (softmax does not change): a tiny temperature
    # then sends the others to -inf, instead of every logit to +-inf and the softmax to NaN
    logits = apply_temperature(logits - logits.amax(dim=-1, keepdim=True), temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = F.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


# --- the generation loop ------------------------------------------------------------------


def next_logits(model, idx, cache=None):
    """The model's logits (B, V) for the token after idx (B, T), reusing `cache` while it is valid.

    The cache holds keys and values at absolute positions from 0. While the whole sequence fits
    the context (T <= block_size) and the cache holds all but the newest token, only that token
    runs through the model. Once the sequence is longer than the context, the model sees the
    last block_size tokens at positions 0..block_size-1: every token has moved one position
    since the last step, so every cached key and value is stale. Then, exactly like plain
    generation, the whole window is recomputed (no cache): past block_size the cache saves
    nothing, but the tokens stay the same as without it.
    """
    block_size = model.config.block_size
    if cache is not None and idx.size(1) <= block_size:
        if len(cache) == idx.size(1) - 1:
            idx = idx[:, -1:]  # (B, 1): the past is in the cache
        else:
            cache.reset()  # first step: fill the cache with the whole prompt
    else:
        idx, cache = idx[:, -block_size:], None  # (B, <= block_size): crop to the context
    with eval_mode(model):
        logits, _ = model(idx, cache=cache)  # (B, T, V)
    return logits[:, -1, :]  # (B, V): only the last position predicts the next token


def _validate_arguments(model, idx, max_new_tokens, temperature, top_k, top_p, eot_id):
    vocab_size = model.config.vocab_size
    token_ids("idx", idx, vocab_size, tensor=True)
    if idx.dim() != 2:
        raise ValueError(f"idx must be (B, T), got shape {tuple(idx.shape)}: for one prompt add a batch dim, idx[None]")
    if idx.size(0) == 0 or idx.size(1) == 0:
        raise ValueError(f"empty prompt: idx has shape {tuple(idx.shape)}; give at least one token per row")
    require_int("max_new_tokens", max_new_tokens, least=0)
    require_number("temperature", temperature, least=0, hint=" (0 = greedy)")
    if top_k is not None:
        require_int("top_k", top_k, hint=" (or None: no top-k)")
    if top_p is not None:
        require_number("top_p", top_p, above=0, most=1, hint=" (or None: no top-p)")
    if eot_id is not None:
        require_int("eot_id", eot_id, least=0, most=vocab_size - 1, hint=" (a token id, or None)")


def stream(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
           eot_id=None, use_cache=True, generator=None):
    """Yield the new tokens one step at a time, each a LongTensor (B, 1), for live display.

    Arguments as in `generate`. The arguments are checked at the call, not at the first next().
    With eot_id, a row that has produced eot_id gets eot_id at every later step, and the stream
    stops after the step where the last row produced it (the eot tokens are yielded).
    """
    _validate_arguments(model, idx, max_new_tokens, temperature, top_k, top_p, eot_id)
    return _stream(model, idx, max_new_tokens, temperature, top_k, top_p, eot_id, use_cache, generator)


@torch.no_grad()  # on a generator function: grad mode is off inside each step, untouched between them
def _stream(model, idx, max_new_tokens, temperature, top_k, top_p, eot_id, use_cache, generator):
    cache = KVCache(model.config.n_layer) if use_cache else None
    finished = torch.zeros(idx.size(0), 1, dtype=torch.bool, device=idx.device)  # (B, 1)
    for _ in range(max_new_tokens):
        logits = next_logits(model, idx, cache)  # (B, V)
        # every row draws, finished or not, so the generator advances the same way each step
        next_ids = pick_next(logits, temperature, top_k, top_p, generator)  # (B, 1)
        if eot_id is not None:
            next_ids = next_ids.masked_fill(finished, eot_id)  # finished rows are padded with eot
            finished |= next_ids == eot_id
        idx = torch.cat([idx, next_ids], dim=1)  # (B, T + 1)
        yield next_ids
        if finished.all():
            return


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             eot_id=None, use_cache=True, generator=None):
    """Continue the prompts idx (B, T) by up to max_new_tokens tokens; returns (B, T + new).

    temperature: 0 = greedy (always the most likely token); 1 = the model's distribution;
        below 1 sharper, above 1 flatter.
    top_k: sample only among the k most likely tokens. top_p: only among the smallest set of
        most likely tokens whose probability reaches top_p (the nucleus), in (0, 1].
    eot_id: stop once every row has produced this token (it is kept in the output); rows that
        finish earlier are padded with eot_id, so new < max_new_tokens only when all rows stopped.
    use_cache: keep the keys and values of past positions (a KVCache) so that each step runs
        only the new token; same tokens as without it (see next_logits for past block_size).
    generator: a torch.Generator for the draws, to make sampling reproducible.

    Prompts longer than the model's context are cropped to their last block_size tokens for
    the model; the returned tensor still starts with the whole prompt. The model runs in eval
    mode without gradients; its previous mode is restored.
    """
    new = list(stream(model, idx, max_new_tokens, temperature, top_k, top_p, eot_id, use_cache, generator))
    return torch.cat([idx, *new], dim=1)


def stream_text(model, tokenizer, prompt, max_new_tokens, **options):
    """Yield the continuation of the text `prompt` piece by piece (str), to print as it comes.

    `options` are generate's (temperature, top_k, top_p, use_cache, generator). Generation
    stops at the tokenizer's <|endoftext|> if it has one, which is not shown. A byte-level BPE
    token can hold part of a character, so each piece is the new end of the decoded whole,
    held back while that ends in U+FFFD (a character still waiting for its last bytes).
    The tokenizer's ValueError for text it cannot encode comes through as it is.
    """
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError(f"the prompt {prompt!r} has no tokens: give it some text to continue")
    eot_id = getattr(tokenizer, "eot_id", None)  # None for tokenizers without <|endoftext|>
    weight = next(model.parameters(), None)  # the prompt goes where the model is (a stand-in may have no weights)
    prompt_ids = torch.tensor([ids], device=weight.device if weight is not None else "cpu")  # (1, T)
    steps = stream(model, prompt_ids, max_new_tokens, eot_id=eot_id, **options)
    return _text_pieces(tokenizer, ids, steps, eot_id)


def _text_pieces(tokenizer, ids, steps, eot_id):
    shown = tokenizer.decode(ids)
    for next_id in steps:  # (1, 1) each
        if next_id.item() == eot_id:
            break
        ids.append(next_id.item())
        text = tokenizer.decode(ids)
        if not text.endswith("\ufffd"):
            yield text[len(shown):]
            shown = text
    rest = tokenizer.decode(ids)[len(shown):]  # bytes that never completed a character
    if rest:
        yield rest


# --- how much of a sample is real words ---------------------------------------------------


def lower_words(text):
    """The lower-cased alphabetic words of `text`, in order (digits, _ and punctuation split them).

    >>> lower_words("The GPT-2 model's loss: 1.5")
    ['the', 'gpt', 'model', 's', 'loss']
    """
    return regex.findall(r"[^\W\d_]+", text.lower())


def real_word_share(text, corpus):
    """The share of `text`'s words (lower_words) that occur among the words of `corpus`.

    A first measure of whether a model spells: 1.0 when every word it writes is a word of its
    training text, about 0.5 for a character model that has learned only which letters follow
    which. It says nothing about grammar or sense. Raises ValueError for a text without words.

    >>> real_word_share("the modle learns", "The model learns.")
    0.6666666666666666
    """
    return _known_share(text, set(lower_words(corpus)))


def _known_share(text, known):
    """The share of text's words in the set `known`."""
    words = lower_words(text)
    if not words:
        raise ValueError(f"the text {text[:40]!r} has no alphabetic words to check")
    return sum(w in known for w in words) / len(words)


def sample_chars(model, tokenizer, prompt, n_chars, **options):
    """The first `n_chars` characters the model writes after `prompt` (stream_text's options).

    Stops early at the tokenizer's <|endoftext|>, so the text may be shorter.
    """
    text = ""
    # a token decodes to one character or more (a byte-level token may hold only part of one,
    # but then the next tokens complete it), so n_chars tokens are nearly always enough
    for piece in stream_text(model, tokenizer, prompt, n_chars, **options):
        text += piece
        if len(text) >= n_chars:
            break
    return text[:n_chars]


WORD_PROMPTS = ("Attention is", "The model", "A neural network", "Training", "The loss")


def sampled_word_share(model, tokenizer, corpus, prompts=WORD_PROMPTS, n_chars=500, temperature=0.8, seed=0):
    """The course's measure of a model's spelling: the mean real_word_share of `n_chars`
    sampled characters after each prompt (prompt i drawn with seed + i), against `corpus`."""
    known = set(lower_words(corpus))  # once, not once per prompt
    shares = [_known_share(sample_chars(model, tokenizer, prompt, n_chars, temperature=temperature,
                                        generator=torch.Generator().manual_seed(seed + i)), known)
              for i, prompt in enumerate(prompts)]
    return sum(shares) / len(shares)
