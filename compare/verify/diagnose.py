"""Say in one sentence what a mismatching tensor's difference looks like.

``dualgrad verify`` compares a user's implementation with reference results. When a named
tensor (``out``, ``grad.input.x``, ``grad.param.bias``, ``buffer.running_var``, ...) is
outside its bound, ``diagnose`` looks for the shape of the difference, because most hand
written backward passes go wrong in a handful of recognisable ways. The checks run in this
order and the first that matches wins:

1. **shapes differ**: transposed, axes permuted, a reduction (sum or mean) missing, right
   values in the wrong shape, or just the two shapes;
2. **NaN or inf** on one side only (an overflow or a 0/0, or the reverse);
3. **all zeros** on one side only (no gradient reaches the tensor, or one flows where none
   should);
4. **sign flipped**: yours = -reference;
5. **a constant factor** c, fitted by least squares (c = <y, r> / <r, r>) and accepted only
   when the whole tensor obeys yours = c * reference within the tolerance; c is named when
   it equals a size of an input (the batch size, a dimension, a product of dimensions), a
   float constructor argument f (f, 1/f, 1 - f, 1/(1 - f)), a non-ignored count, a Bessel
   correction n/(n - 1), or 2, 3, 1/2, 1/3;
6. **transposed** with equal (square) shapes, or axes permuted among equal sizes;
7. **wrong at a subset of positions**: a padding row, rows whose index repeats in an integer
   input (overwritten instead of accumulated), ignored targets, the False or True positions
   of a bool mask, the exact zeros of a float input (a kink), one slice, or a few elements;
8. otherwise **no simple pattern**.

Tolerances are derived from ``bound``: a transformation "matches" when it brings yours
within twice the bound of the reference (and within 5% of the reference's scale, so a loose
absolute bound cannot make everything match). Every sentence ends with the worst element.
``diagnose`` never raises: a heuristic that fails falls back to the generic sentence.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Context", "diagnose"]

_MAX_PERMUTED_NDIM = 5  # 5! = 120 permutations at most; higher ranks are left unexplained
_MAX_LISTED = 8  # rows / positions named in a sentence before "..."


@dataclass(frozen=True)
class Context:
    """What the case gave both implementations: inputs by name, constructor arguments, the
    upstream gradients, and where the reference accumulates several contributions."""

    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    init: Mapping[str, Any] = field(default_factory=dict)
    upstream: Mapping[str, np.ndarray] = field(default_factory=dict)  # output -> its dL/d(output)
    # tensor name -> how many terms the reference adds into each element (a node's uses, the
    # pooling windows that pick a cell), elements in creation order (leaves to output)
    contributions: Mapping[str, np.ndarray] = field(default_factory=dict)


def diagnose(name: str, yours: np.ndarray, reference: np.ndarray, context: Context,
             bound: float) -> str:
    """One sentence saying what the mismatch of tensor ``name`` looks like, ending with the
    worst element. ``bound`` is the absolute error allowed per element."""
    try:
        with np.errstate(all="ignore"):  # huge values overflow in a heuristic: no warning leaks
            sentence = _diagnose(name, yours, reference, context or Context(), bound)
    except Exception:  # a heuristic tripped on odd input: the generic sentence still helps
        with np.errstate(all="ignore"):
            sentence = _fallback(yours, reference, bound)
    return " ".join(sentence.split())  # one line, whatever the pieces contained


# --- the checks, in order ----------------------------------------------------------------
def _diagnose(name: str, yours: Any, reference: Any, context: Context, bound: float) -> str:
    y = np.asarray(yours, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    bound = float(bound) if bound is not None and math.isfinite(float(bound)) else 0.0
    bound = max(bound, 0.0)
    kind = _kind(name)
    grad_of = str(name).split("/")[-1][len("grad.input."):] if kind == "grad.input" else ""
    if kind == "input":
        return modified_input_sentence(str(name)) + _tail(y, r)
    if y.shape != r.shape:
        return _shapes(y, r, bound)
    nonfinite = _nonfinite(y, r)
    if nonfinite:
        return nonfinite + _tail(y, r)
    finite = np.isfinite(y) & np.isfinite(r)
    yf = np.where(finite, y, 0.0)  # matching non-finite elements agree: leave them out
    rf = np.where(finite, r, 0.0)
    scale = float(np.max(np.abs(rf))) if rf.size else 0.0
    for check in (_zeros, _sign, _upstream_ignored, _factor):
        found = check(yf, rf, context, bound, scale, kind)
        if found:
            return found + _tail(y, r)
    if y.size <= 1:
        return _scalar_generic(yf, rf) + _tail(y, r)
    found = (_square_transposed(yf, rf, bound)
             or _subset(yf, rf, context, bound, scale, kind, grad_of, str(name)))
    if found:
        return found + _tail(y, r)
    return _generic(yf, rf, bound, scale) + _tail(y, r)


def _kind(name: str) -> str:
    base = str(name).split("/")[-1]  # multi-step concepts prefix a step: "step3/grad.param.w"
    for prefix, kind in (("grad.input.", "grad.input"), ("grad.", "grad"), ("buffer.", "buffer"),
                         ("inter.", "inter"), ("input.", "input"), ("out", "out")):
        if base.startswith(prefix):
            return kind
    return "value"


def _slack(bound: float, scale: float) -> float:
    """How far a transformed ``yours`` may be from the reference and still "match": twice the
    bound (rounding of a differently ordered computation), at least 1e-9 of the scale, never
    more than 5% of it (a generous absolute bound must not make every pattern match)."""
    if scale <= 0:
        return 0.0
    return min(max(2.0 * bound, 1e-9 * scale), 0.05 * scale)


def _matches(candidate: np.ndarray, r: np.ndarray, bound: float) -> bool:
    if candidate.shape != r.shape or not np.all(np.isfinite(candidate)):
        return False
    if not np.all(np.isfinite(r)):
        return False
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    if scale == 0:
        return bool(np.all(candidate == 0))
    return bool(np.max(np.abs(candidate - r)) <= _slack(bound, scale))


# --- 1. shapes ---------------------------------------------------------------------------
def _shapes(y: np.ndarray, r: np.ndarray, bound: float) -> str:
    ys, rs = tuple(y.shape), tuple(r.shape)
    if y.ndim == 2 and ys == rs[::-1] and _matches(y.T, r, bound):
        return (f"transposed: yours is {ys}, the reference {rs}"
                + _tail(y.T, r, "once yours is transposed, "))
    if 2 < y.ndim <= _MAX_PERMUTED_NDIM and y.ndim == r.ndim and sorted(ys) == sorted(rs):
        for perm in itertools.permutations(range(y.ndim)):
            moved = np.transpose(y, perm)
            if moved.shape == rs and _matches(moved, r, bound):
                return (f"axes permuted: yours is {ys}, the reference {rs}; "
                        f"yours.transpose{perm} gives the reference"
                        + _tail(moved, r, "once yours is permuted, "))
    if y.size == r.size and [n for n in ys if n != 1] == [n for n in rs if n != 1]:
        back = y.reshape(rs)
        if _matches(back, r, bound):
            what = ("an extra size-1 axis" + ("s" if y.ndim - r.ndim > 1 else "")
                    + " (keepdims=True, or a missing squeeze?)" if y.ndim > r.ndim
                    else "a size-1 axis missing (a squeeze too many, or keepdims=False?)")
            return (f"{what}: yours is {ys}, the reference {rs}, and the values agree"
                    + _tail(back, r, "once yours is reshaped, "))
    reduced = _missing_reduction(y, r, bound)
    if reduced:
        return reduced
    if y.size == r.size and y.size:
        back = y.reshape(rs)
        if _matches(back, r, bound):
            return (f"right values, wrong shape: yours is {ys}, the reference {rs}"
                    + _tail(back, r, "once yours is reshaped, "))
        return (f"shape {ys} but the reference is {rs} (same number of elements, but the values "
                f"differ too even when reshaped)" + _tail(back, r, "reshaped, "))
    sizes = (f" -- no element-by-element comparison: yours has {y.size} elements, "
             f"the reference {r.size}")
    if y.ndim == r.ndim:
        return f"shape {ys} but the reference is {rs}: a reduction over the wrong axis?" + sizes
    return f"shape {ys}, expected {rs}" + sizes


def _missing_reduction(y: np.ndarray, r: np.ndarray, bound: float) -> str:
    """Yours has extra axes (or keepdims-style size-1 axes that are not 1 in yours) and
    summing or averaging over them gives the reference."""
    ys, rs = tuple(y.shape), tuple(r.shape)
    options: list[tuple[tuple[int, ...], bool]] = []  # (axes, keepdims)
    if y.ndim > r.ndim:
        for axes in itertools.combinations(range(y.ndim), y.ndim - r.ndim):
            if tuple(s for i, s in enumerate(ys) if i not in axes) == rs:
                options.append((axes, False))
    elif y.ndim == r.ndim:
        axes = tuple(i for i in range(y.ndim) if ys[i] != rs[i])
        if axes and all(rs[i] == 1 for i in axes):
            options.append((axes, True))
    for axes, keep in options:
        for verb, reduce in (("summing", np.sum), ("averaging", np.mean)):
            reduced = reduce(y, axis=axes, keepdims=keep)
            if _matches(reduced, r, bound):
                what = f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}"
                return (f"a reduction over {what} is missing ({verb} yours over it gives the "
                        f"reference; yours is {ys}, the reference {rs})"
                        + _tail(reduced, r, f"once yours is {verb.replace('ing', 'ed')}, "))
    return ""


# --- 2. NaN / inf ------------------------------------------------------------------------
def _nonfinite(y: np.ndarray, r: np.ndarray) -> str:
    introduced = ~np.isfinite(y) & np.isfinite(r)
    if introduced.any():
        return (f"NaN or inf introduced at {int(introduced.sum())} element(s) (first at "
                f"{_index(introduced)}) where the reference is finite: an overflow (exp of a "
                f"large number?) or 0/0")
    hidden = np.isfinite(y) & ~np.isfinite(r)
    if hidden.any():
        return (f"finite at {int(hidden.sum())} element(s) (first at {_index(hidden)}) where "
                f"the reference is NaN or inf: the reference overflows or divides 0/0 there "
                f"and yours does not (a clamped or rearranged formula?)")
    same = (np.isnan(y) & np.isnan(r)) | (np.isinf(y) & (y == r))
    other = ~np.isfinite(y) & ~same
    if other.any():
        return (f"NaN or inf of a different kind at {int(other.sum())} element(s) (first at "
                f"{_index(other)}): e.g. NaN where the reference has inf, or the opposite sign")
    return ""


# --- 3. zeros, 4. sign -------------------------------------------------------------------
def _zeros(y: np.ndarray, r: np.ndarray, context: Context, bound: float, scale: float,
           kind: str) -> str:
    if y.size <= 1:
        return ""  # a lone 0 is a value, not a pattern
    if not np.any(y) and np.any(r):
        why = {"grad.input": "no gradient reaches this tensor",
               "grad": "no gradient reaches this tensor",
               "buffer": "the buffer is never updated (or reset)?",
               }.get(kind, "the value is never computed (or overwritten)?")
        return f"all zeros: {why}"
    if np.any(y) and not np.any(r):
        why = ("a gradient flows where none should (through a constant, a masked or "
               "detached path?)" if kind.startswith("grad") else "yours should be zero here")
        return f"the reference is all zeros but yours is not: {why}"
    return ""


def _sign(y: np.ndarray, r: np.ndarray, context: Context, bound: float, scale: float,
          kind: str) -> str:
    if scale > 0 and _matches(-y, r, bound):
        return "sign flipped: yours is minus the reference (a subtraction the wrong way round?)"
    return ""


# --- an upstream gradient ignored ---------------------------------------------------------
def _upstream_ignored(y: np.ndarray, r: np.ndarray, context: Context, bound: float,
                      scale: float, kind: str) -> str:
    """A gradient computed as if dL/d(output) were 1: yours times the upstream gradient (an
    elementwise layer) or divided by it (a scalar output) gives the reference."""
    if not kind.startswith("grad") or scale == 0:
        return ""
    for output, g in dict(context.upstream or {}).items():
        g = np.asarray(g, dtype=np.float64)
        if g.shape == y.shape and y.size > 1 and _matches(y * g, r, bound):
            return (f"yours times the upstream gradient of {output} gives the reference: the "
                    f"upstream gradient was ignored (taken as 1) -- multiply by grad_output")
        if g.size == 1 and float(g.reshape(-1)[0]) not in (0.0, 1.0) \
                and _matches(y * float(g.reshape(-1)[0]), r, bound):
            return (f"yours is the reference divided by the upstream gradient of {output} "
                    f"({_num(float(g.reshape(-1)[0]))}): the upstream gradient was ignored "
                    f"(taken as 1) -- multiply by grad_output")
    return ""


def modified_input_sentence(name: str) -> str:
    key = name.split("/")[-1].removeprefix("input.")
    return (f"your forward modified its input {key} in place (x -= ..., x *= ..., or an out= "
            f"argument): the caller's array changed; work on a copy")


# --- 5. a constant factor ----------------------------------------------------------------
# (value, phrase): the first candidate equal to the fitted factor names it
Candidate = tuple[float, str]


def _factor(y: np.ndarray, r: np.ndarray, context: Context, bound: float, scale: float,
            kind: str) -> str:
    rr = float(np.vdot(r, r))
    if scale == 0 or rr == 0:
        return ""
    c = float(np.vdot(y, r)) / rr
    if not math.isfinite(c) or c == 0:
        return ""
    residual = float(np.max(np.abs(y - c * r)))
    if residual > _slack(bound * max(1.0, abs(c)), abs(c) * scale):
        return ""
    # c estimated from a tensor rounded to about bound/scale: compare candidates that closely
    rel = max(1e-6, min(1e-2, 4.0 * bound / scale))
    for value, phrase in _candidates(context, y.shape):
        if abs(c - value) <= rel * abs(value):
            return "yours is " + phrase
        if abs(-c - value) <= rel * abs(value):
            return "sign flipped: yours is minus " + phrase
    if np.count_nonzero(r) < 2:
        return ""  # one nonzero element fits any factor: no evidence for one
    return f"off by a constant factor {c:.4g}: yours = {c:.4g} x the reference everywhere"


def _candidates(context: Context, shape: tuple[int, ...] = ()) -> Iterable[Candidate]:
    """Named factors, most specific first: constructor floats, ignored-count means, sizes of
    the inputs, Bessel corrections, then small integers."""
    for key, value in _float_init(context):
        f = _num(value)
        if value != 1:
            yield (1 - value, f"(1 - {key}) = {_num(1 - value)} times the reference: the "
                              f"1/(1 - {key}) scaling missing?")
            yield (1 / (1 - value), f"1/(1 - {key}) = {_num(1 / (1 - value))} times the "
                                    f"reference: a 1/(1 - {key}) scaling applied twice, or "
                                    f"where the reference has none?")
        yield (value, f"{key} = {f} times the reference: an extra factor {key}, or {key} where "
                      f"the reference uses 1 - {key}?")
        yield (1 / value, f"the reference divided by {key} = {f}: a division by {key} too many, "
                          f"or a factor {key} missing?")
    yield from _ignored_counts(context)
    sizes = list(_sizes(context, shape))
    for size, desc, batch in sizes:
        if batch:
            yield (size, f"{size} times the reference ({size} = {desc}): a sum where the "
                         f"reference takes the mean over the batch?")
            yield (1 / size, f"the reference divided by {size} ({desc}): a mean where the "
                             f"reference sums, or a mean taken twice?")
        else:
            yield (size, f"{size} times the reference ({size} = {desc}): a sum where the "
                         f"reference averages over it?")
            yield (1 / size, f"the reference divided by {size} ({desc}): a mean where the "
                             f"reference sums, or a mean taken twice?")
    for size, desc, _ in sizes:
        if size > 2:
            bessel = f"n/(n - 1) with n = {size} ({desc})"
            yield (size / (size - 1), f"{_num(size / (size - 1))} times the reference = {bessel}:"
                                      f" the unbiased variance where the biased one is expected?")
            yield ((size - 1) / size, f"{_num((size - 1) / size)} times the reference = the "
                                      f"inverse of {bessel}: the biased variance where the "
                                      f"unbiased one is expected (Bessel's correction)?")
    square = "(a factor 2 from a square's derivative?)"
    yield (2.0, f"twice the reference {square}")
    yield (0.5, f"half the reference {square}")
    yield (3.0, "three times the reference (a term counted three times?)")
    yield (1 / 3, "a third of the reference (divided by 3 once too often?)")


def _float_init(context: Context) -> Iterable[tuple[str, float]]:
    for key, value in dict(context.init or {}).items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (float, np.floating)):
            continue
        value = float(value)
        if math.isfinite(value) and value not in (0.0, 1.0) and abs(value) > 1e-12:
            yield str(key), value


def _inputs(context: Context) -> list[tuple[str, np.ndarray]]:
    arrays = []
    for key, value in dict(context.inputs or {}).items():
        try:
            arrays.append((str(key), np.asarray(value)))
        except Exception:  # an input that is no array cannot name anything
            continue
    return arrays


def _is_int(a: np.ndarray) -> bool:
    return a.dtype.kind in "iu"


def _sizes(context: Context, shape: tuple[int, ...] = ()) -> Iterable[tuple[int, str, bool]]:
    """(size, description, is the batch size) for the dims of the numeric inputs and the
    products of their axis subsets; each size once, under its first (best) description. A
    tensor shaped like an input's trailing dims (a bias gradient (F,) of x (N, T, F)) is a sum
    over the input's leading dims: that count -- its rows -- is named first."""
    seen: set[int] = set()

    def once(size: int, desc: str, batch: bool = False) -> Iterable[tuple[int, str, bool]]:
        if size > 1 and size not in seen:
            seen.add(size)
            yield size, desc, batch

    arrays = [(k, a) for k, a in _inputs(context) if a.dtype.kind in "iuf" and a.ndim >= 1]
    for key, a in arrays:
        lead = a.ndim - len(shape)
        if shape and lead >= 2 and tuple(a.shape[lead:]) == tuple(shape):
            dims = "·".join(str(n) for n in a.shape[:lead])
            yield from once(int(np.prod(a.shape[:lead])),
                            f"the number of rows of {key}, all dims but the last: {dims}")
    for key, a in arrays:  # batch sizes next: the likeliest mean-vs-sum
        if a.ndim >= 2 or _is_int(a):
            yield from once(a.shape[0], f"the batch size of {key}", True)
    for key, a in arrays:
        if key in ("input", "logits") and a.ndim >= 2:
            yield from once(a.shape[1], f"the number of classes C of {key}")
    for key, a in arrays:
        for axis in range(a.ndim):
            if a.ndim == 3 and axis == 1:
                desc = f"dim 1 of {key}: the sequence length T, if {key} is (N, T, C)"
            elif a.ndim == 1:
                desc = f"the size of {key}"
            else:
                desc = f"dim {axis} of {key}"
            yield from once(a.shape[axis], desc)
        for n_axes in range(2, a.ndim + 1):
            for axes in itertools.combinations(range(a.ndim), n_axes):
                size = int(np.prod([a.shape[i] for i in axes]))
                yield from once(size, _product_name(key, a.ndim, axes))


