"""The command's runs: every `python -m numogpt train` goes through one pipeline.

A run is described once, by its settings: each of the command's options, as given or as the
kind of run defaults it. The checkpoint keeps them (its `run`), so `--resume` rebuilds the
same run from them by one rule (numogpt.checkpoint.resume_settings). Then, for every kind:

    settings -> the kind's data, tokenizer and model size -> GPT -> lesson 05's train, on lesson
    08's runtime (any device, precision, slices, processes) -> the kind's report

The kinds: `TextRun` (lesson 05's demo: a GPT on a text, reported by its validation loss) and
`TaskRun` (lesson 07: a GPT on generated problems, reported by exact match on held-out ones).
A new kind is a class with the same four parts: `defaults`, `settle`, `build` and `report`.

Like the command, this module imports torch and the lessons inside the functions that need
them, so that `python -m numogpt --help` answers at once.
"""
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The default recipe: word-piece tokens (BPE trained on the text), so that the short run already
# writes real words (lesson 05 says why; bench/words.py measures it; its model is numogpt.checkpoint.COURSE_MODEL)
BPE_VOCAB_SIZE = 2048
# what every kind of run shares, and each may change
COMMON = dict(preset=None, batch_size=16, max_iters=500, lr=2e-3, lr_decay_iters=None, eval_interval=None,
              optimizer="adamw", seed=0, device="auto", dtype="auto", compile=False, grad_accum=1)
COUNTS = ("batch_size", "max_iters", "block_size", "vocab_size", "lr_decay_iters", "eval_interval", "grad_accum")  # whole numbers >= 1


def option(name):
    """A setting as the command line spells it: grad_accum -> --grad-accum."""
    return f"--{name.replace('_', '-')}"


@dataclass
class Built:
    """What a kind of run builds from its settings."""

    train_loader: object
    val_loader: object
    tokenizer: object
    vocab_size: int
    block_size: int
    about: str  # one line on the data, printed before training


