"""`python -m numogpt doctor`: says all is well on a good set-up, and names the fix when something is missing."""
import subprocess
import sys

import pytest
import torch

import numogpt.tools.doctor
from numogpt import gpt2_files
from numogpt.__main__ import main


def doctor(capsys, *args):
    """(exit status, what it printed) of `python -m numogpt doctor ARGS`."""
    try:
        main(["doctor", "--seconds", "0.2", *args])
        status = 0
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out + err


def test_a_good_set_up_passes_and_says_how_fast(capsys, one_thread):
    status, out = doctor(capsys)
    assert status == 0, out
    for line in ("python", "torch", "numogpt", "cpu", "cuda", "mps", "course data  ok", "GPT-2 files  ok",
                 "training steps/s", "all good"):
        assert line in out
    assert "problems" not in out


def test_missing_course_data_fails_with_the_fix(capsys, tmp_path, monkeypatch, one_thread):
    (tmp_path / "train-nn.txt").write_text("text", encoding="utf-8")  # the two others are gone
    monkeypatch.setattr(numogpt.tools.doctor, "DATA_DIR", tmp_path)
    status, out = doctor(capsys)
    assert status == 1
    assert "course data  MISSING: stopwords.txt, tinyshakespeare.txt" in out
    assert "fix: git checkout -- numogpt/course_data" in out  # the tests run in a clone
    assert "training steps/s" not in out  # no speed probe on a broken set-up


def test_edited_gpt2_files_fail_with_the_fix(capsys, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv(gpt2_files.GPT2_DIR_VARIABLE, str(tmp_path))
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\n", encoding="utf-8")
    status, out = doctor(capsys)
    assert status == 1
    assert "GPT-2 files  MISSING" in out and "vocab.bpe has sha256" in out and "delete it" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_fails_at_once():
    done = subprocess.run([sys.executable, "-m", "numogpt", "doctor", "--device", "cuda"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "device 'cuda' is not available on this machine: use 'cpu'" in done.stderr
    assert "numoGPT doctor" not in done.stdout  # it fails before the report