def _product_name(key: str, ndim: int, axes: tuple[int, ...]) -> str:
    dims = f"dims {axes} of {key}"
    if len(axes) == ndim:
        return f"the total size of {key}"
    if ndim >= 3 and axes == tuple(i for i in range(ndim) if i != 1):
        letters = "N·L" if ndim == 3 else "N·" + "·".join("HWD"[: ndim - 2])
        return f"the number of values per channel, {letters} = {dims}"
    if ndim >= 3 and axes == tuple(range(ndim - 1)):
        return f"the number of positions (all dims but the last) = {dims}"
    if ndim == 4 and axes == (2, 3):
        return f"the spatial size H·W = {dims}"
    return f"the product of {dims}"


def _ignored_counts(context: Context) -> Iterable[Candidate]:
    ignore = (context.init or {}).get("ignore_index")
    if ignore is None or isinstance(ignore, bool):
        return
    for key, t in _inputs(context):
        if _is_int(t) and t.size:
            kept = int(np.count_nonzero(t != ignore))
            if 0 < kept < t.size:
                yield (kept / t.size, f"{kept}/{t.size} of the reference: the mean divides by all "
                                      f"{t.size} targets, the reference by the {kept} not "
                                      f"ignored ({key} != {ignore})")
                yield (t.size / kept, f"{t.size}/{kept} times the reference: the mean divides by "
                                      f"the {kept} targets not ignored, the reference by all "
                                      f"{t.size}?")


