"""Issue 27, items 1, 9 and 10 (fetch): every MNIST file pinned by SHA-256, stale temp files of
killed downloads removed, a deadline per file, header and size checked while a gzip streams,
and ``--overwrite`` reporting what it did."""

from __future__ import annotations

import gzip
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from thetanet.cli import main
from thetanet.data import fetch, idx, tratz
from thetanet.data.fetch import FetchError, download
from thetanet.data.idx import IdxFormatError, encode_idx


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body, how = self.server.files.get(self.path, (None, ""))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        promised = len(body) * (2 if how == "stall" else 1)
        self.send_header("Content-Length", str(promised))
        self.end_headers()
        try:
            if how == "trickle":  # one byte at a time, steadily: never a socket timeout
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    self.server.sent += 1
                    time.sleep(0.01)
            else:
                self.wfile.write(body)
                self.wfile.flush()
                if how == "stall":  # then hold the connection, promising more
                    self.server.release.wait(10)
                    self.server.stall_over.set()
        except OSError:  # the client gave up: what these tests want
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.release, srv.stall_over, srv.sent = {}, threading.Event(), threading.Event(), 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join()


def _train_fakes() -> dict[str, bytes]:
    """All-zero images and sorted labels with MNIST's published counts: right structure,
    right per-digit counts, wrong content."""
    counts = idx.MNIST_LABEL_COUNTS["train"]
    labels = np.repeat(np.arange(10, dtype=np.uint8), counts)
    images = np.zeros((60000, 28, 28), np.uint8)
    return {"train-images-idx3-ubyte": gzip.compress(encode_idx(images), 1),
            "train-labels-idx1-ubyte": gzip.compress(encode_idx(labels), 1)}


# -- item 1: train files pinned -------------------------------------------------------------


def test_every_mnist_file_has_a_pinned_sha256():
    names = [n for pair in idx.MNIST_FILES.values() for n in pair]
    assert sorted(idx.MNIST_SHA256) == sorted(names)
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in idx.MNIST_SHA256.values())


def test_a_mirror_serving_fake_train_files_is_refused(server, tmp_path):
    for name, blob in _train_fakes().items():
        server.files[f"/m/{name}.gz"] = (blob, "")
    with pytest.raises(FetchError, match="sha256") as err:
        idx.download_mnist(["train"], tmp_path, mirrors=[f"{server.url}/m/"], progress=False)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.rglob("*.gz")) and not list(tmp_path.rglob("*.tmp"))
    assert not idx.mnist_available("train", tmp_path)


# -- item 9: header and size while streaming; deadline; stale temp files --------------------


