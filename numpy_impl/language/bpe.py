r"""A byte-level BPE (byte-pair encoding) tokenizer, with NumPy array operations.

Text becomes its UTF-8 bytes, so tokens 0 .. 255 are the 256 bytes and *any* Unicode string
(emoji, every script, the empty string) is representable before a single merge is learned.
Training learns ``vocab_size - 256`` merges; merge k replaces the adjacent pair (a, b) by the
new token 256 + k, whose bytes are bytes(a) + bytes(b).

Training, on the byte sequence x_0 .. x_{N-1} of the text (V = vocab_size):

    for k = 0, 1, .., vocab_size - 257:
        c_i   = x_i * V + x_{i+1}                    one integer code per adjacent pair, (N-1,)
        n(c)  = #{i : c_i = c}                       count every distinct code (np.unique);
                                                     overlapping pairs in "aaa" count twice
        (a,b) = the pair of largest count; among equal counts the SMALLEST code a*V + b,
                i.e. the smallest a, then the smallest b        (the tie-breaking rule)
        x     = merge(x, (a, b), 256 + k)            every occurrence, left to right

Training stops early when fewer than two tokens are left (no pair to count).
The tie rule makes the merges a function of the text alone: both twins learn the same merges
whatever order their ``unique`` returns counts in. On "aaabdaaabac" it gives the classic
three merges aa -> Z, ab -> Y, ZY -> X and the ids of "XdXac".

merge(x, (a, b), t): the occurrences are the positions m_i = [x_i = a and x_{i+1} = b]. For
a != b occurrences cannot overlap. For a == b a run "aaaa" holds overlapping occurrences;
scanning left to right takes the 1st, 3rd, ... of each run of consecutive m_i, so
keep_i = m_i and (the position of i within its run of m) is even. Then x_i = t where keep_i,
and x_{i+1} is dropped.

Encoding applies the merges in the order they were learned, each to every occurrence. This
equals the usual "repeatedly merge the present pair of lowest rank": merging pair k only
creates pairs that contain the new token 256 + k, whose ranks are all above k, so no pair of
lower rank can appear after pair k is merged.

Decoding concatenates the tokens' bytes (one gather from a flat byte table) and decodes
UTF-8; a sequence of ids that ends inside a multi-byte character decodes its bytes with
U+FFFD replacement characters (``errors="replace"``), never an exception.

No gradients: ids are integers, and the tokenizer is a plain class, not a Module.
``state_dict()`` is {"merges": a copy of the (M, 2) int64 merges}; ``load_state_dict`` takes
the merges from either twin's ``state_dict`` (ndarrays or torch tensors), so the two move the
merges between the twins.

File format (``save`` / ``load``), UTF-8 text, one item per line:

    dualgrad-bpe v1            the header
    <M>                        the number of merges
    <a> <b>                    M lines, merge k (from 0) makes token 256 + k from tokens a, b

Every id in a merge line must exist by then (a, b < 256 + k); anything else is a ValueError
naming the line.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

N_BYTES = 256  # tokens 0 .. 255 are the bytes themselves
FORMAT_HEADER = "dualgrad-bpe v1"


# --- the two array operations of BPE --------------------------------------------------------
def most_frequent_pair(ids: np.ndarray, vocab_size: int) -> tuple[int, int] | None:
    """The most frequent adjacent pair (a, b); ties -> the smallest code a * V + b.
    None when there is no pair (fewer than two tokens)."""
    if ids.size < 2:
        return None
    codes = ids[:-1] * vocab_size + ids[1:]                     # (N-1,) c_i = x_i V + x_{i+1}
    distinct, counts = np.unique(codes, return_counts=True)     # (P,) sorted codes, n(c)
    # the tie rule, explicit: of all codes with the largest count, the smallest
    best = int(distinct[counts == counts.max()].min())
    return divmod(best, vocab_size)


def merge(ids: np.ndarray, pair: tuple[int, int], new_id: int) -> np.ndarray:
    """Every occurrence of ``pair`` in ``ids``, scanned left to right, replaced by ``new_id``."""
    if ids.size < 2:
        return ids
    a, b = pair
    match = (ids[:-1] == a) & (ids[1:] == b)                    # (N-1,) an occurrence starts at i
    if a == b:
        # "aaaa": occurrences at i, i+1, i+2 overlap; left to right takes every other one.
        # last_miss_i = the last position <= i that is not a match (-1 if none), so
        # i - last_miss_i - 1 is i's position within its run of consecutive matches.
        positions = np.arange(match.size)                       # (N-1,)
        last_miss = np.maximum.accumulate(np.where(match, -1, positions))
        match &= (positions - last_miss - 1) % 2 == 0
    merged = ids.copy()                                         # (N,)
    merged[:-1][match] = new_id                                 # the pair's first token -> t
    dropped = np.zeros(ids.size, dtype=bool)                    # (N,)
    dropped[1:] = match                                         # ... its second token goes
    return merged[~dropped]                                     # (N - #merges,)


def text_to_bytes(text: str) -> np.ndarray:
    """The UTF-8 bytes of ``text`` as int64 token ids 0 .. 255."""
    if not isinstance(text, str):
        raise TypeError(f"expected text as str, got {type(text).__name__}")
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def byte_table(merges: np.ndarray) -> tuple[dict[int, bytes], tuple[np.ndarray, ...]]:
    """The vocabulary {id: bytes} of the merges, and the same as one flat byte array with
    each token's length and offset in it, so that decoding is one vectorized gather."""
    vocab = {i: bytes([i]) for i in range(N_BYTES)}
    for k, (a, b) in enumerate(merges.tolist()):               # a loop over merges
        vocab[N_BYTES + k] = vocab[a] + vocab[b]
    lengths = np.array([len(vocab[i]) for i in range(len(vocab))], dtype=np.int64)  # (V,)
    offsets = np.cumsum(lengths) - lengths                      # (V,) where token i starts
    flat = np.frombuffer(b"".join(vocab.values()), dtype=np.uint8)
    return vocab, (lengths, offsets, flat)


