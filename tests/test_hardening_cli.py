"""Issue 13 through the command line: ``thetanet nc predict / train``, ``thetanet digits``.

A CLI user never sees a traceback for bad input, files or arguments (exit 2, one line naming
what is wrong), outputs are written by the rule of ``thetanet.files.open_output``, prediction
streams, and nothing outside the named outputs is written. Everything here goes through the
command line only, so it runs against the original layout as well (where it fails).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SPLIT = "coarse_lexical"
MODEL_ARGS = ["--features", "minilm-static", "--max-epochs", "3", "--no-refit", "--quiet"]


def _limit_memory() -> None:  # in the child: the original code allocates without bound
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


def run_cli(*args: str, stdin: bytes | str | None = None, env: dict | None = None,
            timeout: int = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", "thetanet.cli", *args],
            input=stdin.encode() if isinstance(stdin, str) else stdin, capture_output=True,
            timeout=timeout, env=env, cwd=cwd, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"thetanet {' '.join(args)[:200]} hung for {timeout} s")


def one_line_error(r: subprocess.CompletedProcess, *fragments: str) -> str:
    """``r`` failed with exit 2 and exactly one stderr line holding every fragment."""
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 2, (r.returncode, err[-1500:])
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err[-1500:]
    for f in fragments:
        assert f in err, (f, err)
    return err


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` → its kind and content hash (a snapshot)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory, data_root):
    """A MiniLM model (its per-word rows disk-cached) on coarse_lexical."""
    pytest.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("hard")
    out, cache = root / "model", root / "cache"
    r = run_cli("nc", "train", "--split", SPLIT, "--data-dir", str(data_root), "--cache-dir",
                str(cache), "--out", str(out), *MODEL_ARGS)
    if r.returncode == 2 and b"MiniLM" in r.stderr:
        pytest.skip("the MiniLM table is not installed")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return out, cache


@pytest.fixture
def work(model, tmp_path):
    """A private copy of the model and its cache, and the predict command for them."""
    out, cache = model
    shutil.copytree(out, tmp_path / "model")
    shutil.copytree(cache, tmp_path / "cache")

    def predict(*args: str, stdin: bytes | str | None = None) -> subprocess.CompletedProcess:
        return run_cli("nc", "predict", "--model", str(tmp_path / "model"), "--cache-dir",
                       str(tmp_path / "cache"), *args, stdin=stdin)

    return tmp_path, predict


# --------------------------------------------------------------------------------------------
# 1-2. Words
# --------------------------------------------------------------------------------------------

def test_nul_word_is_refused_and_the_cache_stays_as_it_was(work):
    """Item 1: ``olive\\0<TAB>oil`` is a usage error naming file:line; the cache and every
    later prediction are unchanged."""
    tmp, predict = work
    before = predict(stdin="olive oil\nmorning meeting\n")
    assert before.returncode == 0
    cache = tree(tmp / "cache")
    bad = tmp / "bad.tsv"
    bad.write_bytes(b"olive\x00\toil\n")
    one_line_error(predict("--input", str(bad)), f"{bad}:1", "U+0000")
    assert predict(stdin="olive oil\nmorning meeting\n").stdout == before.stdout
    assert tree(tmp / "cache") == cache


def test_huge_word_is_refused_with_the_bound(work):
    """Item 2: a 20,000-character word is refused, naming the bound; the cache does not
    grow."""
    tmp, predict = work
    cache = tree(tmp / "cache")
    one_line_error(predict(stdin="x" * 20_000 + " oil\n"), "<stdin>:1", "100 characters")
    assert tree(tmp / "cache") == cache


# --------------------------------------------------------------------------------------------
# 3. Outputs
# --------------------------------------------------------------------------------------------

def test_output_to_fifo_device_symlink_and_dev_stdout_is_written_in_place(work):
    tmp, predict = work
    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = predict("--output", str(fifo), stdin="olive oil\n")
    reader.join(timeout=60)
    assert r.returncode == 0, r.stderr
    assert fifo.is_fifo() and got and got[0].startswith(b"olive\toil\t")
    null = tmp / "null"
    null.symlink_to(os.devnull)
    assert predict("--output", str(null), stdin="olive oil\n").returncode == 0
    assert null.is_symlink() and os.readlink(null) == os.devnull
    r = predict("--output", "/dev/stdout", stdin="olive oil\n")  # a pipe here
    assert r.returncode == 0 and r.stdout.startswith(b"olive\toil\t")
    assert os.path.islink("/dev/stdout")


def test_output_errors_are_one_line_without_temp_names(work):
    """Items 3, 8: a missing folder or a directory as --output: one line, no temp name."""
    tmp, predict = work
    for target in (tmp / "missing" / "pred.tsv", tmp):
        err = one_line_error(predict("--output", str(target), stdin="olive oil\n"),
                             str(target))
        assert ".tmp" not in err and ".pred.tsv." not in err


# --------------------------------------------------------------------------------------------
# 4-5. nc.json and the JSON readers
# --------------------------------------------------------------------------------------------

def _sign(doc: dict) -> dict:
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return {**body, "sha256": hashlib.sha256(json.dumps(
        body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()}


NC_VARIANTS = {
    "labels-string": ("labels", "A"), "labels-ints": ("labels", [1, 2, 3]),
    "labels-empty": ("labels", []), "labels-twice": ("labels", None),
    "members-string": ("members", "member-0"), "members-escape": ("members", ["../model"]),
    "members-empty": ("members", []), "settings-list": ("settings", []),
    "settings-unknown": ("settings", {"lr": 0.1}),
    "settings-lr-string": ("settings", {"learning_rate": "0.1"}),
    "settings-hidden": ("settings", {"hidden": [-1]}),
    "settings-tau": ("settings", {"logit_adjustment": 1e300}),
    "settings-seeds": ("settings", {"seeds": []}), "prior-short": ("class_prior", [0.5]),
    "prior-string": ("class_prior", "x"), "features-string": ("features", "words"),
    "features-empty": ("features", {}), "epochs-strings": ("best_epochs", ["a"]),
    "version-string": ("format_version", "3"), "version-future": ("format_version", 99),
    "report-list": ("report", []), "no-labels": ("labels", KeyError),
    "no-members": ("members", KeyError), "no-features": ("features", KeyError),
}


@pytest.mark.parametrize("case", sorted(NC_VARIANTS))
def test_malformed_nc_json_is_one_line(work, case):
    """Item 4: malformed nc.json variants (re-signed, so the schema has to catch them):
    exit 2, one line naming nc.json — no traceback."""
    tmp, predict = work
    doc_path = tmp / "model" / "nc.json"
    doc = json.loads(doc_path.read_text())
    key, value = NC_VARIANTS[case]
    if value is KeyError:
        del doc[key]
    elif key == "labels" and value is None:
        doc["labels"] = [doc["labels"][0]] * len(doc["labels"])
    elif key == "settings" and isinstance(value, dict):
        doc["settings"] = {**doc["settings"], **value}
    else:
        doc[key] = value
    doc_path.write_text(json.dumps(_sign(doc)))
    one_line_error(predict(stdin="olive oil\n"), "nc.json")


def test_edited_nc_json_is_refused(work):
    """Item 4: swapping two labels changed every prediction silently; now the checksum
    refuses the file."""
    tmp, predict = work
    doc_path = tmp / "model" / "nc.json"
    doc = json.loads(doc_path.read_text())
    doc["labels"][0], doc["labels"][1] = doc["labels"][1], doc["labels"][0]
    doc_path.write_text(json.dumps(doc, indent=1))
    one_line_error(predict(stdin="olive oil\n"), "nc.json", "checksum")


@pytest.mark.parametrize("where", ["nc.json", "member-0/config.json"])
def test_huge_integer_in_a_document_is_one_line(work, where):
    """Item 5: a 5,000-digit integer (ValueError traceback before)."""
    tmp, predict = work
    path = tmp / "model" / where
    old = '"best_epochs": [' if where == "nc.json" else '"format_version": 2'
    new = old + "9" * 5000 + "," if where == "nc.json" else '"format_version": ' + "9" * 5000
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    one_line_error(predict(stdin="olive oil\n"), where.split("/")[-1])


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_member_config_that_is_no_file_is_one_line(work, kind):
    """Item 5: config.json → /dev/zero allocated until memory ran out; a FIFO hung."""
    tmp, predict = work
    cfg = tmp / "model" / "member-0" / "config.json"
    cfg.unlink()
    if kind == "fifo":
        os.mkfifo(cfg)
    else:
        cfg.symlink_to("/dev/zero")
    one_line_error(predict(stdin="olive oil\n"), "config.json")


# --------------------------------------------------------------------------------------------
# 6. Argument values: usage errors before any work
# --------------------------------------------------------------------------------------------

TRAIN_BAD = {
    "lr-nan": (["--lr", "nan"], "--lr"), "lr-inf": (["--lr", "inf"], "--lr"),
    "lr-zero": (["--lr", "0"], "--lr"), "l2-negative": (["--l2", "-1"], "--l2"),
    "l2-nan": (["--l2", "nan"], "--l2"), "patience": (["--patience", "-1"], "--patience"),
    "tau-huge": (["--logit-adjustment", "1e300"], "--logit-adjustment"),
    "tau-nan": (["--logit-adjustment", "nan"], "--logit-adjustment"),
    "dropout": (["--dropout", "1.5"], "--dropout"),
    "input-dropout": (["--input-dropout", "nan"], "--input-dropout"),
    "batch": (["--batch-size", "0"], "--batch-size"),
    "epochs": (["--max-epochs", "0"], "--max-epochs"),
    "ensemble": (["--ensemble", "0"], "--ensemble"), "seed": (["--seed", "-1"], "--seed"),
    "threads": (["--threads", "-1"], "--threads"),
    "hidden": (["--hidden", "100000000"], "--hidden"),
}


@pytest.mark.parametrize("case", sorted(TRAIN_BAD))
def test_bad_train_values_are_usage_errors_before_any_work(tmp_path, case):
    """Item 6: checked before the data is even looked for (here it does not exist: a check
    made later would report the missing data instead)."""
    args, option = TRAIN_BAD[case]
    r = run_cli("nc", "train", "--split", SPLIT, "--data-dir", str(tmp_path / "no-data"),
                "--out", str(tmp_path / "m"), *args, cwd=tmp_path)
    one_line_error(r, option)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(("flag", "target"), [
    ("--out", "file"), ("--out", "dir"), ("--checkpoint", "file"), ("--plots", "file"),
    ("--cache-dir", "file")])
def test_train_paths_naming_files_are_usage_errors(tmp_path, flag, target):
    """Item 6: --out naming a file, or a directory that is not a model; --checkpoint,
    --plots and --cache-dir naming a file."""
    (tmp_path / "file").write_text("keep me\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("mine\n")
    target = tmp_path / target
    r = run_cli("nc", "train", "--split", SPLIT, "--data-dir", str(tmp_path / "no-data"),
                flag, str(target), cwd=tmp_path)
    one_line_error(r, flag, str(target))
    assert (tmp_path / "file").read_text() == "keep me\n"
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == ["notes.txt"]


def test_digits_save_model_naming_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("keep me\n")
    r = run_cli("digits", "--epochs", "1", "--save-model", str(tmp_path / "file"),
                cwd=tmp_path, timeout=600)
    one_line_error(r, "--save-model")
    assert (tmp_path / "file").read_text() == "keep me\n"
    one_line_error(run_cli("digits", "--lr", "inf", cwd=tmp_path), "--lr")


# --------------------------------------------------------------------------------------------
# 7. Streaming
# --------------------------------------------------------------------------------------------

def _compounds(data_root: Path, n: int, seed: int = 0) -> bytes:
    words = sorted({w for part in ("train", "val") for line in (
        data_root / "tratz" / SPLIT / f"{part}.tsv").read_text().splitlines()
        for w in line.split("\t")[:2]})
    rnd = random.Random(seed)
    return "".join(f"{rnd.choice(words)}\t{rnd.choice(words)}\n" for _ in range(n)).encode()


def _peak_rss_mb(work_dir: Path, model_dir: Path, cache: Path, data: bytes) -> float:
    src = work_dir / "in.tsv"
    src.write_bytes(data)
    # VmHWM: the process's own peak (ru_maxrss would keep the forking pytest's)
    code = ("import sys\nfrom thetanet.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
            "print('RSS', hwm, file=sys.stderr)\n"
            "sys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code, "nc", "predict", "--model", str(model_dir),
                        "--cache-dir", str(cache), "--input", str(src), "--output",
                        str(work_dir / "out.tsv")], capture_output=True, text=True,
                       timeout=600, preexec_fn=_limit_memory)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (work_dir / "out.tsv").read_bytes().count(b"\n") == data.count(b"\n")
    return int(r.stderr.rsplit("RSS", 1)[1].split()[0]) / 1024


def test_predict_memory_is_bounded_by_the_chunk(work, data_root):
    """Item 7: 60,000 lines take no more memory than 6,000 (give or take 100 MB); holding
    them all (768 dense feature columns, as this model has) took several hundred MB more."""
    tmp, _ = work
    small = _peak_rss_mb(tmp, tmp / "model", tmp / "cache", _compounds(data_root, 6_000))
    large = _peak_rss_mb(tmp, tmp / "model", tmp / "cache", _compounds(data_root, 60_000))
    assert large - small < 100, (small, large)


def test_streamed_predictions_equal_whole_batch_ones(work, data_root):
    """Item 7: chunks do not change a prediction: 20,000 lines through the CLI give what
    one call of the library gives."""
    from thetanet.compounds.system import NCClassifier
    from thetanet.data.tratz import read_tsv

    tmp, predict = work
    src = tmp / "in.tsv"
    src.write_bytes(_compounds(data_root, 20_000, seed=1))
    r = predict("--input", str(src))
    assert r.returncode == 0
    clf = NCClassifier.load(tmp / "model", cache_dir=tmp / "cache")
    data = read_tsv(src, require_label=False)
    labels, probs = clf.predict(data)
    want = "".join(f"{m}\t{h}\t{lab}\t{p:.6f}\n" for m, h, lab, p in
                   zip(data.modifiers, data.heads, labels, probs))
    assert r.stdout.decode() == want


# --------------------------------------------------------------------------------------------
# 8. Smaller ones
# --------------------------------------------------------------------------------------------

def test_header_bom_and_cr_only(work):
    tmp, predict = work
    src = tmp / "with-header.tsv"
    src.write_text("modifier\thead\nolive\toil\n")
    r = predict("--input", str(src))
    assert r.returncode == 0 and [ln.split("\t")[:2] for ln in r.stdout.decode().splitlines()
                                  ] == [["olive", "oil"]]
    r = predict(stdin=b"\xef\xbb\xbfolive oil\n")
    assert r.returncode == 0 and r.stdout.startswith(b"olive\toil\t")
    cr = tmp / "cr.tsv"
    cr.write_bytes(b"olive\toil\rsteel\tbar\r")
    err = one_line_error(predict("--input", str(cr)), f"{cr}:1", "CR line endings")
    assert "CRLF" not in err


def test_skip_bad_lines_reports_what_it_skipped(work):
    tmp, predict = work
    stdin = "olive oil\nthree word line\nmorning meeting\n"
    one_line_error(predict(stdin=stdin), "<stdin>:2")  # strict by default
    r = predict("--skip-bad-lines", stdin=stdin)
    assert r.returncode == 0
    assert [ln.split("\t")[:2] for ln in r.stdout.decode().splitlines()] == [
        ["olive", "oil"], ["morning", "meeting"]]
    err = r.stderr.decode()
    assert "<stdin>:2" in err and "skipped 1 bad line" in err


SAVE_AND_DIE = """
import os, signal, sys
import numpy as np
from thetanet.compounds.system import NCClassifier, NCSettings
from thetanet.data.tratz import Compounds
import thetanet.model as tm

