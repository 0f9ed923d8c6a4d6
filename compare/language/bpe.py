"""Compare the byte-level BPE tokenizers: the merges learned, the ids, the decoded bytes.

There are no gradients: each case trains both twins on the same text, then compares by name

- ``ids.untrained`` the text's UTF-8 bytes: the encoding before any merge is learned
- ``merges``       the (M, 2) pairs, in the order they were learned (token 256 + k = row k)
- ``ids``          the encoding of a text (often one the tokenizer was not trained on)
- ``decoded``      the UTF-8 bytes of decode(ids) -- equal to the text: the round trip
- ``decoded.cut``  decode(ids[:-1]): a cut that may fall inside a character, where both must
                   insert the same U+FFFD
- ``ids.reloaded`` the ids again, from a fresh tokenizer loaded from the saved file

all integers, so the tolerance is exact. The witness is ``ReferenceBPE``: the textbook
algorithm in plain Python (pair counts in a dict, lists, and the usual encoder that merges
the present pair of lowest rank until none is left), with the same tie rule. It checks the
array versions' vectorized merge (overlapping "aaa" runs) and their encoder, which applies the
merges in learned order instead.

Run: ``python -m compare.language.bpe``. ``--plots DIR`` adds ``bpe_compression.png``: bytes
per token of the names corpus as merges are learned, both twins.
"""
from __future__ import annotations

import functools
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from compare.concept import Bench, Case, Concept, Outcome, Trial
from compare.data.names import builtin_words
from compare.tolerances import Tolerance
from numpy_impl.language import bpe as numpy_twin
from torch_impl.language import bpe as torch_twin

N_BYTES = 256
EXACT = Tolerance(rtol=1e-12)


class ReferenceBPE:
    """Byte-level BPE in plain Python: the witness (no arrays, no vectorization)."""

    def __init__(self) -> None:
        self.merges: list[tuple[int, int]] = []

    def train(self, text: str, vocab_size: int) -> ReferenceBPE:
        ids = list(text.encode("utf-8"))
        self.merges = []
        for k in range(vocab_size - N_BYTES):
            if len(ids) < 2:
                break
            counts = Counter(zip(ids, ids[1:], strict=False))
            pair = min(counts, key=lambda p: (-counts[p], p))  # most frequent, then smallest
            ids = self._merge(ids, pair, N_BYTES + k)
            self.merges.append(pair)
        return self

    @staticmethod
    def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                out.append(new_id)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        return out

    def encode(self, text: str) -> list[int]:
        """The usual encoder: merge the present pair of lowest rank, until none is left."""
        rank = {pair: k for k, pair in enumerate(self.merges)}
        ids = list(text.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:], strict=False),
                       key=lambda p: rank.get(p, len(rank)))
            if pair not in rank:
                break
            ids = self._merge(ids, pair, N_BYTES + rank[pair])
        return ids

    def decode(self, ids: list[int]) -> str:
        vocab = {i: bytes([i]) for i in range(N_BYTES)}
        for k, (a, b) in enumerate(self.merges):
            vocab[N_BYTES + k] = vocab[a] + vocab[b]
        return b"".join(vocab[int(i)] for i in ids).decode("utf-8", errors="replace")


def _as_ids(values: Any) -> np.ndarray:
    """Token ids from either twin (an ndarray, a tensor or a list) as an int64 array."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def tokenize(tokenizer: Any, options: dict[str, Any], save: bool = True) -> dict[str, np.ndarray]:
    """Encode ``options["text"]`` untrained (its bytes), train on ``options["train"]``,
    encode again, decode; the named results. ``tokenizer`` is any object with the twins'
    ``encode`` / ``train`` / ``decode`` / ``merges`` (and ``save`` / ``load`` when saved)."""
    values = {"ids.untrained": _as_ids(tokenizer.encode(options["text"]))}
    tokenizer.train(options["train"], options["vocab_size"])
    ids = _as_ids(tokenizer.encode(options["text"]))
    values |= {"merges": _as_ids(tokenizer.merges).reshape(-1, 2),
               "ids": ids,
               "decoded": _utf8(tokenizer.decode(ids)),
               "decoded.cut": _utf8(tokenizer.decode(ids[:-1]))}
    if save:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "tokenizer.bpe"
            tokenizer.save(path)
            reloaded = type(tokenizer)().load(path)
        values["ids.reloaded"] = _as_ids(reloaded.encode(options["text"]))
    return values


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Both twins (or a user's class in place of one) on the case's texts. The dtype plays
    no part: tokens are integers."""
    options = dict(case.options)
    outcome = Outcome(numpy=tokenize((numpy_cls or case.numpy)(), options),
                      torch=tokenize((torch_cls or case.torch)(), options))
    if trial.builtin and case.builtin is not None:
        outcome.builtin = tokenize(case.builtin(), options, save=False)
    return outcome


