"""Compare magnitude pruning: masks, pruned layers' gradients, training with masks, iterative
pruning with fine-tuning on the generated digits.

Cases, by kind (the pruning-method classes are the twins: ``L1Unstructured``,
``LnStructured``; the built-in witness is ``torch.nn.utils.prune`` itself):

- ``layer``: a Linear or Conv2d pruned by a schedule of methods (once, or again on what is left),
  then one forward and backward with a random upstream gradient: ``mask``, the pruned ``weight``
  W = W_orig ⊙ M, ``out``, ``grad.input.x``, ``grad.param.weight_orig`` (= dL/dW ⊙ M),
  ``grad.param.bias``; finite differences of the NumPy backward w.r.t. x and W_orig (a masked
  entry's numerical derivative is 0); witness ``prune.<Method>.apply``;
- ``global``: an MLP (``training_loop.Classifier``) pruned over fc1.weight and fc2.weight at once
  (twice: the second amount counts what is left): ``fc1.mask``, ``fc2.mask`` (different
  sparsities per layer), the loss and every parameter gradient; witness
  ``prune.global_unstructured``;
- ``training``: pruned once (layer-wise, global or structured), then SGD with momentum on
  generated digits (14 x 14): ``step<k>/loss`` and at the end ``param.<p>`` (W_orig), ``weight.<p>``
  (W, zero wherever M is) and ``mask.<p>``; witness ``torch.nn.utils.prune`` + ``torch.optim``;
- ``iterative``: rounds of global pruning and fine-tuning: ``sparsity`` and test ``accuracy``
  per round, the fine-tuning ``loss`` of every step of every round, and after the last round
  the masks and W (``round<R>/mask.<p>``, ``round<R>/weight.<p>``); in float64 only (see the
  case).

Ties. Masks are defined by the order of the magnitudes; the twins sort stably (equal
magnitudes: lower index pruned first), ``torch.topk`` leaves the order of equal values
unspecified. So every case starts from weights without equal magnitudes (``untie`` nudges
duplicates by one ulp, in the data's dtype), and the iterative case, whose later cuts fall on
trained weights that differ between the float32 twins by ~1e-7, chooses each round's count so
that the magnitudes on either side of the cut differ by more than GAP (a float64 run of the
NumPy twin on the same data decides; ``safe_schedule``) and measures accuracy on the test
points whose top two logits stay GAP apart in every round. Structured layer cases start from
``spiky`` slices (sparse ones with large L2 norms, dense ones with small), which L1 and L2
rank in opposite orders, so that a case tells the two norms apart.

Extra plot (``sparsity_accuracy.png``): the sparsity-vs-accuracy curve of a 784-100-10 MLP on
the generated digits (28 x 28): iterative global, layer-wise and structured (hidden units by
the L2 norm of fc1's rows) pruning with fine-tuning, and one-shot global pruning without, both
twins overlaid.

Benchmark size: global pruning of a 784-300-10 MLP's weights, (300, 784) and (10, 300), to 90 %.

Run: ``python -m compare.advanced.sparsity``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from compare.concept import Bench, Case, Concept, Outcome, Trial, perturb_parameters
from compare.finite_diff import numerical_gradient
from compare.tolerances import DTYPES
from numpy_impl.advanced import sparsity as numpy_twin
from numpy_impl.layers.linear import Linear as NumpyLinear
from numpy_impl.layers.losses import CrossEntropyLoss as NumpyCrossEntropyLoss
from numpy_impl.training.optimizers import SGD as NumpySGD
from numpy_impl.training.training_loop import Classifier as NumpyClassifier
from numpy_impl.vision.conv2d import Conv2d as NumpyConv2d
from torch_impl.advanced import sparsity as torch_twin
from torch_impl.training.training_loop import Classifier as TorchClassifier

GAP = 1e-4            # relative margin at every cut and between top-two logits (float32 ~1e-7)
FD_SAMPLE = 96        # finite differences on at most this many elements per tensor
LAYERS = {"linear": (NumpyLinear, nn.Linear), "conv": (NumpyConv2d, nn.Conv2d)}
DIGITS = dict(n_train=256, n_test=128, size=14)


# --- weights and data without ties -------------------------------------------------------------
def untie(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The arrays with every |value| distinct across all of them: each later duplicate moves
    one ulp away from zero (in the arrays' own dtype) until none is left."""
    if not arrays:
        return []
    sizes = [a.size for a in arrays]
    flat = np.concatenate([a.reshape(-1) for a in arrays])
    for _ in range(100):
        order = np.argsort(np.abs(flat), kind="stable")
        sorted_magnitudes = np.abs(flat)[order]
        duplicate = order[1:][sorted_magnitudes[1:] == sorted_magnitudes[:-1]]
        if duplicate.size == 0:
            break
        flat[duplicate] = np.nextafter(flat[duplicate],
                                       np.copysign(np.inf, flat[duplicate]).astype(flat.dtype))
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return [p.reshape(a.shape) for p, a in zip(parts, arrays, strict=True)]


