"""BPE training speed: both twins trained on 100 kB of text, timed; their ids must be identical.

The text is the generated names corpus (compare/data/names.py), one word a line, with as
many distinct words as it takes to reach 100 kB. Each twin learns the same merges (the tie
rule makes them a function of the text alone), then encodes the text; the script prints the
seconds each twin takes and whether merges and ids are identical. Acceptance (issue 5):
under 10 s per twin.

    python benchmarks/bpe_speed.py [--kb 100] [--vocab-size 1280] [--repeat 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from compare.data.names import builtin_words
from numpy_impl.language import bpe as numpy_twin
from torch_impl.language import bpe as torch_twin


def corpus(kilobytes: int) -> str:
    """At least ``kilobytes`` kB of generated names, one a line, cut at that many bytes."""
    target = kilobytes * 1000
    n = 4000
    while True:
        text = "\n".join(builtin_words(n)) + "\n"
        if len(text.encode("utf-8")) >= target:
            return text.encode("utf-8")[:target].decode("utf-8", errors="ignore")
        n *= 2


def best_of(repeat: int, work):
    """The fastest of ``repeat`` runs (the least disturbed by other jobs), and its result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=100, help="kilobytes of text (100)")
    parser.add_argument("--vocab-size", type=int, default=1280,
                        help="256 bytes + the number of merges (1280: 1024 merges)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per twin; the best counts")
    args = parser.parse_args()
    torch.set_num_threads(1)

    text = corpus(args.kb)
    n_bytes = len(text.encode("utf-8"))
    print(f"text: {n_bytes} bytes of generated names; vocab_size {args.vocab_size} "
          f"({args.vocab_size - 256} merges); torch threads: 1")
    results = {}
    for name, twin in (("numpy", numpy_twin), ("torch", torch_twin)):
        tokenizer = twin.BPETokenizer()
        train_s, _ = best_of(args.repeat, lambda t=tokenizer: t.train(text, args.vocab_size))
        encode_s, ids = best_of(args.repeat, lambda t=tokenizer: t.encode(text))
        ids = np.asarray(ids)
        merges = np.asarray(tokenizer.merges)
        decoded_ok = tokenizer.decode(ids) == text
        results[name] = (merges, ids)
        print(f"{name:>6}: train {train_s:6.2f} s ({'under' if train_s < 10 else 'OVER'} 10 s), "
              f"encode {encode_s:6.2f} s, {len(merges)} merges, {ids.size} tokens "
              f"({n_bytes / ids.size:.2f} bytes/token), round trip "
              f"{'ok' if decoded_ok else 'FAILED'}")
    same_merges = np.array_equal(results["numpy"][0], results["torch"][0])
    same_ids = np.array_equal(results["numpy"][1], results["torch"][1])
    print(f"merges identical: {same_merges}; ids identical: {same_ids}")


if __name__ == "__main__":
    main()
