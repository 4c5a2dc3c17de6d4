"""Lesson 07: generated problems, the held-out split, the answer-only loss, the scorer, the command."""
import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from numogpt.__main__ import main
from numogpt.data import IGNORE_INDEX
from numogpt.model import GPT, GPTConfig
from numogpt.tasks import (
    Addition, Sorting, attention_maps, encode_problems, error_kinds, exact_match, solve, split_problems,
    task_from_options, task_loaders,
)
from numogpt.checkpoint import load_checkpoint


def texts(task, ids):
    return [task.text(row) for row in ids]


# --- the problems ------------------------------------------------------------------------------


@pytest.mark.parametrize("length, symbols", [(6, 3), (8, 10), (1, 1), (3, 2)])
def test_sorting_problems_are_every_sequence_then_its_sorted_copy(length, symbols):
    task = Sorting(length, symbols)
    count = min(task.space, 500)
    prompts, answers = task.problems(torch.arange(count))
    alphabet = "0123456789"[:symbols]
    every = ["".join(s) for s in itertools.product(alphabet, repeat=length)][:count]  # in the same order
    assert texts(task, prompts) == [s + "=" for s in every]
    assert texts(task, answers) == ["".join(sorted(s)) for s in every]


@pytest.mark.parametrize("digits, reverse", [(2, True), (2, False), (1, True), (4, True)])
def test_addition_problems_write_both_numbers_and_their_sum(digits, reverse):
    task = Addition(digits, reverse)
    rng = random.Random(digits)
    pairs = [(rng.randrange(10 ** digits), rng.randrange(10 ** digits)) for _ in range(200)] + [(10 ** digits - 1,) * 2]
    prompts, answers = task.problems(torch.tensor([a * 10 ** digits + b for a, b in pairs]))
    for (a, b), prompt, answer in zip(pairs, texts(task, prompts), texts(task, answers)):
        assert prompt == f"{a:0{digits}d}+{b:0{digits}d}="
        total = f"{a + b:0{digits + 1}d}"
        assert answer == (total[::-1] if reverse else total)


def test_a_prompt_as_a_person_writes_it():
    assert Sorting(6, 3).prompt_ids("2 0 1 1 0 2").tolist() == [2, 0, 1, 1, 0, 2, 3]
    assert Sorting(6, 3).prompt_ids("201102=").tolist() == [2, 0, 1, 1, 0, 2, 3]
    add = Addition(2)
    assert add.text(add.prompt_ids(" 7 + 35 ")) == "07+35="
    assert add.answer_text(torch.tensor(add.tokenizer.encode("240"))) == "42"
    assert Addition(2, reverse=False).answer_text(torch.tensor(add.tokenizer.encode("042"))) == "42"


@pytest.mark.parametrize("task", [Sorting(8, 10), Addition(3, reverse=False)], ids=["sort", "add"])
def test_a_task_round_trips_through_its_options(task):
    again = task_from_options({"task": task.name, **task.as_options()})
    assert type(again) is type(task) and again.as_options() == task.as_options()


# --- the held-out split ---------------------------------------------------------------------


@pytest.mark.parametrize("task, held", [(Sorting(6, 3), 182), (Addition(2), 2500)])
def test_a_small_task_holds_out_a_quarter_and_trains_on_the_rest(task, held):
    train, held_out = split_problems(task, seed=3)
    assert len(held_out) == held and len(set(held_out.tolist())) == held
    assert sorted(train.tolist() + held_out.tolist()) == list(range(task.space))  # every one, once


def test_a_large_task_never_trains_on_a_held_out_problem():
    task = Sorting(8, 10)
    train, held_out = split_problems(task, train_size=50_000, seed=1)
    assert len(held_out) == len(set(held_out.tolist())) == 1000 and len(train) == 50_000
    assert not set(train.tolist()) & set(held_out.tolist())
    # and as the model sees them: no held-out sequence among the training inputs
    train_loader, _, (prompts, _) = task_loaders(task, batch_size=64, train_size=50_000, seed=1)
    seen = {tuple(x[: task.prompt_length].tolist()) for x, _ in train_loader.dataset}
    assert not seen & {tuple(p.tolist()) for p in prompts}


def test_the_split_depends_only_on_the_seed():
    task = Addition(2)
    assert all(torch.equal(a, b) for a, b in zip(split_problems(task, seed=5), split_problems(task, seed=5)))
    assert not torch.equal(split_problems(task, seed=5)[1], split_problems(task, seed=6)[1])


# --- the answer-only loss ------------------------------------------------------------------------


def test_only_the_answer_is_a_target():
    task = Sorting(6, 3)
    prompts, answers = task.problems(torch.arange(50))
    x, y = encode_problems(prompts, answers)
    assert x.shape == y.shape == (50, task.block_size)
    assert (y[:, : task.prompt_length - 1] == IGNORE_INDEX).all()
    assert torch.equal(y[:, task.prompt_length - 1:], answers)  # the "=" predicts the first answer token
    assert torch.equal(x, torch.cat([prompts, answers], dim=1)[:, :-1])


