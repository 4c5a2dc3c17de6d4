"""Lesson 05: the schedule, the optimizer groups, evaluation, checkpoints, exact resume, the NaN stop."""
import math
import re

import pytest
import regex
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from numogpt.checkpoint import load_checkpoint, load_model, load_state, save_checkpoint
from numogpt.data import make_loaders
from numogpt.model import GPT, GPTConfig
from numogpt.train import TrainConfig, configure_optimizer, evaluate, lr_at, train, weight_decay_groups

VOCAB = 11


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


def tiny_gpt(seed=0, **overrides):
    torch.manual_seed(seed)
    config = dict(vocab_size=VOCAB, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
    return GPT(GPTConfig(**{**config, **overrides}))


@pytest.fixture(scope="module")
def loaders():
    ids = torch.randint(0, VOCAB, (600,), generator=torch.Generator().manual_seed(1))
    return make_loaders(ids, block_size=8, batch_size=4)  # 16 batches per epoch


def quiet(**kw):
    return TrainConfig(**{"progress": False, "warmup_iters": 3, "eval_iters": 2, **kw})


# --- the schedule ----------------------------------------------------------------------------


def test_schedule_matches_torch_linear_warmup_then_cosine_annealing():
    config = TrainConfig(max_iters=60, learning_rate=3e-3, min_lr=3e-4, warmup_iters=10, lr_decay_iters=50)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / 10, end_factor=1.0, total_iters=9)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40, eta_min=config.min_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warmup, cosine], milestones=[10])
    for step in range(50):
        assert lr_at(step, config) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9), step
        opt.step()
        sched.step()
    assert all(lr_at(step, config) == config.min_lr for step in range(50, 80))


def test_schedule_warms_up_linearly_then_never_rises_and_ends_at_min_lr():
    config = TrainConfig(max_iters=200, learning_rate=1e-3, min_lr=1e-4, warmup_iters=20)
    lrs = [lr_at(step, config) for step in range(201)]
    steps = [b - a for a, b in zip(lrs[:20], lrs[1:20])]
    assert steps == pytest.approx([1e-3 / 20] * 19)
    assert lrs[19] == pytest.approx(1e-3)
    assert all(b <= a + 1e-15 for a, b in zip(lrs[19:], lrs[20:]))
    assert lrs[200] == 1e-4 and lrs[199] > 1e-4


def test_schedule_without_warmup_starts_at_the_peak():
    config = TrainConfig(max_iters=10, learning_rate=1e-3, warmup_iters=0)
    assert lr_at(0, config) == pytest.approx(1e-3)


@pytest.mark.parametrize("bad, words", [
    (dict(max_iters=0), "max_iters"), (dict(min_lr=1.0, learning_rate=0.1), "min_lr"),
    (dict(grad_clip=0), "grad_clip"), (dict(warmup_iters=50, lr_decay_iters=50), "lr_decay_iters"),
    (dict(optimizer="sgd"), "unknown optimizer 'sgd': use 'adamw' or 'muon'"),
])
def test_bad_config_is_refused_by_name(bad, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**bad)


def test_a_count_that_is_not_a_whole_number_is_refused_by_name():
    with pytest.raises(TypeError, match="eval_interval must be an int, got 2.5"):
        TrainConfig(eval_interval=2.5)


# --- the optimizer -------------------------------------------------------------------------------


def test_decay_only_the_weight_matrices_not_embeddings_layernorms_or_biases():
    model = tiny_gpt(n_layer=2)
    decay, no_decay = weight_decay_groups(model)
    assert sorted(decay) == sorted(f"transformer.h.{i}.{name}.weight" for i in range(2)
                                   for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"))
    assert "transformer.wte.weight" in no_decay and "transformer.wpe.weight" in no_decay
    assert "lm_head.weight" not in decay + no_decay  # tied to wte: one tensor, listed once
    assert len(no_decay) == 2 + 2 * (4 + 4) + 2  # embeddings, per block 2 LayerNorms + 4 biases, ln_f
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for g in configure_optimizer(model, TrainConfig()).param_groups for p in g["params"])


