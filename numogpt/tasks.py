"""Lesson 07: a GPT that learns an algorithm, sorting digits or adding numbers.

A task is a set of problems, each written as tokens: a prompt that ends in "=", then the
answer. The same GPT as lessons 04-06 learns it from (x, y) pairs in which only the answer
positions count (the prompt's targets are IGNORE_INDEX), and answers a new prompt by greedy
generation. Exact match (every answer token right) on problems it never saw in training says
whether it learned the algorithm or only remembered answers.

    >>> task = Sorting(length=4, symbols=3)
    >>> prompts, answers = task.problems(torch.tensor([69]))
    >>> task.text(prompts[0]), task.text(answers[0])
    ('2120=', '0122')
    >>> task = Addition(digits=2)                      # the sum is written units digit first
    >>> prompts, answers = task.problems(torch.tensor([1234]))
    >>> task.text(prompts[0]), task.text(answers[0]), task.answer_text(answers[0])
    ('12+34=', '640', '46')

- `Sorting`, `Addition`: the tasks; `task_from_options` builds one from the command's options
  (`python -m numogpt train --task sort --length 8`), as a checkpoint stores them.
- `split_problems`: held-out problems that training never sees, and the training problems.
- `encode_problems`: (x, y) with IGNORE_INDEX on the prompt.
- `solve`, `exact_match`, `error_kinds`: batched greedy answers, their score, what went wrong.
- `attention_maps`: every layer's attention weights, to see what the model reads.
"""
import re
from collections import Counter

import torch
from torch.utils.data import DataLoader, TensorDataset

from numogpt.data import IGNORE_INDEX, shuffled_loader
from numogpt.model import eval_mode
from numogpt.sample import generate
from numogpt.tokenizer import CharTokenizer
from numogpt.tools.arguments import require_int

DIGITS = "0123456789"


def _digits_of(numbers, base, count):
    """The `count` lowest digits of each number in `base`, most significant first: (N,) -> (N, count)."""
    powers = base ** torch.arange(count - 1, -1, -1)  # (count,)
    return numbers[:, None] // powers % base


class Task:
    """What every task shares: a CharTokenizer over its symbols, and problems as token ids.

    A subclass is one task. It names itself (`name`, the command's --task) and its command-line
    `options` ({option: (type or choices, help)}), sets `base` (its digits are 0..base-1),
    `prompt_length`, `answer_length` and `space` (how many problems there are, numbered
    0..space-1), and writes `digit_problems(indices)` -> (prompts as token ids (N, P), answers as
    digit values (N, A)), `parse_prompt` (a person's prompt, spaces removed -> the prompt's text),
    `answer_text`, `example_prompt`, `describe`, `wrong_kind` (what is wrong with a wrong answer),
    `as_options` and `default_steps`.
    """

    def __init__(self, alphabet):
        self.tokenizer = CharTokenizer(alphabet)
        self.digit_ids = torch.tensor(self.tokenizer.encode(DIGITS[: self.base]))  # digit value -> token id
        self.equals_id = self.tokenizer.encode("=")[0]

    @property
    def block_size(self):
        """The longest input the model reads: the prompt and all but the last answer token."""
        return self.prompt_length + self.answer_length - 1

    def problems(self, indices):
        """Problems number `indices` (N,) as token ids: (prompts (N, P), answers (N, A))."""
        prompts, answers = self.digit_problems(torch.as_tensor(indices, dtype=torch.long))
        return prompts, self.digit_ids[answers]

    def text(self, ids):
        """Token ids as text, e.g. '2100='."""
        return self.tokenizer.decode(ids)

    def prompt_ids(self, text):
        """The token ids (P,) of a prompt written by a person, checked; spaces do not matter."""
        if not isinstance(text, str):
            raise TypeError(f"the prompt must be a str, got {type(text).__name__}")
        return torch.tensor(self.tokenizer.encode(self.parse_prompt(re.sub(r"\s", "", text).removesuffix("="))))

    def answer(self, model, text):
        """The model's greedy answer to a prompt written by a person, written the same way."""
        if model.config.block_size < self.block_size:
            raise ValueError(f"{self.describe()} needs a context of {self.block_size} tokens, the model has "
                             f"{model.config.block_size}: was it trained on another task?")
        return self.answer_text(solve(model, self.prompt_ids(text)[None], self.answer_length)[0])

    def error_kind(self, prompt, answer, output):
        """What is wrong with one answer (A,) to one prompt (P,), in words ('right' when nothing is)."""
        return "right" if torch.equal(output, answer) else self.wrong_kind(prompt, answer, output)

    @classmethod
    def from_options(cls, options):
        """The task that its command-line options describe (`as_options` gives them back)."""
        return cls(**options)

    def _unknown_symbols(self, text, allowed):
        unknown = sorted(set(text) - set(allowed))
        if unknown:
            raise ValueError(f"{self.describe()} reads only {' '.join(allowed)}; the prompt has "
                             f"{' '.join(map(repr, unknown))}")


