"""Helpers for tests/test_browser.py: JupyterLab on loopback, driven in headless Chromium.

The pieces, each a context manager that cleans up after itself:
    notebook_copy(...)  a copy of a notebook (outputs cleared) in a temporary root folder
    jupyter_lab(...)    a JupyterLab server on 127.0.0.1 with a fresh config, no token, no browser
    chromium_page(...)  headless Chromium (Debian's `chromium`) through Playwright
and the steps of a check: open_notebook, run_all_cells, notebook_errors, widget_image.

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


# -- the notebook copy ----------------------------------------------------------------------
@dataclasses.dataclass
class NotebookCopy:
    root: Path        # the server's root folder
    path: str         # the notebook, relative to root: "notebooks/<name>"
    code_cells: int   # how many code cells it has


@contextlib.contextmanager
def notebook_copy(name: str, extra_cell: str | None = None):
    """A temporary root folder holding notebooks/<name>, a copy of the committed notebook with its
    outputs and saved widget state cleared (so every picture on the page is drawn by this run),
    plus `extra_cell` appended as a last code cell when given. Yields a NotebookCopy; the
    committed notebook is only read. The copy finds the package, data/ and results/ of this
    checkout through VAR_TUTORIAL_ROOT (see kernel_env), as its first cell reads it."""
    import nbformat

    root = Path(tempfile.mkdtemp(prefix="var-browser-root-"))
    try:
        nb = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.metadata.pop("widgets", None)
        if extra_cell is not None:
            nb.cells.append(nbformat.v4.new_code_cell(extra_cell))
        (root / "notebooks").mkdir()
        nbformat.write(nb, root / "notebooks" / name)
        yield NotebookCopy(root, f"notebooks/{name}", sum(c.cell_type == "code" for c in nb.cells))
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
           "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
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


def open_notebook(page, lab: JupyterLab, path: str, code_cells: int, timeout: float = 180) -> None:
    """Open path (relative to the server's root) in JupyterLab, wait until its code_cells code
    cells are on the page and its kernel is idle, and open the Log Console beside it (where
    JupyterLab shows the output of widget callbacks that no cell owns, their tracebacks included)."""
    page.goto(f"{lab.url}/lab/tree/{path}?reset", wait_until="domcontentloaded")
    name = path.rsplit("/", 1)[-1]
    t0 = time.monotonic()
    while True:
        page.wait_for_timeout(500)
        accept_kernel_dialog(page)
        state = notebook_progress(page)
        if state["cells"] == code_cells and state["status"] == "idle":
            break
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} did not open with its {code_cells} code cells and an idle kernel "
                                 f"within {timeout:.0f} s: {state}")
    click_menu(page, "View", "Show Log Console")
    page.locator(".jp-LogConsolePanel").first.wait_for(state="visible")
    page.get_by_role("tab", name=name, exact=True).click()  # the notebook is the current widget again


def accept_kernel_dialog(page) -> None:
    """JupyterLab asks which kernel to start when it cannot tell; take its proposal (Python 3)."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count() and dialog.first.is_visible():
        dialog.locator(".jp-Dialog-button.jp-mod-accept").first.click()


def click_menu(page, *labels: str) -> None:
    """Click through the menu bar, as a user does: click_menu(page, "Run", "Run All Cells")."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(labels[0])}$")).click()
    for label in labels[1:]:
        page.locator(".lm-Menu:visible .lm-Menu-itemLabel",
                     has_text=re.compile(rf"^{re.escape(label)}$")).first.click()


# the notebook's state, read from the page: code cells, the ones with a number, the ones
# running or queued ([*]), the kernel status of the execution indicator
_PROGRESS_JS = """() => {
  const prompts = Array.from(document.querySelectorAll(
      '.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')).map(e => e.textContent.trim());
  const ind = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
  return {cells: prompts.length, done: prompts.filter(t => /^\\[\\d+\\]:$/.test(t)).length,
          busy: prompts.filter(t => t === '[*]:').length, status: ind ? ind.dataset.status : null};
}"""


def notebook_progress(page) -> dict:
    return page.evaluate(_PROGRESS_JS)


def run_all_cells(page, timeout: float = 900) -> float:
    """Run > Run All Cells, then wait until every code cell has run (or the run stopped at an
    error) and the kernel is idle. Returns the seconds it took."""
    t0 = time.monotonic()
    click_menu(page, "Run", "Run All Cells")
    page.wait_for_timeout(1000)
    settled = 0
    while True:
        state = notebook_progress(page)
        finished = state["busy"] == 0 and state["status"] == "idle"
        if finished and (state["done"] == state["cells"] or notebook_errors(page)):
            settled += 1
            if settled >= 3:  # idle on three polls in a row: no cell is about to start
                return time.monotonic() - t0
        else:
            settled = 0
        dialog = page.locator(".jp-Dialog")
        if dialog.count() and dialog.first.is_visible():
            raise AssertionError(f"a dialog stopped Run All Cells: {dialog.first.inner_text()!r}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"Run All Cells did not finish within {timeout:.0f} s: {state}")
        page.wait_for_timeout(1000)


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
# what a widget shows when its view could not be made (or never arrived)
WIDGET_FAILED = re.compile(r"^\s*(Error displaying widget|Loading widget\.\.\.\s*$)")


def notebook_errors(page) -> list[str]:
    """The errors shown anywhere in the notebook, as readable lines ([] when there is none)."""
    errors = []
    for o in page.evaluate(_OUTPUTS_JS):
        if WIDGET_FAILED.match(o["text"]):
            errors.append(f"{o['where']}: a widget did not render: {o['text'].strip()[:500]}")
        elif (o["mime"] == STDERR_MIME or o["where"] == "the Log Console") and ERROR_TEXT.search(o["text"]):
            errors.append(f"{o['where']}: {_last_lines(o['text'])}")
    return errors


def _last_lines(text: str, n: int = 25) -> str:
    """The end of a traceback (where the error is named), at most n lines."""
    lines = text.strip().split("\n")
    return "\n".join((["..."] if len(lines) > n else []) + lines[-n:])


def assert_no_errors(page, context: str) -> None:
    errors = notebook_errors(page)
    assert not errors, f"{context}: the notebook shows {len(errors)} error(s):\n" + "\n---\n".join(errors)


# -- widgets --------------------------------------------------------------------------------
def code_cell(page, source_snippet: str):
    """The code cell whose source contains source_snippet (exactly one)."""
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").filter(
        has=page.locator(".jp-InputArea-editor", has_text=source_snippet))
    assert cell.count() == 1, f"expected one code cell containing {source_snippet!r}, found {cell.count()}"
    return cell


def widget_image(widget) -> str:
    """The src of the (one) picture in a widget's Output area: a data: URI, so equal src means
    the same picture. Waits for it to be there."""
    img = widget.locator(".widget-output img").first
    img.wait_for(state="visible", timeout=300_000)
    return img.get_attribute("src") or ""


def wait_image_change(page, widget, before: str, timeout: float = 300) -> str:
    """Wait until the widget's picture differs from `before` and the kernel is idle again;
    returns the new src. Fails, showing any error on the page, if it does not change."""
    t0 = time.monotonic()
    while True:
        page.wait_for_timeout(1000)
        errors = notebook_errors(page)
        assert not errors, "after moving the widget the notebook shows:\n" + "\n---\n".join(errors)
        src = widget.locator(".widget-output img").first
        now = src.get_attribute("src") if src.count() else None
        if now and now != before and notebook_progress(page)["status"] == "idle":
            return now
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"the widget's picture did not change within {timeout:.0f} s after the control moved")


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
