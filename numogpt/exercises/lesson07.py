"""The checks behind lesson 07's exercises: a GPT that learns an algorithm.

Each check calls the learner's function on a few cases and compares with numogpt.tasks,
or raises an ExerciseError that says what is wrong (tests/test_exercises_07.py tries wrong
answers).
"""
import torch

from numogpt.data import IGNORE_INDEX
from numogpt.exercises import ExerciseError, attempt, expect, passed
from numogpt.tasks import Addition, Sorting, encode_problems, split_problems, solve

__all__ = ["ExerciseError", "check_encode_problem", "check_exact_match", "check_write_sum", "check_small_sorter"]


def _id_list(got, name):
    """The learner's ids as a list of ints (a list or a 1-D tensor is fine), or a clear error."""
    if isinstance(got, torch.Tensor):
        expect(got.dim() == 1, f"{name} should be one flat sequence of ids, got a tensor of shape {tuple(got.shape)}")
        got = got.tolist()
    expect(isinstance(got, list) and all(isinstance(i, int) for i in got),
           f"{name} should be a list of ints (or a 1-D tensor), got {got!r:.80}")
    return got


def check_encode_problem(encode_problem):
    """encode_problem(prompt, answer) -> (x, y), lists of ids, y = IGNORE_INDEX on the prompt."""
    cases = [([2, 0, 1, 1, 0, 2, 3], [0, 0, 1, 1, 2, 2]), ([1, 0, 3], [0, 1]), ([5, 3], [7, 7, 7])]
    for prompt, answer in cases:
        got = attempt(encode_problem, list(prompt), list(answer))
        expect(isinstance(got, tuple) and len(got) == 2, f"encode_problem should return a pair (x, y), got {got!r:.80}")
        x, y = _id_list(got[0], "x"), _id_list(got[1], "y")
        want_x, want_y = (t[0].tolist() for t in encode_problems(torch.tensor([prompt]), torch.tensor([answer])))
        n = len(prompt) + len(answer) - 1
        expect(len(x) == n and len(y) == n,
               f"for a prompt of {len(prompt)} and an answer of {len(answer)} tokens, x and y should have "
               f"{n} tokens each (the whole sequence minus one), got {len(x)} and {len(y)}")
        expect(x == want_x, f"x should be prompt + answer without its last token: {want_x}, got {x}")
        expect(IGNORE_INDEX in y, f"y = {y} has no {IGNORE_INDEX}: the targets inside the prompt should be "
                                  f"IGNORE_INDEX ({IGNORE_INDEX}), so the loss counts only the answer")
        masked = sum(t == IGNORE_INDEX for t in y)
        expect(masked <= len(prompt) - 1,
               f"y = {y} hides {masked} targets, but the target at the prompt's last token (the '=') is the "
               f"first answer token: the model must learn it. Hide only the first {len(prompt) - 1}")
        expect(y[masked:] == want_y[masked:] and masked == len(prompt) - 1,
               f"y should be the sequence shifted by one, {len(prompt) - 1} times {IGNORE_INDEX} and then the "
               f"answer: {want_y}, got {y}")
    passed("x is prompt + answer minus the last token; y is shifted by one, with -100 on the prompt")


def check_exact_match(exact_match):
    """exact_match(outputs, answers) -> the fraction of rows right in every token."""
    answers = torch.tensor([[0, 1, 2], [0, 0, 1], [1, 1, 2], [2, 2, 2]])
    outputs = torch.tensor([[0, 1, 2], [0, 1, 1], [1, 1, 2], [2, 2, 0]])  # rows 0 and 2 right; 1, 3 one token off
    given = outputs.clone()
    got = attempt(exact_match, outputs, answers)
    expect(torch.equal(outputs, given), "exact_match changed the outputs it was given: compare, don't modify")
    if isinstance(got, torch.Tensor):
        expect(got.numel() == 1, f"exact_match should return one number, got a tensor of shape {tuple(got.shape)}")
        got = got.item()
    expect(isinstance(got, (int, float)), f"exact_match should return a number, got {type(got).__name__}")
    expect(got != 2, "exact_match returned 2, the count of right rows: divide by the number of rows for a fraction")
    expect(abs(got - 10 / 12) > 1e-6, "exact_match gave 10/12, the share of right TOKENS: a problem is right "
                                      "only if every token of its row is right (all along dim 1)")
    expect(abs(got - 1.0) > 1e-6, "exact_match gave 1.0, but two of the four rows have a wrong token: "
                                  "a row counts only if ALL its tokens match, not any")
    expect(abs(got - 0.5) < 1e-6, f"exact_match should be 0.5 here (2 of 4 rows right), got {got}")
    for n in (1, 7):
        rows = torch.randint(0, 3, (n, 5), generator=torch.Generator().manual_seed(n))
        got = attempt(exact_match, rows, rows.clone())
        expect(abs(float(got) - 1.0) < 1e-6, f"exact_match of {n} rows equal to the answers should be 1.0, got {got}")
    passed("exact match: the fraction of problems whose every answer token is right")


