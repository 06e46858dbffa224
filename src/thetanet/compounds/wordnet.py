"""Finding and opening WordNet 3.0 with nltk, wherever it is installed.

Looked for, in order: an explicit directory, ``$THETANET_WORDNET``, the Debian/Ubuntu
``wordnet-base`` package (``/usr/share/wordnet``), then nltk's data path
(``nltk.download('wordnet')``).

Debian's ``wordnet-base`` leaves out the ``lexnames`` file that nltk's reader needs. It is
a fixed list of the 45 lexicographer file names of WordNet 3.0, so the reader below serves
it from memory instead of writing anything next to the system files.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path
from typing import Any

__all__ = ["LEXNAMES", "WordNetMissingError", "find_wordnet", "load_wordnet"]

ENV_VAR = "THETANET_WORDNET"
SYSTEM_DIRS = ("/usr/share/wordnet", "/usr/local/share/wordnet", "/opt/homebrew/share/wordnet")

#: The lexicographer files of WordNet 3.0, in the order of their numbers (lexnames(5WN)).
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition", "noun.communication",
    "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive",
    "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)  # fmt: skip
_SYNTACTIC_CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}

INSTALL_HINT = (
    "install WordNet 3.0 with `sudo apt-get install wordnet-base` (Debian/Ubuntu) or "
    "`python -c \"import nltk; nltk.download('wordnet')\"`, or point "
    f"${ENV_VAR} at a directory holding index.noun and data.noun"
)


class WordNetMissingError(RuntimeError):
    """WordNet (or nltk) is not installed; the message says how to install it."""


def _lexnames_text() -> str:
    return "".join(
        f"{i:02d}\t{name}\t{_SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
        for i, name in enumerate(LEXNAMES)
    )


def _is_wordnet_dir(path: Path) -> bool:
    return (path / "index.noun").is_file() and (path / "data.noun").is_file()


def find_wordnet(path: str | os.PathLike[str] | None = None) -> Any:
    """Return the WordNet directory (a ``Path``, or an nltk path pointer for a zip).

    Raises :class:`WordNetMissingError` with installation instructions when none is found.
    """
    candidates: list[Path] = []
    if path is not None:
        candidates.append(Path(path).expanduser())
    elif os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]).expanduser())
    else:
        candidates.extend(Path(p) for p in SYSTEM_DIRS)
    for c in candidates:
        if _is_wordnet_dir(c):
            return c.resolve()
    if path is not None or os.environ.get(ENV_VAR):
        raise WordNetMissingError(f"no WordNet found in {candidates[0]}; {INSTALL_HINT}")
    try:
        import nltk.data

        try:
            found = nltk.data.find("corpora/wordnet")
        except LookupError:
            found = nltk.data.find("corpora/wordnet.zip/wordnet/")  # as nltk.download leaves it
        plain = getattr(found, "path", None)  # a directory (not a zip): use it as a Path
        if isinstance(plain, str) and _is_wordnet_dir(Path(plain)):
            return Path(plain).resolve()
        return found
    except ImportError:
        raise WordNetMissingError(
            "the wordnet features need nltk (`pip install nltk`) and WordNet 3.0; " + INSTALL_HINT
        ) from None
    except LookupError:
        looked = ", ".join(SYSTEM_DIRS)
        raise WordNetMissingError(
            f"WordNet 3.0 not found (looked in {looked} and nltk's data path); {INSTALL_HINT}"
        ) from None


def wordnet_fingerprint(root: Any) -> str:
    """A short string identifying a WordNet installation (path, size and mtime of data.noun)."""
    if isinstance(root, Path):
        st = (root / "data.noun").stat()
        return f"{root}|{st.st_size}|{st.st_mtime_ns}"
    return str(root)


_LOCK = threading.Lock()
_READERS: dict[str, Any] = {}


def load_wordnet(path: str | os.PathLike[str] | None = None) -> Any:
    """Open WordNet with nltk's ``WordNetCorpusReader`` (cached per directory).

    Works with a Debian ``wordnet-base`` directory (which lacks ``lexnames``) as well as
    with nltk's own downloaded copy.
    """
    root = find_wordnet(path)
    key = str(root)
    with _LOCK:
        if key in _READERS:
            return _READERS[key]
        try:
            import nltk.data
            from nltk.corpus.reader.wordnet import WordNetCorpusReader
        except ImportError:
            raise WordNetMissingError(
                "the wordnet features need nltk: `pip install nltk`; " + INSTALL_HINT
            ) from None

        class _Reader(WordNetCorpusReader):
            def open(self, file: str) -> Any:  # noqa: A003 - nltk's API
                if file == "lexnames":
                    try:
                        return super().open(file)
                    except (OSError, LookupError):  # Debian's wordnet-base lacks it
                        return io.StringIO(_lexnames_text())
                return super().open(file)

            def map_wn(self, version: str = "wordnet") -> None:
                # Only needed to map other WordNet versions onto this one (OMW); we read 3.0.
                return None

        if isinstance(root, Path):
            # Recent nltk only opens corpora below a directory on nltk.data.path.
            roots = [str(p) for p in nltk.data.path]
            if str(root) not in roots:
                nltk.data.path.append(str(root))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "multilingual functions are not available"
            reader = _Reader(root if not isinstance(root, Path) else str(root), None)
        _READERS[key] = reader
        return reader
