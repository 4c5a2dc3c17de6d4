"""Lesson 03: our attention against PyTorch's F.scaled_dot_product_attention."""
import re

import pytest
import torch
import torch.nn.functional as F

from numogpt.attention import CausalSelfAttention, attention, causal_mask

TOL = {torch.float64: dict(atol=1e-12, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-4)}


def randn(*shape, dtype=torch.float64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def offset_mask_by_loop(t_q, t_k):
    """The cache mask written the slow way: query i sits at position t_k - t_q + i."""
    return torch.tensor([[j <= t_k - t_q + i for j in range(t_k)] for i in range(t_q)])


class ListCache:
    """The smallest cache that keeps the contract: append, then hand back everything."""

    def __init__(self):
        self.k = self.v = None

    def extend(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


# --- attention, the function ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 4), (3, 2, 17, 8), (1, 4, 64, 16)])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_equals_pytorch(shape, causal, dtype):
    q, k, v = (randn(*shape, dtype=dtype, seed=s) for s in range(3))
    out, weights = attention(q, k, v, causal=causal)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(out, expected, **TOL[dtype])
    assert weights.shape == shape[:3] + (shape[2],)
    torch.testing.assert_close(weights @ v, out, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("t_q, t_k", [(1, 1), (1, 7), (3, 7), (6, 7), (5, 12)])
def test_fewer_queries_than_keys_use_the_offset_mask(t_q, t_k, dtype):
    q = randn(2, 3, t_q, 8, dtype=dtype, seed=1)
    k, v = randn(2, 3, t_k, 8, dtype=dtype, seed=2), randn(2, 3, t_k, 8, dtype=dtype, seed=3)
    out, weights = attention(q, k, v)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=offset_mask_by_loop(t_q, t_k))
    torch.testing.assert_close(out, expected, **TOL[dtype])
    assert torch.equal(causal_mask(t_q, t_k), offset_mask_by_loop(t_q, t_k))
    assert (weights[..., ~offset_mask_by_loop(t_q, t_k)] == 0).all()


def test_the_last_queries_see_what_they_would_see_in_the_full_sequence():
    q, k, v = (randn(2, 2, 9, 4, seed=s) for s in range(3))
    full, _ = attention(q, k, v)
    last, _ = attention(q[:, :, -4:], k, v)
    torch.testing.assert_close(last, full[:, :, -4:], **TOL[torch.float64])


def test_weights_rows_sum_to_one_and_nothing_above_the_diagonal():
    q, k, v = (randn(2, 3, 10, 8, seed=s) for s in range(3))
    _, weights = attention(q, k, v)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 10, dtype=torch.float64))
    above = torch.ones(10, 10, dtype=torch.bool).triu(diagonal=1)
    assert (weights[..., above] == 0).all()
    assert (weights[..., ~above] > 0).all()


def test_no_dropout_is_deterministic():
    q, k, v = (randn(2, 2, 6, 4, seed=s) for s in range(3))
    a, _ = attention(q, k, v, dropout_p=0.0)
    b, _ = attention(q, k, v, dropout_p=0.0)
    assert torch.equal(a, b)


def test_dropout_changes_the_output_but_keeps_its_expectation():
    q, k, v = (randn(1, 1, 4, 8, seed=s) for s in range(3))
    clean, _ = attention(q, k, v)
    many = 20_000  # the same question asked many times, dropout draws anew for each
    torch.manual_seed(0)
    noisy, weights = attention(q.expand(many, -1, -1, -1), k.expand(many, -1, -1, -1), v.expand(many, -1, -1, -1), dropout_p=0.5)
    assert not torch.allclose(noisy[0], clean[0])
    assert set(weights.unique().tolist()) - {0.0} and (weights == 0).float().mean() > 0.3
    torch.testing.assert_close(noisy.mean(0), clean[0], atol=0.05, rtol=0)


