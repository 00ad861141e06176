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
