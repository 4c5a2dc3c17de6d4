"""Lesson 02: corpus loading, (x, y) blocks, word-aligned padding, the split and the loaders.

References: plain Python list slicing for the blocks, PyTorch's own F.cross_entropy for the
ignore index, and the text itself (blocks joined back must give the tokenizer's ids).
"""
import urllib.error
from pathlib import Path

import pytest
import regex
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import numogpt.data
from numogpt.data import (
    IGNORE_INDEX,
    TINYSHAKESPEARE_URL,
    ShuffledBatches,
    TokenBlocks,
    load_corpus,
    make_loaders,
    split_words,
    train_val_split,
    word_aligned_blocks,
)
from numogpt.tokenizer import CharTokenizer, gpt2_tokenizer
from tests.references import tiktoken_gpt2


class Chars:
    """A stand-in tokenizer: one id per character (its code point)."""

    @staticmethod
    def encode(text):
        return [ord(c) for c in text]

    @staticmethod
    def decode(ids):
        return "".join(map(chr, ids))


# --- TokenBlocks ---------------------------------------------------------------------------


def brute_force_blocks(ids, block_size, stride):
    """Every window of block_size + 1 ids, starting every `stride`, as (x, y) lists."""
    starts = range(0, len(ids) - block_size, stride)  # start + block_size + 1 <= len(ids)
    return [(ids[s : s + block_size], ids[s + 1 : s + block_size + 1]) for s in starts]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_blocks_equal_list_slicing(data):
    block_size = data.draw(st.integers(1, 12), label="block_size")
    ids = data.draw(st.lists(st.integers(0, 50_000), min_size=block_size + 1, max_size=80), label="ids")
    stride = data.draw(st.integers(1, 15) | st.none(), label="stride")
    blocks = TokenBlocks(ids, block_size, stride)
    expected = brute_force_blocks(ids, block_size, stride or block_size)
    assert len(blocks) == len(expected) == (len(ids) - block_size - 1) // (stride or block_size) + 1
    assert [(x.tolist(), y.tolist()) for x, y in blocks] == expected


def test_shapes_dtype_and_the_shift():
    blocks = TokenBlocks(list(range(100, 120)), block_size=4)
    x, y = blocks[2]
    assert x.shape == y.shape == (4,) and x.dtype == y.dtype == torch.long
    assert x.tolist() == [108, 109, 110, 111] and y.tolist() == [109, 110, 111, 112]
    assert torch.equal(x[1:], y[:-1])  # y is x moved one to the left: y[t] follows x[t]


def test_stride_defaults_to_block_size_and_overlap_multiplies_examples():
    ids = list(range(1001))
    assert len(TokenBlocks(ids, 10)) == len(TokenBlocks(ids, 10, stride=10)) == 100
    assert len(TokenBlocks(ids, 10, stride=5)) == 199
    assert len(TokenBlocks(ids, 10, stride=1)) == 991
    assert TokenBlocks(ids, 10).stride == 10


def test_negative_index_and_index_error():
    blocks = TokenBlocks(list(range(10)), 3)  # 3 blocks
    assert blocks[-1][0].tolist() == blocks[2][0].tolist() == [6, 7, 8]
    for i in (3, -4):
        with pytest.raises(IndexError, match="3 blocks"):
            blocks[i]


def test_blocks_are_views_of_the_ids_not_copies():
    ids = torch.arange(1_000)
    blocks = TokenBlocks(ids, block_size=16, stride=1)
    assert blocks.ids is ids  # a LongTensor is kept as it is
    base = ids.untyped_storage().data_ptr()
    for i in (0, 1, 500, len(blocks) - 1):
        x, y = blocks[i]
        assert x.untyped_storage().data_ptr() == y.untyped_storage().data_ptr() == base
        assert x.data_ptr() == base + i * ids.element_size()
        assert y.data_ptr() == base + (i + 1) * ids.element_size()


def test_list_and_int32_ids_become_one_long_tensor():
    assert TokenBlocks([1, 2, 3], 2).ids.dtype == torch.long
    blocks = TokenBlocks(torch.tensor([1, 2, 3, 4], dtype=torch.int32), 2, stride=1)
    assert blocks[0][1].dtype == torch.long and blocks[1][1].tolist() == [3, 4]


