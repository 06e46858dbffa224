"""Property-based fuzzing of everything that reads untrusted input.

Each reader gets ≥ 1000 examples (random bytes, truncations, mutated valid files, huge fields,
wrong encodings) and must end every one in its documented error, never another exception, a
hang or a partial output file. Inputs are kept small so the whole file runs in well under a
minute.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thetanet import Dense, Dropout, Sequential, load_checkpoint, load_model
from thetanet.checkpoint import CHECKPOINT_NAME
from thetanet.data.idx import IdxFormatError, decode_idx, encode_idx
from thetanet.data.tratz import Compounds, DataFormatError, read_compound_lines, read_tsv
from thetanet.saving import ModelFileError, doc_digest

MANY = settings(max_examples=1000, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SOME = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_SCRATCH = Path(tempfile.mkdtemp(prefix="thetanet-fuzz-"))


def teardown_module() -> None:
    shutil.rmtree(_SCRATCH, ignore_errors=True)


def _one_line(msg: str) -> None:
    assert msg and "\n" not in msg, msg[:300]


# --------------------------------------------------------------------------------------------
# TSV reader
# --------------------------------------------------------------------------------------------

_FIELD_CHARS = st.sampled_from(["a", "b", "x", " ", "\t", "é", "语", "\r", "-", "&", "\x00"])
_field = st.one_of(
    st.text(_FIELD_CHARS, max_size=6),
    st.sampled_from(["olive", "oil", "TOPIC", "income tax", " lead", "trail ", ""]),
    st.integers(1, 5).map(lambda k: "w" * (20_000 * k)),  # huge fields
)
_line = st.lists(_field, min_size=0, max_size=4).map("\t".join)
_encoding = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])


@st.composite
def tsv_bytes(draw: Any) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=120))
    lines = draw(st.lists(_line, min_size=0, max_size=5))
    eol = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    text = eol.join(lines) + draw(st.sampled_from(["", eol, eol * 2]))
    try:
        data = text.encode(draw(_encoding))
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    if kind == 3 and data:  # truncate or corrupt one byte
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + (bytes([draw(st.integers(0, 255))]) if draw(st.booleans()) else b"")
    return data


def _check_compounds(c: Compounds, with_labels: bool | None) -> None:
    assert len(c) >= 1
    for f in [*c.modifiers, *c.heads, *(c.labels or [])]:
        assert f and f == f.strip() and "\t" not in f and "\n" not in f and "\r" not in f
    if with_labels is True:
        assert c.labels is not None and len(c.labels) == len(c)
    if with_labels is False:
        assert c.labels is None


@MANY
@given(data=tsv_bytes(), mode=st.sampled_from([True, False, None]),
       known=st.sampled_from([None, ("TOPIC",), ("TOPIC", "x")]))
def test_tsv_reader_fuzz(data: bytes, mode: bool | None, known: tuple[str, ...] | None) -> None:
    path = _SCRATCH / "fuzz.tsv"
    path.write_bytes(data)
    try:
        c = read_tsv(path, require_label=mode, known_labels=known)
    except DataFormatError as exc:
        msg = str(exc)
        _one_line(msg)
        assert msg.startswith(f"{path}:")
        return
    _check_compounds(c, mode)
    if known is not None and c.labels is not None:
        assert set(c.labels) <= set(known)


@MANY
@given(data=tsv_bytes())
def test_compound_lines_fuzz(data: bytes) -> None:
    try:
        c = read_compound_lines(data.splitlines(keepends=True), source="<fuzz>")
    except DataFormatError as exc:
        _one_line(str(exc))
        assert str(exc).startswith("<fuzz>:")
        return
    assert c.labels is None
    for f in [*c.modifiers, *c.heads]:
        assert f and "\n" not in f


# --------------------------------------------------------------------------------------------
# IDX reader
# --------------------------------------------------------------------------------------------

@st.composite
def idx_bytes(draw: Any) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=80))
    code = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF]))
    dims = draw(st.sampled_from([0, 1, 2, 3, 4, 255]))
    sizes = [draw(st.one_of(st.integers(0, 4), st.sampled_from([2**31, 2**32 - 1])))
             for _ in range(min(dims, 6))]
    if max(sizes, default=0) >= 2**31:  # zero + huge sizes: the known bug tested below
        sizes = [s or 1 for s in sizes]
    head = bytes([draw(st.sampled_from([0, 0, 0, 1])), 0, code, dims])
    head += b"".join(s.to_bytes(4, "big") for s in sizes)
    body = draw(st.binary(max_size=64))
    data = head + body
    if kind == 2:
        data = data[:draw(st.integers(0, len(data)))]
    if kind == 3 or draw(st.booleans()):
        data = gzip.compress(data, mtime=0)
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
    return data


@MANY
@given(data=idx_bytes(), ndim=st.sampled_from([None, 1, 3]),
       code=st.sampled_from([None, 0x08]))
def test_idx_reader_fuzz(data: bytes, ndim: int | None, code: int | None) -> None:
    try:
        arr = decode_idx(data, "<fuzz>", ndim=ndim, type_code=code)
    except IdxFormatError as exc:
        _one_line(str(exc))
        assert str(exc).startswith("<fuzz>")
        return
    assert isinstance(arr, np.ndarray) and arr.dtype.isnative
    assert ndim is None or arr.ndim == ndim
    assert np.array_equal(decode_idx(encode_idx(arr)), arr, equal_nan=arr.dtype.kind == "f")


def test_idx_zero_and_huge_dimensions() -> None:
    data = b"\x00\x00\x08\x03" + (0).to_bytes(4, "big") + (2**32 - 1).to_bytes(4, "big") * 2
    with pytest.raises(IdxFormatError):
        decode_idx(data, "<fuzz>")


# --------------------------------------------------------------------------------------------
# Model loader
# --------------------------------------------------------------------------------------------

def _reference_model() -> tuple[Path, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    model = Sequential([Dense(5, "relu"), Dropout(0.1), Dense(3, "softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(rng.normal(size=(20, 4)).astype(np.float32), rng.integers(0, 3, 20), epochs=1,
              verbose=0, seed=0, checkpoint=_SCRATCH / "ref-ckpt")
    model.save(_SCRATCH / "ref-model")
    return _SCRATCH / "ref-model", model.get_weights()


_REF_DIR, _REF_WEIGHTS = _reference_model()
_REF_CONFIG = json.loads((_REF_DIR / "config.json").read_text())
_REF_WFILE = _REF_CONFIG["weights_file"]
_REF_NPZ = (_REF_DIR / _REF_WFILE).read_bytes()

_json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
              st.text(max_size=8), st.sampled_from(["float64", "../x.npz", "weights-0.npz"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


_CONFIG_PATHS = [p for p in _paths(_REF_CONFIG) if p]


def _signed(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    doc["sha256"] = doc_digest(doc)
    return doc


def _set(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    obj = obj.copy() if isinstance(obj, (dict, list)) else obj
    obj[path[0]] = _set(obj[path[0]], path[1:], value)
    return obj


@st.composite
def model_dir_mutation(draw: Any) -> tuple[bytes, bytes]:
    """(config.json bytes, weights npz bytes), one or both damaged."""
    config = json.dumps(_REF_CONFIG).encode()
    npz = _REF_NPZ
    kind = draw(st.integers(0, 5))
    if kind == 0:
        config = draw(st.binary(max_size=200))
    elif kind == 1:
        path = draw(st.sampled_from(_CONFIG_PATHS))
        doc = _set(_REF_CONFIG, path, draw(_json_value))
        if draw(st.booleans()) and isinstance(doc, dict):
            doc = _signed(doc)  # reach the checks behind the document checksum
        config = json.dumps(doc).encode()
    elif kind == 2:
        i = draw(st.integers(0, len(npz) - 1))
        npz = npz[:i] + bytes([npz[i] ^ draw(st.integers(1, 255))]) + npz[i + 1:]
    elif kind == 3:
        npz = npz[:draw(st.integers(0, len(npz) - 1))]
    elif kind == 4:
        npz = draw(st.binary(max_size=300))
    else:
        config = config[:draw(st.integers(0, len(config) - 1))]
    return config, npz


@MANY
@given(mutation=model_dir_mutation())
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_model_loader_fuzz(mutation: tuple[bytes, bytes]) -> None:
    config, npz = mutation
    d = _SCRATCH / "fuzz-model"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_bytes(config)
    (d / _REF_WFILE).write_bytes(npz)
    try:
        model = load_model(d)
    except ModelFileError as exc:
        _one_line(str(exc).splitlines()[0])
        assert str(d) in str(exc)
        return
    # Whatever was changed, a model that loads has exactly the saved weights.
    got = model.get_weights()
    assert len(got) == len(_REF_WEIGHTS)
    assert all(np.array_equal(a, b) for a, b in zip(got, _REF_WEIGHTS))


def test_model_loader_fuzz_sanity() -> None:
    """The fuzz fixture itself loads (so the fuzz test exercises real mutations)."""
    assert len(load_model(_REF_DIR).get_weights()) == len(_REF_WEIGHTS)


_CKPT = _SCRATCH / "ref-ckpt"
_CKPT_DOC = json.loads((_CKPT / CHECKPOINT_NAME).read_text())
_CKPT_PATHS = [p for p in _paths(_CKPT_DOC) if p]
_CKPT_NPZ_NAME = _CKPT_DOC["arrays_file"]
_CKPT_NPZ = (_CKPT / _CKPT_NPZ_NAME).read_bytes()


@SOME
@given(path=st.sampled_from(_CKPT_PATHS), value=_json_value,
       flip=st.one_of(st.none(), st.integers(0, len(_CKPT_NPZ) - 1)), sign=st.booleans())
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_checkpoint_loader_fuzz(path: tuple, value: Any, flip: int | None, sign: bool) -> None:
    d = _SCRATCH / "fuzz-ckpt"
    d.mkdir(exist_ok=True)
    npz = _CKPT_NPZ
    if flip is not None:
        npz = npz[:flip] + bytes([npz[flip] ^ 0x5A]) + npz[flip + 1:]
        doc = _CKPT_DOC
    else:
        doc = _set(_CKPT_DOC, path, value)
        if sign and isinstance(doc, dict):
            doc = _signed(doc)
    (d / CHECKPOINT_NAME).write_text(json.dumps(doc))
    (d / _CKPT_NPZ_NAME).write_bytes(npz)
    try:
        ck = load_checkpoint(d)
    except ModelFileError as exc:
        assert str(d) in str(exc)
        return
    assert isinstance(ck.state, dict)


# --------------------------------------------------------------------------------------------
# Hostile .npz contents (not random: the classic attacks, each must be refused)
# --------------------------------------------------------------------------------------------

def _zip(members: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()


def _lying_sizes() -> bytes:
    """A stored member whose central directory claims ~4 GiB (reading it would allocate)."""
    import struct

    raw = bytearray(_zip({"w000.npy": _npy(np.zeros(3, np.float32))}))
    cd = raw.rfind(b"PK\x01\x02")
    struct.pack_into("<II", raw, cd + 20, 0xFFFFFFF0, 0xFFFFFFF0)
    return bytes(raw)


@pytest.mark.parametrize("npz", [
    _zip({"w000.npy": _npy_header((2**40,))}),  # huge declared shape, no data
    _zip({"w000.npy": _npy_header((10**6, 10**6))}),
    _zip({"w000.npy": b"\x93NUMPY\x01\x00" + (60000).to_bytes(2, "little") + b" " * 60000}),
    _zip({"w000.npy": b"\x00" * (2**22)}, zipfile.ZIP_DEFLATED),  # zip bomb (4 MiB of zeros)
    _zip({"../w000.npy": _npy(np.zeros(3, np.float32))}),
    _zip({"w000.npy": _npy(np.array([{"a": 1}], dtype=object))}),
    _zip({"w000.npy": _npy(np.zeros(2, dtype=[("a", "<f4"), ("b", "O")]))}),
    _zip({"w000.npy": _npy_header((3,), "|O")}),
    _lying_sizes(),
    _zip({"w000.npy": b"\x93NUMPY"}),
], ids=["huge-shape", "huge-2d", "huge-header", "zip-bomb", "dotdot-name", "object",
        "structured-object", "object-header", "lying-sizes", "cut-header"])
def test_hostile_npz_refused(npz: bytes, tmp_path: Path) -> None:
    from thetanet.files import load_arrays

    p = tmp_path / "w.npz"
    p.write_bytes(npz)
    with pytest.raises(ModelFileError, match=str(p.name)):
        load_arrays(p)


# --------------------------------------------------------------------------------------------
# CLI argument handling
# --------------------------------------------------------------------------------------------

def _option_strings() -> list[str]:
    from thetanet.cli import build_parser

    seen: list[str] = []

    def walk(parser: Any) -> None:
        for action in parser._actions:
            seen.extend(action.option_strings)
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                seen.extend(choices)
                for sub in choices.values():
                    walk(sub)
            elif choices:
                seen.extend(str(c) for c in choices)

    walk(build_parser())
    return sorted(set(seen))


_OPTIONS = _option_strings()
_token = st.one_of(
    st.sampled_from(_OPTIONS),
    st.sampled_from(["1", "0", "-1", "1e999", "nan", "3,4", ",", "", "-", "--", "=", "x" * 5000,
                     "é", "\x00", "--split=", "--hidden=0,x", "--lr=-inf"]),
    st.text(max_size=8),
)


@MANY
@given(argv=st.lists(_token, max_size=7))
def test_cli_argument_parsing_fuzz(argv: list[str]) -> None:
    from thetanet.cli import build_parser

    parser = build_parser()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2), (argv, exc.code)
            if exc.code == 2:
                assert "error:" in err.getvalue()


@st.composite
def score_files(draw: Any) -> tuple[bytes, bytes]:
    gold = draw(tsv_bytes())
    pred = gold if draw(st.booleans()) else draw(tsv_bytes())
    return gold, pred


@SOME
@given(files=score_files(), as_json=st.booleans())
def test_cli_nc_score_fuzz(files: tuple[bytes, bytes], as_json: bool) -> None:
    """``thetanet nc score`` on arbitrary files: exit 0 or a one-line error (status 2)."""
    from thetanet.cli import main

    gold, pred = _SCRATCH / "gold.tsv", _SCRATCH / "pred.tsv"
    gold.write_bytes(files[0])
    pred.write_bytes(files[1])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["nc", "score", "--gold", str(gold), "--pred", str(pred),
                     *(["--json"] if as_json else [])])
    assert code in (0, 2)
    if code == 2:
        assert err.getvalue().strip().splitlines()[-1].startswith("thetanet nc")


# --------------------------------------------------------------------------------------------
# Resuming from a damaged (but checksum-consistent) checkpoint
# --------------------------------------------------------------------------------------------

_RESUME_X = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
_RESUME_Y = np.random.default_rng(2).integers(0, 3, 20)


def _resume_model() -> Sequential:
    m = Sequential([Dense(5, "relu"), Dropout(0.1), Dense(3, "softmax")], seed=0)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


_RESUME_CKPT = _SCRATCH / "resume-ckpt"
_resume_model().fit(_RESUME_X, _RESUME_Y, epochs=2, batch_size=6, verbose=0, seed=0,
                    checkpoint=_RESUME_CKPT, checkpoint_every=2)
_RESUME_DOC = json.loads((_RESUME_CKPT / CHECKPOINT_NAME).read_text())
_STATE_PATHS = [("state", *p) for p in _paths(_RESUME_DOC["state"])
                if p and p[0] not in ("settings",)]


@SOME
@given(path=st.sampled_from(_STATE_PATHS), value=_json_value)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_resume_from_damaged_state_fuzz(path: tuple, value: Any) -> None:
    """A signed but nonsensical training state: resume refuses it or trains normally."""
    from thetanet.checkpoint import CheckpointMismatchError

    d = _SCRATCH / "fuzz-resume"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(_RESUME_CKPT, d)
    (d / CHECKPOINT_NAME).write_text(json.dumps(_signed(_set(_RESUME_DOC, path, value))))
    m = _resume_model()
    try:
        m.fit(_RESUME_X, _RESUME_Y, epochs=3, batch_size=6, verbose=0, seed=0, checkpoint=d,
              resume=True, checkpoint_every=2)
    except (ModelFileError, CheckpointMismatchError) as exc:
        assert str(d) in str(exc)
        return
    assert all(np.all(np.isfinite(w)) for w in m.get_weights())
