"""The checks behind the exercises of notebooks/02_dataset.ipynb (lesson 02, the dataset).

The lesson's finished code is numogpt.data. How a check works: see numogpt.exercises.
"""

import torch
import torch.nn.functional as F

from numogpt.exercises import ExerciseError, attempt, expect, passed, refusing


def _as_id_list(got, name, what):
    """The learner's x or y as a list of ints, whether they returned a list or a tensor."""
    try:
        return [int(t) for t in got]
    except (TypeError, ValueError):
        raise ExerciseError(f"`{name}` should return {what} as a list of ints (or a 1-D tensor), got {got!r:.60}.") from None


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
            with refusing({"F.cross_entropy": F.cross_entropy, "F.nll_loss": F.nll_loss},
                          why="they skip -100 by themselves (their default ignore_index); keep the rows "
                              "whose target is not -100 and average -log_softmax(logits)[row, target] by hand"):
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
