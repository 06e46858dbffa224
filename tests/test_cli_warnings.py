"""The command line shows each warning as one line ``warning: …`` (no source path, no code
line), for every command that loads a model: predict, evaluate and score."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "nc_v2"  # saved by thetanet 0.1: unsigned


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "thetanet.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def _warning_lines(stderr: str) -> list[str]:
    """The stderr lines about the unsigned file; each must be a whole one-line warning."""
    lines = [ln for ln in stderr.splitlines() if "checksum" in ln]
    assert lines, stderr
    for ln in lines:
        assert ln.startswith("warning: ") and "nc.json" in ln, stderr
    assert "UnsignedFileWarning" not in stderr and "Traceback" not in stderr, stderr
    assert ".py:" not in stderr, stderr  # no "file.py:123:" location prefix
    return lines


@pytest.mark.parametrize("command", ["predict", "evaluate", "score"])
def test_loading_an_old_model_warns_in_one_line(tmp_path, command):
    model = tmp_path / "model"
    shutil.copytree(FIXTURE, model)
    gold = tmp_path / "gold.tsv"
    gold.write_text("w1\tw2\tA\nw3\tw4\tB\n", encoding="utf-8")
    pred = tmp_path / "pred.tsv"
    pred.write_text("w1\tw2\tA\t0.5\nw3\tw4\tA\t0.5\n", encoding="utf-8")
    args = {"predict": ["nc", "predict", "--model", str(model), "--input", str(gold),
                        "--cache-dir", str(tmp_path / "cache")],
            "evaluate": ["nc", "evaluate", "--model", str(model), "--input", str(gold),
                         "--cache-dir", str(tmp_path / "cache")],
            "score": ["nc", "score", "--gold", str(gold), "--pred", str(pred),
                      "--model", str(model)]}[command]
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(_warning_lines(r.stderr)) == 1