# --- texts ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def names_text(n_words: int = 4000) -> str:
    """The built-in names corpus as text, one word a line."""
    return "\n".join(builtin_words()[:n_words]) + "\n"


MIXED = ("Zürich café naïve — Ελληνικά и русский, עברית و العربية, 中文 日本語 한국어; "
         "emoji 👋🏽 🧑🏽‍🚀 🏳️‍🌈 and combining e\u0301 a\u0308. ")
UNSEEN = "Ünïcödé 🦀 ∑ x² ≠ ∞, ça va? 你好 👋🏽 e\u0301"  # characters training never saw


def _case(name: str, train: str, text: str, vocab_size: int) -> Case:
    # fd=False: a tokenizer has no gradients to difference. prepare=None: no weights to perturb.
    return Case(name, numpy=numpy_twin.BPETokenizer, torch=torch_twin.BPETokenizer,
                builtin=ReferenceBPE, prepare=None, fd=False,
                options=dict(train=train, text=text, vocab_size=vocab_size))


def _cases() -> list[Case]:
    names = names_text().splitlines(keepends=True)
    return [
        # the classic: aa -> Z, ab -> Y (a tie with Za, broken by the smaller pair), ZY -> X
        _case("aaabdaaabac", "aaabdaaabac", "aaabdaaabac", N_BYTES + 3),
        _case("names", "".join(names[:300]), "".join(names[300:340]), N_BYTES + 64),
        _case("unicode", MIXED * 3, UNSEEN + MIXED[:40], N_BYTES + 40),
        # runs of one byte: overlapping occurrences merge left to right ("aaa" -> [aa, a])
        _case("overlapping-runs", "aaaaaaaaaaa aaa bbbbb aaaaa", "a" * 23 + " bbb", N_BYTES + 8),
        _case("empty-text", "", "", N_BYTES + 10),
        _case("one-byte-text", "x", "xx", N_BYTES + 10),   # no pair to learn from
        _case("no-merges", "hello world", "hello, world", N_BYTES),
    ]


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """bpe_compression.png: bytes per token of the names corpus after each of 200 merges."""
    from compare.plots import plot_curves
    text = names_text()
    n_bytes = len(text.encode("utf-8"))
    steps = np.arange(0, 201)
    ratios = {}
    for side, twin in (("numpy", numpy_twin), ("torch", torch_twin)):
        learned = twin.BPETokenizer().train(text, N_BYTES + 200).merges
        # the training text after m merges is its encoding with the first m merges
        ids = twin.text_to_bytes(text)
        lengths = [len(ids)]
        for k, pair in enumerate(learned.tolist()):
            ids = twin.merge(ids, (pair[0], pair[1]), N_BYTES + k)
            lengths.append(len(ids))
        ratios[side] = n_bytes / np.array(lengths[:len(steps)], dtype=np.float64)
    return [plot_curves(Path(directory) / "bpe_compression.png",
                        "BPE on the names corpus: bytes per token as merges are learned",
                        steps, ratios["numpy"], ratios["torch"], xlabel="merges learned",
                        ylabel="bytes per token", dtype="int64 token ids")]


CONCEPT = Concept(
    name="bpe",
    family="language",
    summary="byte-level BPE tokenizer: train, encode, decode, save and load",
    compares="merges learned (ties: the smallest pair), ids, decoded bytes (the round trip, "
             "and a cut inside a character), ids after save and load; texts: aaabdaaabac, "
             "names, mixed scripts and emoji, overlapping runs, empty",
    witness="ReferenceBPE (plain Python, dict counting, lowest-rank encoder)",
    run=run,
    extra_plots=extra_plots,
    # token ids, merges and bytes are integers below 1e12: any difference (>= 1) exceeds
    # 1e-12 max|b|, so this is exact equality (rtol=0 itself trips the plots' log10 axis)
    tolerance={"float64": EXACT, "float32": EXACT},
    bench=Bench("BPE training, 256 merges (vocab 512), on the built-in names corpus (~25 kB)",
                work=lambda trial: {
                    side: functools.partial(lambda cls: cls().train(" ".join(builtin_words()), 512),
                                            cls)
                    for side, cls in (("numpy", numpy_twin.BPETokenizer),
                                      ("torch", torch_twin.BPETokenizer))}),
    cases=_cases(),
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
