"""``nc train --neighbours SPEC|off``: the neighbours block from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SPLIT = "coarse_lexical"
QUICK = ["--features", "minilm-static", "--max-epochs", "2", "--no-refit", "--quiet"]


def _train(tmp_path, data_root, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "thetanet.cli", "nc", "train", "--split", SPLIT, "--data-dir",
         str(data_root), "--cache-dir", str(tmp_path / "cache"), "--out",
         str(tmp_path / "model"), *QUICK, *extra], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("spec", ["k=0", "weight=1e9", "exclude=everything", "colour=red"])
def test_a_bad_spec_is_a_one_line_usage_error(tmp_path, data_root, spec):
    r = _train(tmp_path, data_root, "--neighbours", spec)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "neighbours" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "model").exists()


def test_off_and_a_spec_reach_the_saved_settings(tmp_path, data_root):
    pytest.importorskip("tokenizers")
    for spec, want in (("off", None), ("weight=2,exclude=self,k=10", "weight=2,exclude=self")):
        r = _train(tmp_path, data_root, "--neighbours", spec)
        if r.returncode == 2 and "MiniLM" in r.stderr:
            pytest.skip("the MiniLM table is not installed")
        assert r.returncode == 0, r.stderr[-2000:]
        doc = json.loads((tmp_path / "model" / "nc.json").read_text())
        saved = doc["settings"].get("neighbours")
        if want is None:
            assert saved is None and "neighbours" not in doc
        else:
            assert saved.startswith(want) and "k=10" in saved and doc.get("neighbours")
