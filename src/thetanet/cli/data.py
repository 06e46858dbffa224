"""``thetanet data``: fetch the data sets (verified) and show what is found where.

``thetanet data fetch tratz|mnist [--data-dir DIR]`` downloads into the data root, which is
resolved as everywhere else (``--data-dir``, else ``$THETANET_DATA``, else
``~/.cache/thetanet``); ``thetanet data where`` lists the Tratz splits, MNIST, WordNet, the
MiniLM table and the feature cache with the folder each was (or would be) found in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from thetanet.cli import CLIError
from thetanet.data.paths import COPY_ENV_VAR, RESOLUTION


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "data", help="fetch the data sets; show what data is found where",
        description=f"Fetch the data sets into the data root ({RESOLUTION}), checksum-"
                    "verified, and show what is found where.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    f = dsub.add_parser(
        "fetch", help="download a data set into the data root (verified, with progress)",
        description="Download a data set into the data root, verified before it is put in "
                    "place (a failed or interrupted download leaves nothing half-written). "
                    "Files already present and valid are kept. tratz: the four splits' "
                    "train.tsv and val.tsv (sha256-checked) into <root>/tratz/<split>/. mnist: "
                    "the four IDX files into <root>/mnist/ (decompressed content checked).")
    f.add_argument("dataset", choices=["tratz", "mnist"], help="tratz or mnist")
    f.add_argument("--data-dir", default=None, help=f"data root (default: {RESOLUTION})")
    f.add_argument("--split", action="append", default=None, metavar="SPLIT",
                   help="only this split (repeatable). tratz: fine_random, fine_lexical, "
                        "coarse_random, coarse_lexical (default: all four); mnist: train, "
                        "t10k (default: both)")
    f.add_argument("--with-test", action="store_true",
                   help="tratz: also the public test.tsv files (format-checked only; this "
                        "project never trains or selects on them)")
    f.add_argument("--from", dest="copy", metavar="DIR|URL", default=None,
                   help="take the files from a copy of a data root instead (a folder or a "
                        "URL holding tratz/<split>/<part>.tsv and mnist/<file>.gz, the layout "
                        "this command writes), verified by the same checksums (default: "
                        f"${COPY_ENV_VAR} when set)")
    f.add_argument("--mirror", metavar="URL", default=None,
                   help="download from this base URL instead (tratz: a copy of the panic "
                        "repository's classification/data folder; mnist: a folder with the "
                        "four .gz files)")
    f.add_argument("--overwrite", action="store_true",
                   help="replace existing files that fail verification")
    f.add_argument("-q", "--quiet", action="store_true", help="no progress; errors only")
    f.set_defaults(func=cmd_fetch)
    w = dsub.add_parser("where", help="show what data is found where",
                        description="List the data root and where each data set, WordNet, "
                                    "the MiniLM table and the feature cache are found, and "
                                    "how to get what is missing.")
    w.add_argument("--data-dir", default=None, help=f"data root (default: {RESOLUTION})")
    w.add_argument("--json", action="store_true", help="print JSON")
    w.set_defaults(func=cmd_where)
    p.set_defaults(func=lambda args: _missing_action(p))


def _missing_action(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


# -- fetch --------------------------------------------------------------------------------------


def cmd_fetch(args: argparse.Namespace) -> int:
    from thetanet.data.fetch import FetchError
    from thetanet.data.idx import IdxFormatError
    from thetanet.data.paths import data_root

    fetch = _fetch_tratz if args.dataset == "tratz" else _fetch_mnist
    _resolve_copy(args)
    try:
        lines = fetch(args)
    except FetchError as exc:
        raise CLIError(_offline_message(exc, args)) from None
    except (IdxFormatError, ValueError) as exc:  # ChecksumError, DataFormatError
        raise CLIError(str(exc).replace("overwrite=True", "--overwrite")) from None
    except OSError as exc:  # the data root is not writable (e.g. the shared read-only copy)
        where = exc.filename or data_root(args.data_dir)
        raise CLIError(f"cannot write to {where}: {exc.strerror or exc}; choose a writable "
                       f"data root with --data-dir DIR (or THETANET_DATA)") from None
    for line in lines:
        print(line)
    return 0


def _fetch_tratz(args: argparse.Namespace) -> list[str]:
    from thetanet.data import tratz

    splits = _choose(args.split, tratz.SPLITS, "tratz split")
    parts = ("train", "val", "test") if args.with_test else ("train", "val")
    kw: dict[str, Any] = {"base_url": args.mirror} if args.mirror else {}
    if args.copy:
        kw = {"copy": args.copy}
    lines = []
    for split in splits:
        before = {p for p in parts if (tratz.split_dir(split, args.data_dir) / f"{p}.tsv")
                  .is_file()}
        d = tratz.download_split(split, args.data_dir, parts=parts, overwrite=args.overwrite,
                                 progress=not args.quiet, **kw)
        names = ", ".join(f"{p}.tsv" for p in parts)
        state = ("already in" if len(before) == len(parts) and not args.overwrite
                 else "fetched into")
        if args.copy and state == "fetched into":
            state = f"fetched from {args.copy} ({args.copy_origin}) into"
        lines.append(f"tratz {split}: {names} {state} {d} (verified)")
    return lines


def _fetch_mnist(args: argparse.Namespace) -> list[str]:
    from thetanet.data import idx

    splits = _choose(args.split, tuple(idx.MNIST_FILES), "MNIST split")
    mirrors = [args.mirror] if args.mirror else list(idx.MNIST_MIRRORS)
    if args.copy:
        from thetanet.data.paths import copy_base_url

        mirrors = [f"{copy_base_url(args.copy)}/mnist"]
    d = idx.download_mnist(splits, args.data_dir, mirrors=mirrors, overwrite=args.overwrite,
                           progress=not args.quiet)
    return [f"mnist {s}: {', '.join(f'{n}.gz' for n in idx.MNIST_FILES[s])} in {d}"
            for s in splits]


def _resolve_copy(args: argparse.Namespace) -> None:
    """``--from``, else ``$THETANET_DATA_FROM`` (remembered as where it came from)."""
    args.copy_origin = "--from" if args.copy else None
    if args.copy is None and args.mirror is None and os.environ.get(COPY_ENV_VAR):
        args.copy, args.copy_origin = os.environ[COPY_ENV_VAR], f"${COPY_ENV_VAR}"
    if args.copy and args.mirror:
        raise CLIError("--mirror and --from both say where to fetch from; give one")


def _command(args: argparse.Namespace, source: bool = True) -> str:
    """The fetch command as given (its options repeated; ``source``: with ``--mirror``), for
    hints."""
    cmd = ["thetanet data fetch", args.dataset]
    cmd += [f"--split {s}" for s in dict.fromkeys(args.split or [])]
    cmd += ["--with-test"] if getattr(args, "with_test", False) else []
    cmd += [f"--data-dir {args.data_dir}"] if args.data_dir else []
    cmd += [f"--mirror {args.mirror}"] if args.mirror and source else []
    return " ".join(cmd)


def _offline_message(exc: Any, args: argparse.Namespace) -> str:
    """One line: what failed, every file still missing and where it goes, and the ways to
    get them (the command as given, a copy of a data root, by hand)."""
    from thetanet.data import idx, tratz
    from thetanet.data.paths import data_root, data_root_origin

    root = data_root(args.data_dir)
    if args.dataset == "tratz":
        parts = ("train", "val", "test") if args.with_test else ("train", "val")
        splits = _choose(args.split, tratz.SPLITS, "tratz split")
        missing = [str(p.relative_to(root / "tratz"))
                   for p in tratz.missing_files(splits, parts, args.data_dir)]
        folder, layout = root / "tratz", "tratz/<split>/<part>.tsv"
    else:
        splits = _choose(args.split, tuple(idx.MNIST_FILES), "MNIST split")
        missing = [f"{n}.gz" for s in splits for n in idx.MNIST_FILES[s]
                   if idx.find_mnist_file(n, args.data_dir) is None]
        folder, layout = root / "mnist", "mnist/<file>.gz"
    source = f" (from {args.copy_origin})" if args.copy else ""
    return (f"could not download {exc.url}{source}: {exc.reason}. Missing {len(missing)} "
            f"file(s) under {folder}/: {', '.join(missing)}. Get them with `{_command(args)}` "
            f"when online; or from a copy of a data root (a folder or URL holding {layout}): "
            f"`{_command(args, source=False)} --from DIR|URL` (or {COPY_ENV_VAR}=DIR|URL); "
            f"or put them there by hand (data root {root}, from {data_root_origin(args.data_dir)})")


def _choose(given: list[str] | None, known: tuple[str, ...], what: str) -> list[str]:
    if not given:
        return list(known)
    bad = [s for s in given if s not in known]
    if bad:
        raise CLIError(f"unknown {what} {bad[0]!r}; choose from {', '.join(known)}")
    return list(dict.fromkeys(given))


# -- where --------------------------------------------------------------------------------------


def _tratz_status(root: Path) -> dict[str, Any]:
    from thetanet.data import tratz
    from thetanet.data.fetch import sha256_file

    out: dict[str, Any] = {}
    for split in tratz.SPLITS:
        d = root / "tratz" / split
        files = {}
        for part in ("train", "val"):
            p = d / f"{part}.tsv"
            if not p.is_file():
                files[p.name] = "missing"
            else:
                ok = sha256_file(p) == tratz.SHA256[split][part]
                files[p.name] = "ok" if ok else "differs from the published sha256"
        out[split] = {"dir": str(d), "files": files,
                      "ok": all(v == "ok" for v in files.values())}
    return out


def _mnist_status(root: Path) -> dict[str, Any]:
    from thetanet.data import idx

    d = root / "mnist"
    return {"dir": str(d), **{s: all(
        (d / n).is_file() or (d / f"{n}.gz").is_file() for n in names)
        for s, names in idx.MNIST_FILES.items()},
        "verified": {s: idx.mnist_state(s, root) for s in idx.MNIST_FILES}}


def _wordnet_status() -> dict[str, Any]:
    try:
        from thetanet.compounds.wordnet import WordNetMissingError, find_wordnet
    except ImportError as exc:  # pragma: no cover - part of the package
        return {"path": None, "problem": str(exc)}
    try:
        found = find_wordnet()
    except WordNetMissingError as exc:
        return {"path": None, "problem": str(exc)}
    return {"path": str(getattr(found, "path", found)), "problem": None}


def _minilm_status() -> dict[str, Any]:
    from thetanet.compounds.embeddings import EmbeddingsMissingError, resolve_model_dir

    try:
        return {"path": str(resolve_model_dir()), "problem": None}
    except EmbeddingsMissingError as exc:
        return {"path": None, "problem": str(exc)}


def where(data_dir: str | None = None) -> dict[str, Any]:
    """What is found where, as a JSON-ready dict (the content of ``thetanet data where``)."""
    from thetanet.data.paths import CACHE_ENV_VAR, cache_root, data_root, data_root_origin

    root = data_root(data_dir)
    return {
        "data_root": {"path": str(root), "from": data_root_origin(data_dir),
                      "resolution": RESOLUTION},
        "tratz": _tratz_status(root),
        "mnist": _mnist_status(root),
        "wordnet": _wordnet_status(),
        "minilm": _minilm_status(),
        "feature_cache": {"path": str(cache_root() / "features"),
                          "from": f"${CACHE_ENV_VAR}" if os.environ.get(CACHE_ENV_VAR)
                          else "the default"},
    }


def cmd_where(args: argparse.Namespace) -> int:
    from thetanet.data.paths import fetch_command

    info = where(args.data_dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    r = info["data_root"]
    out = [f"data root      {r['path']}  (from {r['from']}; {r['resolution']})"]
    missing = False
    for split, s in info["tratz"].items():
        state = "ok (sha256 verified)" if s["ok"] else ", ".join(
            f"{name} {v}" for name, v in s["files"].items())
        missing |= not s["ok"]
        out.append(f"tratz {split:<15}{s['dir']}: {state}")
    if missing:
        out.append(f"               get the Tratz splits: {fetch_command('tratz', args.data_dir)}")
    m = info["mnist"]
    have = [s for s in ("train", "t10k") if m[s]]
    lack = [s for s in ("train", "t10k") if not m[s]]
    out.append(f"mnist          {m['dir']}: " + ", ".join(
        [f"{s} found" + (" (sha256 verified)" if m["verified"][s] == "ok"
                         else f" but {m['verified'][s]}") for s in have]
        + [f"{s} missing" for s in lack])
        + (f" (get it: {fetch_command('mnist', args.data_dir)})" if lack else ""))
    for label, key in (("WordNet", "wordnet"), ("MiniLM", "minilm")):
        s = info[key]
        out.append(f"{label:<15}{s['path'] or 'not found: ' + s['problem']}")
    c = info["feature_cache"]
    out.append(f"feature cache  {c['path']}  (from {c['from']}; $THETANET_CACHE to change)")
    print("\n".join(out))
    return 0