def test_one_adamw_step_shrinks_decayed_weights_only():
    # with zero gradients, AdamW's update is the decay alone: w <- w * (1 - lr * weight_decay)
    model = tiny_gpt()
    config = TrainConfig(learning_rate=0.1, warmup_iters=0, weight_decay=0.5)
    opt = configure_optimizer(model, config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    decay, no_decay = weight_decay_groups(model)
    for n, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if n in decay else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor)


def test_muon_takes_the_decayed_matrices_and_adamw_the_rest_as_torch_would_step_them():
    # the pair against torch's own optimizers, built by hand on a copy of the same model
    model, copy = tiny_gpt(dropout=0.0), tiny_gpt(dropout=0.0)
    config = TrainConfig(optimizer="muon", learning_rate=0.01, warmup_iters=0, weight_decay=0.5)
    pair = configure_optimizer(model, config)
    decay, no_decay = weight_decay_groups(model)
    params = dict(copy.named_parameters())
    muon = torch.optim.Muon([params[n] for n in decay], lr=0.01, weight_decay=0.5, adjust_lr_fn="match_rms_adamw")
    adamw = torch.optim.AdamW([params[n] for n in no_decay], lr=0.01, betas=config.betas, weight_decay=0.0)
    assert sum(len(g["params"]) for g in pair.param_groups) == len(list(model.parameters()))
    x = torch.randint(0, VOCAB, (4, 8), generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        for m, optimizers in ((model, [pair]), (copy, [muon, adamw])):
            for o in optimizers:
                o.zero_grad()
            m(x, x.roll(1, 1))[1].backward()
            for o in optimizers:
                o.step()
    for (name, ours), theirs in zip(model.named_parameters(), copy.parameters()):
        assert not torch.equal(ours, tiny_gpt().get_parameter(name)), name  # every tensor moved
        torch.testing.assert_close(ours, theirs, msg=name)


def test_a_muon_run_resumes_exactly_and_may_not_switch_optimizer(loaders, tmp_path):
    train_loader, val_loader = loaders
    schedule = dict(lr_decay_iters=20, learning_rate=1e-2, optimizer="muon")
    straight, resumed = tmp_path / "straight.pt", tmp_path / "resumed.pt"
    train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=20, eval_interval=20, **schedule), checkpoint=straight)
    train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=10, eval_interval=10, **schedule), checkpoint=resumed)
    with pytest.raises(ValueError, match="optimizer 'muon' in the checkpoint, 'adamw' now"):
        train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=20, lr_decay_iters=20, learning_rate=1e-2),
              checkpoint=resumed, resume=True)
    train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=20, eval_interval=20, **schedule),
          checkpoint=resumed, resume=True)
    states_equal(load_checkpoint(straight), load_checkpoint(resumed))


def test_gradients_are_clipped_to_grad_clip_keeping_their_direction(loaders):
    train_loader, val_loader = loaders
    model = tiny_gpt(dropout=0.0)
    train_loader.batch_sampler.set_epoch(0)
    x, y = next(iter(train_loader))  # the batch of step 0
    model(x, y)[1].backward()
    raw = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad()
    clip = 0.1 * raw.norm().item()
    train(model, train_loader, val_loader, quiet(max_iters=1, grad_clip=clip))  # grads stay after the step
    clipped = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert clipped.norm().item() == pytest.approx(clip, rel=1e-4)
    torch.testing.assert_close(clipped, raw * (clip / raw.norm()))


# --- evaluation ----------------------------------------------------------------------------------


def test_evaluate_is_the_mean_cross_entropy_over_counted_tokens_in_eval_mode():
    model = tiny_gpt()
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, VOCAB, (7, 8), generator=g)
    y = torch.randint(0, VOCAB, (7, 8), generator=g)
    y[2, 5:] = -100  # padding does not count
    loader = DataLoader(TensorDataset(x, y), batch_size=3)  # batches of 3, 3, 1
    model.train()
    rng = torch.get_rng_state()
    loss, perplexity = evaluate(model, loader)
    assert model.training and torch.equal(rng, torch.get_rng_state())
    model.eval()
    with torch.no_grad():
        reference = F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten(), ignore_index=-100).item()
    assert loss == pytest.approx(reference, rel=1e-5)
    assert perplexity == pytest.approx(math.exp(reference), rel=1e-5)
    first, _ = evaluate(model, loader, max_batches=1)
    with torch.no_grad():
        assert first == pytest.approx(F.cross_entropy(model(x[:3])[0].flatten(0, 1), y[:3].flatten()).item(), rel=1e-5)


