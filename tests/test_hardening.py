"""Issue 13, library level: words, the feature cache, JSON readers, nc.json, batch sizes.

Each test names the item of the issue it covers. The behavioural ones use only what the
original layout also had (``thetanet.data.tratz``, ``thetanet.compounds``, ``Sequential``,
``load_model``), so they can be run against it (``PYTHONPATH=<orig>/src``) to see them fail
there; the rest use the new helpers directly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from thetanet import Dense, Sequential, load_model
from thetanet.compounds.system import NCClassifier, NCSettings
from thetanet.data.tratz import Compounds, DataFormatError, read_compound_lines, read_tsv

CONTROL = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)]


def _sign(doc: dict) -> dict:
    """A document re-signed as thetanet signs it: SHA-256 of its canonical form without
    ``sha256`` (what an attacker who knows the format can always do: the checksum catches
    accidents and naive edits; the schema must catch the rest)."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    doc = dict(body)
    doc["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                                   .encode()).hexdigest()
    return doc


def _is_model_file_error(exc: BaseException) -> bool:
    """A ModelFileError (checked by name: the original layout had it elsewhere) whose message
    is one line."""
    return type(exc).__name__ == "ModelFileError" and "\n" not in str(exc)


def _small_model(tmp_path: Path, name: str = "m") -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    model = Sequential([Dense(5, "relu"), Dense(3, "softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / name)
    return tmp_path / name


def _tiny_nc(path: Path) -> Path:
    """A fitted two-member noun-compound model on made-up words (features: words)."""
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(10)]
    mods = [words[i] for i in rng.integers(0, 10, 40)]
    heads = [words[i] for i in rng.integers(0, 10, 40)]
    labels = [["A", "B", "C"][i] for i in rng.integers(0, 3, 40)]
    s = NCSettings(features=["words"], hidden=[4], max_epochs=2, batch_size=8, seeds=[0, 1])
    clf = NCClassifier(s, ["A", "B", "C"])
    clf.fit(Compounds(mods, heads, labels), None, cache_dir=False, epochs=[2, 2])
    clf.save(path)
    return path


# --------------------------------------------------------------------------------------------
# 1-2. Words: refused at the reader, stored exactly in the cache
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["olive\0", "ol\x01ive", "olive\x7f", "ol\x85ive", "a\u2028b",
                                 "x" * 101])
def test_reader_refuses_control_characters_and_long_words(tmp_path, bad):
    """Items 1-2: a NUL (or any control character) or a 101-character word is refused with
    file:line and the bound; 100 characters are fine."""
    path = tmp_path / "in.tsv"
    path.write_bytes(f"olive\toil\n{bad}\toil\n".encode())
    for kwargs in ({"require_label": False}, {"require_label": None}):
        with pytest.raises(DataFormatError) as ei:
            read_tsv(path, **kwargs)
        msg = str(ei.value)
        assert msg.startswith(f"{path}:2: ") and "\n" not in msg
        assert ("100 characters" in msg) if len(bad) > 100 else ("control character" in msg)
    with pytest.raises(DataFormatError, match=r"^<stdin>:1: "):
        read_compound_lines([f"{bad}\toil\n"])
    ok = tmp_path / "ok.tsv"
    ok.write_text("x" * 100 + "\toil\n", encoding="utf-8")
    assert read_tsv(ok, require_label=False).modifiers == ["x" * 100]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(word=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=120))
def test_reader_accepts_exactly_the_valid_words(tmp_path_factory, word):
    """Items 1-2 (hypothesis, any unicode incl. NUL): a word is read back unchanged iff it
    is valid (≤ 100 characters, no control character, no surrounding whitespace)."""
    assume("\t" not in word and "\n" not in word and "\r" not in word)
    assume(not word.startswith("\ufeff"))  # at the file's start that is a BOM (stripped)
    path = tmp_path_factory.mktemp("w") / "in.tsv"
    path.write_bytes(f"{word}\toil\n".encode())
    valid = (len(word) <= 100 and not any(c in CONTROL for c in word)
             and word.strip() == word and word.strip() != "")
    try:
        got = read_tsv(path, require_label=False).modifiers
    except DataFormatError as exc:
        assert not valid, f"{word!r} refused: {exc}"
        assert str(exc).startswith(f"{path}:1: ") and "\n" not in str(exc)
    else:
        assert valid and got == [word]


@pytest.mark.skipif(not Path("/usr/share/wordnet").exists() and not os.environ.get(
    "THETANET_WORDNET"), reason="needs WordNet")
def test_nul_word_does_not_poison_the_cache(tmp_path):
    """Item 1: ``olive\\0`` and ``olive`` are distinct words in the cache: a later run that
    loads the cache gets each word's own features."""
    from thetanet.compounds.features import build_features

    fit = (["olive", "olive\0", "oil"], ["oil", "oil", "olive"])
    first = build_features(["wordnet"], fit, cache_dir=tmp_path)
    want = first.transform(["olive", "olive\0"], ["oil", "oil"]).toarray()
    assert not np.array_equal(want[0], want[1])  # the two words have different rows
    again = build_features(["wordnet"], fit, cache_dir=tmp_path)  # served from the cache
    np.testing.assert_array_equal(again.transform(["olive", "olive\0"], ["oil", "oil"])
                                  .toarray(), want)


def test_one_long_word_grows_the_cache_by_its_length(tmp_path):
    """Item 2: cache size grows with the data, not with the longest word (fixed-width string
    arrays made one 5,000-character word cost 1,000 × 20 KB)."""
    pytest.importorskip("tokenizers")
    from thetanet.compounds.features import build_features

    words = [f"word{i}" for i in range(1000)]
    sizes = []
    for extra, d in (([], tmp_path / "a"), (["q" * 5000], tmp_path / "b")):
        try:
            build_features(["minilm-static"], (words + extra, words + extra), cache_dir=d)
        except Exception as exc:  # pragma: no cover - MiniLM table not installed
            pytest.skip(f"minilm-static unavailable: {exc}")
        sizes.append(sum(p.stat().st_size for p in d.iterdir()))
    assert sizes[1] - sizes[0] < 5000 + 4 * 384 + 4096  # the word's bytes and its row


class _Hashed:
    """A disk-cached per-word extractor whose row is a hash of the word (test double)."""

    @staticmethod
    def make(cache_dir: Path):
        from thetanet.compounds.features.base import PerWordExtractor

        class Hashed(PerWordExtractor):
            name = "hashed-test"
            sparse = False
            disk_cache = True

            def cache_settings(self):
                return {}

            def _compute(self, words):
                return [np.frombuffer(hashlib.sha256(w.encode("utf-8", "surrogatepass"))
                                      .digest(), np.uint8).astype(np.float32) for w in words]

            def _pack(self, words, rows):
                return {"words": np.array(words, dtype=str), "vectors": np.stack(rows)}

            def _unpack(self, arrays):
                return dict(zip(arrays["words"].tolist(), arrays["vectors"]))

            def fit(self, modifiers, heads):
                self.rows([*modifiers, *heads])
                self.fitted = True
                return self

        return Hashed(cache_dir=cache_dir)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.text(max_size=30), min_size=1, max_size=30, unique=True))
