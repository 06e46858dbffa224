"""Pins macro-F1 over an inventory larger than the labels seen (issue 18, behaviour 5).

scikit-learn's ``f1_score(average="macro")`` averages over the labels present in ``y_true`` or
``y_pred``; a class in neither is left out (passing it in ``labels=`` would add a 0 to the
mean). thetanet's metric, given ``num_classes`` (as ``nc score`` / ``nc evaluate`` give the
whole relation inventory), must agree with that default, and a perfect prediction of a
two-relation file must score macro-F1 1.0.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score as sk_f1

from thetanet import metrics
from thetanet.cli import main
from thetanet.compounds.scoring import score_labels
from thetanet.data.tratz import labels_for


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_f1_with_absent_classes_is_sklearns(seed, average):
    rng = np.random.default_rng(seed)
    k = 12
    used = rng.choice(k, size=int(rng.integers(1, 6)), replace=False)  # most classes absent
    y_true = rng.choice(used, 60)
    y_pred = np.where(rng.random(60) < 0.6, y_true, rng.choice(used, 60))
    want = sk_f1(y_true, y_pred, average=average, zero_division=0)
    assert metrics.f1_score(y_true, y_pred, average, num_classes=k) == pytest.approx(want,
                                                                                     abs=1e-12)
    assert metrics.f1_score(y_true, y_pred, average) == pytest.approx(want, abs=1e-12)


def test_a_class_only_predicted_counts_in_the_macro_mean():
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 3])
    want = sk_f1(y_true, y_pred, average="macro", zero_division=0)  # over {0, 1, 3}
    assert metrics.f1_score(y_true, y_pred, "macro", num_classes=6) == pytest.approx(want)
    assert want == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_score_labels_with_the_whole_inventory():
    inventory = list(labels_for("fine_random"))
    rng = np.random.default_rng(0)
    used = [inventory[i] for i in rng.choice(len(inventory), 4, replace=False)]
    gold = [used[i] for i in rng.integers(0, 4, 50)]
    pred = [g if rng.random() < 0.7 else used[int(rng.integers(0, 4))] for g in gold]
    result = score_labels(gold, pred, inventory)
    assert result["macro_f1"] == pytest.approx(sk_f1(gold, pred, average="macro"), abs=1e-12)
    assert result["weighted_f1"] == pytest.approx(sk_f1(gold, pred, average="weighted"),
                                                  abs=1e-12)
    assert set(result["per_relation"]) == set(gold) | set(pred)


def _score(tmp_path, gold_rows, pred_labels, capsys) -> dict:
    gold = tmp_path / "gold.tsv"
    gold.write_text("".join(f"{m}\t{h}\t{r}\n" for m, h, r in gold_rows))
    pred = tmp_path / "pred.tsv"
    pred.write_text("".join(f"{m}\t{h}\t{p}\t0.9\n" for (m, h, _), p in zip(gold_rows,
                                                                         pred_labels)))
    capsys.readouterr()
    assert main(["nc", "score", "--gold", str(gold), "--pred", str(pred), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


ROWS = [("olive", "oil", "SUBSTANCE-MATERIAL-INGREDIENT"), ("morning", "meeting", "TIME-OF1"),
        ("steel", "bridge", "SUBSTANCE-MATERIAL-INGREDIENT"), ("night", "shift", "TIME-OF1")]


def test_nc_score_perfect_two_relation_file_is_one(tmp_path, capsys):
    out = _score(tmp_path, ROWS, [r for _, _, r in ROWS], capsys)
    assert out["macro_f1"] == 1.0 and out["weighted_f1"] == 1.0 and out["accuracy"] == 1.0


def test_nc_score_macro_f1_is_sklearns(tmp_path, capsys):
    pred = ["SUBSTANCE-MATERIAL-INGREDIENT", "SUBSTANCE-MATERIAL-INGREDIENT",
            "SUBSTANCE-MATERIAL-INGREDIENT", "TIME-OF1"]
    out = _score(tmp_path, ROWS, pred, capsys)
    gold = [r for _, _, r in ROWS]
    assert out["macro_f1"] == pytest.approx(sk_f1(gold, pred, average="macro"), abs=1e-12)
    assert out["weighted_f1"] == pytest.approx(sk_f1(gold, pred, average="weighted"),
                                               abs=1e-12)


def test_nc_evaluate_macro_f1_is_sklearns(tmp_path, capsys):
    """``nc evaluate`` scores over the model's whole inventory (37 relations): its macro-F1
    is still scikit-learn's over the relations present in gold or predictions."""
    from thetanet.compounds.system import NCClassifier, NCSettings
    from thetanet.data.tratz import Compounds

    inventory = list(labels_for("fine_random"))
    rels = [inventory[3], inventory[7], inventory[11]]
    rng = np.random.default_rng(1)

    def compounds(n):
        mods = [f"m{i}" for i in rng.integers(0, 9, n)]
        heads = [f"h{i}" for i in rng.integers(0, 9, n)]
        return Compounds(mods, heads, [rels[int(m[1:]) % 3] for m in mods])

    settings = NCSettings(features=["words"], learning_rate=0.05, max_epochs=20, seeds=[0])
    clf = NCClassifier(settings, inventory)
    clf.fit(compounds(60), compounds(20), cache_dir=False)
    model = clf.save(tmp_path / "model")
    test = compounds(25)
    gold = tmp_path / "gold.tsv"
    gold.write_text("".join(f"{m}\t{h}\t{r}\n" for m, h, r in zip(test.modifiers, test.heads,
                                                                   test.labels or [])))
    capsys.readouterr()
    assert main(["nc", "evaluate", "--model", str(model), "--input", str(gold), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pred, _ = clf.predict(test)
    want = sk_f1(test.labels, pred, average="macro", zero_division=0)
    assert out["macro_f1"] == pytest.approx(want, abs=1e-12)
    assert want > 0.5  # the model learned (a 0 would hide how the mean is taken)
    assert len(set(pred) | set(rels)) < len(inventory)  # most relations are absent