def test_the_models_loss_is_the_cross_entropy_of_the_answer_positions():
    task = Addition(2)
    prompts, answers = task.problems(torch.arange(0, 10_000, 97))
    x, y = encode_problems(prompts, answers)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=task.tokenizer.vocab_size, block_size=task.block_size, n_layer=1, n_head=2, n_embd=16))
    logits, loss = model(x, y)
    answer_logits = logits[:, task.prompt_length - 1:]  # (N, A, V)
    by_hand = F.cross_entropy(answer_logits.reshape(-1, answer_logits.size(-1)), answers.reshape(-1))
    torch.testing.assert_close(loss, by_hand)


# --- scoring ----------------------------------------------------------------------------------


def test_exact_match_counts_whole_rows():
    answers = torch.tensor([[1, 2, 3], [1, 2, 3], [0, 0, 0], [4, 4, 4]])
    assert exact_match(answers, answers) == 1.0
    assert exact_match(torch.tensor([[1, 2, 3], [1, 2, 0], [0, 0, 0], [0, 4, 4]]), answers) == 0.5
    assert exact_match(torch.zeros(4, 3, dtype=torch.long), answers) == 0.25
    with pytest.raises(ValueError, match="one shape"):
        exact_match(answers[:, :2], answers)


def ids(task, text):
    return torch.tensor(task.tokenizer.encode(text))


@pytest.mark.parametrize("output, kind", [
    ("001122", "right"), ("001222", "a digit lost or repeated"), ("010122", "right digits, wrong order"),
])
def test_sorting_errors_by_kind(output, kind):
    task = Sorting(6, 3)
    assert task.error_kind(ids(task, "201102="), ids(task, "001122"), ids(task, output)) == kind


@pytest.mark.parametrize("prompt, output, reverse, kind", [
    ("17+25=", "240", True, "right"),
    ("17+25=", "250", True, "tens digit wrong (a carry comes in)"),
    ("17+25=", "340", True, "units digit wrong (no carry)"),
    ("12+34=", "650", True, "tens digit wrong (no carry)"),
    ("12+34=", "046", False, "right"),
    ("17+25=", "032", False, "tens digit wrong (a carry comes in)"),
    ("17+25=", "043", False, "units digit wrong (no carry)"),
    ("99+99=", "198", False, "right"),
    ("99+99=", "098", False, "hundreds digit wrong (a carry comes in)"),
    ("99+99=", "000", False, "several digits wrong"),
])
def test_addition_errors_by_kind(prompt, output, reverse, kind):
    task = Addition(2, reverse)
    a, b = (int(n) for n in prompt[:-1].split("+"))
    total = f"{a + b:03d}"
    answer = ids(task, total[::-1] if reverse else total)
    assert task.error_kind(ids(task, prompt), answer, ids(task, output)) == kind


def test_error_kinds_leave_out_the_right_answers():
    task = Sorting(3, 2)
    prompts, answers = task.problems(torch.arange(8))
    outputs = answers.clone()
    outputs[0] = torch.tensor([1, 1, 1])  # 000 -> 111
    assert error_kinds(task, prompts, answers, outputs) == {"a digit lost or repeated": 1}


# --- the model's answers --------------------------------------------------------------------


@pytest.fixture
def small_sorter():
    task = Sorting(6, 3)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=task.tokenizer.vocab_size, block_size=task.block_size, n_layer=2, n_head=2, n_embd=16)
    return task, GPT(config).eval()


def test_batched_greedy_answers_are_the_one_by_one_answers(small_sorter, one_thread):
    task, model = small_sorter
    prompts, _ = task.problems(torch.arange(0, 729, 37))
    from numogpt.sample import generate
    one_by_one = torch.cat([generate(model, p[None], task.answer_length, temperature=0)[:, -task.answer_length:]
                            for p in prompts])
    assert torch.equal(solve(model, prompts, task.answer_length, batch_size=7), one_by_one)


def test_attention_maps_are_each_layers_causal_weights(small_sorter):
    task, model = small_sorter
    prompt, answer = task.problems(torch.tensor([100]))
    idx = torch.cat([prompt, answer], dim=1)[:, :-1]  # (1, T): what the model reads
    before = model(idx)[0]
    maps = attention_maps(model, idx)
    assert torch.equal(model(idx)[0], before) and not model.transformer.h[0].attn._forward_hooks
    T = idx.size(1)
    assert len(maps) == 2 and all(m.shape == (2, T, T) for m in maps)
    # layer 0 by hand from the model's weights: softmax(q k^T / sqrt(d)) under the causal mask
    block = model.transformer.h[0]
    x = block.ln_1(model.transformer.wte(idx) + model.transformer.wpe.weight[:T])
    q, k, _ = block.attn.c_attn(x).split(16, dim=2)
    q, k = (t.view(1, T, 2, 8).transpose(1, 2) for t in (q, k))
    scores = (q @ k.transpose(-2, -1)) / 8 ** 0.5
    scores = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
    torch.testing.assert_close(maps[0], scores.softmax(-1)[0].detach())


# --- bad settings ---------------------------------------------------------------------------