class Sorting(Task):
    """Sort `length` digits drawn from the first `symbols` digits (0, 1, ..., symbols - 1).

    Problem i is the digits of i in base `symbols`; the prompt is those digits and "=",
    the answer the same digits in ascending order.
    """

    name = "sort"
    options = {"length": (int, "--task sort: digits per sequence (default 6)"),
               "symbols": (int, "--task sort: the digits 0..N-1 are used, N <= 10 (default 3)")}

    def __init__(self, length=6, symbols=3):
        require_int("length", length)
        require_int("symbols", symbols, most=len(DIGITS), hint=" (the digits 0-9 are the alphabet)")
        if symbols ** length > 2 ** 62:
            raise ValueError(f"{symbols}**{length} sequences are too many to number in an int64: "
                             f"use a shorter length")
        self.length, self.base = length, symbols
        self.prompt_length, self.answer_length, self.space = length + 1, length, symbols ** length
        super().__init__(DIGITS[:symbols] + "=")

    def digit_problems(self, indices):
        digits = _digits_of(indices, self.base, self.length)  # (N, n)
        prompts = torch.cat([self.digit_ids[digits], torch.full_like(indices[:, None], self.equals_id)], dim=1)
        return prompts, digits.sort(dim=1).values

    def parse_prompt(self, text):
        self._unknown_symbols(text, DIGITS[: self.base])
        if len(text) != self.length:
            raise ValueError(f"this model sorts {self.length} digits, the prompt has {len(text)}: {text!r}")
        return text + "="

    def example_prompt(self):
        return " ".join(DIGITS[i % self.base] for i in range(self.length - 1, -1, -1))

    def answer_text(self, answer_ids):
        """The answer as a person writes it: '0 0 1 2'."""
        return " ".join(self.text(answer_ids))

    def describe(self):
        return f"sorting {self.length} digits from {self.base} symbols"

    def as_options(self):
        return {"length": self.length, "symbols": self.base}

    def default_steps(self):
        """Longer sequences from more symbols need more steps (tuned with bench/tasks.py: 6 from 3, 8 from 10)."""
        return max(500, min(2000, 20 * self.length * self.base))

    def wrong_kind(self, prompt, answer, output):
        if sorted(output.tolist()) != sorted(prompt[:-1].tolist()):
            return "a digit lost or repeated"
        return "right digits, wrong order"


