"""Lesson 01: turning text into token ids and back.

Four tokenizers, from the simplest to the one GPT-2 uses. Each has `.encode(text) -> ids`,
`.decode(ids) -> text`, `.vocab_size` and `.to_dict()`; `tokenizer_from_dict(d)` rebuilds
any of them (a checkpoint stores its tokenizer that way).

    >>> tok = CharTokenizer("hello world")
    >>> tok.encode("hello")
    [3, 2, 4, 4, 5]
    >>> tok.decode([7, 5, 6, 4, 1])
    'world'

- `CharTokenizer`: one token per character seen in the text.
- `WordTokenizer`: one token per word or punctuation mark; an optional stopword filter.
- `BPETokenizer`: byte-level byte-pair encoding, trained from scratch with `.train`.
- `gpt2_tokenizer()`: the BPE tokenizer of GPT-2, read from its encoder.json and vocab.bpe;
  it gives exactly the ids of tiktoken's "gpt2" encoding.
"""
import functools
import json
from collections import Counter
from itertools import chain
from pathlib import Path

import regex
import torch

from numogpt import DATA_DIR
from numogpt.bpe import apply_merges, learn_merges
from numogpt.gpt2_files import gpt2_byte_alphabet, gpt2_files
from numogpt.tools.arguments import is_int, require_int, token_ids
from numogpt.tools.files import write_atomically

# GPT-2 splits text into chunks before BPE, so that a token never spans a word and its
# punctuation: contractions, an optional space + letters, an optional space + digits, an
# optional space + other symbols, and whitespace (a run of spaces before a word leaves its
# last space to the word). This is the pattern of GPT-2's encoder.py.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

ENDOFTEXT = "<|endoftext|>"
UNK = "<unk>"

def _require_text(text):
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}: {text!r:.60}")


def _valid_ids(ids, vocab_size):
    """`ids` as a list of ints in 0..vocab_size-1, or a clear error naming what is wrong."""
    if is_int(ids):
        raise TypeError(f"decode takes a list of token ids, not one int: {ids}; try [{ids}]")
    ids = token_ids("ids", ids.cpu() if isinstance(ids, torch.Tensor) else ids, vocab_size)  # decoding reads them here
    if ids.dim() != 1:
        raise ValueError(f"decode takes one flat list of token ids, got shape {tuple(ids.shape)}")
    return ids.tolist()


# --- characters ----------------------------------------------------------------------------


class CharTokenizer:
    """One token per distinct character of `text`, numbered in sorted order.

    A character never seen in `text` cannot be encoded: encode raises a ValueError that
    names it (build the tokenizer from a text that contains it).
    """

    def __init__(self, text):
        _require_text(text)
        if not text:
            raise ValueError("cannot build a CharTokenizer from empty text: give it the text it will encode")
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        _require_text(text)
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as e:
            raise ValueError(
                f"character {e.args[0]!r} was never seen when this CharTokenizer was built; "
                "build it from a text that contains every character you will encode"
            ) from None

    def decode(self, ids):
        return "".join(self.chars[i] for i in _valid_ids(ids, self.vocab_size))

    def to_dict(self):
        return {"type": "char", "chars": "".join(self.chars)}


# --- words ---------------------------------------------------------------------------------

WORD_PATTERN = r"\w+|[^\w\s]"  # a word, or one punctuation mark


def load_stopwords(path=None):
    """The course's stopword list (numogpt/course_data/stopwords.txt): a set of lowercase words.

    Lines starting with '#' are comments.
    """
    path = Path(path) if path is not None else DATA_DIR / "stopwords.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


