"""``nc train`` progress: live on a terminal, plain lines without one, nothing with --quiet."""

import io
import json
import os
import re
import select
import subprocess
import sys
import time

import pytest

from thetanet.cli import main
from thetanet.compounds.recipes import recipe

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def _train_args(data_root, tmp_path, *extra):
    return ["nc", "train", "--split", "coarse_lexical", "--data-dir", str(data_root),
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "model"),
            "--features", "words", "--max-epochs", "4", *extra]


def _run_in_terminal(argv, deadline_s=240.0):
    """Run ``thetanet ARGV`` with stdout and stderr on a pseudo-terminal, as a user's shell
    does; returns the chunks read, each with the seconds since the start, and the exit code."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    # a window of 30 rows × 120 columns (a fresh pseudo-terminal has 0 × 0)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "thetanet.cli", *argv],
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env={**os.environ, "COLUMNS": "120"}, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while time.monotonic() - start < deadline_s:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            chunks.append((time.monotonic() - start, data.decode("utf-8", "replace")))
        code = proc.wait(timeout=max(1.0, deadline_s - (time.monotonic() - start)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return chunks, code


def test_terminal_shows_progress_before_the_result(data_root, tmp_path):
    chunks, code = _run_in_terminal(_train_args(data_root, tmp_path))
    text = "".join(c for _, c in chunks)
    assert code == 0, text
    # the first thing on the terminal says what is happening, before any of the work's output
    assert "loading the split" in chunks[0][1]
    end = text.index("model saved to")  # the result comes last
    before = text[:end]
    # a live bar per member run, redrawn in place (\r without \n) with epoch, val-F1, patience
    assert re.search(r"\rselect 1/1: +\d+%\|", before), before
    assert re.search(r"\rrefit 1/1: \d+epoch", before), before
    patience = recipe("coarse_lexical").patience  # the split _train_args trains
    assert re.search(r"\rselect 1/1:[^\r\n]*val-F1 [\d.]+ \(best [\d.]+ at epoch \d+, "
                     rf"patience \d+/{patience}\)", before), before
    for step in ("features words", "saving the model"):
        assert step in before
    # progress arrived in several pieces, not all at the end
    assert sum(1 for _, c in chunks if "model saved to" not in c) >= 3


def test_plain_lines_without_a_terminal(data_root, tmp_path):
    r = subprocess.run([sys.executable, "-m", "thetanet.cli",
                        *_train_args(data_root, tmp_path, "--no-refit")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert "\r" not in r.stderr and "\x1b" not in r.stderr  # no bar drawing
    assert lines[0].endswith("coarse_lexical: loading the split")
    assert all(line.startswith("[") and " s] " in line for line in lines)
    assert any("select 1/1: epoch 1/4, loss" in line and "patience" in line for line in lines)
    assert any("select 1/1: stopped after epoch 4; best val-F1" in line for line in lines)
    assert not any("refit" in line for line in lines)  # --no-refit
    assert "loading the split" not in r.stdout and "model saved to" in r.stdout


def test_plain_epoch_lines_are_rate_limited():
    from thetanet.callbacks import EarlyStopping
    from thetanet.cli.nc_progress import TrainProgress

    out = io.StringIO()
    progress = TrainProgress(out, live=False, every=3600.0)
    es = EarlyStopping("val_f1_weighted", patience=2, mode="max")
    cb = progress.member("select", 0, 2, 50, es)

    class Model:
        stop_training = False

        def get_weights(self):
            return []

    es.set_model(Model())
    cb.on_train_begin()
    es.on_train_begin()
    for epoch in range(50):
        logs = {"loss": 1.0 / (epoch + 1), "val_f1_weighted": 0.5}
        es.on_epoch_end(epoch, logs)
        cb.on_epoch_end(epoch, logs)
    cb.on_train_end()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # start, the first epoch, the end: not 50 epoch lines
    assert "select 1/2: training (up to 50 epochs)" in lines[0]
    assert "epoch 1/50, loss 1.0000, val-F1 0.5000 (best 0.5000 at epoch 1, patience 0/2)" \
        in lines[1]
    assert "stopped after epoch 50; best val-F1 0.5000 at epoch 1" in lines[2]


def test_quiet_prints_only_the_result(data_root, tmp_path, capsys):
    assert main(_train_args(data_root, tmp_path, "--quiet")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = captured.out.splitlines()
    assert out[0].startswith("val (selection), not test: n=")
    assert out[-1].startswith(f"model saved to {tmp_path / 'model'} (")
    assert len(out) == 3  # the score, the published best (test) beside it, the model
    assert "published best weighted-F1 on coarse_lexical (test)" in out[1]


def test_train_says_what_next_and_where_plots_went(data_root, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    assert main(_train_args(data_root, tmp_path, "--plots", str(plots))) == 0
    out = capsys.readouterr().out
    model = tmp_path / "model"
    assert f'echo "olive oil" | thetanet nc predict --model {model}' in out
    assert f"thetanet nc predict --model {model} --input compounds.tsv" in out
    written = sorted(p.name for p in (plots / "coarse_lexical").iterdir())
    assert written == ["confusion_matrix.png", "learning_curves_seed0.png"]
    assert (f"plots written to {plots / 'coarse_lexical'}: confusion_matrix.png, "
            f"learning_curves_seed0.png") in out
    # the refit model's val score is never printed as a result
    assert "has seen val" in out and out.count("weighted-F1=") == 1


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["nc", "train", "--help"])
    text = capsys.readouterr().out
    assert "(default: fine_random)" in text
    assert "--sequential-refit" in text
    for split in ("fine_random", "fine_lexical", "coarse_random", "coarse_lexical"):
        assert f"\n  {split} " in text  # its recipe, in the epilog
    r = recipe("fine_random")
    assert f"max epochs {r.max_epochs}, patience {r.patience}" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_plots_say_split_model_metric_and_mark_the_chosen_epoch(data_root, tmp_path,
                                                                monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from thetanet import plots

    calls = []
    for name in ("plot_confusion_matrix", "plot_learning_curves"):
        real = getattr(plots, name)

        def spy(*a, _real=real, _name=name, **kw):
            calls.append((_name, kw))
            return _real(*a, **kw)
        monkeypatch.setattr(plots, name, spy)
    assert main(_train_args(data_root, tmp_path, "--plots", str(tmp_path / "p"), "--json")) == 0
    report = json.loads(capsys.readouterr().out)["coarse_lexical"]
    (_, cm), (_, lc) = calls
    assert cm["title"].startswith("coarse_lexical, softmax regression") and \
        "val (selection), not test, weighted-F1" in cm["title"]
    chosen = report["epochs"][0] - 1
    assert lc["chosen_epoch"] == chosen
    assert lc["title"].startswith("coarse_lexical, softmax regression") and \
        f"chosen epoch {chosen + 1}" in lc["title"] and "val weighted-F1" in lc["title"]
    assert report["plots"] == [str(tmp_path / "p" / "coarse_lexical" / n)
                               for n in ("confusion_matrix.png", "learning_curves_seed0.png")]