rng = np.random.default_rng(0)
words = [f"w{i}" for i in range(8)]
mods = [words[i] for i in rng.integers(0, 8, 30)]
heads = [words[i] for i in rng.integers(0, 8, 30)]
labels = [["A", "B"][i] for i in rng.integers(0, 2, 30)]
s = NCSettings(features=["words"], hidden=[4], max_epochs=1, batch_size=8, seeds=[0, 1])
clf = NCClassifier(s, ["A", "B"]).fit(Compounds(mods, heads, labels), None, cache_dir=False,
                                      epochs=[1, 1])
if sys.argv[2] == "die":
    real = tm.Sequential.save
    def save_then_die(self, path, *a, **k):
        real(self, path, *a, **k)
        os.kill(os.getpid(), signal.SIGKILL)  # killed while building the new directory
    tm.Sequential.save = save_then_die
clf.save(sys.argv[1])
"""


def test_staging_folders_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    """Item 8: each save killed mid-way left a ``.NAME.XXXX`` folder forever; the next save
    removes them (their writers are provably dead), and nothing else beside the model."""
    out = tmp_path / "model"
    mine = tmp_path / ".model.mybackup"  # looks like one, but is the user's
    mine.mkdir()
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", SAVE_AND_DIE, str(out), "die"],
                           capture_output=True, timeout=300)
        assert r.returncode == -signal.SIGKILL, r.stderr.decode()[-1500:]
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".model.")]) == 4
    r = subprocess.run([sys.executable, "-c", SAVE_AND_DIE, str(out), "live"],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-1500:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.mybackup", "model"]


# --------------------------------------------------------------------------------------------
# Acceptance: nothing outside the named outputs
# --------------------------------------------------------------------------------------------

def test_nothing_outside_the_named_outputs_changes(tmp_path, data_root):
    """``nc train`` writes its --out, --cache-dir and --checkpoint; ``nc predict`` its
    --output. Nothing else in the tree (home and default cache included) is written,
    replaced or removed — the feature cache not by a prediction either."""
    pytest.importorskip("tokenizers")
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / ".nc-x.keepmeok").mkdir()  # named like a staging folder
    env = {**os.environ, "HOME": str(home), "THETANET_CACHE": str(home / ".cache" / "tn"),
           "THETANET_DATA": str(data_root), "MPLCONFIGDIR": str(home / "mpl")}
    model, cache, ck = tmp_path / "models" / "nc-x", tmp_path / "cache", tmp_path / "ck"
    before = tree(tmp_path)
    r = run_cli("nc", "train", "--split", SPLIT, "--cache-dir", str(cache), "--out", str(model),
                "--checkpoint", str(ck), *MODEL_ARGS, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    after = tree(tmp_path)
    named = ("models/nc-x", "cache", "ck")
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert all(k.startswith(named) for k in changed), sorted(changed)
    before = after
    pred = tmp_path / "pred.tsv"
    r = run_cli("nc", "predict", "--model", str(model), "--cache-dir", str(cache), "--output",
                str(pred), stdin="olive oil\nzyxxy blorple\nmorning meeting\n", env=env,
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    after = tree(tmp_path)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"pred.tsv"}