@pytest.mark.parametrize(
    "ids, block_size, stride, error, match",
    [
        ([1, 2, 3], 3, None, ValueError, r"3 ids are too few.*block_size \+ 1 = 4.*at most 2"),
        ([], 1, None, ValueError, r"0 ids are too few.*Use more text$"),
        ([1, 2, 3], 0, None, ValueError, "block_size must be 1 or more, got 0"),
        ([1, 2, 3], -2, None, ValueError, "block_size must be 1 or more, got -2"),
        ([1, 2, 3], 2, 0, ValueError, "stride must be 1 or more, got 0"),
        ([1, 2, 3], 2.0, None, TypeError, "block_size must be an int, got 2.0"),
        ([1, 2, 3], 2, 1.5, TypeError, "stride must be an int, got 1.5"),
        ([[1, 2], [3, 4]], 1, None, ValueError, r"\(1-D\), got shape \(2, 2\)"),
        ([1.0, 2.0, 3.0], 1, None, TypeError, "integers, got a tensor of torch.float32"),
        ([1, -2, 3], 1, None, ValueError, "never negative, found -2"),
        ("hello", 1, None, TypeError, "encode the text"),
        ([1, "a"], 1, None, TypeError, "list of ints"),
    ],
)
def test_bad_input_to_token_blocks(ids, block_size, stride, error, match):
    with pytest.raises(error, match=match):
        TokenBlocks(ids, block_size, stride)


# --- word-aligned blocks -------------------------------------------------------------------


def check_word_aligned(text, tokenizer, block_size, pad_id):
    """Every promise of word_aligned_blocks, checked against the text and its words.

    The real tokens of a block are those before its padding (the test texts never hold
    the character whose id is pad_id).
    """
    X, Y = word_aligned_blocks(text, tokenizer, block_size, pad_id).tensors
    assert X.shape == Y.shape and X.shape[1] == block_size and X.dtype == Y.dtype == torch.long
    stream = tokenizer.encode(text)
    lengths = [int((row != pad_id).sum()) for row in X]
    assert all(n > 0 for n in lengths)
    # nothing lost, nothing reordered: the blocks joined give the text's ids
    assert [t for row, n in zip(X.tolist(), lengths) for t in row[:n]] == stream
    starts = [sum(lengths[:i]) for i in range(len(lengths) + 1)]  # block i covers stream[starts[i]:starts[i+1]]
    word_lengths = [len(tokenizer.encode(w)) for w in split_words(text)]
    word_at = {sum(word_lengths[:j]): n for j, n in enumerate(word_lengths)}  # stream offset -> word length
    for i, n in enumerate(lengths):
        assert (X[i, n:] == pad_id).all()
        # the target of each real token is the token after it in the text; ignored elsewhere
        following = stream[starts[i] + 1 : starts[i] + n + 1]
        assert Y[i, : len(following)].tolist() == following
        assert (Y[i, len(following) :] == IGNORE_INDEX).all()
        if i + 1 < len(lengths):
            next_start = starts[i + 1]
            if next_start in word_at:  # closed before a word: it did not fit, or is longer than a block
                assert n + word_at[next_start] > block_size, f"block {i} closed while the next word still fit"
            else:  # a cut inside a word happens only in a word longer than a block, in full blocks
                assert n == block_size
                assert any(start < next_start < start + length and length > block_size and (next_start - start) % block_size == 0
                           for start, length in word_at.items()), f"block {i + 1} starts inside a word"
    for start, length in word_at.items():  # a word longer than a block starts a fresh block
        assert length <= block_size or start in starts
    return X, Y


def test_word_aligned_blocks_never_cut_a_word():
    text = "the cat sat on the mat\nand purred"
    X, Y = check_word_aligned(text, Chars, block_size=8, pad_id=0)
    rows = [Chars.decode([t for t in row if t]) for row in X.tolist()]
    assert rows == ["the cat", " sat on", " the mat", "\nand", " purred"]
    assert Y[0].tolist() == [ord(c) for c in "he cat "] + [IGNORE_INDEX]


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.sampled_from("ab \n"), min_size=1, max_size=60), block_size=st.integers(1, 9))
def test_word_aligned_blocks_on_any_text(text, block_size):
    check_word_aligned(text, Chars, block_size, pad_id=0)


