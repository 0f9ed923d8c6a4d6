"""Compare ``RNN`` (Elman, tanh or ReLU): the output sequence and h_n; gradients of the input,
of h0 (when given) and of every layer's weight_ih, weight_hh, bias_ih, bias_hh -- the NumPy
twin's backpropagation through time against autograd through the written-out recurrence.

Witness: ``torch.nn.RNN`` (its fused kernel) with the same constructor and state_dict.
Every case draws random upstream gradients for both outputs, so the gradient reaching the last
step from h_n and the one from the output sequence are both exercised.

Run: ``python -m compare.sequence.rnn``.
"""
from __future__ import annotations

from torch import nn

from compare.concept import Bench, Case, Concept, randn
from numpy_impl.sequence import rnn as numpy_twin
from torch_impl.sequence import rnn as torch_twin


def _case(name: str, steps: int = 5, batch: int = 3, input_size: int = 4, hidden_size: int = 6,
          h0: bool = False, unbatched: bool = False, **init) -> Case:
    init = dict(input_size=input_size, hidden_size=hidden_size) | init
    layers = init.get("num_layers", 1)
    if unbatched:
        inputs = dict(input=randn(steps, input_size))
        hidden = (layers, hidden_size)
    elif init.get("batch_first"):
        inputs = dict(input=randn(batch, steps, input_size))
        hidden = (layers, batch, hidden_size)
    else:
        inputs = dict(input=randn(steps, batch, input_size))
        hidden = (layers, batch, hidden_size)
    if h0:
        inputs["h0"] = randn(*hidden, scale=0.5)
    return Case(name, numpy=numpy_twin.RNN, torch=torch_twin.RNN, builtin=nn.RNN, init=init,
                inputs=inputs)


CONCEPT = Concept(
    name="rnn",
    family="sequence",
    summary="Elman RNN h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), backprop through time",
    compares="output sequence and h_n; grads of the input, h0 and every layer's weight_ih, "
             "weight_hh, bias_ih, bias_hh (tanh and ReLU, 1-2 layers, batch_first, unbatched)",
    witness="nn.RNN",
    bench=Bench("RNN(64, 128), T = 50, B = 32",
                cases=(_case("bench", steps=50, batch=32, input_size=64, hidden_size=128),)),
    cases=[
        _case("tanh"),
        _case("h0-given", h0=True),
        _case("batch-first", batch_first=True),
        _case("batch-first-h0", batch_first=True, h0=True),
        _case("two-layers", num_layers=2, h0=True),
        _case("two-layers-no-h0", num_layers=2, batch_first=True),
        _case("relu", nonlinearity="relu"),
        _case("relu-two-layers-h0", num_layers=2, nonlinearity="relu", h0=True),
        _case("no-bias", bias=False, h0=True),
        _case("sequence-length-1", steps=1, h0=True),
        _case("batch-of-one", batch=1, batch_first=True, h0=True),
        _case("unbatched", unbatched=True, h0=True),
        _case("unbatched-no-h0", unbatched=True, num_layers=2),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
