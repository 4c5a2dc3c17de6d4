"""Lesson 01's checks: right answers pass, wrong answers get a message that says what is wrong."""
from collections import Counter

import pytest

from numogpt.exercises import ExerciseError
import numogpt.bpe
from numogpt.exercises.lesson01 import (check_apply_merges, check_count_pairs, check_decode, check_learn_merges,
                                        check_merge_pair)
from tests.helpers import assert_right_passes_and_wrong_fails, not_written


# --- count pairs -----------------------------------------------------------------------------

def count_pairs(ids):
    counts = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def count_pairs_without_overlaps(ids):
    counts, i = {}, 0
    while i + 1 < len(ids):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
        i += 2 if pair[0] == pair[1] else 1
    return counts


def count_then_empty(ids):
    counts = Counter(zip(ids, ids[1:]))
    ids.clear()  # consumes its input
    return counts


@pytest.mark.parametrize("wrong, message", [
    (count_pairs_without_overlaps, "pairs overlap"),
    (lambda ids: Counter(zip(ids, ids[2:])), r"zip\(ids, ids\[1:\]\)"),  # pairs two apart
    (lambda ids: list(zip(ids, ids[1:])), "should return a dict"),
    (lambda ids: Counter((ids[i], ids[i + 1]) for i in range(len(ids))), "crashed with IndexError"),
    (count_then_empty, "changed the list it was given"),
    (not_written, "not written yet"),
])
def test_count_pairs(wrong, message, capsys):
    check_count_pairs(count_pairs)
    check_count_pairs(lambda ids: Counter(zip(ids, ids[1:])))  # a Counter is a dict too
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match=message):
        check_count_pairs(wrong)


# --- merge_pair -----------------------------------------------------------------------------------

def merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_missing_the_end(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 2 < len(ids) and (ids[i], ids[i + 1]) == pair:  # one position short
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_losing_the_last_token(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_every_position(ids, pair, new_id):  # merges overlapping pairs twice
    out = []
    for i, x in enumerate(ids):
        if i + 1 < len(ids) and (x, ids[i + 1]) == pair:
            out.append(new_id)
        elif not (i > 0 and (ids[i - 1], x) == pair):
            out.append(x)
    return out


def merge_in_place(ids, pair, new_id):
    i = 0
    while i + 1 < len(ids):
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


@pytest.mark.parametrize("wrong, message", [
    (merge_missing_the_end, "pair at the very end is missed"),
    (merge_losing_the_last_token, "last token went missing"),
    (merge_every_position, "skip both of its tokens"),
    (merge_in_place, "changed the list it was given"),
    (merge_first_only, "not just the first"),
    (lambda ids, pair, new_id: tuple(ids), "should return a list"),
    (not_written, "not written yet"),
])
def test_merge_pair(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_merge_pair, merge, wrong, message, capsys)


# --- apply merges ----------------------------------------------------------------------------

def apply_merges(ids, merges):
    for pair, new_id in merges.items():
        ids = merge(ids, pair, new_id)
    return ids


def apply_in_reverse_order(ids, merges):
    for pair, new_id in reversed(merges.items()):
        ids = merge(ids, pair, new_id)
    return ids


def apply_in_place(ids, merges):
    for pair, new_id in merges.items():
        ids[:] = merge(ids, pair, new_id)
    return ids


@pytest.mark.parametrize("wrong, message", [
    (apply_in_reverse_order, "in the order they were learned"),
    (apply_in_place, "changed the list it was given"),
    (lambda ids, merges: tuple(apply_merges(ids, merges)), "should return a list of ints"),
    (not_written, "not written yet"),
])
def test_apply_merges(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_apply_merges, apply_merges, wrong, message, capsys)


# --- learn merges ----------------------------------------------------------------------------

def learn_merges_with(counted=True, tie=min, first_id=256, stop=True, merge_words=True):
    """The notebook's answer, with one thing changed by an argument."""
    def learn_merges(words, counts, n_merges):
        words = [list(w) for w in words]
        merges, merge_counts = {}, []
        for new_id in range(first_id, first_id + n_merges):
            pairs = {}
            for ids, n in zip(words, counts):
                for pair, k in count_pairs(ids).items():
                    pairs[pair] = pairs.get(pair, 0) + k * (n if counted else 1)
            if not pairs and stop:
                break
            best = max(pairs.values())
            pair = tie(p for p in pairs if pairs[p] == best)
            merges[pair] = new_id
            merge_counts.append(pairs[pair])
            if merge_words:
                words = [merge(ids, pair, new_id) for ids in words]
        return merges, merge_counts
    return learn_merges


def learn_merges_counting_applications(words, counts, n_merges):  # the merges are right, the counts are not
    merges, _ = learn_merges_with()(words, counts, n_merges)
    return merges, [1] * len(merges)


def learn_merges_in_place(words, counts, n_merges):
    for i, w in enumerate(words):
        words[i] = list(w)
    result = learn_merges_with()(words, counts, n_merges)
    words.reverse()  # changes the caller's list
    return result


@pytest.mark.parametrize("wrong, message", [
    (learn_merges_with(counted=False), "its pairs count counts"),
    (learn_merges_with(tie=max), "the tie goes to the smallest pair"),
    (learn_merges_with(first_id=255), "new ids start at 256"),
    (learn_merges_with(stop=False), "Stop when no pair is left"),
    (learn_merges_with(merge_words=False), "replace the pair in every word"),
    (learn_merges_counting_applications, "merge_counts"),
    (lambda words, counts, n: learn_merges_with()(words, counts, n)[0], r"should return \(merges, merge_counts\)"),
    (learn_merges_in_place, "changed the words it was given"),
    (numogpt.bpe.learn_merges, "without `numogpt.bpe.learn_merges`"),
    (not_written, "not written yet"),
])
def test_learn_merges(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_learn_merges, learn_merges_with(), wrong, message, capsys)


def test_learn_merges_is_the_library_on_a_real_text():
    from collections import Counter

    import regex

    from numogpt.data import load_corpus
    from numogpt.tokenizer import GPT2_SPLIT_PATTERN

    chunks = Counter(regex.findall(GPT2_SPLIT_PATTERN, load_corpus("train-nn")[:5000]))
    words, counts = [c.encode("utf-8") for c in chunks], list(chunks.values())
    assert learn_merges_with()(words, counts, 40) == numogpt.bpe.learn_merges(words, counts, 40)


# --- decode ----------------------------------------------------------------------------------

def decode(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


@pytest.mark.parametrize("wrong, message", [
    (lambda ids, vocab: "".join(vocab[i].decode("utf-8", errors="replace") for i in ids), "split across tokens"),
    (lambda ids, vocab: b"".join(vocab[i] for i in ids).decode("utf-8"), "errors='replace'"),
    (lambda ids, vocab: "".join(chr(i) for i in ids), "not code points"),
    (lambda ids, vocab: b"".join(vocab[i] for i in ids), "should return a str"),
    (lambda ids, vocab: b"".join(vocab[i] for i in ids).decode("latin-1"), r"b''.join"),
    (not_written, "not written yet"),
])
def test_decode(wrong, message, capsys):
    assert_right_passes_and_wrong_fails(check_decode, decode, wrong, message, capsys)


def test_apply_merges_refuses_the_library(capsys):
    with pytest.raises(ExerciseError, match="finished encoder"):
        check_apply_merges(lambda ids, merges: numogpt.bpe.apply_merges(ids, merges))
