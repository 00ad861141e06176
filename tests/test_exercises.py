"""The student exercise notebooks (var_tutorial/exercises.py, notebooks/exercises/).

* generated: regenerating them changes no byte; the check cells are locked, the solutions gone;
* as released, nbval fails in the exercise and check cells, and in no other cell;
* filled in with the solutions, it is the solution notebook (whose nbval run is part of `make test`);
* a wrong answer that runs fails its check: for every exercise, mutations of its solution (the
  usual mistakes, and answers right only for the default schedule or the first scales) are run in
  the notebook's kernel, and the check fails with CheckFailed at the comparison each names, showing
  the student's value and the expected one; answers equal in algebra but written otherwise pass.

The notebook runs go through a real kernel (nbval in a subprocess, or one kernel session per
notebook for the mutations), each notebook in quick mode, as a student on a CPU runs it.
"""
from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from var_tutorial import exercises as ex

ROOT = Path(__file__).resolve().parents[1]
EXERCISE_DIR = ex.NOTEBOOKS_DIR / "exercises"
SANITIZE = ROOT / "notebooks" / "sanitize.cfg"
EXERCISES = ex.all_exercises()
NOTEBOOKS = sorted({e.notebook for e in EXERCISES})

# Wrong answers that still run: (notebook, exercise id, text of its solution, the wrong replacement,
# the comparison that must fail first, a regex of the check's name for it). Each one must fail its own
# check with CheckFailed, at that comparison: a check that caught it only by accident, at a later line
# or in a later cell, would not tell the student what is wrong.
MUTATIONS = [
    ("01_vqvae", "nearest_code",  # the farthest code
     "return distances.argmin(dim=1)", "return distances.argmax(dim=1)", r"^the 6 points$"),
    ("01_vqvae", "nearest_code",  # the L1 distance instead of the squared L2 one
     "distances = ((z[:, None, :] - E[None, :, :]) ** 2).sum(-1)",
     "distances = (z[:, None, :] - E[None, :, :]).abs().sum(-1)", r"points|vectors"),
    ("01_vqvae", "vq_loss",  # the stop-gradient on the wrong side: the same value, the gradient to the encoder
     "codebook_term = F.mse_loss(f_hat, f.detach())", "codebook_term = F.mse_loss(f_hat.detach(), f)",
     r"^where the codebook term's gradient goes"),
    ("01_vqvae", "vq_loss",  # beta hard-coded: right for the shipped 0.25 only
     "commitment_term = beta * F.mse_loss(", "commitment_term = 0.25 * F.mse_loss(", r"beta 0\.5$"),
    ("02_multiscale_quantizer", "scale_blocks",  # off by one: every block ends one position too late
     "blocks.append((start, start + pn * pn - 1))", "blocks.append((start, start + pn * pn))",
     r"^cifar10: the blocks"),
    ("02_multiscale_quantizer", "scale_blocks",  # CIFAR's token count hard-coded
     "return blocks, start", "return blocks, 130", r"^imagenette64: L$"),
    ("02_multiscale_quantizer", "residual_step",  # bilinear instead of bicubic up-sampling (the same for a 1x1 map)
     'size=(H, H), mode="bicubic")', 'size=(H, H), mode="bilinear")', r"^cifar10 \(shipped\), scale 2: h_2$"),
    ("02_multiscale_quantizer", "residual_step",  # always the first phi: right for the first two scales only
     "conv = q.phi.phis[q.phi.index_for(k, K)]", "conv = q.phi.phis[0]", r"^cifar10 \(shipped\), scale [3-6]: h_"),
    ("02_multiscale_quantizer", "residual_step",  # CIFAR's latent size hard-coded
     'size=(H, H), mode="bicubic")', 'size=(8, 8), mode="bicubic")', r"^64 px schedule \(random weights\), scale 1: h_1$"),
    ("02_multiscale_quantizer", "decode_first_k",  # phi forgotten: the plain up-sampled codes
     "f_hat = f_hat + q.phi(z, j, K)", "f_hat = f_hat + z", r"^cifar10, f_hat from r_1..r_1$"),
    ("02_multiscale_quantizer", "decode_first_k",  # phi assigned as for CIFAR's six scales, whatever K
     "f_hat = f_hat + q.phi(z, j, K)", "f_hat = f_hat + q.phi(z, j, 6)", r"^64 px schedule, f_hat from r_1..r_\d+$"),
    ("02_multiscale_quantizer", "teacher_forcing",  # scale k's own contribution instead of the cumulative f_hat
     "f_hat_k = q.decode(tokens[:k])", "f_hat_k = q.up_phi(q.embed(tokens[k - 1]), k - 1)",
     r"^cifar10: the teacher-forcing input$"),
    ("02_multiscale_quantizer", "teacher_forcing",  # CIFAR's six scales hard-coded
     "for k in range(1, q.K):", "for k in range(1, 6):", r"^64 px schedule \(random weights\)"),
    ("03_next_token_vs_next_scale", "attention_masks",  # off by one: a token no longer sees its own scale
     "block_causal = scale[None, :] <= scale[:, None]", "block_causal = scale[None, :] < scale[:, None]",
     r"^cifar10: the block-causal mask$"),
    ("03_next_token_vs_next_scale", "attention_masks",  # CIFAR's 64 raster positions hard-coded
     "position = torch.arange(patch_nums[-1] ** 2)", "position = torch.arange(64)", r"^imagenette64: the causal mask$"),
    ("04_transformer", "adaln",  # the scale multiplies instead of modulating around 1
     "layer_norm(x) * (1 + scale1) + shift1", "layer_norm(x) * scale1 + shift1", r"^the block's output"),
    ("04_transformer", "adaln",  # the six vectors taken in the wrong order
     "gamma1, gamma2, scale1, scale2, shift1, shift2 = ada", "scale1, scale2, gamma1, gamma2, shift1, shift2 = ada",
     r"^the block's output"),
    ("04_transformer", "kv_cache",  # off by one: position i fed input row i instead of row i - 1
     "x_BLCv[:, start - 1:start - 1 + pn * pn]", "x_BLCv[:, start:start + pn * pn]",
     r"^(at init|randomised): the logits, scale by scale$"),
    ("04_transformer", "kv_cache",  # the cache length before the step instead of after it
     "            lengths.append(m.cache_len)", "            lengths.append(start)",
     r"^at init: the cache length after each step$"),
    ("05_training", "lr_schedule",  # off by one: the first warm-up step has learning rate 0
     "base_lr * (step + 1) / warmup", "base_lr * step / warmup", r"^schedule \(total 5525,"),
    ("05_training", "lr_schedule",  # the cosine counted from step 0, not from the end of the warm-up
     "t = min(1.0, (step - warmup) / max(1, total - warmup))", "t = min(1.0, step / max(1, total))",
     r"^schedule \(total 5525,"),
    ("05_training", "token_loss",  # next-token habit: logits of position i scored against token i + 1
     'F.cross_entropy(logits.transpose(1, 2), idx_BL, reduction="none")',
     'F.cross_entropy(logits[:, :-1].transpose(1, 2), idx_BL[:, 1:], reduction="none")',
     r"^the loss of every token"),
    ("06_sampling", "cfg",  # CFG without the ramp: the full strength at every scale
     "t = cfg * (k - 1) / (K - 1) if K > 1 else cfg", "t = cfg", r"^K = 6, cfg = 16, scale 1$"),
    ("06_sampling", "cfg",  # K hard-coded: right for CIFAR's six scales only
     "t = cfg * (k - 1) / (K - 1) if K > 1 else cfg", "t = cfg * (k - 1) / 5 if K > 1 else cfg",
     r"^K = 10, cfg = 16, scale 2$"),
    ("06_sampling", "cfg",  # scales counted from 0: the ramp one scale ahead
     "t = cfg * (k - 1) / (K - 1) if K > 1 else cfg", "t = cfg * k / (K - 1) if K > 1 else cfg",
     r"^K = 6, cfg = 16, scale 1$"),
    ("06_sampling", "top_k_top_p",  # top-k keeps k + 1 tokens
     "logits.topk(top_k, dim=-1)", "logits.topk(top_k + 1, dim=-1)", r"^r_2, top_k 50, top_p 1, T 0\.5$"),
    ("06_sampling", "sampling_loop",  # the next input from the last scale alone, not the cumulative f_hat
     "f_hat = h if f_hat is None else f_hat + h", "f_hat = h", r"^the shipped VAR, cfg 4: r_[3-6]$"),
    ("06_sampling", "sampling_loop",  # guidance without the ramp
     "cfg_ramp(cfg, step, K)", "cfg", r"^the shipped VAR, cfg 4: r_1$"),
    ("07_editing", "token_masks",  # nearest instead of area resizing: the centre pixel of each cell decides
     'mode="area"', 'mode="nearest"', r"^cifar10, inpaint_centre$"),
    ("07_editing", "token_masks",  # at least half inside instead of more than half
     ")[0, 0] > threshold", ")[0, 0] >= threshold", r"^cifar10, inpaint_centre$"),
    ("07_editing", "keep_outside",  # the arguments of where swapped: the outside regenerated, the hole kept
     "torch.where(edit[k], r_k, own[k])", "torch.where(edit[k], own[k], r_k)",
     r"^in-painting the centre quarter: the edited images$"),
    ("11_exposure_bias", "own_input",  # the true tokens again: teacher forcing, not the model's own context
     "own_BL = logits.argmax(-1)", "own_BL = idx_BL", r"^the own-context input of the shipped VAR"),
    ("11_exposure_bias", "own_input",  # the unconditional logits: the null class instead of the image's
     "logits = model(label_B, x_true)", "logits = model(torch.full_like(label_B, model.cfg.num_classes), x_true)",
     r"^the own-context input of the shipped VAR"),
    ("11_exposure_bias", "own_input",  # CIFAR-10's six scales written in, instead of the model's own schedule
     "return quantizer.teacher_forcing_input(unflatten_tokens(own_BL, model.cfg.patch_nums))",
     "return quantizer.teacher_forcing_input(unflatten_tokens(own_BL, (1, 2, 3, 4, 6, 8)))",
     r"^the own-context input of a tiny VAR"),
]

