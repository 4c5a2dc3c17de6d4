"""nanoGPT beside numogpt in the same run: the `--nanogpt DIR` option of the benches.

nanoGPT (github.com/karpathy/nanoGPT) is not part of this repository and no bench fetches
it. Clone it yourself and pass the folder; the benches then import its own model.py by
path (bench/model.py, bench/sample.py) or run its own train.py (bench/train.py), so both
sides are measured on the same machine, under the same load, in one run.
"""
import argparse
import contextlib
import importlib.util
import io
from pathlib import Path

NEEDED = ("model.py", "train.py", "configurator.py", "config/train_shakespeare_char.py")
NOT_MEASURED = ("nanoGPT: not measured. To measure it beside numogpt in this run, fetch a checkout "
                "(git clone https://github.com/karpathy/nanoGPT) and pass --nanogpt path/to/nanoGPT")


def checkout(path):
    """The resolved folder of a nanoGPT checkout (an argparse type: a clear error otherwise)."""
    path = Path(path).expanduser()
    missing = [name for name in NEEDED if not (path / name).is_file()]
    if missing:
        raise argparse.ArgumentTypeError(f"{path} is not a nanoGPT checkout: it lacks {', '.join(missing)}")
    return path.resolve()


def add_option(parser):
    parser.add_argument("--nanogpt", metavar="DIR", type=checkout,
                        help="a nanoGPT checkout (git clone https://github.com/karpathy/nanoGPT): "
                             "measure its own code beside ours in the same run")


def load_model_module(directory):
    """nanoGPT's model.py, imported from `directory` by path (it is not on sys.path)."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", directory / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quietly(make, *args):
    """make(*args) without what it prints (nanoGPT's GPT and optimizer report their sizes)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return make(*args)
