"""Lesson 08: any device, mixed precision, torch.compile, gradient accumulation, many processes."""
import io
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch
from torch.utils.data import TensorDataset

from numogpt.data import IGNORE_INDEX, make_loaders, shuffled_loader
from numogpt.sample import generate
import numogpt.train
from numogpt import scaling
from numogpt.checkpoint import load_checkpoint, load_model, save_checkpoint
from numogpt.scaling import Precision, Runtime, best_device, micro_batches, resolve_device, resolve_dtype
from numogpt.train import TrainConfig, evaluate

from tests.test_train import TINY, VOCAB, run_command
from tests.test_train import quiet as lesson05_quiet
from tests.test_train import tiny_gpt as lesson05_gpt

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


def tiny_gpt(seed=0, **overrides):
    return lesson05_gpt(seed, **{"dropout": 0.0, **overrides})  # without dropout 1 and N processes agree


def quiet(**kw):
    return lesson05_quiet(**{"learning_rate": 1e-2, **kw})


def train(*args, **kwargs):
    """Lesson 05's loop on lesson 08's runtime."""
    return numogpt.train.train(*args, runtime=Runtime(), **kwargs)


@pytest.fixture(scope="module")
def loaders():
    ids = torch.randint(0, VOCAB, (600,), generator=torch.Generator().manual_seed(1))
    return make_loaders(ids, block_size=8, batch_size=8)


# --- mixed precision with Muon ---------------------------------------------------------------------


def test_muon_steps_under_the_float16_gradient_scaler_as_in_float32(loaders):
    train_loader, val_loader = loaders
    runs = {dtype: train(tiny_gpt(dropout=0.0), train_loader, val_loader,
                         quiet(max_iters=6, eval_interval=6, learning_rate=1e-2, optimizer="muon", dtype=dtype))
            for dtype in ("float32", "float16")}
    losses = {dtype: [loss for _, loss in history["train"]] for dtype, history in runs.items()}
    assert losses["float16"] == pytest.approx(losses["float32"], rel=1e-2)
    assert losses["float32"][-1] != losses["float32"][0]


# --- any device ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cuda, mps, best", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_picks_cuda_then_mps_then_the_cpu(cuda, mps, best, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert best_device() == best


def test_auto_is_a_device_this_machine_has():
    assert resolve_device("auto") == torch.device(best_device() if best_device() != "cuda" else "cuda:0")


@pytest.mark.parametrize("device, bf16, dtype", [("cuda", True, "bfloat16"), ("cuda", False, "float16"),
                                                 ("cpu", True, "float32"), ("mps", True, "float32")])