def spiky(weight: np.ndarray, rng: np.random.Generator, dim: int) -> np.ndarray:
    """Slices along ``dim`` from sparse to dense (1 up to all entries non-zero) whose L2 norms
    fall from 1.2 to 0.8 as their L1 norms grow (~ L2 sqrt(non-zeros)): L1 and L2 rank them in
    opposite orders. (Random dense slices are ranked alike by both, and a structured case
    could not tell L1 from L2.)"""
    moved = np.moveaxis(weight, dim, 0).reshape(weight.shape[dim], -1)     # (C, rest)
    channels, rest = moved.shape
    nonzeros = np.linspace(1, rest, channels).round()[:, None]            # (C, 1)
    kept = rng.permuted(np.arange(rest)[None, :] < nonzeros, axis=1)      # (C, rest)
    sparse = np.where(kept, moved, 0.0)
    scale = np.linspace(1.2, 0.8, channels) / np.linalg.norm(sparse, axis=1)
    shaped = (sparse * scale[:, None]).reshape(np.moveaxis(weight, dim, 0).shape)
    return np.moveaxis(shaped, 0, dim)


def initial_state(module: nn.Module, trial: Trial, pruned: list[str],
                  rng: np.random.Generator, perturb: bool = True) -> dict[str, np.ndarray]:
    """The torch module's seeded initialization (perturbed), rounded to the data's dtype, the
    ``pruned`` tensors untied together, then in the compute dtype."""
    if perturb:
        perturb_parameters(module, rng)
    data_dtype = DTYPES[trial.data_dtype or trial.dtype]
    state = {k: v.detach().numpy().astype(data_dtype) for k, v in module.state_dict().items()}
    for name, array in zip(pruned, untie([state[n] for n in pruned]), strict=True):
        state[name] = array
    return {k: v.astype(trial.np_dtype) for k, v in state.items()}


def digit_data(trial: Trial) -> dict[str, np.ndarray]:
    """Generated digits, flattened: x_train (N, size²), y_train, x_test, y_test."""
    from compare.data.digits import digits
    data = digits(DIGITS["n_train"], 0, DIGITS["n_test"], seed=trial.seed, size=DIGITS["size"])
    return {"x_train": trial.cast(data.x_train.reshape(len(data.x_train), -1)),
            "y_train": data.y_train,
            "x_test": trial.cast(data.x_test.reshape(len(data.x_test), -1)),
            "y_test": data.y_test}


def tensor(array: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(array, copy=True))


def to_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


# --- one pruned layer ------------------------------------------------------------------------
def layer_outcome(case: Case, trial: Trial, numpy_cls: Any, torch_cls: Any) -> Outcome:
    numpy_layer_cls, torch_layer_cls = LAYERS[case.options["layer"]]
    schedule = case.options["schedule"]  # one pruning method's arguments per pruning
    rng = trial.rng()
    torch.manual_seed(trial.seed)
    base = torch_layer_cls(**case.init).double()
    if "spiky" in case.options:  # before the rounding and untying of initial_state
        perturb_parameters(base, rng)
        with torch.no_grad():
            base.weight.copy_(torch.from_numpy(
                spiky(base.weight.numpy(), rng, case.options["spiky"])))
    structured = "spiky" in case.options  # ranks norms: the zeros' equal |w| do not matter
    state = initial_state(base, trial, [] if structured else ["weight"], rng,
                          perturb=not structured)
    x = trial.cast(rng.standard_normal(case.options["input"]))
    probe = torch_layer_cls(**case.init).double()(torch.from_numpy(x).double())
    g = trial.cast(rng.standard_normal(tuple(probe.shape)))            # upstream gradient

    def numpy_layer() -> Any:
        layer = numpy_layer_cls(**case.init).to(trial.np_dtype)
        layer.load_state_dict(state)
        for arguments in schedule:
            numpy_twin.prune(layer, "weight", (numpy_cls or case.numpy)(**arguments))
        return layer

    def torch_side(prune_with: Any) -> dict[str, np.ndarray]:
        layer = torch_layer_cls(**case.init).to(trial.torch_dtype)
        layer.load_state_dict({k: tensor(v) for k, v in state.items()})
        for arguments in schedule:
            prune_with(layer, arguments)
        x_t = tensor(x).requires_grad_(True)
        out = layer(x_t)
        out.backward(tensor(g))
        return {"mask": to_numpy(layer.weight_mask), "weight": to_numpy(layer.weight),
                "out": to_numpy(out), "grad.input.x": to_numpy(x_t.grad),
                "grad.param.weight_orig": to_numpy(layer.weight_orig.grad),
                "grad.param.bias": to_numpy(layer.bias.grad)}

    layer = numpy_layer()
    out = layer(x.copy())
    dx = layer.backward(g)
    numpy_side = {"mask": layer.weight_mask, "weight": layer.weight.data, "out": out,
                  "grad.input.x": dx, "grad.param.weight_orig": layer.weight_orig.grad,
                  "grad.param.bias": layer.bias.grad}
    twin_cls = torch_cls or case.torch
    outcome = Outcome(numpy=numpy_side, torch=torch_side(
        lambda m, a: torch_twin.prune(m, "weight", twin_cls(**a))), inputs={"x": x})
    if trial.builtin:
        outcome.builtin = torch_side(lambda m, a: case.builtin.apply(m, "weight", **a))
    if trial.fd and trial.dtype == "float64":
        outcome.fd = layer_finite_differences(numpy_layer(), x, g, numpy_side, trial.seed)
    return outcome


