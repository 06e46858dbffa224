"""The fetcher, ``download_split``, ``download_mnist`` and ``thetanet data`` against a real HTTP
server on 127.0.0.1 (a free port, a thread), serving real files: checksums checked, corrupt
files refused, interrupted downloads leave nothing half-written, offline errors are one line
naming the command and the folder."""

import gzip
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from thetanet.cli import main
from thetanet.data import idx, tratz
from thetanet.data.fetch import ChecksumError, FetchError, download

SPLIT = "fine_lexical"  # train.tsv (139 kB) spans several of the fetcher's 64 kB blocks


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        srv = self.server
        srv.requests.append(self.path)
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.path in srv.cut:  # promise the whole body, send half, hang up
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    """An HTTP server on a free port of 127.0.0.1; fill ``.files`` (path -> bytes), add paths to
    ``.cut`` to break them mid-body; ``.requests`` lists the paths asked for."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.cut, srv.requests = {}, set(), []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def closed_port_url():
    """A URL nothing listens on: connection refused, as offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def serve(srv, url: str, data: bytes) -> None:
    srv.files[urlparse(url).path] = data


def leftovers(directory: Path) -> list[str]:
    """The files (temp files included) under ``directory``."""
    return sorted(p.name for p in directory.rglob("*") if p.is_file())


# -- the fetcher ------------------------------------------------------------------------------


def test_download_verifies_and_places(server, tmp_path):
    data = os.urandom(200_000)
    serve(server, "/a.bin", data)
    out = io.StringIO()
    target = download(f"{server.url}/a.bin", tmp_path / "d" / "a.bin",
                      sha256=hashlib.sha256(data).hexdigest(), stream=out)
    assert target.read_bytes() == data
    assert leftovers(tmp_path / "d") == ["a.bin"]
    log = out.getvalue().splitlines()  # not a terminal: plain lines, no bar
    assert log[0] == f"fetching {server.url}/a.bin (200.0 KB) -> {target}"
    assert log[-1].startswith("  saved a.bin (sha256 verified): 200.0 KB in")


def test_corrupt_download_is_refused_and_the_old_file_kept(server, tmp_path):
    good = b"the published bytes\n" * 1000
    serve(server, "/f.tsv", good[:-2] + b"X\n")  # one byte differs
    target = tmp_path / "f.tsv"
    with pytest.raises(ChecksumError, match=r"checksum mismatch for .*/f\.tsv: sha256 [0-9a-f]{64}"
                                            r", expected"):
        download(f"{server.url}/f.tsv", target, sha256=hashlib.sha256(good).hexdigest(),
                 progress=False)
    assert leftovers(tmp_path) == []
    target.write_bytes(b"older content")
    with pytest.raises(ChecksumError):
        download(f"{server.url}/f.tsv", target, sha256="0" * 64, progress=False)
    assert target.read_bytes() == b"older content" and leftovers(tmp_path) == ["f.tsv"]


def test_interrupted_download_leaves_nothing(server, tmp_path):
    data = os.urandom(300_000)
    serve(server, "/big.bin", data)
    server.cut.add("/big.bin")
    with pytest.raises(FetchError, match=r"closed after \d+ of 300000 bytes"):
        download(f"{server.url}/big.bin", tmp_path / "big.bin", progress=False)
    assert leftovers(tmp_path) == []


def test_offline_is_one_line_and_creates_nothing(closed_port_url, tmp_path):
    with pytest.raises(FetchError) as ei:
        download(f"{closed_port_url}/x.tsv", tmp_path / "new" / "x.tsv", progress=False)
    msg = str(ei.value)
    assert "\n" not in msg and "connection refused" in msg and f"{closed_port_url}/x.tsv" in msg
    assert isinstance(ei.value, ConnectionError)
    assert not (tmp_path / "new").exists()