class Addition(Task):
    """Add two numbers of up to `digits` digits each: '12+34=' -> '46'.

    Both numbers are written with `digits` digits (leading zeros: '07+35=') and the sum with
    digits + 1, so every problem has the same shape. reverse=True (the default) writes the sum
    units digit first ('240' for 42): then each digit needs only the two digits above it and
    the carry of the digit just written. Written the usual way round, the first digit already
    depends on every carry to come.
    """

    name = "add"
    options = {"digits": (int, "--task add: digits per number (default 2)"),
               "order": (("reversed", "plain"), "--task add: write the sum units digit first (reversed, the "
                                                "default) or as usual (plain)")}
    base = 10

    def __init__(self, digits=2, reverse=True):
        require_int("digits", digits, most=9, hint=" (so that every problem has a number)")
        if not isinstance(reverse, bool):
            raise TypeError(f"reverse must be True or False, got {reverse!r}")
        self.digits, self.reverse = digits, reverse
        self.prompt_length, self.answer_length, self.space = 2 * digits + 2, digits + 1, 10 ** (2 * digits)
        super().__init__(DIGITS + "+=")

    def digit_problems(self, indices):
        a, b = indices // 10 ** self.digits, indices % 10 ** self.digits  # (N,) each
        plus = torch.full_like(indices[:, None], self.tokenizer.encode("+")[0])
        equals = torch.full_like(indices[:, None], self.equals_id)
        prompts = torch.cat([self.digit_ids[_digits_of(a, 10, self.digits)], plus,
                             self.digit_ids[_digits_of(b, 10, self.digits)], equals], dim=1)
        total = _digits_of(a + b, 10, self.digits + 1)  # (N, digits + 1)
        return prompts, total.flip(1) if self.reverse else total

    def parse_prompt(self, text):
        self._unknown_symbols(text, DIGITS + "+")
        numbers = text.split("+")
        if len(numbers) != 2 or not all(numbers):
            raise ValueError(f"an addition prompt is two numbers and a +, like '12+34', got {text!r}")
        if max(len(n) for n in numbers) > self.digits:
            raise ValueError(f"this model adds numbers of up to {self.digits} digits, got {text!r}")
        return "+".join(n.zfill(self.digits) for n in numbers) + "="

    def example_prompt(self):
        return f"{DIGITS[1:self.digits + 1]}+{DIGITS[9:9 - self.digits:-1]}"

    def answer_text(self, answer_ids):
        """The sum as a person writes it: '46'."""
        text = self.text(answer_ids)
        return str(int(text[::-1] if self.reverse else text))

    def describe(self):
        order = "units digit first" if self.reverse else "the usual order"
        return f"adding {self.digits}-digit numbers (sum written {order})"

    @classmethod
    def from_options(cls, options):
        options = dict(options)
        order = options.pop("order", "reversed")
        if order not in ("reversed", "plain"):
            raise ValueError(f"order is reversed (units digit first) or plain, got {order!r}")
        return cls(**options, reverse=order == "reversed")

    def as_options(self):
        return {"digits": self.digits, "order": "reversed" if self.reverse else "plain"}

    def default_steps(self):
        """Each digit more needs about as many steps again (tuned with bench/tasks.py)."""
        return 750 * self.digits

    def wrong_kind(self, prompt, answer, output):
        wrong = (output != answer).nonzero().flatten().tolist()
        if len(wrong) > 1:
            return "several digits wrong"
        # place 0 is the units digit, whichever way round the sum is written
        place = wrong[0] if self.reverse else self.answer_length - 1 - wrong[0]
        names = ["units", "tens", "hundreds"]
        name = names[place] if place < len(names) else f"10^{place}"
        digits = prompt.tolist()
        a, b = (int(self.tokenizer.decode(digits[i * (self.digits + 1):][: self.digits])) for i in (0, 1))
        carry = (a % 10 ** place + b % 10 ** place) >= 10 ** place if place else False
        return f"{name} digit wrong ({'a carry comes in' if carry else 'no carry'})"


TASKS = {task.name: task for task in (Sorting, Addition)}


def task_from_options(options):
    """The task that the command's options describe, e.g. {"task": "sort", "length": 8}: the
    options not given take the task's defaults, and an option of another task is refused."""
    options = dict(options)
    name = options.pop("task", None)
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: the tasks are {', '.join(TASKS)}")
    for option in options:
        if option not in TASKS[name].options:
            raise ValueError(f"--{option} does not apply to --task {name}")
    return TASKS[name].from_options(options)


# --- data ------------------------------------------------------------------------------------

LISTABLE = 100_000  # up to this many problems, the split lists them all (and trains on every one not held out)