def layer_finite_differences(layer: Any, x: np.ndarray, g: np.ndarray,
                             analytic: dict[str, np.ndarray], seed: int) -> dict:
    """sum(g * layer(x)) differentiated numerically w.r.t. x and W_orig (the forward recomputes
    W = W_orig ⊙ M, so a masked entry of W_orig has derivative 0)."""
    x = x.copy()
    loss = lambda: float(np.sum(g * layer(x)))  # noqa: E731
    pick = np.random.default_rng(seed + 1)
    result = {}
    for name, array in (("grad.input.x", x), ("grad.param.weight_orig", layer.weight_orig.data)):
        index = np.sort(pick.choice(array.size, min(array.size, FD_SAMPLE), replace=False))
        result[name] = (analytic[name].reshape(-1)[index], numerical_gradient(loss, array, index))
    return result


# --- a pruned MLP: global pruning, training with masks, iterative pruning ---------------------
MLP_PARAMETERS = ("fc1", "fc2")


def mlp_state(case: Case, trial: Trial) -> dict[str, np.ndarray]:
    torch.manual_seed(trial.seed)
    model = TorchClassifier(**case.init).double()
    return initial_state(model, trial, [f"{p}.weight" for p in MLP_PARAMETERS], trial.rng(),
                         perturb=case.options.get("perturb", True))


def _models(case: Case, trial: Trial, state: dict[str, np.ndarray]) -> tuple[Any, Any, Any]:
    numpy_model = NumpyClassifier(**case.init).to(trial.np_dtype)
    numpy_model.load_state_dict(state)
    torch_models = []
    for _ in range(2):  # the twin and the built-in's
        model = TorchClassifier(**case.init).to(dtype=trial.torch_dtype)
        model.load_state_dict({k: tensor(v) for k, v in state.items()})
        torch_models.append(model)
    return numpy_model, torch_models[0], torch_models[1]


def _prune_all(library: Any, model: Any, scope: str, method: Any, arguments: dict) -> None:
    """One pruning of fc1.weight and fc2.weight: ``library`` is a twin or torch's prune."""
    parameters = [(getattr(model, p), "weight") for p in MLP_PARAMETERS]
    if scope == "global":
        library.global_unstructured(parameters, pruning_method=method, **arguments)
    elif library is torch_prune:
        for module, name in parameters:
            method.apply(module, name, **arguments)
    else:
        for module, name in parameters:
            library.prune(module, name, method(**arguments))


def mlp_values(model: Any, prefix: str = "") -> dict[str, np.ndarray]:
    values = {}
    for p in MLP_PARAMETERS:
        layer = getattr(model, p)
        values[f"{prefix}mask.{p}"] = to_numpy(layer.weight_mask)
        values[f"{prefix}weight.{p}"] = to_numpy(layer.weight.data)  # W = W_orig ⊙ M
    return values


