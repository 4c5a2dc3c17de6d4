"""Lesson 02: from text to training batches.

A language model learns to predict the next token. So a training example is a block of
`block_size` token ids `x` and its target `y`, the same window moved one token to the right:
`y[t]` is the token that follows `x[t]`. This module cuts a long list of ids into such
(x, y) pairs and hands them out in shuffled batches:

    text = load_corpus("train-nn")                  # str
    ids = gpt2_tokenizer().encode(text)             # list[int]
    train, val = make_loaders(ids, block_size=64, batch_size=32)
    x, y = next(iter(train))                        # (B, T) each: (32, 64)

- `load_corpus`: the course corpus, tiny Shakespeare, or any text file.
- `TokenBlocks`: blocks by a sliding window with a stride, as views of one tensor.
- `word_aligned_blocks`: blocks that never cut a word, padded, with padding ignored by the loss.
- `train_val_split` and `make_loaders`: split by position, then batch with a DataLoader.
- `ShuffledBatches`: the training order, a new shuffle every epoch; lesson 05 trains on exactly it.
"""
import os
import urllib.request
from pathlib import Path

import regex
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from numogpt import DATA_DIR
from numogpt.tools.arguments import require_int, require_number, token_ids
from numogpt.tools.files import write_atomically

IGNORE_INDEX = -100  # F.cross_entropy skips targets equal to this (its default ignore_index)

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
CORPORA = {  # name -> file name in DATA_DIR (numogpt/course_data/, shipped with the package)
    "train-nn": "train-nn.txt",  # the course's own corpus, written for numoGPT
    "tinyshakespeare": "tinyshakespeare.txt",  # the classic corpus (public domain); downloaded if missing
}


# --- text ---------------------------------------------------------------------------------


