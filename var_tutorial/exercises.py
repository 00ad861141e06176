"""Student exercise notebooks, generated from the solution notebooks (nbgrader style).

The solution notebooks (``notebooks/NN_topic.ipynb``) are the one source. A piece the student
should write is an *exercise*: a code cell that starts with a title line and holds the
solution between markers, followed by its *check*, the next code cell, whose output nbval
compares (``# NBVAL_CHECK_OUTPUT``):

    # Exercise residual_step: one step of Algorithm 1, by hand        <- the exercise cell
    def one_step(residual, k):
        ### BEGIN SOLUTION
        ...                                                            <- the solution
        ### END SOLUTION

    # NBVAL_CHECK_OUTPUT                                               <- the check cell: compares
    ...                                                                   with the package, prints
                                                                          what the right answer prints,
                                                                          then gives its verdict (Check)

``make_exercises`` writes, for every solution notebook that has exercises, a copy to
``notebooks/exercises/`` in which each solution becomes ``# YOUR CODE HERE`` +
``raise NotImplementedError()`` (at the indentation of its marker), the exercise cells lose
their outputs, the checked cells keep their expected outputs, and the check cells are locked
(nbgrader metadata: ``solution``/``grade``/``locked``/``grade_id``, and ``editable``/``deletable``
false; a comment under the marker names the exercise). Two cells go in front: how to work and
how to check, and a line pointing the set-up cell at the repository root. Unchecked outputs
(figures, timings) are dropped: the student makes them by running the notebook. The JSON is
deterministic, so regenerating changes no file.

A check cell judges with ``Check`` (bottom of this file): every comparison with the package is
named, floats are compared within a tolerance derived from their dtype and magnitude (so that
every algebraically equal answer passes), and a failing check raises ``CheckFailed`` with, for
each comparison that failed, what the student's code gave and what was expected.

For grading, ``graded_copy`` puts only the exercise cells of a submitted notebook into the
released one, so that the checks and their expected outputs are the release's, whatever the
student did to them.

    python -m var_tutorial make-exercises                                    # notebooks/exercises/
    python -m var_tutorial make-exercises --answers alice/*.ipynb --out graded/alice
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import torch

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
TITLE = re.compile(r"^# Exercise ([a-z][a-z0-9_]*): (.+)$", re.M)
SOLUTION_NOTEBOOK = re.compile(r"^\d\d_\w+\.ipynb$")  # 01_vqvae.ipynb, ...; not the exercises' own folder
HEADER_CELLS = 2  # the cells put in front of every exercise notebook
CHECK_COMMAND = ("pytest --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg "
                 "notebooks/exercises/{name}.ipynb")


@dataclass(frozen=True)
class Exercise:
    notebook: str  # the solution notebook's stem, "02_multiscale_quantizer"
    id: str  # "residual_step": the nbgrader grade_id of the exercise cell ("<id>_check": of its check)
    title: str
    solution_cell: int  # index in the solution notebook's cells (the exercise cell)
    check_cell: int  # index of its check cell
    source: str  # the exercise cell with its solution
    check: str  # the check cell

    @property
    def released(self) -> str:
        """The exercise cell as the student gets it."""
        return strip_solution(self.source, where=f"{self.notebook}, exercise {self.id}")

    @property
    def released_check(self) -> str:
        """The check cell as the student gets it: a line under the marker names its exercise (which
        also shows in nbval's report of a failing cell)."""
        lines = self.check.split("\n")
        at = next(n for n, line in enumerate(lines) if line.strip() == CHECK_MARKER)
        lines.insert(at + 1, f"# The check of exercise {self.id} (locked): a right answer prints the output "
                             "stored below.")
        return "\n".join(lines)

    @property
    def raises_at_top_level(self) -> bool:
        """Whether running the released exercise cell itself fails (its stub is not inside a def)."""
        return f"\n{STUB[1]}" in "\n" + self.released


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace every BEGIN/END SOLUTION region by the stub, at the indentation of its BEGIN line."""
    out, begin_line = [], None
    for n, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin_line is not None:
                raise ValueError(f"{where}: line {n} opens a solution inside the one opened on line {begin_line}")
            begin_line = n
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + s for s in STUB]
        elif marker == END:
            if begin_line is None:
                raise ValueError(f"{where}: line {n} closes a solution that was never opened ({BEGIN!r})")
            begin_line = None
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise ValueError(f"{where}: the solution opened on line {begin_line} is never closed ({END!r})")
    return "\n".join(out)


def _has_line(source: str, text: str) -> bool:
    return any(line.strip() == text for line in source.split("\n"))


def find_exercises(nb, notebook: str) -> list[Exercise]:
    """The exercises of a solution notebook, in order; errors name the cell and what is missing."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    found, ids = [], set()
    for n, i in enumerate(code):
        source = nb.cells[i].source
        if not _has_line(source, BEGIN):
            if _has_line(source, END):
                raise ValueError(f"{notebook}, cell {i}: {END!r} without {BEGIN!r}")
            continue
        where = f"{notebook}, cell {i}"
        title = TITLE.match(source)
        if title is None:
            raise ValueError(f"{where} holds a solution but does not start with a title line: expected "
                             "'# Exercise <id>: <what the student writes>' (id in lower case, letters, digits and _)")
        if title.group(1) in ids:
            raise ValueError(f"{where}: exercise id {title.group(1)!r} is used twice in this notebook")
        strip_solution(source, where)  # the markers pair up
        check = code[n + 1] if n + 1 < len(code) else None
        if check is None or not _has_line(nb.cells[check].source, CHECK_MARKER):
            raise ValueError(f"{where} (exercise {title.group(1)}): the next code cell must be its check, "
                             f"marked {CHECK_MARKER!r}")
        if _has_line(nb.cells[check].source, BEGIN):
            raise ValueError(f"{notebook}, cell {check}: a check cell cannot hold a solution")
        ids.add(title.group(1))
        found.append(Exercise(notebook, title.group(1), title.group(2).strip(), i, check, source,
                              nb.cells[check].source))
    return found


def solution_notebooks(src_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    return sorted(p for p in Path(src_dir).glob("*.ipynb") if SOLUTION_NOTEBOOK.match(p.name))


def all_exercises(src_dir: Path = NOTEBOOKS_DIR) -> list[Exercise]:
    return [e for p in solution_notebooks(src_dir) for e in find_exercises(nbformat.read(p, as_version=4), p.stem)]


# -- the exercise notebook ------------------------------------------------------------------------
def _title_of(nb, notebook: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.split("\n", 1)[0][2:].strip()
    return notebook


def header_cells(nb, notebook: str, exercises: list[Exercise]) -> list:
    rows = "\n".join(f"| `{e.id}` | {e.title} |" for e in exercises)
    pieces = "one piece" if len(exercises) == 1 else f"{len(exercises)} pieces"
    intro = f"""# Exercises · {_title_of(nb, notebook)}

This is notebook [`{notebook}`](../{notebook}.ipynb) with {pieces} of it left for you to write:

| exercise | what you write |
|---|---|
{rows}

Each exercise cell starts with `# Exercise <name>: …` and says `# YOUR CODE HERE`: replace
`raise NotImplementedError()` with your code. The next code cell is its **check** (read-only): it
compares your code with the package's and prints the result; the output stored under it is what a
right answer prints. Run the notebook from the top (quick mode on a CPU).

**Check your work** (save the notebook first), from the repository root:

```bash
{CHECK_COMMAND.format(name=notebook)}
```

Every cell passes when every exercise is right. Until then the exercise and check cells fail, and
pytest shows, for each failing check, your output next to the expected one.

*Generated by `python -m var_tutorial make-exercises` from the solution notebook one folder up:
instructors change that one and regenerate, never this copy.*"""
    setup = """# This copy lives in notebooks/exercises/: the set-up cell below finds the repository (the folder
# holding var_tutorial/) through VAR_TUTORIAL_ROOT, as the solution notebooks one folder up do.
import os
from pathlib import Path

os.environ.setdefault("VAR_TUTORIAL_ROOT", str(next(
    (p for p in (Path.cwd(), *Path.cwd().parents) if (p / "var_tutorial" / "__init__.py").exists()), Path.cwd())))"""
    md = nbformat.v4.new_markdown_cell(intro, id="exercises-header")
    md.metadata = {"editable": False, "deletable": False}
    code = nbformat.v4.new_code_cell(setup, id="exercises-root")
    code.metadata = {"editable": False, "deletable": False}
    return [md, code]


def _nbgrader(grade_id: str, solution: bool) -> dict:
    meta = {"grade": not solution, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if not solution:
        meta["points"] = 1
    return meta


def coalesce_streams(outputs):
    """Join consecutive stdout (stderr) outputs into one, as nbval does before it compares: how a run
    happened to split a cell's printing then does not change the generated file."""
    out = []
    for o in outputs:
        if o.output_type == "stream" and out and out[-1].output_type == "stream" and out[-1].name == o.name:
            out[-1].text += o.text
        else:
            out.append(copy.deepcopy(o))
    return out


def make_exercise_notebook(nb, notebook: str):
    """The student's copy of a solution notebook (a new notebook; nb is left as it was)."""
    exercises = find_exercises(nb, notebook)
    by_solution = {e.solution_cell: e for e in exercises}
    by_check = {e.check_cell: e for e in exercises}
    out = copy.deepcopy(nb)
    out.metadata = {k: out.metadata[k] for k in ("kernelspec", "language_info") if k in out.metadata}
    for i, cell in enumerate(out.cells):
        cell.metadata.pop("execution", None)  # timestamps of the last run
        if cell.cell_type != "code":
            continue
        if i in by_solution:
            e = by_solution[i]
            cell.source = e.released
            cell.metadata["nbgrader"] = _nbgrader(e.id, solution=True)
        elif i in by_check:
            cell.source = by_check[i].released_check
            cell.metadata["nbgrader"] = _nbgrader(by_check[i].id + "_check", solution=False)
            cell.metadata["editable"], cell.metadata["deletable"] = False, False
        if i in by_solution or not _has_line(cell.source, CHECK_MARKER):
            cell.outputs, cell.execution_count = [], None  # only checked outputs are kept: the expected ones
        else:
            cell.outputs = coalesce_streams(cell.outputs)
    out.cells = header_cells(nb, notebook, exercises) + out.cells
    nbformat.validate(out)
    return out


def graded_copy(submitted, released):
    """For grading: the released notebook with the student's answers, i.e. the exercise cells of the
    submitted notebook (found by their nbgrader grade_id, else by cell id). Everything else, the
    check cells and their expected outputs included, comes from the release, so what a student
    changed outside the exercise cells does not count. A missing exercise cell stays unsolved."""
    out = copy.deepcopy(released)
    answers = {}
    for cell in submitted.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for key in (grade_id, cell.get("id")):
            if key is not None:
                answers.setdefault(key, cell.source)
    for cell in out.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers.get(meta["grade_id"], answers.get(cell.get("id"), cell.source))
    return out


def notebook_text(nb) -> str:
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def make_exercises(src_dir: Path = NOTEBOOKS_DIR, out_dir: Path | None = None, verbose: bool = True) -> list[Path]:
    """Write out_dir/<notebook>.ipynb for every solution notebook with exercises; files whose
    content is already right are not touched; exercise notebooks whose solution notebook has
    no exercise any more are removed. Returns the paths of the exercise notebooks."""
    src_dir = Path(src_dir)
    out_dir = Path(out_dir) if out_dir is not None else src_dir / "exercises"
    written = []
    for path in solution_notebooks(src_dir):
        nb = nbformat.read(path, as_version=4)
        exercises = find_exercises(nb, path.stem)
        if not exercises:
            continue
        target = out_dir / path.name
        text = notebook_text(make_exercise_notebook(nb, path.stem))
        changed = not target.exists() or target.read_text(encoding="utf-8") != text
        if changed:
            out_dir.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        written.append(target)
        if verbose:
            print(f"{target}: {len(exercises)} exercise{'s' if len(exercises) > 1 else ''} "
                  f"({', '.join(e.id for e in exercises)})"
                  f"{'' if changed else ', unchanged'}")
    for stale in sorted(out_dir.glob("*.ipynb")) if out_dir.is_dir() else []:
        if stale not in written and SOLUTION_NOTEBOOK.match(stale.name):
            stale.unlink()
            if verbose:
                print(f"{stale}: removed (its solution notebook has no exercises)")
    return written


def fill_in_answers(submissions, out_dir: Path, released_dir: Path = NOTEBOOKS_DIR / "exercises",
                    verbose: bool = True) -> list[Path]:
    """graded_copy of every submitted notebook (named like its exercise notebook) into out_dir."""
    written = []
    for path in map(Path, submissions):
        released = Path(released_dir) / path.name
        if not released.exists():
            raise ValueError(f"{path}: no exercise notebook {released} to grade it against (the file names must match)")
        nb = graded_copy(nbformat.read(path, as_version=4), nbformat.read(released, as_version=4))
        target = Path(out_dir) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(notebook_text(nb), encoding="utf-8")
        written.append(target)
        if verbose:
            print(f"{target}: {path}'s exercise cells in the released {released.name}")
    return written


# -- what a check cell uses -----------------------------------------------------------------------
ULPS = 64  # the default tolerance: 64 units in the last place of the largest value compared


def tolerance(want: torch.Tensor, ulps: float = ULPS) -> float:
    """How far a right answer may lie from the package's value, element by element: `ulps` units in
    the last place (eps of the dtype) of the largest |value| of `want` (at least 1). Two formulas
    that are equal in algebra round differently: uncond + (1 + t)(cond - uncond) and
    (1 + t) cond - t uncond differ by a few ulps of their largest term, 7.6e-6 for logits of size
    about 10 in float32 (eps 1.2e-7). A computation of many steps (convolutions, a transformer)
    accumulates more rounding, and its check passes a larger `ulps`."""
    finite = want[torch.isfinite(want)]
    largest = finite.abs().max().item() if finite.numel() else 0.0
    return ulps * torch.finfo(want.dtype).eps * max(1.0, largest)


def same(mine, want, ulps: float = ULPS) -> bool:
    """Whether the student's value equals the package's: tensors of the same shape, integer and bool
    tensors exactly, floats within tolerance(want, ulps) (infinities must sit at the same places);
    lists and tuples element by element; anything else with ==."""
    if isinstance(want, (list, tuple)):
        return (isinstance(mine, (list, tuple)) and len(mine) == len(want)
                and all(same(a, b, ulps) for a, b in zip(mine, want)))
    if not isinstance(want, torch.Tensor):
        return bool(mine == want)
    if not isinstance(mine, torch.Tensor) or mine.shape != want.shape:
        return False
    if not want.is_floating_point():
        return torch.equal(mine.to(want.dtype), want)
    mine = mine.to(want.dtype)
    inf_mine, inf_want = ~torch.isfinite(mine), ~torch.isfinite(want)
    if not torch.equal(inf_mine, inf_want) or not torch.equal(mine[inf_mine], want[inf_want]):
        return False
    return bool(((mine - want)[~inf_want].abs() <= tolerance(want, ulps)).all())


def describe(x, limit: int = 8) -> str:
    """A short text of a value for a failure message: a tensor's shape, dtype and first values."""
    if isinstance(x, torch.Tensor):
        values = x.detach().flatten()[:limit].tolist()
        values = [round(v, 5) if isinstance(v, float) else v for v in values]
        more = ", ..." if x.numel() > limit else ""
        return f"tensor {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')} [{str(values)[1:-1]}{more}]"
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor):
        return "[" + ", ".join(describe(v, limit=3) for v in x[:4]) + (", ..." if len(x) > 4 else "") + "]"
    text = repr(x)
    return text if len(text) <= 300 else text[:300] + " ..."


class CheckFailed(AssertionError):
    """A check cell's verdict: which comparisons failed, what the student's code gave, what was expected."""


class Check:
    """The comparisons of one check cell with the package. Each ``compare`` (or ``expect``) is named
    by what it compares ("guided logits, K = 10, scale 3"); ``verdict`` at the end of the cell raises
    CheckFailed, whose message lists every failed comparison, first the first, with both values:

        check = Check("cfg")
        ok = check.compare("K = 10, scale 3", mine, want)     # True or False, printed by the cell
        ...
        check.verdict()
    """

    def __init__(self, exercise: str):
        self.exercise, self.failed = exercise, []

    def compare(self, what: str, mine, want, ulps: float = ULPS) -> bool:
        """same(mine, want, ulps), remembered under its name when it fails."""
        try:
            ok = same(mine, want, ulps)
        except Exception as error:  # a value of the wrong kind: a failed comparison, not a crash of the check
            ok, mine = False, f"{describe(mine)} ({type(error).__name__}: {error})"
        return self.expect(ok, what, mine, want)

    def expect(self, ok: bool, what: str, mine="", want="") -> bool:
        """A condition of the check's own (a gradient that must be None, a shape), named like a comparison."""
        if not ok:
            self.failed.append((what, mine, want))
        return bool(ok)

    def verdict(self) -> None:
        if not self.failed:
            return
        lines = [f"exercise {self.exercise}: {len(self.failed)} comparison{'s' * (len(self.failed) > 1)} "
                 f"with the package failed; the first: {self.failed[0][0]}"]
        for what, mine, want in self.failed[:6]:
            lines += [f"  {what}:", f"    your code gives  {mine if isinstance(mine, str) else describe(mine)}",
                      f"    expected         {want if isinstance(want, str) else describe(want)}"]
        if len(self.failed) > 6:
            lines.append(f"  ... and {len(self.failed) - 6} more")
        raise CheckFailed("\n".join(lines))
