"""Compare the WaveNet of the makemore lectures: ``Conv1d`` (and its causal form), the
hierarchical model, the dilated causal convolution stack, and training parity.

Module cases (the default runner, random upstream gradients, finite differences):

- ``Conv1d`` as ``torch.nn.Conv1d``: output; grads of x, weight, bias -- stride (also beyond
  the kernel), padding (int, ``"same"`` with an even kernel, ``"valid"``), dilation, groups,
  depthwise, no bias, unbatched (C, L). Witness ``nn.Conv1d`` (``F.conv1d``).
- ``CausalConv1d``: padded by (K-1) d on both sides, the last (K-1) d outputs dropped; witness
  ``nn.Conv1d`` with the same crop.
- ``WaveNet``, the hierarchical model (Embedding, [FlattenConsecutive(2), Linear, BatchNorm1d
  over dims (0, 1), Tanh] x L, Linear): the loss (or the logits); grads of the embedding,
  every Linear and BatchNorm weight and bias; every level's output and its gradient
  (``inter.level*``); the running statistics after the step (``buffer.*``). block_size 2, 8
  and 16 (1, 3, 4 levels), the lecture's sizes, eval mode (running statistics). Witness
  ``BuiltinWaveNet``: ``nn.Embedding``, ``nn.Linear``, ``nn.BatchNorm1d`` on the transposed
  (B, C, T), ``nn.Tanh``, ``F.cross_entropy``.
- ``CausalConvWaveNet``, kernel 2, dilations 1, 2, 4, 8: the loss over every position (or the
  logits (B, T, V)), the same gradients and buffers; witness from ``nn.Conv1d``,
  ``nn.BatchNorm1d``, ``nn.Linear``.

Training cases (``compare.parity``): both twins trained 30 steps from identical weights on
identical batches of the names corpus (``compare.data.names``), the NumPy twin with the
``training`` family's SGD, the torch twin and the built-in model with ``torch.optim.SGD``:
the loss at every step and every parameter after the last. Measured at the lecture's sizes
over seeds 0-5, normwise: float64 losses 3e-16, parameters after 30 steps 3e-15 (the issue's
bound is 1e-9, the default 1e-10); float32 losses 2e-7, parameters 2e-6 (bound 1e-4).

The lecture's BatchNorm1d normalized with the unbiased batch variance; these twins follow
torch.nn.BatchNorm1d (biased in the normalization, unbiased in the running variance).

Benchmark size: the lecture's model, (B, block_size) = (32, 8), n_embd 24, n_hidden 128.

Run: ``python -m compare.sequence.wavenet`` (as ``dualgrad run wavenet``; ``--plots DIR``
adds both twins' loss curves over the 30 training steps and their difference). With
``--train`` both twins are trained side by side on the names corpus (``--data FILE`` for your
own), the lecture's recipe: SGD, batch 32, lr 0.1 then 0.01 for the last quarter:

    python -m compare.sequence.wavenet --train [--steps N | --full] [--data FILE] [--out DIR]

Measured (one thread each, seed 0) on the built-in corpus -- 4,000 generated name-like words,
23,888 training examples, a different and much smaller corpus than the lecture's 32,033 real
names, so its numbers differ from the lecture's train 1.769 / val 1.993: the default 4,000
steps end at train 2.137 / dev 2.283 in both twins (the best dev loss seen; about 21 s NumPy,
28 s torch); 20,000 steps overfit, train 1.707 / dev 2.508. The twins' losses agree to ~1e-7
(float32) throughout. ``--full`` is the lecture's 200,000 steps, meant for makemore's
names.txt given with ``--data`` (not run here).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compare.cli.bench import numpy_loss_model_step, torch_loss_model_step, train_step_work
from compare.concept import Bench, Case, Concept, Trial, perturb_parameters, randint, randn
from compare.parity import training_runner
from numpy_impl.language.mlp_lm import build_dataset
from numpy_impl.sequence import wavenet as numpy_twin
from numpy_impl.training import optimizers as numpy_optim
from torch_impl.sequence import wavenet as torch_twin

VOCAB_SIZE = 27  # '.' and 'a'..'z': the names corpus's vocabulary


# --- the built-in witnesses: the same constructors and state_dict keys, torch's own layers -------
class QuietConv1d(nn.Conv1d):
    """``nn.Conv1d`` (``F.conv1d``) without its performance note for padding="same" with an
    even kernel (a zero-padded copy may be made): true, harmless, and noise in every run."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
            return super().forward(x)


