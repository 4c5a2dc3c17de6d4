"""The checks behind the exercises of notebooks/01_tokenizer.ipynb (lesson 01, the tokenizer).

The lesson's finished code is numogpt.tokenizer (its BPE in numogpt.bpe).
How a check works: see numogpt.exercises.
"""
from collections import Counter

import numogpt.bpe
from numogpt.bpe import apply_merges, learn_merges, merge_pair
from numogpt.exercises import ExerciseError, attempt, expect, passed, refusing
from numogpt.tokenizer import GPT2_SPLIT_PATTERN, tokenizer_from_dict


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


def check_merge_pair(merge_pair_answer):
    """merge_pair(ids, pair, new_id) -> a new list with every `pair` replaced by new_id (as numogpt.bpe.merge_pair)."""
    cases = [([1, 2, 1, 2, 3, 1, 2], (1, 2), 9), ([1, 3, 2], (1, 2), 9), ([5, 5, 5], (5, 5), 7),
             ([5, 5, 5, 5], (5, 5), 7), ([1], (1, 2), 9), ([], (1, 2), 9)]
    for ids, pair, new_id in cases:
        given = list(ids)
        got = attempt(merge_pair_answer, given, pair, new_id)
        want = merge_pair(ids, pair, new_id)
        expect(given == ids, f"merge_pair changed the list it was given ({ids} became {given}): build a new list instead")
        expect(isinstance(got, list), f"merge_pair should return a list, got {type(got).__name__}")
        if got == want:
            continue
        wrong = f"merge_pair({ids}, {pair}, {new_id}) gave {got}, expected {want}"
        expect(got != want[:-1], f"{wrong}: the last token went missing. Keep the token your loop stops before")
        expect(got.count(new_id) <= want.count(new_id),
               f"{wrong}: pairs that overlap were both merged. After merging a pair, skip both of its tokens "
               "(i += 2), so overlapping pairs merge left to right")
        expect(got != want[:-1] + list(pair), f"{wrong}: the pair at the very end is missed. Check your loop's last position")
        expect(got.count(new_id) >= want.count(new_id), f"{wrong}: some pairs were not merged. Replace every occurrence, not just the first")
        expect(False, wrong)
    passed("merge_pair replaces every occurrence, left to right, at the ends too, without changing its input")


def check_apply_merges(apply_merges_answer):
    """apply_merges(ids, merges) -> ids, as numogpt.bpe.apply_merges: each merge in the order learned."""
    merges = {(97, 97): 256, (256, 98): 257, (257, 97): 258, (195, 169): 259, (32, 259): 260}
    cases = ["aaabdaaabac", "", "a", "aab aab", "café é", "aaaa", "ab"]
    for text in cases:
        ids = list(text.encode("utf-8"))
        given = list(ids)
        with refusing({"numogpt.bpe.apply_merges": apply_merges},
                      why="it is the finished encoder; apply your merges with merge_pair, one after the other"):
            got = attempt(apply_merges_answer, given, dict(merges))
        want = apply_merges(ids, merges)
        expect(isinstance(got, list), f"apply_merges should return a list of ints, got {type(got).__name__}")
        expect(given == ids, f"apply_merges changed the list it was given ({ids} became {given}): "
                             "build a new list (merge_pair returns one) and leave the caller's ids alone")
        expect(got == want, f"apply_merges({ids}) gave {got}, expected {want}. Apply the merges in the "
                            "order they were learned (the order of the dict), each one everywhere: "
                            "ids = merge_pair(ids, pair, new_id) for every (pair, new_id)")
    passed("apply_merges applies the merges in the order learned, like numogpt.bpe.apply_merges")