def test_a_word_longer_than_a_block_is_cut_and_starts_a_fresh_block():
    X, Y = word_aligned_blocks("ab abcdefghij cd", Chars, block_size=4, pad_id=0).tensors
    rows = [Chars.decode([t for t in row if t]) for row in X.tolist()]
    assert rows == ["ab", " abc", "defg", "hij", " cd"]
    check_word_aligned("ab abcdefghij cd", Chars, 4, 0)


def test_gpt2_word_aligned_blocks_of_the_course_corpus_hold_tiktokens_ids():
    text = load_corpus("train-nn")[:20_000]
    gpt2 = gpt2_tokenizer()
    X, Y = check_word_aligned(text, gpt2, block_size=32, pad_id=gpt2.eot_id)
    real = X[X != gpt2.eot_id]
    assert real.tolist() == tiktoken_gpt2().encode(text)  # words one by one = the whole text at once
    assert 0.8 < len(real) / X.numel() < 1  # some padding, not much: blocks are well filled


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=40).filter(lambda t: "<|endoftext|>" not in t), block_size=st.integers(1, 6))
def test_gpt2_words_one_by_one_give_the_ids_of_the_whole_text(text, block_size):
    gpt2 = gpt2_tokenizer()
    X, _ = word_aligned_blocks(text, gpt2, block_size, gpt2.eot_id).tensors
    assert X[X != gpt2.eot_id].tolist() == tiktoken_gpt2().encode(text)


def test_char_tokenizer_blocks_of_the_course_corpus():
    text = load_corpus("train-nn")[:3_000]
    chars = CharTokenizer(text + "\0")  # "\0" never occurs in the text: the pad
    check_word_aligned(text, chars, block_size=16, pad_id=chars.encode("\0")[0])


def test_padded_targets_are_ignored_by_cross_entropy():
    X, Y = word_aligned_blocks("one two three four five six", Chars, block_size=6, pad_id=0).tensors
    assert (Y == IGNORE_INDEX).any()
    torch.manual_seed(0)
    logits = torch.randn(*X.shape, 128)  # (N, T, V)
    loss = F.cross_entropy(logits.view(-1, 128), Y.view(-1))  # ignore_index=-100 by default
    keep = Y.view(-1) != IGNORE_INDEX
    by_hand = -logits.view(-1, 128).log_softmax(-1)[keep, Y.view(-1)[keep]].mean()
    torch.testing.assert_close(loss, by_hand)
    # whatever the model says at padded positions changes nothing
    noisy = logits.clone()
    noisy[Y == IGNORE_INDEX] = 100.0
    torch.testing.assert_close(F.cross_entropy(noisy.view(-1, 128), Y.view(-1)), loss)


def test_split_words_cuts_only_before_whitespace():
    assert split_words("  Hi there,\n\nyou  ") == ["  Hi", " there,", "\n\nyou", "  "]
    assert split_words("x") == ["x"]


@given(st.text(min_size=1))
def test_split_words_keeps_every_character(text):
    def space(c):  # whitespace as GPT-2's split pattern (the regex module) sees it
        return regex.fullmatch(r"\s", c) is not None

    words = split_words(text)
    assert "".join(words) == text and all(words)
    # every cut falls between a non-space and a space, and every such place is cut
    assert all(not space(a[-1]) and space(b[0]) for a, b in zip(words, words[1:]))
    assert not any(not space(a) and space(b) for w in words for a, b in zip(w, w[1:]))


