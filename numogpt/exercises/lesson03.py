"""The checks behind the exercises of notebooks/03_attention.ipynb (lesson 03, attention).

The lesson's finished code is numogpt.attention. How a check works: see numogpt.exercises.
"""
import torch
import torch.nn.functional as F

import numogpt.attention as library
from numogpt.exercises import ExerciseError, attempt, expect, expect_tensor_of_shape, passed, refusing

# the finished versions a by-hand answer must not call
READY_MADE = {"F.scaled_dot_product_attention": F.scaled_dot_product_attention,
              "numogpt.attention.attention": library.attention,
              "numogpt.attention.CausalSelfAttention.forward": library.CausalSelfAttention.forward}


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


def check_causal_mask(causal_mask):
    """causal_mask(t_q, t_k, device=None) -> bool (t_q, t_k), True where query i may see key j (the queries last)."""
    for t_q, t_k in [(4, 4), (2, 5), (1, 3), (3, 6), (1, 1)]:
        right = library.causal_mask(t_q, t_k)
        got = attempt(causal_mask, t_q, t_k)
        expect_tensor_of_shape(got, (t_q, t_k), f"causal_mask({t_q}, {t_k})")
        expect(got.dtype == torch.bool, f"causal_mask({t_q}, {t_k}) should hold True/False (dtype torch.bool), got "
                                        f"{got.dtype}: masked_fill and ~ want booleans. Add dtype=torch.bool.")
        shown = f"causal_mask({t_q}, {t_k}) gave\n{got.int()}\nexpected\n{right.int()}\n"
        expect(not torch.equal(got, ~right), f"{shown}True means 'may look': the query sees itself and the past, "
                                             "so True on and below the (shifted) diagonal, not above it.")
        if t_q < t_k:
            expect(not torch.equal(got, torch.ones(t_q, t_k, dtype=torch.bool).tril()),
                   f"{shown}The queries are the LAST {t_q} of the {t_k} positions: query i sits at position "
                   f"{t_k - t_q} + i and sees keys 0..{t_k - t_q} + i. Shift the diagonal: .tril(diagonal=t_k - t_q).")
        expect(torch.equal(got, right), f"{shown}torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q)")
    got = attempt(causal_mask, 2, 3, device="cpu")
    expect(torch.equal(got, library.causal_mask(2, 3)), "causal_mask(2, 3, device='cpu') should make the same mask "
                                                         "on that device: pass device= to torch.ones.")
    passed("causal_mask: True on and below the diagonal, shifted so the queries are the last positions")


def check_attention(attention):
    """attention(q, k, v, causal=True) -> (out, weights), as numogpt.attention.attention (without dropout)."""
    g = torch.Generator().manual_seed(8)
    cases = [((2, 3, 6, 8), 6, True), ((1, 2, 2, 4), 5, True), ((2, 2, 4, 8), 4, False), ((1, 1, 3, 4), 7, False),
             ((1, 1, 1, 16), 1, True)]
    for (B, H, Tq, D), Tk, causal in cases:
        q = torch.randn(B, H, Tq, D, generator=g, dtype=torch.float64)
        k, v = torch.randn(2, B, H, Tk, D, generator=g, dtype=torch.float64)
        right, right_weights = library.attention(q, k, v, causal=causal)
        with refusing(READY_MADE, why="this is the attention you will use from now on: "
                                      "scores, mask, softmax and the weighted sum, in your own lines"):
            got = attempt(attention, q, k, v, causal=causal)
        shapes = f"q {(B, H, Tq, D)}, k and v {(B, H, Tk, D)}, causal={causal}"
        expect(isinstance(got, tuple) and len(got) == 2,
               f"`attention` should return a pair (out, weights), as numogpt's does; got {type(got).__name__}. "
               "End with `return weights @ v, weights`.")
        out, weights = got
        expect_tensor_of_shape(weights, (B, H, Tq, Tk), "attention's weights")
        expect_tensor_of_shape(out, (B, H, Tq, D), "attention's out")
        expect(not weights.isnan().any(),
               f"For {shapes} your weights hold NaN: a row with every score at -inf. Query i is the LAST Tq "
               "positions' i-th, at position Tk - Tq + i: causal_mask(Tq, Tk) marks what it may see.")
        unscaled = torch.softmax((q @ k.transpose(-2, -1)).masked_fill(~library.causal_mask(Tq, Tk), float("-inf"))
                                 if causal else q @ k.transpose(-2, -1), dim=-1)
        expect(not (torch.allclose(weights, unscaled) and not torch.allclose(right_weights, unscaled)),
               "The scores are not scaled: divide q @ kᵀ by math.sqrt(D), D = q.size(-1).")
        if causal and Tq < Tk:
            top_left = torch.ones(Tq, Tk, dtype=torch.bool).tril()
            expect(not (weights[..., ~top_left] == 0).all() or (right_weights[..., ~top_left] == 0).all(),
                   f"For {shapes}: with fewer queries than keys, the queries are the LAST {Tq} positions, so query 0 "
                   f"sits at position {Tk - Tq} and may see keys 0..{Tk - Tq}. A (Tq, Tk) triangle from the top "
                   "left is wrong here: use causal_mask(Tq, Tk), whose diagonal ends bottom-right.")
        if not causal:
            expect(not (Tq > 1 and (weights[..., ~library.causal_mask(Tq, Tk)] == 0).all()),
                   "With causal=False every query may see every key: mask only when `causal` is True.")
        if causal:
            expect((weights[..., ~library.causal_mask(Tq, Tk)] == 0).all(),
                   f"For {shapes} some weights look into the future: set the masked scores to float('-inf') "
                   "BEFORE the softmax (masked_fill where causal_mask(Tq, Tk) is False).")
        expect(torch.allclose(weights.sum(-1), torch.ones(B, H, Tq, dtype=torch.float64)),
               "Each row of weights must sum to 1: softmax over the keys, dim=-1, after masking.")
        expect(torch.allclose(weights, right_weights),
               f"For {shapes} the weights are not softmax(q @ kᵀ / sqrt(D), masked) yet.")
        expect(torch.allclose(out, weights @ v),
               "The weights are right; the output is their weighted sum of the values: weights @ v.")
        expect(torch.allclose(out, right), f"For {shapes} the output is not numogpt's attention yet.")
    passed("attention(q, k, v, causal) equals numogpt.attention.attention: fewer queries than keys, "
           "causal or not, and it returns its weights")


