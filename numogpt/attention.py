"""Lesson 03: attention, the part of a GPT where tokens look at each other.

Each position asks a question (its query), every position offers a label (its key) and a
message (its value). A query scores every key, softmax turns the scores into weights that
sum to one, and the answer is the weighted average of the values. In a GPT the mask is
causal: a position may only look at itself and the positions before it.

    >>> import torch
    >>> q = k = v = torch.randn(2, 4, 5, 8)          # (B, H, T, D)
    >>> out, weights = attention(q, k, v)
    >>> out.shape, weights.shape
    (torch.Size([2, 4, 5, 8]), torch.Size([2, 4, 5, 5]))
    >>> layer = CausalSelfAttention(n_embd=32, n_head=4)
    >>> layer(torch.randn(2, 5, 32)).shape              # (B, T, C)
    torch.Size([2, 5, 32])
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from numogpt.tools.arguments import require_int


def causal_mask(t_q, t_k, device=None):
    """Boolean (t_q, t_k) mask, True where query i may look at key j.

    The queries are the LAST t_q of the t_k positions (with a KV cache the keys of earlier
    steps come first), so query i sits at position t_k - t_q + i and sees keys 0..t_k - t_q + i.

    >>> causal_mask(2, 4).int()
    tensor([[1, 1, 1, 0],
            [1, 1, 1, 1]], dtype=torch.int32)
    """
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def _validate_qkv(q, k, v, causal):
    shapes = f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    if not (q.dim() == k.dim() == v.dim() == 4):
        raise ValueError(f"attention wants (B, H, T, D) tensors, got {shapes}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape (B, H, T, D), got {shapes}")
    if q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q must match k in batch, heads and head size (B, H, _, D), got {shapes}")
    if causal and q.size(2) > k.size(2):
        raise ValueError(f"more queries than keys: with a causal mask the queries are the last positions of the keys, got {shapes}")


def attention(q, k, v, causal=True, dropout_p=0.0):
    """Scaled dot-product attention, written out step by step.

    q: (B, H, Tq, D); k, v: (B, H, Tk, D) with Tq <= Tk (the queries are the last Tq positions).
    Returns (out, weights): out (B, H, Tq, D) and the weights (B, H, Tq, Tk) that made it,
    after dropout, so that out == weights @ v. Dropout applies whenever dropout_p > 0, as in
    F.scaled_dot_product_attention: pass 0.0 outside training.
    """
    _validate_qkv(q, k, v, causal)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    # dividing by sqrt(D) keeps the scores' variance near 1 whatever the head size,
    # so softmax does not saturate into a one-hot that passes no gradient
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, Tq, Tk)
    if causal:
        allowed = causal_mask(q.size(2), k.size(2), device=q.device)  # (Tq, Tk)
        scores = scores.masked_fill(~allowed, float("-inf"))  # exp(-inf) = 0: no weight on the future
    weights = F.softmax(scores, dim=-1)  # each row sums to 1
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)  # drops some links, scales the rest by 1/(1-p)
    return weights @ v, weights  # (B, H, Tq, D), (B, H, Tq, Tk)


def require_heads(n_embd, n_head):
    """Raise unless `n_head` heads split `n_embd` channels evenly: each head gets n_embd // n_head."""
    require_int("n_embd", n_embd)
    require_int("n_head", n_head)
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head}): each head gets n_embd // n_head dims")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, as in GPT-2.

    The parameter names match GPT-2's (`c_attn`, `c_proj`), so lesson 04 can load its weights;
    c_attn.weight is (3C, C) in nn.Linear's layout (Hugging Face's Conv1D stores the transpose).

    forward(x, cache=None, return_weights=False):
      x (B, T, C) -> y (B, T, C). The fast path is F.scaled_dot_product_attention (one fused
      kernel that never keeps the (T, T) weights). With return_weights=True the layer takes
      the by-hand `attention` instead and returns (y, weights), weights (B, H, T, T_total),
      for plotting. `cache` is None or a per-layer object whose `extend(k, v)` appends this
      step's keys and values (B, H, T, D) and returns all of them (B, H, T_total, D).
    """

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True):
        super().__init__()
        require_heads(n_embd, n_head)
        self.n_embd, self.n_head = n_embd, n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # queries, keys and values in one matmul
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)  # mixes what the heads found
        self.attn_dropout = nn.Dropout(dropout)  # its rate .p drops attention weights (inside SDPA on the fast path)
        self.resid_dropout = nn.Dropout(dropout)

    def split_heads(self, x):
        """(B, T, C) -> (B, H, T, D): cut the channels into H heads of D = C // H."""
        B, T, C = x.shape
        return x.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

    def merge_heads(self, y):
        """(B, H, T, D) -> (B, T, C): put the heads side by side again."""
        B, H, T, D = y.shape
        return y.transpose(1, 2).contiguous().view(B, T, H * D)

    def forward(self, x, cache=None, return_weights=False):
        if x.dim() != 3 or x.size(-1) != self.n_embd:
            raise ValueError(f"x must be (B, T, n_embd={self.n_embd}), got shape {tuple(x.shape)}")
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, H, T, D)
        if cache is not None:
            k, v = cache.extend(k, v)  # (B, H, T_total, D): the past keys and values, then ours
        dropout_p = self.attn_dropout.p if self.training else 0.0
        if return_weights:
            y, weights = attention(q, k, v, causal=True, dropout_p=dropout_p)
        elif cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            y = attend_after_cache(q, k, v, dropout_p)
        y = self.resid_dropout(self.c_proj(self.merge_heads(y)))  # (B, T, C)
        return (y, weights) if return_weights else y


# --- for lesson 06's KV cache (lesson 03 can skip this) ----------------------------------------


def attend_after_cache(q, k, v, dropout_p=0.0):
    """Fused causal attention when the keys hold cached positions before the queries.

    q (B, H, T, D) are the last T of the T_total positions in k, v (B, H, T_total, D).
    SDPA's is_causal aligns its mask top-left (query 0 sees key 0 only), which is wrong
    here: query i sits at position T_total - T + i. One new token may see every key, so it
    needs no mask; several new tokens get causal_mask, which ends bottom-right.
    """
    T, T_total = q.size(2), k.size(2)
    mask = None if T == 1 else causal_mask(T, T_total, device=q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