def test_cache_stores_every_word_exactly(tmp_path_factory, words):
    """Items 1-2 (hypothesis: any text, NULs, lone surrogates): what a fresh extractor reads
    from the cache is, for every word, the row computed for that very word."""
    d = tmp_path_factory.mktemp("cache")
    _Hashed.make(d).fit(words, words)
    reader = _Hashed.make(d)
    rows = reader.rows(words)
    assert reader.stats["hits"] == len(words) and reader.stats["misses"] == 0
    fresh = _Hashed.make(False)
    for w in words:
        np.testing.assert_array_equal(rows[w], fresh._compute([w])[0])


@settings(max_examples=100, deadline=None)
@given(strings=st.lists(st.text(), max_size=20))
def test_string_arrays_round_trip(strings):
    from thetanet.compounds.features.base import decode_strings, encode_strings

    enc = encode_strings({"s": strings, "x": np.arange(3)})
    assert all(a.dtype.kind in "iuf" for a in enc.values())
    dec = decode_strings(enc)
    assert dec["s"].tolist() == strings and dec["x"].tolist() == [0, 1, 2]


def test_prediction_leaves_the_cache_alone(tmp_path, monkeypatch):
    """Items 1-2, 7: predicting (a restored model, frozen caches) reads the cache but never
    writes it, and keeps a bounded number of predicted words' rows."""
    from thetanet.compounds.features import base

    monkeypatch.setattr(base, "RECENT_WORDS", 10)
    writer = _Hashed.make(tmp_path).fit(["a", "b"], ["c", "d"])
    files = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with base.frozen_caches([writer]):
        rows = writer.rows(["zz\0", "a", *map(str, range(50))])
        again = writer.rows(["49", "zz\0"])
    assert len(rows) == 52 and np.array_equal(again["49"], rows["49"])
    assert "zz\0" not in writer._mem and len(writer._recent) <= 10
    assert set(writer._mem) == {"a", "b", "c", "d"}
    reader = _Hashed.make(tmp_path)
    reader.set_state({})  # restored, not fitted here: a reader only
    reader.rows(["new", "words"])
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == files


