"""Lesson 07's exercise checks: the right answer passes, wrong answers get a helpful message,
an unwritten answer says so."""
import pytest
import torch

from numogpt.data import IGNORE_INDEX
from numogpt.exercises.lesson07 import (
    ExerciseError, check_encode_problem, check_exact_match, check_small_sorter, check_write_sum,
)
from numogpt.model import GPT, GPTConfig
from numogpt.tasks import Sorting, task_loaders
from numogpt.train import TrainConfig, train
from tests.helpers import assert_right_passes_and_wrong_fails, not_written


def fails_with(check, answer, words):
    with pytest.raises(ExerciseError, match=words):
        check(answer)


# --- encode a problem ------------------------------------------------------------------------


def encode_problem(prompt, answer):
    sequence = prompt + answer
    return sequence[:-1], [IGNORE_INDEX] * (len(prompt) - 1) + answer


def test_encode_problem(capsys):
    def no_mask(prompt, answer):
        sequence = prompt + answer
        return sequence[:-1], sequence[1:]

    assert_right_passes_and_wrong_fails(check_encode_problem, encode_problem, no_mask, "no -100", capsys)


@pytest.mark.parametrize("answer, words", [
    (not_written, "not written yet"),
    (lambda p, a: ((p + a)[:-1], [IGNORE_INDEX] * len(p) + a[1:]), "first answer token"),  # hides the "=" too
    (lambda p, a: ((p + a)[:-1], [IGNORE_INDEX] * (len(p) - 2) + (p + a)[len(p) - 1:]), "shifted by one"),
    (lambda p, a: (p + a, [IGNORE_INDEX] * len(p) + a), "whole sequence minus one"),
    (lambda p, a: ((p + a)[1:], [IGNORE_INDEX] * (len(p) - 1) + a), "without its last token"),
    (lambda p, a: torch.tensor([p + a]), "pair"),
])
def test_encode_problem_wrong_answers_are_explained(answer, words):
    fails_with(check_encode_problem, answer, words)


# --- exact match ------------------------------------------------------------------------------


def test_exact_match(capsys):
    def per_token(outputs, answers):
        return (outputs == answers).float().mean().item()

    right = lambda outputs, answers: (outputs == answers).all(dim=1).float().mean().item()  # noqa: E731
    assert_right_passes_and_wrong_fails(check_exact_match, right, per_token, "share of right TOKENS", capsys)


@pytest.mark.parametrize("answer, words", [
    (not_written, "not written yet"),
    (lambda o, a: (o == a).any(dim=1).float().mean().item(), "ALL its tokens"),
    (lambda o, a: (o == a).all(dim=1).sum().item(), "divide by the number of rows"),
    (lambda o, a: (o == a).all(dim=1).float(), "one number"),
    (lambda o, a: (o.sub_(a) == 0).all(dim=1).float().mean().item(), "don't modify"),
    (lambda o, a: (o == a).all(dim=0).float().mean().item(), "should be 0.5"),
])
def test_exact_match_wrong_answers_are_explained(answer, words):
    fails_with(check_exact_match, answer, words)


# --- writing a sum ----------------------------------------------------------------------------


def write_sum(a, b, digits, reverse):
    total = str(a + b).zfill(digits + 1)
    return f"{str(a).zfill(digits)}+{str(b).zfill(digits)}=", total[::-1] if reverse else total


def test_write_sum(capsys):
    def never_reversed(a, b, digits, reverse):
        return write_sum(a, b, digits, reverse=False)

    assert_right_passes_and_wrong_fails(check_write_sum, write_sum, never_reversed, "other way round", capsys)


@pytest.mark.parametrize("answer, words", [
    (not_written, "not written yet"),
    (lambda a, b, d, r: (f"{a}+{b}=", write_sum(a, b, d, r)[1]), "zfill"),
    (lambda a, b, d, r: (write_sum(a, b, d, r)[0][:-1], write_sum(a, b, d, r)[1]), "ends with '='"),
    (lambda a, b, d, r: (write_sum(a, b, d, r)[0], str(a + b)[::-1] if r else str(a + b)), "room for the carry"),
    (lambda a, b, d, r: (write_sum(a, b, d, r)[0], write_sum(b, a, d, not r)[1]), "other way round"),
    (lambda a, b, d, r: (write_sum(a, b, d, r)[0], write_sum(a, b + 1, d, r)[1]), "the sum"),
    (lambda a, b, d, r: [write_sum(a, b, d, r)], "two strings"),
])
def test_write_sum_wrong_answers_are_explained(answer, words):
    fails_with(check_write_sum, answer, words)


# --- the smallest sorter ----------------------------------------------------------------------


def sorter(n_layer, n_embd, max_iters):
    """A sorter of 6 digits from 3 symbols, trained on the exercise's training split."""
    task = Sorting(6, 3)
    train_loader, val_loader, _ = task_loaders(task, batch_size=64)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=task.tokenizer.vocab_size, block_size=task.block_size,
                          n_layer=n_layer, n_head=2, n_embd=n_embd))
    if max_iters:
        train(model, train_loader, val_loader, TrainConfig(max_iters=max_iters, learning_rate=2e-2, min_lr=2e-3,
                                                           warmup_iters=20, eval_interval=max_iters, progress=False))
    return model


def test_small_sorter(capsys, one_thread):
    assert_right_passes_and_wrong_fails(check_small_sorter, lambda: sorter(1, 8, 600), lambda: sorter(1, 8, 0),
                                        "held-out sequences; the goal", capsys)


@pytest.mark.parametrize("answer, words", [
    (not_written, "not written yet"),
    (lambda: sorter(1, 16, 0), "at most 2,000"),
    (lambda: "a GPT", "return the trained GPT"),
    (lambda: GPT(GPTConfig(vocab_size=12, block_size=11, n_layer=1, n_head=2, n_embd=8)), "vocab_size=4"),
])
def test_small_sorter_wrong_answers_are_explained(answer, words):
    fails_with(check_small_sorter, answer, words)