def test_http_error_and_check_hooks(server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        download(f"{server.url}/missing", tmp_path / "m", progress=False)
    serve(server, "/plain", b"plain bytes")

    def refuse(data: bytes) -> None:
        raise ValueError(f"bad content {data[:5]!r}")

    with pytest.raises(ValueError, match="bad content b'plain'"):
        download(f"{server.url}/plain", tmp_path / "p", check=refuse, progress=False)
    assert leftovers(tmp_path) == []
    download(f"{server.url}/plain", tmp_path / "p.gz", check=gzip.compress, progress=False)
    assert gzip.decompress((tmp_path / "p.gz").read_bytes()) == b"plain bytes"


def test_progress_bar_on_a_terminal(server, tmp_path):
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    serve(server, "/t.bin", bytes(150_000))
    out = Terminal()
    download(f"{server.url}/t.bin", tmp_path / "t.bin", stream=out)
    assert "t.bin:" in out.getvalue() and "150k" in out.getvalue()  # tqdm's bar
    silent = io.StringIO()
    download(f"{server.url}/t.bin", tmp_path / "u.bin", stream=silent, progress=False)
    assert silent.getvalue() == ""


# -- Tratz ------------------------------------------------------------------------------------


@pytest.fixture
def tratz_files(data_root):
    d = data_root / "tratz" / SPLIT
    if not (d / "train.tsv").is_file():
        pytest.skip(f"Tratz {SPLIT} not under {data_root}")
    return {p: (d / f"{p}.tsv").read_bytes() for p in ("train", "val")}


def serve_split(srv, files, split=SPLIT):
    for part, data in files.items():
        serve(srv, tratz.split_url(split, part, srv.url), data)


def test_download_split_checks_the_published_checksums(server, tratz_files, tmp_path):
    serve_split(server, tratz_files)
    d = tratz.download_split(SPLIT, tmp_path, parts=("train", "val"), base_url=server.url,
                             progress=False)
    assert d == tmp_path / "tratz" / SPLIT
    assert leftovers(d) == ["train.tsv", "val.tsv"]
    train, val = tratz.load_split(SPLIT, tmp_path)
    assert (len(train), len(val)) == (4730, 1614)
    asked = len(server.requests)
    tratz.download_split(SPLIT, tmp_path, parts=("train", "val"), base_url=server.url)
    assert len(server.requests) == asked  # present and verified: nothing fetched again


def test_download_split_refuses_a_corrupt_file(server, tratz_files, tmp_path):
    bad = dict(tratz_files, val=tratz_files["val"].replace(b"a", b"e", 1))  # still well-formed
    serve_split(server, bad)
    with pytest.raises(ChecksumError, match="val.tsv: sha256"):
        tratz.download_split(SPLIT, tmp_path, parts=("train", "val"), base_url=server.url,
                             progress=False)
    d = tmp_path / "tratz" / SPLIT
    assert leftovers(d) == ["train.tsv"]  # verified and kept; the corrupt val never placed


def test_download_split_interrupted_then_resumed(server, tratz_files, tmp_path):
    serve_split(server, tratz_files)
    train_path = urlparse(tratz.split_url(SPLIT, "train", server.url)).path
    server.cut.add(train_path)
    with pytest.raises(FetchError, match="closed after"):
        tratz.download_split(SPLIT, tmp_path, parts=("train", "val"), base_url=server.url,
                             progress=False)
    assert leftovers(tmp_path) == []
    server.cut.clear()
    tratz.download_split(SPLIT, tmp_path, parts=("train", "val"), base_url=server.url,
                         progress=False)
    assert (tmp_path / "tratz" / SPLIT / "train.tsv").read_bytes() == tratz_files["train"]


def test_download_split_checks_the_format_of_unchecksummed_test(server, tratz_files, tmp_path):
    serve_split(server, dict(tratz_files, test=b"steel bridge containment\n"))
    with pytest.raises(tratz.DataFormatError, match=r"test\.tsv:1: expected 3 TAB-separated"):
        tratz.download_split(SPLIT, tmp_path, base_url=server.url, progress=False)
    assert leftovers(tmp_path / "tratz" / SPLIT) == ["train.tsv", "val.tsv"]


def test_download_split_offline_names_the_command_and_folder(closed_port_url, tmp_path,
                                                             monkeypatch):
    monkeypatch.delenv("THETANET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FetchError) as ei:
        tratz.download_split(SPLIT, parts=("train", "val"), base_url=closed_port_url)
    msg = str(ei.value)
    folder = tmp_path / "cache" / "thetanet" / "tratz" / SPLIT
    assert "\n" not in msg and "connection refused" in msg
    assert "`thetanet data fetch tratz`" in msg and f"into {folder}/" in msg
    assert "from the default" in msg and "from $THETANET_DATA" not in msg
    with pytest.raises(FetchError) as ei:
        tratz.download_split(SPLIT, tmp_path / "root", base_url=closed_port_url)
    assert "`thetanet data fetch tratz --data-dir " in str(ei.value)
    assert not (tmp_path / "root").exists()


def test_missing_split_says_which_command_and_where(tmp_path, monkeypatch):
    monkeypatch.delenv("THETANET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as ei:
        tratz.load_split(SPLIT)
    msg = str(ei.value)
    assert f"into {tmp_path / 'thetanet' / 'tratz' / SPLIT}/" in msg
    assert "`thetanet data fetch tratz`" in msg and "from the default" in msg
    assert "from $THETANET_DATA" not in msg and "\n" not in msg
    monkeypatch.setenv("THETANET_DATA", str(tmp_path / "set"))
    with pytest.raises(FileNotFoundError, match=r"from \$THETANET_DATA"):
        tratz.load_split(SPLIT)


# -- MNIST ------------------------------------------------------------------------------------


@pytest.fixture
def t10k(mnist_root):
    paths = [mnist_root / "mnist" / f"{n}.gz" for n in idx.MNIST_FILES["t10k"]]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"MNIST t10k not under {mnist_root}")
    return {p.name: p.read_bytes() for p in paths}


def test_mnist_from_the_second_mirror_and_plain_payloads(server, closed_port_url, t10k,
                                                         tmp_path):
    for name, blob in t10k.items():  # labels served uncompressed: stored compressed
        serve(server, f"/m/{name}", gzip.decompress(blob) if "labels" in name else blob)
    d = idx.download_mnist(["t10k"], tmp_path, mirrors=[closed_port_url, f"{server.url}/m/"],
                           progress=False)
    assert leftovers(d) == sorted(t10k)
    assert (d / "t10k-labels-idx1-ubyte.gz").read_bytes()[:2] == b"\x1f\x8b"
    images, labels = idx.read_mnist("t10k", tmp_path)
    assert images.shape == (10000, 28, 28) and labels[:3].tolist() == [7, 2, 1]
    asked = len(server.requests)
    idx.download_mnist(["t10k"], tmp_path, mirrors=[f"{server.url}/m/"])
    assert len(server.requests) == asked


def test_mnist_modified_content_is_refused(server, t10k, tmp_path):
    raw = bytearray(gzip.decompress(t10k["t10k-images-idx3-ubyte.gz"]))
    raw[5000] ^= 0xFF  # one pixel: the structure is fine, the sha256 is not
    serve(server, "/t10k-images-idx3-ubyte.gz", gzip.compress(bytes(raw)))
    with pytest.raises(FetchError, match="sha256 .* differs") as ei:
        idx.download_mnist(["t10k"], tmp_path, mirrors=[server.url], progress=False)
    assert "\n" not in str(ei.value) and "when online" not in str(ei.value)
    assert leftovers(tmp_path) == []


def test_mnist_existing_corrupt_file_needs_overwrite(server, t10k, tmp_path):
    d = tmp_path / "mnist"
    idx.write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    idx.write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))  # a plain stale file
    for name, blob in t10k.items():
        serve(server, f"/{name}", blob)
    with pytest.raises(idx.IdxFormatError, match="overwrite=True"):
        idx.download_mnist(["t10k"], tmp_path, mirrors=[server.url], progress=False)
    idx.download_mnist(["t10k"], tmp_path, mirrors=[server.url], overwrite=True,
                       progress=False)
    assert idx.read_mnist("t10k", tmp_path)[0].shape[0] == 10000
    assert leftovers(d) == sorted(t10k)  # the stale plain file no longer shadows the new one