# --- 6. square transpose -----------------------------------------------------------------
def _square_transposed(y: np.ndarray, r: np.ndarray, bound: float) -> str:
    if y.ndim == 2 and y.shape[0] == y.shape[1] and _matches(y.T, r, bound):
        return (f"transposed: yours is the reference's transpose (both {tuple(y.shape)}, so the "
                f"shapes do not show it)")
    if 2 < y.ndim <= _MAX_PERMUTED_NDIM:
        for perm in itertools.permutations(range(y.ndim)):
            if perm != tuple(range(y.ndim)):
                moved = np.transpose(y, perm)
                if moved.shape == r.shape and _matches(moved, r, bound):
                    return (f"axes permuted among equal sizes: yours.transpose{perm} gives the "
                            f"reference (the shape {tuple(y.shape)} does not show it)")
    return ""


# --- 7. a subset of positions ------------------------------------------------------------
def _subset(y: np.ndarray, r: np.ndarray, context: Context, bound: float, scale: float,
            kind: str, grad_of: str, name: str = "") -> str:
    bad = np.abs(y - r) > bound
    if not bad.any():
        return ""
    checks: list[Callable[[], str]] = [
        lambda: _overwritten(bad, context, name),
        lambda: _padding(bad, r, context, kind),
        lambda: _repeated(bad, context, kind, grad_of),
        lambda: _ignored(bad, context, kind),
        lambda: _masked(bad, context),
        lambda: _kink(bad, context),
    ]
    for check in checks:
        try:
            found = check()
        except Exception:  # one odd input must not hide the other explanations
            found = ""
        if found:
            return found
    return _slice(bad, y, r, bound, scale) or _few(bad, y, r, bound, scale)


