"""The checks behind the exercises.

An exercise asks the learner to finish a function. Its check calls that function on a few
cases, compares with the right answer, and either prints what it verified or raises an
`ExerciseError` whose message says, in plain words, what is wrong and how to look for it.
Every check is tested with wrong answers too (tests/test_exercises_NN.py).
"""
import math
from collections import Counter
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from numogpt.bpe import apply_merges, merge_pair
from numogpt.model import GPT, Block, GPTConfig
from numogpt.train import TrainConfig, lr_at, weight_decay_groups


class ExerciseError(AssertionError):
    """The answer is not right yet; the message says why."""


def attempt(fn, *args, **kwargs):
    """Call the learner's `fn`; turn 'not written yet' and crashes into plain messages."""
    name = getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseError(
            f"`{name}` is not written yet: replace `raise NotImplementedError()` with your answer."
        ) from None
    except ExerciseError:
        raise
    except Exception as e:
        raise ExerciseError(f"`{name}` crashed with {type(e).__name__}: {e}") from e


def expect(ok, message):
    """Fail with `message` unless `ok`."""
    if not ok:
        raise ExerciseError(message)


def passed(what):
    print(f"Correct: {what}")


# --- lesson 01: the tokenizer -------------------------------------------------------------


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


# --- lesson 02: the dataset ---------------------------------------------------------------


def _as_id_list(got, name, what):
    """The learner's x or y as a list of ints, whether they returned a list or a tensor."""
    try:
        return [int(t) for t in got]
    except (TypeError, ValueError):
        raise ExerciseError(f"`{name}` should return {what} as a list of ints (or a 1-D tensor), got {got!r:.60}.") from None


@contextmanager
def _forbidden(module, *names, why):
    """While inside, calling module.<name> (a torch.nn.functional function, `F.<name>` in the
    notebooks) fails with an ExerciseError that says `why`."""
    saved = {name: getattr(module, name) for name in names}

    def refuse(name):
        def refused(*args, **kwargs):
            raise ExerciseError(f"this exercise is to do it without `F.{name}`: {why}.")
        return refused

    try:
        for name in names:
            setattr(module, name, refuse(name))
        yield
    finally:
        for name, fn in saved.items():
            setattr(module, name, fn)


def _pair(got, name):
    expect(isinstance(got, (tuple, list)) and len(got) == 2,
           f"`{name}` should return two things, `x, y`; got {type(got).__name__} {got!r:.60}.")
    return _as_id_list(got[0], name, "x"), _as_id_list(got[1], name, "y")


def check_next_token_pair(next_token_pair):
    """next_token_pair(ids, i, block_size) -> (x, y): the block starting at position i."""
    ids = list(range(100, 121))  # readable ids: id 100 + k sits at position k
    for i, T in [(0, 4), (5, 8), (16, 4), (3, 1)]:
        x, y = _pair(attempt(next_token_pair, ids, i, T), "next_token_pair")
        right_x, right_y = ids[i : i + T], ids[i + 1 : i + T + 1]
        where = f"For i={i}, block_size={T} (ids = 100, 101, ..., 120)"
        expect(len(x) == T and len(y) == T,
               f"{where}: x and y should each hold block_size = {T} ids, got {len(x)} and {len(y)}.")
        expect(x == right_x, f"{where}: x should be ids[i : i + block_size] = {right_x}, got {x}.")
        expect(not (y == x and T >= 1), f"{where}: y equals x, but the target of x[t] is the token AFTER it: "
               "take the same window one step to the right, ids[i + 1 : i + 1 + block_size].")
        expect(not (i > 0 and y == ids[i - 1 : i - 1 + T]),
               f"{where}: y is shifted the wrong way (one to the left): y[t] is the token after x[t].")
        expect(y == right_y, f"{where}: y should be ids[i + 1 : i + 1 + block_size] = {right_y}, got {y}.")
    passed("x = ids[i : i + T] and y = ids[i + 1 : i + 1 + T]: every y[t] is the token after x[t]")