def check_learn_merges(learn_merges_answer):
    """learn_merges(words, counts, n_merges) -> (merges, merge_counts), as numogpt.bpe.learn_merges."""
    cases = [  # (words, counts, n_merges, what the case is about)
        ([b"ab", b"cd"], [1, 5], 1, "the counts"),
        ([b"aab", b"aa"], [2, 1], 2, "a word seen twice counts twice"),
        ([b"abcd"], [1], 3, "ties"),
        ([b"dcba", b"ab"], [1, 1], 2, "ties"),
        ([b"aaaa", b"ba"], [1, 1], 3, "overlapping pairs"),
        ([b"low", b"lower", b"lowest", b"newer"], [5, 2, 3, 6], 6, "a few words"),
        ([b"ab", b"a"], [3, 2], 5, "stopping"),
    ]
    for words, counts, n_merges, about in cases:
        given = [list(w) for w in words]
        want, want_counts = learn_merges(words, counts, n_merges)
        call = f"learn_merges({words}, {counts}, {n_merges})"
        with refusing({"numogpt.bpe.learn_merges": learn_merges},
                      why="the training loop is the heart of BPE: count, pick the most frequent pair, merge, repeat"):
            try:
                got = attempt(learn_merges_answer, given, list(counts), n_merges)
            except ExerciseError as e:
                if about == "stopping" and "crashed" in str(e):
                    raise ExerciseError(f"{call}: {e} Stop when no pair is left (every word is one token), "
                                        "even before n_merges merges.") from None
                raise
        expect(given == [list(w) for w in words], f"{call} changed the words it was given: copy them first, "
                                                  "words = [list(w) for w in words]")
        expect(isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], dict),
               "learn_merges should return (merges, merge_counts), as numogpt's does: merges = {(a, b): new_id} "
               "in the order learned, merge_counts = how often each merged pair was seen")
        merges, merge_counts = got
        wrong = f"{call} learned {merges}, expected {want}"
        if merges != want:
            expect(len(merges) >= len(want),
                   f"{wrong}: after each merge, replace the pair in every word (your merge_pair) before counting "
                   "again; otherwise the same pair wins again and again")
            expect(list(merges.values()) == list(range(256, 256 + len(merges))),
                   f"{wrong}: new ids start at 256 (after the bytes) and go up by one per merge")
            expect(not (about == "stopping" and len(merges) > len(want)),
                   f"{wrong}: stop when no pair is left (every word is one token), even before n_merges merges")
            expect(about != "the counts",
                   f"{wrong}: each word appears counts[i] times, so its pairs count counts[i] times each")
            expect(about != "ties",
                   f"{wrong}: several pairs are equally frequent; the tie goes to the smallest pair, so training "
                   "is deterministic: min(pairs, key=lambda p: (-pairs[p], p))")
            expect(False, f"{wrong}. Each step: count the pairs of every word (times its count), take the most "
                          "frequent (ties: the smallest), give it the next id, merge it in every word")
        expect(list(merge_counts) == want_counts,
               f"{call}: the merges are right; merge_counts {list(merge_counts)} should be {want_counts}, "
               "how many times each merged pair was seen (its count when it was picked)")
    passed("learn_merges learns numogpt's merges: counts weighted, ties to the smallest pair, and it stops "
           "when every word is one token")


def check_decode(decode):
    """decode(ids, vocab) -> text, vocab = {id: bytes}: as numogpt's BPETokenizer.decode."""
    merges = [[195, 169], [116, 104], [240, 159], [153, 130], [257, 101]]  # é, th, half an emoji, its other half, the
    tokenizer = tokenizer_from_dict({"type": "bpe", "pattern": GPT2_SPLIT_PATTERN, "merges": merges, "special_tokens": {}})
    vocab = tokenizer.vocab  # {id: bytes}: 256 -> b"\xc3\xa9", ...
    cases = [[116, 104, 101], [260, 32, 99, 97, 102, 256], [258, 259], [258], [], [104, 105, 32, 240, 159, 153, 130]]
    for ids in cases:
        want = tokenizer.decode(ids)
        try:
            got = attempt(decode, list(ids), dict(vocab))
        except ExerciseError as e:
            if "UnicodeDecodeError" in str(e):
                raise ExerciseError(f"decode({ids}, vocab): {e} A token can hold half a character, which is not "
                                    "valid UTF-8 alone: decode with errors='replace' (it shows as '\ufffd').") from None
            raise
        wrong = f"decode({ids}, vocab) gave {got!r}, expected {want!r}"
        expect(isinstance(got, str), f"decode should return a str, got {type(got).__name__}: "
                                     "join the bytes, then .decode('utf-8', errors='replace')")
        if got == "".join(map(chr, ids)) and got != want:
            expect(False, f"{wrong}: ids are not code points (chr). Look each id up in vocab to get its bytes")
        expect(not (ids == [258, 259] and got != want),
               f"{wrong}: one character can be split across tokens (here an emoji's 4 bytes over two). Join the "
               "bytes of ALL the tokens first, then decode the whole once")
        expect(got == want, f"{wrong}: b''.join(vocab[i] for i in ids).decode('utf-8', errors='replace')")
    passed("decode joins the tokens' bytes, then decodes once: characters split across tokens come back, and "
           "half a character shows as '\ufffd'")
