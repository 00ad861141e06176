"""The widget notebooks in a real browser: JupyterLab in headless Chromium, driven by Playwright.

For 06_sampling and 07_editing: a copy of the notebook (outputs cleared) is opened in a fresh
JupyterLab on 127.0.0.1, Run > Run All Cells runs it, and no cell, no widget output and no line
of the Log Console may show an error. Then a control of the notebook's widget is moved as a user
moves it (06: drag the cfg slider; 07: pick a target class, click Regenerate) and the widget's
picture must change. Screenshots land in outputs/browser/<test>/ (git-ignored).

Two more tests make the widget's callback raise (an extra last cell in the copy) and show that
the same check then fails and names the error: both widgets print it under their controls
(and the check also reads JupyterLab's Log Console, where other callback errors go).

Needs Chromium (Debian: `apt-get install chromium`; or VAR_TUTORIAL_CHROMIUM=/path/to/it),
playwright and jupyterlab (the `test` extra); without them the tests are skipped, except in CI
(CI=true), where they fail. Each test runs its notebook once: 1 to 2.5 minutes on a busy
2-core CPU, 7 minutes for the four.
    python -m pytest -m browser tests/test_browser.py      (or: make test-browser)
"""
from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

import browser_support as bs
import pytest

OUT_ROOT = bs.REPO_ROOT / "outputs" / "browser"
EDITOR_TARGET = "ship"  # the class the editor is asked to paint in


@pytest.fixture
def chromium() -> str:
    return bs.require_browser_stack()


@pytest.fixture
def out_dir(request) -> Path:
    """outputs/browser/<test name>/, emptied: screenshots, the server's log, the browser console."""
    path = OUT_ROOT / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# -- moving a widget's controls as a user does ------------------------------------------------
def _labelled(widget, kind: str, label: str):
    """The control of class widget-<kind> whose label reads `label`, inside widget."""
    return widget.locator(f".widget-{kind}").filter(
        has=widget.page.locator("label.widget-label", has_text=re.compile(rf"^{re.escape(label)}$")))


def drag_cfg(page, widget) -> str:
    """06: drag the cfg slider's handle to a fifth of its track (cfg 16 -> about 4)."""
    slider = _labelled(widget, "slider", "cfg")
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    bs.drag_slider(page, slider, 0.2)
    after = readout.inner_text()
    assert after != before, f"dragging the cfg slider left it at {before}"
    return f"cfg slider dragged from {before} to {after}"


def pick_class_and_regenerate(page, widget) -> str:
    """07: choose a target class in the editor's class drop-down, then click Regenerate."""
    select = _labelled(widget, "dropdown", "class").locator("select")
    before = select.evaluate("s => s.options[s.selectedIndex].text")
    select.select_option(label=EDITOR_TARGET)
    widget.locator("button", has_text="Regenerate").click()
    return f"class {before!r} -> {EDITOR_TARGET!r}, Regenerate clicked"


# notebook, a snippet of the widget's cell, how to move the widget
WIDGETS = {
    "sampling": ("06_sampling.ipynb", "ui = sampling_controls(", drag_cfg),
    "editing": ("07_editing.ipynb", "ui = editor(", pick_class_and_regenerate),
}


