"""Compare ``Dropout``: y = x * m / (1 - p) in training, the identity in eval.

The randomness inside the concept is drawn once and passed to both twins: each case draws
the keep-mask ``m ~ Bernoulli(1 - p)`` as an input (bool, so it gets no gradient).

Witness: ``nn.Dropout`` cannot be handed a mask, so it is no ``builtin`` here. Instead
tests/layers/test_dropout.py runs ``F.dropout``, recovers its mask from the zeros of its
output and replays that mask through both twins. Run: ``python -m compare.layers.dropout``.
"""
from __future__ import annotations

from compare.concept import Bench, Case, Concept, bernoulli, randn
from numpy_impl.layers import dropout as numpy_twin
from torch_impl.layers import dropout as torch_twin


def _case(name: str, p: float, *shape: int, train: bool = True) -> Case:
    return Case(name, numpy=numpy_twin.Dropout, torch=torch_twin.Dropout, init=dict(p=p),
                inputs=dict(x=randn(*shape), mask=bernoulli(1.0 - p, *shape)), train=train)


CONCEPT = Concept(
    name="dropout",
    family="layers",
    summary="inverted dropout y = x * m / (1 - p), the mask drawn once and given to both",
    compares="output; grad of x (the bool mask gets none)",
    witness="none (F.dropout replayed in tests)",
    bench=Bench("Dropout(0.5) on x (4096, 1000)", cases=(_case("bench", 0.5, 4096, 1000),)),
    cases=[
        _case("2d", 0.5, 4, 6),
        _case("3d-p0.2", 0.2, 2, 3, 5),
        _case("p0.9", 0.9, 5, 8),
        _case("p0-identity", 0.0, 3, 4),          # every element kept, scale 1
        _case("p1-all-dropped", 1.0, 3, 4),        # every element dropped: y = 0, dL/dx = 0
        _case("eval-identity", 0.5, 3, 4, train=False),  # the mask is ignored
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