@pytest.mark.parametrize("make, words", [
    (lambda: Sorting(length=0), "length must be 1 or more"),
    (lambda: Sorting(symbols=11), "symbols must be between 1 and 10, got 11"),
    (lambda: Sorting(symbols=0), "symbols must be between 1 and 10, got 0"),
    (lambda: Sorting(length=2.5), "length must be an int"),
    (lambda: Addition(digits=0), "digits must be between 1 and 9, got 0"),
    (lambda: Addition(digits=10), "digits must be between 1 and 9, got 10"),
    (lambda: task_from_options({"task": "multiply"}), "unknown task"),
    (lambda: task_from_options({"task": "sort", "digits": 2}), "--digits does not apply to --task sort"),
    (lambda: task_from_options({"task": "add", "order": "backwards"}), "order is reversed .* or plain"),
])
def test_impossible_tasks_are_refused(make, words):
    with pytest.raises((ValueError, TypeError), match=words):
        make()


@pytest.mark.parametrize("task, prompt, words", [
    (Sorting(6, 3), "2 0 3 1 0 2", "reads only 0 1 2; the prompt has '3'"),
    (Sorting(6, 3), "2 0 1 1 0", "sorts 6 digits, the prompt has 5"),
    (Sorting(6, 3), "2 0 1 1 0 2 1", "sorts 6 digits, the prompt has 7"),
    (Sorting(6, 3), "", "sorts 6 digits, the prompt has 0"),
    (Addition(2), "12+345", "up to 2 digits"),
    (Addition(2), "12-34", "the prompt has '-'"),
    (Addition(2), "12+", "two numbers and a +"),
    (Addition(2), "1+2+3", "two numbers and a +"),
])
def test_bad_prompts_are_refused(task, prompt, words):
    with pytest.raises(ValueError, match=words):
        task.prompt_ids(prompt)


# --- the command ------------------------------------------------------------------------------


def command(capsys, *argv):
    main(list(argv))
    return capsys.readouterr().out


def test_train_a_sorter_then_ask_it_to_sort(tmp_path, capsys, one_thread):
    out = command(capsys, "train", "--task", "sort", "--max-iters", "30", "--out", str(tmp_path))
    assert "held-out exact match:" in out and "182 problems never seen in training" in out
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {k: checkpoint["run"][k] for k in ("kind", "task", "length", "symbols")} == \
        {"kind": "task", "task": "sort", "length": 6, "symbols": 3}
    answer = command(capsys, "sample", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--prompt", "2 0 1 1 0 2")
    digits = answer.split()
    assert len(digits) == 6 and set(digits) <= {"0", "1", "2"}


def test_train_an_adder_with_its_options(tmp_path, capsys, one_thread):
    command(capsys, "train", "--task", "add", "--digits", "1", "--order", "plain", "--max-iters", "5",
            "--out", str(tmp_path))
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {k: checkpoint["run"][k] for k in ("task", "digits", "order")} == {"task": "add", "digits": 1, "order": "plain"}
    answer = command(capsys, "sample", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--prompt", "7+5")
    assert answer.strip().isdigit() and int(answer) <= 18


def test_a_resumed_task_run_ends_where_a_straight_one_does(tmp_path, capsys, one_thread):
    options = ["--task", "sort", "--length", "5", "--batch-size", "16", "--lr-decay-iters", "20", "--eval-interval", "5"]
    command(capsys, "train", *options, "--max-iters", "20", "--out", str(tmp_path / "straight"))
    command(capsys, "train", *options, "--max-iters", "10", "--out", str(tmp_path / "resumed"))
    command(capsys, "train", "--resume", "--max-iters", "20", "--out", str(tmp_path / "resumed"))
    straight, resumed = (load_checkpoint(tmp_path / d / "checkpoint.pt")["model"] for d in ("straight", "resumed"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def fails(capsys, *argv):
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    assert stop.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--task", "sort", "--symbols", "11"], "between 1 and 10, got 11"),
    (["--task", "sort", "--length", "0"], "length must be 1 or more"),
    (["--task", "sort", "--digits", "3"], "--digits does not apply to --task sort"),
    (["--task", "add", "--length", "3"], "--length does not apply to --task add"),
    (["--task", "add", "--data", "train-nn"], "--data does not apply to --task add"),
    (["--length", "8"], "add --task sort or --task add"),
])
def test_the_command_refuses_impossible_settings(tmp_path, capsys, argv, words):
    assert words in fails(capsys, "train", *argv, "--out", str(tmp_path))
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.fixture(scope="module")
def sorter_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("sorter")
    main(["train", "--task", "sort", "--max-iters", "2", "--out", str(out)])
    return out / "checkpoint.pt"


@pytest.mark.parametrize("prompt, words", [
    ("2 0 3 1 0 2", "reads only 0 1 2; the prompt has '3'"),
    ("2 0 1 1", "sorts 6 digits, the prompt has 4"),
    ("12+34", "the prompt has '+'"),
])
def test_sample_refuses_a_prompt_the_task_cannot_read(sorter_checkpoint, capsys, prompt, words):
    assert words in fails(capsys, "sample", "--checkpoint", str(sorter_checkpoint), "--prompt", prompt)
