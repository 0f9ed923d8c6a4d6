"""Compare ``Linear``: y = x W^T + b, with and without bias, any number of leading dims.

Witness: ``torch.nn.Linear`` (``F.linear``). Run: ``python -m compare.layers.linear``.
"""
from torch import nn

from compare.concept import Bench, Case, Concept, randn
from numpy_impl.layers import linear as numpy_twin
from torch_impl.layers import linear as torch_twin


def _case(name: str, x_shape: tuple[int, ...], in_features: int, out_features: int,
          bias: bool = True) -> Case:
    return Case(name, numpy=numpy_twin.Linear, torch=torch_twin.Linear, builtin=nn.Linear,
                init=dict(in_features=in_features, out_features=out_features, bias=bias),
                inputs=dict(x=randn(*x_shape)))


CONCEPT = Concept(
    name="linear",
    family="layers",
    summary="fully connected layer y = x W^T + b",
    compares="output; grads of x, weight, bias",
    witness="nn.Linear",
    bench=Bench("Linear(1024, 1024) on x (256, 1024)",
                cases=(_case("bench", (256, 1024), 1024, 1024),)),
    cases=[
        _case("2d", (4, 3), 3, 5),
        _case("no-bias", (4, 3), 3, 5, bias=False),
        _case("3d-leading", (2, 3, 4), 4, 6),
        _case("4d-leading", (2, 2, 3, 4), 4, 2),
        _case("1d-input", (5,), 5, 3),
        _case("batch-of-one", (1, 7), 7, 4),
        _case("one-feature", (6, 1), 1, 1),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