# --------------------------------------------------------------------------------------------
# 3. Output targets (files.open_output)
# --------------------------------------------------------------------------------------------

def test_open_output_replaces_regular_files_writes_others_in_place(tmp_path):
    from thetanet.files import open_output, write_output

    target = tmp_path / "out.tsv"
    target.write_text("old\n")
    inode = target.stat().st_ino
    with pytest.raises(RuntimeError), open_output(target) as fh:
        fh.write("partial\n")
        raise RuntimeError("failed half-way")
    assert target.read_text() == "old\n"  # untouched on error
    assert not [p for p in tmp_path.iterdir() if p.name != "out.tsv"]  # no temp left
    write_output(target, "new\n")
    assert target.read_text() == "new\n" and target.stat().st_ino != inode  # replaced
    link = tmp_path / "null"
    link.symlink_to(os.devnull)
    write_output(link, "x\n")
    assert link.is_symlink() and os.readlink(link) == os.devnull
    real = tmp_path / "real.txt"
    real.write_text("long old content\n")
    (tmp_path / "via").symlink_to(real)
    write_output(tmp_path / "via", "short\n")
    assert (tmp_path / "via").is_symlink() and real.read_text() == "short\n"
    with pytest.raises(IsADirectoryError):
        write_output(tmp_path, "x")


def test_write_errors_name_the_target_never_a_temp_file(tmp_path):
    """Item 8: an error while writing names what was asked for, not ``.NAME.XXXX.tmp``."""
    from thetanet.files import atomic_write_text, write_output

    (tmp_path / "file").write_text("")
    for write in (atomic_write_text, write_output):
        with pytest.raises(OSError) as ei:
            write(tmp_path / "file" / "out.tsv", "x")
        assert ".tmp" not in str(ei.value) and str(tmp_path / "file" / "out.tsv") in str(
            ei.value)


# --------------------------------------------------------------------------------------------
# 5. JSON readers: regular files, bounded sizes, bounded integers, typed sizes
# --------------------------------------------------------------------------------------------

