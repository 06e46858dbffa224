"""A model knows what it was trained on: evaluating or scoring on seen compounds warns and never
sets the figure beside a published one; predictions for unknown words and low-confidence
predictions are reported."""

import json

import numpy as np
import pytest

from thetanet.cli import main
from thetanet.compounds import provenance
from thetanet.data.tratz import read_tsv

SPLIT = "coarse_lexical"
FAST = ["--features", "words", "--max-epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, data_root):
    """A model refit on train + val (the default) and a train-only one (--no-refit)."""
    root = tmp_path_factory.mktemp("overlap")
    out = {}
    for name, extra in (("refit", []), ("train_only", ["--no-refit"])):
        assert main(["nc", "train", "--split", SPLIT, "--data-dir", str(data_root),
                     "--cache-dir", str(root / "cache"), "--out", str(root / name), *FAST,
                     *extra]) == 0
        out[name] = root / name
    return out


def _run(capsys, *argv):
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out, captured.err


def _evaluate(capsys, model, path, *extra):
    return _run(capsys, "nc", "evaluate", "--model", str(model), "--input", str(path),
                "--cache-dir", str(model.parent / "cache"), *extra)


def _mixed_file(tmp_path, data_root, seen, unseen):
    """``seen`` compounds of the split's train data, then ``unseen`` made-up ones."""
    train = read_tsv(data_root / "tratz" / SPLIT / "train.tsv", require_label=True)
    rows = [f"{m}\t{h}\t{lab}" for m, h, lab in list(zip(train.modifiers, train.heads,
                                                         train.labels))[:seen]]
    rows += [f"qzmod{i}\tqzhead{i}\t{train.labels[0]}" for i in range(unseen)]
    path = tmp_path / "mixed.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_evaluate_on_val_of_a_refit_model_warns(models, data_root, capsys):
    val = data_root / "tratz" / SPLIT / "val.tsv"
    n = len(read_tsv(val, require_label=True))
    out, err = _evaluate(capsys, models["refit"], val)
    assert f"WARNING: {n:,} of {n:,} compounds in val.tsv were in this model's training " \
           "data" in err
    assert "published" not in out  # never beside the published (test) best
    assert f"seen by the model: {n:,} of {n:,} compounds" in out
    out, err = _evaluate(capsys, models["refit"], val, "--json")
    assert json.loads(out)["overlap"] == {"seen": n, "total": n, "trained": n, "selected": 0}
    assert "WARNING" in err


def test_evaluate_counts_a_partial_overlap(models, data_root, tmp_path, capsys):
    path = _mixed_file(tmp_path, data_root, seen=3, unseen=1497)
    out, err = _evaluate(capsys, models["refit"], path)
    assert "3 of 1,500 compounds in mixed.tsv were in this model's training data" in err
    assert "published" not in out
    out, _ = _evaluate(capsys, models["refit"], path, "--json")
    assert json.loads(out)["overlap"]["seen"] == 3


def test_held_out_data_is_compared_with_the_published_best(models, data_root, tmp_path,
                                                           capsys):
    path = _mixed_file(tmp_path, data_root, seen=0, unseen=20)
    out, err = _evaluate(capsys, models["refit"], path)
    assert "WARNING" not in err
    assert f"published best weighted-F1 on {SPLIT} (test)" in out
    out, _ = _evaluate(capsys, models["refit"], path, "--json")
    assert json.loads(out)["overlap"] == {"seen": 0, "total": 20, "trained": 0, "selected": 0}


def test_val_of_a_train_only_model_is_its_selection_data(models, data_root, capsys):
    val = data_root / "tratz" / SPLIT / "val.tsv"
    n = len(read_tsv(val, require_label=True))
    out, err = _evaluate(capsys, models["train_only"], val, "--json")
    assert json.loads(out)["overlap"] == {"seen": n, "total": n, "trained": 0, "selected": n}
    assert "validation data that chose this model's epochs" in err
    doc = json.loads((models["train_only"] / "nc.json").read_text())
    assert doc["report"]["trained_on"]["compounds"] == len(
        read_tsv(data_root / "tratz" / SPLIT / "train.tsv", require_label=True))


def test_score_with_the_model_warns_too(models, data_root, tmp_path, capsys):
    path = _mixed_file(tmp_path, data_root, seen=4, unseen=6)
    pred = tmp_path / "pred.tsv"
    _run(capsys, "nc", "predict", "--model", str(models["refit"]), "--input", str(path),
         "--output", str(pred), "--cache-dir", str(models["refit"].parent / "cache"))
    out, err = _run(capsys, "nc", "score", "--gold", str(path), "--pred", str(pred),
                    "--model", str(models["refit"]), "--json")
    assert json.loads(out)["overlap"]["seen"] == 4
    assert "4 of 10 compounds in mixed.tsv were in this model's training data" in err
    out, err = _run(capsys, "nc", "score", "--gold", str(path), "--pred", str(pred), "--json")
    assert json.loads(out)["overlap"] is None and err == ""  # no model: nothing known


@pytest.mark.filterwarnings("ignore:.*no checksum of its own")
def test_a_model_saved_before_the_digest_says_so(tmp_path, capsys):
    import shutil
    from pathlib import Path

    from thetanet.compounds.system import NCClassifier

    model = tmp_path / "nc"
    shutil.copytree(Path(__file__).resolve().parent / "fixtures" / "nc_v2", model)
    clf = NCClassifier.load(model, cache_dir=False)
    gold = tmp_path / "gold.tsv"
    gold.write_text("".join(f"x{i}\ty{i}\t{clf.labels[i % 3]}\n" for i in range(4)))
    pred = tmp_path / "pred.tsv"
    pred.write_text("".join(f"x{i}\ty{i}\t{clf.labels[0]}\t0.5\n" for i in range(4)))
    out, _ = _run(capsys, "nc", "score", "--gold", str(gold), "--pred", str(pred), "--model",
                  str(model))
    assert "does not record what it was trained on" in out
    assert "published best weighted-F1" not in out


def test_digest_round_trip_and_size():
    mods = [f"m{i}" for i in range(1000)] + ["Olive"]
    heads = [f"h{i}" for i in range(1000)] + ["oil "]
    digest = provenance.compound_digest(mods, heads)
    doc = provenance.encode_digest(digest)
    assert doc["compounds"] == 1001 and len(doc["blake2b64"]) <= 4 * 1001 * 8 // 3 + 4
    back = provenance.decode_digest(json.loads(json.dumps(doc)))
    np.testing.assert_array_equal(back, digest)
    seen = provenance.overlap(["olive", "m3", "new"], ["oil", "h3", "thing"], back)
    assert (seen.seen, seen.total, seen.trained) == (2, 3, 2)  # case and spaces ignored
    assert "2 of 3 compounds in f were in this model's training data" in seen.warning("f")
    with pytest.raises(ValueError, match="malformed"):
        provenance.decode_digest({"compounds": 2, "blake2b64": doc["blake2b64"]})


def test_predict_reports_unknown_words_and_low_confidence(models, data_root, tmp_path,
                                                          capsys):
    train = read_tsv(data_root / "tratz" / SPLIT / "train.tsv", require_label=True)
    path = tmp_path / "in.tsv"
    path.write_text(f"zxqv\tblorp\n{train.modifiers[0]}\t{train.heads[0]}\n")
    out, err = _run(capsys, "nc", "predict", "--model", str(models["refit"]), "--input",
                    str(path), "--cache-dir", str(models["refit"].parent / "cache"))
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[:2] for r in rows] == [["zxqv", "blorp"], [train.modifiers[0], train.heads[0]]]
    assert "1 of 2 compounds have a word that none of this model's representations knows" \
        in err and "'zxqv blorp'" in err
    low = [r for r in rows if float(r[3]) < 0.3]
    assert low  # two epochs of one-hot words: unsure everywhere
    assert f"{len(low)} of 2 predictions have probability < 0.3 (low confidence)" in err