def global_outcome(case: Case, trial: Trial, numpy_cls: Any, torch_cls: Any) -> Outcome:
    state = mlp_state(case, trial)
    rng = np.random.default_rng([trial.seed, 1])
    x = trial.cast(rng.standard_normal((case.options["batch"], case.init["in_features"])))
    y = rng.integers(0, case.init["classes"], case.options["batch"])
    numpy_model, torch_model, builtin_model = _models(case, trial, state)
    methods = ((numpy_twin, numpy_model, numpy_cls or case.numpy),
               (torch_twin, torch_model, torch_cls or case.torch),
               (torch_prune, builtin_model, case.builtin))
    for library, model, method in methods:
        for arguments in case.options["schedule"]:
            _prune_all(library, model, "global", method, arguments)

    def torch_values(model: Any) -> dict[str, np.ndarray]:
        loss = nn.functional.cross_entropy(model(tensor(x)), tensor(y))
        loss.backward()
        return {"loss": to_numpy(loss), **mlp_values(model),
                **{f"grad.param.{n}": to_numpy(p.grad) for n, p in model.named_parameters()}}

    loss_fn = NumpyCrossEntropyLoss()
    loss = loss_fn(numpy_model(x), y)
    numpy_model.backward(loss_fn.backward(np.ones_like(loss)))
    outcome = Outcome(numpy={"loss": loss, **mlp_values(numpy_model),
                             **{f"grad.param.{n}": p.grad
                                for n, p in numpy_model.named_parameters()}},
                      torch=torch_values(torch_model), inputs={"x": x})
    if trial.builtin:
        outcome.builtin = torch_values(builtin_model)
    return outcome


def _batches(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, n, size=shape)                              # (..., B) indices


def training_outcome(case: Case, trial: Trial, numpy_cls: Any, torch_cls: Any) -> Outcome:
    state = mlp_state(case, trial)
    data = digit_data(trial)
    o = case.options
    batches = _batches(np.random.default_rng([trial.seed, 2]), len(data["y_train"]),
                       (o["steps"], o["batch"]))
    numpy_model, torch_model, builtin_model = _models(case, trial, state)
    scope, arguments = o["scope"], o["arguments"]

    def torch_train(library: Any, model: Any, method: Any) -> dict[str, np.ndarray]:
        _prune_all(library, model, scope, method, arguments)
        optimizer = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"])
        losses = torch_twin.fine_tune(model, nn.CrossEntropyLoss(), optimizer,
                                      tensor(data["x_train"]), tensor(data["y_train"]),
                                      torch.from_numpy(batches))
        return steps(losses, model)

    def steps(losses: list[float], model: Any) -> dict[str, np.ndarray]:
        model(tensor(data["x_test"]) if isinstance(model, nn.Module) else data["x_test"])
        last = len(losses)
        values = {f"step{k}/loss": np.array(v, dtype=trial.np_dtype)
                  for k, v in enumerate(losses, 1)}
        values.update(mlp_values(model, f"step{last}/"))
        values.update({f"step{last}/param.{n}": to_numpy(p.data)
                       for n, p in model.named_parameters()})
        return values

    _prune_all(numpy_twin, numpy_model, scope, numpy_cls or case.numpy, arguments)
    optimizer = NumpySGD(numpy_model.parameters(), lr=o["lr"], momentum=o["momentum"])
    losses = numpy_twin.fine_tune(numpy_model, NumpyCrossEntropyLoss(), optimizer,
                                  data["x_train"], data["y_train"], batches)
    outcome = Outcome(numpy=steps(losses, numpy_model),
                      torch=torch_train(torch_twin, torch_model, torch_cls or case.torch))
    if trial.builtin:
        outcome.builtin = torch_train(torch_prune, builtin_model, case.builtin)
    return outcome