def test_auto_precision_is_bfloat16_where_a_gpu_has_it_else_float16_with_a_scaler(device, bf16, dtype, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(scaling, "cpu_bfloat16_units", lambda: [])  # a CPU without bfloat16 units
    chosen, why = resolve_dtype("auto", torch.device(device))
    assert chosen == dtype and why.startswith("auto: ")
    assert device != "cpu" or "no bfloat16 units" in why
    assert resolve_dtype("float32", torch.device(device)) == ("float32", "as asked")  # a dtype asked for is kept
    assert Precision(dtype, torch.device("cpu")).scaler.is_enabled() == (dtype == "float16")


@pytest.mark.parametrize("bfloat16_ms, chosen", [(10, "bfloat16"), (30, "float32"), (19, "float32")])  # 19 of 20: noise
def test_auto_on_a_cpu_with_bfloat16_units_takes_bfloat16_where_it_steps_clearly_faster(bfloat16_ms, chosen, monkeypatch):
    monkeypatch.setattr(scaling, "cpu_bfloat16_units", lambda: ["avx512_bf16"])
    monkeypatch.setattr(scaling, "step_seconds", lambda model, x, dtype: {"float32": 0.02, "bfloat16": bfloat16_ms / 1000}[dtype])
    dtype, why = resolve_dtype("auto", torch.device("cpu"), tiny_gpt(), (2, 8))
    assert dtype == chosen
    assert why == f"auto: this CPU has avx512_bf16, and a forward and backward of this model took {bfloat16_ms} ms in bfloat16, 20 ms in float32"


def test_timing_the_dtypes_leaves_the_model_and_the_random_state_as_they_were(monkeypatch):
    monkeypatch.setattr(scaling, "cpu_bfloat16_units", lambda: ["avx512_bf16"])
    model = tiny_gpt(dropout=0.1)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    dtype, _ = resolve_dtype("auto", torch.device("cpu"), model, (2, 8))  # really timed, here
    assert dtype in ("float32", "bfloat16")
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_a_bad_dtype_or_grad_accum_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown dtype 'half'"):
        TrainConfig(dtype="half")
    with pytest.raises(ValueError, match="grad_accum"):
        TrainConfig(grad_accum=0)


# --- mixed precision ---------------------------------------------------------------------------------


def test_bfloat16_autocast_runs_the_matmuls_in_bfloat16_and_trains_close_to_float32(loaders):
    with Precision("bfloat16", torch.device("cpu")).autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    runs = {}
    for dtype in ("float32", "bfloat16"):
        model = tiny_gpt()
        history = train(model, *loaders, quiet(max_iters=8, dtype=dtype))
        runs[dtype] = [loss for _, loss in history["train"]]
        assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay float32
    assert all(torch.isfinite(torch.tensor(runs["bfloat16"])))
    assert runs["bfloat16"] != runs["float32"]  # it did run in lower precision...
    assert runs["bfloat16"] == pytest.approx(runs["float32"], abs=0.05)  # ...and learned the same


def test_float16_trains_with_a_gradient_scaler_that_is_saved_and_resumed(loaders, tmp_path):
    path = tmp_path / "ck.pt"
    history = train(tiny_gpt(), *loaders, quiet(max_iters=3, dtype="float16", lr_decay_iters=6), checkpoint=path)
    assert all(torch.isfinite(torch.tensor([loss for _, loss in history["train"]])))
    scale = load_checkpoint(path)["runtime"]["grad_scaler"]["scale"]
    assert scale > 1  # the loss is multiplied before backward, so small float16 gradients do not vanish
    train(tiny_gpt(), *loaders, quiet(max_iters=6, dtype="float16", lr_decay_iters=6), checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="dtype 'float16' in the checkpoint, 'float32' now"):
        train(tiny_gpt(), *loaders, quiet(max_iters=9, lr_decay_iters=6), checkpoint=path, resume=True)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_a_bfloat16_run_stopped_and_resumed_ends_exactly_as_a_straight_run(loaders, tmp_path, optimizer):
    config = dict(dtype="bfloat16", lr_decay_iters=8, eval_interval=4, optimizer=optimizer)
    straight, resumed = tiny_gpt(dropout=0.1), tiny_gpt(dropout=0.1)
    train(straight, *loaders, quiet(max_iters=8, **config))
    train(tiny_gpt(dropout=0.1), *loaders, quiet(max_iters=4, **config), checkpoint=tmp_path / "ck.pt")
    train(resumed, *loaders, quiet(max_iters=8, **config), checkpoint=tmp_path / "ck.pt", resume=True)
    assert load_checkpoint(tmp_path / "ck.pt")["train_config"]["dtype"] == "bfloat16"  # it ran in bfloat16
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


# --- gradient accumulation -------------------------------------------------------------------------


def padded_loader():
    """Batches whose rows count different numbers of targets: slices are not equal in tokens."""
    g = torch.Generator().manual_seed(3)
    X = torch.randint(0, VOCAB, (64, 8), generator=g)
    Y = torch.randint(0, VOCAB, (64, 8), generator=g)
    Y[torch.rand(64, 8, generator=g) < 0.4] = IGNORE_INDEX
    return shuffled_loader(TensorDataset(X, Y), batch_size=8)


@pytest.mark.parametrize("grad_accum", [2, 4, 8])
def test_grad_accum_n_equals_one_batch_n_times_larger(grad_accum):
    loader = padded_loader()
    # without biases: the key bias's true gradient is 0 (softmax ignores a shift shared by every key),
    # so AdamW would divide its rounding noise by its own size and make it a step
    models = {n: tiny_gpt(bias=False) for n in (1, grad_accum)}
    histories = {n: train(model, loader, loader, quiet(max_iters=5, grad_accum=n, eval_interval=5))
                 for n, model in models.items()}
    assert [l for _, l in histories[1]["train"]] == pytest.approx([l for _, l in histories[grad_accum]["train"]],
                                                                   rel=1e-5)
    for a, b in zip(models[1].parameters(), models[grad_accum].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_slices_of_a_batch_weigh_by_their_targets_and_must_be_equal():
    x = torch.zeros(4, 2, dtype=torch.long)
    y = torch.tensor([[1, 1], [1, IGNORE_INDEX], [IGNORE_INDEX, IGNORE_INDEX], [1, 1]])
    assert [share for *_, share in micro_batches(x, y, grad_accum=4)] == [0.4, 0.2, 0.0, 0.4]
    assert [xs.size(0) for xs, *_ in micro_batches(x, y, grad_accum=1, rank=1, world_size=2)] == [2]
    with pytest.raises(ValueError, match="a batch of 4 does not split into 1 process.* grad_accum 3"):
        list(micro_batches(x, y, grad_accum=3))


def test_a_batch_that_does_not_split_is_refused_before_training(loaders):
    with pytest.raises(ValueError, match="a batch of 8 does not split .* multiple of 3"):
        train(tiny_gpt(), *loaders, quiet(max_iters=2, grad_accum=3))


# --- torch.compile -----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")  # from inside torch.compile
def test_compiled_training_then_evaluation_and_sampling_in_the_same_run(loaders, tmp_path):
    if not shutil.which("gcc") and not shutil.which("cc"):
        pytest.skip("torch.compile on a CPU needs a C compiler (gcc), and this machine has none")
    torch._dynamo.reset()
    samples = []
    sampler = lambda step, m, h: samples.append(generate(m, torch.zeros(1, 1, dtype=torch.long), 12))  # noqa: E731
    model = tiny_gpt()
    path = tmp_path / "ck.pt"
    history = train(model, *loaders, quiet(max_iters=6, eval_interval=2, compile=True), [sampler], checkpoint=path)
    plain = tiny_gpt()
    plain_history = train(plain, *loaders, quiet(max_iters=6, eval_interval=2))
    assert [l for _, l in history["train"]] == pytest.approx([l for _, l in plain_history["train"]], rel=1e-4)
    assert len(samples) == 4 and all(s.shape == (1, 13) for s in samples)  # sampling with the KV cache works
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert 0 < frames <= 4  # compiled once for training: evaluation and sampling did not recompile it
    saved = load_checkpoint(path)["model"]
    assert not any(k.startswith("_orig_mod.") for k in saved)  # the plain module's names
    loaded, _ = load_model(path)
    assert evaluate(loaded, loaders[1]) == pytest.approx(evaluate(model, loaders[1]))


# --- checkpoints across devices --------------------------------------------------------------------


def written_on_cuda(path):
    """Rewrite a checkpoint as if its tensors had been saved from cuda:0 (a GPU's checkpoint)."""
    with zipfile.ZipFile(path) as zin:
        files = {info: zin.read(info.filename) for info in zin.infolist()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for info, data in files.items():
            if info.filename.endswith("data.pkl"):
                # the pickle names each storage's device as a short string: 'cpu' -> 'cuda:0'
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info, data)
    path.write_bytes(out.getvalue())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a real GPU runs the GPU test below instead")
def test_a_checkpoint_written_on_a_gpu_loads_on_a_cpu(tmp_path):
    model = tiny_gpt()
    path = save_checkpoint(tmp_path / "gpu.pt", model)
    written_on_cuda(path)
    with pytest.raises(RuntimeError, match="CUDA"):  # what torch.load alone says on a machine without one
        torch.load(path, weights_only=True)
    loaded, _ = load_model(path, device=resolve_device("auto"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_and_cpu_checkpoints_load_and_resume_on_the_other_device(loaders, tmp_path):
    gpu, cpu = tmp_path / "gpu.pt", tmp_path / "cpu.pt"
    train(tiny_gpt(), *loaders, quiet(max_iters=4, lr_decay_iters=8, device="cuda", dtype="auto"), checkpoint=gpu)
    model, _ = load_model(gpu, device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    assert torch.isfinite(torch.tensor(evaluate(model, loaders[1])[0]))
    dtype, _ = resolve_dtype("auto", torch.device("cuda"))
    train(tiny_gpt(), *loaders, quiet(max_iters=4, lr_decay_iters=8, dtype=dtype), checkpoint=cpu)
    model = tiny_gpt()
    train(model, *loaders, quiet(max_iters=8, lr_decay_iters=8, device="cuda", dtype=dtype), checkpoint=cpu,
          resume=True)
    assert next(model.parameters()).device.type == "cuda"
    out = generate(model, torch.zeros(1, 1, dtype=torch.long, device="cuda"), 5)
    assert out.device.type == "cuda"


# --- many processes ----------------------------------------------------------------------------------

SMALL = ["--preset", "nano", "--block-size", "16", "--batch-size", "8", "--eval-interval", "10",
         "--lr-decay-iters", "30"]


def torchrun(out, *argv):
    """Run `torchrun --nproc_per_node=2 -m numogpt train ...` (as python -m torch.distributed.run, which
    is what the torchrun script runs); its stdout."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "-m", "numogpt", "train", *argv, "--out", str(out)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("two")
    # 2 slices per process: DDP syncs the gradients on the last one only
    return out, torchrun(out, *SMALL, "--max-iters", "30", "--grad-accum", "2")


def test_two_processes_learn_what_one_process_learns_and_report_once(two_process_run, tmp_path, capsys):
    two, printed = two_process_run
    code, one, _ = run_command(capsys, *SMALL, "--max-iters", "30", "--out", str(tmp_path))  # one process, here
    assert code == 0
    assert printed.count("validation loss") == 1 and printed.count("characters ->") == 1  # rank 0 alone prints
    assert "2 process(es)" in printed and "1 process(es)" in one
    assert sorted(p.name for p in two.iterdir()) == ["checkpoint.pt", "loss.png"]  # one checkpoint
    a, b = load_checkpoint(tmp_path / "checkpoint.pt"), load_checkpoint(two / "checkpoint.pt")
    assert [l for _, l in a["history"]["train"]] == pytest.approx([l for _, l in b["history"]["train"]], rel=1e-5)
    assert [l for _, l in a["history"]["val"]] == pytest.approx([l for _, l in b["history"]["val"]], rel=1e-5)
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], rtol=1e-4, atol=1e-4)
    final = [line for line in printed.splitlines() if line.startswith("validation loss")]
    assert final == [line for line in one.splitlines() if line.startswith("validation loss")]


def test_two_processes_stopped_and_resumed_end_as_a_straight_run(two_process_run, tmp_path):
    two, _ = two_process_run
    torchrun(tmp_path, *SMALL, "--max-iters", "10", "--grad-accum", "2")
    torchrun(tmp_path, "--resume", "--max-iters", "30")
    straight, resumed = load_checkpoint(two / "checkpoint.pt"), load_checkpoint(tmp_path / "checkpoint.pt")
    assert resumed["step"] == 30 and len(resumed["runtime"]["rng_states"]) == 2
    for name in straight["model"]:
        assert torch.equal(straight["model"][name], resumed["model"][name]), name
    assert resumed["history"]["train"] == straight["history"]["train"]


def test_two_processes_with_muon_learn_what_one_process_learns(tmp_path, capsys):
    # Muon orthogonalizes the averaged gradient in each process: both must step alike, and as one process
    torchrun(tmp_path / "two", *SMALL, "--max-iters", "10", "--optimizer", "muon")
    assert run_command(capsys, *SMALL, "--max-iters", "10", "--optimizer", "muon", "--out", str(tmp_path / "one"))[0] == 0
    one, two = load_checkpoint(tmp_path / "one" / "checkpoint.pt"), load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    assert two["train_config"]["optimizer"] == "muon"
    assert [l for _, l in two["history"]["train"]] == pytest.approx([l for _, l in one["history"]["train"]], rel=1e-3)
    for name in one["model"]:
        torch.testing.assert_close(two["model"][name], one["model"][name], rtol=1e-3, atol=1e-3)


# --- the command's options -------------------------------------------------------------------------


def test_the_command_documents_and_checks_its_lesson_08_options(tmp_path, capsys):
    from numogpt.__main__ import main

    code, out, _ = run_command(capsys, "--help")
    assert code == 0 and all(option in out for option in ("--dtype", "--compile", "--grad-accum", "auto"))
    code, _, err = run_command(capsys, *TINY, "--grad-accum", "0", "--out", str(tmp_path))
    assert code == 2 and "--grad-accum must be 1 or more, got 0" in err
    code, _, err = run_command(capsys, *TINY, "--grad-accum", "3", "--max-iters", "1", "--out", str(tmp_path))
    assert code == 2 and "a batch of 4 does not split into 1 process(es) x grad_accum 3" in err
    code, out, _ = run_command(capsys, *TINY, "--max-iters", "1", "--out", str(tmp_path))
    chosen = load_checkpoint(tmp_path / "checkpoint.pt")["train_config"]["dtype"]
    assert code == 0 and f"on {resolve_device('auto')} in {chosen} (auto: " in out  # what auto chose, and why
    other = "bfloat16" if chosen == "float32" else "float32"
    code, _, err = run_command(capsys, "--resume", "--dtype", other, "--max-iters", "2", "--out", str(tmp_path))
    assert code == 2 and f"--dtype '{chosen}' in the checkpoint, '{other}' now" in err
    code, _, err = run_command(capsys, "--resume", "--dtype", "auto", "--grad-accum", "2", "--max-iters", "2",
                               "--out", str(tmp_path))
    assert code == 0, err  # auto keeps the run's own dtype; the slices may change
    main(["sample", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--prompt", "The ", "--max-new-tokens", "5",
          "--device", "auto"])
    assert capsys.readouterr().out.startswith("The ")
