"""numogpt installed as a package, not used from its clone: it finds its files and writes nothing into itself.

pip builds numogpt from a copy of this checkout (as `pip install git+URL` builds from a fresh
clone) into a temporary folder, offline; then commands run from another folder with only that
folder on PYTHONPATH, so the clone cannot help.
"""
import os
import shutil
import subprocess
import sys

import pytest

import numogpt

IGNORED = shutil.ignore_patterns(".git", ".venv", "out", "build", "gpt-2", "*.egg-info", "__pycache__",
                                 ".pytest_cache", ".hypothesis", ".ipynb_checkpoints")


def listing(folder):
    """Every file under `folder` with its size and modification time."""
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*") if p.is_file())


def run(args, cwd, env):
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site, env, work): numogpt installed into `site`, the environment to run it, an empty folder to run in."""
    tmp = tmp_path_factory.mktemp("install")
    source, site, work = tmp / "source", tmp / "site", tmp / "work"
    shutil.copytree(numogpt.ROOT, source, ignore=IGNORED)
    # no index and no build isolation: nothing is downloaded, the venv's setuptools builds it
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--no-build-isolation", "--target", str(site), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip install failed (setuptools>=77 is in the test extra):\n{done.stderr}"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMOGPT_", "PYTHON"))}
    env.update(PYTHONPATH=str(site), NUMOGPT_GPT2_DIR=str(tmp / "gpt2-cache"), MPLBACKEND="Agg")
    return site, env, work


def test_the_installed_package_runs_and_writes_nothing_into_itself(installed):
    site, env, work = installed
    before = listing(site)
    assert (site / "numogpt" / "course_data" / "train-nn.txt").is_file()

    run(["-m", "numogpt", "train", "--preset", "nano", "--max-iters", "5", "--out", "run"], work, env)
    assert (work / "run" / "checkpoint.pt").is_file() and (work / "run" / "loss.png").is_file()

    script = (
        "import numogpt\n"
        "from numogpt.data import load_corpus\n"
        "from numogpt.tokenizer import gpt2_tokenizer, load_stopwords\n"
        "print(numogpt.__file__, numogpt.IN_CLONE)\n"
        "print(len(load_corpus('train-nn')), len(load_corpus('tinyshakespeare')), 'the' in load_stopwords())\n"
        "print(gpt2_tokenizer().encode('Hello world'))\n"
    )
    lines = run(["-c", script], work, env).splitlines()
    assert lines[0] == f"{site / 'numogpt' / '__init__.py'} False"  # the installed copy, not this clone
    corpus = (numogpt.DATA_DIR / "train-nn.txt").read_text(encoding="utf-8")
    assert lines[1] == f"{len(corpus)} 1115394 True"
    assert lines[2] == "[15496, 995]"
    assert sorted(p.name for p in (work.parent / "gpt2-cache").iterdir()) == ["encoder.json", "vocab.bpe"]

    assert "all good" in run(["-m", "numogpt", "doctor", "--seconds", "0.2"], work, env)
    assert listing(site) == before


def test_installed_gpt2_files_go_to_the_user_cache(installed):
    site, env, work = installed
    env = {k: v for k, v in env.items() if k != "NUMOGPT_GPT2_DIR"}
    env["XDG_CACHE_HOME"] = str(work.parent / "xdg")
    out = run(["-c", "from numogpt.gpt2_files import gpt2_files; print(gpt2_files()[0])"], work, env)
    assert out.strip() == str(work.parent / "xdg" / "numogpt" / "gpt-2" / "encoder.json")
