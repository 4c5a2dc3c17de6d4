"""The checks behind the exercises of notebooks/01_tokenizer.ipynb (lesson 01, the tokenizer).

The lesson's finished code is numogpt.tokenizer (its BPE in numogpt.bpe).
How a check works: see numogpt.exercises.
"""
from collections import Counter

from numogpt.bpe import apply_merges, merge_pair
from numogpt.exercises import attempt, expect, passed


def check_count_pairs(count_pairs):
    """count_pairs(ids) -> {(a, b): how many times b follows a in ids}."""
    cases = [[1, 2, 3, 1, 2], [104, 105, 32, 104, 105, 33], [7, 7, 7], [5], []]
    for ids in cases:
        given = list(ids)
        got = attempt(count_pairs, given)
        expect(given == ids, f"count_pairs({ids}) changed the list it was given (now {given}): count, don't modify.")
        want = dict(Counter(zip(ids, ids[1:])))
        expect(isinstance(got, dict), f"count_pairs should return a dict {{(a, b): count}}, got {type(got).__name__}")
        if ids == [7, 7, 7] and got.get((7, 7)) == 1:
            expect(False, "count_pairs([7, 7, 7]) should count (7, 7) twice: pairs overlap, "
                          "positions 0-1 and 1-2 are both pairs")
        expect(dict(got) == want, f"count_pairs({ids}) gave {dict(got)}, expected {want}. "
                                  "Walk over neighbours with zip(ids, ids[1:]) and count each pair")
    passed("count_pairs counts every adjacent pair, overlapping ones too, and handles short lists")


def check_merge(merge):
    """merge(ids, pair, new_id) -> a new list with every `pair` replaced by new_id."""
    cases = [([1, 2, 1, 2, 3, 1, 2], (1, 2), 9), ([1, 3, 2], (1, 2), 9), ([5, 5, 5], (5, 5), 7),
             ([5, 5, 5, 5], (5, 5), 7), ([1], (1, 2), 9), ([], (1, 2), 9)]
    for ids, pair, new_id in cases:
        given = list(ids)
        got = attempt(merge, given, pair, new_id)
        want = merge_pair(ids, pair, new_id)
        expect(given == ids, f"merge changed the list it was given ({ids} became {given}): build a new list instead")
        expect(isinstance(got, list), f"merge should return a list, got {type(got).__name__}")
        if got == want:
            continue
        wrong = f"merge({ids}, {pair}, {new_id}) gave {got}, expected {want}"
        expect(got != want[:-1], f"{wrong}: the last token went missing. Keep the token your loop stops before")
        expect(got.count(new_id) <= want.count(new_id),
               f"{wrong}: pairs that overlap were both merged. After merging a pair, skip both of its tokens "
               "(i += 2), so overlapping pairs merge left to right")
        expect(got != want[:-1] + list(pair), f"{wrong}: the pair at the very end is missed. Check your loop's last position")
        expect(got.count(new_id) >= want.count(new_id), f"{wrong}: some pairs were not merged. Replace every occurrence, not just the first")
        expect(False, wrong)
    passed("merge replaces every occurrence, left to right, at the ends too, without changing its input")


def check_encode_with_merges(encode_with_merges):
    """encode_with_merges(text, merges) -> ids: the text's UTF-8 bytes, then each merge in order."""
    merges = {(97, 97): 256, (256, 98): 257, (257, 97): 258, (195, 169): 259, (32, 259): 260}
    cases = ["aaabdaaabac", "", "a", "aab aab", "café é", "aaaa", "ab"]
    for text in cases:
        got = attempt(encode_with_merges, text, dict(merges))
        want = apply_merges(list(text.encode("utf-8")), merges)
        expect(isinstance(got, list), f"encode_with_merges should return a list of ints, got {type(got).__name__}")
        if "é" in text and got == [ord(c) for c in text]:
            expect(False, f"encode_with_merges({text!r}) gave {got}: those are code points (ord). "
                          "Start from the UTF-8 bytes: list(text.encode('utf-8'))")
        expect(got == want, f"encode_with_merges({text!r}) gave {got}, expected {want}. Start from "
                            "list(text.encode('utf-8')), then apply the merges in the order they were learned "
                            "(the order of the dict), each one everywhere")
    passed("encode_with_merges turns text into bytes and applies the merges in the order learned")
