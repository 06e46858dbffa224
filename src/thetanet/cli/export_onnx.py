"""``thetanet export-onnx MODEL --output model.onnx``: a saved model as a standard ONNX file.

MODEL is a directory written by ``Sequential.save`` / ``thetanet.saving.save_model``. The graph is
checked with ``onnx.checker``; ``--verify`` also runs it with onnxruntime on random inputs and
compares with ``model.predict`` (exit status 1 when the difference exceeds ``--tolerance``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thetanet import onnx as _onnx
from thetanet.cli import CLIError, positive_int
from thetanet.files import ModelFileError, write_output
from thetanet.model import load_model


def run(args: argparse.Namespace) -> int:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CLIError("export-onnx needs the onnx package: pip install 'thetanet[onnx]'"
                       ) from None
    out = Path(args.output)
    if not out.parent.is_dir():
        raise CLIError(f"cannot write {out}: directory {out.parent} does not exist")
    if out.is_dir():
        raise CLIError(f"cannot write {out}: it is a directory")
    _refuse_nc_model(Path(args.model))
    try:
        model = load_model(args.model, compile=False)
    except ModelFileError as exc:
        raise CLIError(str(exc)) from None
    try:
        proto = _onnx.to_onnx(model, opset=args.opset)
        write_output(out, proto.SerializeToString())  # atomic, or in place for a FIFO
    except (NotImplementedError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {out} (opset {args.opset}, {len(proto.graph.node)} nodes, input "
          f"[batch, {', '.join(map(str, model.input_shape))}] -> output "
          f"[batch, {model.output_dim}])")
    if args.verify:
        try:
            diff = _onnx.max_abs_diff(model, out, n=args.verify_rows, seed=0)
        except ImportError as exc:
            raise CLIError(str(exc)) from None
        ok = diff <= args.tolerance
        print(f"onnxruntime vs model.predict on {args.verify_rows} random rows: max |diff| = "
              f"{diff:.3g} ({'ok' if ok else 'FAILED'}, tolerance {args.tolerance:g})")
        if not ok:
            return 1
    return 0


def _refuse_nc_model(path: Path) -> None:
    """A noun-compound model directory holds several networks: name them and how to export
    one, instead of "no saved model here"."""
    if not (path / "nc.json").is_file() or (path / "config.json").is_file():
        return
    members = sorted(p.name for p in path.glob("member-*") if (p / "config.json").is_file())
    if not members:
        raise CLIError(f"{path} is a noun-compound model directory (nc.json) without member "
                       "networks to export")
    raise CLIError(f"{path} is a noun-compound model (nc.json), an ensemble of "
                   f"{len(members)} network(s): {', '.join(members)}; export one with "
                   f"`thetanet export-onnx {path / members[0]} -o {members[0]}.onnx` (its "
                   "input is the compound's feature vector, computed by `thetanet nc`, not "
                   "part of the ONNX graph)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export-onnx", help="export a saved model to ONNX (checked, optionally verified)",
        description="Write a saved thetanet model as an ONNX graph of standard operators "
                    "(Dense, Dropout, Maxout, the convolutional and the recurrent layers, "
                    "every activation; float32).")
    p.add_argument("model", metavar="MODEL", help="saved model directory (Sequential.save)")
    p.add_argument("-o", "--output", default="model.onnx",
                   help="the .onnx file to write (default: model.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version, >= 17 "
                                                         "(default: 17)")
    p.add_argument("--verify", action="store_true",
                   help="run the file with onnxruntime and compare with model.predict")
    p.add_argument("--verify-rows", type=positive_int, default=256,
                   help="random input rows for --verify (default: 256)")
    p.add_argument("--tolerance", type=float, default=1e-5,
                   help="largest accepted |difference| for --verify (default: 1e-5)")
    p.set_defaults(func=run)