# Right answers in another form than the solution's, which every check must accept: (notebook,
# exercise id, text of its solution, an algebraically equal replacement).
EQUIVALENTS = [
    ("01_vqvae", "vq_loss", "codebook_term = F.mse_loss(f_hat, f.detach())",
     "codebook_term = ((f.detach() - f_hat) ** 2).sum() / f.numel()"),
    ("02_multiscale_quantizer", "residual_step", 'rest = F.interpolate(residual, size=(pn, pn), mode="area")',
     "rest = F.adaptive_avg_pool2d(residual, pn)"),
    ("02_multiscale_quantizer", "decode_first_k", "for j, r_j in enumerate(tokens[:k]):",
     "for j, r_j in reversed(list(enumerate(tokens[:k]))):"),
    ("04_transformer", "adaln", "layer_norm(x) * (1 + scale1) + shift1",
     "(layer_norm(x) + layer_norm(x) * scale1 + shift1)"),
    ("05_training", "lr_schedule", "return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))",
     "return min_ratio * base_lr + (base_lr - min_ratio * base_lr) * (1 + math.cos(math.pi * t)) / 2"),
    ("06_sampling", "cfg", "return (1 + t) * cond - t * uncond", "return uncond + (1 + t) * (cond - uncond)"),
]


def exercises_of(notebook: str) -> list[ex.Exercise]:
    return [e for e in EXERCISES if e.notebook == notebook]


