"""The checks behind the exercises of notebooks/03_attention.ipynb (lesson 03, attention).

The lesson's finished code is numogpt.attention. How a check works: see numogpt.exercises.
"""
import torch

from numogpt.exercises import attempt, expect, expect_tensor_of_shape, passed


def check_scaled_scores(scaled_scores):
    """scaled_scores(q, k) -> q @ kᵀ / sqrt(D) for q (B, H, Tq, D) and k (B, H, Tk, D)."""
    g = torch.Generator().manual_seed(3)
    for q_shape, k_shape in [((2, 3, 5, 16), (2, 3, 5, 16)), ((1, 2, 2, 16), (1, 2, 6, 16)), ((1, 1, 1, 1), (1, 1, 1, 1))]:
        q, k = torch.randn(q_shape, generator=g), torch.randn(k_shape, generator=g)
        right = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5  # (B, H, Tq, Tk)
        got = attempt(scaled_scores, q, k)
        expect_tensor_of_shape(got, right.shape, "scaled_scores")
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
        expect_tensor_of_shape(got, right.shape, "masked_softmax")
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
        expect_tensor_of_shape(got, (B, H, T, D), "split_heads")
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
        expect_tensor_of_shape(got, (B, T, H * D), "merge_heads")
        expect(not (T > 1 and H > 1 and torch.equal(got, y.reshape(B, T, H * D))),
               "You reshaped without moving the heads back: .transpose(1, 2) to (B, T, H, D) first, "
               "then .contiguous().view(B, T, C) (or .reshape).")
        expect(torch.equal(got, right),
               f"For y {(B, H, T, D)}: token t must hold head 0's D channels, then head 1's, and so on. "
               "Transpose to (B, T, H, D), then flatten the last two dims.")
    passed("(B, H, T, D) -> (B, T, C): the heads side by side again")