def _overwritten(bad: np.ndarray, context: Context, name: str) -> str:
    """A gradient assigned with = where several contributions must add (+=): wrong only where
    the reference adds several terms, or -- in a graph, whose wrong gradients spread to what
    feeds them -- the first wrong element walking back from the output is such a place."""
    counts = dict(context.contributions or {}).get(name)
    if counts is None or np.shape(counts) != bad.shape:
        return ""
    counts = np.asarray(counts)
    fix = ": a gradient assigned with = where the contributions must add up (+=)"
    if not (bad & (counts <= 1)).any():
        return (f"wrong only where several contributions meet ({int(bad.sum())} of the "
                f"{int(np.count_nonzero(counts > 1))} elements that receive more than one, up "
                f"to {int(counts.max())}){fix}")
    last = int(np.flatnonzero(bad.reshape(-1))[-1])
    if counts.reshape(-1)[last] > 1:
        return (f"walking back from the output, the gradient first goes wrong at element "
                f"{last}, which is used {int(counts.reshape(-1)[last])} times{fix}; what feeds "
                f"it inherits the error")
    return ""


def _bad_rows(bad: np.ndarray) -> np.ndarray:
    return np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))


def _padding(bad: np.ndarray, r: np.ndarray, context: Context, kind: str) -> str:
    init = context.init or {}
    p = init.get("padding_idx")
    if p is None or isinstance(p, bool) or not kind.startswith("grad") or bad.ndim < 1:
        return ""
    rows = int(init.get("num_embeddings", bad.shape[0]))
    if rows != bad.shape[0]:
        return ""  # not a tensor whose rows are the embedding rows
    p = int(p) + rows if int(p) < 0 else int(p)
    if 0 <= p < rows and _bad_rows(bad).tolist() == [p]:
        return f"wrong only in the padding row {p}: it must receive no gradient"
    return ""


