"""Compare ``Embedding``: y = W[idx], and the scatter-add of the gradient into W's rows.

Covers repeated indices (their upstream rows must add up), ``padding_idx`` given as a row
number and counted from the end (that row gets no gradient), 1-D indices and a single index.
The indices are integers: only ``grad.param.weight`` is a gradient here.

Witness: ``torch.nn.Embedding`` (``F.embedding``). Run: ``python -m compare.layers.embedding``.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from compare.concept import Bench, Case, Concept, Draw, fixed, randint
from numpy_impl.layers import embedding as numpy_twin
from torch_impl.layers import embedding as torch_twin


def _case(name: str, indices: Draw, num_embeddings: int, embedding_dim: int,
          fd: bool = True, **options: Any) -> Case:
    return Case(name, numpy=numpy_twin.Embedding, torch=torch_twin.Embedding,
                builtin=nn.Embedding,
                init=dict(num_embeddings=num_embeddings, embedding_dim=embedding_dim, **options),
                inputs=dict(indices=indices), fd=fd)


CONCEPT = Concept(
    name="embedding",
    family="layers",
    summary="lookup table y = W[idx], gradient scatter-added into the rows read",
    compares="output; grad of weight (repeated indices accumulate, padding row none)",
    witness="nn.Embedding",
    bench=Bench("Embedding(10000, 128) on indices (256, 64)",
                cases=(_case("bench", randint(10000, 256, 64), 10000, 128),)),
    cases=[
        _case("2d-indices", randint(10, 3, 4), 10, 5),
        # 24 lookups into 4 rows: every row is read several times
        _case("repeated-indices", randint(4, 4, 6), 4, 3),
        # Row 2 is read three times and gets no gradient; the others do. No finite differences
        # for the padding cases: the output does depend on the padding row (it is read as is),
        # so its true derivative is nonzero; its gradient is zero by definition (the row is
        # frozen), which finite differences cannot check. The other cases check every row.
        _case("padding-idx", fixed([[2, 0, 1, 2], [3, 2, 1, 4]]), 5, 3, padding_idx=2,
              fd=False),
        # -1 is the last row, 5
        _case("negative-padding-idx", fixed([[5, 1, 5], [0, 5, 3]]), 6, 4, padding_idx=-1,
              fd=False),
        _case("1d-indices", randint(7, 9), 7, 4),
        _case("single-index", fixed([3]), 5, 6),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