class BuiltinCausalConv1d(nn.Conv1d):
    """``nn.Conv1d`` padded by (K-1) d on both sides, the last (K-1) d outputs dropped."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2,
                 dilation: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size,
                         padding=(kernel_size - 1) * dilation, dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[..., :x.shape[-1]]


class BuiltinFlattenConsecutive(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unflatten(1, (x.shape[1] // self.n, self.n)).flatten(2)  # (B, T/n, n C)
        return x.flatten(1) if x.shape[1] == 1 else x


class BuiltinChannelsLastBatchNorm1d(nn.BatchNorm1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            return super().forward(x)
        return super().forward(x.permute(0, 2, 1)).permute(0, 2, 1)


class BuiltinWaveNet(nn.Module):
    """The hierarchical model from ``nn.Embedding``, ``nn.Linear``, ``nn.BatchNorm1d``,
    ``nn.Tanh`` and ``F.cross_entropy``."""

    def __init__(self, vocab_size: int = 27, block_size: int = 8, n_embd: int = 24,
                 n_hidden: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Embedding(vocab_size, n_embd)]
        width = n_embd
        for _ in range(block_size.bit_length() - 1):
            layers += [BuiltinFlattenConsecutive(2), nn.Linear(2 * width, n_hidden, bias=False),
                       BuiltinChannelsLastBatchNorm1d(n_hidden), nn.Tanh()]
            width = n_hidden
        layers.append(nn.Linear(n_hidden, vocab_size))
        self.layers = nn.Sequential(*layers)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.layers(idx)
        return logits if targets is None else F.cross_entropy(logits, targets)


class BuiltinCausalConvWaveNet(nn.Module):
    """The causal stack from ``nn.Embedding``, ``nn.Conv1d``, ``nn.BatchNorm1d``, ``nn.Tanh``,
    ``nn.Linear`` and ``F.cross_entropy``."""

    def __init__(self, vocab_size: int = 27, n_embd: int = 24, n_hidden: int = 128,
                 dilations: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Embedding(vocab_size, n_embd)]
        width = n_embd
        for dilation in dilations:
            layers += [BuiltinCausalConv1d(width, n_hidden, 2, dilation=dilation, bias=False),
                       nn.BatchNorm1d(n_hidden), nn.Tanh()]
            width = n_hidden
        layers.append(nn.Linear(n_hidden, vocab_size))
        self.layers = nn.ModuleList(layers)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        embedding, *body, head = self.layers
        x = embedding(idx).permute(0, 2, 1)                             # (B, E, T)
        for layer in body:
            x = layer(x)
        logits = head(x.permute(0, 2, 1))                               # (B, T, V)
        if targets is None:
            return logits
        return F.cross_entropy(logits.permute(0, 2, 1), targets)        # (B, V, T) layout


# --- initial states ------------------------------------------------------------------------------
def perturb_with_statistics(module: nn.Module, rng: np.random.Generator) -> None:
    """Perturbed parameters, and running statistics away from (0, 1), so that eval mode
    exercises them: mean ~ N(0, 0.3^2), variance in [0.5, 1.5]."""
    perturb_parameters(module, rng)
    for name, buffer in module.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(torch.from_numpy(0.3 * rng.standard_normal(tuple(buffer.shape))))
        elif name.endswith("running_var"):
            buffer.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, tuple(buffer.shape))))


# --- training parity: identical weights, identical batches, the same optimizer -----------------
def corpus_examples(block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The names corpus's train split as (context, next token) examples."""
    from compare.language.mlp_lm import corpus_examples as examples  # cached per block_size
    return examples(block_size)