def _guarded(code: str, limit_mb: int = 1500, timeout: int = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a child with an address-space limit and a timeout (the original code
    allocates until memory runs out or blocks forever on some of these inputs)."""
    prelude = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, "
               f"({limit_mb} << 20, {limit_mb} << 20))\n")
    try:
        return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for {timeout} s")


def _loads_as_model_file_error(path: Path, max_rss_mb: int = 300) -> None:
    """Loading ``path`` in a child gives a one-line ModelFileError, and the child's peak
    memory stays under ``max_rss_mb`` (nothing was allocated from the crafted sizes)."""
    r = _guarded(f"""
        import sys
        from thetanet import load_model
        try:
            load_model({str(path)!r})
        except ValueError as exc:
            ok = type(exc).__name__ == "ModelFileError" and "\\n" not in str(exc)
            print(("OK " if ok else "WRONG ") + type(exc).__name__ + ": " + str(exc)[:300])
            # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's)
            hwm = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
            rss = int(hwm) // 1024
            print(f"peak {{rss}} MB")
            sys.exit(0 if ok and rss < {max_rss_mb} else 3)
        print("LOADED")
        sys.exit(4)
    """)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]


def test_huge_integers_are_model_file_errors(tmp_path):
    """Item 5: a 5,000-digit integer in config.json (int() would raise a bare ValueError)."""
    path = _small_model(tmp_path)
    cfg = path / "config.json"
    cfg.write_text(cfg.read_text().replace('"format_version": 2', '"format_version": '
                                           + "9" * 5000))
    with pytest.raises(ValueError) as ei:
        load_model(path)
    assert _is_model_file_error(ei.value) and "digits" in str(ei.value)


def test_checkpoint_with_a_huge_integer(tmp_path):
    """Item 5: the same in checkpoint.json."""
    from thetanet.checkpoint import read_checkpoint

    rng = np.random.default_rng(0)
    model = Sequential([Dense(3, "softmax")], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(rng.normal(size=(8, 2)), rng.integers(0, 3, 8), epochs=1, verbose=0,
              checkpoint=tmp_path / "ck")
    doc = tmp_path / "ck" / "checkpoint.json"
    doc.write_text(doc.read_text().replace('"epoch": 1', '"epoch": ' + "1" * 5000, 1))
    with pytest.raises(ValueError) as ei:
        read_checkpoint(tmp_path / "ck")
    assert _is_model_file_error(ei.value)


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "weights", "directory"])
def test_config_must_be_a_regular_file(tmp_path, kind):
    """Item 5: config.json linked to /dev/zero or to the weights, a FIFO, a directory: refused
    at once, without reading (the original allocated until memory ran out, or hung)."""
    path = _small_model(tmp_path)
    cfg = path / "config.json"
    cfg.unlink()
    if kind == "dev-zero":
        cfg.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(cfg)
    elif kind == "weights":
        cfg.symlink_to(next(path.glob("weights-*.npz")))
    else:
        cfg.mkdir()
    _loads_as_model_file_error(path)


def test_sizes_must_be_integers_before_anything_is_allocated(tmp_path):
    """Item 5: ``input_dim`` written as a string ("40000000") passed the size bound and
    allocated 3.8 GB; now every size must be an integer, checked before building."""
    path = _small_model(tmp_path)
    cfg = path / "config.json"
    doc = json.loads(cfg.read_text())
    doc["model"]["input_dim"] = "20000000"  # × 5 units × 4 bytes: 400 MB if built
    cfg.write_text(json.dumps(_sign(doc)))
    _loads_as_model_file_error(path)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> tuple[Path, dict]:
    path = _small_model(tmp_path_factory.mktemp("model"))
    return path, json.loads((path / "config.json").read_text())


@pytest.fixture(scope="module")
def saved_nc(tmp_path_factory) -> tuple[Path, dict]:
    path = _tiny_nc(tmp_path_factory.mktemp("nc") / "nc")
    return path, json.loads((path / "nc.json").read_text())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_signed_config_loads_or_is_a_model_file_error(saved_model, data):
    """Item 5 (hypothesis, JSON documents): any value anywhere in a (re-signed) config.json
    gives a model or a one-line ModelFileError, never another exception."""
    path, original = saved_model
    doc = _mutate(json.loads(json.dumps(original)), data)
    (path / "config.json").write_text(json.dumps(_sign(doc)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_model(path)
    except ValueError as exc:
        assert _is_model_file_error(exc), repr(exc)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=3),
    max_leaves=6)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _mutate(doc: dict, data) -> dict:
    """Replace (or delete) one entry anywhere in ``doc`` by an arbitrary JSON value."""
    paths = [p for p in _paths(doc) if p and p[-1] != "sha256"]
    where = data.draw(st.sampled_from(paths))
    parent = doc
    for k in where[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(_JSON)
    return doc


# --------------------------------------------------------------------------------------------
# 4. nc.json: signed, validated, members pinned; old formats
# --------------------------------------------------------------------------------------------

def test_swapped_labels_and_reversed_vocabulary_are_refused(tmp_path):
    model = _tiny_nc(tmp_path / "nc")
    doc_path = model / "nc.json"
    good = json.loads(doc_path.read_text())
    swapped = json.loads(json.dumps(good))
    swapped["labels"][0], swapped["labels"][1] = swapped["labels"][1], swapped["labels"][0]
    reversed_vocab = json.loads(json.dumps(good))
    state = reversed_vocab["features"]["extractors"][0]["state"]
    state["modifier"] = state["modifier"][::-1]
    for edited in (swapped, reversed_vocab):
        doc_path.write_text(json.dumps(edited))
        with pytest.raises(ValueError) as ei:
            NCClassifier.load(model, cache_dir=False)
        assert _is_model_file_error(ei.value) and "checksum" in str(ei.value)


def test_a_member_from_another_model_is_refused(tmp_path):
    import shutil

    a, b = _tiny_nc(tmp_path / "a"), _tiny_nc(tmp_path / "b")
    shutil.rmtree(a / "member-0")
    shutil.copytree(b / "member-1", a / "member-0")  # a valid model, not this one's
    with pytest.raises(ValueError) as ei:
        NCClassifier.load(a, cache_dir=False)
    assert _is_model_file_error(ei.value) and "member-0" in str(ei.value)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_signed_nc_json_loads_or_is_a_model_file_error(saved_nc, data):
    """Item 4 (hypothesis): any value anywhere in a re-signed nc.json gives a model or a
    one-line ModelFileError — never a traceback, never NaN probabilities."""
    model, original = saved_nc
    doc = _mutate(json.loads(json.dumps(original)), data)
    (model / "nc.json").write_text(json.dumps(_sign(doc)))
    try:
        clf = NCClassifier.load(model, cache_dir=False)
    except ValueError as exc:
        assert _is_model_file_error(exc), repr(exc)
        return
    probs = clf.predict_proba(Compounds(["w1", "zz"], ["w2", "w3"]))
    assert probs.shape == (2, len(clf.labels)) and np.all(np.isfinite(probs))


def test_old_unsigned_formats_load_with_a_warning_and_downgrades_are_refused(tmp_path):
    """Items 4, 8: nc.json formats 1-2 (thetanet 0.1, no checksum) still load, validated, with
    an UnsignedFileWarning; so does a format-1 config.json. A signed document relabelled as an
    old format (its stale checksum left in) is refused."""
    import shutil

    from thetanet.files import UnsignedFileWarning

    fixture = tmp_path / "v2"
    shutil.copytree(Path(__file__).parent / "fixtures" / "nc_v2", fixture)
    with pytest.warns(UnsignedFileWarning, match="nc.json"):
        clf = NCClassifier.load(fixture, cache_dir=False)
    assert clf.labels == ["A", "B", "C"]
    clf.save(tmp_path / "resaved")  # saving again signs it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NCClassifier.load(tmp_path / "resaved", cache_dir=False)
    doc = json.loads((tmp_path / "resaved" / "nc.json").read_text())
    doc["format_version"] = 2
    doc["labels"] = doc["labels"][::-1]
    (tmp_path / "resaved" / "nc.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="checksum"):
        NCClassifier.load(tmp_path / "resaved", cache_dir=False)
    path = _small_model(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["format_version"] = 1
    del cfg["sha256"]
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UnsignedFileWarning, match="no checksum"):
        load_model(path)


# --------------------------------------------------------------------------------------------
# 8. batch_size must be an integer
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [1.5, "32", True, 0, -1, 2.0])
def test_batch_size_must_be_a_positive_integer(bad):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 3)).astype(np.float32), rng.integers(0, 2, 10)
    model = Sequential([Dense(2, "softmax")], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    for call in (lambda: model.fit(x, y, epochs=1, batch_size=bad, verbose=0),
                 lambda: model.predict(x, batch_size=bad),
                 lambda: model.evaluate(x, y, batch_size=bad)):
        with pytest.raises(ValueError, match="batch_size"):
            call()
    assert model.predict(x, batch_size=np.int64(3)).shape == (10, 2)
    assert math.isfinite(model.evaluate(x, y, batch_size=None))


# --------------------------------------------------------------------------------------------
# 7-8. The streaming reader
# --------------------------------------------------------------------------------------------

class _CountingStream:
    """A binary stream of ``n`` lines that counts how many were read."""

    def __init__(self, n: int, prefix: bytes = b"") -> None:
        self.n, self.read_lines, self.prefix = n, 0, prefix

    def readline(self, limit: int = -1) -> bytes:
        if self.read_lines >= self.n:
            return b""
        self.read_lines += 1
        head = self.prefix if self.read_lines == 1 else b""
        return head + f"w{self.read_lines}\th{self.read_lines}\n".encode()


def test_reader_streams_in_chunks():
    """Item 7: the reader hands out a chunk before it has read the rest of the input."""
    from thetanet.data.tratz import iter_compounds

    stream = _CountingStream(25_000)
    chunks = iter_compounds(stream, "s", "tsv", chunk_lines=8192)
    first = next(chunks)
    assert len(first) == 8192 and stream.read_lines <= 8193
    assert sum(len(c) for c in chunks) + len(first) == 25_000


def test_reader_header_bom_cr_and_skipping():
    """Item 8: a header line is skipped (by the stated rule), a BOM dropped, CR-only input
    called so, and bad lines skipped and reported when asked."""
    import io

    from thetanet.data.tratz import iter_compounds

    def read(data: bytes, dialect: str = "tsv", **kw):
        return [c for chunk in iter_compounds(io.BytesIO(data), "in", dialect, header=True,
                                              **kw) for c in chunk.pairs()]

    assert read(b"\xef\xbb\xbfModifier\tHead\tRelation\nolive\toil\n") == [("olive", "oil")]
    assert read(b"\xef\xbb\xbfolive oil\r\nmodifier head\n", "words") == [
        ("olive", "oil"), ("modifier", "head")]  # only a first line is a header
    with pytest.raises(DataFormatError, match=r"^in:1: CR line endings"):
        read(b"olive\toil\rsteel\tbar\r")
    with pytest.raises(DataFormatError, match=r"^in:1: CR line endings"):
        read(b"olive\toil\r")
    with pytest.raises(DataFormatError, match=r"^in:1: CRLF"):
        read(b"olive\toil\r\n")
    skipped: list = []
    got = read(b"olive\toil\nbad\n\nsteel\tbar\nx\0\ty\n" + b"z" * (2 << 20) + b"\nlast\tone",
               skipped=skipped)
    assert got == [("olive", "oil"), ("steel", "bar"), ("last", "one")]
    assert [e.lineno for e in skipped] == [2, 3, 5, 6]
    assert "longer than" in str(skipped[-1])
    with pytest.raises(DataFormatError, match="^in:2: expected at least 2"):
        read(b"olive\toil\nbad\n")


def test_read_regular_refuses_fifos_and_large_files(tmp_path):
    """read_regular refuses what is not a regular file by its mode, not its size."""
    from thetanet.files import ModelFileError, read_regular

    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="FIFO"):
        read_regular(fifo, "test", 100)
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(ModelFileError, match="at most 100"):
        read_regular(tmp_path / "big", "test", 100)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