def check_count_blocks(count_blocks):
    """count_blocks(n_ids, block_size, stride) -> how many (x, y) blocks fit in n_ids ids."""
    cases = [(20, 4, 4), (21, 4, 4), (100, 10, 1), (100, 10, 3), (11, 10, 5), (10, 10, 1), (5, 10, 2)]
    for n, T, stride in cases:
        got = attempt(count_blocks, n, T, stride)
        right = max(0, (n - T - 1) // stride + 1)
        where = f"For {n} ids, block_size {T}, stride {stride}"
        expect(isinstance(got, int) and not isinstance(got, bool),
               f"`count_blocks` should return a whole number (an int), got {got!r}: use // to divide.")
        expect(got >= 0, f"{where} you return {got}: when the text is shorter than block_size + 1 no block fits, "
               "so the answer is 0, never negative.")
        expect(not (got != right and got == max(0, (n - T) // stride + 1)),
               f"{where} you count {got}, one block too many: the target needs one id AFTER the block, "
               "so the last block must start at n_ids - block_size - 1 or earlier.")
        expect(not (got != right and got == max(0, (n - T - 1) // stride)),
               f"{where} you count {got}, one block too few: the block that starts at position 0 counts too (+1).")
        expect(got == right, f"{where} there are {right} blocks, you count {got}. Blocks start at 0, stride, "
               "2*stride, ... as long as start + block_size + 1 <= n_ids.")
    passed("(n_ids - block_size - 1) // stride + 1 blocks (0 when the text is too short)")


def check_padded_pair(padded_pair):
    """padded_pair(tokens, next_token, block_size, pad_id) -> (x, y) of one padded block."""
    cases = [([5, 6, 7], 8, 5, 0), ([5, 6, 7, 9, 4], 1, 5, 0), ([3], None, 4, 50256), ([1, 2], None, 2, 9), ([4, 4], 7, 6, 50256)]
    for tokens, next_token, T, pad_id in cases:
        where = f"For tokens={tokens}, next_token={next_token}, block_size={T}, pad_id={pad_id}"
        given = list(tokens)
        got = attempt(padded_pair, given, next_token, T, pad_id)
        expect(given == tokens, f"{where}: `padded_pair` changed the tokens list it was given (now {given}); "
                                "build new lists instead (tokens + [...] makes a copy, tokens += [...] does not).")
        if next_token is None and isinstance(got, (tuple, list)) and len(got) == 2 and None in list(got[1]):
            raise ExerciseError(f"{where}: y holds None. next_token is None at the end of the text: nothing follows "
                                "the last token, so its target is -100.")
        x, y = _pair(got, "padded_pair")
        pad = T - len(tokens)
        last = -100 if next_token is None else next_token
        right_x, right_y = tokens + [pad_id] * pad, tokens[1:] + [last] + [-100] * pad
        expect(len(x) == T and len(y) == T,
               f"{where}: x and y should each hold block_size = {T} ids, got {len(x)} and {len(y)}.")
        expect(not (pad and x == tokens + [-100] * pad),
               f"{where}: x is padded with -100, but x goes into the model's embedding table, which has no row -100: "
               "pad x with pad_id; -100 belongs in y only.")
        expect(x == right_x, f"{where}: x should be the tokens, then pad_id up to block_size: {right_x}; got {x}.")
        expect(not (pad and y == tokens[1:] + [last] + [pad_id] * pad),
               f"{where}: y is padded with pad_id, so the loss would teach the model to predict padding. "
               "Put -100 there: F.cross_entropy ignores targets of -100.")
        expect(not (next_token is not None and y[len(tokens) - 1] == -100),
               f"{where}: the last real token still has a target, next_token ({next_token}), the first token "
               "of the next block; only padding gets -100.")
        expect(not (next_token is None and y[len(tokens) - 1] != -100),
               f"{where}: next_token is None (the end of the text): nothing follows the last token, so its target is -100.")
        expect(y == right_y, f"{where}: y should be {right_y} (tokens[1:], then next_token, then -100 on padding); got {y}.")
    passed("x = tokens + pad_id padding, y = tokens[1:] + [next_token] + -100 on padding")


def check_loss_ignoring_padding(loss_ignoring_padding):
    """loss_ignoring_padding(logits, targets) -> mean cross-entropy over the targets that are not -100."""
    g = torch.Generator().manual_seed(2)
    cases = [(torch.tensor([3, 0, 1, 4]), 5), (torch.tensor([2, 7, -100, -100, -100]), 8), (torch.tensor([-100, 1, -100, 0, 2, -100]), 3)]
    for targets, V in cases:
        logits = 2 * torch.randn(len(targets), V, generator=g)  # (N, V)
        right = F.cross_entropy(logits, targets)  # ignore_index=-100 by default
        padded = bool((targets == -100).any())
        where = f"For logits {tuple(logits.shape)} and targets {targets.tolist()}"
        try:
            with _forbidden(F, "cross_entropy", "nll_loss", why="they skip -100 by themselves (their default "
                            "ignore_index); keep the rows whose target is not -100 and average "
                            "-log_softmax(logits)[row, target] by hand"):
                got = attempt(loss_ignoring_padding, logits.clone(), targets.clone())
        except ExerciseError as e:
            if padded and "crashed" in str(e):
                raise ExerciseError(f"{where}: {e}. -100 is not a class: keep only the positions where "
                                    "targets != -100 before you pick the log-probabilities.") from None
            raise
        expect(isinstance(got, (torch.Tensor, float)) and torch.as_tensor(got).numel() == 1,
               f"`loss_ignoring_padding` should return one number (a 0-d tensor), got {got!r:.60}.")
        got = torch.as_tensor(got, dtype=torch.float32)
        keep = targets != -100
        picked = -logits.log_softmax(dim=-1)[keep.nonzero().squeeze(1), targets[keep]]  # (kept,)
        expect(not (padded and torch.isclose(got, picked.sum() / len(targets))),
               f"{where}: you divided by all {len(targets)} positions; the padding is not part of the loss, "
               f"so average over the {int(keep.sum())} kept positions only.")
        expect(not torch.isclose(got, picked.sum()) or torch.isclose(right, picked.sum()),
               f"{where}: that is the sum of the losses; take their mean over the kept positions.")
        wrong_dim = -logits.log_softmax(dim=0)[keep.nonzero().squeeze(1), targets[keep]].mean()
        expect(not torch.isclose(got, wrong_dim),
               f"{where}: the softmax runs over the vocabulary, the last dim (dim=-1), not over the positions.")
        expect(torch.isclose(got, right, atol=1e-5),
               f"{where}: the loss should be {right.item():.4f}, got {got.item():.4f}. Keep the rows whose target "
               "is not -100, take -log_softmax(logits)[row, target] for each, and average.")
    passed("the mean cross-entropy over real targets only: the same as F.cross_entropy with ignore_index=-100")


# --- lesson 03: attention -----------------------------------------------------------------


def _expect_tensor_of_shape(got, shape, name):
    expect(isinstance(got, torch.Tensor), f"`{name}` should return a tensor, got {type(got).__name__}.")
    expect(tuple(got.shape) == tuple(shape), f"`{name}` should return shape {tuple(shape)}, got {tuple(got.shape)}.")


def check_scaled_scores(scaled_scores):
    """scaled_scores(q, k) -> q @ kᵀ / sqrt(D) for q (B, H, Tq, D) and k (B, H, Tk, D)."""
    g = torch.Generator().manual_seed(3)
    for q_shape, k_shape in [((2, 3, 5, 16), (2, 3, 5, 16)), ((1, 2, 2, 16), (1, 2, 6, 16)), ((1, 1, 1, 1), (1, 1, 1, 1))]:
        q, k = torch.randn(q_shape, generator=g), torch.randn(k_shape, generator=g)
        right = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5  # (B, H, Tq, Tk)
        got = attempt(scaled_scores, q, k)
        _expect_tensor_of_shape(got, right.shape, "scaled_scores")
        D = q.size(-1)
        if D > 1:
            expect(not torch.allclose(got, right * D**0.5, atol=1e-5),
                   f"These are the raw scores q @ kᵀ: divide them by sqrt(D), the square root of the head size "
                   f"(here sqrt({D}) = {D**0.5:g}), so that their spread stays near 1.")
            expect(not torch.allclose(got, right / D**0.5, atol=1e-5),
                   f"You divided by D = {D}; divide by its square root, sqrt(D) = {D**0.5:g}.")
        if q.shape == k.shape and q.size(2) > 1:
            expect(not torch.allclose(got, right.transpose(-2, -1), atol=1e-5),
                   "Rows and columns are swapped: scores[..., i, j] is query i · key j, so compute q @ k.transpose(-2, -1).")
        expect(torch.allclose(got, right, atol=1e-5),
               f"For q {tuple(q.shape)} and k {tuple(k.shape)} the scores are not q @ kᵀ / sqrt(D) yet: "
               "transpose the last two dims of k, matrix-multiply, divide by math.sqrt(q.size(-1)).")
    passed("scores = q @ kᵀ / sqrt(D), shape (B, H, Tq, Tk)")


def check_masked_softmax(masked_softmax):
    """masked_softmax(scores) -> causal attention weights, for scores (..., T, T)."""
    g = torch.Generator().manual_seed(4)
    for shape in [(2, 3, 6, 6), (1, 1), (4, 4)]:
        scores = 2 * torch.randn(shape, generator=g)
        T = shape[-1]
        above = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)  # the future
        right = scores.masked_fill(above, float("-inf")).softmax(dim=-1)
        given = scores.clone()
        got = attempt(masked_softmax, given)
        expect(torch.equal(given, scores),
               "`masked_softmax` changed the scores it was given (an in-place masked_fill_?): the caller may still "
               "need them, and autograd cannot differentiate through an overwritten tensor. Use masked_fill, "
               "which returns a new tensor.")
        _expect_tensor_of_shape(got, right.shape, "masked_softmax")
        expect(not got.isnan().any(),
               "Your weights contain NaN: a row whose every entry is -inf has nothing to share out. "
               "A token may look at itself, so mask only strictly above the diagonal (diagonal=1).")
        below = torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1)
        if T > 1:
            expect(not ((got[..., below] == 0).all() and (got[..., above] > 0).all()),
                   "The mask is on the wrong side: row i is a query and may look at keys (columns) 0..i, "
                   "so block the entries ABOVE the diagonal, torch.triu(..., diagonal=1).")
            expect((got[..., above] == 0).all(),
                   "Your weights look into the future: entries above the diagonal must be exactly 0. "
                   "Fill them with float('-inf') before the softmax (a 0 is not enough: exp(0) = 1).")
            expect(not torch.allclose(got.sum(dim=-2), torch.ones(got.shape[:-2] + (T,)), atol=1e-5),
                   "Your columns sum to 1, not your rows: take the softmax over the keys, dim=-1.")
        expect(torch.allclose(got.sum(dim=-1), torch.ones(got.shape[:-1]), atol=1e-5),
               "Each row must sum to 1: apply the mask BEFORE the softmax (masking after it removes weight "
               "from the rows), and take the softmax over the last dim.")
        expect(torch.allclose(got, right, atol=1e-5),
               "Not the masked softmax yet: scores.masked_fill(future, float('-inf')).softmax(dim=-1), "
               "with future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1).")
    big = torch.tensor([[1000.0, 0.0], [1000.0, 999.0]])
    got = attempt(masked_softmax, big)
    expect(torch.allclose(got, big.masked_fill(torch.tensor([[False, True], [False, False]]), float("-inf")).softmax(-1)),
           "Large scores break your softmax (exp(1000) overflows): use torch.softmax, or subtract each row's max first.")
    passed("causal masked softmax: rows sum to 1, nothing above the diagonal")


def check_split_heads(split_heads):
    """split_heads(x, n_head): (B, T, C) -> (B, H, T, D) with D = C // H."""
    for B, T, C, H in [(2, 3, 8, 2), (1, 5, 6, 3), (2, 4, 8, 1), (1, 1, 4, 4)]:
        x = torch.arange(B * T * C, dtype=torch.float32).view(B, T, C)  # readable numbers
        D = C // H
        right = x.view(B, T, H, D).transpose(1, 2)
        got = attempt(split_heads, x, H)
        _expect_tensor_of_shape(got, (B, H, T, D), "split_heads")
        expect(not (T > 1 and H > 1 and torch.equal(got, x.reshape(B, H, T, D))),
               "You reshaped straight to (B, H, T, D): that cuts the sequence into pieces instead of the channels. "
               "View x as (B, T, H, D) first, then swap T and H with .transpose(1, 2).")
        expect(torch.equal(got, right),
               f"For x {(B, T, C)} and {H} heads: head h at time t must hold channels h*D .. (h+1)*D - 1 of "
               "token t. View as (B, T, H, D), then .transpose(1, 2).")
    passed("(B, T, C) -> (B, H, T, D): each head gets its own D channels of every token")


def check_merge_heads(merge_heads):
    """merge_heads(y): (B, H, T, D) -> (B, T, C) with C = H * D, undoing split_heads."""
    for B, H, T, D in [(2, 2, 3, 4), (1, 3, 5, 2), (2, 1, 4, 8), (1, 4, 1, 1)]:
        y = torch.arange(B * H * T * D, dtype=torch.float32).view(B, H, T, D)
        right = y.transpose(1, 2).reshape(B, T, H * D)
        got = attempt(merge_heads, y)
        _expect_tensor_of_shape(got, (B, T, H * D), "merge_heads")
        expect(not (T > 1 and H > 1 and torch.equal(got, y.reshape(B, T, H * D))),
               "You reshaped without moving the heads back: .transpose(1, 2) to (B, T, H, D) first, "
               "then .contiguous().view(B, T, C) (or .reshape).")
        expect(torch.equal(got, right),
               f"For y {(B, H, T, D)}: token t must hold head 0's D channels, then head 1's, and so on. "
               "Transpose to (B, T, H, D), then flatten the last two dims.")
    passed("(B, H, T, D) -> (B, T, C): the heads side by side again")


# --- lesson 04: the GPT model -------------------------------------------------------------


def check_layer_norm(layer_norm):
    """layer_norm(x, weight, bias, eps=1e-5): normalise each position's C numbers, then scale and shift."""
    g = torch.Generator().manual_seed(5)
    constant_row = torch.randn(2, 3, 6, generator=g)
    constant_row[0, 1] = 4.0  # every channel equal: variance 0
    tiny = 1e-3 * torch.randn(3, 4, 8, generator=g)  # variance about 1e-6, below eps: where eps goes shows
    for x in [3 * torch.randn(2, 4, 8, generator=g) + 1, constant_row, torch.randn(5, 16, generator=g), tiny]:
        C = x.size(-1)
        weight, bias = 1 + torch.randn(C, generator=g) / 2, torch.randn(C, generator=g) / 2
        right = F.layer_norm(x, (C,), weight, bias, eps=1e-5)
        got = attempt(layer_norm, x.clone(), weight, bias)
        _expect_tensor_of_shape(got, x.shape, "layer_norm")
        expect(not got.isnan().any() and not got.isinf().any(),
               "Your output has NaN or inf: a position whose channels are all equal has variance 0. "
               "Divide by torch.sqrt(var + eps), not by the standard deviation alone.")
        mean = x.mean(-1, keepdim=True)
        unbiased = (x - mean) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5) * weight + bias
        expect(not torch.allclose(got, unbiased, atol=1e-5),
               "You used the unbiased variance (it divides by C - 1). LayerNorm divides by C: "
               "x.var(dim=-1, keepdim=True, unbiased=False), or ((x - mean) ** 2).mean(dim=-1, keepdim=True).")
        plain = F.layer_norm(x, (C,), eps=1e-5)
        expect(not torch.allclose(got, plain, atol=1e-5),
               "The normalising is right; now scale by `weight` and shift by `bias` (both of shape (C,)).")
        expect(x is not tiny or torch.allclose(got, right, atol=1e-4),
               "Right for ordinary inputs, wrong when a position's numbers barely differ (variance 1e-6, "
               "below eps): eps goes inside the square root, (x - mean) / torch.sqrt(var + eps), not "
               "(x - mean) / (std + eps) and not torch.sqrt(var.clamp(min=eps)).")
        expect(torch.allclose(got, right, atol=1e-4),
               f"For x of shape {tuple(x.shape)} this is not LayerNorm yet: over the LAST dim (keepdim=True), "
               "subtract the mean, divide by sqrt(variance + eps), then * weight + bias.")
    passed("LayerNorm by hand equals F.layer_norm, also on a row of equal numbers")


def check_gelu_mlp(mlp_forward):
    """mlp_forward(x, c_fc, c_proj): GPT-2's MLP, c_proj(GELU_tanh(c_fc(x))), x (B, T, C) -> (B, T, C)."""
    torch.manual_seed(6)
    for B, T, C in [(2, 5, 8), (1, 1, 4), (3, 2, 12)]:
        c_fc, c_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        x = 3 * torch.randn(B, T, C)  # wide enough that the two GELUs differ
        with torch.no_grad():
            right = c_proj(F.gelu(c_fc(x), approximate="tanh"))
            got = attempt(mlp_forward, x, c_fc, c_proj)
            _expect_tensor_of_shape(got, (B, T, C), "mlp_forward")
            for wrong, message in [
                (c_proj(F.gelu(c_fc(x))), "You used the exact GELU (with erf). GPT-2 uses its tanh approximation, "
                 "F.gelu(h, approximate='tanh'): the two differ by up to ~5e-4, enough to change GPT-2's logits."),
                (c_proj(F.relu(c_fc(x))), "That is ReLU; GPT-2 bends with GELU: F.gelu(h, approximate='tanh')."),
                (c_proj(c_fc(x)), "Two Linear layers with nothing between them are just one Linear layer: "
                 "put F.gelu(h, approximate='tanh') between c_fc and c_proj."),
            ]:
                expect(not torch.allclose(got, wrong, atol=1e-6), message)
            expect(torch.allclose(got, right, atol=1e-5),
                   "Not the MLP yet: widen with c_fc (C -> 4C), apply F.gelu(h, approximate='tanh'), "
                   "project back with c_proj (4C -> C).")
    passed("the GELU MLP: C -> 4C -> GELU (tanh) -> C, position by position")


def check_embed(embed):
    """embed(idx, wte, wpe, past=0): token embeddings plus the embeddings of positions past .. past + T - 1."""
    torch.manual_seed(7)
    V, block_size, C = 11, 9, 6
    wte, wpe = nn.Embedding(V, C), nn.Embedding(block_size, C)
    for B, T, past in [(2, 4, 0), (1, 9, 0), (3, 1, 5), (2, 3, 6)]:
        idx = torch.randint(0, V, (B, T))
        with torch.no_grad():
            positions = torch.arange(past, past + T)  # (T,)
            right = wte(idx) + wpe(positions)  # (B, T, C) + (T, C)
            got = attempt(embed, idx, wte, wpe, past)
            _expect_tensor_of_shape(got, (B, T, C), "embed")
            expect(not torch.allclose(got, wte(idx), atol=1e-6),
                   "Only the token embeddings: add the position embeddings too, or the model cannot tell "
                   "'dog bites man' from 'man bites dog'.")
            expect(not torch.allclose(got, wte(idx) + wpe(idx.clamp(max=block_size - 1)), atol=1e-6),
                   "wpe is looked up by POSITION (0, 1, 2, ...), not by token id: wpe(torch.arange(past, past + T)).")
            if past > 0:
                expect(not torch.allclose(got, wte(idx) + wpe(torch.arange(T)), atol=1e-6),
                       f"With {past} tokens already cached, the new tokens sit at positions {past}.."
                       f"{past + T - 1}: use torch.arange(past, past + T).")
            expect(torch.allclose(got, right, atol=1e-6),
                   "Not the input embedding yet: wte(idx) (B, T, C) + wpe(torch.arange(past, past + T)) (T, C).")
    passed("token + position embeddings, positions counted from `past`")


def check_block_params(block_params):
    """block_params(n_embd, bias): how many parameters one transformer Block has."""
    for C, bias in [(64, True), (768, True), (4, True), (64, False), (128, False)]:
        config = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=C, bias=bias)
        right = sum(p.numel() for p in Block(config).parameters())
        got = attempt(block_params, C, bias)
        expect(isinstance(got, int), f"`block_params` should return an int, got {type(got).__name__}.")
        expect(got != 12 * C * C,
               f"{got:,} counts the weight matrices only (12·C²). Add the biases of the four Linear layers "
               "(3C + C + 4C + C) and the two LayerNorms' weight and bias (2C each).")
        if not bias:
            expect(got != 12 * C * C + 13 * C,
                   f"With bias=False the Linear layers and LayerNorms have no biases ({got:,} counts them); "
                   "each LayerNorm still has its weight of C numbers.")
            expect(got != 12 * C * C + 4 * C,
                   f"With bias=False the LayerNorms lose their biases too ({got:,} keeps them): C numbers each, not 2C.")
        expect(got == right,
               f"For n_embd={C}, bias={bias}: {got:,} is not {right:,}. Count c_attn (C -> 3C), attn.c_proj (C -> C), "
               "mlp.c_fc (C -> 4C), mlp.c_proj (4C -> C), each weight in x out (+ out biases), and ln_1, ln_2.")
    passed("a block has 12·C² + 13·C parameters (12·C² + 2·C without biases)")


# --- lesson 05: training ------------------------------------------------------------------


def _as_float(got, name):
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        return got.item()
    expect(isinstance(got, (int, float)) and not isinstance(got, bool),
           f"`{name}` should return one number (a float or a one-element tensor), got {type(got).__name__}.")
    return float(got)


def check_cross_entropy(cross_entropy):
    """cross_entropy(logits (N, V), targets (N,)) -> the mean of -log softmax(logits)[target]."""
    g = torch.Generator().manual_seed(8)
    cases = [(torch.randn(5, 7, generator=g), torch.randint(0, 7, (5,), generator=g)),
             (torch.zeros(3, 65), torch.tensor([0, 10, 64])),  # uniform: the loss is ln(65)
             (torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]]), torch.tensor([0, 2]))]  # huge logits
    for logits, targets in cases:
        right = F.cross_entropy(logits, targets).item()
        got = _as_float(attempt(cross_entropy, logits.clone(), targets.clone()), "cross_entropy")
        probs = logits.softmax(-1)[torch.arange(len(targets)), targets]
        expect(not math.isclose(got, -probs.mean().item(), abs_tol=1e-4),
               "You averaged -p(target). The loss is the mean of -LOG p(target): take the log of the softmax.")
        expect(not math.isclose(got, right * len(targets), rel_tol=1e-4) or len(targets) == 1,
               "You summed over the positions; the loss is their mean (divide by N), so it does not grow with the batch.")
        expect(math.isfinite(got),
               f"Your loss is {got} for logits as large as 1000: softmax(x) overflows in exp. Use "
               "logits.log_softmax(dim=-1), or subtract each row's max before exp (log-sum-exp).")
        expect(math.isclose(got, right, rel_tol=1e-4, abs_tol=1e-4),
               f"Expected {right:.4f}, got {got:.4f}: per row take log_softmax over the V scores, pick the "
               "target's entry (logp[torch.arange(N), targets]), negate, and average.")
    passed("cross-entropy by hand equals F.cross_entropy, also for uniform and for huge logits")