def training_batches(case: Case, trial: Trial) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` batches of ``batch`` examples. The hierarchical model reads contexts
    (batch, block_size) -> next token (batch,); the causal stack reads the same contexts and
    predicts the next token after every position (batch, T)."""
    steps, batch, length = case.options["steps"], case.options["batch"], case.options["length"]
    X, Y = corpus_examples(length)
    rows = trial.rng().integers(0, len(X), size=(steps, batch))
    if case.options.get("every_position"):
        targets = np.concatenate([X[:, 1:], Y[:, None]], axis=1)       # (N, T) shifted by one
        return [(X[r], targets[r]) for r in rows]
    return [(X[r], Y[r]) for r in rows]


def train_numpy(model: Any, batches: list, optimizer: str,
                options: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    opt = getattr(numpy_optim, optimizer)(model.parameters(), **options)
    losses = [numpy_twin.train_step(model, opt, x, y) for x, y in batches]
    return np.array(losses), {name: p.data.copy() for name, p in model.named_parameters()}


def train_torch(model: nn.Module, batches: list, optimizer: str,
                options: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    opt = getattr(torch.optim, optimizer)(model.parameters(), **options)
    losses = [torch_twin.train_step(model, opt, torch.from_numpy(x), torch.from_numpy(y))
              for x, y in batches]
    return np.array(losses), {name: p.detach().cpu().numpy().copy()
                              for name, p in model.named_parameters()}


run = training_runner(training_batches, train_numpy, train_torch)


# --- cases ---------------------------------------------------------------------------------------
def _conv(name: str, x_shape: tuple[int, ...], in_channels: int, out_channels: int,
          kernel_size: int, **init: Any) -> Case:
    return Case(name, numpy=numpy_twin.Conv1d, torch=torch_twin.Conv1d, builtin=QuietConv1d,
                init=dict(in_channels=in_channels, out_channels=out_channels,
                          kernel_size=kernel_size, **init),
                inputs=dict(x=randn(*x_shape)))


def _causal(name: str, x_shape: tuple[int, ...], in_channels: int, out_channels: int,
            **init: Any) -> Case:
    return Case(name, numpy=numpy_twin.CausalConv1d, torch=torch_twin.CausalConv1d,
                builtin=BuiltinCausalConv1d,
                init=dict(in_channels=in_channels, out_channels=out_channels, **init),
                inputs=dict(x=randn(*x_shape)))


def _hierarchical(name: str, batch: int, targets: bool = True, fd: bool = True,
                  train: bool = True, **init: Any) -> Case:
    sizes = dict(vocab_size=VOCAB_SIZE, block_size=8, n_embd=4, n_hidden=6) | init
    inputs = dict(idx=randint(sizes["vocab_size"], batch, sizes["block_size"]))
    if targets:
        inputs["targets"] = randint(sizes["vocab_size"], batch)
    return Case(name, numpy=numpy_twin.WaveNet, torch=torch_twin.WaveNet,
                builtin=BuiltinWaveNet, init=sizes, inputs=inputs, train=train, fd=fd,
                prepare=perturb_with_statistics)


def _stack(name: str, batch: int, length: int, targets: bool = True, train: bool = True,
           **init: Any) -> Case:
    sizes = dict(vocab_size=VOCAB_SIZE, n_embd=4, n_hidden=5, dilations=(1, 2, 4, 8)) | init
    inputs = dict(idx=randint(sizes["vocab_size"], batch, length))
    if targets:
        inputs["targets"] = randint(sizes["vocab_size"], batch, length)
    return Case(name, numpy=numpy_twin.CausalConvWaveNet, torch=torch_twin.CausalConvWaveNet,
                builtin=BuiltinCausalConvWaveNet, init=sizes, inputs=inputs, train=train,
                prepare=perturb_with_statistics)


def _training(name: str, steps: int, batch: int, model: str = "hierarchical",
              **init: Any) -> Case:
    # fd=False: a training run has no single backward to difference; the module cases check
    # the same models' backward against finite differences. prepare=None: training starts
    # from the torch twin's own initialization.
    if model == "hierarchical":
        classes = dict(numpy=numpy_twin.WaveNet, torch=torch_twin.WaveNet,
                       builtin=BuiltinWaveNet)
        length, every_position = init.get("block_size", 8), False
    else:
        classes = dict(numpy=numpy_twin.CausalConvWaveNet, torch=torch_twin.CausalConvWaveNet,
                       builtin=BuiltinCausalConvWaveNet)
        length, every_position = init.pop("length"), True
    return Case(name, **classes, init=init, prepare=None, fd=False,
                options=dict(steps=steps, batch=batch, length=length,
                             every_position=every_position, optimizer="SGD",
                             optimizer_options=dict(lr=0.1)))


CONCEPT = Concept(
    name="wavenet",
    family="sequence",
    summary="makemore's WaveNet: hierarchical FlattenConsecutive(2)-Linear-BatchNorm1d-Tanh "
            "levels, the same tree as dilated causal Conv1d (kernel 2, dilations 1, 2, 4, 8); "
            "training parity",
    compares="Conv1d output and grads of x, weight, bias (stride, padding incl. 'same'/'valid', "
             "dilation, groups, depthwise, no bias, unbatched; causal); the hierarchical model's "
             "and the causal stack's loss or logits, grads of every parameter, every level's "
             "output and grad, running statistics (1, 3, 4 levels, eval mode); 30 SGD steps on "
             "the names corpus: loss at every step, parameters at the end",
    witness="nn.Conv1d (F.conv1d), nn.Embedding, nn.Linear, nn.BatchNorm1d, F.cross_entropy; "
            "torch.optim.SGD",
    run=run,
    bench=Bench("one SGD training step of the lecture's WaveNet (block_size 8, n_embd 24, "
                "n_hidden 128) on a batch of 32 contexts",
                work=train_step_work(
                    (numpy_twin.WaveNet, None, numpy_optim.SGD, numpy_loss_model_step),
                    (torch_twin.WaveNet, None, torch.optim.SGD, torch_loss_model_step),
                    (BuiltinWaveNet, None, torch.optim.SGD, torch_loss_model_step),
                    dict(vocab_size=VOCAB_SIZE, block_size=8, n_embd=24, n_hidden=128),
                    randint(VOCAB_SIZE, 32, 8), randint(VOCAB_SIZE, 32), dict(lr=0.1))),
    cases=[
        _conv("conv1d-k3", (2, 3, 10), 3, 4, 3),
        _conv("conv1d-stride-2", (2, 3, 11), 3, 4, 3, stride=2),
        _conv("conv1d-stride-beyond-kernel", (1, 2, 12), 2, 3, 2, stride=3),
        _conv("conv1d-padding-2", (2, 2, 7), 2, 3, 3, padding=2),
        _conv("conv1d-dilation-3", (2, 2, 12), 2, 3, 3, dilation=3, padding=1),
        _conv("conv1d-groups-2", (2, 4, 9), 4, 6, 3, groups=2, padding=1),
        _conv("conv1d-depthwise", (2, 3, 8), 3, 6, 2, groups=3),
        _conv("conv1d-no-bias", (2, 3, 8), 3, 2, 3, bias=False),
        _conv("conv1d-same-even-kernel", (2, 2, 9), 2, 3, 4, padding="same"),
        _conv("conv1d-same-dilated", (2, 2, 9), 2, 2, 3, padding="same", dilation=2),
        _conv("conv1d-valid", (2, 2, 6), 2, 3, 3, padding="valid"),
        _conv("conv1d-unbatched", (3, 7), 3, 2, 3, padding=1),
        _conv("conv1d-kernel-1", (2, 3, 5), 3, 4, 1),
        _causal("causal-k2-d4", (2, 3, 10), 3, 4, kernel_size=2, dilation=4),
        _causal("causal-k3-d2-no-bias", (2, 2, 9), 2, 3, kernel_size=3, dilation=2, bias=False),
        _hierarchical("hierarchical-loss", 12),
        _hierarchical("hierarchical-logits", 6, targets=False),
        _hierarchical("hierarchical-block-2", 8, block_size=2),
        _hierarchical("hierarchical-block-16", 6, block_size=16),
        _hierarchical("hierarchical-eval", 5, targets=False, train=False),
        # fd=False: the sizes of the lecture (76,579 parameters) are checked numpy vs torch vs
        # built-in; the small cases above check the same backward against finite differences.
        _hierarchical("hierarchical-lecture-sizes", 32, fd=False, n_embd=24, n_hidden=128),
        _stack("causal-stack", 3, 20),
        _stack("causal-stack-logits", 2, 17, targets=False),
        _stack("causal-stack-eval", 2, 16, targets=False, train=False),
        _training("train-lecture-sizes-30-steps", steps=30, batch=32),
        _training("train-causal-stack", steps=10, batch=8, model="causal", n_embd=8,
                  n_hidden=16, length=16),
    ],
)


# --- plots ---------------------------------------------------------------------------------------
def loss_curves(dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Both twins' loss at each of the 30 steps of the lecture-size training case."""
    case = CONCEPT.case("train-lecture-sizes-30-steps")
    outcome = run(case, Trial(dtype, seed=seed, builtin=False, fd=False))
    names = [f"step{k}/loss" for k in range(1, case.options["steps"] + 1)]
    return (np.array([outcome.numpy[n] for n in names]),
            np.array([outcome.torch[n] for n in names]))


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """wavenet_training_<dtype>.png: both loss curves and |numpy - torch| per step."""
    from compare.plots import plot_curves
    paths = []
    for dtype in ("float64", "float32"):
        by_numpy, by_torch = loss_curves(dtype, seed)
        paths.append(plot_curves(
            Path(directory) / f"wavenet_training_{dtype}.png",
            f"WaveNet (lecture sizes) trained with SGD lr=0.1 on the names corpus, batch 32, "
            f"seed {seed}", np.arange(1, len(by_numpy) + 1), by_numpy, by_torch,
            xlabel="training step", ylabel="cross-entropy loss", dtype=dtype))
    return paths


CONCEPT.extra_plots = extra_plots


# --- python -m compare.sequence.wavenet --train: the lecture's run, both twins side by side -------
LECTURE_STEPS = 200_000  # makemore part 5: 200,000 steps of 32, lr 0.1 then 0.01 after 150,000


def train_side_by_side(words: Sequence[str], steps: int = 4000, batch_size: int = 32,
                       lr: float = 0.1, seed: int = 0, every: int = 500,
                       out: TextIO = sys.stdout) -> dict[str, Any]:
    """Train both twins (float32, identical init and batches) with the lecture's recipe, SGD
    with the learning rate cut tenfold for the last quarter of the steps. Every ``every``
    steps it prints, side by side, each twin's mean training loss over those steps and its
    dev loss in eval mode (running statistics); at the end each twin's train and dev loss,
    as the lecture's ``split_loss``."""
    from compare.data.names import build_vocab, split_words
    vocab = build_vocab(words)
    train, dev, _ = split_words(words)
    block_size = 8
    (X, Y), (Xd, Yd) = (build_dataset(split, vocab.stoi, block_size) for split in (train, dev))
    torch.manual_seed(seed)
    torch_model = torch_twin.WaveNet(vocab_size=vocab.size, block_size=block_size)
    numpy_model = numpy_twin.WaveNet(vocab_size=vocab.size, block_size=block_size)
    numpy_model.load_state_dict(torch_model.state_dict())
    numpy_opt = numpy_optim.SGD(numpy_model.parameters(), lr=lr)
    torch_opt = torch.optim.SGD(torch_model.parameters(), lr=lr)
    X_t, Y_t = torch.from_numpy(X), torch.from_numpy(Y)
    rng = np.random.default_rng(seed)
    losses: dict[str, list[float]] = {"numpy": [], "torch": []}
    dev_curve: dict[str, list[float]] = {"step": [], "numpy": [], "torch": []}
    Xd_t, Yd_t = torch.from_numpy(Xd), torch.from_numpy(Yd)
    seconds = {"numpy": 0.0, "torch": 0.0}
    n_params = sum(p.numel() for p in torch_model.parameters())
    print(f"training both WaveNet twins: {len(train)} train words ({len(X)} examples), "
          f"{len(dev)} dev words, block_size {block_size}, n_embd 24, n_hidden 128, "
          f"{n_params} parameters; {steps} SGD steps of {batch_size}, lr {lr:g} then "
          f"{lr / 10:g} after step {steps * 3 // 4}; float32, seed {seed}", file=out)
    print(f"{'step':>7}  {'train numpy':>11}  {'train torch':>11}  {'dev numpy':>9}  "
          f"{'dev torch':>9}  {'|difference|':>12}   (train: mean over the last {every} "
          "steps; dev: eval mode)", file=out)
    for step in range(1, steps + 1):
        if step == steps * 3 // 4 + 1:
            for group in numpy_opt.param_groups + torch_opt.param_groups:
                group["lr"] = lr / 10
        rows = rng.integers(0, len(X), batch_size)
        started = time.perf_counter()
        losses["numpy"].append(numpy_twin.train_step(numpy_model, numpy_opt, X[rows], Y[rows]))
        seconds["numpy"] += time.perf_counter() - started
        started = time.perf_counter()
        index = torch.from_numpy(rows)
        losses["torch"].append(torch_twin.train_step(torch_model, torch_opt, X_t[index],
                                                     Y_t[index]))
        seconds["torch"] += time.perf_counter() - started
        if step % every == 0 or step == steps:
            window = slice(max(0, step - every), step)
            mean_np, mean_th = np.mean(losses["numpy"][window]), np.mean(losses["torch"][window])
            dev_np = numpy_twin.evaluate(numpy_model, Xd, Yd) if len(Xd) else float("nan")
            dev_th = torch_twin.evaluate(torch_model, Xd_t, Yd_t) if len(Xd) else float("nan")
            for key, value in (("step", step), ("numpy", dev_np), ("torch", dev_th)):
                dev_curve[key].append(value)
            worst = max(abs(mean_np - mean_th), abs(dev_np - dev_th))
            print(f"{step:>7}  {mean_np:>11.4f}  {mean_th:>11.4f}  {dev_np:>9.4f}  "
                  f"{dev_th:>9.4f}  {worst:>12.2e}", file=out)
    splits = {"train": (X, Y), "dev": (Xd, Yd)}
    final = {name: (numpy_twin.evaluate(numpy_model, Xs, Ys),
                    torch_twin.evaluate(torch_model, torch.from_numpy(Xs), torch.from_numpy(Ys)))
             for name, (Xs, Ys) in splits.items() if len(Xs)}
    print(f"\n{'split':>6}  {'numpy loss':>10}  {'torch loss':>10}   (eval mode: running "
          f"statistics)", file=out)
    for name, (loss_np, loss_th) in final.items():
        print(f"{name:>6}  {loss_np:>10.4f}  {loss_th:>10.4f}", file=out)
    print(f"time: numpy {seconds['numpy']:.1f} s, torch {seconds['torch']:.1f} s "
          f"(torch threads {torch.get_num_threads()})", file=out)
    return {"losses": {k: np.array(v) for k, v in losses.items()}, "final": final,
            "dev": {k: np.array(v) for k, v in dev_curve.items()}, "seconds": seconds}


def plot_training(result: dict[str, Any], directory: Path, every: int) -> Path:
    """wavenet_train_loss.png: both twins' loss (mean over ``every`` steps) and the difference."""
    from compare.plots import plot_curves
    by_numpy, by_torch = result["losses"]["numpy"], result["losses"]["torch"]
    blocks = max(len(by_numpy) // every, 1)
    size = len(by_numpy) // blocks
    mean = lambda curve: curve[:blocks * size].reshape(blocks, size).mean(axis=1)  # noqa: E731
    return plot_curves(Path(directory) / "wavenet_train_loss.png",
                       f"WaveNet trained with SGD, batch 32 (mean over {size} steps)",
                       np.arange(1, blocks + 1) * size, mean(by_numpy), mean(by_torch),
                       xlabel="training step", ylabel="cross-entropy loss", dtype="float32")


def main(argv: Sequence[str] | None = None) -> int:
    """``--train [--steps N | --full] [--data FILE] [--out DIR] [--seed N]`` trains both twins;
    anything else is ``dualgrad run wavenet`` with its options."""
    parser = argparse.ArgumentParser(
        prog="python -m compare.sequence.wavenet", add_help=False,
        description="Without --train: `dualgrad run wavenet` (any of its options). With "
                    "--train: train both twins on the names corpus, losses side by side.")
    parser.add_argument("--train", action="store_true", help="train both twins")
    parser.add_argument("--steps", type=int, default=4000,
                        help="SGD steps (default 4000; the lecture ran 200000: --full)")
    parser.add_argument("--full", action="store_true",
                        help=f"the lecture's full run, {LECTURE_STEPS} steps")
    parser.add_argument("--data", metavar="FILE",
                        help="your own words (one a line), e.g. makemore's names.txt")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="save the loss curves there (wavenet_train_loss.png)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=500, help="print every N steps")
    args, rest = parser.parse_known_args(argv)
    if not args.train:
        from compare.cli import main as cli_main
        return cli_main(["run", CONCEPT.name, *(argv if argv is not None else sys.argv[1:])])
    from compare.data.names import get_words
    steps = LECTURE_STEPS if args.full else args.steps
    try:
        if rest:
            raise ValueError(f"unknown option(s) with --train: {' '.join(rest)}")
        if steps < 1 or args.every < 1:
            raise ValueError("--steps and --every must be positive")
        words = get_words(args.data)
    except (OSError, ValueError) as error:
        print(f"wavenet --train: error: {error}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    result = train_side_by_side(words, steps=steps, seed=args.seed, every=args.every)
    if args.out is not None:
        print(f"wrote {plot_training(result, args.out, args.every)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
