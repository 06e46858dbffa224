"""Save a small fitted noun-compound system to one directory again and again.

    python tests/helpers/nc_save_loop.py OUT_DIR WRITER_ID ROUNDS REF_FILE

Two of these run at once in the concurrency test. Each writer's system differs (its own
seed); REF_FILE receives the writer's member weights so the test can tell whole models from
mixed ones. Exits 0 when every save succeeded.
"""

from __future__ import annotations

import sys

import numpy as np

from thetanet.compounds.system import NCClassifier, NCSettings
from thetanet.data.tratz import Compounds
from thetanet.files import save_arrays

LABELS = ["A", "B", "C"]


def fitted(writer: int) -> NCClassifier:
    rng = np.random.default_rng(writer)
    words = [f"w{i}" for i in range(12)]
    mods = [words[i] for i in rng.integers(0, 12, 60)]
    heads = [words[i] for i in rng.integers(0, 12, 60)]
    labels = [LABELS[i] for i in rng.integers(0, 3, 60)]
    settings = NCSettings(features=["words"], hidden=[8], max_epochs=2, batch_size=8,
                          seeds=[writer, writer + 100])
    clf = NCClassifier(settings, LABELS)
    clf.fit(Compounds(mods, heads, labels), None, cache_dir=False, epochs=[2, 2])
    return clf


def main(argv: list[str]) -> int:
    out, writer, rounds, ref = argv[0], int(argv[1]), int(argv[2]), argv[3]
    clf = fitted(writer)
    save_arrays(ref, {f"m{i}w{j}": w for i, m in enumerate(clf.members)
                      for j, w in enumerate(m.get_weights())})
    failures = 0
    for i in range(rounds):
        try:
            clf.save(out, metadata={"writer": writer, "round": i})
        except OSError as exc:
            failures += 1
            print(f"save {i} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    print(f"writer {writer}: {failures} failed saves of {rounds}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