def safe_schedule(case: Case, state: dict[str, np.ndarray], data: dict[str, np.ndarray],
                  batches: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Per round, the count to prune: round(fraction · remaining), moved to the nearest count
    whose cut has magnitudes more than GAP apart (relative); and the test points whose top two
    logits stay more than GAP apart every round. Decided by a float64 run of the NumPy twin."""
    o = case.options
    model = NumpyClassifier(**case.init).double()
    model.load_state_dict({k: v.astype(np.float64) for k, v in state.items()})
    parameters = [(getattr(model, p), "weight") for p in MLP_PARAMETERS]
    optimizer = NumpySGD(model.parameters(), lr=o["lr"], momentum=o["momentum"])
    x_train, x_test = data["x_train"].astype(np.float64), data["x_test"].astype(np.float64)
    counts, clear = [], np.ones(len(x_test), dtype=bool)

    def note_clear_points() -> None:
        top_two = np.sort(model(x_test), axis=1)[:, -2:]
        clear[top_two[:, 1] - top_two[:, 0] <= GAP * np.abs(top_two).max(axis=1)] = False

    note_clear_points()
    for fraction, round_batches in zip(o["fractions"], batches, strict=True):
        weights = np.concatenate([
            m.weight.data[getattr(m, "weight_mask", np.ones_like(m.weight.data)) == 1]
            for m, _ in parameters])
        magnitudes = np.sort(np.abs(weights))                         # what is left, ascending
        k = numpy_twin.n_to_prune(fraction, magnitudes.size)
        for shift in sorted(range(-k + 1, magnitudes.size - k), key=abs):
            below, above = magnitudes[k + shift - 1], magnitudes[k + shift]
            if above - below > GAP * above:
                k += shift
                break
        counts.append(int(k))
        numpy_twin.global_unstructured(parameters, numpy_twin.L1Unstructured, amount=int(k))
        numpy_twin.fine_tune(model, NumpyCrossEntropyLoss(), optimizer, x_train,
                             data["y_train"], round_batches)
        note_clear_points()
    return counts, clear


def iterative_outcome(case: Case, trial: Trial, numpy_cls: Any, torch_cls: Any) -> Outcome:
    state = mlp_state(case, trial)
    data = digit_data(trial)
    o = case.options
    batches = _batches(np.random.default_rng([trial.seed, 3]), len(data["y_train"]),
                       (len(o["fractions"]), o["steps"], o["batch"]))
    counts, clear = safe_schedule(case, state, data, batches)
    x_test, y_test = data["x_test"][clear], data["y_test"][clear]
    numpy_model, torch_model, builtin_model = _models(case, trial, state)

    def run_rounds(library: Any, model: Any, method: Any) -> dict[str, np.ndarray]:
        parameters = [(getattr(model, p), "weight") for p in MLP_PARAMETERS]
        if library is numpy_twin:
            optimizer = NumpySGD(model.parameters(), lr=o["lr"], momentum=o["momentum"])
            history = numpy_twin.iterative_pruning(
                model, parameters, counts, NumpyCrossEntropyLoss(), optimizer,
                (data["x_train"], data["y_train"]), (x_test, y_test), batches,
                pruning_method=method)
        elif library is torch_twin:
            optimizer = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"])
            history = torch_twin.iterative_pruning(
                model, parameters, counts, nn.CrossEntropyLoss(), optimizer,
                (tensor(data["x_train"]), tensor(data["y_train"])),
                (tensor(x_test), tensor(y_test)), torch.from_numpy(batches),
                pruning_method=method)
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"])
            history = builtin_rounds(model, parameters, counts, optimizer, data, x_test, y_test,
                                     batches)
        return {"sparsity": to_numpy(history["sparsity"]),
                "accuracy": to_numpy(history["accuracy"]),
                "loss": np.asarray(to_numpy(history["loss"]), dtype=trial.np_dtype),
                **mlp_values(model, f"round{len(counts)}/")}

    outcome = Outcome(numpy=run_rounds(numpy_twin, numpy_model, numpy_cls or case.numpy),
                      torch=run_rounds(torch_twin, torch_model, torch_cls or case.torch))
    if trial.builtin:
        outcome.builtin = run_rounds(torch_prune, builtin_model, case.builtin)
    return outcome


def builtin_rounds(model: nn.Module, parameters: list, counts: list[int],
                   optimizer: torch.optim.Optimizer, data: dict[str, np.ndarray],
                   x_test: np.ndarray, y_test: np.ndarray, batches: np.ndarray) -> dict:
    """The same rounds with ``torch.nn.utils.prune.global_unstructured`` doing the pruning."""
    x, y = tensor(data["x_train"]), tensor(data["y_train"])
    history: dict[str, list] = {"sparsity": [0.0], "loss": [],
                                "accuracy": [torch_twin.accuracy(model, tensor(x_test),
                                                                 tensor(y_test))]}
    for count, round_batches in zip(counts, batches, strict=True):
        torch_prune.global_unstructured(parameters, pruning_method=torch_prune.L1Unstructured,
                                        amount=count)
        losses = []
        for batch in torch.from_numpy(round_batches):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history["loss"].append(losses)
        history["accuracy"].append(torch_twin.accuracy(model, tensor(x_test), tensor(y_test)))
        masks = torch.cat([m.weight_mask.flatten() for m, _ in parameters])
        history["sparsity"].append(float((masks == 0).double().mean()))
    return {k: np.array(v) for k, v in history.items()}


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    kind = case.options["kind"]
    runner = {"layer": layer_outcome, "global": global_outcome, "training": training_outcome,
              "iterative": iterative_outcome}[kind]
    return runner(case, trial, numpy_cls, torch_cls)


# --- cases ------------------------------------------------------------------------------------
def _layer_case(name: str, method: str, layer: str, init: dict, input_shape: tuple,
                schedule: list[dict]) -> Case:
    options = dict(kind="layer", layer=layer, input=input_shape, schedule=schedule)
    if method == "LnStructured":  # slices whose L1 and L2 orders differ
        options["spiky"] = schedule[0]["dim"]
    return Case(name, numpy=getattr(numpy_twin, method), torch=getattr(torch_twin, method),
                builtin=getattr(torch_prune, method), init=init, prepare=None, options=options)


MLP_SMALL = dict(in_features=20, hidden=16, classes=5)
MLP_DIGITS = dict(in_features=DIGITS["size"] ** 2, hidden=32, classes=10)
TRAINING = dict(steps=12, batch=32, lr=0.05, momentum=0.9)

CASES = [
    _layer_case("l1-unstructured-fraction", "L1Unstructured", "linear",
                dict(in_features=12, out_features=8), (5, 12), [dict(amount=0.3)]),
    _layer_case("l1-unstructured-count-twice", "L1Unstructured", "linear",
                dict(in_features=12, out_features=8), (5, 12),
                [dict(amount=20), dict(amount=0.5)]),  # the 0.5 counts the 76 left: 38 more
    _layer_case("l2-structured-rows", "LnStructured", "linear",
                dict(in_features=12, out_features=8), (5, 12),
                [dict(amount=0.25, n=2, dim=0)]),  # output units
    _layer_case("l1-structured-columns-twice", "LnStructured", "linear",
                dict(in_features=12, out_features=8), (5, 12),
                [dict(amount=3, n=1, dim=1), dict(amount=0.5, n=1, dim=1)]),  # input features
    _layer_case("l1-structured-conv-channels", "LnStructured", "conv",
                dict(in_channels=3, out_channels=6, kernel_size=3), (2, 3, 6, 6),
                [dict(amount=2, n=1, dim=0)]),
    _layer_case("l2-structured-conv-input-channels", "LnStructured", "conv",
                dict(in_channels=4, out_channels=5, kernel_size=3), (2, 4, 5, 5),
                [dict(amount=0.5, n=2, dim=1)]),
    Case("global-unstructured-twice", numpy=numpy_twin.L1Unstructured,
         torch=torch_twin.L1Unstructured, builtin=torch_prune.L1Unstructured, init=MLP_SMALL,
         prepare=None, fd=False,  # the MLP's own backward is checked by its concept
         options=dict(kind="global", batch=6, schedule=[dict(amount=0.5), dict(amount=60)])),
    Case("training-layer-wise", numpy=numpy_twin.L1Unstructured,
         torch=torch_twin.L1Unstructured, builtin=torch_prune.L1Unstructured, init=MLP_DIGITS,
         prepare=None, fd=False,  # a training run: losses and parameters per step
         options=dict(kind="training", scope="layer", arguments=dict(amount=0.6),
                      perturb=False, **TRAINING)),
    Case("training-global", numpy=numpy_twin.L1Unstructured,
         torch=torch_twin.L1Unstructured, builtin=torch_prune.L1Unstructured, init=MLP_DIGITS,
         prepare=None, fd=False,
         options=dict(kind="training", scope="global", arguments=dict(amount=0.8),
                      perturb=False, **TRAINING)),
    Case("training-structured-rows", numpy=numpy_twin.LnStructured,
         torch=torch_twin.LnStructured, builtin=torch_prune.LnStructured, init=MLP_DIGITS,
         prepare=None, fd=False,
         options=dict(kind="training", scope="layer", arguments=dict(amount=0.25, n=2, dim=0),
                      perturb=False, **TRAINING)),
    # float64 only: between rounds the twins retrain, so in float32 their weights carry
    # different rounding, and a weight within that rounding of the next round's magnitude
    # threshold is kept by one twin and pruned by the other (seed 150: row 26 of fc1 parted
    # by 2e-3 at round 3; float64 and the NumPy twin agreed to 2.5e-7). The other cases prune
    # the same float32 weights in both twins, so their float32 masks are defined.
    Case("iterative-global", numpy=numpy_twin.L1Unstructured,
         torch=torch_twin.L1Unstructured, builtin=torch_prune.L1Unstructured, init=MLP_DIGITS,
         prepare=None, fd=False, dtypes=("float64",),
         options=dict(kind="iterative", fractions=(0.5, 0.5, 0.5), perturb=False,
                      **{**TRAINING, "steps": 4})),
]

BENCH_MLP = dict(in_features=784, hidden=300, classes=10)


def _bench_work(trial: Trial) -> dict[str, Any]:
    """One global L1 cut of 90 % over fc1.weight (300, 784) and fc2.weight (10, 300) of a
    784-300-10 MLP, made permanent (``remove``), in each contender; the step then puts the
    unpruned weights back (a copy, on every side), so every run cuts the same weights."""
    torch.manual_seed(trial.seed)
    state = {k: trial.cast(v.detach().numpy().copy())
             for k, v in TorchClassifier(**BENCH_MLP).double().state_dict().items()}
    numpy_model = NumpyClassifier(**BENCH_MLP).to(trial.np_dtype)
    numpy_model.load_state_dict(state)
    torch_models = []
    for _ in range(2):  # the twin's and the built-in's
        model = TorchClassifier(**BENCH_MLP).to(dtype=trial.torch_dtype)
        model.load_state_dict({k: tensor(v) for k, v in state.items()})
        torch_models.append(model)

    def step(library: Any, model: Any, method: Any) -> Any:
        layers = [getattr(model, p) for p in MLP_PARAMETERS]
        originals = [state[f"{p}.weight"] for p in MLP_PARAMETERS]

        def work() -> Any:
            library.global_unstructured([(layer, "weight") for layer in layers],
                                        pruning_method=method, amount=0.9)
            for layer, weight in zip(layers, originals, strict=True):
                library.remove(layer, "weight")
                if library is numpy_twin:
                    layer.weight.data[...] = weight
                else:
                    with torch.no_grad():
                        layer.weight.copy_(tensor(weight))
            return layers
        return work
    return {"numpy": step(numpy_twin, numpy_model, numpy_twin.L1Unstructured),
            "torch": step(torch_twin, torch_models[0], torch_twin.L1Unstructured),
            "builtin": step(torch_prune, torch_models[1], torch_prune.L1Unstructured)}


CONCEPT = Concept(
    name="sparsity",
    family="advanced",
    summary="magnitude pruning: layer-wise and global, unstructured and structured, with masks",
    compares=("masks of unstructured (L1) and structured (L1 / L2 rows, columns, channels) "
              "pruning, layer-wise and global, once and again on what is left; a pruned layer's "
              "output and gradients (W_orig's masked); training with masks: loss per step, "
              "W_orig, W and masks after; iterative pruning with fine-tuning: masks, sparsity, "
              "test accuracy and losses per round"),
    witness="torch.nn.utils.prune (L1Unstructured, LnStructured, global_unstructured) + "
            "torch.optim.SGD",
    run=run,
    bench=Bench("global_unstructured L1 cut of 90 % over a 784-300-10 MLP's weights, (300, 784) "
                "and (10, 300), then remove", work=_bench_work),
    cases=CASES,
)


# --- the sparsity-vs-accuracy curve -----------------------------------------------------------
CURVE = dict(n_train=2000, n_test=1000, size=28, hidden=100, pretrain_steps=500, batch=64,
             lr=0.05, momentum=0.9, rounds=7, fraction=0.5, steps=60,
             one_shot=(0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375, 0.9921875))
SCHEMES = (  # label, scope, pruning method, its arguments, the pruned layers
    ("global, fine-tuned", "global", "L1Unstructured", {}, ("fc1", "fc2")),
    ("layer-wise, fine-tuned", "layer", "L1Unstructured", {}, ("fc1", "fc2")),
    ("hidden units (L2 rows of fc1), fine-tuned", "layer", "LnStructured", dict(n=2, dim=0),
     ("fc1",)),
)


def pretrained(seed: int, settings: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A dense MLP trained on generated digits (float64, the NumPy twin, SGD with momentum):
    its state and the data, flattened."""
    from compare.data.digits import digits
    data = digits(settings["n_train"], 0, settings["n_test"], seed=seed, size=settings["size"])
    arrays = {"x_train": data.x_train.reshape(len(data.x_train), -1).astype(np.float64),
              "y_train": data.y_train,
              "x_test": data.x_test.reshape(len(data.x_test), -1).astype(np.float64),
              "y_test": data.y_test}
    init = dict(in_features=settings["size"] ** 2, hidden=settings["hidden"], classes=10)
    torch.manual_seed(seed)
    model = NumpyClassifier(**init).double()
    model.load_state_dict({k: v.double() for k, v in TorchClassifier(**init).state_dict().items()})
    optimizer = NumpySGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"])
    rng = np.random.default_rng([seed, 4])
    batches = _batches(rng, settings["n_train"], (settings["pretrain_steps"], settings["batch"]))
    numpy_twin.fine_tune(model, NumpyCrossEntropyLoss(), optimizer, arrays["x_train"],
                         arrays["y_train"], batches)
    return model.state_dict(), arrays


def sparsity_curves(seed: int = 0, settings: dict | None = None) -> dict[str, dict]:
    """Per scheme and twin: (sparsity, test accuracy) per round, from the same pretrained MLP;
    and one-shot global pruning without fine-tuning at ``settings["one_shot"]``."""
    settings = {**CURVE, **(settings or {})}
    state, data = pretrained(seed, settings)
    init = dict(in_features=settings["size"] ** 2, hidden=settings["hidden"], classes=10)
    rounds, steps, batch = settings["rounds"], settings["steps"], settings["batch"]
    batches = _batches(np.random.default_rng([seed, 5]), settings["n_train"],
                       (rounds, steps, batch))
    curves: dict[str, dict] = {}
    for label, scope, method, arguments, layers in SCHEMES:
        numpy_model = NumpyClassifier(**init).double()
        numpy_model.load_state_dict(state)
        torch_model = TorchClassifier(**init).double()
        torch_model.load_state_dict({k: tensor(v) for k, v in state.items()})
        history_numpy = numpy_twin.iterative_pruning(
            numpy_model, [(getattr(numpy_model, p), "weight") for p in layers],
            [settings["fraction"]] * rounds, NumpyCrossEntropyLoss(),
            NumpySGD(numpy_model.parameters(), lr=settings["lr"], momentum=settings["momentum"]),
            (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"]), batches,
            scope=scope, pruning_method=getattr(numpy_twin, method), **arguments)
        history_torch = torch_twin.iterative_pruning(
            torch_model, [(getattr(torch_model, p), "weight") for p in layers],
            [settings["fraction"]] * rounds, nn.CrossEntropyLoss(),
            torch.optim.SGD(torch_model.parameters(), lr=settings["lr"],
                            momentum=settings["momentum"]),
            (tensor(data["x_train"]), tensor(data["y_train"])),
            (tensor(data["x_test"]), tensor(data["y_test"])), torch.from_numpy(batches),
            scope=scope, pruning_method=getattr(torch_twin, method), **arguments)
        curves[label] = {
            "numpy": (history_numpy["sparsity"], history_numpy["accuracy"]),
            "torch": (to_numpy(history_torch["sparsity"]), to_numpy(history_torch["accuracy"]))}
    one_shot: dict[str, tuple[list, list]] = {"numpy": ([], []), "torch": ([], [])}
    for level in settings["one_shot"]:
        numpy_model = NumpyClassifier(**init).double()
        numpy_model.load_state_dict(state)
        parameters = [(numpy_model.fc1, "weight"), (numpy_model.fc2, "weight")]
        numpy_twin.global_unstructured(parameters, numpy_twin.L1Unstructured, amount=level)
        one_shot["numpy"][0].append(numpy_twin.sparsity(parameters))
        one_shot["numpy"][1].append(numpy_twin.accuracy(numpy_model, data["x_test"],
                                                        data["y_test"]))
        torch_model = TorchClassifier(**init).double()
        torch_model.load_state_dict({k: tensor(v) for k, v in state.items()})
        parameters = [(torch_model.fc1, "weight"), (torch_model.fc2, "weight")]
        torch_twin.global_unstructured(parameters, torch_twin.L1Unstructured, amount=level)
        one_shot["torch"][0].append(torch_twin.sparsity(parameters))
        one_shot["torch"][1].append(torch_twin.accuracy(torch_model, tensor(data["x_test"]),
                                                        tensor(data["y_test"])))
    curves["global, one-shot (no fine-tuning)"] = {k: tuple(np.array(a) for a in v)
                                                  for k, v in one_shot.items()}
    return curves


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """sparsity_accuracy.png: test accuracy against sparsity on the generated digits, every
    scheme, both twins overlaid (float64)."""
    from compare.plots import new_figure, save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    curves = sparsity_curves(seed)
    fig = new_figure(figsize=(10, 6.5), layout="constrained")
    ax = fig.subplots()
    colours = ("tab:blue", "tab:green", "tab:purple", "tab:red")
    for colour, (label, sides) in zip(colours, curves.items(), strict=True):
        s, a = sides["torch"]
        ax.plot(1.0 - s, a, "-", color=colour, linewidth=2.5, alpha=0.5,
                label=f"{label}: torch")
        s, a = sides["numpy"]
        ax.plot(1.0 - s, a, "o--", color=colour, fillstyle="none", label=f"{label}: NumPy")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("fraction of the pruned layers' weights kept (1 - sparsity), log scale")
    ax.set_ylabel("test accuracy")
    settings = CURVE
    ax.set_title(f"Magnitude pruning of a {settings['size'] ** 2}-{settings['hidden']}-10 MLP "
                 f"on generated digits:\n{settings['fraction']:.0%} of what is left per round, "
                 f"{settings['steps']} SGD steps of fine-tuning each (float64, seed {seed})",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path = directory / "sparsity_accuracy.png"
    save(fig, path, dpi=90)
    return [path]


CONCEPT.extra_plots = extra_plots

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
