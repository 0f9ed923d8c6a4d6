r"""A byte-level BPE (byte-pair encoding) tokenizer, with torch tensor operations.

The same algorithm as the NumPy twin, each array operation its tensor counterpart:

    tokens 0 .. 255 are the UTF-8 bytes; merge k makes token 256 + k from the pair (a, b)
    training, V = vocab_size, for k = 0 .. vocab_size - 257:
        c_i   = x_i * V + x_{i+1}                       pair codes, (N-1,)
        n(c)  = torch.unique(c, return_counts=True)     count every distinct code
        (a,b) = largest count; ties -> the smallest code (smallest a, then smallest b)
        x     = merge(x, (a, b), 256 + k)               every occurrence, left to right
    merge: m_i = [x_i = a and x_{i+1} = b]; for a == b keep every other match of each run of
           consecutive matches (torch.cummax finds where each run starts)
    encode: the merges in learned order; decode: one gather from a flat byte table
            (torch.repeat_interleave), then UTF-8 with U+FFFD for invalid bytes

No gradients, and a plain class (not an nn.Module), as in the NumPy twin. ``state_dict()`` is
{"merges": a copy of the (M, 2) int64 merges}; ``load_state_dict`` takes either twin's (tensors
or ndarrays), so the two move the merges between the twins. ``save`` / ``load`` write and read
the same ``dualgrad-bpe v1`` text file:

    dualgrad-bpe v1
    <M>
    <a> <b>            M lines; line k (from 0) makes token 256 + k
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

N_BYTES = 256
FORMAT_HEADER = "dualgrad-bpe v1"


def most_frequent_pair(ids: torch.Tensor, vocab_size: int) -> tuple[int, int] | None:
    """The most frequent adjacent pair; ties -> the smallest code a * V + b."""
    if ids.numel() < 2:
        return None
    codes = ids[:-1] * vocab_size + ids[1:]                     # (N-1,)
    distinct, counts = torch.unique(codes, return_counts=True)  # (P,)
    best = int(distinct[counts == counts.max()].min())          # the tie rule, explicit
    return divmod(best, vocab_size)


def merge(ids: torch.Tensor, pair: tuple[int, int], new_id: int) -> torch.Tensor:
    """Every occurrence of ``pair``, scanned left to right, replaced by ``new_id``."""
    if ids.numel() < 2:
        return ids
    a, b = pair
    match = (ids[:-1] == a) & (ids[1:] == b)                    # (N-1,)
    if a == b:
        # overlapping occurrences: keep the even positions within each run of matches
        positions = torch.arange(match.numel(), device=ids.device)
        last_miss = torch.cummax(torch.where(match, -1, positions), dim=0).values
        match = match & ((positions - last_miss - 1) % 2 == 0)
    merged = ids.clone()                                        # (N,)
    merged[:-1][match] = new_id
    dropped = torch.zeros(ids.numel(), dtype=torch.bool, device=ids.device)
    dropped[1:] = match
    return merged[~dropped]                                     # (N - #merges,)


def text_to_bytes(text: str) -> torch.Tensor:
    """The UTF-8 bytes of ``text`` as int64 token ids 0 .. 255."""
    if not isinstance(text, str):
        raise TypeError(f"expected text as str, got {type(text).__name__}")
    data = text.encode("utf-8")
    if not data:
        return torch.zeros(0, dtype=torch.int64)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.int64)


def byte_table(merges: torch.Tensor) -> tuple[dict[int, bytes], tuple[torch.Tensor, ...]]:
    """{id: bytes}, and every token's bytes in one flat uint8 tensor with lengths, offsets."""
    vocab = {i: bytes([i]) for i in range(N_BYTES)}
    for k, (a, b) in enumerate(merges.tolist()):
        vocab[N_BYTES + k] = vocab[a] + vocab[b]
    lengths = torch.tensor([len(vocab[i]) for i in range(len(vocab))], dtype=torch.int64)
    offsets = torch.cumsum(lengths, 0) - lengths
    flat = torch.tensor(list(b"".join(vocab.values())), dtype=torch.uint8)
    return vocab, (lengths, offsets, flat)