@pytest.mark.parametrize("q_shape, k_shape, v_shape, words", [
    ((2, 5, 8), (2, 5, 8), (2, 5, 8), "(B, H, T, D)"),
    ((1, 2, 5, 8), (1, 2, 5, 8), (1, 2, 4, 8), "same shape"),
    ((1, 2, 5, 8), (1, 2, 5, 4), (1, 2, 5, 4), "head size"),
    ((1, 3, 5, 8), (1, 2, 5, 8), (1, 2, 5, 8), "heads"),
    ((1, 2, 6, 8), (1, 2, 5, 8), (1, 2, 5, 8), "more queries than keys"),
])
def test_attention_rejects_mismatched_shapes(q_shape, k_shape, v_shape, words):
    with pytest.raises(ValueError, match=r"q \(") as e:
        attention(torch.zeros(q_shape), torch.zeros(k_shape), torch.zeros(v_shape))
    assert words in str(e.value) and str(tuple(q_shape)) in str(e.value)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_attention_rejects_a_bad_dropout_rate(p):
    with pytest.raises(ValueError, match=str(p)):
        attention(*(torch.zeros(1, 1, 2, 2) for _ in range(3)), dropout_p=p)


# --- CausalSelfAttention, the layer ----------------------------------------------------------

def layer(n_embd=32, n_head=4, dropout=0.0, bias=True, seed=0):
    torch.manual_seed(seed)
    return CausalSelfAttention(n_embd, n_head, dropout=dropout, bias=bias).double().eval()


def test_parameters_are_named_and_shaped_like_gpt2():
    shapes = {name: tuple(p.shape) for name, p in layer(48, 4).state_dict().items()}
    assert shapes == {"c_attn.weight": (144, 48), "c_attn.bias": (144,), "c_proj.weight": (48, 48), "c_proj.bias": (48,)}
    assert set(layer(48, 4, bias=False).state_dict()) == {"c_attn.weight", "c_proj.weight"}


@pytest.mark.parametrize("n_embd, n_head, T", [(32, 4, 7), (24, 1, 5), (48, 6, 1), (16, 16, 9)])
def test_fast_path_equals_the_by_hand_path(n_embd, n_head, T):
    attn = layer(n_embd, n_head)
    x = randn(3, T, n_embd, seed=5)
    fast = attn(x)
    slow, weights = attn(x, return_weights=True)
    torch.testing.assert_close(fast, slow, **TOL[torch.float64])
    assert fast.shape == (3, T, n_embd) and weights.shape == (3, n_head, T, T)


def test_layer_equals_a_reference_built_from_pytorch_pieces():
    attn, x = layer(32, 4), randn(2, 6, 32, seed=7)
    wq, wk, wv = attn.c_attn.weight.chunk(3)
    bq, bk, bv = attn.c_attn.bias.chunk(3)
    heads = [F.scaled_dot_product_attention(
        (x @ wq[h * 8:(h + 1) * 8].T + bq[h * 8:(h + 1) * 8]),
        (x @ wk[h * 8:(h + 1) * 8].T + bk[h * 8:(h + 1) * 8]),
        (x @ wv[h * 8:(h + 1) * 8].T + bv[h * 8:(h + 1) * 8]), is_causal=True) for h in range(4)]
    expected = attn.c_proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(attn(x), expected, **TOL[torch.float64])


@pytest.mark.parametrize("n_embd, n_head, T", [(48, 6, 7), (32, 1, 4), (16, 4, 1)])
def test_layer_equals_transformers_gpt2_attention(n_embd, n_head, T):
    transformers = pytest.importorskip("transformers")
    from transformers.models.gpt2.modeling_gpt2 import GPT2Attention

    config = transformers.GPT2Config(n_embd=n_embd, n_head=n_head, attn_pdrop=0.0, resid_pdrop=0.0)
    config._attn_implementation = "eager"  # written out by hand, like ours; it takes the mask from outside
    torch.manual_seed(0)
    reference = GPT2Attention(config, layer_idx=0).double().eval()
    attn = layer(n_embd, n_head)
    with torch.no_grad():  # their Conv1D stores (in, out): the transpose of nn.Linear's weight
        for name in ["c_attn", "c_proj"]:
            getattr(attn, name).weight.copy_(getattr(reference, name).weight.T)
            getattr(attn, name).bias.copy_(getattr(reference, name).bias)
    x = randn(2, T, n_embd, seed=9)
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    additive_mask = torch.zeros(T, T, dtype=torch.float64).masked_fill(future, float("-inf"))[None, None]
    expected, expected_weights = reference(x, attention_mask=additive_mask)[:2]
    y, weights = attn(x, return_weights=True)
    torch.testing.assert_close(attn(x), expected, **TOL[torch.float64])
    torch.testing.assert_close(y, expected, **TOL[torch.float64])
    torch.testing.assert_close(weights, expected_weights, **TOL[torch.float64])