class WordTokenizer:
    """One token per word or punctuation mark of `text`; id 0 is `<unk>`.

    Words are matched as written ("The" and "the" are two tokens). A word never seen gets
    the id of `<unk>` (0), so the tokenizer never fails on new text, but it loses that word.
    `stopwords` (a set of words, e.g. `load_stopwords()`) are dropped, compared in lowercase:
    the vocabulary shrinks, and decode can no longer give them back. decode joins the words
    with single spaces.

    >>> tok = WordTokenizer("the cat sat on the mat.", stopwords={"the", "on"})
    >>> tok.encode("The dog sat on the mat.")
    [0, 4, 3, 1]
    >>> tok.decode([0, 4, 3, 1])
    '<unk> sat mat .'
    """

    def __init__(self, text, stopwords=None):
        _require_text(text)
        if isinstance(stopwords, str):
            raise TypeError("stopwords must be a collection of words, not one str: use {'the', 'a'} or load_stopwords()")
        self.stopwords = frozenset(w.lower() for w in stopwords) if stopwords is not None else None
        words = self._words(text)
        if not words:
            raise ValueError(f"no words in the text {text!r:.60}: give the WordTokenizer some words to learn")
        self.words = [UNK] + sorted(set(words))
        self.stoi = {w: i for i, w in enumerate(self.words)}

    def _words(self, text):
        words = regex.findall(WORD_PATTERN, text)
        if self.stopwords:
            words = [w for w in words if w.lower() not in self.stopwords]
        return words

    @property
    def vocab_size(self):
        return len(self.words)

    @property
    def unk_id(self):
        return 0

    def encode(self, text):
        _require_text(text)
        return [self.stoi.get(w, self.unk_id) for w in self._words(text)]

    def decode(self, ids):
        return " ".join(self.words[i] for i in _valid_ids(ids, self.vocab_size))

    def to_dict(self):
        stopwords = sorted(self.stopwords) if self.stopwords is not None else None
        return {"type": "word", "words": self.words[1:], "stopwords": stopwords}

    @classmethod
    def _from_dict(cls, d):
        words = d["words"]
        if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
            raise ValueError(f"not a valid WordTokenizer dict: 'words' must be a list of words, got {words!r:.60}")
        tok = cls(" ".join(words), stopwords=d["stopwords"])
        tok.words = [UNK] + words  # exactly as saved, in the saved order
        tok.stoi = {w: i for i, w in enumerate(tok.words)}
        return tok


# --- byte-pair encoding --------------------------------------------------------------------