def released(notebook: str):
    return nbformat.read(EXERCISE_DIR / f"{notebook}.ipynb", as_version=4)


def code_numbers(nb) -> dict[int, int]:
    """Cell index -> nbval's number for it ('Cell N' counts the code cells from 0)."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    return {i: n for n, i in enumerate(code)}


def solved(notebook: str):
    """The exercise notebook with every exercise cell filled in with its solution."""
    nb = released(notebook)
    for e in exercises_of(notebook):
        nb.cells[e.solution_cell + ex.HEADER_CELLS].source = e.source
    return nb


def environment(root: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "VAR_TUTORIAL_ROOT"}
    env["VAR_TUTORIAL_MODE"] = "quick"
    if root:
        env["VAR_TUTORIAL_ROOT"] = root
    return env


def run_nbval(notebook_path: Path, junit: Path, env: dict) -> dict[int, bool]:
    """Run nbval as a student would; return {code cell number: passed}."""
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with",
           str(SANITIZE), "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", str(notebook_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert junit.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        number = int(re.fullmatch(r"Cell (\d+)", case.get("name")).group(1))
        result[number] = not any(child.tag in ("failure", "error") for child in case)
    return result


# -- generated, locked, stripped ------------------------------------------------------------------
def test_at_least_twelve_exercises_over_six_notebooks():
    assert len(EXERCISES) >= 12 and len(NOTEBOOKS) >= 6, [(e.notebook, e.id) for e in EXERCISES]


def test_regenerating_changes_no_file(tmp_path):
    written = ex.make_exercises(out_dir=tmp_path, verbose=False)
    assert sorted(p.name for p in written) == sorted(p.name for p in EXERCISE_DIR.glob("*.ipynb")), \
        "notebooks/exercises/ is out of date: run `python -m var_tutorial make-exercises`"
    for path in written:
        assert path.read_bytes() == (EXERCISE_DIR / path.name).read_bytes(), \
            f"{path.name} differs from the generated one: run `python -m var_tutorial make-exercises`"
    before = {p.name: p.stat().st_mtime_ns for p in written}
    ex.make_exercises(out_dir=tmp_path, verbose=False)  # again: nothing is rewritten
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.ipynb")} == before


def test_the_command_writes_the_exercise_notebooks(tmp_path, capsys):
    from var_tutorial.cli import main

    main(["make-exercises", "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == sorted(f"{n}.ipynb" for n in NOTEBOOKS)
    assert "residual_step" in capsys.readouterr().out


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_solutions_are_stubbed_and_checks_locked_with_their_expected_output(notebook):
    nb, solution = released(notebook), nbformat.read(ex.NOTEBOOKS_DIR / f"{notebook}.ipynb", as_version=4)
    assert len(nb.cells) == len(solution.cells) + ex.HEADER_CELLS
    assert ex.CHECK_COMMAND.format(name=notebook) in nb.cells[0].source
    for e in exercises_of(notebook):
        cell = nb.cells[e.solution_cell + ex.HEADER_CELLS]
        assert "### BEGIN SOLUTION" not in cell.source and "raise NotImplementedError()" in cell.source
        assert cell.source.startswith(f"# Exercise {e.id}:") and cell.outputs == []
        assert cell.metadata["nbgrader"] == {"grade": False, "grade_id": e.id, "locked": False,
                                             "schema_version": 3, "solution": True, "task": False}
        check = nb.cells[e.check_cell + ex.HEADER_CELLS]
        assert check.source == e.released_check and e.check == solution.cells[e.check_cell].source
        assert f"# The check of exercise {e.id} (locked)" in check.source
        assert check.metadata["nbgrader"]["grade_id"] == f"{e.id}_check"
        assert check.metadata["nbgrader"]["locked"] and check.metadata["nbgrader"]["grade"]
        assert check.metadata["editable"] is False and check.metadata["deletable"] is False
        # nbval compares only the outputs of cells that were run: the expected output is kept, run
        assert check.outputs == ex.coalesce_streams(solution.cells[e.check_cell].outputs) and check.outputs
        assert check.execution_count is not None


def test_markers_become_stubs_at_their_indentation_and_bad_markers_are_named():
    source = "def f(x):\n    y = x\n    ### BEGIN SOLUTION\n    y = 2 * x\n    ### END SOLUTION\n    return y"
    assert ex.strip_solution(source) == ("def f(x):\n    y = x\n    # YOUR CODE HERE\n"
                                         "    raise NotImplementedError()\n    return y")
    with pytest.raises(ValueError, match="never closed"):
        ex.strip_solution("### BEGIN SOLUTION\nx = 1")
    with pytest.raises(ValueError, match="never opened"):
        ex.strip_solution("x = 1\n### END SOLUTION")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")])
    with pytest.raises(ValueError, match="does not start with a title line"):
        ex.find_exercises(nb, "99_test")
    nb.cells[0].source = "# Exercise x: a thing\n" + nb.cells[0].source
    with pytest.raises(ValueError, match="next code cell must be its check"):
        ex.find_exercises(nb, "99_test")
    nb.cells.append(nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(x)"))
    (e,) = ex.find_exercises(nb, "99_test")
    assert (e.id, e.title, e.solution_cell, e.check_cell, e.raises_at_top_level) == ("x", "a thing", 0, 1, True)
    assert e.released_check.split("\n")[1].startswith("# The check of exercise x (locked)")


def test_grading_takes_only_the_exercise_cells_of_a_submission(tmp_path):
    from var_tutorial.cli import main

    notebook = "04_transformer"
    first, second = exercises_of(notebook)[:2]
    submission = solved(notebook)
    check = submission.cells[first.check_cell + ex.HEADER_CELLS]
    check.source = check.source.replace("assert ok", "pass")  # edits outside the exercise cells do not count
    check.outputs = [nbformat.v4.new_output("stream", name="stdout", text="anything\n")]
    submission.cells[second.solution_cell + ex.HEADER_CELLS].metadata = {}  # found by its cell id then
    (tmp_path / "alice").mkdir()
    nbformat.write(submission, tmp_path / "alice" / f"{notebook}.ipynb")
    main(["make-exercises", "--answers", str(tmp_path / "alice" / f"{notebook}.ipynb"), "--out", str(tmp_path / "graded")])
    graded, release = nbformat.read(tmp_path / "graded" / f"{notebook}.ipynb", as_version=4), released(notebook)
    for i, (a, b) in enumerate(zip(graded.cells, release.cells)):
        if i in (first.solution_cell + ex.HEADER_CELLS, second.solution_cell + ex.HEADER_CELLS):
            assert a.source == exercises_of(notebook)[[first.solution_cell, second.solution_cell].index(
                i - ex.HEADER_CELLS)].source
        else:
            assert a == b
    with pytest.raises(ValueError, match="no exercise notebook"):
        ex.fill_in_answers([tmp_path / "alice" / "99_unknown.ipynb"], tmp_path / "graded")


# -- exercise notebooks are not part of `make test`, but a student can run one ----------------------
def test_plain_pytest_skips_the_exercise_notebooks_but_an_explicit_path_runs_one():
    def collect(*args):
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbval-lax", *args]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300).stdout

    assert "exercises/" not in collect("notebooks")
    name = NOTEBOOKS[0]
    cells = collect(f"notebooks/exercises/{name}.ipynb")
    assert f"notebooks/exercises/{name}.ipynb::Cell 0" in cells


# -- run in a kernel ------------------------------------------------------------------------------
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_as_released_nbval_fails_in_the_exercise_and_check_cells_only(notebook, tmp_path):
    nb = released(notebook)
    numbers = code_numbers(nb)
    expected = set()
    for e in exercises_of(notebook):
        expected.add(numbers[e.check_cell + ex.HEADER_CELLS])
        if e.raises_at_top_level:
            expected.add(numbers[e.solution_cell + ex.HEADER_CELLS])
    result = run_nbval(EXERCISE_DIR / f"{notebook}.ipynb", tmp_path / "junit.xml", environment(None))
    assert len(result) == len(numbers), "every code cell ran"
    assert {n for n, passed in result.items() if not passed} == expected


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_filled_in_with_the_solutions_it_is_the_solution_notebook(notebook):
    """Filled in with the solutions, the exercise notebook runs the solution notebook's code and
    expects its checked outputs, cell for cell, after the header; so the nbval run of the solution
    notebook itself (a test of `make test`) is the run of the filled-in copy, and this test need not
    execute it a second time. The header's set-up cell only sets VAR_TUTORIAL_ROOT; the released
    run above executes it."""
    nb, source = solved(notebook), nbformat.read(ex.NOTEBOOKS_DIR / f"{notebook}.ipynb", as_version=4)
    header = nb.cells[: ex.HEADER_CELLS]
    assert [c.cell_type for c in header] == ["markdown", "code"] and "VAR_TUTORIAL_ROOT" in header[1].source
    cells = nb.cells[ex.HEADER_CELLS:]
    assert len(cells) == len(source.cells), f"{notebook}: regenerate the exercises"
    checks = {e.check_cell for e in exercises_of(notebook)}
    for i, (mine, theirs) in enumerate(zip(cells, source.cells)):
        assert mine.cell_type == theirs.cell_type, (notebook, i)
        lines = mine.source.split("\n")
        if i in checks:  # the one line the release adds under the marker names the exercise
            lines = [line for line in lines if not line.startswith("# The check of exercise ")]
        assert "\n".join(lines) == theirs.source, f"{notebook}, cell {i}: not the solution notebook's code"
        if mine.cell_type == "code" and any(line.strip() == ex.CHECK_MARKER for line in theirs.source.split("\n")):
            assert mine.outputs == ex.coalesce_streams(theirs.outputs), f"{notebook}, cell {i}: other expected output"


class Kernel:
    """One kernel of this Python, for running cells one by one and reading what they print."""

    def __init__(self, cwd: Path, env: dict):
        import ipykernel.kernelspec
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

        class ThisPython(KernelSpecManager):
            def get_kernel_spec(self, kernel_name):
                return KernelSpec(resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict())

        self.km = KernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
        self.km.start_kernel(cwd=str(cwd), env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str) -> tuple[str, str, list[str]]:
        """(status 'ok' or 'error', what it printed to stdout, errors)."""
        stdout, errors = [], []

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                stdout.append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")

        reply = self.kc.execute_interactive(code, output_hook=hook, timeout=900)
        return reply["content"]["status"], "".join(stdout), errors

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def sanitizer():
    cfg = configparser.ConfigParser()
    cfg.read(SANITIZE)
    rules = [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]

    def clean(text: str) -> str:
        for regex, replace in rules:
            text = regex.sub(replace, text)
        return text

    return clean


def _solution_text(notebook: str, id_: str) -> str:
    (e,) = [e for e in exercises_of(notebook) if e.id == id_]
    return e.source.split(ex.BEGIN, 1)[1].split(ex.END, 1)[0]


def test_every_exercise_has_a_mutation_that_changes_its_solution():
    assert {(m[0], m[1]) for m in MUTATIONS} == {(e.notebook, e.id) for e in EXERCISES}
    for notebook, id_, old, new, *_ in MUTATIONS + EQUIVALENTS:
        assert _solution_text(notebook, id_).count(old) == 1 and old != new, (notebook, id_, old)


def first_failure(errors: list[str]) -> str | None:
    """The name of the first failed comparison, from a check's CheckFailed error (None: another error)."""
    if len(errors) != 1 or not errors[0].startswith("CheckFailed: "):
        return None
    return errors[0].split("\n", 1)[0].split("; the first: ", 1)[1]


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_a_wrong_answer_that_runs_fails_its_check(notebook):
    """One kernel per notebook runs its cells in order; at each exercise, first every mutation of the
    solution and the check, which must fail with CheckFailed at the comparison the mutation names,
    and whose message shows the student's value and the expected one; then every equivalent answer
    and the check, which must pass; then the true solution and the check, whose printed text must be
    the expected output."""
    nb, clean = solved(notebook), sanitizer()
    exercises = {e.solution_cell + ex.HEADER_CELLS: e for e in exercises_of(notebook)}
    checks = {e.check_cell + ex.HEADER_CELLS for e in exercises.values()}
    kernel = Kernel(EXERCISE_DIR, environment(None))
    try:
        for i, cell in enumerate(nb.cells[: max(checks) + 1]):
            if cell.cell_type != "code" or i in checks:
                continue
            if i in exercises:
                e = exercises[i]
                check = nb.cells[e.check_cell + ex.HEADER_CELLS]
                expected = clean("".join(o.text for o in check.outputs if o.get("name") == "stdout"))
                mutations = [m[2:] for m in MUTATIONS if m[:2] == (notebook, e.id)]
                assert mutations, f"{notebook}: add a wrong answer for exercise {e.id} to MUTATIONS"
                for old, new, reason in mutations:
                    status, _, errors = kernel.run(cell.source.replace(old, new))
                    assert status == "ok", f"the mutation {new!r} of {e.id} does not even run: {errors}"
                    status, printed, errors = kernel.run(check.source)
                    assert status == "error", f"{notebook}: the check of {e.id} passes the wrong answer {new!r}"
                    failed = first_failure(errors)
                    assert failed is not None, f"{notebook}, {e.id}, {new!r}: the check fails, but not by its verdict: {errors}"
                    assert re.search(reason, failed), \
                        f"{notebook}, {e.id}, {new!r}: the check's first failure is {failed!r}, not {reason!r}"
                    assert "your code gives" in errors[0] and "expected" in errors[0], errors[0]
                    assert printed.strip(), f"{notebook}: the check of {e.id} prints nothing for a wrong answer"
                for old, new in [m[2:] for m in EQUIVALENTS if m[:2] == (notebook, e.id)]:
                    for source in (cell.source.replace(old, new), check.source):
                        status, printed, errors = kernel.run(source)
                        assert status == "ok", f"{notebook}, {e.id}: the right answer {new!r} fails: {errors}"
                    assert clean(printed) == expected, f"{notebook}, {e.id}, {new!r}: the check prints other text"
                for source in (cell.source, check.source):
                    status, printed, errors = kernel.run(source)
                    assert status == "ok", f"{notebook}, {e.id}: {errors}"
                assert clean(printed) == expected, f"{notebook}, {e.id}: the solution's check prints other text"
            else:
                status, _, errors = kernel.run(cell.source)
                assert status == "ok", f"{notebook}, cell {i}: {errors}"
    finally:
        kernel.close()