def check_write_sum(write_sum):
    """write_sum(a, b, digits, reverse) -> (prompt, answer) as Addition writes them."""
    cases = [(12, 34, 2, True), (7, 35, 2, True), (99, 99, 2, False), (7, 35, 2, False), (5, 123, 3, True),
             (0, 0, 1, True)]
    for a, b, digits, reverse in cases:
        task = Addition(digits, reverse)
        prompt, answer = (task.text(t[0]) for t in task.problems(torch.tensor([a * 10 ** digits + b])))
        got = attempt(write_sum, a, b, digits, reverse)
        call = f"write_sum({a}, {b}, digits={digits}, reverse={reverse})"
        expect(isinstance(got, tuple) and len(got) == 2 and all(isinstance(s, str) for s in got),
               f"{call} should return two strings (prompt, answer), got {got!r:.80}")
        got_prompt, got_answer = got
        expect(got_prompt == prompt, f"{call}: the prompt should be {prompt!r}, got {got_prompt!r}. Both numbers "
                                     f"have {digits} digits (zfill) and the prompt ends with '='")
        expect(len(got_answer) == digits + 1,
               f"{call}: the answer should have {digits + 1} digits (room for the carry), got {got_answer!r}")
        if got_answer[::-1] == answer and got_answer != answer:
            expect(False, f"{call}: the answer should be {answer!r}, got {got_answer!r}, the other way round: "
                          f"reverse=True writes the units digit first")
        expect(got_answer == answer, f"{call}: the answer should be {answer!r} (the sum {a + b}), got {got_answer!r}")
    passed("sums written with fixed widths, the units digit first when reversed")


SORTER_TASK = dict(length=6, symbols=3)
SORTER_MAX_PARAMS = 2_000
SORTER_MIN_ACCURACY = 0.99


def check_small_sorter(small_sorter):
    """small_sorter() -> a trained GPT of at most SORTER_MAX_PARAMS that sorts the held-out problems."""
    model = attempt(small_sorter)
    expect(hasattr(model, "num_params") and hasattr(model, "config"),
           f"small_sorter should return the trained GPT, got {type(model).__name__}")
    params = model.num_params()
    expect(params <= SORTER_MAX_PARAMS, f"your model has {params:,} parameters; the goal is at most "
                                        f"{SORTER_MAX_PARAMS:,}: try fewer layers or a smaller n_embd")
    task = Sorting(**SORTER_TASK)
    expect(model.config.vocab_size == task.tokenizer.vocab_size and model.config.block_size >= task.block_size,
           f"the model should read the sorting task's tokens: vocab_size={task.tokenizer.vocab_size} and "
           f"block_size={task.block_size}, got {model.config.vocab_size} and {model.config.block_size}")
    _, held = split_problems(task)  # the same split as task_loaders(task, ...) with seed 0
    prompts, answers = task.problems(held)
    right = (solve(model, prompts, task.answer_length) == answers).all(dim=1).float().mean().item()
    expect(right >= SORTER_MIN_ACCURACY,
           f"your {params:,}-parameter model sorts {right:.1%} of the held-out sequences; the goal is "
           f"{SORTER_MIN_ACCURACY:.0%}: train longer, with a larger learning rate, or a little wider")
    passed(f"{params:,} parameters are enough: {right:.1%} of the held-out sequences sorted")