@pytest.mark.parametrize("by_hand", [False, True])
def test_the_future_does_not_change_the_past(by_hand):
    attn, x = layer(), randn(2, 8, 32, seed=1)
    run = (lambda x: attn(x, return_weights=True)[0]) if by_hand else attn
    y = run(x)
    for t in range(7):
        changed = x.clone()
        changed[:, t + 1:] += randn(2, 7 - t, 32, seed=100 + t)
        y2 = run(changed)
        torch.testing.assert_close(y2[:, :t + 1], y[:, :t + 1], **TOL[torch.float64])
        assert not torch.allclose(y2[:, t + 1:], y[:, t + 1:])


@pytest.mark.parametrize("chunks", [[1] * 9, [4, 1, 1, 3], [2, 5, 2], [9]])
@pytest.mark.parametrize("return_weights", [False, True])
def test_feeding_through_a_cache_gives_the_full_forward(chunks, return_weights):
    attn, x = layer(), randn(2, 9, 32, seed=3)
    full = attn(x)
    cache, outs, start = ListCache(), [], 0
    for n in chunks:
        y = attn(x[:, start:start + n], cache=cache, return_weights=return_weights)
        if return_weights:
            y, weights = y
            assert weights.shape == (2, 4, n, start + n)
        outs.append(y)
        start += n
    torch.testing.assert_close(torch.cat(outs, dim=1), full, **TOL[torch.float64])
    assert cache.k.shape == (2, 4, 9, 8)


def test_dropout_only_in_training():
    attn, x = layer(dropout=0.5), randn(2, 6, 32, seed=2)
    clean = layer(dropout=0.0)(x)
    assert torch.equal(attn(x), clean) and torch.equal(attn(x), attn(x))
    attn.train()
    torch.manual_seed(0)
    a = attn(x)
    b = attn(x)
    assert not torch.allclose(a, clean) and not torch.allclose(a, b)
    assert attn.attn_dropout.p == 0.5


def test_gradients_reach_every_parameter():
    attn = layer()
    attn(randn(2, 5, 32, seed=0)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in attn.parameters())


def test_n_embd_must_split_evenly_into_heads():
    with pytest.raises(ValueError, match=r"n_embd \(10\).*n_head \(3\)"):
        CausalSelfAttention(10, 3)


@pytest.mark.parametrize("n_embd, n_head, error, words", [
    (10, 0, ValueError, "n_head must be 1 or more, got 0"),
    (-8, 4, ValueError, "n_embd must be 1 or more, got -8"),
    (64, 4.0, TypeError, "n_head must be an int, got 4.0"),
    (64, "4", TypeError, "n_head must be an int, got '4'"),
])
def test_layer_sizes_must_be_whole_numbers(n_embd, n_head, error, words):
    with pytest.raises(error, match=re.escape(words)):
        CausalSelfAttention(n_embd, n_head)


def test_without_a_causal_mask_queries_may_outnumber_keys():
    q, k = torch.randn(1, 2, 6, 8, dtype=torch.float64), torch.randn(1, 2, 3, 8, dtype=torch.float64)
    out, _ = attention(q, k, k, causal=False)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, k))


@pytest.mark.parametrize("shape", [(5, 32), (2, 5, 16), (1, 2, 5, 32)])
def test_layer_rejects_x_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        layer()(torch.zeros(shape, dtype=torch.float64))
