"""The `numogpt` command: python -m numogpt {train,sample,student,rerun,doctor} --help

Only the chosen command's options are built, and each command imports torch only when it
needs it, so that `python -m numogpt --help` answers at once.
"""
import argparse
import sys
from pathlib import Path


# --- lesson 05: python -m numogpt train (numogpt.runs builds every kind of run) ------------------

TRAIN_HELP = """\
Train a GPT on the course corpus (or your own text, or a task of lesson 07), show a progress
bar, print how good it got, and write OUT/checkpoint.pt (and, for text, the loss curve
OUT/loss.png). The checkpoint is saved at every evaluation; Ctrl-C leaves the last one whole
and `--resume` continues from it exactly where it stopped.
"""


def add_train(p):
    from numogpt.checkpoint import MAY_CHANGE_ON_RESUME
    from numogpt.runs import BPE_VOCAB_SIZE, TaskRun, TextRun, option
    from numogpt.tasks import TASKS

    d = TextRun.defaults
    # every default is None here, so that a run can tell what was given on the command line
    p.add_argument("--data", metavar="PATH",
                   help=f"a UTF-8 text file, or a corpus name (train-nn, tinyshakespeare); default {d['data']}")
    p.add_argument("--tokenizer", choices=("char", "word", "bpe", "gpt2"),
                   help=f"bpe: byte-level BPE trained on the text, {BPE_VOCAB_SIZE} tokens (default); char: one "
                        f"id per character; word: one per word; gpt2: GPT-2's 50257 tokens")
    p.add_argument("--vocab-size", type=int, metavar="V",
                   help=f"with --tokenizer bpe: the tokens of the BPE trained on the text (default {BPE_VOCAB_SIZE})")
    p.add_argument("--preset", metavar="NAME",
                   help=f"model size: nano, gpt-numo, micro, play, mini or gpt2 (numogpt.model.PRESETS); default "
                        f"{d['preset']}")
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
                        f"step (lesson 08's speed run; needs PyTorch 2.9 or later; default {d['optimizer']})")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for checkpoint.pt and loss.png (default out)")
    p.add_argument("--seed", type=int, help=f"seeds the weights, the data order and dropout (default {d['seed']})")
    changeable = ", ".join(option(name) for name in MAY_CHANGE_ON_RESUME if name in d)
    p.add_argument("--resume", action="store_true",
                   help=f"continue the run saved in OUT/checkpoint.pt, with its settings (only {changeable} may "
                        f"change; others may be repeated unchanged)")
    # lesson 08: the same run on bigger hardware; `torchrun --nproc_per_node=N -m numogpt train ...`
    # runs it on N processes (the batch size stays the whole batch: each process takes 1/N of it)
    p.add_argument("--device", help=f"auto (a CUDA GPU, else MPS, else the CPU), cpu, cuda, cuda:N or mps "
                                    f"(default {d['device']})")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"),
                   help="precision of the forward pass (torch.autocast; weights stay float32): auto is bfloat16 on "
                        "GPUs that have it, else float16 with a gradient scaler on CUDA; on a CPU with bfloat16 "
                        "units, bfloat16 where a few timed steps of the model find it clearly faster; else float32 "
                        f"(default {d['dtype']}; fixed for the run)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model for the training steps (slow to start, faster per step)")
    p.add_argument("--grad-accum", type=int, metavar="N",
                   help="gradient accumulation: run each batch in N slices, adding up their gradients (the same step "
                        f"in less memory; the batch size must be a multiple of N; default {d['grad_accum']})")
    # lesson 07: each task's own options, from its class
    p.add_argument("--task", choices=tuple(TASKS),
                   help="train on generated problems instead of text (lesson 07): sort digits, or add numbers; "
                        "prints the exact-match accuracy on problems never seen in training "
                        f"(a small model of {TaskRun.sizes['n_layer']} layers unless --preset)")
    options = {}
    for task in TASKS.values():
        for name, (kind, help) in task.options.items():
            options.setdefault(name, (kind, []))[1].append(help)
    for name, (kind, helps) in options.items():
        typed = dict(choices=kind) if isinstance(kind, tuple) else dict(type=kind, metavar="N")
        p.add_argument(option(name), **typed, help="; ".join(helps))


def run_train(args):
    from numogpt.runs import train_command

    given = {name: value for name, value in vars(args).items() if name not in ("command", "out", "resume", "run")}
    train_command(given, args.out, resume=args.resume)


# --- lesson 06: python -m numogpt sample --------------------------------------------------


def add_sample(p):
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


def run_sample(args):
    import torch

    from numogpt.checkpoint import load_model
    from numogpt.runs import saved_task
    from numogpt.sample import stream_text
    from numogpt.scaling import resolve_device

    model, tokenizer = load_model(args.checkpoint, device=resolve_device(args.device))
    task = saved_task(args.checkpoint)
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


def add_student(p):
    p.add_argument("dir", help="folder to write the student notebooks into")


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


def add_rerun(p):
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="the notebooks to re-run (default: every lesson)")


def run_rerun(args):
    from numogpt.tools.notebooks import lesson_notebooks, rerun

    for path in args.notebooks or lesson_notebooks():
        if not Path(path).is_file():
            raise ValueError(f"no notebook at {path}")
        print(f"re-running {path} ...", flush=True)
        rerun(path)


# --- is this machine ready? ------------------------------------------------------------------


def add_doctor(p):
    p.add_argument("--device", default="cpu", help="where the speed probe trains: cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--seconds", type=float, default=5.0, help="how long the speed probe runs (default 5)")


def run_doctor(args):
    from numogpt.tools.doctor import doctor

    if doctor(args.device, args.seconds):
        raise SystemExit(1)


# name: (one line of help, its options, what it runs)
COMMANDS = {
    "train": ("train a GPT; save OUT/checkpoint.pt and OUT/loss.png", add_train, run_train),
    "sample": ("continue a prompt with a trained model, printing as it goes", add_sample, run_sample),
    "student": ("write the learner's copy of the course (solutions cut out); notebooks already there are kept",
                add_student, run_student),
    "rerun": ("re-execute the lesson notebooks in order, each in a fresh kernel, and save them", add_rerun, run_rerun),
    "doctor": ("check this machine for the course: versions, devices, files, speed", add_doctor, run_doctor),
}
DESCRIPTIONS = {"train": TRAIN_HELP}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m numogpt", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND", dest="command")
    chosen = next((word for word in argv if not word.startswith("-")), None)
    for name, (help, add_options, run) in COMMANDS.items():
        p = commands.add_parser(name, help=help, description=DESCRIPTIONS.get(name, help))
        if name == chosen:  # only its options: train's import the lessons (and torch) for each task's own
            add_options(p)
            p.set_defaults(run=run)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as e:  # what numogpt raises on purpose, with the fix in words;
        parser.exit(2, f"error: {e}\n")  # anything else is a bug, and shows its traceback


if __name__ == "__main__":
    sys.exit(main())
