"""``thetanet activations``: the lecture's activation table, generated from the registry.

Prints name, equation, derivative, monotonic, ≈ x near 0 and range for each activation, straight
from the classes in :mod:`thetanet.activations`; ``--plot FILE.png`` draws f and f' of the
twelve table rows on one figure (the table's "Plot" column).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import numpy as np

from thetanet import activations as _act
from thetanet.activations.table import format_range, format_table, table_rows
from thetanet.cli import CLIError
from thetanet.files import write_output

__all__ = ["format_range", "format_table", "plot", "table_rows"]

def plot(path: str | Path, names: tuple[str, ...] = _act.LECTURE_TABLE) -> Any:
    """Draw f (solid) and f' (dashed) of each activation, one panel each; save a PNG.

    Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend). Returns
    the figure.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise CLIError("--plot needs matplotlib: pip install 'thetanet[plot]'") from exc
    cols = 4
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(names):]:
        fig.delaxes(ax)
    for ax, n in zip(axes, names):
        width = 12.0 if n in ("sinc", "sinusoid") else 4.0
        x = np.linspace(-width, width, 801)
        variants = [({"alpha": -0.5}, "α=−0.5"), ({"alpha": 0.5}, "α=0.5")] \
            if n == "soft_exponential" else [({}, "")]
        for (params, tag), color in zip(variants, ("C0", "C2")):
            g = _act.get(n, **params)
            xs = x
            if n == "soft_exponential" and params["alpha"] < 0:
                xs = x[x > 1 / params["alpha"] - params["alpha"] + 0.05]  # its domain
            sep = " " if tag else ""
            ax.plot(xs, g.f(xs), color=color, label=f"f{sep}{tag}")
            ax.plot(xs, g.df(xs), color=color, linestyle="--", label=f"f'{sep}{tag}")
        ax.set_title(n)
        ax.axhline(0, color="0.8", linewidth=0.8, zorder=0)
        ax.axvline(0, color="0.8", linewidth=0.8, zorder=0)
        if n == "soft_exponential":
            ax.set_ylim(-4, 6)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Activation functions f (solid) and their derivatives f' (dashed)")
    path = Path(path)
    if not path.parent.is_dir():
        raise CLIError(f"cannot write {path}: directory {path.parent} does not exist")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    write_output(path, buf.getvalue())  # a user-named file: atomic, or in place for a FIFO
    return fig


def run(args: argparse.Namespace) -> int:
    names = list(_act.LECTURE_TABLE)
    if args.all:
        names += [n for n in _act.names() if n not in names]
    print(format_table(names, markdown=args.markdown))
    if args.plot:
        fig = plot(args.plot)
        print(f"\nwrote {args.plot} ({len(fig.axes)} panels)")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "activations", help="print the activation-function table (and plot it)",
        description="The lecture's table of activation functions, generated from the code: "
                    "equation, derivative, monotonic, f(x) ≈ x near 0, range.")
    p.add_argument("--all", action="store_true",
                   help="also list softmax and the learnable PReLU and APL")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--plot", metavar="FILE.png", help="draw f and f' for the twelve on one PNG")
    p.set_defaults(func=run)