def load_corpus(name_or_path):
    """Return the text of a corpus: a path to a UTF-8 file, or a known name.

    Names: "train-nn" (the course corpus) and "tinyshakespeare" (Tiny Shakespeare), both
    shipped in DATA_DIR (numogpt/course_data/); were Tiny Shakespeare's file missing, it is
    downloaded there from its public address.

    >>> load_corpus("train-nn") == (DATA_DIR / "train-nn.txt").read_text(encoding="utf-8")
    True
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"load_corpus takes a corpus name or a file path, not {type(name_or_path).__name__}")
    path, name = Path(name_or_path), str(name_or_path)
    if not path.exists():  # not a file: a corpus name?
        if name not in CORPORA:
            raise ValueError(f"{name!r} is neither a file nor a known corpus; known names: {', '.join(CORPORA)}")
        path = DATA_DIR / CORPORA[name]
        if name == "tinyshakespeare" and not path.exists():
            download(TINYSHAKESPEARE_URL, path)
        if not path.exists():
            raise FileNotFoundError(f"the corpus {name!r} should be at {path}, but it is not there")
    if not path.is_file():
        raise ValueError(f"{path} is a folder, not a text file: give the path of the file itself")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not text: it is not UTF-8 ({e}); give a text file, saved as UTF-8") from None
    if "\0" in text:  # valid UTF-8, but no text file holds a NUL: a checkpoint, an array of ids, an image...
        raise ValueError(f"{path} is not text: it holds NUL bytes, as binary files do; give a text file")
    if not text:
        raise ValueError(f"{path} is empty: a corpus needs some text to learn from")
    return text


def download(url, path):
    """Fetch `url` into `path` atomically: a half-finished download never takes its place."""
    path = Path(path)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read()
    except OSError as e:  # URLError, timeouts and refused connections are all OSErrors
        raise OSError(
            f"could not download {url} ({e}). Are you offline? Download it yourself and "
            f"put the file at {path}"
        ) from None
    return write_atomically(path, lambda f: f.write(data))


# --- ids ----------------------------------------------------------------------------------


def as_ids(ids):
    """Token ids as one flat LongTensor (the same tensor when it already is one): a list of
    ints, a 1-D integer tensor or array. Anything else is named here, not deep inside PyTorch."""
    ids = token_ids("token ids", ids)
    if ids.dim() != 1:
        raise ValueError(f"token ids must be one flat sequence (1-D), got shape {tuple(ids.shape)}: flatten them")
    return ids


class TokenBlocks(Dataset):
    """(x, y) pairs cut from `ids` by a window of `block_size` that moves by `stride`.

    Block i starts at i * stride: x = ids[i*stride : i*stride + block_size] and y is the
    same window one token to the right. stride == block_size (the default) gives blocks
    side by side; a smaller stride gives overlapping blocks, hence more examples from the
    same text. Every x and y is a view of one tensor of ids: nothing is copied up front,
    so even stride 1 over a million ids costs no memory beyond the ids.

    >>> blocks = TokenBlocks([10, 11, 12, 13, 14, 15, 16, 17], block_size=3, stride=2)
    >>> len(blocks)
    3
    >>> blocks[1]
    (tensor([12, 13, 14]), tensor([13, 14, 15]))
    """

    def __init__(self, ids, block_size, stride=None):
        require_int("block_size", block_size)
        stride = block_size if stride is None else stride
        require_int("stride", stride)
        self.ids = as_ids(ids)  # (N,)
        n = len(self.ids)
        if n < block_size + 1:
            smaller = f" or a block_size of at most {n - 1}" if n >= 2 else ""
            raise ValueError(
                f"{n} ids are too few for one block of {block_size}: a block and its target need "
                f"block_size + 1 = {block_size + 1} ids. Use more text{smaller}"
            )
        self.block_size, self.stride = block_size, stride

    def __len__(self):
        # the last start s must leave room for the target: s + block_size + 1 <= len(ids)
        return (len(self.ids) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i):
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"block {i} out of range: there are {n} blocks")
        start = (i % n) * self.stride
        x = self.ids[start : start + self.block_size]  # (T,) a view, no copy
        y = self.ids[start + 1 : start + self.block_size + 1]  # (T,) the same window, one to the right
        return x, y

    def __repr__(self):
        return f"TokenBlocks({len(self)} blocks of {self.block_size}, stride {self.stride}, over {len(self.ids)} ids)"


# --- word-aligned blocks ------------------------------------------------------------------


def split_words(text):
    """Cut text into words, each with the whitespace in front of it.

    The cuts fall only between a non-space and a space, where the GPT-2 tokenizer never
    joins two characters into one token; so encoding the words one by one gives the same
    ids as encoding the whole text (for GPT-2 and for characters). `regex`, not `re`: its
    \\s is the Unicode whitespace of GPT-2's split pattern (re's also counts \\x1c-\\x1f).

    >>> split_words("Hello  world!\\n")
    ['Hello', '  world!', '\\n']
    """
    return [w for w in regex.split(r"(?<=\S)(?=\s)", text) if w]


def word_aligned_blocks(text, tokenizer, block_size, pad_id):
    """Blocks that never cut a word in two, padded to `block_size`: a TensorDataset of (x, y).

    Words (see `split_words`) are encoded one by one and packed into a block while they
    fit; the rest of the block is filled with `pad_id` (e.g. tokenizer.eot_id, GPT-2's
    <|endoftext|>). As in TokenBlocks, y[t] is the token that follows x[t] in the text
    (for the last real token, the first token of the next block); on padding, y is -100,
    so F.cross_entropy ignores those positions instead of teaching the model to predict
    padding. The last real token of the last block has nothing after it: -100 too.

    A word longer than a whole block can never fit: it is the one exception, cut into
    block-sized pieces (it starts a fresh block, its tail is packed like any word).

    Returns a TensorDataset; `.tensors` is (X, Y), both LongTensors of shape (N, block_size).

    >>> chars = type("Chars", (), {"encode": staticmethod(lambda s: [ord(c) for c in s])})
    >>> X, Y = word_aligned_blocks("ab cd", chars, block_size=4, pad_id=0).tensors
    >>> X.tolist(), Y.tolist()
    ([[97, 98, 0, 0], [32, 99, 100, 0]], [[98, 32, -100, -100], [99, 100, -100, -100]])
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty: word-aligned blocks need some text")
    if not callable(getattr(tokenizer, "encode", None)):
        raise TypeError(f"tokenizer must have .encode(str) -> list[int], got {type(tokenizer).__name__}")
    require_int("block_size", block_size)
    require_int("pad_id", pad_id, least=0, hint=" (a token id, e.g. tokenizer.eot_id)")

    blocks, current = [], []  # lists of ids, each at most block_size long
    for word in split_words(text):
        ids = list(tokenizer.encode(word))
        if len(current) + len(ids) > block_size and current:
            blocks.append(current)  # the word does not fit: close this block
            current = []
        while len(ids) > block_size:  # only a word longer than a whole block gets cut
            blocks.append(ids[:block_size])
            ids = ids[block_size:]
        current += ids
    if current:
        blocks.append(current)

    X = torch.full((len(blocks), block_size), pad_id, dtype=torch.long)  # (N, T)
    Y = torch.full((len(blocks), block_size), IGNORE_INDEX, dtype=torch.long)  # (N, T)
    for i, block in enumerate(blocks):
        following = blocks[i + 1][:1] if i + 1 < len(blocks) else [IGNORE_INDEX]
        X[i, : len(block)] = torch.tensor(block)
        Y[i, : len(block)] = torch.tensor(block[1:] + following)
    return TensorDataset(X, Y)


# --- split and batches --------------------------------------------------------------------


