"""The `numogpt` command: python -m numogpt {train,sample,student} --help"""
import argparse
import sys


# --- lesson 05: python -m numogpt train ---------------------------------------------------


# --- lesson 06: python -m numogpt sample --------------------------------------------------


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
    add_student(commands)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
