"""The `numogpt` command: python -m numogpt {train,sample,student,rerun,doctor} --help

Each command imports torch only when it runs, so that --help answers at once.
"""
import argparse
import sys
from pathlib import Path


# --- lesson 05: python -m numogpt train ---------------------------------------------------

TRAIN_HELP = """\
Train a GPT on the course corpus (or your own text), show a progress bar, print the
validation loss and perplexity, and write OUT/checkpoint.pt and the loss curve OUT/loss.png.
The checkpoint is saved at every evaluation; Ctrl-C leaves the last one whole and
`--resume` continues from it exactly where it stopped.
"""
# The default recipe: word-piece tokens (BPE trained on the text), so that the short run already
# writes real words (lesson 05 says why; bench/words.py measures it; numogpt.train.COURSE_MODEL is its model)
BPE_VOCAB_SIZE = 2048
TRAIN_DEFAULTS = dict(data="train-nn", tokenizer="bpe", preset="gpt-numo", block_size=None,
                      batch_size=16, max_iters=500, lr=2e-3, lr_decay_iters=500, eval_interval=None,
                      optimizer="adamw", seed=0, device="auto", dtype="auto", compile=False, grad_accum=1)
CHANGEABLE_ON_RESUME = "--max-iters, --eval-interval, --device, --compile and --grad-accum"


def add_train(commands):
    p = commands.add_parser("train", help="train a GPT; save OUT/checkpoint.pt and OUT/loss.png",
                            description=TRAIN_HELP)
    d = TRAIN_DEFAULTS
    # every default is None here, so that --resume can tell what was given on the command line
    p.add_argument("--data", metavar="PATH",
                   help=f"a UTF-8 text file, or a corpus name (train-nn, tinyshakespeare); default {d['data']}")
    p.add_argument("--tokenizer", choices=("char", "word", "bpe", "gpt2"),
                   help=f"bpe: byte-level BPE trained on the text, {BPE_VOCAB_SIZE} tokens (default); char: one "
                        f"id per character; word: one per word; gpt2: GPT-2's 50257 tokens")
    p.add_argument("--preset", metavar="NAME",
                   help=f"model size: nano, gpt-numo, micro, mini or gpt2 (numogpt.model.PRESETS); default {d['preset']}")
    p.add_argument("--block-size", type=int, metavar="T", help="context length in tokens (default: the preset's)")
    p.add_argument("--batch-size", type=int, metavar="B", help=f"blocks per step (default {d['batch_size']})")
    p.add_argument("--max-iters", type=int, metavar="N", help=f"optimizer steps in the whole run (default {d['max_iters']})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d['lr']})")
    p.add_argument("--lr-decay-iters", type=int, metavar="N",
                   help=f"step where the cosine decay ends; the rate stays at its minimum after it (default "
                        f"{d['lr_decay_iters']}). It does not follow --max-iters, so that a run stopped at step 20 "
                        f"and resumed to 40 learns exactly what a run of 40 does: set it to your planned length")
    p.add_argument("--eval-interval", type=int, metavar="N",
                   help="evaluate and save the checkpoint every N steps (default: a tenth of --max-iters)")
    p.add_argument("--optimizer", choices=("adamw", "muon"),
                   help="adamw, or muon: Muon for the weight matrices and AdamW for the rest, which learns more per "
                        f"step (lesson 05's speed run; needs PyTorch 2.9 or later; default {d['optimizer']})")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for checkpoint.pt and loss.png (default out)")
    p.add_argument("--seed", type=int, help=f"seeds the weights, the data order and dropout (default {d['seed']})")
    p.add_argument("--resume", action="store_true",
                   help=f"continue the run saved in OUT/checkpoint.pt, with its settings (only {CHANGEABLE_ON_RESUME} "
                        f"may change; others may be repeated unchanged)")
    # lesson 08: the same run on bigger hardware; `torchrun --nproc_per_node=N -m numogpt train ...`
    # runs it on N processes (the batch size stays the whole batch: each process takes 1/N of it)
    p.add_argument("--device", help=f"auto (a CUDA GPU, else MPS, else the CPU), cpu, cuda, cuda:N or mps "
                                    f"(default {d['device']})")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"),
                   help="precision of the forward pass (torch.autocast; weights stay float32): auto is bfloat16 on "
                        "GPUs that have it, else float16 with a gradient scaler on CUDA, else float32 "
                        f"(default {d['dtype']}; fixed for the run)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model for the training steps (slow to start, faster per step)")
    p.add_argument("--grad-accum", type=int, metavar="N",
                   help="gradient accumulation: run each batch in N slices, adding up their gradients (the same step "
                        f"in less memory; the batch size must be a multiple of N; default {d['grad_accum']})")
    add_task_options(p)
    p.set_defaults(run=run_train)