def _repeated(bad: np.ndarray, context: Context, kind: str, grad_of: str) -> str:
    if not kind.startswith("grad") or bad.ndim < 1:
        return ""
    rows_expected = (context.init or {}).get("num_embeddings")
    if isinstance(rows_expected, int) and rows_expected != bad.shape[0]:
        return ""  # an embedding case, but this tensor's rows are not the embedding rows
    inputs = dict(_inputs(context))
    for key, idx in inputs.items():
        if not _is_int(idx) or idx.size < 2:
            continue
        if idx.min() < 0 or idx.max() >= bad.shape[0]:
            continue  # these values cannot index this tensor's rows
        owner = inputs.get(grad_of)
        if owner is not None and tuple(owner.shape[: idx.ndim]) == tuple(idx.shape):
            continue  # a batch-aligned input (logits beside targets) is not indexed by them
        values, counts = np.unique(idx, return_counts=True)
        repeated = set(values[counts > 1].tolist())
        rows = _bad_rows(bad).tolist()
        if repeated and rows and set(rows) <= repeated:
            return (f"wrong only in rows whose index repeats in {key} (rows {_list(rows)}): a "
                    f"repeated index must accumulate (np.add.at), not overwrite")
    return ""


def _ignored(bad: np.ndarray, context: Context, kind: str) -> str:
    ignore = (context.init or {}).get("ignore_index")
    if ignore is None or isinstance(ignore, bool):
        return ""
    for key, t in _inputs(context):
        if not _is_int(t):
            continue
        ignored = t == ignore
        if not ignored.any():
            continue
        if bad.shape == t.shape:
            per_target = bad
        elif (bad.ndim == t.ndim + 1 and bad.shape[:1] == t.shape[:1]
              and bad.shape[2:] == t.shape[1:]):
            per_target = bad.any(axis=1)  # (N, C, ...) against targets (N, ...)
        else:
            continue
        if per_target.any() and not (per_target & ~ignored).any():
            return (f"wrong only at ignored positions ({key} == {ignore}; {int(per_target.sum())} "
                    f"of the {int(ignored.sum())} ignored are wrong): they must contribute nothing")
    return ""


