"""Helpers for tests/test_browser.py: JupyterLab on loopback, driven in headless Chromium.

The pieces, each a context manager that cleans up after itself:
    notebook_copy(...)  a copy of a notebook (outputs cleared) in a temporary root folder
    jupyter_lab(...)    a JupyterLab server on 127.0.0.1 with a fresh config, no token, no browser
    chromium_page(...)  headless Chromium (Debian's `chromium`) through Playwright
and the steps of a check: open_notebook, run_all_cells and run_cells, add_code_cell, notebook_errors,
widget_image, wait_image_change.

The steps wait for states read from JupyterLab itself: the server exposes its application to the page
(window.jupyterapp), and the helpers of HELPERS_JS read the notebook panel, its kernel and its cells'
models from it and execute JupyterLab's commands through its command registry. Every wait has a
deadline sized from what it waits for; a running cell gets DEADLINE_BASE_S plus DEADLINE_FACTOR times
the time it took in the committed notebook's stored run (nbconvert keeps it in the cell's metadata),
counted from when the cell before it finished.

Two kinds of failure are kept apart. AssertionError: the notebook (or its widget) is wrong, as the
page shows it. HarnessError: the test could not drive JupyterLab (its page never loaded, a command
never reached the notebook); that says nothing about the notebook.

Nothing here touches the committed notebooks, the user's Jupyter config or the network.
"""
from __future__ import annotations

import base64
import contextlib
import ctypes
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Debian's package; Playwright's own browser download is not used (and not reachable in CI).
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
# --no-sandbox: Chromium refuses to start as root without it (containers, CI); the rest keep a
# browser on a closed network from calling home (and from waiting on it).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]

# An error shown in an output: a traceback, or a line such as "ValueError: ..." (the editor
# widget prints its callback errors that way). Warnings ("UserWarning: ...") do not match.
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\s*[\w.]*(Error|Exception): ", re.MULTILINE)
STDERR_MIME = "application/vnd.jupyter.stderr"

# Deadlines. A running cell may take DEADLINE_BASE_S plus DEADLINE_FACTOR times what it took in the
# committed notebook's stored run, from when the cell before it finished: a loaded 2-core machine runs
# it several times slower than the run that was stored (over ten times, beside two CPU hogs), and the
# browser draws every output. A cell without a stored time (one that a test adds) counts UNTIMED_CELL_S.
DEADLINE_BASE_S, DEADLINE_FACTOR, UNTIMED_CELL_S = 60.0, 20.0, 5.0
# JupyterLab's page loading its plugins and restoring its layout, and the notebook's kernel starting
# (a Python importing ipykernel): seconds on an idle machine, a minute or two on a loaded one.
LAB_LOAD_S, KERNEL_START_S = 180.0, 180.0
# A command that runs cells marks its first cell as running ([*]) in the same JavaScript task that
# executes it; START_S allows for a browser starved of CPU. A command that provably never started is
# issued again, RUN_TRIES times in all, then it is a HarnessError.
START_S, RUN_TRIES = 30.0, 3
# A widget's view is built in the browser from the model the kernel sent: a frontend step, seconds.
WIDGET_RENDER_S = 60.0
POLL_S = 0.5  # how often a wait reads the page


