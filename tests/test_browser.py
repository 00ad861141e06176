"""The widget notebooks in a real browser: JupyterLab in headless Chromium, driven by Playwright.

For 06_sampling and 07_editing: a copy of the notebook (outputs cleared) is opened in a fresh
JupyterLab on 127.0.0.1, Run > Run All Cells runs it, and no cell, no widget output and no line
of the Log Console may show an error. Then a control of the notebook's widget is moved as a user
moves it (06: drag the cfg slider; 07: pick a target class, click Regenerate) and the widget's
picture must change. Screenshots land in outputs/browser/<test>/ (git-ignored).

Two more tests make the widget's callback raise and show that the same check then fails and
names the error: both widgets print it under their controls (and the check also reads
JupyterLab's Log Console, where other callback errors go). They use the same browser session as
the first two: after the plain check, a code cell that breaks the callback is added to the open
notebook and run, the widget is moved again, and the check must fail. So each notebook runs once.

A test that cannot drive JupyterLab (its page never loads, Run All never reaches the notebook)
fails with browser_support.HarnessError, not with an AssertionError about the notebook; see
browser_support for the waits and their deadlines. The tests at the end check that logic: on
stand-ins for the page (fast, no browser), and on a 2-cell notebook in a real JupyterLab.

Needs Chromium (Debian: `apt-get install chromium`; or VAR_TUTORIAL_CHROMIUM=/path/to/it),
playwright and jupyterlab (the `test` extra); without them the tests are skipped, except in CI
(CI=true), where they fail. A notebook's session takes under a minute on an idle 2-core CPU,
up to 7 minutes on one loaded beside two CPU hogs.
    python -m pytest -m browser tests/test_browser.py      (or: make test-browser)
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import time
from pathlib import Path

import browser_support as bs
import pytest

OUT_ROOT = bs.REPO_ROOT / "outputs" / "browser"
# The class the editor is asked to paint in: in the plain check, then once its callback is broken.
EDITOR_TARGETS = ("ship", "horse")
# Where the cfg slider is dragged to, as a fraction of its track: the same two moments.
CFG_FRACTIONS = (0.2, 0.8)


@pytest.fixture
def chromium() -> str:
    return bs.require_browser_stack()


def out_dir(test_id: str) -> Path:
    """outputs/browser/<test id>/, emptied: screenshots, the server's log, the browser console."""
    path = OUT_ROOT / re.sub(r"[^\w.-]+", "_", test_id)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# -- moving a widget's controls as a user does ------------------------------------------------
def _labelled(widget, kind: str, label: str):
    """The control of class widget-<kind> whose label reads `label`, inside widget."""
    return widget.locator(f".widget-{kind}").filter(
        has=widget.page.locator("label.widget-label", has_text=re.compile(rf"^{re.escape(label)}$")))


def drag_cfg(page, widget, step: int) -> str:
    """06: drag the cfg slider's handle to CFG_FRACTIONS[step] of its track (first: cfg 16 -> about 4)."""
    slider = _labelled(widget, "slider", "cfg")
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    bs.drag_slider(page, slider, CFG_FRACTIONS[step])
    t0 = time.monotonic()
    while (after := readout.inner_text()) == before and time.monotonic() - t0 < bs.WIDGET_RENDER_S:
        page.wait_for_timeout(bs.POLL_S * 1000)  # the readout follows the handle in the browser
    assert after != before, f"dragging the cfg slider left it at {before}"
    return f"cfg slider dragged from {before} to {after}"


def pick_class_and_regenerate(page, widget, step: int) -> str:
    """07: choose EDITOR_TARGETS[step] in the editor's class drop-down, then click Regenerate."""
    select = _labelled(widget, "dropdown", "class").locator("select")
    before = select.evaluate("s => s.options[s.selectedIndex].text")
    select.select_option(label=EDITOR_TARGETS[step])
    widget.locator("button", has_text="Regenerate").click()
    return f"class {before!r} -> {EDITOR_TARGETS[step]!r}, Regenerate clicked"