class TextRun:
    """Lesson 05's run: a GPT learns a text (the course corpus by default), reported by the
    validation loss and perplexity and a picture of the loss curves."""

    name = "text"
    defaults = dict(COMMON, data="train-nn", tokenizer="bpe", preset="gpt-numo", block_size=None,
                    lr_decay_iters=500)

    def settle(self, settings):
        from numogpt.model import PRESETS

        if settings["preset"] not in PRESETS:
            raise ValueError(f"unknown preset {settings['preset']!r}; choose one of {', '.join(PRESETS)}")
        if Path(settings["data"]).exists():
            settings["data"] = str(Path(settings["data"]).resolve())  # --resume may run from another folder
        if settings.get("vocab_size") is not None and settings["tokenizer"] != "bpe":
            raise ValueError(f"--vocab-size sizes the BPE trained on the text: it does not apply to --tokenizer "
                             f"{settings['tokenizer']}")
        settings["block_size"] = settings["block_size"] or PRESETS[settings["preset"]]["block_size"]
        settings["eval_interval"] = settings["eval_interval"] or max(1, settings["max_iters"] // 10)
        return settings

    def build(self, settings, tokenizer=None):
        from numogpt.data import load_corpus, make_loaders

        text = load_corpus(settings["data"])  # a missing file or unknown name -> ValueError naming it
        tokenizer = tokenizer or make_tokenizer(settings["tokenizer"], text, settings.get("vocab_size") or BPE_VOCAB_SIZE)
        ids = tokenizer.encode(text)
        # stride 1: every position starts a block, so even a small corpus gives many different batches
        train_loader, val_loader = make_loaders(ids, settings["block_size"], settings["batch_size"], stride=1,
                                                seed=settings["seed"])
        return Built(train_loader, val_loader, tokenizer, tokenizer.vocab_size, settings["block_size"],
                     about=f"{len(text):,} characters -> {len(ids):,} {settings['tokenizer']} tokens "
                           f"(vocabulary {tokenizer.vocab_size})")

    def report(self, model, built, history, path):
        from numogpt.tokenizer import BPETokenizer
        from numogpt.train import evaluate
        from numogpt.viz import plot_loss_curves

        loss, perplexity = evaluate(model, built.val_loader)
        plot_loss_curves(history).savefig(path.parent / "loss.png")
        per_char = ""
        if isinstance(built.tokenizer, BPETokenizer):  # byte-level (GPT-2's too): its tokens decode to the text itself
            per_char = f" = {loss / characters_per_token(built.tokenizer, built.val_loader.dataset.ids):.4f} per character"
        print(f"validation loss {loss:.4f}{' per token' * bool(per_char)}{per_char}, perplexity {perplexity:.2f} "
              f"(the whole validation split)")
        print(f"wrote {path} and {path.parent / 'loss.png'}")


def characters_per_token(tokenizer, ids):
    """How many characters of text a token of `ids` (a 1-D tensor) holds on average: a loss per
    token divided by it is a loss per character, comparable across tokenizers."""
    return len(tokenizer.decode(ids.tolist())) / len(ids)


def make_tokenizer(kind, text, vocab_size=BPE_VOCAB_SIZE):
    from numogpt.tokenizer import BPETokenizer, CharTokenizer, WordTokenizer, gpt2_tokenizer

    if kind == "char":
        return CharTokenizer(text)
    if kind == "word":
        return WordTokenizer(text)
    if kind == "bpe":
        tokenizer = BPETokenizer()
        tokenizer.train(text, vocab_size=vocab_size)
        return tokenizer
    return gpt2_tokenizer()


class TaskRun:
    """Lesson 07's run: a small GPT learns a task of numogpt.tasks from generated problems,
    reported by its exact match on problems it never saw in training."""

    name = "task"
    # small and short: a task's problems are short and its alphabet a dozen symbols; the steps are the task's
    defaults = dict(COMMON, batch_size=64, lr=3e-3, device="cpu", dtype="float32")
    sizes = dict(n_layer=2, n_head=4, n_embd=64)  # the model unless a --preset is given
    text_only = ("data", "tokenizer", "vocab_size", "block_size")  # a task's problems are generated, and their length is the context

    def settle(self, settings):
        from numogpt.tasks import task_from_options

        refused = [name for name in self.text_only if settings.get(name) is not None]
        if refused:
            raise ValueError(f"{option(refused[0])} does not apply to --task {settings['task']}")
        task = task_from_options(self.task_options(settings))
        settings.update(task.as_options())
        settings["max_iters"] = settings.get("max_iters") or task.default_steps()
        settings["lr_decay_iters"] = settings["lr_decay_iters"] or settings["max_iters"]
        settings["eval_interval"] = settings["eval_interval"] or max(1, settings["max_iters"] // 5)
        return settings

    @staticmethod
    def task_options(settings):
        """The task's own settings: {"task": "sort", "length": 6, ...} (the others are the run's)."""
        from numogpt.tasks import TASKS

        known = {name for task in TASKS.values() for name in task.options}
        return {name: value for name, value in settings.items() if name == "task" or name in known}

    def build(self, settings, tokenizer=None):
        from numogpt.tasks import task_from_options, task_loaders

        self.task = task_from_options(self.task_options(settings))
        train_loader, val_loader, self.held_out = task_loaders(self.task, settings["batch_size"], seed=settings["seed"])
        return Built(train_loader, val_loader, self.task.tokenizer, self.task.tokenizer.vocab_size,
                     self.task.block_size,
                     about=f"{self.task.describe()}: {len(train_loader.dataset):,} training problems, "
                           f"{len(self.held_out[0]):,} held out")

    def report(self, model, built, history, path):
        from numogpt.tasks import error_kinds, exact_match, solve

        prompts, answers = self.held_out
        outputs = solve(model, prompts, self.task.answer_length)
        right = round(exact_match(outputs, answers) * len(answers))
        print(f"held-out exact match: {right / len(answers):.2%} ({right:,} of {len(answers):,} problems never "
              f"seen in training)")
        for kind, count in error_kinds(self.task, prompts, answers, outputs).most_common():
            print(f"  {count:5,}  {kind}")
        print(f"wrote {path}; try: python -m numogpt sample --checkpoint {path} --prompt \"{self.task.example_prompt()}\"")


KINDS = {kind.name: kind for kind in (TextRun, TaskRun)}


def kind_of(settings):
    """The kind of run that settings describe: a task's when they name one, else a text's."""
    if settings.get("task") is not None:
        return TaskRun()
    from numogpt.tasks import TASKS

    task_only = next((name for task in TASKS.values() for name in task.options if settings.get(name) is not None), None)
    if task_only:
        raise ValueError(f"{option(task_only)} describes a task: add --task {' or --task '.join(TASKS)}")
    return TextRun()


def check_given(given):
    """The options given on the command line, checked before any work: {name: value}."""
    from numogpt.scaling import resolve_device

    for name in COUNTS:
        if given.get(name) is not None and given[name] < 1:
            raise ValueError(f"{option(name)} must be 1 or more, got {given[name]}")
    if given.get("lr") is not None and not given["lr"] > 0:
        raise ValueError(f"--lr must be > 0, got {given['lr']}")
    resolve_device(given.get("device") or "cpu")  # a device this machine lacks fails now, not after loading
    return {name: value for name, value in given.items() if value is not None}


def require_writable(folder):
    """Fail now, not after training, when the checkpoint's folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OSError(f"cannot write to {folder} ({e.strerror}): choose another folder with --out") from None


def train_config(settings):
    """The TrainConfig of a run: the schedule warms up over a tenth of the decay (at most 100 steps)
    and ends at a tenth of the peak rate."""
    from numogpt.train import TrainConfig

    decay = settings["lr_decay_iters"]
    return TrainConfig(max_iters=settings["max_iters"], learning_rate=settings["lr"], min_lr=settings["lr"] / 10,
                       warmup_iters=min(100, decay // 10), lr_decay_iters=decay,
                       eval_interval=settings["eval_interval"], optimizer=settings["optimizer"], seed=settings["seed"],
                       device=settings["device"], dtype=settings["dtype"], compile=settings["compile"],
                       grad_accum=settings["grad_accum"])


def model_config(settings, built, sizes=None):
    """The model: a preset's size (numogpt.model.PRESETS), or the kind's own `sizes`."""
    from numogpt.model import GPTConfig

    fit = dict(vocab_size=built.vocab_size, block_size=built.block_size)
    return GPTConfig.preset(settings["preset"], **fit) if settings["preset"] else GPTConfig(**sizes, **fit)


def settings_of(given, path, resume):
    """The run's settings: the kind's defaults and what was given, or, with --resume, the saved
    run's, with the few that may change taken from what was given."""
    from numogpt.checkpoint import resume_settings, saved_run

    if not resume:
        kind = kind_of(given)
        settings = {**kind.defaults, **given, "kind": kind.name}
        return kind.settle(settings)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: there is no checkpoint at {path}; train without --resume first "
                                f"(or point --out at the folder that holds it)")
    saved = saved_run(path)
    if saved is None:
        raise ValueError(f"{path} was not written by `python -m numogpt train`, so it cannot be resumed here")
    if "data" in given and Path(given["data"]).exists():
        given = {**given, "data": str(Path(given["data"]).resolve())}  # saved resolved, see TextRun.settle
    return resume_settings(saved, given, spell=lambda name: option(name) if name in saved else None)


def train_command(given, out, resume=False):
    """`python -m numogpt train`: build the run its options describe (or resume it), train it, report it."""
    import torch

    from numogpt.checkpoint import load_checkpoint, saved_tokenizer
    from numogpt.model import GPT
    from numogpt.scaling import Runtime, processes
    from numogpt.train import train

    path = Path(out) / "checkpoint.pt"
    given = check_given(given)
    settings = settings_of(given, path, resume)
    kind = KINDS[settings["kind"]]()
    require_writable(path.parent)
    with processes(settings["device"]) as rank:  # lesson 08: under torchrun, one of many
        if not resume and settings["max_iters"] < settings["lr_decay_iters"]:
            print(f"note: the learning rate decays over {settings['lr_decay_iters']} steps (--lr-decay-iters); this "
                  f"run stops at step {settings['max_iters']}, before it is low: pass --lr-decay-iters "
                  f"{settings['max_iters']} for a shorter schedule")
        built = kind.build(settings, saved_tokenizer(load_checkpoint(path)) if resume else None)
        torch.manual_seed(settings["seed"])  # the initial weights
        model = GPT(model_config(settings, built, getattr(kind, "sizes", None)))
        c = model.config
        print(f"{built.about}; model{' ' + settings['preset'] if settings['preset'] else ''}: {c.n_layer} layers, {c.n_head} heads, "
              f"{c.n_embd} dims, block {c.block_size}, {model.num_params():,} parameters")
        try:
            history = train(model, built.train_loader, built.val_loader, train_config(settings), checkpoint=path,
                            resume=resume, runtime=Runtime(), tokenizer=built.tokenizer, run=settings)
        except KeyboardInterrupt:  # the checkpoint of the last evaluation is whole: say how to go on
            if not path.is_file():
                raise SystemExit("\ninterrupted before the first checkpoint") from None
            raise SystemExit(f"\ninterrupted. {path} holds step {load_checkpoint(path)['step']}; continue with: "
                             f"python -m numogpt train --resume --out {out}") from None
        if rank == 0:  # lesson 08: process 0 reports for all
            kind.report(model, built, history, path)


def saved_task(path):
    """The task a checkpoint's run trained on, or None for a model of text."""
    from numogpt.checkpoint import saved_run
    from numogpt.tasks import task_from_options

    settings = saved_run(path)
    return task_from_options(TaskRun.task_options(settings)) if settings and settings["kind"] == "task" else None