# --- checkpoints ----------------------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path):
    model = tiny_gpt()
    opt = configure_optimizer(model, TrainConfig())
    model(torch.zeros(1, 8, dtype=torch.long), torch.ones(1, 8, dtype=torch.long))[1].backward()
    opt.step()
    path = save_checkpoint(tmp_path / "ck.pt", model, opt, step=7, note="hi")
    raw = torch.load(path, weights_only=True)  # plain types and tensors only
    assert {"model_config", "model", "optimizer", "step", "tokenizer"} <= raw.keys()
    assert raw["step"] == 7 and raw["note"] == "hi" and raw["tokenizer"] is None
    loaded, tokenizer = load_model(path)
    assert tokenizer is None and not loaded.training and loaded.config == model.config
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert loaded.lm_head.weight is loaded.transformer.wte.weight  # still tied
    fresh = configure_optimizer(loaded, TrainConfig())
    fresh.load_state_dict(load_checkpoint(path)["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_a_checkpoint_of_another_shape_gets_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", tiny_gpt())
    with pytest.raises(ValueError, match="n_embd=16 but this model has n_embd=32"):
        load_state(tiny_gpt(n_embd=32), load_checkpoint(path))
    plain = nn.Sequential(nn.Linear(3, 4))
    save_checkpoint(tmp_path / "plain.pt", plain)
    with pytest.raises(ValueError, match=r"0.weight has shape \(4, 3\).* has \(5, 3\)"):
        load_state(nn.Sequential(nn.Linear(3, 5)), load_checkpoint(tmp_path / "plain.pt"))


def test_a_failed_write_leaves_the_old_checkpoint_whole(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "ck.pt", tiny_gpt(), step=1)
    real_save = torch.save

    def save_half_then_fail(obj, f):
        real_save(obj, f)
        f.truncate(100)  # a half-written file...
        raise KeyboardInterrupt  # ...and then Ctrl-C

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, tiny_gpt(seed=1), step=2)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind


def test_bad_files_get_clear_errors_and_no_code_runs(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    path = save_checkpoint(tmp_path / "ck.pt", tiny_gpt())
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a numogpt checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"model": {}, "model_config": None, "step": 0, "payload": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable checkpoint") as refused:  # weights_only refuses the object
        load_checkpoint(tmp_path / "evil.pt")
    assert not Exploit.ran
    # PyTorch's advice to load with weights_only=False (which would run the object's code) is not passed on
    message = str(refused.value)
    assert "may be truncated, or not a numogpt checkpoint (UnpicklingError: " in message
    assert "weights_only" not in message and "\n" not in message


class Exploit:
    ran = False

    def __reduce__(self):
        return (setattr, (Exploit, "ran", True))


# --- training, resuming, stopping ---------------------------------------------------------------


def states_equal(a, b):
    """Two checkpoints hold the same run: weights, optimizer, step, random state."""
    assert a["step"] == b["step"]
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    # one optimizer's state dict, or MuonWithAdamW's: {"muon": ..., "adamw": ...}
    parts = [""] if "state" in a["optimizer"] else list(a["optimizer"])
    for part in parts:
        theirs, ours = (b["optimizer"][part], a["optimizer"][part]) if part else (b["optimizer"], a["optimizer"])
        assert ours["state"], part
        for i, state in ours["state"].items():
            for key, value in state.items():
                assert torch.equal(value, theirs["state"][i][key]), (part, i, key)
    assert torch.equal(a["runtime"]["rng_states"][0]["cpu"], b["runtime"]["rng_states"][0]["cpu"])


def test_train_lowers_the_loss_and_keeps_a_history(loaders, tmp_path):
    train_loader, val_loader = loaders
    model = tiny_gpt()
    seen = []
    history = train(model, train_loader, val_loader, quiet(max_iters=30, learning_rate=1e-2, eval_interval=10),
                    callbacks=[lambda step, m, h: seen.append((step, m.training, len(h["val"])))])
    assert [s for s, _ in history["train"]] == list(range(30)) and len(history["lr"]) == 30
    assert [s for s, _ in history["val"]] == [0, 10, 20, 30]
    assert history["val"][-1][1] < history["val"][0][1]
    assert history["lr"][2] == pytest.approx(1e-2) and history["lr"][-1] < history["lr"][5]
    assert seen == [(0, False, 1), (10, False, 2), (20, False, 3), (30, False, 4)]  # eval mode during callbacks
    assert model.training


def test_twenty_steps_then_resume_to_forty_equals_forty_straight(loaders, tmp_path):
    train_loader, val_loader = loaders
    schedule = dict(lr_decay_iters=40, learning_rate=1e-2)
    straight = tmp_path / "straight.pt"
    train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=40, eval_interval=15, **schedule), checkpoint=straight)
    resumed = tmp_path / "resumed.pt"
    train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=20, eval_interval=20, **schedule), checkpoint=resumed)
    # a fresh model with other weights and a sampling callback: resume must overwrite and ignore both
    sampler = lambda step, m, h: torch.multinomial(torch.ones(5), 3)  # noqa: E731
    history = train(tiny_gpt(seed=9), train_loader, val_loader, quiet(max_iters=40, eval_interval=20, **schedule),
                    [sampler], checkpoint=resumed, resume=True)
    states_equal(load_checkpoint(straight), load_checkpoint(resumed))
    assert [s for s, _ in history["train"]] == list(range(40))  # one history across the two runs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_callbacks_drawing_random_numbers_on_the_gpu_do_not_change_the_run(loaders, tmp_path):
    from numogpt.scaling import Runtime

    train_loader, val_loader = loaders
    config = quiet(max_iters=6, eval_interval=2, device="cuda")
    train(tiny_gpt(), train_loader, val_loader, config, checkpoint=tmp_path / "plain.pt", runtime=Runtime())
    gpu_sampler = lambda step, m, h: torch.rand(100, device="cuda")  # noqa: E731
    train(tiny_gpt(), train_loader, val_loader, config, [gpu_sampler], checkpoint=tmp_path / "sampled.pt",
          runtime=Runtime())
    plain, sampled = load_checkpoint(tmp_path / "plain.pt"), load_checkpoint(tmp_path / "sampled.pt")
    states_equal(plain, sampled)
    assert torch.equal(plain["runtime"]["rng_states"][0]["cuda"], sampled["runtime"]["rng_states"][0]["cuda"])


def test_ctrl_c_leaves_the_last_checkpoint_good_and_resume_finishes_the_run(loaders, tmp_path):
    train_loader, val_loader = loaders
    config = quiet(max_iters=12, eval_interval=5)
    straight = tmp_path / "straight.pt"
    train(tiny_gpt(), train_loader, val_loader, config, checkpoint=straight)
    model = tiny_gpt()
    calls = 0
    forward = model.forward

    def interrupted_at_step_7(idx, targets=None):
        nonlocal calls
        calls += targets is not None  # training steps only, not evaluation
        if calls == 8:
            raise KeyboardInterrupt
        return forward(idx, targets)

    model.forward = interrupted_at_step_7
    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(model, train_loader, val_loader, config, checkpoint=path)
    assert load_checkpoint(path)["step"] == 5
    train(tiny_gpt(), train_loader, val_loader, config, checkpoint=path, resume=True)
    states_equal(load_checkpoint(straight), load_checkpoint(path))


def test_resume_refuses_other_data_and_going_back(loaders, tmp_path):
    train_loader, val_loader = loaders
    path = tmp_path / "ck.pt"
    train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=2), checkpoint=path)
    other, _ = make_loaders(list(range(VOCAB)) * 30, block_size=8, batch_size=4)
    with pytest.raises(ValueError, match="batches per epoch"):
        train(tiny_gpt(), other, val_loader, quiet(max_iters=4), checkpoint=path, resume=True)
    train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=3), checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="at step 3, past max_iters=2"):
        train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=2), checkpoint=path, resume=True)