class BPETokenizer:
    """Byte-level BPE with the NumPy twin's interface; ids and merges are int64 tensors."""

    def __init__(self) -> None:
        self._set_merges(torch.zeros(0, 2, dtype=torch.int64))

    def train(self, text: str, vocab_size: int, verbose: bool = False) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges (fewer if the text runs out of pairs), replacing
        any merges learned or loaded before; returns ``self``."""
        if vocab_size is None or vocab_size < N_BYTES:
            raise ValueError(f"vocab_size must be at least {N_BYTES} (the bytes), "
                             f"got {vocab_size}")
        ids = text_to_bytes(text)                               # (N,)
        merges = []
        for k in range(vocab_size - N_BYTES):
            pair = most_frequent_pair(ids, vocab_size)
            if pair is None:
                break
            ids = merge(ids, pair, N_BYTES + k)
            merges.append(pair)
            if verbose:
                print(f"merge {k + 1}: {pair} -> {N_BYTES + k}, {ids.numel()} tokens left")
        self._set_merges(torch.tensor(merges, dtype=torch.int64).reshape(-1, 2))
        return self

    def _set_merges(self, merges: torch.Tensor) -> None:
        self.merges = merges
        self.vocab, self._table = byte_table(merges)

    @property
    def vocab_size(self) -> int:
        return N_BYTES + len(self.merges)

    def encode(self, text: str) -> torch.Tensor:
        ids = text_to_bytes(text)                               # (N,)
        for k, pair in enumerate(self.merges.tolist()):
            if ids.numel() < 2:
                break
            ids = merge(ids, (pair[0], pair[1]), N_BYTES + k)
        return ids

    def decode_bytes(self, ids: torch.Tensor) -> bytes:
        ids = torch.as_tensor(ids, dtype=torch.int64).reshape(-1)  # (N,)
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got "
                             f"{int(ids.min())} .. {int(ids.max())}")
        token_lengths, token_offsets, flat = self._table
        lengths = token_lengths[ids]                            # (N,)
        out_start = torch.cumsum(lengths, 0) - lengths          # (N,)
        index = torch.repeat_interleave(token_offsets[ids] - out_start, lengths) \
            + torch.arange(int(lengths.sum()))                  # (total bytes,)
        return bytes(flat[index].tolist())

    def decode(self, ids: torch.Tensor) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """{"merges": a copy of the (M, 2) int64 merges}."""
        return {"merges": self.merges.clone()}

    def load_state_dict(self, state_dict) -> None:
        """The merges of another tokenizer (any number of them), e.g. the NumPy twin's: a
        tensor or an ndarray, checked as a file's merges are."""
        if "merges" not in state_dict:
            raise RuntimeError("Error(s) in loading state_dict for BPETokenizer: "
                               "Missing key(s) in state_dict: \"merges\".")
        merges = torch.as_tensor(state_dict["merges"]).detach().cpu()
        self._set_merges(_checked_merges(merges).clone())       # never the caller's tensor

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


def _checked_merges(merges: torch.Tensor, where: str = "merges") -> torch.Tensor:
    if merges.numel() == 0:
        return torch.zeros(0, 2, dtype=torch.int64)
    if merges.dim() != 2 or merges.shape[1] != 2 or merges.is_floating_point():
        raise ValueError(f"{where}: expected an (M, 2) integer array, got shape "
                         f"{tuple(merges.shape)} and dtype {merges.dtype}")
    limit = N_BYTES + torch.arange(len(merges)).unsqueeze(1)   # (M, 1)
    bad = torch.nonzero(((merges < 0) | (merges >= limit)).any(dim=1)).flatten()
    if bad.numel():
        k = int(bad[0])
        raise ValueError(f"{where}: merge {k} uses token(s) {merges[k].tolist()}, but only ids "
                         f"0 .. {N_BYTES + k - 1} exist before it")
    return merges.to(torch.int64)


def read_merges(path: str | os.PathLike) -> torch.Tensor:
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
    return _checked_merges(torch.tensor(rows, dtype=torch.int64).reshape(-1, 2), str(path))