def run_train(args):
    if any(getattr(args, name) is not None for name in TASK_OPTIONS) or _resumes_a_task(args):
        return run_task_train(args)

    from numogpt.distributed import processes

    with processes(args.device or TRAIN_DEFAULTS["device"]) as rank:  # lesson 08: under torchrun, one of many
        _train(args, rank)


def _train(args, rank):
    import matplotlib

    matplotlib.use("Agg")  # write PNGs; no window
    import torch

    from numogpt.data import make_loaders
    from numogpt.model import GPT
    from numogpt.distributed import launched_processes
    from numogpt.train import TrainConfig, evaluate, load_checkpoint, resolve_device, train
    from numogpt.viz import plot_loss_curves

    path = Path(args.out) / "checkpoint.pt"
    settings, text, tokenizer, model_config = _resume_settings(args, path) if args.resume else _new_settings(args)
    if not args.resume and settings["max_iters"] < settings["lr_decay_iters"]:
        print(f"note: the learning rate decays over {settings['lr_decay_iters']} steps (--lr-decay-iters); this "
              f"run stops at step {settings['max_iters']}, before it is low: pass --lr-decay-iters "
              f"{settings['max_iters']} for a shorter schedule")
    ids = tokenizer.encode(text)
    # stride 1: every position starts a block, so even a small corpus gives many different batches
    train_loader, val_loader = make_loaders(ids, settings["block_size"], settings["batch_size"],
                                            stride=1, seed=settings["seed"])
    config = TrainConfig(max_iters=settings["max_iters"], learning_rate=settings["lr"],
                         min_lr=settings["lr"] / 10, warmup_iters=min(100, settings["lr_decay_iters"] // 10),
                         lr_decay_iters=settings["lr_decay_iters"], eval_interval=settings["eval_interval"],
                         optimizer=settings["optimizer"], seed=settings["seed"], device=settings["device"],
                         dtype=settings["dtype"], compile=settings["compile"], grad_accum=settings["grad_accum"])
    torch.manual_seed(settings["seed"])  # the initial weights
    model = GPT(model_config)
    c = model_config
    print(f"{len(text):,} characters -> {len(ids):,} {settings['tokenizer']} tokens (vocabulary {c.vocab_size}); "
          f"model {settings['preset']}: {c.n_layer} layers, {c.n_head} heads, {c.n_embd} dims, "
          f"block {c.block_size}, {model.num_params():,} parameters")
    print(f"on {resolve_device(settings['device'])} in {settings['dtype']}" + ", compiled" * settings["compile"]
          + f"; {launched_processes()} process(es) x {settings['grad_accum']} slice(s) of each batch of "
            f"{settings['batch_size']}")
    try:
        history = train(model, train_loader, val_loader, config, checkpoint=path, resume=args.resume,
                        tokenizer=tokenizer, command=settings)
    except KeyboardInterrupt:  # the checkpoint of the last evaluation is whole: say how to go on
        if not path.is_file():
            raise SystemExit("\ninterrupted before the first checkpoint") from None
        raise SystemExit(f"\ninterrupted. {path} holds step {load_checkpoint(path)['step']}; continue with: "
                         f"python -m numogpt train --resume --out {args.out}") from None
    if rank != 0:  # lesson 08: process 0 reports for all
        return
    loss, perplexity = evaluate(model, val_loader)
    plot_loss_curves(history).savefig(path.parent / "loss.png")
    print(f"validation loss {loss:.4f}, perplexity {perplexity:.2f} (the whole validation split)")
    print(f"wrote {path} and {path.parent / 'loss.png'}")


def _given(args):
    """The settings given on the command line, checked: {name: value}."""
    from numogpt.train import resolve_device

    given = {k: v for k, v in vars(args).items() if k in TRAIN_DEFAULTS and v is not None}
    for name in ("batch_size", "max_iters", "block_size", "lr_decay_iters", "eval_interval", "grad_accum"):
        if name in given and given[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be 1 or more, got {given[name]}")
    if "lr" in given and not given["lr"] > 0:
        raise ValueError(f"--lr must be > 0, got {given['lr']}")
    resolve_device(given.get("device", "cpu"))  # a device this machine lacks fails now, not after loading
    if given.get("dtype") == "auto":
        del given["dtype"]  # auto: a new run's best choice, a resumed run's own
    return given


def _new_settings(args):
    """A new run: (settings, text, tokenizer, model config) from the options and the defaults."""
    from numogpt.data import load_corpus
    from numogpt.model import GPTConfig
    from numogpt.train import resolve_device, resolve_dtype

    given = _given(args)
    settings = {**TRAIN_DEFAULTS, **given}
    settings["dtype"] = resolve_dtype(settings["dtype"], resolve_device(settings["device"]))  # saved as chosen
    text = load_corpus(settings["data"])  # a missing file or unknown name -> ValueError naming it
    if Path(settings["data"]).exists():
        settings["data"] = str(Path(settings["data"]).resolve())  # --resume may run from another folder
    tokenizer = _make_tokenizer(settings["tokenizer"], text)
    block = {"block_size": settings["block_size"]} if settings["block_size"] else {}
    model_config = GPTConfig.preset(settings["preset"], vocab_size=tokenizer.vocab_size, **block)
    settings["block_size"] = model_config.block_size
    settings["eval_interval"] = settings["eval_interval"] or max(1, settings["max_iters"] // 10)
    return settings, text, tokenizer, model_config


def _resume_settings(args, path):
    """A resumed run: the checkpoint's settings, with the few that may change taken from the options."""
    from numogpt.data import load_corpus
    from numogpt.model import GPTConfig
    from numogpt.tokenizer import tokenizer_from_dict
    from numogpt.train import OLDER_DEFAULTS, changed_on_resume, load_checkpoint

    given = _given(args)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: there is no checkpoint at {path}; train without --resume first "
                                f"(or point --out at the folder that holds it)")
    checkpoint = load_checkpoint(path)
    if "command" not in checkpoint:
        raise ValueError(f"{path} was not written by `python -m numogpt train`, so it cannot be resumed here")
    saved = {**OLDER_DEFAULTS, **checkpoint["command"]}
    if "data" in given and Path(given["data"]).exists():
        given["data"] = str(Path(given["data"]).resolve())  # saved resolved, see _new_settings
    # repeating a setting with the checkpoint's own value is fine; changing it is not (one rule
    # with train(): numogpt.train.MAY_CHANGE_ON_RESUME)
    changed = changed_on_resume(saved, given)
    if changed:
        raise ValueError(f"--resume continues the run in {path} with its own settings: "
                         + ", ".join(f"--{name.replace('_', '-')} {new} (the checkpoint has {old})"
                                     for name, old, new in changed)
                         + f"; drop them (only {CHANGEABLE_ON_RESUME} may change)")
    settings = {**saved, **given}
    return (settings, load_corpus(settings["data"]), tokenizer_from_dict(checkpoint["tokenizer"]),
            GPTConfig(**checkpoint["model_config"]))


def _make_tokenizer(kind, text):
    from numogpt.tokenizer import BPETokenizer, CharTokenizer, WordTokenizer, gpt2_tokenizer

    if kind == "char":
        return CharTokenizer(text)
    if kind == "word":
        return WordTokenizer(text)
    if kind == "bpe":
        tokenizer = BPETokenizer()
        tokenizer.train(text, vocab_size=BPE_VOCAB_SIZE)
        return tokenizer
    return gpt2_tokenizer()


# --- lesson 07: python -m numogpt train --task sort|add ----------------------------------------

TASK_OPTIONS = ("task", "length", "symbols", "digits", "order")


def add_task_options(p):
    p.add_argument("--task", choices=("sort", "add"),
                   help="train on generated problems instead of text (lesson 07): sort digits, or add numbers; "
                        "prints the exact-match accuracy on problems never seen in training")
    p.add_argument("--length", type=int, metavar="N", help="--task sort: digits per sequence (default 6)")
    p.add_argument("--symbols", type=int, metavar="K", help="--task sort: the digits 0..K-1 are used, K <= 10 (default 3)")
    p.add_argument("--digits", type=int, metavar="D", help="--task add: digits per number (default 2)")
    p.add_argument("--order", choices=("reversed", "plain"),
                   help="--task add: write the sum units digit first (reversed, the default) or as usual (plain)")


def _resumes_a_task(args):
    from numogpt.train import load_checkpoint

    path = Path(args.out) / "checkpoint.pt"
    return args.resume and path.is_file() and "task" in load_checkpoint(path)


def run_task_train(args):
    """`train --task`: the task's data, model and defaults from numogpt.tasks, then lesson 05's train."""
    import torch

    from numogpt.model import GPT
    from numogpt.tasks import error_kinds, prepare_run, solve
    from numogpt.train import changed_on_resume, load_checkpoint, train

    path = Path(args.out) / "checkpoint.pt"
    given = {**_given(args), **{k: v for k, v in vars(args).items() if k in TASK_OPTIONS and v is not None}}
    if args.resume:
        if not path.is_file():
            raise FileNotFoundError(f"--resume: there is no checkpoint at {path}; train without --resume first")
        saved = load_checkpoint(path).get("command", {})
        changed = changed_on_resume(saved, given)
        if changed or "task" not in saved:
            raise ValueError(f"--resume continues the task run in {path} with its own settings: drop "
                             + (", ".join(f"--{n.replace('_', '-')} {new}" for n, _, new in changed) or "--task"))
        given = saved | given
    run = prepare_run(given)
    task, c = run.task, run.model_config
    torch.manual_seed(run.settings["seed"])  # the initial weights
    model = GPT(c)
    print(f"{task.describe()}: {len(run.train_loader.dataset):,} training problems, {len(run.held_out[0]):,} "
          f"held out; model {c.n_layer} layers, {c.n_head} heads, {c.n_embd} dims, {model.num_params():,} parameters")
    train(model, run.train_loader, run.val_loader, run.train_config, checkpoint=path, resume=args.resume,
          tokenizer=task.tokenizer, task=task.to_dict(), command=run.settings)
    prompts, answers = run.held_out
    outputs = solve(model, prompts, task.answer_length)
    right = (outputs == answers).all(dim=1).sum().item()
    print(f"held-out exact match: {right / len(answers):.2%} ({right:,} of {len(answers):,} problems never seen in training)")
    for kind, count in error_kinds(task, prompts, answers, outputs).most_common():
        print(f"  {count:5,}  {kind}")
    print(f"wrote {path}; try: python -m numogpt sample --checkpoint {path} --prompt \"{task.example_prompt()}\"")


# --- lesson 06: python -m numogpt sample --------------------------------------------------


def add_sample(commands):
    p = commands.add_parser("sample", help="continue a prompt with a trained model, printing as it goes")
    p.add_argument("--checkpoint", required=True, help="a checkpoint saved by `python -m numogpt train`")
    p.add_argument("--prompt", required=True, help="the text to continue (in the checkpoint tokenizer's alphabet)")
    p.add_argument("--max-new-tokens", type=int, default=200, help="how many tokens to add (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy, <1 sharper, >1 wilder (default 1)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="sample only among the most likely tokens that make up this probability")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same text (default 0)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context each step (slower, same text)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps (default cpu; the same seed gives "
                                                   "other text on another device)")
    p.set_defaults(run=run_sample)


def run_sample(args):
    import torch

    from numogpt.sample import stream_text
    from numogpt.tasks import load_task
    from numogpt.train import load_model

    model, tokenizer = load_model(args.checkpoint, device=args.device)
    task = load_task(args.checkpoint)
    if task is not None:  # lesson 07: a model trained on a task answers its problem, greedily
        print(task.answer(model, args.prompt))
        return
    device = next(model.parameters()).device
    if tokenizer is None:
        raise ValueError(f"{args.checkpoint} holds no tokenizer, so the prompt cannot be encoded: "
                         f"save the checkpoint with tokenizer=...")
    pieces = stream_text(model, tokenizer, args.prompt, args.max_new_tokens, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, use_cache=not args.no_cache,
                         generator=torch.Generator(device).manual_seed(args.seed))
    print(args.prompt, end="", flush=True)
    try:
        for piece in pieces:
            print(piece, end="", flush=True)
    except KeyboardInterrupt:  # Ctrl-C ends the text, without a traceback
        pass
    print()


# --- the student copy of the course ----------------------------------------------------------


def add_student(commands):
    p = commands.add_parser("student", help="write the learner's copy of the course (solutions cut out); "
                                            "notebooks already there are kept")
    p.add_argument("dir", help="folder to write the student notebooks into")
    p.set_defaults(run=run_student)


def run_student(args):
    from numogpt import NOTEBOOKS_DIR
    from numogpt.tools.student import write_student_copy

    written, kept = write_student_copy(args.dir)
    for path in written:
        print(path)
    for path in kept:
        print(f"{path} (kept: your work; delete it to start that lesson again)")
    print(f"The solved lessons are in {NOTEBOOKS_DIR}: open one there to see a solution.")


# --- for maintainers: re-run the stored notebooks -------------------------------------------


def add_rerun(commands):
    p = commands.add_parser("rerun", help="re-execute the lesson notebooks in order, each in a fresh kernel, and save them")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="the notebooks to re-run (default: every lesson)")
    p.set_defaults(run=run_rerun)


def run_rerun(args):
    from numogpt.tools.notebooks import lesson_notebooks, rerun

    for path in args.notebooks or lesson_notebooks():
        if not Path(path).is_file():
            raise ValueError(f"no notebook at {path}")
        print(f"re-running {path} ...", flush=True)
        rerun(path)


# --- is this machine ready? ------------------------------------------------------------------


def add_doctor(commands):
    p = commands.add_parser("doctor", help="check this machine for the course: versions, devices, files, speed")
    p.add_argument("--device", default="cpu", help="where the speed probe trains: cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--seconds", type=float, default=5.0, help="how long the speed probe runs (default 5)")
    p.set_defaults(run=run_doctor)


def run_doctor(args):
    from numogpt.tools.doctor import doctor

    if doctor(args.device, args.seconds):
        raise SystemExit(1)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m numogpt", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    add_train(commands)
    add_sample(commands)
    add_student(commands)
    add_rerun(commands)
    add_doctor(commands)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as e:  # what numogpt raises on purpose, with the fix in words;
        parser.exit(2, f"error: {e}\n")  # anything else is a bug, and shows its traceback


if __name__ == "__main__":
    sys.exit(main())