def test_resume_refuses_a_config_that_makes_another_run(loaders, tmp_path):
    train_loader, val_loader = loaders
    path = tmp_path / "ck.pt"
    train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=2, learning_rate=1e-3), checkpoint=path)
    with pytest.raises(ValueError, match=r"learning_rate 0.001 in the checkpoint, 0.002 now; seed 0 in the "
                                         r"checkpoint, 3 now\. Resume"):
        train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=4, learning_rate=2e-3, seed=3),
              checkpoint=path, resume=True)
    with pytest.raises(ValueError, match=r"betas \(0.9, 0.99\) in the checkpoint, \(0.9, 0.95\) now"):
        train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=4, learning_rate=1e-3, betas=(0.9, 0.95)),
              checkpoint=path, resume=True)
    # how long, how often, how many validation batches and where may change
    train(tiny_gpt(), train_loader, val_loader, quiet(max_iters=4, learning_rate=1e-3, eval_interval=3,
                                                      eval_iters=1), checkpoint=path, resume=True)
    assert load_checkpoint(path)["step"] == 4


class NanAt(nn.Module):
    """A model whose loss turns NaN at its `bad_step`-th training call."""

    def __init__(self, bad_step):
        super().__init__()
        self.w = nn.Parameter(torch.ones(VOCAB, VOCAB))
        self.calls, self.bad_step = 0, bad_step

    def forward(self, idx, targets=None):
        logits = self.w[idx]  # (B, T, V)
        if targets is None:
            return logits, None
        self.calls += 1
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss * float("nan") if self.calls == self.bad_step + 1 else loss


def test_a_nan_loss_stops_training_naming_the_step(loaders, tmp_path):
    train_loader, val_loader = loaders
    with pytest.raises(ValueError, match="step 3 .*the loss became nan"):
        train(NanAt(3), train_loader, val_loader, quiet(max_iters=10))