def train_val_split(ids, val_fraction):
    """Split ids by position: the first part for training, the last `val_fraction` for validation.

    Split before cutting blocks, never after shuffling them: overlapping blocks share
    tokens, so a shuffled split would put the same text on both sides and the validation
    loss would flatter the model. Returns two 1-D LongTensors, views of the ids.

    >>> train, val = train_val_split(list(range(10)), 0.2)
    >>> train.tolist(), val.tolist()
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    """
    ids = as_ids(ids)
    require_number("val_fraction", val_fraction, above=0, below=1, hint=" (e.g. 0.1)")
    n_val = round(len(ids) * val_fraction)
    n_train = len(ids) - n_val
    if n_train < 2 or n_val < 2:  # one (x, y) pair needs two ids
        raise ValueError(
            f"splitting {len(ids)} ids with val_fraction={val_fraction} leaves {n_train} for training "
            f"and {n_val} for validation; each side needs at least 2: use more ids or another val_fraction"
        )
    return ids[:n_train], ids[n_train:]


class ShuffledBatches(Sampler):
    """The training order: batches of block indices, a new shuffle every epoch.

    Epoch e is a permutation of the n blocks drawn from a generator seeded by (seed, e), cut
    into n // batch_size batches of exactly batch_size; the few blocks left over are dropped
    (they come back in other epochs), so every optimizer step averages over as many blocks.
    Because an epoch's order depends only on (seed, e), any batch can be found again without
    replaying the ones before it: `set_epoch(e, start=i)` makes the next pass begin at batch
    i of epoch e. That is how lesson 05 resumes a run exactly (PyTorch's DistributedSampler
    has the same `set_epoch`).

    >>> batches = ShuffledBatches(n=10, batch_size=4, seed=0)
    >>> len(batches), [len(b) for b in batches]
    (2, [4, 4])
    >>> first = list(batches)
    >>> batches.set_epoch(0, start=1)
    >>> list(batches) == first[1:]
    True
    """

    def __init__(self, n, batch_size, seed=0):
        require_int("batch_size", batch_size)
        require_int("seed", seed, least=0)
        if n < batch_size:
            raise ValueError(f"{n} training blocks are fewer than one batch of {batch_size}: "
                             f"use more text, or a smaller batch_size or block_size")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start=0):
        """Make the next pass be epoch `epoch`, from its batch `start` on."""
        self.epoch, self.start = epoch, start

    def order(self, epoch):
        """The permutation of the blocks for `epoch`: (n,)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=generator)

    def __iter__(self):
        order = self.order(self.epoch)
        for i in range(self.start, len(self)):
            yield order[i * self.batch_size:(i + 1) * self.batch_size].tolist()

    def __len__(self):
        return self.n // self.batch_size


def make_loaders(ids, block_size, batch_size, val_fraction=0.1, stride=None, seed=0):
    """Train and validation DataLoaders of (x, y) batches, each of shape (B, T).

    The ids are split by position (train_val_split), then cut into TokenBlocks. Training
    blocks use `stride` (default: block_size, no overlap) and come in the order of
    `ShuffledBatches(seed)`: a new shuffle every epoch, full batches only, the same on every
    run. Lesson 05's `train` walks exactly this loader. Validation blocks never overlap
    (stride = block_size, each token scored once) and come in order, the last batch possibly
    smaller: every validation token counts.

    >>> train, val = make_loaders(list(range(1000)), block_size=8, batch_size=4)
    >>> x, y = next(iter(train))
    >>> x.shape, y.shape
    (torch.Size([4, 8]), torch.Size([4, 8]))
    """
    require_int("block_size", block_size)
    require_int("batch_size", batch_size)
    train_ids, val_ids = train_val_split(ids, val_fraction)
    for split, part, fix in (("validation", val_ids, "raise val_fraction"), ("training", train_ids, "lower val_fraction")):
        if len(part) < block_size + 1:  # not one block with its target
            raise ValueError(f"the {split} split has {len(part)} ids (val_fraction={val_fraction} of {len(ids)}), fewer "
                             f"than block_size + 1 = {block_size + 1}: {fix}, lower block_size or use more text")
    return (shuffled_loader(TokenBlocks(train_ids, block_size, stride), batch_size, seed),
            DataLoader(TokenBlocks(val_ids, block_size), batch_size=batch_size, shuffle=False))


def shuffled_loader(dataset, batch_size, seed=0):
    """A training DataLoader over any dataset of (x, y) pairs, in the order of ShuffledBatches."""
    # A DataLoader draws a seed for its workers each time it is iterated, from the global random
    # state unless it has a generator of its own. Training reads dropout from that global state,
    # so a resumed run (which starts a pass mid-epoch) would drift from a straight one.
    return DataLoader(dataset, batch_sampler=ShuffledBatches(len(dataset), batch_size, seed),
                      generator=torch.Generator())
