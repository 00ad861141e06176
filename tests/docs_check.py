"""What tests/test_docs.py needs to read a doc: its prose, its numbers, and where a claim sits.

A doc's *prose* is everything but its code: fenced code blocks, inline code, generated blocks
(`<!-- begin: ... -->` ... `<!-- end -->`, checked against report.py instead), HTML comments and
the targets of links and images. Every number in the prose must be accounted for, by a claim
(a fragment of the doc whose value is computed from results/*.json), by a checked quotation (a
notebook's runtime) or by a structural entry (a number that is not a measurement).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]

# spans that are not prose; the order matters only for overlapping matches
MASKS = [
    re.compile(r"^```.*?^```", re.S | re.M),  # fenced code
    re.compile(r"^<!-- begin: [^>]*-->\n.*?^<!-- end -->", re.S | re.M),  # generated blocks
    re.compile(r"<!--.*?-->", re.S),  # comments
    re.compile(r"`[^`\n]+(?:\n[^`\n]+)?`"),  # inline code, which may wrap once
    re.compile(r"\]\([^)\s]+\)"),  # link and image targets
]
# a number: digits not glued to a word (H200, cifar10, r_1 and bf16 are names, not numbers),
# with thousands separators and decimals, and a sign
NUMBER = re.compile(r"(?<![\w.])[−-]?\d+(?:,\d{3})*(?:\.\d+)?(?:e[−-]?\d+)?(?![\w])")


def masked(text: str) -> list[tuple[int, int]]:
    spans = []
    for pattern in MASKS:
        spans += [m.span() for m in pattern.finditer(text)]
    return spans


def inside(pos: int, spans) -> bool:
    return any(a <= pos < b for a, b in spans)


def numbers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, number) for every number in the prose of a doc."""
    hidden = masked(text)
    return [(m.start(), m.end(), m.group()) for m in NUMBER.finditer(text) if not inside(m.start(), hidden)]


def normalized(text: str) -> tuple[str, list[int]]:
    """The text with every run of white space made one space (a sentence may wrap anywhere), and
    for every character of it its index in the original text."""
    out, where, space = [], [], False
    for i, ch in enumerate(text):
        if ch.isspace():
            if not space:
                out.append(" ")
                where.append(i)
            space = True
        else:
            out.append(ch)
            where.append(i)
            space = False
    where.append(len(text))
    return "".join(out), where


def find_all(text: str, fragment: str) -> list[tuple[int, int]]:
    """Every place the fragment occurs in the text, white space normalised, as spans of the text."""
    norm, where = normalized(text)
    frag = normalized(fragment)[0].strip()
    spans, start = [], 0
    while (i := norm.find(frag, start)) >= 0:
        spans.append((where[i], where[i + len(frag) - 1] + 1))
        start = i + 1
    return spans


def find_pattern(text: str, pattern: str) -> list[tuple[int, int]]:
    norm, where = normalized(text)
    return [(where[m.start()], where[m.end() - 1] + 1) for m in re.finditer(pattern, norm) if m.end() > m.start()]


class ProseFormatter(string.Formatter):
    """str.format, with the minus sign of prose (−) for negative numbers."""

    def format_field(self, value, format_spec):
        out = super().format_field(value, format_spec)
        return "−" + out[1:] if isinstance(value, (int, float)) and out.startswith("-") else out


def sci(x: float, digits: int) -> str:
    """1.15e-3, as the docs write small numbers (Python would write 1.15e-03)."""
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class Claim:
    """A fragment of a doc, with format fields where its values go, and the function that
    computes those values from the results files (rounding: the format spec of each field)."""
    doc: str
    text: str
    values: Callable[[], tuple]

    def rendered(self) -> str:
        values = self.values()
        values = values if isinstance(values, tuple) else (values,)
        return ProseFormatter().format(self.text, *values)


@dataclass(frozen=True)
class Structural:
    """A number in the prose that is not a measurement: a pattern of the doc (None: of every doc)
    and why it needs no results file."""
    doc: str | None
    pattern: str
    reason: str


# -- the notebooks' runtimes, from their stored run --------------------------------------------------
RUNTIME_LEAD = re.compile(r"\*\*Runtime:\*\* about \d+(?:\.\d+)? (?:s|min)\b")
README_ROW = re.compile(r"(?m)^(\| `(\d\d_\w+)` \|[^|\n]*\|)([^|\n]*)(\|[^|\n]*\|)$")  # its CPU column
INSTRUCTORS_ROW = re.compile(r"(?m)^(\| `(\d\d_\w+)` \|[^|\n]*\|)([^|\n]*)(\|)$")  # the last column
MAX_SECONDS = 240  # every notebook runs in at most 4 minutes on a 2-core CPU in quick mode


def stored_seconds(notebook: Path) -> float:
    """How long the run that stored a notebook's outputs took: from the first code cell's start to
    the last one's reply, as nbconvert recorded them (cell metadata `execution`)."""
    import json
    from datetime import datetime

    cells = [c for c in json.loads(Path(notebook).read_text())["cells"] if c["cell_type"] == "code"]
    stamps = [c.get("metadata", {}).get("execution", {}) for c in cells]
    assert all("iopub.execute_input" in s and "shell.execute_reply" in s for s in stamps), \
        f"{Path(notebook).name}: a code cell has no execution time: execute the notebook with nbconvert"

    def t(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return (t(stamps[-1]["shell.execute_reply"]) - t(stamps[0]["iopub.execute_input"])).total_seconds()


def runtime_text(seconds: float) -> str:
    """How the docs state a runtime: to 5 s under a minute and a half, else to half a minute."""
    if seconds < 90:
        return f"about {max(5, 5 * round(seconds / 5))} s"
    return f"about {round(seconds / 30) / 2:g} min"


def update_runtimes(root: Path = ROOT) -> list[Path]:
    """Write the measured runtimes into every notebook's **Runtime:** cell, the README's notebook
    table and the instructors' table of exercise notebooks (run after executing notebooks: `python tests/docs_check.py`). Returns the files changed."""
    import nbformat

    changed, measured = [], {}
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        measured[path.stem] = text = runtime_text(stored_seconds(path))
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells[:8] if c.cell_type == "markdown" and "**Runtime:**" in c.source)
        new = RUNTIME_LEAD.sub(f"**Runtime:** {text}", cell.source, count=1)
        if new != cell.source:
            cell.source = new
            nbformat.write(nb, path)
            changed.append(path)
    for doc, row in (("README.md", README_ROW), ("docs/instructors.md", INSTRUCTORS_ROW)):
        body = (root / doc).read_text()
        new = row.sub(lambda m: f"{m.group(1)} {measured.get(m.group(2), m.group(3).strip())} {m.group(4)}", body)
        if new != body:
            (root / doc).write_text(new)
            changed.append(root / doc)
    return changed


if __name__ == "__main__":
    for path in update_runtimes():
        print(f"{path}: runtime updated")
