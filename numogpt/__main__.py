"""The `numogpt` command: python -m numogpt {train,sample,student} --help"""
import argparse
import sys


# --- lesson 05: python -m numogpt train ---------------------------------------------------


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
    p.set_defaults(run=run_sample)


def run_sample(args):
    import torch

    from numogpt.sample import stream
    from numogpt.train import load_model

    model, tokenizer = load_model(args.checkpoint)
    if tokenizer is None:
        raise ValueError(f"{args.checkpoint} holds no tokenizer, so the prompt cannot be encoded: "
                         f"save the checkpoint with tokenizer=...")
    ids = tokenizer.encode(args.prompt)  # a character it has never seen -> ValueError naming it
    if not ids:
        raise ValueError(f"the prompt {args.prompt!r} has no tokens: give it some text to continue")
    eos_id = getattr(tokenizer, "eot_id", None)
    steps = stream(model, torch.tensor([ids]), args.max_new_tokens, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, eos_id=eos_id, use_cache=not args.no_cache,
                   generator=torch.Generator().manual_seed(args.seed))
    shown = tokenizer.decode(ids)
    print(shown, end="", flush=True)
    try:
        for next_id in steps:
            if next_id.item() == eos_id:
                break
            ids.append(next_id.item())
            # decode everything and print what is new: a character that BPE split across tokens
            # decodes to U+FFFD until its last byte arrives, so wait for it
            text = tokenizer.decode(ids)
            if not text.endswith("\ufffd"):
                print(text[len(shown):], end="", flush=True)
                shown = text
    except KeyboardInterrupt:  # Ctrl-C stops the text, not with a traceback
        pass
    print(tokenizer.decode(ids)[len(shown):])


# --- the student copy of the course ----------------------------------------------------------


def add_student(commands):
    p = commands.add_parser("student", help="write the student copy of the course (solutions cut out)")
    p.add_argument("dir", help="folder to write the student notebooks into")
    p.set_defaults(run=run_student)


def run_student(args):
    from numogpt.student import write_student_copy

    for path in write_student_copy(args.dir):
        print(path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m numogpt", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    # lesson 05 adds `train`, lesson 06 `sample`
    add_sample(commands)
    add_student(commands)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