def test_mnist_offline_is_one_line(closed_port_url, tmp_path):
    with pytest.raises(FetchError) as ei:
        idx.download_mnist(["t10k"], tmp_path, mirrors=[closed_port_url, closed_port_url])
    msg = str(ei.value)
    assert "\n" not in msg and msg.count("connection refused") == 2
    assert "when online, run `thetanet data fetch mnist --data-dir" in msg
    assert f"into {tmp_path / 'mnist'}/" in msg


def test_read_mnist_missing_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST train not found.*`thetanet data fetch "
                                                r"mnist --data-dir [^`]*`.*from --data-dir"):
        idx.read_mnist("train", tmp_path)


# -- the CLI ----------------------------------------------------------------------------------


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "thetanet.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_fetch_then_where(server, tratz_files, t10k, tmp_path, capsys):
    serve_split(server, tratz_files)
    for name, blob in t10k.items():
        serve(server, f"/{name}", blob)
    root = str(tmp_path / "root")
    assert main(["data", "fetch", "tratz", "--split", SPLIT, "--data-dir", root,
                 "--mirror", server.url]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == (f"tratz {SPLIT}: train.tsv, val.tsv fetched into "
                           f"{tmp_path / 'root' / 'tratz' / SPLIT} (verified)")
    assert err.count("fetching ") == 2
    assert main(["data", "fetch", "mnist", "--split", "t10k", "--data-dir", root,
                 "--mirror", server.url, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("mnist t10k: ") and err == ""
    assert main(["data", "where", "--data-dir", root, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["data_root"] == {"path": root, "from": "--data-dir",
                                 "resolution": "--data-dir, else $THETANET_DATA, else "
                                               "~/.cache/thetanet"}
    assert info["tratz"][SPLIT]["ok"] and not info["tratz"]["fine_random"]["ok"]
    assert info["tratz"]["fine_random"]["files"]["train.tsv"] == "missing"
    assert info["mnist"]["t10k"] and not info["mnist"]["train"]
    assert main(["data", "where", "--data-dir", root]) == 0
    text = capsys.readouterr().out
    assert f"{SPLIT}" in text and "ok (sha256 verified)" in text
    assert f"thetanet data fetch tratz --data-dir {root}" in text


def test_cli_offline_is_one_line_without_traceback(closed_port_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "THETANET_DATA"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    r = run_cli("data", "fetch", "tratz", "--mirror", closed_port_url, env=env)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("thetanet data: error: could not download")
    assert f"`thetanet data fetch tratz --mirror {closed_port_url}` when online" in lines[0]
    assert f"under {tmp_path / 'thetanet' / 'tratz'}/: fine_random/train.tsv" in lines[0]
    assert "from the default" in lines[0] and "from $THETANET_DATA" not in lines[0]


def test_cli_fetch_into_a_read_only_root_is_one_line(server, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        serve(server, tratz.split_url(SPLIT, "train", server.url), b"x")
        r = run_cli("data", "fetch", "tratz", "--split", SPLIT, "--data-dir", str(ro),
                    "--mirror", server.url)
    finally:
        ro.chmod(0o755)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert "cannot write to" in r.stderr and "--data-dir" in r.stderr


def test_cli_unknown_split(tmp_path, capsys):
    assert main(["data", "fetch", "tratz", "--split", "fine", "--data-dir", str(tmp_path)]) == 2
    assert "unknown tratz split 'fine'" in capsys.readouterr().err