# notebook, a snippet of the widget's cell, how to move the widget
WIDGETS = {
    "sampling": ("06_sampling.ipynb", "ui = sampling_controls(", drag_cfg),
    "editing": ("07_editing.ipynb", "ui = editor(", pick_class_and_regenerate),
}
# where each widget shows the error of its broken callback, as the check names it
FAILURE_SHOWN_IN = {"sampling": "in a widget's output", "editing": "in a widget's output"}

# The cell added to the open notebook after the plain check: it breaks the widget's callback (the
# function that draws its picture), so that the next move of a control raises inside the callback.
INJECTED_FAILURE = '''# added by tests/test_browser.py: from now on the widget's callback raises
def _injected_failure(**values):
    raise RuntimeError("injected failure in the widget callback")

ui._draw = _injected_failure
'''


def check_widget(view: bs.NotebookPage, widget, move, step: int, shots: Path, deadline: float) -> dict:
    """The check of a widget: its picture is there and no error shows; move a control (move(page,
    widget, step)); the picture changes and still no error shows. Screenshots in `shots`. Raises
    AssertionError naming what is wrong; returns what it did."""
    page = view.page
    before = bs.widget_image(widget, deadline)
    widget.scroll_into_view_if_needed()
    widget.screenshot(path=shots / "2_widget_before.png")
    bs.assert_no_errors(page, "after the widget rendered")

    moved = move(page, widget, step)
    after = bs.wait_image_change(view, widget, before, deadline)
    widget.screenshot(path=shots / "3_widget_after.png")
    page.screenshot(path=shots / "4_page_after.png")
    bs.save_image_src(before, shots / "picture_before")
    bs.save_image_src(after, shots / "picture_after")
    bs.assert_no_errors(page, "after moving the widget")
    return {"moved": moved}


@dataclasses.dataclass
class Session:
    """What one browser session on a widget notebook found, for its two tests."""
    plain_dir: Path                           # the plain test's outputs/browser/ folder
    failure_dir: Path                         # the injected-failure test's
    report: dict = dataclasses.field(default_factory=dict)
    plain: Exception | None = None            # what the plain check raised (None: it passed)
    failure: Exception | None = None          # what the check raised once the callback was broken
    leftovers: str | None = None              # processes of the session still running after it


def run_session(chromium: str, which: str) -> Session:
    """One browser session on a copy of the notebook: open it, Run All, check it and move its widget
    (the plain check); then add and run the cell that breaks the widget's callback, and run the same
    check again, which must fail. Everything it started is stopped before it returns; the exceptions
    the checks raised are kept for the tests to report."""
    notebook, snippet, move = WIDGETS[which]
    session = Session(out_dir(f"test_widget_notebook_in_jupyterlab[{which}]"),
                      out_dir(f"test_the_check_fails_when_a_widget_callback_raises[{which}-{FAILURE_SHOWN_IN[which]}]"))
    report, shots = session.report, session.plain_dir
    report["notebook"] = notebook
    children_before = bs.child_processes()
    with bs.cleanup_on_signals(), bs.notebook_copy(notebook) as nb, \
            bs.jupyter_lab(nb.root, shots / "jupyterlab.log", env=bs.kernel_env()) as lab, \
            bs.chromium_page(chromium) as (page, console):
        report["server_pids"] = lab.pids()
        try:
            view = bs.open_notebook(page, lab, nb, shots)
            report["run_all"] = bs.run_all_cells(view, nb.cell_deadline)
            page.screenshot(path=shots / "1_after_run_all.png")
            bs.assert_no_errors(page, "after Run > Run All Cells")
            widget = bs.code_cell(page, snippet).locator(".jp-OutputArea-output .widget-vbox").first
            report.update(check_widget(view, widget, move, 0, shots, nb.deadline(snippet)))
            report["server_pids"] = lab.pids()  # the kernel is among them now

            shots = view.shots = session.failure_dir
            bs.add_code_cell(view, INJECTED_FAILURE, nb.cell_deadline)
            page.screenshot(path=shots / "1_after_the_added_cell.png")
            try:
                check_widget(view, widget, move, 1, shots, nb.deadline(snippet))
            except AssertionError as e:
                session.failure = e
                page.screenshot(path=shots / "failure.png")
        except Exception as e:  # the plain check failed, or the harness did: both tests report it
            with contextlib.suppress(Exception):
                page.screenshot(path=shots / "failure.png")
            if shots == session.plain_dir:
                session.plain = e
            else:
                session.failure = e
        finally:
            for folder in (session.plain_dir, session.failure_dir):
                (folder / "browser_console.log").write_text("\n".join(console) + "\n")
    shutil.copy(session.plain_dir / "jupyterlab.log", session.failure_dir / "jupyterlab.log")
    session.leftovers = leftovers(report, children_before)
    return session