def _masked(bad: np.ndarray, context: Context) -> str:
    for key, m in _inputs(context):
        if m.dtype != np.bool_ or m.shape != bad.shape or m.all() or not m.any():
            continue
        if not (bad & m).any():
            return (f"wrong only where {key} is False (the dropped / masked positions, "
                    f"{int(bad.sum())} of them): they must pass nothing through")
        if not (bad & ~m).any():
            return (f"wrong only where {key} is True (the kept positions, {int(bad.sum())} of "
                    f"them): a scale or the mask itself applied wrongly there?")
    return ""


def _kink(bad: np.ndarray, context: Context) -> str:
    for key, x in _inputs(context):
        if x.dtype.kind != "f" or x.shape != bad.shape:
            continue
        zero = x == 0
        if zero.any() and not zero.all() and not (bad & ~zero).any():
            return (f"wrong only where {key} is exactly 0 ({int(bad.sum())} position(s)): a "
                    f"kink, where the reference picks a different subgradient (e.g. x > 0 "
                    f"vs x >= 0)")
    return ""


def _slice(bad: np.ndarray, y: np.ndarray, r: np.ndarray, bound: float, scale: float) -> str:
    """All bad elements share an index along some axes (one row, one time step, ...)."""
    if bad.ndim < 2 or bad.sum() < 2:
        return ""
    where = np.argwhere(bad)
    fixed = [bool(np.all(where[:, a] == where[0, a])) and bad.shape[a] > 1
             for a in range(bad.ndim)]
    if not any(fixed) or all(fixed):
        return ""
    pieces = [str(int(where[0, a])) if fixed[a] else ":" for a in range(bad.ndim)]
    size = int(np.prod([bad.shape[a] for a in range(bad.ndim) if not fixed[a]]))
    ends = [_end(int(where[0, a]), bad.shape[a], a) for a in range(bad.ndim) if fixed[a]]
    hint = "; ".join(e for e in ends if e)
    return (f"wrong only in the slice [{', '.join(pieces)}] ({int(bad.sum())} of its {size} "
            f"elements{'; ' + hint if hint else ''}){_there(bad, y, r, bound, scale)}")


