"""Recognising code as people actually write it, so that ``verify`` needs no adapter lines.

``cs231n``: the CS231n assignments' function pairs (``affine_forward(x, w, b) -> (out, cache)``,
``affine_backward(dout, cache) -> (dx, dw, db)``, the ``*_param`` dicts, ``softmax_loss``),
each wrapped into a Module class that stands in for a concept's NumPy twin.

A wrapper raises ``Skip`` for a case its convention cannot express (dilation for a naive conv,
two RNN layers, class weights in a loss): ``verify`` reports that case as skipped, with the
reason, and goes on.
"""
from __future__ import annotations


class Skip(Exception):
    """A case the user's code cannot express (its message says why); not a failure."""