def test_a_failing_check_names_the_comparison_and_shows_both_values():
    import torch

    check = ex.Check("cfg")
    assert check.compare("equal forms", torch.tensor([1.0 + 2e-7, 5.0]), torch.tensor([1.0, 5.0]))
    assert not check.compare("K = 10, scale 3", torch.tensor([1.5, 2.0]), torch.tensor([1.0, 2.0]))
    assert not check.compare("a shape", torch.zeros(2), torch.zeros(3))
    assert check.compare("-inf at the same places", torch.tensor([float("-inf"), 1.0]), torch.tensor([float("-inf"), 1.0]))
    assert not check.compare("-inf elsewhere", torch.tensor([1.0, float("-inf")]), torch.tensor([float("-inf"), 1.0]))
    assert not check.compare("tokens", torch.tensor([1, 2]), torch.tensor([1, 3]))
    with pytest.raises(ex.CheckFailed) as failed:
        check.verdict()
    message = str(failed.value)
    assert message.split("\n")[0].endswith("the first: K = 10, scale 3")
    assert "your code gives  tensor (2,) float32 [1.5, 2.0]" in message and "expected         tensor (2,) float32 [1.0, 2.0]" in message
    # the tolerance follows the dtype and the magnitude: 64 ulps of the largest value
    assert ex.same(torch.tensor([1000.0 + 0.005]), torch.tensor([1000.0]))
    assert not ex.same(torch.tensor([1.0 + 1e-4]), torch.tensor([1.0]))
    assert not ex.same(torch.tensor([1.0 + 1e-12], dtype=torch.float64) + 1e-13, torch.tensor([1.0], dtype=torch.float64) + 1e-11)