def _end(index: int, size: int, axis: int) -> str:
    if index == 0:
        return f"the first along axis {axis}"
    if index == size - 1:
        return f"the last along axis {axis}"
    return ""


def _few(bad: np.ndarray, y: np.ndarray, r: np.ndarray, bound: float, scale: float) -> str:
    k, n = int(bad.sum()), bad.size
    if k < n and (k <= n // 10 or (k <= 3 and 2 * k <= n)):  # "a few": not most of them
        return (f"wrong at {k} of {n} elements (first at {_index(bad)})"
                f"{_there(bad, y, r, bound, scale)}")
    return ""


def _there(bad: np.ndarray, y: np.ndarray, r: np.ndarray, bound: float, scale: float) -> str:
    """What the bad elements have in common, if anything simple."""
    if not np.any(y[bad]):
        return ", where yours is 0"
    if not np.any(r[bad]):
        return ", where the reference is 0"
    if _matches(-y[bad], r[bad], bound):
        return ", where the sign is flipped"
    return ""


# --- 8. nothing simple -------------------------------------------------------------------
def _generic(y: np.ndarray, r: np.ndarray, bound: float, scale: float) -> str:
    bad = np.abs(y - r) > bound
    err = float(np.max(np.abs(y - r))) if y.size else 0.0
    share = f", {err / scale:.0%} of the reference's largest magnitude" if scale > 0 else ""
    return (f"no simple pattern: {int(bad.sum())} of {y.size} elements outside the tolerance "
            f"(largest error {err:.3g}{share})")


def _scalar_generic(y: np.ndarray, r: np.ndarray) -> str:
    yv, rv = float(y.reshape(-1)[0]), float(r.reshape(-1)[0])
    if rv == 0:
        return "the reference is 0 and yours is not: no constant factor relates them"
    return f"the value differs by no recognised factor (yours / reference = {yv / rv:.4g})"


def _fallback(yours: Any, reference: Any, bound: float) -> str:
    try:
        y = np.asarray(yours, dtype=np.float64)
        r = np.asarray(reference, dtype=np.float64)
        if y.shape != r.shape:
            return (f"shape {tuple(y.shape)}, expected {tuple(r.shape)} -- no "
                    f"element-by-element comparison")
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(y - r) <= bound)
        return (f"no simple pattern: {int(bad.sum())} of {y.size} elements outside the tolerance"
                + _tail(y, r))
    except Exception:  # not even numbers: say so rather than raise inside a report
        return "yours differs from the reference (the values could not be read as numbers)"