def check_lr_at_step(lr_at_step):
    """lr_at_step(step, warmup_iters, decay_iters, max_lr, min_lr): linear warmup, then a cosine to min_lr."""
    for warmup, decay, max_lr, min_lr in [(10, 100, 1e-3, 1e-4), (0, 50, 6e-4, 0.0), (5, 30, 2e-3, 2e-4)]:
        config = TrainConfig(max_iters=decay, warmup_iters=warmup, learning_rate=max_lr, min_lr=min_lr)
        for step in sorted({0, 1, warmup - 1, warmup, (warmup + decay) // 2, decay - 1, decay, decay + 7} - {-1}):
            right = lr_at(step, config)
            got = _as_float(attempt(lr_at_step, step, warmup, decay, max_lr, min_lr), "lr_at_step")
            if math.isclose(got, right, rel_tol=1e-6, abs_tol=1e-12):
                continue
            if step < warmup:
                expect(not math.isclose(got, max_lr * step / warmup, rel_tol=1e-6),
                       f"At step {step} of the warmup: count the steps from 1, max_lr * (step + 1) / warmup_iters, "
                       "so step 0 already learns a little and the last warmup step reaches max_lr.")
                expect(False, f"At step {step} (warmup of {warmup}) expected {right:.3g}, got {got:.3g}: "
                              "the rate climbs linearly, max_lr * (step + 1) / warmup_iters.")
            expect(step < decay, f"At step {step}, past decay_iters={decay}, the rate stays at min_lr={min_lr}, got {got:.3g}.")
            expect(False, f"At step {step} (warmup {warmup}, decay to step {decay}) expected {right:.3g}, got {got:.3g}. "
                          "After the warmup, progress = (step - warmup) / (decay - warmup) goes 0 -> 1 and "
                          "lr = min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr).")
    passed("warmup then cosine decay, the same rate as numogpt.train.lr_at at every step tried")


def check_decayed_names(decayed_names):
    """decayed_names(model) -> the names of the parameters that get weight decay."""
    model = GPT(GPTConfig.preset("nano", vocab_size=20, block_size=8))
    right, _ = weight_decay_groups(model)
    got = attempt(decayed_names, model)
    expect(not isinstance(got, str) and hasattr(got, "__iter__"),
           f"Return a list (or set) of parameter names, got {type(got).__name__}.")
    got = list(got)
    expect(all(isinstance(n, str) for n in got),
           "Some items are not strings: return the parameter NAMES (strings) from model.named_parameters(), "
           "not the tensors (for name, p in model.named_parameters(): ... name).")
    got = set(got)
    names = {name for name, _ in model.named_parameters()} | {"lm_head.weight"}
    expect(got <= names, f"These are not parameter names of the model: {sorted(got - names)[:3]}. "
                         "Use the names from model.named_parameters().")
    embeddings = {"transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"} & got
    expect(not embeddings, f"{sorted(embeddings)} are embeddings (lm_head.weight is wte.weight, tied). "
                           "Decaying them is a convention, not a must: minGPT leaves them undecayed, nanoGPT "
                           "decays them, and both train well. This course leaves them out.")
    small = sorted(n for n in got if n.endswith(".bias") or ".ln_" in n)
    expect(not small, f"{small[:3]} are biases or LayerNorm parameters (1-D). Decay pulls weights towards 0, "
                      "but a LayerNorm gain should stay near its natural value 1 (it is a scale, not an offset) "
                      "and a bias is an offset: decaying them only hurts.")
    missing = sorted(set(right) - got)
    expect(not missing, f"These weight matrices should be decayed too: {missing[:3]}. Decay every parameter "
                        "with p.dim() >= 2 except the embeddings.")
    passed(f"the {len(right)} weight matrices of the attention and MLP layers get decay, nothing else")


def check_clip_gradients(clip_gradients):
    """clip_gradients(grads, max_norm) -> the grads scaled together so that their joint norm <= max_norm."""
    g = torch.Generator().manual_seed(9)
    for scale, max_norm in [(10.0, 1.0), (0.01, 1.0), (3.0, 0.5)]:
        grads = [scale * torch.randn(4, 3, generator=g), scale * torch.randn(5, generator=g)]
        params = [torch.nn.Parameter(torch.zeros_like(t)) for t in grads]
        for p, t in zip(params, grads):
            p.grad = t.clone()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        got = attempt(clip_gradients, [t.clone() for t in grads], max_norm)
        expect(isinstance(got, (list, tuple)) and len(got) == len(grads) and all(
            isinstance(t, torch.Tensor) and t.shape == r.shape for t, r in zip(got, grads)),
               "Return a list with one tensor per gradient, each of its gradient's shape.")
        total = torch.cat([t.flatten() for t in grads]).norm().item()
        per_tensor = [t * min(1.0, max_norm / t.norm().item()) for t in grads]
        expect(not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, per_tensor)) or total <= max_norm,
               "You clipped each tensor on its own. Clip them together: compute the norm of ALL gradients "
               "as one long vector, sqrt(sum of every tensor's squared entries), and scale all by the same factor.")
        expect(total > max_norm or all(torch.allclose(a, b) for a, b in zip(got, grads)),
               f"The gradients' norm ({total:.3f}) is already below max_norm={max_norm}: leave them as they are "
               "(clipping only ever scales down).")
        expect(all(torch.allclose(a, p.grad, rtol=1e-4, atol=1e-6) for a, p in zip(got, params)),
               f"With a joint norm of {total:.3f} and max_norm={max_norm}, every gradient should be multiplied by "
               f"max_norm / norm = {max_norm / total:.4f}.")
    passed("clipping by the joint norm, like torch.nn.utils.clip_grad_norm_")


