"""A "by hand" exercise refuses the ready-made function it rebuilds, whatever name reaches it.

Each answer below is what a learner could paste to pass without doing the exercise: the
library's or PyTorch's finished function, called directly, through a name bound before the
check ran (`from torch.nn.functional import cross_entropy`), through a module, or inside a
wrapper. Each check must refuse it, and say why.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.functional import cross_entropy, layer_norm, scaled_dot_product_attention  # bound before any check runs

import numogpt.attention
import numogpt.model
import numogpt.sample
import numogpt.train
from numogpt.exercises import ExerciseError
from numogpt.exercises.lesson02 import check_loss_ignoring_padding
from numogpt.exercises.lesson03 import check_attention
from numogpt.exercises.lesson04 import check_block, check_gpt, check_layer_norm
from numogpt.exercises.lesson05 import (check_cross_entropy, check_lr_at, check_train, check_train_step,
                                        check_weight_decay_groups)
from numogpt.exercises.lesson06 import check_top_k_filter, check_top_p_filter
from numogpt.sample import top_k_filter, top_p_filter
from numogpt.train import lr_at, train, train_step, weight_decay_groups


def cross_entropy_in_a_wrapper(logits, targets):
    loss = cross_entropy(logits, targets)
    return loss


def lr_at_by_the_library(step, config):
    return numogpt.train.lr_at(step, config)


class BlockBySuper(numogpt.model.Block):
    def forward(self, x):
        return super().forward(x)


class GPTBySuper(numogpt.model.GPT):
    def forward(self, idx, targets=None):
        return super().forward(idx, targets)


SHORTCUTS = [
    # lesson 02: a loss that ignores padding, without ignore_index
    (check_loss_ignoring_padding, F.cross_entropy, "without `F.cross_entropy`"),
    (check_loss_ignoring_padding, cross_entropy, "without `F.cross_entropy`"),
    (check_loss_ignoring_padding, cross_entropy_in_a_wrapper, "without `F.cross_entropy`"),
    # lesson 03: attention by hand
    (check_attention, lambda q, k, v, causal=True: (scaled_dot_product_attention(q, k, v, is_causal=causal), None),
     "without `F.scaled_dot_product_attention`"),
    (check_attention, numogpt.attention.attention, "without `numogpt.attention.attention`"),
    # lesson 04: LayerNorm by hand
    (check_layer_norm, lambda x, w, b, eps=1e-5: layer_norm(x, x.shape[-1:], w, b, eps), "without `F.layer_norm`"),
    (check_layer_norm, lambda x, w, b, eps=1e-5: torch.layer_norm(x, x.shape[-1:], w, b, eps), "without `torch.layer_norm`"),
    (check_layer_norm, lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], w, b, eps), "without `F.layer_norm`"),
    # lesson 04: the block's and the GPT's forward, inherited from numogpt's
    (check_block, BlockBySuper, "without `numogpt.model.Block.forward`"),
    (check_gpt, GPTBySuper, "without `numogpt.model.GPT.forward`"),
    # lesson 05: cross-entropy by hand, the schedule, the decay groups
    (check_cross_entropy, F.cross_entropy, "without `F.cross_entropy`"),
    (check_cross_entropy, cross_entropy_in_a_wrapper, "without `F.cross_entropy`"),
    (check_cross_entropy, lambda logits, targets: F.nll_loss(logits.log_softmax(-1), targets), "without `F.nll_loss`"),
    (check_lr_at, lr_at, "without `numogpt.train.lr_at`"),
    (check_lr_at, lr_at_by_the_library, "without `numogpt.train.lr_at`"),
    (check_weight_decay_groups, weight_decay_groups, "without `numogpt.train.weight_decay_groups`"),
    # lesson 05: the training step and the loop
    (check_train_step, train_step, "without `numogpt.train.train_step`"),
    (check_train, train, "without `numogpt.train.train`"),
    # lesson 06: the filters
    (check_top_k_filter, top_k_filter, "without `numogpt.sample.top_k_filter`"),
    (check_top_k_filter, lambda logits, k: numogpt.sample.top_k_filter(logits, k), "without `numogpt.sample.top_k_filter`"),
    (check_top_p_filter, top_p_filter, "without `numogpt.sample.top_p_filter`"),
]


@pytest.mark.parametrize("check, shortcut, message", SHORTCUTS,
                         ids=lambda v: getattr(v, "__name__", None) if callable(v) else None)
def test_the_check_refuses_the_ready_made_answer(check, shortcut, message):
    with pytest.raises(ExerciseError, match=message):
        check(shortcut)


def test_a_layer_norm_module_is_refused_too():
    def with_the_module(x, w, b, eps=1e-5):
        norm = nn.LayerNorm(x.size(-1), eps=eps)
        with torch.no_grad():
            norm.weight.copy_(w), norm.bias.copy_(b)
        return norm(x)

    with pytest.raises(ExerciseError, match="without `"):
        check_layer_norm(with_the_module)