def _library_twin(layer, n_embd, n_head, bias):
    """numogpt's layer with the weights of the learner's `layer` (which has GPT-2's parameter names)."""
    twin = library.CausalSelfAttention(n_embd, n_head, bias=bias).double().eval()
    try:
        twin.load_state_dict(layer.state_dict())
    except RuntimeError as e:
        raise ExerciseError("Your layer's parameters should be numogpt's: `c_attn` = nn.Linear(n_embd, 3 * n_embd) "
                            f"and `c_proj` = nn.Linear(n_embd, n_embd), nothing else. Loading them said: {e}") from None
    return twin


def check_self_attention(CausalSelfAttention):
    """CausalSelfAttention(n_embd, n_head): forward(x, return_weights=False) -> y, or (y, weights)."""
    torch.manual_seed(9)
    for B, T, C, H in [(2, 6, 16, 4), (1, 5, 12, 3), (3, 1, 8, 2), (1, 4, 8, 1)]:
        layer = attempt(CausalSelfAttention, C, H).double().eval()
        library_layer = _library_twin(layer, C, H, bias=True)
        x = torch.randn(B, T, C, dtype=torch.float64)
        with torch.no_grad():
            right, right_weights = library_layer(x, return_weights=True)
            with refusing(READY_MADE, why="write the layer's forward with your own split_heads, attention and "
                                          "merge_heads"):
                y = attempt(layer, x)
                got = attempt(layer, x, return_weights=True)
            expect_tensor_of_shape(y, (B, T, C), "the layer")
            q, k, v = layer.c_attn(x).split(C, dim=2)
            split = lambda t: t.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
            merge = lambda t: t.transpose(1, 2).reshape(B, T, C)
            sdpa = F.scaled_dot_product_attention(split(q), split(k), split(v), is_causal=True)  # (B, H, T, D)
            expect(not torch.allclose(y, merge(sdpa)),
                   "You forgot the output projection: after merging the heads, apply self.c_proj.")
            if T > 1:
                everything = F.scaled_dot_product_attention(split(q), split(k), split(v))
                expect(not torch.allclose(y, layer.c_proj(merge(everything))),
                       "Your layer looks into the future: call your attention with causal=True.")
            if H > 1 and T > 1:
                one_head = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], is_causal=True)  # (B, 1, T, C)
                expect(not torch.allclose(y, layer.c_proj(one_head[:, 0])),
                       f"You ran one head over all C channels: split q, k and v into self.n_head = {H} heads "
                       "with your split_heads first, and merge them back after attention.")
            expect(torch.allclose(y, layer.c_proj(merge(sdpa))),
                   f"For x {(B, T, C)} and {H} heads your layer differs from F.scaled_dot_product_attention between "
                   "c_attn and c_proj: q, k, v = self.c_attn(x).split(self.n_embd, dim=2); split the heads; attention; "
                   "merge the heads; self.c_proj.")
            expect(torch.allclose(y, right), "Your layer differs from numogpt.attention.CausalSelfAttention "
                                             "with the same weights.")
            expect(isinstance(got, tuple) and len(got) == 2,
                   "With return_weights=True the layer should return (y, weights), as numogpt's does.")
            expect_tensor_of_shape(got[1], (B, H, T, T), "the layer's weights")
            expect(torch.allclose(got[0], right) and torch.allclose(got[1], right_weights),
                   "With return_weights=True: return y (as without it) and the weights your attention returned.")
    passed("your multi-head causal self-attention equals numogpt's layer and F.scaled_dot_product_attention, "
           "with the same weights")
