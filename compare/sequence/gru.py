"""Compare ``GRU``: the output sequence and h_n; gradients of the input, of h0 (when given)
and of every layer's and direction's weight_ih, weight_hh, bias_ih, bias_hh -- the NumPy
twin's backpropagation through time against autograd through the written-out cell.

The gate that sets the GRU apart: the reset gate multiplies the hidden term of the candidate
*with* its bias, n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)), so b_in and b_hn get different
gradients (b_hn's is scaled by r); every case perturbs the biases away from their init, and the
``no-bias`` case drops them. Cases (``run_recurrent``, shared with ``rnn`` and ``lstm``): 1-3
layers, bidirectional, batch_first, unbatched, h0 given or zeros, one step, and dropout between
layers with the keep-masks drawn once and given to both twins.

Witness: ``torch.nn.GRU`` (its fused kernel); with 0 < p < 1 the built-in runs layer by layer
with the same masks (``layer_by_layer``), with p = 1 and in eval it is ``nn.GRU`` itself.

Benchmark size: (T, B, I) -> H = (50, 32, 64) -> 128

Run: ``python -m compare.sequence.gru`` (as ``dualgrad run gru``).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from compare.concept import Bench, Case, Concept
from compare.sequence.rnn import recurrent_case, run_recurrent
from numpy_impl.sequence import gru as numpy_twin
from torch_impl.sequence import gru as torch_twin

_TWINS = (numpy_twin.GRU, torch_twin.GRU, nn.GRU)


def _case(name: str, **kwargs: Any) -> Case:
    return recurrent_case(name, _TWINS, **kwargs)


CONCEPT = Concept(
    name="gru",
    family="sequence",
    summary="GRU (gates r, z, n; n = tanh(x W_in + b_in + r (h W_hn + b_hn)), "
            "h_t = (1 - z) n + z h_{t-1}), backprop through time",
    compares="output and h_n; grads of the input, h0 and every weight_ih, weight_hh, bias_ih, "
             "bias_hh (1-3 layers, bidirectional, dropout masks shared, batch_first, "
             "unbatched)",
    witness="nn.GRU (layer by layer with the masks for dropout)",
    run=run_recurrent,
    bench=Bench("GRU(64, 128) on x (T, B, I) = (50, 32, 64)",
                cases=(_case("bench", steps=50, batch=32, input_size=64, hidden_size=128),)),
    cases=[
        _case("one-layer"),
        _case("h0-given", hx=True),
        _case("batch-first", batch_first=True, hx=True),
        _case("two-layers", num_layers=2, hx=True),
        _case("three-layers-no-h0", num_layers=3, batch_first=True, input_size=3,
              hidden_size=4),
        _case("bidirectional", bidirectional=True, hx=True),
        _case("bidirectional-two-layers", bidirectional=True, num_layers=2, batch_first=True,
              hx=True, input_size=3, hidden_size=4),
        _case("no-bias", bias=False, hx=True),
        _case("sequence-length-1", steps=1, hx=True),
        _case("batch-of-one", batch=1, batch_first=True, hx=True),
        _case("unbatched", unbatched=True, hx=True),
        _case("unbatched-bidirectional-no-h0", unbatched=True, bidirectional=True,
              num_layers=2, input_size=3, hidden_size=4),
        _case("dropout", num_layers=2, dropout=0.4, mask=True, hx=True),
        _case("dropout-bidirectional-batch-first", num_layers=3, dropout=0.5, mask=True,
              bidirectional=True, batch_first=True, steps=4, input_size=3, hidden_size=4),
        _case("dropout-unbatched", num_layers=2, dropout=0.3, mask=True, unbatched=True,
              hx=True),
        _case("dropout-p1", num_layers=2, dropout=1.0, mask=True, hx=True),
        _case("dropout-eval", num_layers=2, dropout=0.5, train=False, hx=True),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