# --- formatting --------------------------------------------------------------------------
def _tail(y: np.ndarray, r: np.ndarray, how: str = "") -> str:
    """' -- worst at [i, j]: yours a vs reference b' (one-sided NaN/inf counts as worst);
    ``how`` says how yours was brought to the reference's shape first."""
    if y.shape != r.shape or y.size == 0:
        return ""
    with np.errstate(invalid="ignore", over="ignore"):
        both = np.isfinite(y) & np.isfinite(r)
        same = (np.isnan(y) & np.isnan(r)) | (y == r)
        badness = np.where(both, np.abs(np.where(both, y - r, 0.0)), np.where(same, 0.0, np.inf))
    flat = int(np.argmax(badness))
    yv, rv = _num(float(y.reshape(-1)[flat])), _num(float(r.reshape(-1)[flat]))
    if y.ndim == 0:
        return f" -- {how}yours {yv} vs reference {rv}"
    where = [int(i) for i in np.unravel_index(flat, y.shape)]
    return f" -- {how}worst at {where}: yours {yv} vs reference {rv}"


def _index(mask: np.ndarray) -> str:
    first = np.argwhere(mask)[0]
    return str([int(i) for i in first])


def _list(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in values[:_MAX_LISTED])
    return shown + (", ..." if len(values) > _MAX_LISTED else "")


def _num(value: float) -> str:
    return f"{value:.6g}"
