"""The course as a learner meets it: JupyterLab in a real browser (headless Chromium), each lesson run whole.

For every lesson: all cells run in a fresh kernel, each code cell gets its execution count, no
cell shows an error or a traceback, every picture renders, and the widgets answer (typing into
lesson 01's token explorer changes its tokens; lesson 06's sampler button writes text).

JupyterLab serves a temporary copy of the notebooks (its autosave never touches the repo), with
this checkout's numogpt on PYTHONPATH. Playwright drives Debian's chromium; it never downloads a
browser. Without one the test is skipped, except in CI (CI=true), where it must run.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import numogpt
from tests.test_notebooks import NOTEBOOKS

CHROMIUM = Path("/usr/bin/chromium")
HOW_TO_GET_ONE = "install Debian's chromium (apt-get install chromium) and the test extra (pip install -e '.[test]')"
# headless, and nothing that reaches for the network: this machine has none beyond localhost
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAB_SETTINGS = {
    # every cell in the page, so that every picture is drawn (not only those scrolled into view)
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # no news and no update check: the server stays offline
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}
RUN_TIMEOUT_S = 900  # one lesson, all cells: a minute or so each on two idle cores, lesson 05 three; six on busy ones


def _need(what):
    """Skip without a browser, but fail in CI, which must run this test."""
    message = f"{what}: {HOW_TO_GET_ONE}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The URL of a JupyterLab serving a copy of the notebooks, and its token."""
    if not CHROMIUM.is_file():
        _need(f"no browser at {CHROMIUM}")
    tmp = tmp_path_factory.mktemp("lab")
    for path in NOTEBOOKS:
        shutil.copy(path, tmp / path.name)
    settings = tmp / ".settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values), encoding="utf-8")
    with socket.socket() as s:  # a free port on localhost
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = os.urandom(16).hex()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(numogpt.ROOT), os.environ.get("PYTHONPATH")])),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / ".workspaces"),
           "JUPYTER_CONFIG_DIR": str(tmp / ".config"), "JUPYTER_RUNTIME_DIR": str(tmp / ".runtime")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp}",
         "--LabApp.expose_app_in_browser=True"],  # window.jupyterapp: the notebook's model, to read what ran
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, token, server, tmp / "server.log")
        yield url, token
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_server(url, token, server, log):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab did not start:\n{log.read_text()}")
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within 60 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("no playwright")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# what the page's notebook holds: the count of each non-empty code cell, errors, images, the kernel
NOTEBOOK_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code' && c.model.sharedModel.getSource().trim());
    const errors = [], images = [];
    for (const cell of cells) {
        for (let i = 0; i < cell.model.outputs.length; i++) {
            const output = cell.model.outputs.get(i).toJSON();
            const text = [].concat(output.text || []).join('');
            if (output.output_type === 'error' || text.includes('Traceback')) {
                errors.push(cell.model.sharedModel.getSource().slice(0, 80) + ' -> ' + (output.ename || text.slice(0, 200)));
            }
            for (const mime of ['image/png', 'image/svg+xml', 'image/jpeg']) {
                if (output.data && output.data[mime]) images.push(mime);
            }
        }
    }
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return {counts: cells.map(c => c.model.executionCount), errors, images, kernel: kernel ? kernel.status : null};
}"""
NOTEBOOK_READY = """() => {
    const app = window.jupyterapp, panel = app && app.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return kernel && kernel.status === 'idle' && panel.content.widgets.length > 0;
}"""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_runs_in_the_browser(lab, browser, path):
    url, token = lab
    start = time.monotonic()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{url}/lab/tree/{path.name}?reset&token={token}")
        page.wait_for_function(NOTEBOOK_READY, timeout=60_000)
        # as a learner would: clear the stored outputs, then run every cell
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        assert set(page.evaluate(NOTEBOOK_STATE)["counts"]) == {None}
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        state = _wait_until_all_ran(page)
        assert not state["errors"], f"{path.name}: errors in the browser: {state['errors']}"
        assert state["counts"] == list(range(1, len(state["counts"]) + 1)), f"{path.name}: not every cell ran"

        assert state["images"], f"{path.name}: no picture at all"
        drawn = page.eval_on_selector_all(
            ".jp-OutputArea-output img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
        assert len(drawn) == len(state["images"]) and all(drawn), f"{path.name}: pictures not drawn: {drawn}"

        checked = WIDGET_CHECKS.get(path.name, lambda page: "")(page)
        seconds = time.monotonic() - start
        print(f"\n{path.name}: {seconds:.0f} s in the browser; {len(state['counts'])} code cells ran, "
              f"{len(drawn)} pictures drawn{checked}")
    finally:
        page.close()
        _shut_down_kernels(url, token)


def _wait_until_all_ran(page):
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = page.evaluate(NOTEBOOK_STATE)
        if state["errors"] or (None not in state["counts"] and state["kernel"] == "idle"):
            return state
        time.sleep(1)
    pytest.fail(f"not every cell ran within {RUN_TIMEOUT_S} s: execution counts {state['counts']}")


def _token_explorer_answers(page):
    """Lesson 01: typing into the token explorer recolours the text by token."""
    explorer = page.locator(".widget-vbox", has=page.locator(".widget-textarea")).first
    shown = explorer.locator(".widget-html-content").first
    before = shown.inner_text()
    explorer.locator("textarea").fill("Attention is all you need")
    page.wait_for_function("([el, before]) => el.innerText !== before && el.innerText.includes('need')",
                           arg=[shown.element_handle(), before], timeout=30_000)
    return "; the token explorer answered typing"


def _sampler_writes(page):
    """Lesson 06: the sampler's button streams a continuation of the prompt into the page."""
    sampler = page.locator(".widget-vbox", has=page.locator(".widget-button")).first
    shown = sampler.locator(".widget-html-content").last
    prompt = sampler.locator("textarea").input_value()
    sampler.locator(".widget-button").click()
    page.wait_for_function("([el, prompt]) => el.innerText.startsWith(prompt) && el.innerText.length > prompt.length + 20",
                           arg=[shown.element_handle(), prompt], timeout=60_000)
    sampler.locator(".widget-button:not([disabled])").wait_for(timeout=60_000)  # the whole text is written
    return f"; the sampler wrote {len(shown.inner_text()) - len(prompt)} characters after {prompt!r}"


WIDGET_CHECKS = {"01_tokenizer.ipynb": _token_explorer_answers, "06_sampling.ipynb": _sampler_writes}


def _shut_down_kernels(url, token):
    """Each lesson's kernel ends with its test, so six models never sit in memory at once."""
    with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=10) as response:
        sessions = json.load(response)
    for session in sessions:
        request = urllib.request.Request(f"{url}/api/sessions/{session['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()