class Recorder(nn.Module):
    """A model that remembers the first column of every training batch it is given."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(VOCAB, VOCAB))
        self.seen = []

    def forward(self, idx, targets=None):
        logits = self.w[idx]  # (B, T, V)
        if targets is None:
            return logits, None
        self.seen.append(idx[:, 0].tolist())
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def test_train_walks_the_loaders_own_batches_epoch_after_epoch(loaders):
    train_loader, val_loader = loaders
    per_epoch = len(train_loader)
    expected = []
    for epoch in range(2):  # what a learner sees iterating the loader, epoch by epoch
        train_loader.batch_sampler.set_epoch(epoch)
        expected += [x[:, 0].tolist() for x, _ in train_loader]
    model = Recorder()
    train(model, train_loader, val_loader, quiet(max_iters=per_epoch + 3, eval_interval=100))
    assert model.seen == expected[:per_epoch + 3]
    assert all(len(batch) == train_loader.batch_sampler.batch_size for batch in model.seen)  # full batches only


@pytest.mark.parametrize("setting", [dict(dtype="bfloat16"), dict(device="auto"), dict(grad_accum=2),
                                     dict(compile=True)])
def test_lesson_05s_train_runs_in_one_process_in_float32_and_says_where_the_rest_is(loaders, setting):
    name, value = next(iter(setting.items()))
    with pytest.raises(ValueError, match=rf"{name}={value!r}: train runs in one process .* "
                                         rf"runtime=numogpt.scaling.Runtime\(\)"):
        train(tiny_gpt(), *loaders, quiet(max_iters=1, **setting))


def test_train_needs_a_loader_whose_order_it_can_resume(loaders):
    _, val_loader = loaders
    plain = DataLoader(TensorDataset(torch.zeros(8, 4, dtype=torch.long), torch.zeros(8, 4, dtype=torch.long)),
                       batch_size=2, shuffle=True)
    with pytest.raises(TypeError, match="make_loaders"):
        train(Recorder(), plain, val_loader, quiet(max_iters=1))


# --- the command: python -m numogpt train --------------------------------------------------------

TINY = ["--preset", "nano", "--block-size", "16", "--batch-size", "4"]


def run_command(capsys, *argv):
    """Run `python -m numogpt train ARGV` in this process: (exit code, stdout, stderr)."""
    from numogpt.__main__ import main

    try:
        main(["train", *argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_documents_every_option(capsys):
    code, out, _ = run_command(capsys, "--help")
    assert code == 0
    for option in ("--data", "--tokenizer", "--preset", "--block-size", "--batch-size", "--max-iters", "--lr",
                   "--lr-decay-iters", "--eval-interval", "--optimizer", "--out", "--seed", "--resume", "--device"):
        assert option in out, option
    from numogpt.model import PRESETS
    assert all(name in out for name in PRESETS)


def test_a_tiny_real_run_writes_the_checkpoint_and_the_loss_curve(tmp_path):
    import subprocess
    import sys

    from numogpt.runs import BPE_VOCAB_SIZE
    from numogpt.tokenizer import BPETokenizer

    done = subprocess.run([sys.executable, "-m", "numogpt", "train", *TINY, "--max-iters", "3",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "validation loss" in done.stdout and "perplexity" in done.stdout
    assert "3/3" in done.stderr  # the progress bar
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    model, tokenizer = load_model(tmp_path / "checkpoint.pt")
    assert isinstance(tokenizer, BPETokenizer) and tokenizer.vocab_size == BPE_VOCAB_SIZE  # the default: word pieces
    assert model.config.n_layer == 2 and model.config.block_size == 16
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3


def test_resume_through_the_command_equals_one_straight_run(tmp_path, capsys):
    # the commands as a user types them: the schedule does not depend on --max-iters
    assert run_command(capsys, *TINY, "--max-iters", "4", "--out", str(tmp_path / "a"))[0] == 0
    assert run_command(capsys, "--resume", "--max-iters", "8", "--out", str(tmp_path / "a"))[0] == 0
    assert run_command(capsys, *TINY, "--max-iters", "8", "--out", str(tmp_path / "b"))[0] == 0
    states_equal(load_checkpoint(tmp_path / "a" / "checkpoint.pt"), load_checkpoint(tmp_path / "b" / "checkpoint.pt"))


def test_a_run_shorter_than_the_schedule_gets_a_note(tmp_path, capsys):
    from numogpt.runs import TextRun

    code, out, _ = run_command(capsys, *TINY, "--max-iters", "2", "--out", str(tmp_path / "a"))
    assert code == 0
    assert (f"note: the learning rate decays over {TextRun.defaults['lr_decay_iters']} steps (--lr-decay-iters); this run stops at step 2, "
            "before it is low: pass --lr-decay-iters 2 for a shorter schedule") in out
    code, out, _ = run_command(capsys, *TINY, "--max-iters", "2", "--lr-decay-iters", "2", "--out", str(tmp_path / "b"))
    assert code == 0 and "note:" not in out
    code, out, _ = run_command(capsys, "--resume", "--max-iters", "3", "--out", str(tmp_path / "a"))
    assert code == 0 and "note:" not in out  # said once, when the run began


@pytest.mark.parametrize("argv, words", [
    (["--tokenizer", "letters"], "invalid choice: 'letters'"),
    (["--max-iters", "ten"], "invalid int value: 'ten'"),
    (["--max-iters", "0"], "--max-iters must be 1 or more"),
    (["--data", "no/such/file.txt"], "no/such/file.txt' is neither a file nor a known corpus"),
    (["--resume"], "no checkpoint at"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--device", "banana"], "unknown device 'banana'"),
    (["--device", "cuda:7"], "not available"),
])
def test_bad_arguments_get_clear_errors(argv, words, tmp_path, capsys):
    code, _, err = run_command(capsys, *argv, "--out", str(tmp_path))
    assert code == 2 and words in err


def test_an_out_folder_that_cannot_be_written_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    code, out, err = run_command(capsys, *TINY, "--max-iters", "1", "--out", str(blocker / "run"))
    assert code == 2 and f"cannot write to {blocker / 'run'}" in err and "choose another folder with --out" in err
    assert "characters ->" not in out  # no data was read, no model built


def test_a_binary_file_given_as_data_is_refused_as_not_text(tmp_path, capsys):
    """A checkpoint given as --data by mistake: refused by name, not trained on as a few ids."""
    assert run_command(capsys, *TINY, "--max-iters", "1", "--out", str(tmp_path / "run"))[0] == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    code, out, err = run_command(capsys, *TINY, "--data", str(checkpoint), "--out", str(tmp_path / "other"))
    assert code == 2 and f"{checkpoint} is not text" in err
    assert not (tmp_path / "other" / "checkpoint.pt").exists()


def test_resume_keeps_the_checkpoint_settings(tmp_path, capsys):
    assert run_command(capsys, *TINY, "--max-iters", "1", "--out", str(tmp_path))[0] == 0
    code, _, err = run_command(capsys, "--resume", "--preset", "mini", "--lr", "0.1", "--out", str(tmp_path))
    assert code == 2
    assert "--lr 0.002 in the checkpoint, 0.1 now; --preset 'nano' in the checkpoint, 'mini' now" in err
    assert "only --max-iters, --eval-interval, --device, --compile, --grad-accum may change" in err
    # the same command again, with --resume and a longer run: every repeated value is the checkpoint's
    code, _, err = run_command(capsys, "--resume", *TINY, "--max-iters", "2", "--data", "train-nn",
                               "--lr", "0.002", "--out", str(tmp_path))
    assert code == 0, err
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2


def test_the_command_trains_with_muon_and_resumes_with_it(tmp_path, capsys):
    assert run_command(capsys, *TINY, "--optimizer", "muon", "--max-iters", "2", "--out", str(tmp_path))[0] == 0
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["train_config"]["optimizer"] == "muon" and set(saved["optimizer"]) == {"muon", "adamw"}
    code, _, err = run_command(capsys, "--resume", "--optimizer", "adamw", "--out", str(tmp_path))
    assert code == 2 and "--optimizer 'muon' in the checkpoint, 'adamw' now" in err
    assert run_command(capsys, "--resume", "--max-iters", "3", "--out", str(tmp_path))[0] == 0
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3


def test_resume_needs_a_checkpoint_written_by_train(loaders, tmp_path):
    path = save_checkpoint(tmp_path / "weights_only.pt", tiny_gpt())
    with pytest.raises(ValueError, match="cannot be resumed: it has no optimizer, history"):
        train(tiny_gpt(), *loaders, quiet(max_iters=2), checkpoint=path, resume=True)


def test_vocab_size_sizes_the_bpe_and_the_loss_is_also_given_per_character(tmp_path, capsys):
    code, out, err = run_command(capsys, *TINY, "--max-iters", "2", "--tokenizer", "bpe", "--vocab-size", "300",
                                 "--out", str(tmp_path))
    assert code == 0, err
    model, tokenizer = load_model(tmp_path / "checkpoint.pt")
    assert tokenizer.vocab_size == model.config.vocab_size == 300
    per_token, per_char = map(float, re.search(r"validation loss ([\d.]+) per token = ([\d.]+) per character", out).groups())
    assert 1 < per_token / per_char < 4  # a BPE token of this text holds one to a few characters
    code, _, err = run_command(capsys, *TINY, "--tokenizer", "char", "--vocab-size", "300", "--out", str(tmp_path / "c"))
    assert code == 2 and "--vocab-size sizes the BPE trained on the text: it does not apply to --tokenizer char" in err


@pytest.mark.parametrize("kind, cls", [("word", "WordTokenizer"), ("bpe", "BPETokenizer"), ("gpt2", "GPT2Tokenizer")])
def test_every_tokenizer_trains_on_your_own_text_and_comes_back_from_the_checkpoint(kind, cls, tmp_path, capsys):
    from numogpt.data import load_corpus
    from numogpt.tokenizer import WORD_PATTERN

    corpus = tmp_path / "my text.txt"
    corpus.write_text(load_corpus("train-nn")[:20000], encoding="utf-8")
    code, out, err = run_command(capsys, *TINY, "--max-iters", "2", "--tokenizer", kind, "--data", str(corpus),
                                 "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert f"{kind} tokens" in out
    model, tokenizer = load_model(tmp_path / "out" / "checkpoint.pt")
    assert type(tokenizer).__name__ == cls and model.config.vocab_size == tokenizer.vocab_size
    assert tokenizer.decode(tokenizer.encode("the gradient")) == "the gradient"
    text = corpus.read_text(encoding="utf-8")
    distinct_words = len(set(regex.findall(WORD_PATTERN, text)))
    from numogpt.runs import BPE_VOCAB_SIZE
    from numogpt.tokenizer import BPETokenizer
    # BPE stops short of its vocabulary when every chunk of a short text has become one token
    bpe_size = BPETokenizer().train(text, BPE_VOCAB_SIZE).vocab_size if kind == "bpe" else None
    assert tokenizer.vocab_size == {"word": distinct_words + 1, "bpe": bpe_size, "gpt2": 50257}[kind]  # + 1: <unk>


def test_the_pictures_are_closed_figures():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from numogpt.viz import plot_direction_strengths, plot_loss_curves, plot_lr_schedule

    config = TrainConfig(max_iters=50, warmup_iters=5)
    history = {"train": [(s, 3.0 - s / 50) for s in range(50)], "val": [(0, 3.1), (50, 2.2)], "lr": []}
    race = {name: {"val": [(s * k, 4.0 - s / 100) for s in (0, 100, 200)]} for name, k in (("reference", 1.0), ("ours", 0.5))}
    figures = (plot_lr_schedule([lr_at(s, config) for s in range(50)], 5), plot_loss_curves(history),
               plot_loss_curves(race, target=2.5, xlabel="seconds"),
               plot_direction_strengths({"gradient": torch.tensor([4.0, 2.0, 1.0]), "orthogonal": torch.ones(3)}),
               plot_loss_curves({"a": history, "b": history}, which=("val",), baselines={"unigram": 3.5}))
    for fig in figures:
        assert isinstance(fig, Figure) and not plt.fignum_exists(fig.number)
    one_run = figures[1].axes[0].get_lines()  # each batch's loss, its running mean, the validation dots
    assert [len(line.get_xdata()) for line in one_run] == [50, 50, 2]
    assert [t.get_text() for t in figures[1].axes[0].get_legend().get_texts()] == ["train (running mean)", "validation"]
    lines = figures[2].axes[0].get_lines()
    assert [list(line.get_xdata()) for line in lines[:2]] == [[0.0, 100.0, 200.0], [0.0, 50.0, 100.0]]
    assert list(lines[2].get_ydata()) == [2.5, 2.5]  # the target
    shares = [list(line.get_ydata()) for line in figures[3].axes[0].get_lines()]
    assert shares == [[1.0, 0.5, 0.25], [1.0, 1.0, 1.0]]  # shares of each update's strongest direction
    legend = [t.get_text() for t in figures[4].axes[0].get_legend().get_texts()]
    assert legend == ["a", "b", "unigram: 3.50"]  # validation only, one entry per run, then the baseline


def test_the_shipped_course_model_is_the_default_run_and_loads_without_running_code():
    """Lesson 06 samples from COURSE_MODEL: the checkpoint of `python -m numogpt train` with its defaults."""
    from numogpt.checkpoint import COURSE_MODEL
    from numogpt.runs import TextRun

    assert COURSE_MODEL.stat().st_size < 5_000_000  # a few MB, fit to ship
    saved = load_checkpoint(COURSE_MODEL)  # weights_only=True
    where = ("block_size", "eval_interval", "device", "dtype", "compile", "grad_accum")  # the machine's, or derived
    recipe = {k: v for k, v in TextRun.defaults.items() if k not in where}
    assert {k: saved["run"][k] for k in recipe} == recipe
    assert saved["step"] == TextRun.defaults["max_iters"]
    model, tokenizer = load_model(COURSE_MODEL)
    assert type(tokenizer).__name__ == "BPETokenizer" and model.config.vocab_size == tokenizer.vocab_size