class BPETokenizer:
    """Byte-level byte-pair encoding: ids 0-255 are the bytes, every later id a merge.

    >>> tok = BPETokenizer().train("low lower lowest " * 20, vocab_size=262)
    >>> [tok.decode([i]) for i in tok.encode(" lowest")]
    [' lowe', 'st']
    >>> tok.decode(tok.encode("lower slower"))
    'lower slower'

    Text is first split into chunks by `pattern` (GPT-2's by default; None = no split, BPE
    on the raw bytes), so a token never crosses a chunk boundary. Each chunk is encoded on
    its own: a chunk that is one token of the vocabulary is that token (as tiktoken does);
    otherwise its bytes are merged, lowest rank first (see numogpt.bpe).

    Special tokens (e.g. `<|endoftext|>`) get the ids after the merges; see `encode` for
    when text that looks like one becomes one.
    """

    def __init__(self):
        self.pattern = GPT2_SPLIT_PATTERN
        self.merges = {}  # (left id, right id) -> merged id, which is also its rank
        self.special_tokens = {}  # str -> id
        self.byte_ids = list(range(256))  # the token id of each byte (GPT-2 numbers them its own way)
        self.merge_counts = []  # filled by train: how often each merge was applied
        self._reset()

    def _reset(self):
        """Derive the lookup tables from pattern, merges, special_tokens and byte_ids."""
        vocab = {self.byte_ids[b]: bytes([b]) for b in range(256)}
        for (a, b), new in self.merges.items():  # in order, so a and b are known first
            vocab[new] = vocab[a] + vocab[b]
        n = 256 + len(self.merges)
        if sorted(vocab) != list(range(n)):
            raise ValueError("the merges must number their new tokens 256, 257, ... in order")
        self._token_bytes = [vocab[i] for i in range(n)] + [s.encode("utf-8") for s in self.special_tokens]
        self._token_ids = {b: i for i, b in enumerate(self._token_bytes[:n])}
        self._byte_table = bytes(self.byte_ids)  # bytes.translate: byte -> its token id
        self._split = regex.compile(self.pattern).findall if self.pattern is not None else None
        self._cache = {}  # chunk -> ids; most chunks of a text repeat
        specials = sorted(self.special_tokens, key=len, reverse=True)
        self._special_re = regex.compile("|".join(map(regex.escape, specials))) if specials else None

    @property
    def vocab_size(self):
        return len(self._token_bytes)

    @property
    def eot_id(self):
        if ENDOFTEXT not in self.special_tokens:
            raise AttributeError(f"this tokenizer has no {ENDOFTEXT} token: train it with special_tokens=[{ENDOFTEXT!r}]")
        return self.special_tokens[ENDOFTEXT]

    @property
    def vocab(self):
        """{id: bytes} for every token, special tokens included."""
        return dict(enumerate(self._token_bytes))

    # --- training --------------------------------------------------------------------------

    def train(self, text, vocab_size, pattern=GPT2_SPLIT_PATTERN, special_tokens=()):
        """Learn merges from `text` until the vocabulary has `vocab_size` tokens; return self.

        `vocab_size` counts the 256 bytes, the merges and the `special_tokens` (strings,
        numbered after the merges). Training stops early, with a smaller vocabulary, if
        every chunk of the text has become one token. Ties between equally frequent pairs
        go to the smaller pair of ids, so training is deterministic.
        """
        _require_text(text)
        if not text:
            raise ValueError("cannot train on empty text")
        if isinstance(special_tokens, str):
            raise TypeError(f"special_tokens must be a list of str, e.g. [{special_tokens!r}], not one str")
        special_tokens = list(special_tokens)
        if not all(isinstance(s, str) and s for s in special_tokens):
            raise TypeError(f"special_tokens must be a list of non-empty str, e.g. [{ENDOFTEXT!r}]; got {special_tokens!r}")
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens has duplicates: {special_tokens!r}")
        require_int("vocab_size", vocab_size, least=256 + len(special_tokens),
                    hint=f" (256 bytes + {len(special_tokens)} special tokens, then the merges)")
        try:
            chunks = Counter(regex.findall(pattern, text) if pattern is not None else [text])
        except (regex.error, TypeError) as e:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression ({e}); "
                             f"use the default GPT2_SPLIT_PATTERN, or None to train on raw bytes") from None
        words = [chunk.encode("utf-8") for chunk in chunks]
        n_merges = vocab_size - 256 - len(special_tokens)
        merges, merge_counts = learn_merges(words, list(chunks.values()), n_merges)

        self.pattern, self.merges, self.byte_ids, self.merge_counts = pattern, merges, list(range(256)), merge_counts
        first = 256 + len(merges)
        self.special_tokens = {s: first + i for i, s in enumerate(special_tokens)}
        self._reset()
        return self

    # --- encoding and decoding -------------------------------------------------------------

    def encode(self, text, allowed_special="none_raise"):
        """Text -> token ids.

        `allowed_special` says what to do with text that spells a special token:
        - "none_raise" (default): raise a ValueError. Like tiktoken's `encode`, so that text
          from users cannot smuggle in an `<|endoftext|>`.
        - "none": encode it as ordinary text, like tiktoken's `encode_ordinary`.
        - "all": encode every special token as its id.
        - a set of special tokens: encode those; raise for the others (as tiktoken does).
        """
        _require_text(text)
        try:
            return self._encode(text, allowed_special)
        except UnicodeEncodeError:
            # lone surrogates (e.g. from a broken JSON escape) have no UTF-8 form: make them
            # '\ufffd' and join surrogate pairs, as tiktoken does
            return self._encode(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), allowed_special)

    def _encode(self, text, allowed_special):
        allowed = self._allowed_special(allowed_special)
        if self._special_re is not None and allowed_special != "none":
            for found in self._special_re.finditer(text):
                if found.group() not in allowed:
                    raise ValueError(
                        f"the text contains the special token {found.group()!r} at position {found.start()}: "
                        "pass allowed_special='all' (or a set with it) to encode it as a special token, "
                        "or allowed_special='none' to encode it as plain text"
                    )
        if not allowed:
            return self._encode_ordinary(text)
        ids, start = [], 0
        pattern = "|".join(map(regex.escape, sorted(allowed, key=len, reverse=True)))
        for found in regex.finditer(pattern, text):
            ids += self._encode_ordinary(text[start:found.start()])
            ids.append(self.special_tokens[found.group()])
            start = found.end()
        return ids + self._encode_ordinary(text[start:])

    def _allowed_special(self, allowed_special):
        if allowed_special in ("none_raise", "none"):
            return set()
        if allowed_special == "all":
            return set(self.special_tokens)
        if isinstance(allowed_special, str) or not hasattr(allowed_special, "__iter__"):
            raise ValueError(f"allowed_special must be 'none_raise', 'none', 'all' or a set of special tokens; got {allowed_special!r}")
        allowed = set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"not special tokens of this tokenizer: {sorted(unknown)!r} (it has {sorted(self.special_tokens)!r})")
        return allowed

    def _encode_ordinary(self, text):
        if self._split is None:
            return self._encode_chunk(text)
        chunks = self._split(text)
        cache = self._cache
        if len(cache) > 100_000:
            cache.clear()  # keep memory bounded on endless new text
        for chunk in set(chunks).difference(cache):
            cache[chunk] = self._encode_chunk(chunk)
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    def _encode_chunk(self, chunk):
        data = chunk.encode("utf-8")
        token = self._token_ids.get(data)
        if token is not None:
            return [token]
        return apply_merges(list(data.translate(self._byte_table)), self.merges)

    def decode(self, ids):
        """Token ids -> text. Bytes that are not valid UTF-8 (a token can hold half a
        character) become the replacement character '\ufffd'; an id outside the vocabulary
        raises a ValueError."""
        ids = _valid_ids(ids, self.vocab_size)
        return b"".join(map(self._token_bytes.__getitem__, ids)).decode("utf-8", errors="replace")

    # --- saving --------------------------------------------------------------------------

    def to_dict(self):
        return {
            "type": "bpe",
            "pattern": self.pattern,
            "merges": [[a, b] for a, b in self.merges],  # in order: merge i makes token 256 + i
            "special_tokens": self.special_tokens,
        }

    def save(self, path):
        """Write the tokenizer as JSON to `path` (atomically); return the path."""
        path = Path(path)
        write_atomically(path, lambda f: f.write(json.dumps(self.to_dict()).encode("utf-8")))
        return path

    @classmethod
    def load(cls, path):
        """Read a tokenizer written by `save`."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a tokenizer saved by BPETokenizer.save: {e}") from None
        tok = tokenizer_from_dict(d)
        if not isinstance(tok, BPETokenizer):
            raise ValueError(f"{path} holds a {d['type']!r} tokenizer, not a BPE one: use tokenizer_from_dict")
        return tok

    @classmethod
    def _from_dict(cls, d):
        tok = cls()
        try:
            pattern, merges, special_tokens = d["pattern"], d["merges"], d["special_tokens"]
            if pattern is not None:
                regex.compile(pattern)
            tok.pattern = pattern
            tok.merges = {(int(a), int(b)): 256 + i for i, (a, b) in enumerate(merges)}
            if any(not 0 <= a < new or not 0 <= b < new for (a, b), new in tok.merges.items()):
                raise ValueError("a merge refers to a token made later")
            ids = list(special_tokens.values())
            if ids != list(range(256 + len(merges), 256 + len(merges) + len(ids))):
                raise ValueError("special token ids must follow the merges")
            tok.special_tokens = dict(special_tokens)
            tok._reset()
        except (KeyError, TypeError, ValueError, AttributeError, regex.error) as e:
            raise ValueError(f"not a valid BPE tokenizer dict ({type(e).__name__}: {e})") from None
        return tok


# --- GPT-2 ---------------------------------------------------------------------------------


class GPT2Tokenizer(BPETokenizer):
    """GPT-2's tokenizer: the BPETokenizer read from encoder.json and vocab.bpe.

    encoder.json maps each token (written in `gpt2_byte_alphabet`) to its id; vocab.bpe
    lists the 50,000 merges in order, and merge i makes token 256 + i. It splits text with
    GPT2_SPLIT_PATTERN and has one special token, <|endoftext|> = 50256. Its ids are
    exactly tiktoken's "gpt2" ids (the tests check it on all kinds of text).
    """

    def __init__(self):
        super().__init__()
        encoder_path, merges_path = gpt2_files()  # copied on first use, sha256 checked (numogpt.gpt2_files)
        encoder = json.loads(encoder_path.read_text(encoding="utf-8"))
        lines = merges_path.read_text(encoding="utf-8").splitlines()[1:]  # line 0: '#version: 0.2'
        alphabet = gpt2_byte_alphabet()
        self.byte_ids = [encoder[alphabet[b]] for b in range(256)]
        pairs = (line.split(" ") for line in lines if line)
        self.merges = {(encoder[a], encoder[b]): encoder[a + b] for a, b in pairs}
        self.special_tokens = {ENDOFTEXT: encoder[ENDOFTEXT]}
        self._reset()

    def train(self, *args, **kwargs):
        raise TypeError("the GPT-2 tokenizer is already trained: train your own with BPETokenizer().train(...)")

    def to_dict(self):
        return {"type": "gpt2"}  # rebuilt from the GPT-2 files, not 50,000 merges in a checkpoint


@functools.cache
def gpt2_tokenizer():
    """The GPT-2 tokenizer (built once, then shared: it takes a moment to read).

    >>> tok = gpt2_tokenizer()
    >>> tok.encode("Hello world")
    [15496, 995]
    >>> tok.encode("<|endoftext|>", allowed_special="all") == [tok.eot_id] == [50256]
    True
    """
    return GPT2Tokenizer()


# --- rebuilding any tokenizer ----------------------------------------------------------------


def tokenizer_from_dict(d):
    """Rebuild a tokenizer from its `.to_dict()`.

    >>> tokenizer_from_dict(CharTokenizer("abc").to_dict()).encode("cab")
    [2, 0, 1]
    """
    builders = {
        "char": lambda d: CharTokenizer(d["chars"]),
        "word": WordTokenizer._from_dict,
        "bpe": BPETokenizer._from_dict,
        "gpt2": lambda d: gpt2_tokenizer(),
    }
    kind = d.get("type") if isinstance(d, dict) else None
    if kind not in builders:
        raise ValueError(f"not a tokenizer dict (its 'type' must be char, word, bpe or gpt2): {d!r:.80}")
    try:
        return builders[kind](d)
    except KeyError as e:
        raise ValueError(f"not a valid {kind} tokenizer dict: it has no {e.args[0]!r}") from None