def test_known_words_per_representation(tmp_path):
    from thetanet.compounds.features import build_features
    from thetanet.compounds.known_words import known_words

    mods, heads = ["zxqv", "olive", "mouthwash"], ["blorp", "oil", "facebook"]
    words = build_features(["words"], (["olive"], ["oil"]), cache_dir=False)
    np.testing.assert_array_equal(known_words(words, mods, heads),
                                  [[False, False], [True, True], [False, False]])
    pytest.importorskip("nltk")
    try:
        wordnet = build_features(["wordnet"], (["olive"], ["oil"]), cache_dir=tmp_path)
    except Exception as exc:  # noqa: BLE001 - WordNet not installed here
        pytest.skip(f"WordNet missing: {exc}")
    got = known_words(wordnet, mods, heads)
    assert got[0].tolist() == [False, False] and got[1].tolist() == [True, True]
    assert got[2, 0]  # WordNet knows mouthwash
    try:
        static = build_features(["minilm-static"], (["olive"], ["oil"]), cache_dir=tmp_path)
    except Exception as exc:  # noqa: BLE001 - the MiniLM package not installed here
        pytest.skip(f"MiniLM missing: {exc}")
    got = known_words(static, mods, heads)
    assert got[0].tolist() == [False, False]  # cut into word-pieces: made-up words
    assert got[1].tolist() == [True, True] and got[2, 1]  # "facebook" is one piece
    # the glosses answer through their own WordNet lookup, and asking never grows its cache
    gloss = build_features(["wordnet-gloss"], (["olive"], ["oil"]), cache_dir=tmp_path)
    inner = gloss.extractors[0].wordnet
    before = dict(inner._mem)
    got = known_words(gloss, mods, heads)
    assert got[0].tolist() == [False, False] and got[1].tolist() == [True, True]
    assert got[2, 0] and not inner.frozen
    assert inner._mem == before
