r"""The lecture's table as text: name, equation, derivative, monotonic, ≈ x near 0, range.

Generated from the classes (their ``equation``, ``derivative``, ``monotonic``,
``identity_near_origin``, ``range`` and ``note``), so the table cannot drift from the code.
The plain-text form fits a terminal of ``width`` columns (100 by default): each row shows the
equation on its first line and the derivative below it, long formulas wrapped between their
cases; the Markdown form keeps one line per row.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

from thetanet.activations.base import ActivationFunction
from thetanet.activations.registry import get

#: The table's columns (the Markdown form has them all).
COLUMNS = ("name", "equation", "derivative", "monotonic", "≈x near 0", "range")
#: The plain-text form puts equation and derivative in one column, one under the other.
TEXT_COLUMNS = ("name", "equation / derivative", "monotonic", "≈x near 0", "range")
DEFAULT_WIDTH = 100
_GAP = "  "
_INDENT = "  "  # continuation lines of a wrapped formula
_NBSP = "\u00a0"


def _num(v: float) -> str:
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if abs(v - math.pi / 2) < 1e-12:
        return "π/2"
    if abs(v + math.pi / 2) < 1e-12:
        return "−π/2"
    return f"{v:.6g}".replace("-", "−")


def format_range(g: ActivationFunction) -> str:
    """``range`` as text, with the class's brackets: "[0, ∞)", "(−1, 1)", "{0, 1}", …"""
    lo, hi = g.range
    br = g.range_brackets if not g.learnable else "()"
    left = br[0] if not math.isinf(lo) else "("
    right = br[1] if not math.isinf(hi) else ")"
    return f"{left}{_num(lo)}, {_num(hi)}{right}"


def table_rows(names: Sequence[str]) -> list[tuple[str, ...]]:
    """One row of strings per activation (default parameters), in :data:`COLUMNS` order."""
    rows: list[tuple[str, ...]] = []
    for n in names:
        g = get(n)
        label = n
        if n == "soft_exponential":
            label = f"{n} (α={g.alpha:g})"  # type: ignore[attr-defined]
        rows.append((label, g.equation, g.derivative, "yes" if g.monotonic else "no",
                     "yes" if g.identity_near_origin else "no", format_range(g)))
    return rows


def _clauses(text: str) -> list[str]:
    """``text`` cut after each "; " or ", " outside parentheses (a formula's cases)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and ch in ";," and text[i + 1:i + 2] == " ":
            out.append(text[start:i + 1])
            start = i + 2
    return [*out, text[start:]]


def _glue_brackets(text: str) -> str:
    """Spaces inside (…) or […] as no-break spaces, so a wrap never splits "max(0, x)"."""
    out, depth = [], 0
    for ch in text:
        depth += (ch in "([") - (ch in ")]")
        out.append(_NBSP if ch == " " and depth > 0 else ch)
    return "".join(out)


def wrap_formula(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters (unless one bracketed term is longer), broken
    between the formula's cases where possible, else at spaces outside brackets;
    continuation lines are indented."""
    lines: list[str] = []
    for clause in _clauses(text):
        if lines and len(lines[-1]) + 1 + len(clause) <= width:
            lines[-1] += " " + clause
            continue
        # textwrap splits only at ASCII whitespace, so the no-break spaces hold
        lines += [ln.replace(_NBSP, " ") for ln in textwrap.wrap(
            _glue_brackets(clause), width, initial_indent=_INDENT if lines else "",
            subsequent_indent=_INDENT, break_long_words=False, break_on_hyphens=False)]
    return lines


def _text_table(rows: list[tuple[str, ...]], width: int) -> list[str]:
    left = max(len(r[0]) for r in [TEXT_COLUMNS, *rows])
    right = [max(len(r[i]) for r in [TEXT_COLUMNS[-3:], *(r[-3:] for r in rows)])
             for i in range(3)]
    longest = max(len(s) for r in rows for s in (r[1], r[2]))
    # the formula column takes what the others leave, but at least 20 and at most it needs
    room = width - left - sum(right) - len(_GAP) * 4
    fw = max(min(room, longest), 20, len(TEXT_COLUMNS[1]))
    fmt = _GAP.join(f"{{:<{w}}}" for w in (left, fw, *right))
    lines = [fmt.format(*TEXT_COLUMNS).rstrip(),
             fmt.format(*("-" * w for w in (left, fw, *right))).rstrip()]
    for name, eq, deriv, *props in rows:
        formula = wrap_formula(eq, fw) + wrap_formula(deriv, fw)
        lines.append(fmt.format(name, formula[0], *props).rstrip())
        lines += [(" " * (left + len(_GAP)) + f).rstrip() for f in formula[1:]]
    return lines


def format_table(names: Sequence[str], markdown: bool = False,
                 width: int = DEFAULT_WIDTH) -> str:
    """The table of ``names`` (e.g. :data:`LECTURE_TABLE`) with their notes below it.

    Plain text fits ``width`` columns; Markdown has one line per activation.
    """
    rows = table_rows(names)
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        lines = _text_table(rows, width)
    notes = [note for n in names if (note := get(n).note)]
    if notes:
        lines.append("")
        for note in notes:
            lines += [note] if markdown else textwrap.wrap(note, width, subsequent_indent=_INDENT)
    return "\n".join(lines)