class BPETokenizer:
    """Byte-level BPE: ``train(text, vocab_size)``, ``encode(text)``, ``decode(ids)``,
    ``save(path)``, ``load(path)``, ``state_dict()`` / ``load_state_dict(state)``. ``merges``
    is an (M, 2) int64 array: row k made token 256 + k. ``vocab`` maps every id to its
    bytes."""

    def __init__(self) -> None:
        self._set_merges(np.zeros((0, 2), dtype=np.int64))

    # --- training ---------------------------------------------------------------------------
    def train(self, text: str, vocab_size: int, verbose: bool = False) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text`` (fewer if the text runs out of
        pairs), replacing any merges learned or loaded before; returns ``self``."""
        if vocab_size is None or vocab_size < N_BYTES:
            raise ValueError(f"vocab_size must be at least {N_BYTES} (the bytes), "
                             f"got {vocab_size}")
        ids = text_to_bytes(text)                               # (N,)
        merges = []
        for k in range(vocab_size - N_BYTES):                   # one merge per iteration
            pair = most_frequent_pair(ids, vocab_size)
            if pair is None:
                break                                           # a single token is left
            ids = merge(ids, pair, N_BYTES + k)
            merges.append(pair)
            if verbose:
                print(f"merge {k + 1}: {pair} -> {N_BYTES + k}, {ids.size} tokens left")
        self._set_merges(np.array(merges, dtype=np.int64).reshape(-1, 2))
        return self

    def _set_merges(self, merges: np.ndarray) -> None:
        self.merges = merges                                    # (M, 2) int64
        self.vocab, self._table = byte_table(merges)            # id -> bytes; decode's table

    @property
    def vocab_size(self) -> int:
        return N_BYTES + len(self.merges)

    # --- encode / decode ----------------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text``, int64 (N,): the bytes, then every merge in learned order."""
        ids = text_to_bytes(text)                               # (N,)
        for k, pair in enumerate(self.merges.tolist()):         # a loop over merges
            if ids.size < 2:
                break
            ids = merge(ids, (pair[0], pair[1]), N_BYTES + k)
        return ids

    def decode_bytes(self, ids: np.ndarray) -> bytes:
        """The bytes of a sequence of ids: each token's bytes, concatenated."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)       # (N,)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got "
                             f"{ids.min()} .. {ids.max()}")
        token_lengths, token_offsets, flat = self._table
        lengths = token_lengths[ids]                            # (N,) bytes per token
        out_start = np.cumsum(lengths) - lengths                # (N,) where each lands
        # output byte j of token n reads flat[offset_n + (j - out_start_n)]
        index = np.repeat(token_offsets[ids] - out_start, lengths) \
            + np.arange(lengths.sum())                          # (total bytes,)
        return flat[index].tobytes()

    def decode(self, ids: np.ndarray) -> str:
        """The text of a sequence of ids (invalid UTF-8 becomes U+FFFD)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # --- state_dict: the merges, to move between the twins -----------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """{"merges": a copy of the (M, 2) int64 merges}."""
        return {"merges": self.merges.copy()}

    def load_state_dict(self, state_dict) -> None:
        """The merges of another tokenizer (any number of them), e.g. the torch twin's: an
        ndarray or a torch tensor, checked as a file's merges are."""
        merges = state_dict.get("merges")
        if merges is None:
            raise RuntimeError("error loading state_dict into BPETokenizer: missing key(s): "
                               "'merges'")
        if hasattr(merges, "detach"):                           # a torch tensor, duck-typed
            merges = merges.detach().cpu().numpy()
        self._set_merges(_checked_merges(np.asarray(merges)))

    # --- save / load (the file format in the module docstring) --------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        lines = [FORMAT_HEADER, str(len(self.merges))]
        lines += [f"{a} {b}" for a, b in self.merges.tolist()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def load(self, path: str | os.PathLike) -> BPETokenizer:
        self._set_merges(read_merges(path))
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def _checked_merges(merges: np.ndarray, where: str = "merges") -> np.ndarray:
    """An (M, 2) int64 array whose row k uses only ids below 256 + k; ValueError otherwise."""
    merges = np.asarray(merges)
    if merges.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if merges.ndim != 2 or merges.shape[1] != 2 or not np.issubdtype(merges.dtype, np.integer):
        raise ValueError(f"{where}: expected an (M, 2) integer array, got shape "
                         f"{merges.shape} and dtype {merges.dtype}")
    limit = N_BYTES + np.arange(len(merges))[:, None]          # (M, 1) ids that exist by then
    bad = np.flatnonzero(((merges < 0) | (merges >= limit)).any(axis=1))
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{where}: merge {k} uses token(s) {merges[k].tolist()}, but only ids "
                         f"0 .. {N_BYTES + k - 1} exist before it")
    return merges.astype(np.int64)


def read_merges(path: str | os.PathLike) -> np.ndarray:
    """The merges stored in a ``dualgrad-bpe v1`` file, checked line by line."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip() != FORMAT_HEADER:
        raise ValueError(f"{path}: not a BPE file (expected the first line {FORMAT_HEADER!r})")
    try:
        count = int(lines[1])
        rows = [tuple(int(v) for v in line.split()) for line in lines[2:] if line.strip()]
    except (IndexError, ValueError):
        raise ValueError(f"{path}: expected the number of merges on line 2 and one "
                         "'<a> <b>' pair of integers per following line") from None
    if len(rows) != count or any(len(row) != 2 for row in rows):
        raise ValueError(f"{path}: line 2 announces {count} merges, the file holds "
                         f"{len(rows)} lines of them (each must be '<a> <b>')")
    return _checked_merges(np.array(rows, dtype=np.int64).reshape(-1, 2), where=str(path))