_SESSIONS: dict[str, Session] = {}


def widget_session(chromium: str, which: str) -> Session:
    """The notebook's browser session, run by the first of its two tests and read by the second."""
    if which not in _SESSIONS:
        _SESSIONS[which] = run_session(chromium, which)
    return _SESSIONS[which]


def leftovers(report: dict, children_before: dict) -> str | None:
    """None when the server, its kernel, Chromium (its helpers too) and Playwright's driver are all
    gone; else what is still running."""
    alive = [pid for pid in report.get("server_pids", []) if bs.alive(pid)]
    if alive:
        return f"JupyterLab processes still running: {alive}"
    new = {pid: cmd for pid, cmd in bs.child_processes().items() if pid not in children_before}
    return f"processes started by the test still running: {new}" if new else None


@pytest.mark.browser
@pytest.mark.parametrize("which", list(WIDGETS))
def test_widget_notebook_in_jupyterlab(chromium, which):
    session = widget_session(chromium, which)
    if session.plain is not None:
        raise session.plain
    assert session.leftovers is None, session.leftovers
    report = session.report
    print(f"{report['notebook']}: Run All Cells {report['run_all'].seconds:.0f} s "
          f"(tries: {report['run_all'].tries}); {report['moved']}; screenshots in {session.plain_dir}")


@pytest.mark.browser
@pytest.mark.parametrize("which, shown_in", list(FAILURE_SHOWN_IN.items()))
def test_the_check_fails_when_a_widget_callback_raises(chromium, which, shown_in):
    session = widget_session(chromium, which)
    if session.plain is not None:  # nothing to break: say why, as the kind of failure it was
        kind = bs.HarnessError if isinstance(session.plain, bs.HarnessError) else AssertionError
        raise kind(f"not tried, the plain check of the notebook failed first: {session.plain}") from session.plain
    assert session.leftovers is None, session.leftovers
    failure = session.failure
    assert failure is not None, "the check passed although the widget's callback raised"
    if not isinstance(failure, AssertionError):  # the harness failed, not the check
        raise failure
    message = str(failure)
    (session.failure_dir / "the_check_reported.txt").write_text(message + "\n")
    assert "after moving the widget the notebook shows" in message, message
    assert "RuntimeError: injected failure in the widget callback" in message, message
    assert shown_in in message, message
    assert (session.failure_dir / "2_widget_before.png").exists() and (session.failure_dir / "failure.png").exists()