class HarnessError(RuntimeError):
    """The test could not drive JupyterLab: its page never loaded, the notebook never opened with an
    idle kernel, or a command never reached the notebook. A failure of the harness, not of the
    notebook; deliberately not an AssertionError, so that no check of the notebook is decided by it."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def chromium_path() -> tuple[str | None, str]:
    """(the Chromium executable or None, how it was looked for): $VAR_TUTORIAL_CHROMIUM when
    set, else `chromium` (Debian's package) or `chromium-browser` on the PATH."""
    wanted = os.environ.get("VAR_TUTORIAL_CHROMIUM")
    if wanted:
        found = shutil.which(wanted)
        return found, f"VAR_TUTORIAL_CHROMIUM={wanted!r} is not an executable"
    for name in CHROMIUM_CANDIDATES:
        if shutil.which(name):
            return shutil.which(name), ""
    return None, ("no `chromium` on the PATH (Debian/Ubuntu: `sudo apt-get install -y chromium`, "
                  "or `make chromium`; or set VAR_TUTORIAL_CHROMIUM=/path/to/chromium)")


def require_browser_stack() -> str:
    """The Chromium executable, or skip the test saying what is missing. In CI (CI=true) a
    missing piece fails the test instead: CI must never pass without running the browser tests."""
    chromium, why = chromium_path()
    missing = [] if chromium else [why]
    for module in ("playwright", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the Python package {module} is not installed (`pip install -e '.[test]'`)")
    if missing:
        reason = "the browser tests cannot run: " + "; ".join(missing)
        if in_ci():
            pytest.fail(f"{reason}. CI=true: in CI they must run, not be skipped", pytrace=False)
        pytest.skip(reason)
    return chromium


# -- the notebook copy and its stored timings -----------------------------------------------
def stored_seconds(cell: dict) -> float | None:
    """The seconds a code cell took in the notebook's stored run, from the timestamps nbconvert writes
    into its metadata (`execution`: iopub.execute_input, when the kernel began it, to
    shell.execute_reply, when the kernel answered). None when it has none (a cell a test adds)."""
    times = cell.get("metadata", {}).get("execution", {})
    try:
        begun = datetime.fromisoformat(times["iopub.execute_input"].replace("Z", "+00:00"))
        answered = datetime.fromisoformat(times["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return max((answered - begun).total_seconds(), 0.0)


def deadline_for(seconds: list[float | None]) -> float:
    """How long cells whose stored times are `seconds` may take to run in the browser:
    DEADLINE_BASE_S + DEADLINE_FACTOR x their total, a cell without a stored time counted UNTIMED_CELL_S."""
    total = sum(UNTIMED_CELL_S if s is None else s for s in seconds)
    return DEADLINE_BASE_S + DEADLINE_FACTOR * total


@dataclasses.dataclass
class NotebookCopy:
    root: Path                         # the server's root folder
    path: str                          # the notebook, relative to root: "notebooks/<name>"
    sources: list[str]                 # its code cells' sources, in order
    stored: list[float | None]         # the seconds each took in the committed notebook's stored run

    @property
    def code_cells(self) -> int:
        return len(self.sources)

    def cell_deadline(self, index: int | None) -> float:
        """The deadline (deadline_for) of code cell `index` (0-based; one past the copy's cells: a cell
        a test added), from when the cell before it finished; None: the end of a run, once no cell
        runs (the command settling, the kernel going idle), DEADLINE_BASE_S."""
        if index is None:
            return DEADLINE_BASE_S
        return deadline_for([self.stored[index] if 0 <= index < len(self.stored) else None])

    def deadline(self, snippet: str) -> float:
        """The deadline of the code cell whose source holds `snippet`, for a widget's callback, which
        does about what its cell did: draw the first picture."""
        found = [t for src, t in zip(self.sources, self.stored) if snippet in src]
        assert len(found) == 1, f"expected one code cell containing {snippet!r} in {self.path}, found {len(found)}"
        return deadline_for(found)


@contextlib.contextmanager
def notebook_copy(name: str, nb=None):
    """A temporary root folder holding notebooks/<name>: a copy of the committed notebook (or of `nb`,
    an nbformat notebook a test built) with its outputs and saved widget state cleared, so that every
    picture on the page is drawn by this run; the cells' metadata, their stored timings among it, is
    kept. Yields a NotebookCopy; the committed notebook is only read. The copy finds the package, data/
    and results/ of this checkout through VAR_TUTORIAL_ROOT (see kernel_env), as its first cell reads it."""
    import nbformat

    root = Path(tempfile.mkdtemp(prefix="var-browser-root-"))
    try:
        if nb is None:
            nb = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        for cell in code:
            cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        (root / "notebooks").mkdir()
        nbformat.write(nb, root / "notebooks" / name)
        yield NotebookCopy(root, f"notebooks/{name}", [c.source for c in code], [stored_seconds(c) for c in code])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def kernel_env() -> dict:
    """What the server (and so its kernels) gets on top of the test's environment: the
    notebooks' first cell takes the repository root from VAR_TUTORIAL_ROOT."""
    return {"VAR_TUTORIAL_ROOT": str(REPO_ROOT)}


# -- the JupyterLab server ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process below pid (children, grand-children, ...), read from `ps` (Linux and macOS)."""
    try:
        table = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    children: dict[int, list[int]] = {}
    for line in table.split("\n"):
        if line.strip():
            p, pp = map(int, line.split())
            children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie (exited, not reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    return True


class JupyterLab:
    """A running server: url, root, log_path, and pids() (the server and every process below it)."""

    def __init__(self, proc: subprocess.Popen, url: str, root: Path, log_path: Path):
        self.proc, self.url, self.root, self.log_path = proc, url, root, log_path

    def pids(self) -> list[int]:
        return [self.proc.pid] + _descendants(self.proc.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# The user settings of the fresh JupyterLab: every cell attached to the page (so that every
# output can be read), and no news or update checks (the network is closed).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


@contextlib.contextmanager
def jupyter_lab(root: Path, log_path: Path, env: dict | None = None, timeout: float = 180):
    """Start JupyterLab serving `root` on 127.0.0.1 (a free port) with a fresh configuration
    (temporary JUPYTER_CONFIG_DIR, JUPYTER_DATA_DIR, runtime, settings, workspaces and IPython
    folders), no token, no password, no browser; its output goes to log_path. Stopping it
    shuts its kernels down and kills whatever is left of the server's process tree."""
    home = Path(tempfile.mkdtemp(prefix="var-browser-jupyter-"))
    for rel, settings in LAB_SETTINGS.items():
        path = home / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    server_env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
                      JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
                      JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), IPYTHONDIR=str(home / "ipython"),
                      JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1", **(env or {}))
    port = free_port()
    # IdentityProvider.token is jupyter_server 2's name for the older ServerApp.token
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.open_browser=False",
           f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
           "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
           # window.jupyterapp: the application, whose state and commands the test reads and executes
           "--LabApp.expose_app_in_browser=True"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    # its own process group and session: the test's Ctrl-C does not reach it, and it is stopped here
    proc = subprocess.Popen(cmd, env=server_env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    lab = JupyterLab(proc, f"http://127.0.0.1:{port}", root, log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {proc.returncode} before it answered; "
                                   f"its log ({log_path}):\n{lab.log()[-3000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{lab.url}/api/status", timeout=5) as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer on {lab.url} within {timeout:.0f} s; "
                                   f"its log ({log_path}):\n{lab.log()[-3000:]}")
            time.sleep(0.5)
        yield lab
    finally:
        stop_jupyter_lab(lab)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def stop_jupyter_lab(lab: JupyterLab, grace: float = 20) -> None:
    """SIGTERM to the server (it shuts its kernels down), then SIGKILL to anything of its
    process tree still alive: the server's group and the kernels (each in its own session)."""
    pids = lab.pids()
    if lab.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(lab.proc.pid, signal.SIGTERM)
        try:
            lab.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    pids += [p for p in _descendants(lab.proc.pid) if p not in pids]
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    if lab.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(lab.proc.pid, signal.SIGKILL)
        lab.proc.wait(10)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)


@contextlib.contextmanager
def cleanup_on_signals():
    """Turn SIGTERM and SIGHUP (a CI timeout, a closed terminal) into KeyboardInterrupt while the
    block runs, so that the servers and browsers it started are stopped by their finally blocks
    instead of being left behind."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}: stopping the browser test")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def child_processes() -> dict[int, str]:
    """The processes below this one (pid -> command line), `ps` itself left out."""
    pids = set(_descendants(os.getpid()))
    try:
        table = subprocess.run(["ps", "-A", "-o", "pid=,args="], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    found = {}
    for line in table.split("\n"):
        pid, _, args = line.strip().partition(" ")
        if pid.isdigit() and int(pid) in pids and not args.startswith("ps ") and alive(int(pid)):
            found[int(pid)] = args
    return found


# -- the browser ----------------------------------------------------------------------------
@contextlib.contextmanager
def adopting_orphans():
    """While the block runs, this process adopts its orphaned descendants (Linux: prctl
    PR_SET_CHILD_SUBREAPER), and after it, it stops and reaps the ones it adopted. Chromium's
    crash handlers detach from the browser; adopted, they cannot outlive the test unseen nor stay
    as zombies of an init that does not reap (containers)."""
    before = set(_direct_children())
    prctl = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl
            if prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                prctl = None
    try:
        yield
    finally:
        if prctl is not None:
            for pid in set(_direct_children()) - before:
                with contextlib.suppress(ProcessLookupError):
                    if alive(pid):
                        os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def _direct_children() -> list[int]:
    try:
        table = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    me = os.getpid()
    pairs = [tuple(map(int, line.split())) for line in table.split("\n") if line.strip()]
    return [pid for pid, ppid in pairs if ppid == me]


@contextlib.contextmanager
def chromium_page(chromium: str, width: int = 1400, height: int = 1000):
    """A Playwright page in headless Chromium. Yields (page, console): console collects the
    browser's console messages and page errors as text lines. Closes the browser, stops
    Playwright's driver and reaps Chromium's detached helpers after."""
    from playwright.sync_api import sync_playwright

    console: list[str] = []
    with adopting_orphans(), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
                                    chromium_sandbox=False, timeout=120_000)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(120_000)
            page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
            page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
            yield page, console
        finally:
            browser.close()


# -- JupyterLab's state and commands, read and executed in the page ---------------------------
# Installed in the page before JupyterLab's own scripts (page.add_init_script), as window.varTutorial;
# it reaches JupyterLab through window.jupyterapp once that is there. state(path) is everything a wait
# looks at, in one read: the app, the notebook panel of `path` and its kernel, its code cells (their
# models: execution count, running or not; and their prompts on the page), the commands it issued.
HELPERS_JS = r"""
window.varTutorial = {
  started: false, restored: false,  // the app's started and restored promises resolved
  executeInputs: 0,  // execute_input messages on the notebook's kernel: requests the kernel began
  listening: {},     // the notebook panels whose kernel messages are counted
  runs: [],          // the commands issued: {command, enabled, settled, result, error}

  app() {
    const app = window.jupyterapp;
    if (app && !this.watching) {
      this.watching = true;
      app.started.then(() => { this.started = true; });
      app.restored.then(() => { this.restored = true; });
    }
    return app || null;
  },

  panel(path) {
    const app = this.app();
    if (!app) return null;
    for (const w of app.shell.widgets('main'))
      if (w.context && w.context.path === path && w.sessionContext && w.content) return w;
    return null;
  },

  state(path) {
    const app = this.app(), panel = this.panel(path);
    const dialog = Array.from(document.querySelectorAll('.jp-Dialog')).find(d => d.offsetWidth > 0);
    const s = {app: !!app, started: this.started, restored: this.restored, panel: !!panel,
               dialog: dialog ? dialog.innerText.trim().slice(0, 500) : null,
               run: this.runs.length ? Object.assign({}, this.runs[this.runs.length - 1]) : null};
    if (!panel) return s;
    const kernel = panel.sessionContext.session ? panel.sessionContext.session.kernel : null;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    const counts = cells.map(c => c.model.executionCount).filter(n => typeof n === 'number');
    const prompts = Array.from(panel.node.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
        .map(e => e.textContent.trim());
    const indicator = panel.node.querySelector('.jp-Notebook-ExecutionIndicator');
    return Object.assign(s, {
      current: app.shell.currentWidget === panel,
      ready: panel.context.isReady && panel.sessionContext.isReady,
      kernel: kernel ? kernel.status : null, connection: kernel ? kernel.connectionStatus : null,
      cells: cells.length, done: counts.length, last_count: counts.length ? Math.max(...counts) : null,
      running: cells.filter(c => c.model.executionState === 'running').length,
      first_running: cells.some(c => c.model.executionState === 'running')
          ? cells.findIndex(c => c.model.executionState === 'running') : null,
      prompts: prompts.length, prompts_done: prompts.filter(t => /^\[\d+\]:$/.test(t)).length,
      prompts_busy: prompts.filter(t => t === '[*]:').length,
      executions: this.executeInputs, indicator: indicator ? indicator.dataset.status : null,
      run_all_enabled: app.commands.isEnabled('notebook:run-all-cells'),
    });
  },

  // Make the notebook the current widget (the notebook commands act on it) and count its kernel's
  // execute_input messages from now on.
  activate(path) {
    const app = this.app(), panel = this.panel(path);
    if (!panel) return false;
    app.shell.activateById(panel.id);
    if (!this.listening[path]) {
      this.listening[path] = true;
      panel.sessionContext.iopubMessage.connect((_, msg) => {
        if (msg.header.msg_type === 'execute_input') this.executeInputs += 1;
      });
    }
    return app.shell.currentWidget === panel;
  },

  // Execute a JupyterLab command on the notebook, without waiting for it: its promise settles when
  // the cells it runs are done, and is recorded in runs. cell: the index of the cell to make active
  // first (negative: from the end), or null.
  issue(path, command, cell) {
    const run = {command, enabled: false, settled: false, result: null, error: null};
    this.runs.push(run);
    const app = this.app(), panel = this.panel(path);
    if (!panel) { run.settled = true; run.error = 'no notebook panel for ' + path; return; }
    this.activate(path);
    if (cell !== null) {
      panel.content.deselectAll();
      panel.content.activeCellIndex = cell < 0 ? panel.content.widgets.length + cell : cell;
    }
    run.enabled = app.commands.isEnabled(command);
    if (!run.enabled) { run.settled = true; run.error = command + ' is not enabled'; return; }
    app.commands.execute(command).then(
        r => { run.settled = true; run.result = r === undefined ? null : r; },
        e => { run.settled = true; run.error = String(e); });
  },

  addCodeCell(path, source) {
    const model = this.panel(path).content.model;
    model.sharedModel.insertCell(model.cells.length, {cell_type: 'code', source: source});
  },
};
"""


class NotebookPage:
    """The notebook `path` open in a Playwright page: its state (HELPERS_JS's state, a dict), the
    commands to issue on it, and where a wait that expires puts its screenshot (`shots`, a folder)."""

    def __init__(self, page, path: str, shots: Path | None = None):
        self.page, self.path, self.shots = page, path, shots

    def state(self) -> dict:
        return self.page.evaluate("p => window.varTutorial.state(p)", self.path)

    def issue(self, command: str, cell: int | None = None) -> None:
        self.page.evaluate("([p, c, i]) => window.varTutorial.issue(p, c, i)", [self.path, command, cell])

    def activate(self) -> bool:
        return self.page.evaluate("p => window.varTutorial.activate(p)", self.path)

    def wait(self, seconds: float) -> None:
        self.page.wait_for_timeout(seconds * 1000)

    def screenshot(self, name: str) -> str:
        """A screenshot of the page in shots/<name>.png; returns ", screenshot: <path>" for a message."""
        if self.shots is None:
            return ""
        path = self.shots / f"{name}.png"
        try:
            self.page.screenshot(path=path)
        except Exception as e:  # a page that cannot be captured must not hide the failure being reported
            return f", no screenshot ({type(e).__name__}: {e})"
        return f", screenshot: {path}"


def describe(state: dict) -> str:
    """The parts of a state that tell where a run stands, for a message."""
    keys = ("cells", "done", "running", "first_running", "prompts_done", "prompts_busy", "kernel", "connection",
            "executions", "current", "run_all_enabled", "dialog", "run", "app", "started", "restored", "panel")
    return "{" + ", ".join(f"{k}: {state[k]!r}" for k in keys if k in state) + "}"


def _wait_for(nb: NotebookPage, ready, timeout: float, failure: str, each=None) -> dict:
    """Poll nb.state() until ready(state); HarnessError naming `failure` and the last state (and a
    screenshot) after `timeout` seconds. each(state), when given, runs on every poll first."""
    t0 = time.monotonic()
    while True:
        state = nb.state()
        if each is not None:
            each(state)
        if ready(state):
            return state
        if time.monotonic() - t0 > timeout:
            raise HarnessError(f"{failure} within {timeout:.0f} s: {describe(state)}"
                               f"{nb.screenshot('harness_timeout')}")
        nb.wait(POLL_S)


def open_notebook(page, lab: JupyterLab, nb: NotebookCopy, shots: Path | None = None) -> NotebookPage:
    """Open the copy in JupyterLab and wait, step by step, for what running it needs: the application
    started and its layout restored; the notebook's panel with all its code cells, in the model and on
    the page; its kernel connected and idle; the notebook the current widget, so that Run All Cells is
    enabled. Then open the Log Console beside it (where JupyterLab shows the output of widget callbacks
    that no cell owns, their tracebacks included). HarnessError when a step does not happen in time."""
    page.add_init_script(HELPERS_JS)
    url = f"{lab.url}/lab/tree/{nb.path}?reset"
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=LAB_LOAD_S * 1000)
    except Exception as e:  # Playwright's Error: the server never sent the page
        raise HarnessError(f"JupyterLab's page {url} did not load within {LAB_LOAD_S:.0f} s: {e}") from e
    view = NotebookPage(page, nb.path, shots)
    _wait_for(view, lambda s: s["app"] and s["started"] and s["restored"], LAB_LOAD_S,
              f"JupyterLab's page on {lab.url} did not start and restore its layout")

    def settle(state):
        accept_kernel_dialog(page)
        if state["panel"] and not state.get("current"):
            view.activate()

    def opened(s):
        return (s["panel"] and s["ready"] and s["kernel"] == "idle" and s["connection"] == "connected"
                and s["cells"] == s["prompts"] == nb.code_cells and s["current"] and s["run_all_enabled"])

    _wait_for(view, opened, KERNEL_START_S,
              f"{nb.path} did not open with its {nb.code_cells} code cells, an idle connected kernel and "
              "Run All Cells enabled", each=settle)
    page.evaluate("p => { window.jupyterapp.commands.execute('logconsole:open', {source: p}); }", nb.path)
    try:
        page.locator(".jp-LogConsolePanel").first.wait_for(state="visible", timeout=LAB_LOAD_S * 1000)
    except Exception as e:  # Playwright's TimeoutError
        raise HarnessError(f"the Log Console did not open within {LAB_LOAD_S:.0f} s: {e}") from e
    view.activate()  # the notebook is the current widget again
    _wait_for(view, lambda s: s["current"] and s["run_all_enabled"], LAB_LOAD_S,
              f"{nb.path} did not become the current widget again after the Log Console opened")
    return view


def accept_kernel_dialog(page) -> None:
    """JupyterLab asks which kernel to start when it cannot tell; take its proposal (Python 3)."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count() and dialog.first.is_visible():
        dialog.locator(".jp-Dialog-button.jp-mod-accept").first.click()


@dataclasses.dataclass
class Run:
    tries: int       # how many times the command was issued (1 unless it did not start)
    seconds: float   # from the issue that started to the end of the run
    state: dict      # the notebook's state at the end


def started(before: dict, now: dict) -> bool:
    """Whether cells began to run since `before`: a cell is running ([*]), the kernel began an execute
    request (an execute_input message), or a cell got a higher execution count."""
    return (now.get("running", 0) > 0 or now.get("executions", 0) > before.get("executions", 0)
            or (now.get("last_count") or 0) > (before.get("last_count") or 0))


def run_cells(nb, command: str, what: str, deadline, cell: int | None = None, start_s: float = START_S,
              tries: int = RUN_TRIES, poll_s: float = POLL_S) -> Run:
    """Issue a JupyterLab command that runs cells (nb.issue(command, cell)) and wait until they ran.

    First it proves that the command started (see started). One that provably did not (its promise
    settled, or start_s went by, and no cell ran and the kernel began no request) is issued again, up
    to `tries` times in all, then it is a HarnessError "<what> never started", with what each try saw;
    a dialog shown before anything ran is a HarnessError at once (the command waits on it).
    A command that started is never issued again: a cell that ran and failed is the notebook's
    failure, which the caller reads from the page.
    Then it waits until the command's promise settled, no cell runs and the kernel is idle. The cells
    run one after the other; deadline(i) is how long code cell i (0-based) may run, counted from when
    the one before it finished, and deadline(None) how long the end of the run may take once no cell
    runs. AssertionError when one is passed, naming the cell, or as soon as a dialog or a dead kernel
    stops the run. nb: a NotebookPage, or anything with its state, issue, wait and screenshot."""
    seen = []
    for attempt in range(1, tries + 1):
        before = nb.state()
        nb.issue(command, cell)
        t0 = time.monotonic()
        while True:
            now = nb.state()
            if started(before, now):
                return _wait_finished(nb, what, deadline, attempt, t0, poll_s)
            if now.get("dialog"):  # JupyterLab asks before it runs anything: issuing again could run twice
                raise HarnessError(f"a dialog stopped {what} before any cell ran: {now['dialog']!r}; "
                                   f"{describe(now)}{nb.screenshot('dialog')}")
            if (now.get("run") or {}).get("settled") or time.monotonic() - t0 > start_s:
                break
            nb.wait(poll_s)
        seen.append(f"try {attempt}: {describe(now)}")
    raise HarnessError(f"{what} never started: issued {tries} times, and each time no cell ran and the kernel "
                       f"began no execute request within {start_s:.0f} s (or the command returned at once): "
                       f"the command never reached the notebook's cells, which says nothing about the notebook. "
                       f"Seen:\n" + "\n".join(seen) + nb.screenshot("never_started"))


def _wait_finished(nb, what: str, deadline, tries: int, t0: float, poll_s: float) -> Run:
    progress, since = None, t0  # (cells done, the cell running) and since when it is so
    while True:
        state = nb.state()
        if state.get("dialog"):
            raise AssertionError(f"a dialog stopped {what}: {state['dialog']!r}{nb.screenshot('dialog')}")
        if state.get("kernel") in ("dead", "autorestarting", "restarting"):
            raise AssertionError(f"the kernel died during {what} ({state['kernel']}): {describe(state)}"
                                 f"{nb.screenshot('kernel_died')}")
        run = state.get("run") or {}
        if (run.get("settled") and state["running"] == 0 and state.get("prompts_busy", 0) == 0
                and state["kernel"] == "idle"):
            return Run(tries, time.monotonic() - t0, state)
        at = state.get("first_running")
        if progress is not None and (state.get("done"), at) != progress:
            since = time.monotonic()
        progress = (state.get("done"), at)
        limit, spent = deadline(at), time.monotonic() - since
        if spent > limit:
            where = f"code cell {at + 1} of {state['cells']}" if at is not None else "its end (no cell running)"
            raise AssertionError(f"{what} did not finish: {where} went on for {spent:.0f} s, past its deadline "
                                 f"of {limit:.0f} s: {describe(state)}{nb.screenshot('timeout')}")
        nb.wait(poll_s)


def run_all_cells(nb: NotebookPage, deadline) -> Run:
    """Run > Run All Cells (the command the menu item executes), and wait until every code cell has run
    or the run stopped at a cell that failed (run_cells; deadline(i): code cell i's). AssertionError when
    it stopped short of the last cell and the page shows no error to say why."""
    run = run_cells(nb, "notebook:run-all-cells", "Run All", deadline)
    if run.state["done"] < run.state["cells"] and not notebook_errors(nb.page):
        raise AssertionError(f"Run All stopped after {run.state['done']} of {run.state['cells']} code cells "
                             f"and the page shows no error: {describe(run.state)}{nb.screenshot('stopped')}")
    return run


def add_code_cell(nb: NotebookPage, source: str, deadline) -> Run:
    """Append a code cell holding `source` to the open notebook and run it (Run > Run Selected Cell);
    deadline: as run_cells's."""
    cells = nb.state()["cells"]
    nb.page.evaluate("([p, s]) => window.varTutorial.addCodeCell(p, s)", [nb.path, source])
    _wait_for(nb, lambda s: s["cells"] == s["prompts"] == cells + 1, WIDGET_RENDER_S,
              "the added code cell did not appear")
    return run_cells(nb, "notebook:run-cell", "running the added cell", deadline, cell=-1)


# every output on the page, in the notebook's cells (widget Output areas included) and in the
# Log Console (where JupyterLab puts what a widget callback printed or raised outside any cell)
_OUTPUTS_JS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output')) {
    const cell = el.closest('.jp-CodeCell');
    const prompt = cell ? cell.querySelector('.jp-InputArea-prompt') : null;
    out.push({where: (prompt ? 'cell ' + prompt.textContent.trim() : 'a cell')
                     + (el.closest('.jupyter-widgets') ? ", in a widget's output" : ''),
              mime: el.getAttribute('data-mime-type') || '', text: el.innerText || ''});
  }
  for (const el of document.querySelectorAll('.jp-LogConsolePanel .jp-OutputArea-output'))
    out.push({where: 'the Log Console', mime: el.getAttribute('data-mime-type') || '', text: el.innerText || ''});
  return out;
}"""
# what a widget shows when its view could not be made, and while it waits for its model
WIDGET_FAILED = re.compile(r"^\s*Error displaying widget")
WIDGET_LOADING = re.compile(r"^\s*Loading widget\.\.\.\s*$")


def notebook_errors(page, loading_is_error: bool = True) -> list[str]:
    """The errors shown anywhere in the notebook, as readable lines ([] when there is none). A widget
    still "Loading widget..." counts as one unless loading_is_error is False (while a wait goes on,
    a view may still be on its way)."""
    errors = []
    for o in page.evaluate(_OUTPUTS_JS):
        if WIDGET_FAILED.match(o["text"]) or (loading_is_error and WIDGET_LOADING.match(o["text"])):
            errors.append(f"{o['where']}: a widget did not render: {o['text'].strip()[:500]}")
        elif (o["mime"] == STDERR_MIME or o["where"] == "the Log Console") and ERROR_TEXT.search(o["text"]):
            errors.append(f"{o['where']}: {_last_lines(o['text'])}")
    return errors


def _last_lines(text: str, n: int = 25) -> str:
    """The end of a traceback (where the error is named), at most n lines."""
    lines = text.strip().split("\n")
    return "\n".join((["..."] if len(lines) > n else []) + lines[-n:])


def widgets_rendered(page, timeout: float = WIDGET_RENDER_S) -> bool:
    """Wait until no widget on the page reads "Loading widget..." (its view is built once its model
    arrived from the kernel), at most `timeout` seconds; whether they all did."""
    t0 = time.monotonic()
    while any(WIDGET_LOADING.match(o["text"]) for o in page.evaluate(_OUTPUTS_JS)):
        if time.monotonic() - t0 > timeout:
            return False
        page.wait_for_timeout(POLL_S * 1000)
    return True


def assert_no_errors(page, context: str) -> None:
    """No cell, widget output or Log Console line shows an error, once the widgets' views are built
    (a view still loading after WIDGET_RENDER_S is reported as a widget that did not render)."""
    widgets_rendered(page)
    errors = notebook_errors(page)
    assert not errors, f"{context}: the notebook shows {len(errors)} error(s):\n" + "\n---\n".join(errors)


# -- widgets --------------------------------------------------------------------------------
def code_cell(page, source_snippet: str):
    """The code cell whose source contains source_snippet (exactly one)."""
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").filter(
        has=page.locator(".jp-InputArea-editor", has_text=source_snippet))
    assert cell.count() == 1, f"expected one code cell containing {source_snippet!r}, found {cell.count()}"
    return cell


def widget_image(widget, timeout: float) -> str:
    """The src of the (one) picture in a widget's Output area: a data: URI, so equal src means
    the same picture. Waits for it to be there, at most `timeout` seconds."""
    img = widget.locator(".widget-output img").first
    img.wait_for(state="visible", timeout=timeout * 1000)
    return img.get_attribute("src") or ""


def wait_image_change(nb: NotebookPage, widget, before: str, timeout: float) -> str:
    """Wait until the widget's picture differs from `before` and the kernel is idle again, at most
    `timeout` seconds; returns the new src. Fails as soon as the page shows an error (naming it), or
    when the picture does not change in time (with what it saw)."""
    t0 = time.monotonic()
    while True:
        nb.wait(1)
        errors = notebook_errors(nb.page, loading_is_error=False)
        assert not errors, "after moving the widget the notebook shows:\n" + "\n---\n".join(errors)
        src = widget.locator(".widget-output img").first
        now = src.get_attribute("src") if src.count() else None
        state = nb.state()
        if now and now != before and state["kernel"] == "idle":
            return now
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"the widget's picture did not change within {timeout:.0f} s after the control "
                                 f"moved: {describe(state)}{nb.screenshot('picture_timeout')}")


def save_image_src(src: str, stem: Path) -> Path:
    """Write the picture of a data: URI (what the widget shows) to stem + .png/.jpeg; returns the path."""
    header, _, payload = src.partition(",")
    mime = header.removeprefix("data:").split(";")[0]
    path = stem.with_suffix("." + (mime.split("/")[-1] if mime.startswith("image/") else "bin"))
    path.write_bytes(base64.b64decode(payload) if ";base64" in header else payload.encode())
    return path


def drag_slider(page, slider, fraction: float) -> None:
    """Drag a slider's handle (noUiSlider, ipywidgets 8) to `fraction` of its track, with the mouse."""
    track = slider.locator(".noUi-target").first
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    tb, hb = track.bounding_box(), handle.bounding_box()
    y = hb["y"] + hb["height"] / 2
    page.mouse.move(hb["x"] + hb["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(tb["x"] + fraction * tb["width"], y, steps=10)
    page.mouse.up()