@pytest.mark.parametrize("name", ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"])
def test_a_gzip_bomb_stops_at_the_expected_size_while_streaming(server, tmp_path, name):
    header, size = idx._expected_size(name)
    bomb = gzip.compress(header + bytes(20 * 2**20), 9)  # 20 MB of zeros after the header
    server.files[f"/{name}.gz"] = (bomb, "stall")  # then the server hangs, promising more
    with pytest.raises(IdxFormatError, match=f"more than the expected {size} bytes"):
        download(f"{server.url}/{name}.gz", tmp_path / f"{name}.gz", progress=False,
                 timeout=20, check=idx._stored_form(name, "u"),
                 watch=idx.stream_check(name, "u"))
    # refused during the stream, not at its (never) end: the server still holds the connection
    assert not server.stall_over.is_set()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("payload", [b"<html>mirror moved</html>" * 100,
                                     encode_idx(np.zeros(60000, np.uint8))[:8] + bytes(100),
                                     b"\x00\x00\x08\x03" + bytes(100)])
def test_a_wrong_header_stops_at_the_first_block(server, tmp_path, payload):
    name = "train-images-idx3-ubyte"
    for body in (payload, gzip.compress(payload)):
        server.files[f"/{name}.gz"] = (body, "stall")
        with pytest.raises(IdxFormatError, match="header"):
            download(f"{server.url}/{name}.gz", tmp_path / "x.gz", progress=False,
                     timeout=20, watch=idx.stream_check(name, "u"))
    assert list(tmp_path.iterdir()) == []


def test_the_stream_check_accepts_the_real_t10k_in_any_blocking(mnist_root):
    src = mnist_root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    if not src.is_file():  # an uncompressed copy only
        pytest.skip("no gzipped t10k labels")
    blob = src.read_bytes()
    for step in (1, 7, 4096, len(blob)):
        watch = idx.stream_check("t10k-labels-idx1-ubyte", "u")
        for i in range(0, len(blob), step):
            watch(blob[i:i + step])
        assert watch.inflated == 10008


def test_a_trickling_server_meets_the_deadline(server, tmp_path):
    server.files["/slow.bin"] = (bytes(4000), "trickle")  # ~40 s at one byte per 10 ms
    with pytest.raises(FetchError, match="still downloading after 0.5 s"):
        download(f"{server.url}/slow.bin", tmp_path / "slow.bin", progress=False,
                 timeout=30, deadline=0.5)
    assert server.sent < 4000  # it gave up mid-body, not at the end
    assert list(tmp_path.iterdir()) == []


def test_progress_shows_life_for_a_slow_small_file(server, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "_PROGRESS_EVERY", 0.05)
    server.files["/small.bin"] = (bytes(30), "trickle")
    out = io.StringIO()
    download(f"{server.url}/small.bin", tmp_path / "small.bin", stream=out, timeout=30)
    lines = [ln for ln in out.getvalue().splitlines() if " after " in ln]
    assert lines and "of 30 B" in lines[0]


def test_temp_files_of_killed_downloads_are_removed(server, tmp_path):
    target = tmp_path / "file.bin"
    stale = [tmp_path / ".file.bin.abcd_123.tmp", tmp_path / ".file.bin.ZZZZZZZZ.tmp"]
    kept = [tmp_path / ".file.bin.tmp", tmp_path / ".other.bin.abcd1234.tmp",
            tmp_path / ".file.bin.abcd1234.tmp.keep", tmp_path / "file.bin.abcd1234.tmp"]
    for p in stale + kept:
        p.write_bytes(b"x" * 100)
    server.files["/file.bin"] = (b"payload", "")
    download(f"{server.url}/file.bin", target, progress=False)
    assert target.read_bytes() == b"payload"
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


def test_a_killed_download_leaves_a_temp_file_the_next_one_removes(server, tmp_path):
    import subprocess
    import sys

    server.files["/big.bin"] = (bytes(200_000), "stall")
    code = ("import sys; from thetanet.data.fetch import download; "
            "download(sys.argv[1], sys.argv[2], progress=False, timeout=30)")
    proc = subprocess.Popen([sys.executable, "-c", code, f"{server.url}/big.bin",
                             str(tmp_path / "big.bin")])
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".big.bin.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)  # poll (with a deadline) for the writer's temp file
    temps = list(tmp_path.glob(".big.bin.*.tmp"))
    proc.kill()
    proc.wait()
    assert temps, "the killed download wrote no temp file"
    server.files["/big.bin"] = (b"fresh", "")
    download(f"{server.url}/big.bin", tmp_path / "big.bin", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]


# -- item 10: --overwrite says it downloaded ------------------------------------------------


def test_overwrite_reports_fetched_not_already_there(data_root, tmp_path, capsys):
    split = "coarse_random"
    src = data_root / "tratz" / split
    if not (src / "train.tsv").is_file():
        pytest.skip("no Tratz data")
    gran, kind = split.split("_")
    mirror = tmp_path / "mirror" / f"tratz_{gran}_grained_{kind}"
    mirror.mkdir(parents=True)
    for part in ("train", "val"):
        (mirror / f"{part}.tsv").write_bytes((src / f"{part}.tsv").read_bytes())
    root = tmp_path / "root"
    base = ["data", "fetch", "tratz", "--split", split, "--data-dir", str(root), "-q",
            "--mirror", (tmp_path / "mirror").as_uri()]
    assert main(base) == 0
    assert "fetched into" in capsys.readouterr().out
    assert main(base) == 0
    assert "already in" in capsys.readouterr().out
    assert main([*base, "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "fetched into" in out and "already in" not in out
    assert Path(tratz.split_dir(split, root) / "train.tsv").is_file()


def test_data_where_does_not_call_fake_train_files_found(tmp_path, capsys):
    d = tmp_path / "mnist"
    d.mkdir()
    for name, blob in _train_fakes().items():
        (d / f"{name}.gz").write_bytes(blob)
    assert main(["data", "where", "--data-dir", str(tmp_path)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("mnist"))
    assert "train found but invalid" in line and "sha256" in line
    assert "train found (sha256 verified)" not in line