def split_problems(task, held_out=None, train_size=100_000, seed=0):
    """Problem numbers for (training, held-out): no problem is on both sides.

    When the task has at most LISTABLE problems, all of them are shuffled, `held_out` of them
    (default: a quarter) are kept aside and every other one is for training. Otherwise
    `held_out` (default 1,000) different problems are drawn, then `train_size` training
    problems, drawn again whenever they hit a held-out one (repeats within training are fine).
    """
    held_out = held_out if held_out is not None else (task.space // 4 if task.space <= LISTABLE else 1000)
    require_int("held_out", held_out)
    if held_out >= task.space:
        raise ValueError(f"{task.describe()} has {task.space} problems: hold out fewer than that, got {held_out}")
    generator = torch.Generator().manual_seed(seed)
    if task.space <= LISTABLE:
        order = torch.randperm(task.space, generator=generator)
        return order[held_out:], order[:held_out]
    held = torch.unique(torch.randint(task.space, (2 * held_out,), generator=generator))  # sorted, distinct
    held = held[torch.randperm(len(held), generator=generator)[:held_out]]
    train = torch.empty(0, dtype=torch.long)
    while len(train) < train_size:
        draw = torch.randint(task.space, (train_size,), generator=generator)
        train = torch.cat([train, draw[~torch.isin(draw, held)]])
    return train[:train_size], held


def encode_problems(prompts, answers):
    """Next-token pairs (x, y), (N, T) each, in which only the answer counts.

    The sequence is prompt + answer; x is all of it but the last token, y all of it but the
    first. The targets inside the prompt (P - 1 of them) are IGNORE_INDEX: the prompt is
    random, so the model could not learn to predict it, and should not try. The first target
    that counts is the first answer token, predicted at the prompt's last token (the "=").

    >>> x, y = encode_problems(torch.tensor([[2, 0, 1, 3]]), torch.tensor([[0, 1, 2]]))
    >>> x.tolist(), y.tolist()
    ([[2, 0, 1, 3, 0, 1]], [[-100, -100, -100, 0, 1, 2]])
    """
    sequences = torch.cat([prompts, answers], dim=1)  # (N, P + A)
    x, y = sequences[:, :-1], sequences[:, 1:].clone()
    y[:, : prompts.size(1) - 1] = IGNORE_INDEX
    return x, y


def task_loaders(task, batch_size, held_out=None, train_size=100_000, seed=0):
    """Training and held-out DataLoaders of (x, y) for `task`, and the held-out problems.

    Returns (train_loader, held_out_loader, (prompts, answers)); the training loader is in the
    seeded order that lesson 05's `train` walks.
    """
    train_ids, held_ids = split_problems(task, held_out, train_size, seed)
    held = task.problems(held_ids)
    train_set = TensorDataset(*encode_problems(*task.problems(train_ids)))
    held_set = TensorDataset(*encode_problems(*held))
    return (shuffled_loader(train_set, batch_size, seed),
            DataLoader(held_set, batch_size=max(batch_size, 256), shuffle=False), held)


# --- answers and how good they are ---------------------------------------------------------------


@torch.no_grad()
def solve(model, prompts, answer_length, batch_size=1024):
    """The model's greedy answers (N, A) to prompts (N, P): all the rows of a batch at once."""
    device = next(model.parameters()).device
    outputs = [generate(model, batch.to(device), answer_length, temperature=0)[:, -answer_length:].cpu()
               for batch in prompts.split(batch_size)]
    return torch.cat(outputs)


def exact_match(outputs, answers):
    """The fraction of rows of outputs (N, A) equal to answers (N, A) in every token.

    >>> exact_match(torch.tensor([[0, 1], [1, 1]]), torch.tensor([[0, 1], [0, 1]]))
    0.5
    """
    if outputs.shape != answers.shape:
        raise ValueError(f"outputs {tuple(outputs.shape)} and answers {tuple(answers.shape)} must have one shape")
    return (outputs == answers).all(dim=1).float().mean().item()


def error_kinds(task, prompts, answers, outputs):
    """How many answers went wrong in each way: a Counter {kind: count}, without the right ones."""
    kinds = Counter(task.error_kind(p, a, o) for p, a, o in zip(prompts, answers, outputs))
    kinds.pop("right", None)
    return kinds


# --- what the model reads -------------------------------------------------------------------------


@torch.no_grad()
def attention_maps(model, idx):
    """Every layer's attention weights for one sequence idx (1, T): a list of (H, T, T).

    A forward hook on each attention layer runs that layer once more on the same input,
    by hand (`return_weights=True`), and keeps its weights; the model's output is unchanged.
    """
    maps = []

    def keep(attn, inputs, output):
        maps.append(attn.forward(inputs[0], return_weights=True)[1][0])  # .forward: no hook again

    hooks = [block.attn.register_forward_hook(keep) for block in model.transformer.h]
    try:
        with eval_mode(model):
            model(idx)
    finally:
        for hook in hooks:
            hook.remove()
    return maps
