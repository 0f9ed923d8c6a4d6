"""A small offline corpus of name-like words, a loader for your own text, and the character
vocabulary of the makemore lectures.

The built-in corpus is *generated*, not downloaded: a seeded syllable model strings together
an onset, a vowel nucleus and an optional coda, two or three times, and sometimes ends on a
name-like suffix ("a", "ie", "elle", "son", ...). Every lowercase letter occurs, so the
vocabulary is the familiar 27 symbols: '.' (the word boundary, index 0) and 'a'..'z'.
The generator is ``random.Random(seed).random()`` (Mersenne Twister, whose ``random()`` stream
Python guarantees across versions), so the corpus is the same on every machine.

    words = builtin_words()                       # 4000 distinct words, e.g. 'semem', 'rendelle'
    vocab = build_vocab(words)                    # vocab.stoi['.'] == 0, vocab.itos[1] == 'a'
    train, dev, test = split_words(words)         # 80 / 10 / 10, seeded shuffle
    words = load_words("my_names.txt")            # any UTF-8 file: one word a line, or prose
"""
from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BOUNDARY = "."  # marks both the start and the end of a word, as in makemore

# (piece, weight): weights make common English-like pieces common and rare letters rare.
_ONSETS = [
    ("", 6), ("b", 3), ("br", 1), ("c", 2), ("ch", 1), ("d", 4), ("f", 1), ("g", 2), ("gr", 1),
    ("h", 2), ("j", 3), ("k", 4), ("kr", 1), ("l", 5), ("m", 5), ("n", 4), ("p", 1), ("qu", 1),
    ("r", 5), ("s", 4), ("sh", 2), ("st", 1), ("t", 4), ("th", 1), ("tr", 1), ("v", 2),
    ("w", 1), ("x", 1), ("y", 1), ("z", 2),
]
_NUCLEI = [
    ("a", 10), ("e", 8), ("i", 7), ("o", 5), ("u", 2), ("y", 1), ("ai", 1), ("ea", 1),
    ("ie", 1), ("ou", 1), ("ee", 1),
]
_CODAS = [
    ("", 14), ("n", 4), ("l", 3), ("r", 3), ("s", 1), ("m", 1), ("nd", 1), ("x", 1), ("th", 1),
    ("k", 1), ("v", 1), ("z", 1),
]
_ENDINGS = [
    ("", 12), ("a", 5), ("ie", 2), ("y", 2), ("elle", 1), ("ina", 1), ("son", 1), ("lyn", 1),
    ("iah", 1), ("o", 1), ("en", 2), ("on", 2), ("ia", 1),
]


def _pick(rng: random.Random, table: Sequence[tuple[str, int]]) -> str:
    """One piece drawn with probability proportional to its weight, from one uniform."""
    total = sum(weight for _, weight in table)
    u = rng.random() * total
    for piece, weight in table:
        u -= weight
        if u < 0.0:
            return piece
    return table[-1][0]


def _word(rng: random.Random) -> str:
    u = rng.random()
    syllables = 1 if u < 0.3 else (2 if u < 0.85 else 3)
    parts = []
    for _ in range(syllables):
        parts += [_pick(rng, _ONSETS), _pick(rng, _NUCLEI), _pick(rng, _CODAS)]
    parts.append(_pick(rng, _ENDINGS))
    return "".join(parts)


def builtin_words(n: int = 4000, seed: int = 0) -> list[str]:
    """``n`` distinct name-like words of 2 to 12 lowercase letters, in generation order."""
    if n < 1:
        raise ValueError(f"n must be a positive number of words, got {n}")
    return list(_generate(n, seed))  # a fresh list: callers may shuffle it


@functools.lru_cache(maxsize=8)
def _generate(n: int, seed: int) -> tuple[str, ...]:
    rng = random.Random(seed)
    seen: dict[str, None] = {}  # an insertion-ordered set
    while len(seen) < n:
        word = _word(rng)
        if 2 <= len(word) <= 12:
            seen.setdefault(word)
    return tuple(seen)


def load_words(path: str | Path) -> list[str]:
    """The words of a UTF-8 text file: one word a line, or any text split on whitespace.

    The boundary token '.' separates words too, so it can never appear inside a word (prose
    works: "Hello world." gives ['Hello', 'world']). Case and every other character are kept.
    Raises ``FileNotFoundError`` / ``ValueError`` with one clear sentence for a missing file,
    a directory, a file that is not UTF-8, or a file without a single word.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: '{path}' (expected a UTF-8 text file of words)")
    if not path.is_file():
        raise ValueError(f"'{path}' is not a file (expected a UTF-8 text file of words)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"'{path}' is not UTF-8 text: byte {raw[error.start]:#04x} at offset "
                         f"{error.start} cannot be decoded") from None
    words = text.lstrip("\ufeff").replace(BOUNDARY, " ").split()
    if not words:
        raise ValueError(f"'{path}' contains no words (expected one word a line, or text)")
    return words


def get_words(path: str | Path | None = None) -> list[str]:
    """The user's file if given, else the built-in corpus."""
    return builtin_words() if path is None else load_words(path)


@dataclass(frozen=True)
class Vocab:
    """Character vocabulary: '.' is index 0, the other characters follow in sorted order."""

    stoi: dict[str, int]
    itos: dict[int, str]

    @property
    def size(self) -> int:
        return len(self.itos)

    def encode(self, word: str) -> list[int]:
        """The ids of a word's characters (no boundary tokens added)."""
        try:
            return [self.stoi[ch] for ch in word]
        except KeyError as error:
            raise ValueError(f"character {error.args[0]!r} of {word!r} is not in the "
                             f"vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)


def build_vocab(words: Iterable[str]) -> Vocab:
    """stoi / itos over every character of ``words``, with the boundary '.' at index 0."""
    chars = sorted(set("".join(words)))
    if BOUNDARY in chars:
        raise ValueError(f"the boundary token {BOUNDARY!r} occurs inside a word; words must not "
                         "contain it (load_words splits on it)")
    stoi = {BOUNDARY: 0} | {ch: i + 1 for i, ch in enumerate(chars)}
    return Vocab(stoi=stoi, itos={i: ch for ch, i in stoi.items()})


def split_words(words: Sequence[str], seed: int = 42,
                cuts: tuple[float, float] = (0.8, 0.9)) -> tuple[list[str], list[str], list[str]]:
    """Train / dev / test: shuffle a copy with ``random.Random(seed)`` (as makemore does with
    ``random.seed(42)``), cut at ``cuts`` (80% and 90%: an 80 / 10 / 10 split).
    The same words and seed give the same split."""
    low, high = cuts
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(f"cuts must satisfy 0 < train <= train + dev <= 1, got {cuts}")
    shuffled = list(words)
    random.Random(seed).shuffle(shuffled)
    n1, n2 = int(low * len(shuffled)), int(high * len(shuffled))
    return shuffled[:n1], shuffled[n1:n2], shuffled[n2:]


def bigram_pairs(words: Sequence[str], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Every (character, next character) pair of ``.word.`` for each word, as two int64 id
    arrays (xs, ys). Joining the words with single boundaries, ".emma.ava.", gives exactly
    the pairs of ".emma." and ".ava." (the shared '.' ends one word and starts the next)."""
    ids = np.array(vocab.encode(BOUNDARY + BOUNDARY.join(words) + BOUNDARY), dtype=np.int64)
    return ids[:-1], ids[1:]  # (N,), (N,)