@pytest.mark.parametrize(
    "text, tokenizer, block_size, pad_id, error, match",
    [
        ("", Chars, 4, 0, ValueError, "text is empty"),
        (b"abc", Chars, 4, 0, TypeError, "text must be a str, got bytes"),
        ("abc", object(), 4, 0, TypeError, r"\.encode\(str\)"),
        ("abc", Chars, 0, 0, ValueError, "block_size must be 1 or more, got 0"),
        ("abc", Chars, 4, -1, ValueError, r"pad_id must be 0 or more, got -1 \(a token id"),
        ("abc", Chars, 4, None, TypeError, r"pad_id must be an int, got None \(a token id"),
    ],
)
def test_bad_input_to_word_aligned_blocks(text, tokenizer, block_size, pad_id, error, match):
    with pytest.raises(error, match=match):
        word_aligned_blocks(text, tokenizer, block_size, pad_id)


# --- split and loaders ---------------------------------------------------------------------


def test_split_by_position_at_the_boundary():
    ids = torch.arange(1000)
    train, val = train_val_split(ids, 0.1)
    assert train.tolist() == list(range(900)) and val.tolist() == list(range(900, 1000))
    assert train.data_ptr() == ids.data_ptr()  # views, not copies
    train, val = train_val_split(list(range(10)), 0.25)  # 2.5 rounds to 2
    assert (len(train), len(val)) == (8, 2)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_val_fraction_outside_zero_one(fraction):
    with pytest.raises(ValueError, match=f"val_fraction must be a number > 0 and < 1, got {fraction}"):
        train_val_split(list(range(100)), fraction)


@pytest.mark.parametrize("n, fraction, match", [(100, 0.001, "0 for validation"), (100, 0.99, "1 for training"), (3, 0.5, "3 ids")])
def test_split_that_leaves_a_side_too_small(n, fraction, match):
    with pytest.raises(ValueError, match=match):
        train_val_split(list(range(n)), fraction)


def test_val_fraction_must_be_a_number():
    with pytest.raises(TypeError, match="val_fraction must be a number"):
        train_val_split(list(range(100)), "0.1")


def test_loaders_give_batches_of_shape_b_t():
    train, val = make_loaders(list(range(2000)), block_size=16, batch_size=8, val_fraction=0.2)
    x, y = next(iter(train))
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert len(train.dataset) == (1600 - 17) // 16 + 1 and len(val.dataset) == (400 - 17) // 16 + 1
    assert all(int(xb.max()) < 1600 for xb, _ in train) and all(int(xb.min()) >= 1600 for xb, _ in val)


def test_train_uses_the_stride_and_val_never_overlaps():
    train, val = make_loaders(list(range(1000)), block_size=10, batch_size=4, stride=2)
    assert train.dataset.stride == 2 and val.dataset.stride == 10


def test_train_is_shuffled_by_the_seed_and_val_is_in_order():
    ids = list(range(5000))

    def first_column(loader):
        return torch.cat([x[:, 0] for x, _ in loader]).tolist()

    train_a, val_a = make_loaders(ids, 8, 16, seed=1)
    train_b, _ = make_loaders(ids, 8, 16, seed=1)
    train_c, _ = make_loaders(ids, 8, 16, seed=2)
    order = first_column(train_a)
    assert order == first_column(train_b) != first_column(train_c)
    # 562 blocks make 35 full batches of 16: each block at most once, the 2 left over dropped
    assert order != sorted(order) and len(order) == len(set(order)) == 35 * 16
    assert set(order) <= set(range(0, 4500 - 8, 8))
    assert all(len(x) == 16 for x, _ in train_a)
    assert first_column(val_a) == list(range(4500, 5000 - 8, 8))


def test_validation_split_shorter_than_a_block():
    with pytest.raises(ValueError, match=r"validation split has 50 ids.*block_size \+ 1 = 65.*raise val_fraction"):
        make_loaders(list(range(500)), block_size=64, batch_size=4, val_fraction=0.1)


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be 1 or more, got 0"):
        make_loaders(list(range(500)), block_size=4, batch_size=0)


# --- load_corpus ---------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty DATA_DIR, so no test touches (or downloads into) the real one."""
    monkeypatch.setattr(numogpt.data, "DATA_DIR", tmp_path)
    return tmp_path


