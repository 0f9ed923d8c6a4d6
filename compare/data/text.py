"""A small offline text corpus for character-level language models, a loader for your own
text, and nanoGPT-style batches.

The built-in corpus is *generated*, not downloaded: a seeded phrase grammar writes short
fable-like prose ("The old miller walked slowly to the river, and the fox said nothing.")
in paragraphs, with a few hundred distinct words, capitals, punctuation and newlines -- enough
structure for a small GPT to learn spelling, word boundaries and sentence shapes within a few
hundred steps, and small (about 200 kB by default). The generator is
``random.Random(seed).random()`` (Mersenne Twister, whose stream Python guarantees across
versions), so the text is the same on every machine.

    text = builtin_text()                        # str, ~200 kB
    vocab = CharVocab.from_text(text)            # sorted characters; vocab.encode / decode
    data = np.array(vocab.encode(text))          # (N,) int64 token ids
    train, val = split(data)                     # 90 / 10, in order (as nanoGPT)
    x, y = get_batch(train, block_size, batch_size, rng)   # (B, T) inputs, (B, T) targets
    text = load_text("my_book.txt")              # any UTF-8 file
"""
from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NAMES = ["the fox", "the old miller", "a young girl", "the king", "the crow", "a tired horse",
          "the baker", "the little mouse", "an old woman", "the shepherd", "the wolf",
          "a clever cat", "the farmer's son", "the queen", "a grey goose", "the blacksmith"]
_PLACES = ["the river", "the mill", "the forest", "the village", "the castle", "the market",
           "the hill", "the well", "the barn", "the bridge", "the garden", "the sea"]
_THINGS = ["a loaf of bread", "a golden key", "the silver cup", "a basket of apples",
           "an old coat", "a lantern", "the last coin", "a bag of grain", "a red ribbon",
           "a song", "the map", "a wooden box"]
_MOTION = ["walked", "ran", "went", "hurried", "crept", "wandered", "rode", "came back"]
_MANNER = ["slowly", "quickly", "quietly", "at dawn", "in the rain", "alone", "at night",
           "without a word", "once more", "happily"]
_ACTS = ["found", "lost", "carried", "hid", "sold", "wanted", "gave away", "mended", "stole",
         "counted"]
_SAYS = ["said", "asked", "cried", "whispered", "shouted", "answered"]
_SPEECH = ["nothing is free", "the night is long", "who is there", "I have seen it before",
           "we must go home", "that is mine", "the water is cold", "come with me",
           "it was not me", "listen to the wind"]
_TAILS = ["and nobody saw it", "but it was too late", "so the story goes",
          "and the day grew dark", "because the bell had rung", "and that was the end of it",
          "while the others slept", "as the sun went down"]


def _choice(rng: random.Random, items: Sequence[str]) -> str:
    return items[int(rng.random() * len(items))]


def _sentence(rng: random.Random) -> str:
    who = _choice(rng, _NAMES)
    u = rng.random()
    if u < 0.35:
        body = f"{who} {_choice(rng, _MOTION)} {_choice(rng, _MANNER)} to {_choice(rng, _PLACES)}"
    elif u < 0.7:
        body = f"{who} {_choice(rng, _ACTS)} {_choice(rng, _THINGS)} near {_choice(rng, _PLACES)}"
    else:
        speech = _choice(rng, _SPEECH)
        end = "?" if speech.startswith("who") else ","
        body = f'"{speech[0].upper()}{speech[1:]}{end}" {_choice(rng, _SAYS)} {who}'
    if rng.random() < 0.4:
        body += f", {_choice(rng, _TAILS)}"
    return body[0].upper() + body[1:] + "."


@functools.lru_cache(maxsize=4)
def builtin_text(n_chars: int = 200_000, seed: int = 0) -> str:
    """About ``n_chars`` characters of generated prose: paragraphs of 3 to 7 sentences."""
    if n_chars < 1:
        raise ValueError(f"n_chars must be positive, got {n_chars}")
    rng = random.Random(seed)
    paragraphs, size = [], 0
    while size < n_chars:
        count = 3 + int(rng.random() * 5)
        paragraph = " ".join(_sentence(rng) for _ in range(count))
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs)[:n_chars]


def load_text(path: str | Path) -> str:
    """The contents of a UTF-8 text file; one clear sentence for a missing, non-UTF-8 or
    too short (fewer than 2 characters) file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: '{path}' (expected a UTF-8 text file)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as error:
        raise ValueError(f"'{path}' is not UTF-8 text: byte {raw[error.start]:#04x} at offset "
                         f"{error.start} cannot be decoded") from None
    if len(text) < 2:
        raise ValueError(f"'{path}' holds fewer than 2 characters: nothing to predict")
    return text


@dataclass(frozen=True)
class CharVocab:
    """Character-level vocabulary: every distinct character, sorted, numbered from 0."""

    itos: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(tuple(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.itos)

    @functools.cached_property
    def stoi(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.itos)}

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as error:
            raise ValueError(f"character {error.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)


def split(data: np.ndarray, train_fraction: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """The first 90 % for training, the rest for validation (nanoGPT's split)."""
    n = int(train_fraction * len(data))
    return data[:n], data[n:]


def get_batch(data: np.ndarray, block_size: int, batch_size: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``batch_size`` random windows: x = data[i:i+T], y = data[i+1:i+T+1] (shifted by one)."""
    if len(data) <= block_size:
        raise ValueError(f"the text has {len(data)} tokens, fewer than block_size + 1 = "
                         f"{block_size + 1}")
    ix = rng.integers(0, len(data) - block_size, size=batch_size)      # (B,)
    offsets = np.arange(block_size)                                     # (T,)
    x = data[ix[:, None] + offsets]                                     # (B, T)
    y = data[ix[:, None] + offsets + 1]                                 # (B, T)
    return x.astype(np.int64), y.astype(np.int64)