def test_without_chromium_skipped_on_a_laptop_but_failed_in_ci(monkeypatch):
    """No browser: a student's run skips the browser tests and says why; CI (CI=true) fails."""
    monkeypatch.setenv("VAR_TUTORIAL_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="VAR_TUTORIAL_CHROMIUM='/nonexistent/chromium' is not"):
        bs.require_browser_stack()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: in CI they must run, not be skipped"):
        bs.require_browser_stack()


# -- the harness itself ------------------------------------------------------------------------
def _timed_cell(source: str, seconds: float) -> dict:
    """A code cell as nbconvert stores it after a run that took `seconds`."""
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["execution"] = {"iopub.execute_input": "2024-01-01T10:00:00.000000Z",
                                  "shell.execute_reply": f"2024-01-01T10:00:{seconds:09.6f}Z"}
    return cell


def test_deadlines_come_from_the_stored_timings():
    """A cell's deadline is DEADLINE_BASE_S + DEADLINE_FACTOR x its stored time; a cell without one
    (or one a test added) counts UNTIMED_CELL_S; the committed widget notebooks have a time for every
    cell."""
    import nbformat

    cells = [_timed_cell("a = 1", 2.5), _timed_cell("b = 2", 10.0), nbformat.v4.new_code_cell("c = 3")]
    assert [bs.stored_seconds(c) for c in cells] == [2.5, 10.0, None]
    assert bs.deadline_for([2.5, 10.0]) == bs.DEADLINE_BASE_S + bs.DEADLINE_FACTOR * 12.5
    assert bs.deadline_for([2.5, None]) == bs.DEADLINE_BASE_S + bs.DEADLINE_FACTOR * (2.5 + bs.UNTIMED_CELL_S)
    with bs.notebook_copy("timed.ipynb", nbformat.v4.new_notebook(cells=cells)) as nb:
        assert [nb.cell_deadline(i) for i in range(4)] == [bs.deadline_for([t]) for t in (2.5, 10.0, None, None)]
        assert nb.cell_deadline(None) == bs.DEADLINE_BASE_S
        assert nb.deadline("b = ") == bs.deadline_for([10.0])
    for notebook, snippet, _ in WIDGETS.values():
        with bs.notebook_copy(notebook) as nb:
            assert None not in nb.stored, f"{notebook}: a code cell has no stored execution time"
            assert bs.DEADLINE_BASE_S < nb.deadline(snippet) < bs.DEADLINE_BASE_S + bs.DEADLINE_FACTOR * sum(nb.stored)


class FakeNotebook:
    """A stand-in for bs.NotebookPage, whose Run All reaches the notebook on issue number `starts_on`
    (None: never); the issues before it are lost (their command stays pending) or, with
    returns_at_once, return at once without running anything. A run that started runs its cells one
    per wait (a wait takes cell_s more than asked); the cell `fails` (1-based) fails and the run stops
    there; with `hangs` it never ends."""

    def __init__(self, starts_on: int | None, cells: int = 3, fails: int | None = None,
                 returns_at_once: bool = False, hangs: bool = False, cell_s: float = 0.0):
        self.starts_on, self.cells, self.fails, self.returns_at_once, self.hangs, self.cell_s = (
            starts_on, cells, fails, returns_at_once, hangs, cell_s)
        self.issued, self.done, self.executions, self.running = 0, 0, 0, False
        self.run = None

    def issue(self, command, cell=None):
        self.issued += 1
        self.run = {"command": command, "settled": False, "result": None}
        if self.issued == self.starts_on:
            self.running = True
        elif self.returns_at_once:
            self.run.update(settled=True, result=False)

    def wait(self, seconds):
        time.sleep(seconds + self.cell_s)
        if self.running and not self.hangs:
            self.done += 1
            self.executions += 1
            if self.done == self.cells or self.done == self.fails:
                self.running = False
                self.run.update(settled=True, result=self.done == self.cells)

    def state(self):
        return {"cells": self.cells, "done": self.done, "running": int(self.running), "prompts_busy": 0,
                "first_running": self.done if self.running else None,
                "kernel": "busy" if self.running else "idle", "executions": self.executions,
                "last_count": self.done or None, "dialog": None, "run": dict(self.run or {})}

    def screenshot(self, name):
        return ""


FAST = {"start_s": 0.05, "poll_s": 0.001}


def LONG(cell: int | None) -> float:
    """A deadline that no stand-in run comes near."""
    return 5.0


@pytest.mark.parametrize("returns_at_once", [False, True], ids=["lost", "returns-at-once"])
def test_a_run_all_that_never_starts_is_tried_three_times_then_a_harness_error(returns_at_once):
    nb = FakeNotebook(starts_on=None, returns_at_once=returns_at_once)
    with pytest.raises(bs.HarnessError, match="Run All never started: issued 3 times") as raised:
        bs.run_cells(nb, "notebook:run-all-cells", "Run All", deadline=LONG, **FAST)
    assert not isinstance(raised.value, AssertionError)  # not a verdict on the notebook
    assert nb.issued == bs.RUN_TRIES == 3 and nb.executions == 0
    assert "try 3: {cells: 3, done: 0, running: 0" in str(raised.value)


def test_a_run_all_that_starts_on_the_second_try_runs_once():
    nb = FakeNotebook(starts_on=2)
    run = bs.run_cells(nb, "notebook:run-all-cells", "Run All", deadline=LONG, **FAST)
    assert (run.tries, nb.issued, nb.executions, run.state["done"]) == (2, 2, 3, 3)


def test_a_cell_that_ran_and_failed_is_never_run_again():
    nb = FakeNotebook(starts_on=1, fails=2)
    run = bs.run_cells(nb, "notebook:run-all-cells", "Run All", deadline=LONG, **FAST)
    assert (run.tries, nb.issued, nb.executions, run.state["done"]) == (1, 1, 2, 2)


def test_a_cell_that_runs_past_its_deadline_fails_as_the_notebook_and_is_named():
    nb = FakeNotebook(starts_on=1, hangs=True)
    with pytest.raises(AssertionError, match=r"Run All did not finish: code cell 1 of 3 went on for 0 s, past its "
                                             r"deadline of 0 s: \{cells: 3, done: 0, running: 1, first_running: 0"):
        bs.run_cells(nb, "notebook:run-all-cells", "Run All", deadline=lambda cell: 0.05, **FAST)
    assert nb.issued == 1


def test_each_cell_gets_its_own_deadline_from_when_the_one_before_finished():
    """Three cells of about 0.2 s each, 0.5 s allowed per cell: the run (0.6 s) passes, though it
    takes longer than any one deadline."""
    nb = FakeNotebook(starts_on=1, cell_s=0.2)
    run = bs.run_cells(nb, "notebook:run-all-cells", "Run All", deadline=lambda cell: 0.5, **FAST)
    assert run.state["done"] == 3 and run.seconds > 0.5


class LostCommands:
    """The notebook open in the page, but every command issued to it is lost on the way."""

    def __init__(self, view: bs.NotebookPage):
        self.view, self.issued = view, 0
        self.state, self.wait, self.screenshot = view.state, view.wait, view.screenshot

    def issue(self, command, cell=None):
        self.issued += 1


@pytest.mark.browser
def test_run_all_in_a_real_jupyterlab_on_a_two_cell_notebook(chromium):
    """The waits and the retry on a real page: a 2-cell notebook (the second cell fails) opens with
    an idle kernel; a Run All that never reaches it is tried RUN_TRIES times, then HarnessError, and
    no cell ran; the real Run All then runs each cell once and stops at the failing one, which the
    page shows as an error."""
    import nbformat

    shots = out_dir("test_run_all_in_a_real_jupyterlab_on_a_two_cell_notebook")
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("n = 1"),
               nbformat.v4.new_code_cell('raise ValueError("the second cell fails")')],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    children_before, report = bs.child_processes(), {}
    with bs.cleanup_on_signals(), bs.notebook_copy("two_cells.ipynb", nb) as copy, \
            bs.jupyter_lab(copy.root, shots / "jupyterlab.log") as lab, bs.chromium_page(chromium) as (page, _):
        report["server_pids"] = lab.pids()
        view = bs.open_notebook(page, lab, copy, shots)
        lost = LostCommands(view)
        with pytest.raises(bs.HarnessError, match="Run All never started") as raised:
            bs.run_cells(lost, "notebook:run-all-cells", "Run All", deadline=copy.cell_deadline, start_s=1)
        (shots / "the_harness_reported.txt").write_text(str(raised.value) + "\n")
        assert lost.issued == bs.RUN_TRIES
        assert "done: 0" in str(raised.value) and "executions: 0" in str(raised.value)

        run = bs.run_all_cells(view, copy.cell_deadline)
        assert (run.tries, run.state["done"], run.state["executions"]) == (1, 2, 2), bs.describe(run.state)
        errors = bs.notebook_errors(page)
        assert len(errors) == 1 and "ValueError: the second cell fails" in errors[0], errors
        report["server_pids"] = lab.pids()
    assert leftovers(report, children_before) is None