def test_a_path_reads_that_file(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("ünïcode\nlines\n", encoding="utf-8")
    assert load_corpus(path) == load_corpus(str(path)) == "ünïcode\nlines\n"


def test_names_read_from_the_data_folder(data_dir):
    (data_dir / "train-nn.txt").write_text("neural nets", encoding="utf-8")
    (data_dir / "tinyshakespeare.txt").write_text("First Citizen:", encoding="utf-8")
    assert load_corpus("train-nn") == "neural nets"
    assert load_corpus("tinyshakespeare") == "First Citizen:"


def test_the_course_corpus_is_there():
    assert load_corpus("train-nn") == (numogpt.DATA_DIR / "train-nn.txt").read_text(encoding="utf-8")


def test_tinyshakespeare_ships_with_the_package(monkeypatch):
    def offline(url, timeout):
        raise AssertionError(f"downloaded {url}")

    monkeypatch.setattr(numogpt.data.urllib.request, "urlopen", offline)
    text = load_corpus("tinyshakespeare")
    assert len(text) == 1_115_394 and text.startswith("First Citizen:\nBefore we proceed any further")


class FakeResponse:
    def __init__(self, data):
        self.data = data

    def read(self):
        return self.data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_tinyshakespeare_is_downloaded_once_when_missing(data_dir, monkeypatch):
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        return FakeResponse("Before we proceed any further, hear me speak.".encode())

    monkeypatch.setattr(numogpt.data.urllib.request, "urlopen", fake_urlopen)
    assert load_corpus("tinyshakespeare").startswith("Before we proceed")
    assert load_corpus("tinyshakespeare").startswith("Before we proceed")
    assert urls == [TINYSHAKESPEARE_URL]
    assert sorted(p.name for p in data_dir.iterdir()) == ["tinyshakespeare.txt"]  # no temp file left


def test_offline_error_names_the_url_and_where_to_put_the_file(data_dir, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(numogpt.data.urllib.request, "urlopen", offline)
    with pytest.raises(OSError) as info:
        load_corpus("tinyshakespeare")
    message = str(info.value)
    assert TINYSHAKESPEARE_URL in message and f"put the file at {data_dir / 'tinyshakespeare.txt'}" in message
    assert not list(data_dir.iterdir())


def test_a_name_given_as_a_path_is_still_a_name():
    assert load_corpus(Path("train-nn")) == load_corpus("train-nn")


def test_unknown_name_lists_the_known_ones(data_dir):
    with pytest.raises(ValueError, match="'shakespeare' is neither a file nor a known corpus; known names: train-nn, tinyshakespeare"):
        load_corpus("shakespeare")


def test_missing_course_corpus(data_dir):
    with pytest.raises(FileNotFoundError, match="train-nn.*should be at"):
        load_corpus("train-nn")


def test_empty_file_folder_not_utf8_and_wrong_type(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        load_corpus(empty)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt is not text: it is not UTF-8"):
        load_corpus(latin1)
    ids = tmp_path / "ids.bin"  # token ids as uint16, as nanoGPT stores them: valid UTF-8, but not text
    ids.write_bytes(bytes([65, 0, 66, 0]))
    with pytest.raises(ValueError, match="ids.bin is not text: it holds NUL bytes"):
        load_corpus(ids)
    with pytest.raises(ValueError, match="is a folder"):
        load_corpus(tmp_path)
    with pytest.raises(TypeError, match="not int"):
        load_corpus(3)


def test_shuffled_batches_visit_each_block_once_per_epoch_and_resume_anywhere():
    batches = ShuffledBatches(n=30, batch_size=4, seed=0)
    assert len(batches) == 7  # the last partial batch is dropped
    epochs = []
    for epoch in range(2):
        batches.set_epoch(epoch)
        epochs.append(list(batches))
        seen = [i for batch in epochs[-1] for i in batch]
        assert len(seen) == len(set(seen)) == 28  # no block twice within an epoch
    assert epochs[0] != epochs[1]  # a new order each epoch
    batches.set_epoch(1, start=5)
    assert list(batches) == epochs[1][5:]  # found directly, without the batches before it
    other_seed = ShuffledBatches(n=30, batch_size=4, seed=1)
    assert list(other_seed) != epochs[0]
    with pytest.raises(ValueError, match="fewer than one batch"):
        ShuffledBatches(n=3, batch_size=4)
