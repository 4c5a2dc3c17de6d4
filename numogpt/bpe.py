"""The byte-pair core: learn merges from counted words, and apply them to one chunk.

Token ids are plain ints. A merge `(a, b) -> new` says "where token a is followed by token
b, write token new instead". Merges are learned in order and each new token gets the next
id, so a merge's new id is also its *rank*: the smaller the id, the earlier (and the more
often) the merge was learned, and the earlier it is applied when encoding.

    >>> merges, _ = learn_merges([b"aab", b"aa"], counts=[2, 1], n_merges=2)
    >>> merges  # 'a','a' is seen 3 times, then 'aa','b' twice
    {(97, 97): 256, (256, 98): 257}
    >>> apply_merges(list(b"aaab"), merges)  # 'aa' first (rank 256); 'a','b' has no merge
    [256, 97, 98]

`numogpt.tokenizer.BPETokenizer` wraps these two functions with the text splitting,
special tokens, decoding and saving.
"""
import heapq
from collections import defaultdict
from itertools import islice, repeat

_NO_MERGE = 1 << 62  # the rank of a pair that has no merge: larger than any token id


def merge_pair(ids, pair, new_id):
    """Replace every occurrence of `pair` in `ids`, left to right, by `new_id`.

    >>> merge_pair([1, 2, 3, 1, 2], (1, 2), 9)
    [9, 3, 9]
    >>> merge_pair([5, 5, 5], (5, 5), 7)  # overlapping: the left pair wins
    [7, 5]
    """
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def apply_merges(ids, merges):
    """Encode one chunk: apply `merges` ({(a, b): new_id}) to the token list `ids`.

    Repeatedly merge the adjacent pair with the lowest rank (new id), leftmost first, until
    no adjacent pair has a merge: the rule of GPT-2 and tiktoken.

    >>> apply_merges([1, 2, 3], {(1, 2): 4, (4, 3): 5})
    [5]
    """
    if len(ids) > _LONG:
        return _apply_merges_in_rounds(ids, merges)
    get = merges.get
    ids = list(ids)
    # ranks[i] is the rank of the pair (ids[i], ids[i + 1]), computed in C by map/zip
    ranks = list(map(get, zip(ids, islice(ids, 1, None)), repeat(_NO_MERGE)))
    while ranks:
        best = min(ranks)
        if best == _NO_MERGE:
            break
        i = ranks.index(best)
        ids[i:i + 2] = [best]
        # only the two pairs that touch the new token change
        del ranks[i]
        if i < len(ranks):
            ranks[i] = get((best, ids[i + 1]), _NO_MERGE)
        if i > 0:
            ranks[i - 1] = get((ids[i - 1], best), _NO_MERGE)
    return ids


_LONG = 256  # above this many tokens, finding the lowest rank once per merge gets slow


def _apply_merges_in_rounds(ids, merges):
    """apply_merges for long inputs (e.g. a whole text with no split pattern).

    Each round merges *every* occurrence of the lowest-ranked pair, left to right. A merge
    always makes a token ranked after its parts, so the pairs a merge creates rank after it,
    and this gives the same ids as merging one at a time, in far fewer rounds.
    """
    get = merges.get
    while len(ids) > 1:
        ranks = list(map(get, zip(ids, islice(ids, 1, None)), repeat(_NO_MERGE)))
        best = min(ranks)
        if best == _NO_MERGE:
            break
        i = ranks.index(best)  # each new id comes from one pair: this one
        ids = merge_pair(ids, (ids[i], ids[i + 1]), best)
    return ids


def learn_merges(words, counts, n_merges):
    """Learn up to `n_merges` merges from `words` (lists of byte ids) seen `counts` times.

    Returns {(a, b): new_id} in the order learned (new ids from 256 up), and how many times
    each merge was applied (to plot compression as merges are learned). Each step merges
    the most frequent adjacent pair; ties go to the smallest pair (a, b), so training is
    deterministic. Training stops early when no pair is left (every word is one token).

    Rather than recounting every pair after each merge (the textbook loop), this keeps the
    pair counts, an index pair -> words that contain it, and a heap of (−count, pair). A
    merge then only revisits the words that contain the merged pair.
    """
    words = [list(w) for w in words]
    pair_counts = defaultdict(int)
    where = defaultdict(set)  # pair -> indices of the words that (may) contain it
    for w, (ids, count) in enumerate(zip(words, counts)):
        for pair in zip(ids, ids[1:]):
            pair_counts[pair] += count
            where[pair].add(w)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges = {}
    merge_counts = []  # how often each merge was applied in the training words
    new_id = 256
    while len(merges) < n_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg_count:
            continue  # stale entry: the count has changed since it was pushed
        merges[pair] = new_id
        merge_counts.append(-neg_count)

        delta = defaultdict(int)  # how each pair's count changes with this merge
        for w in where.pop(pair):
            ids, count = words[w], counts[w]
            merged = merge_pair(ids, pair, new_id)
            if len(merged) == len(ids):
                continue  # the index was stale: this word no longer holds the pair
            for p in zip(ids, ids[1:]):
                delta[p] -= count
            for p in zip(merged, merged[1:]):
                delta[p] += count
                where[p].add(w)
            words[w] = merged
        for p, d in delta.items():
            if d:
                pair_counts[p] += d
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
                else:
                    del pair_counts[p]
        new_id += 1
    return merges, merge_counts
