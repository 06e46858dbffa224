"""Long work shows progress on stderr before its result: ``thetanet digits`` training and the
trials of ``nc search`` — a bar on a terminal (tested on a pseudo-terminal), lines elsewhere,
nothing with ``--quiet``. No timings are asserted: only that progress comes before the
result."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

DIGITS = ["digits", "--model", "cnn", "--epochs", "3", "--ensemble", "1", "--threads", "1"]


def _search(data_root, tmp_path, *extra: str) -> list[str]:
    pytest.importorskip("optuna")
    return ["nc", "search", "--split", "coarse_lexical", "--space", "quick", "--trials", "2",
            "--data-dir", str(data_root), "--cache-dir", str(tmp_path / "cache"),
            "--storage", str(tmp_path / "s.db"), *extra]


def _in_terminal(argv: list[str], deadline_s: float = 300.0) -> tuple[str, int]:
    """``thetanet ARGV`` with stdout and stderr on one pseudo-terminal (as in a shell): all it
    wrote, in order, and its exit code. The deadline only guards against a hang."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "thetanet.cli", *argv],
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env={**os.environ, "COLUMNS": "120"}, close_fds=True)
    os.close(slave)
    out = bytearray()
    end = time.monotonic() + deadline_s
    try:
        while time.monotonic() < end:
            if not select.select([master], [], [], 1.0)[0]:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
        code = proc.wait(timeout=max(1.0, end - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return out.decode("utf-8", "replace"), code


def _piped(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thetanet.cli", *argv], capture_output=True,
                          text=True, timeout=300)


def test_digits_on_a_terminal_draws_a_bar_before_the_result():
    text, code = _in_terminal(DIGITS)
    assert code == 0, text
    result = text.index("test accuracy:")
    first = text.index("training: training, 3 epochs of 1,438 examples")
    assert first < result
    # a tqdm bar redrawn in place (\r), counting examples, before the result
    assert re.search(r"\rtraining: +\d+%\|", text[:result]), text[:result]
    assert text.index("training: done, 3 epochs") < result


def test_digits_without_a_terminal_writes_lines_and_quiet_writes_none():
    r = _piped(DIGITS)
    assert r.returncode == 0, r.stderr
    assert "training: training, 3 epochs" in r.stderr and "\r" not in r.stderr
    assert re.search(r"training: epoch 3/3, loss [\d.]+, accuracy [\d.]+", r.stderr)
    assert "test accuracy:" in r.stdout and "training:" not in r.stdout
    quiet = _piped([*DIGITS, "--quiet"])
    assert quiet.returncode == 0 and quiet.stderr == ""

    def untimed(text: str) -> str:
        return re.sub(r"[\d.]+ s\n", "", text)

    assert untimed(quiet.stdout) == untimed(r.stdout)  # the same result, seeded


def test_search_on_a_terminal_shows_each_trial_before_the_result(data_root, tmp_path):
    text, code = _in_terminal(_search(data_root, tmp_path))
    assert code == 0, text
    result = text.index("study nc-coarse_lexical: 2 trials")
    header = text.index("search nc-coarse_lexical on coarse_lexical: 2 trial(s)")
    trials = [m.start() for m in re.finditer(
        r"trial [01]: (val weighted-F1 [\d.]+|pruned after \d+ step\(s\)); best [\d.]+ "
        r"\(trial [01]\); [\d.]+ s", text)]
    assert header < min(trials) and len(trials) == 2 and max(trials) < result, text
    assert re.search(r"\rtrials: +\d+%\|", text[:result]), text[:result]


def test_search_without_a_terminal_writes_a_line_per_trial(data_root, tmp_path):
    # (--quiet: test_first_hour_details.py::test_search_database_goes_to_the_user_data_...)
    r = _piped(_search(data_root, tmp_path, "--trials", "1"))
    assert r.returncode == 0, r.stderr
    ended = [line for line in r.stderr.splitlines() if re.search(
        r"trial 0: val weighted-F1 [\d.]+; best [\d.]+ \(trial 0\); [\d.]+ s$", line)]
    assert len(ended) == 1 and "\r" not in r.stderr, r.stderr  # (+ epoch lines if slow)