# --- lesson 06: sampling ------------------------------------------------------------------


def _expect_logits_like(got, logits, name):
    expect(isinstance(got, torch.Tensor), f"`{name}` should return a tensor, got {type(got).__name__}.")
    expect(got.shape == logits.shape, f"`{name}` should return the shape of its input {tuple(logits.shape)}, "
                                      f"got {tuple(got.shape)}.")


def _kept(logits):
    return logits > float("-inf")


def check_softmax_with_temperature(softmax_with_temperature):
    """softmax_with_temperature(logits, temperature) -> probabilities (..., V), temperature > 0."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 3.0, 0.0]])
    for temperature in (1.0, 0.5, 2.0, 0.1):
        right = torch.softmax(logits / temperature, dim=-1)
        given = logits.clone()
        got = attempt(softmax_with_temperature, given, temperature)
        _expect_logits_like(got, logits, "softmax_with_temperature")
        expect(torch.equal(given, logits), "Your function changed the logits it was given (in place): "
                                           "compute a new tensor, e.g. logits / temperature.")
        expect(torch.allclose(got.sum(dim=-1), torch.ones(2), atol=1e-5),
               "Each row of probabilities must sum to 1: apply the softmax over the last dim (dim=-1), "
               "after dividing by the temperature (dividing the probabilities afterwards breaks the sum).")
        if temperature != 1.0:
            expect(not torch.allclose(got, torch.softmax(logits, dim=-1), atol=1e-5),
                   f"At temperature {temperature} you returned the plain softmax: divide the logits by the temperature first.")
            expect(not torch.allclose(got, torch.softmax(logits * temperature, dim=-1), atol=1e-5),
                   "You multiplied by the temperature; divide by it: a low temperature must make the "
                   "distribution sharper (the big logits grow further apart).")
        expect(torch.allclose(got, right, atol=1e-5),
               f"At temperature {temperature} the probabilities are not softmax(logits / temperature) yet.")
    passed("softmax(logits / temperature): sharper below 1, flatter above 1")


def check_top_k_filter(top_k_filter):
    """top_k_filter(logits, k) -> logits with all but the k largest of each row set to -inf."""
    logits = torch.randn(3, 10, generator=torch.Generator().manual_seed(6))  # distinct values, no ties
    for k in (3, 1, 10):
        right = logits.masked_fill(logits < logits.topk(k).values[..., -1:], float("-inf"))
        got = attempt(top_k_filter, logits.clone(), k)
        _expect_logits_like(got, logits, "top_k_filter")
        expect(not ((got == 0) & (right == float("-inf"))).any(),
               "You set the removed logits to 0, but a logit of 0 still has probability (exp(0) = 1): "
               "set them to float('-inf') so that softmax gives them exactly 0.")
        counts = _kept(got).sum(dim=-1).tolist()
        expect(counts == [k] * 3, f"With k = {k} every row must keep exactly {k} tokens; your rows keep {counts}. "
                                  "Compare each logit with the k-th largest of its row (torch.topk(logits, k).values[..., -1:]).")
        smallest = logits.masked_fill(logits > logits.topk(k, largest=False).values[..., -1:], float("-inf"))
        expect(k == 10 or not torch.equal(_kept(got), _kept(smallest)),
               "You kept the k SMALLEST logits: keep the k largest (torch.topk returns the largest by default).")
        expect(torch.equal(_kept(got), _kept(right)), f"With k = {k} you kept the wrong tokens: keep the k largest logits of each row.")
        expect(torch.equal(got[_kept(right)], logits[_kept(right)]),
               "The kept logits must stay exactly as they were; only the others become -inf.")
    passed("top-k keeps the k most likely tokens of each row and sets the rest to -inf")


def check_top_p_filter(top_p_filter):
    """top_p_filter(logits, p) -> logits with all but the nucleus of each row set to -inf."""
    # one row's probabilities, shuffled so that the answer must sort: 0.45, 0.25, 0.15, 0.1, 0.05
    probs = torch.tensor([[0.1, 0.45, 0.05, 0.25, 0.15]])
    cases = [(0.6, [1, 3]), (0.3, [1]), (0.8, [1, 3, 4]), (1.0, [0, 1, 2, 3, 4])]
    for p, nucleus in cases:
        logits = probs.log()
        got = attempt(top_p_filter, logits.clone(), p)
        _expect_logits_like(got, logits, "top_p_filter")
        expect(not (got == 0).any(), "You set the removed logits to 0, but a logit of 0 still has probability "
                                     "(exp(0) = 1): set them to float('-inf') so that softmax gives them exactly 0.")
        kept = torch.nonzero(_kept(got)[0]).flatten().tolist()
        if kept == nucleus:
            expect(torch.equal(got[0, nucleus], logits[0, nucleus]),
                   "The kept logits must stay exactly as they were; only the others become -inf.")
            continue
        expect(len(kept) > 0, f"With p = {p} you kept no token at all: the most likely token is always kept, "
                              "even when its probability alone is above p.")
        if len(kept) == len(nucleus) - 1:
            expect(False, f"With p = {p} you kept {kept}, one token short of the nucleus {nucleus}: keep "
                          "tokens until the total REACHES p, including the token that crosses it. A token is "
                          "kept when the probability of the tokens before it (in sorted order) is still below p.")
        expect(False, f"With p = {p} the nucleus of probabilities {probs[0].tolist()} is the tokens {nucleus} "
                      f"(most likely first, until their total reaches p); you kept {kept}. Sort by probability "
                      "(descending), take the cumulative sum, and map the decision back to the original order.")
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(7)) * 2
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    sorted_probs = sorted_logits.softmax(dim=-1)
    keep = (sorted_probs.cumsum(dim=-1) - sorted_probs) < 0.9
    right = torch.zeros_like(keep).scatter(-1, order, keep)
    got = attempt(top_p_filter, logits.clone(), 0.9)
    _expect_logits_like(got, logits, "top_p_filter")
    expect(torch.equal(_kept(got), right), "On a batch of 4 rows of 30 logits with p = 0.9 you kept other tokens than "
                                           "the nucleus: work row by row (sort and cumsum along dim=-1).")
    passed("top-p keeps the smallest set of most likely tokens whose probability reaches p")


def check_greedy_step(greedy_step):
    """greedy_step(model, idx) -> (B, 1): the most likely next token of each row, the context cropped."""
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10)  # bigger weights: distinct logits, one clear favourite
    g = torch.Generator().manual_seed(1)
    for shape in [(2, 5), (1, 1), (3, 8), (2, 12)]:
        idx = torch.randint(0, 11, shape, generator=g)
        with torch.no_grad():
            logits, _ = model(idx[:, -8:])  # (B, T, V)
        right = logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (B, 1)
        got = attempt(greedy_step, model, idx.clone())
        expect(isinstance(got, torch.Tensor), f"`greedy_step` should return a tensor of token ids, got {type(got).__name__}.")
        expect(not (got.shape == logits[:, -1, :].shape and got.is_floating_point()),
               "You returned the logits (B, V); return the id of the largest one: argmax over the last dim.")
        expect(tuple(got.shape) != (shape[0],),
               f"Return shape (B, 1) = ({shape[0]}, 1), not ({shape[0]},), so it can be appended with "
               "torch.cat([idx, next_id], dim=1): use argmax(dim=-1, keepdim=True).")
        expect(tuple(got.shape) == (shape[0], 1), f"For idx {tuple(idx.shape)} return shape ({shape[0]}, 1), got {tuple(got.shape)}.")
        if shape[1] > 1:
            expect(not torch.equal(got, logits[:, 0, :].argmax(dim=-1, keepdim=True)) or torch.equal(got, right),
                   "You took the prediction of the FIRST position: the next token comes from the last one, logits[:, -1, :].")
        expect(torch.equal(got, right), f"For idx {tuple(idx.shape)} the most likely next tokens are {right.flatten().tolist()}, "
                                        f"you gave {got.flatten().tolist()}: crop idx to the last block_size tokens, "
                                        "run the model, take the last position's logits and their argmax.")
    passed("greedy step: crop to the context, last position's logits, argmax -> (B, 1)")