def check_widget_notebook(chromium: str, out_dir: Path, which: str, report: dict, extra_cell: str | None = None):
    """Run a copy of the notebook in JupyterLab, check it shows no error, move its widget and
    check the picture changes (and still no error). Raises AssertionError naming what is wrong.
    Fills `report` with what it measured and the server's pids (the kernel's included);
    everything it started is stopped when it returns or raises."""
    notebook, snippet, move = WIDGETS[which]
    report["notebook"] = notebook
    with bs.cleanup_on_signals(), bs.notebook_copy(notebook, extra_cell) as nb, \
            bs.jupyter_lab(nb.root, out_dir / "jupyterlab.log", env=bs.kernel_env()) as lab, \
            bs.chromium_page(chromium) as (page, console):
        report["server_pids"] = lab.pids()
        try:
            bs.open_notebook(page, lab, nb.path, nb.code_cells)
            report["run_all_s"] = bs.run_all_cells(page)
            page.screenshot(path=out_dir / "1_after_run_all.png")
            bs.assert_no_errors(page, "after Run > Run All Cells")

            widget = bs.code_cell(page, snippet).locator(".jp-OutputArea-output .widget-vbox").first
            before = bs.widget_image(widget)
            widget.scroll_into_view_if_needed()
            widget.screenshot(path=out_dir / "2_widget_before.png")
            bs.assert_no_errors(page, "after the widget rendered")

            report["moved"] = move(page, widget)
            after = bs.wait_image_change(page, widget, before)
            widget.screenshot(path=out_dir / "3_widget_after.png")
            page.screenshot(path=out_dir / "4_page_after.png")
            bs.save_image_src(before, out_dir / "picture_before")
            bs.save_image_src(after, out_dir / "picture_after")
            bs.assert_no_errors(page, "after moving the widget")
            report["server_pids"] = lab.pids()  # the kernel is among them now
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=out_dir / "failure.png")
            raise
        finally:
            (out_dir / "browser_console.log").write_text("\n".join(console) + "\n")


def assert_nothing_left(report: dict, children_before: dict) -> None:
    """The server, its kernel, Chromium (its helpers too) and Playwright's driver are all gone."""
    alive = [pid for pid in report.get("server_pids", []) if bs.alive(pid)]
    assert not alive, f"JupyterLab processes still running: {alive}"
    new = {pid: cmd for pid, cmd in bs.child_processes().items() if pid not in children_before}
    assert not new, f"processes started by the test still running: {new}"


@pytest.mark.browser
@pytest.mark.parametrize("which", ["sampling", "editing"])
def test_widget_notebook_in_jupyterlab(chromium, out_dir, which):
    children_before, report = bs.child_processes(), {}
    check_widget_notebook(chromium, out_dir, which, report)
    assert_nothing_left(report, children_before)
    print(f"{report['notebook']}: Run All Cells {report['run_all_s']:.0f} s; {report['moved']}; "
          f"screenshots in {out_dir}")


# The last cell of the copy breaks the widget's callback (the function that draws its picture),
# after the widget was shown: the next move of a control raises inside the callback.
INJECTED_FAILURE = '''# added by tests/test_browser.py: from now on the widget's callback raises
def _injected_failure(**values):
    raise RuntimeError("injected failure in the widget callback")

ui._draw = _injected_failure
'''


@pytest.mark.browser
@pytest.mark.parametrize("which, shown_in", [("sampling", "in a widget's output"), ("editing", "in a widget's output")])
def test_the_check_fails_when_a_widget_callback_raises(chromium, out_dir, which, shown_in):
    children_before, report = bs.child_processes(), {}
    with pytest.raises(AssertionError) as failure:
        check_widget_notebook(chromium, out_dir, which, report, extra_cell=INJECTED_FAILURE)
    assert_nothing_left(report, children_before)
    message = str(failure.value)
    (out_dir / "the_check_reported.txt").write_text(message + "\n")
    assert "after moving the widget the notebook shows" in message, message
    assert "RuntimeError: injected failure in the widget callback" in message, message
    assert shown_in in message, message
    assert (out_dir / "2_widget_before.png").exists() and (out_dir / "failure.png").exists()


def test_without_chromium_skipped_on_a_laptop_but_failed_in_ci(monkeypatch):
    """No browser: a student's run skips the browser tests and says why; CI (CI=true) fails."""
    monkeypatch.setenv("VAR_TUTORIAL_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="VAR_TUTORIAL_CHROMIUM='/nonexistent/chromium' is not"):
        bs.require_browser_stack()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: in CI they must run, not be skipped"):
        bs.require_browser_stack()
