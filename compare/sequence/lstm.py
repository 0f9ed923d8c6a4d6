"""Compare ``LSTM``: the output sequence, h_n and c_n; gradients of the input, of h0 and c0
(when given) and of every layer's and direction's weight_ih, weight_hh, bias_ih, bias_hh (and
weight_hr with ``proj_size``) -- the NumPy twin's backpropagation through time against
autograd through the written-out cell -- then a character-level model trained in both twins.

Layer cases (``run_recurrent``, shared with ``rnn`` and ``gru``): 1-3 layers, bidirectional,
proj_size, no bias, batch_first, unbatched, h0/c0 given or zeros, a sequence of one step, and
dropout between layers with the keep-masks drawn once and given to both twins. Witness:
``torch.nn.LSTM`` (its fused kernel); with 0 < p < 1 the built-in runs layer by layer with the
same masks (``layer_by_layer``), with p = 1 and in eval it is ``nn.LSTM`` itself.

Training cases (``options["steps"]``): ``CharLSTM`` (embedding -> LSTM -> linear, next
character at every position) from identical weights on identical batches of windows of the
built-in names corpus (``compare.data.names``, train split, words joined by '.'), 30 steps of
Adam or SGD: the loss at every step (``step{k}/loss``) and every parameter after the last.
The built-in model (``nn.Embedding``, ``nn.LSTM``, ``nn.Linear``, ``F.cross_entropy``) trained
the same way witnesses the torch twin. ``--plots DIR`` adds both twins' loss curves over
``PLOT_STEPS`` Adam steps and their difference.

Benchmark size: (T, B, I) -> H = (50, 32, 64) -> 128

Run: ``python -m compare.sequence.lstm`` (as ``dualgrad run lstm``). With ``--train`` it trains
both twins side by side in float32 (Adam, batches of 32 windows of 16 characters) on the names
corpus or on your own text, printing both losses, the dev loss, and saving the curves:

    python -m compare.sequence.lstm --train [--data FILE] [--steps N] [--out DIR] [--seed N]
"""
from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compare.concept import Bench, Case, Concept, Outcome, Trial
from compare.data.names import BOUNDARY, Vocab, build_vocab, builtin_words, get_words, split_words
from compare.parity import training_runner
from compare.sequence.rnn import recurrent_case, run_recurrent
from numpy_impl.sequence import lstm as numpy_twin
from numpy_impl.training import optimizers as numpy_optim
from torch_impl.sequence import lstm as torch_twin

TRAIN_STEPS = 30
PLOT_STEPS = 200


class BuiltinCharLSTM(nn.Module):
    """``CharLSTM`` from torch's built-in layers: same constructor and state_dict keys."""

    def __init__(self, vocab_size: int = 27, n_embd: int = 16, hidden_size: int = 32,
                 num_layers: int = 1) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, n_embd)
        self.lstm = nn.LSTM(n_embd, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.head(self.lstm(self.embedding(idx))[0])      # (B, T, V)
        if targets is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))


# --- training parity: identical weights, identical batches of the names corpus -----------------
def word_stream(words: Sequence[str], vocab: Vocab) -> np.ndarray:
    """Words as one id stream with single boundaries: '.emma.ava.' (int64)."""
    return np.array(vocab.encode(BOUNDARY + BOUNDARY.join(words) + BOUNDARY), dtype=np.int64)


@functools.cache
def corpus_stream() -> np.ndarray:
    """The train split of the built-in corpus as one id stream."""
    words = builtin_words()
    return word_stream(split_words(words)[0], build_vocab(words))


def windows(stream: np.ndarray, starts: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """idx = stream[s : s + block] and targets = stream[s + 1 : s + block + 1] per start."""
    index = starts[:, None] + np.arange(block)         # (B, block)
    return stream[index], stream[index + 1]


def training_batches(case: Case, trial: Trial) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` batches of ``batch`` windows of ``block`` characters and the next character
    at every position: idx = stream[s : s + block], targets = stream[s + 1 : s + block + 1]."""
    steps, batch, block = (case.options[k] for k in ("steps", "batch", "block"))
    stream = corpus_stream()
    starts = np.random.default_rng(trial.seed).integers(0, len(stream) - block,
                                                        size=(steps, batch))
    return [windows(stream, s, block) for s in starts]


def train_numpy(model: Any, batches: list, optimizer: str,
                options: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The NumPy twin's ``train_step`` on every batch with the hand-written optimizer."""
    opt = getattr(numpy_optim, optimizer)(model.parameters(), **options)
    losses = [numpy_twin.train_step(model, opt, idx, targets) for idx, targets in batches]
    return np.array(losses), {name: p.data.copy() for name, p in model.named_parameters()}


def train_torch(model: nn.Module, batches: list, optimizer: str,
                options: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The torch twin's ``train_step`` (or the built-in model's) with ``torch.optim``."""
    opt = getattr(torch.optim, optimizer)(model.parameters(), **options)
    device = next(model.parameters()).device
    losses = [torch_twin.train_step(model, opt, torch.from_numpy(idx).to(device),
                                    torch.from_numpy(targets).to(device))
              for idx, targets in batches]
    return np.array(losses), {name: p.detach().cpu().numpy().copy()
                              for name, p in model.named_parameters()}


_train = training_runner(training_batches, train_numpy, train_torch)


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Training cases train both twins; every other case is one forward and backward."""
    if "steps" in case.options:
        return _train(case, trial, numpy_cls, torch_cls)
    return run_recurrent(case, trial, numpy_cls, torch_cls)


# --- cases ---------------------------------------------------------------------------------------
_TWINS = (numpy_twin.LSTM, torch_twin.LSTM, nn.LSTM)


def _case(name: str, **kwargs: Any) -> Case:
    return recurrent_case(name, _TWINS, states=2, **kwargs)


def _training(name: str, optimizer: str, **optimizer_options: Any) -> Case:
    # fd=False: a training run has no single backward to difference; the layer cases check
    # the LSTM's backward against finite differences.
    return Case(name, numpy=numpy_twin.CharLSTM, torch=torch_twin.CharLSTM,
                builtin=BuiltinCharLSTM, prepare=None, fd=False,
                options=dict(steps=TRAIN_STEPS, batch=8, block=16, optimizer=optimizer,
                             optimizer_options=optimizer_options))


CONCEPT = Concept(
    name="lstm",
    family="sequence",
    summary="LSTM (gates i, f, g, o; c_t = f c_{t-1} + i g, h_t = o tanh(c_t)), backprop "
            "through time; a character-level LSTM trained in both twins",
    compares="output, h_n and c_n; grads of the input, h0, c0 and every weight_ih, weight_hh, "
             "bias_ih, bias_hh, weight_hr (1-3 layers, bidirectional, proj_size, dropout "
             "masks shared, batch_first, unbatched); 30 training steps of a char-level LSTM on "
             "the names corpus (Adam, SGD): loss at every step, parameters at the end",
    witness="nn.LSTM (layer by layer with the masks for dropout); nn.Embedding, nn.Linear, "
            "F.cross_entropy, torch.optim",
    run=run,
    bench=Bench("LSTM(64, 128) on x (T, B, I) = (50, 32, 64)",
                cases=(_case("bench", steps=50, batch=32, input_size=64, hidden_size=128),)),
    cases=[
        _case("one-layer"),
        _case("h0-c0-given", hx=True),
        _case("batch-first", batch_first=True, hx=True),
        _case("two-layers", num_layers=2, hx=True),
        _case("three-layers-no-hx", num_layers=3, batch_first=True, input_size=3,
              hidden_size=4),
        _case("bidirectional", bidirectional=True, hx=True),
        _case("bidirectional-two-layers", bidirectional=True, num_layers=2, batch_first=True,
              hx=True, input_size=3, hidden_size=4),
        _case("proj-size", proj_size=3, hx=True),
        _case("proj-size-bidirectional-two-layers", proj_size=2, bidirectional=True,
              num_layers=2, hx=True, input_size=3, hidden_size=4),
        _case("no-bias", bias=False, hx=True),
        _case("sequence-length-1", steps=1, hx=True),
        _case("batch-of-one", batch=1, batch_first=True, hx=True),
        _case("unbatched", unbatched=True, hx=True),
        _case("unbatched-bidirectional-no-hx", unbatched=True, bidirectional=True,
              num_layers=2, input_size=3, hidden_size=4),
        _case("dropout", num_layers=2, dropout=0.4, mask=True, hx=True),
        _case("dropout-bidirectional-batch-first", num_layers=3, dropout=0.5, mask=True,
              bidirectional=True, batch_first=True, steps=4, input_size=3, hidden_size=4),
        _case("dropout-unbatched-proj", num_layers=2, dropout=0.3, mask=True, unbatched=True,
              proj_size=3, hx=True),
        _case("dropout-p1", num_layers=2, dropout=1.0, mask=True, hx=True),
        _case("dropout-eval", num_layers=2, dropout=0.5, train=False, hx=True),
        # eps=1e-4, not 1e-8: Adam's first step is lr·g/(|g| + eps), and where |g| ~ eps it
        # turns float32 rounding of g into O(lr) changes -- head.weight.grad[4, 27] is 4.5e-9
        # at step 1 (a character no window of the batch predicts), known to float32 only to
        # ~10 %, which left the twins 6e-4 apart after 30 steps with eps=1e-8. With eps=1e-4
        # the update is Lipschitz in g with constant lr/eps = 100 and the answer is defined.
        _training("train-adam", "Adam", lr=1e-2, eps=1e-4),
        _training("train-sgd", "SGD", lr=1.0),
    ],
)


# --- plots -----------------------------------------------------------------------------------
def loss_curves(dtype: str, seed: int = 0, steps: int = PLOT_STEPS,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Both twins' loss at each of ``steps`` Adam steps: the train-adam case, run longer."""
    base = CONCEPT.case("train-adam")
    case = Case(base.name, numpy=base.numpy, torch=base.torch, prepare=None, fd=False,
                options=dict(base.options, steps=steps))
    outcome = run(case, Trial(dtype, seed=seed, builtin=False, fd=False))
    names = [f"step{k}/loss" for k in range(1, steps + 1)]
    return (np.array([outcome.numpy[n] for n in names]),
            np.array([outcome.torch[n] for n in names]))


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """lstm_training_<dtype>.png: both twins' loss curves and |numpy - torch| per step."""
    from compare.plots import plot_curves
    paths = []
    for dtype in ("float64", "float32"):
        by_numpy, by_torch = loss_curves(dtype, seed, PLOT_STEPS)
        paths.append(plot_curves(
            Path(directory) / f"lstm_training_{dtype}.png",
            f"char-level LSTM, Adam lr=1e-2 eps=1e-4, batches of 8 x 16 characters of the names "
            f"corpus, seed {seed}", np.arange(1, len(by_numpy) + 1), by_numpy, by_torch,
            xlabel="training step", ylabel="cross-entropy loss (next character)",
            dtype=dtype))
    return paths


CONCEPT.extra_plots = extra_plots


# --- python -m compare.sequence.lstm --train: both twins trained side by side -----------------
def train_side_by_side(words: Sequence[str], steps: int = 1000, batch: int = 32,
                       block: int = 16, lr: float = 1e-2, seed: int = 0, every: int = 100,
                       out: TextIO | None = None) -> dict[str, np.ndarray]:
    """Both twins (float32, identical init and batches, Adam) trained on windows of the
    train split of ``words``; the losses side by side every ``every`` steps, then each
    twin's loss on the dev split (its windows end to end); printed to ``out`` (stdout)."""
    out = out or sys.stdout
    vocab = build_vocab(words)
    train, dev, _ = split_words(words)
    stream, dev_stream = word_stream(train, vocab), word_stream(dev or train, vocab)
    if len(stream) <= block + 1:
        raise ValueError(f"the training text has {len(stream)} characters: too few for "
                         f"windows of {block}")
    torch.manual_seed(seed)
    torch_model = torch_twin.CharLSTM(vocab_size=vocab.size)
    numpy_model = numpy_twin.CharLSTM(vocab_size=vocab.size)
    numpy_model.load_state_dict(torch_model.state_dict())
    numpy_opt = numpy_optim.Adam(numpy_model.parameters(), lr=lr, eps=1e-4)
    torch_opt = torch.optim.Adam(torch_model.parameters(), lr=lr, eps=1e-4)
    rng = np.random.default_rng(seed)
    curves: dict[str, list[float]] = {"numpy": [], "torch": []}
    print(f"training both char-level LSTM twins: {len(train)} words, {len(stream)} characters, "
          f"vocabulary {vocab.size}, {steps} Adam steps (lr={lr:g}) of {batch} windows of "
          f"{block}, float32", file=out)
    print(f"{'step':>6}  {'numpy loss':>11}  {'torch loss':>11}  {'|difference|':>12}", file=out)
    for step in range(1, steps + 1):
        idx, targets = windows(stream, rng.integers(0, len(stream) - block, batch), block)
        curves["numpy"].append(numpy_twin.train_step(numpy_model, numpy_opt, idx, targets))
        curves["torch"].append(torch_twin.train_step(torch_model, torch_opt,
                                                     torch.from_numpy(idx),
                                                     torch.from_numpy(targets)))
        if step % every == 0 or step in (1, steps):
            a, b = curves["numpy"][-1], curves["torch"][-1]
            print(f"{step:>6}  {a:>11.6f}  {b:>11.6f}  {abs(a - b):>12.3e}", file=out)
    count = max((len(dev_stream) - 1) // block, 1)
    idx, targets = windows(dev_stream, np.arange(count) * block, min(block, len(dev_stream) - 1))
    numpy_dev = float(numpy_model(idx, targets))
    with torch.no_grad():
        torch_dev = torch_model(torch.from_numpy(idx), torch.from_numpy(targets)).item()
    print(f"dev loss ({count} windows): numpy {numpy_dev:.6f}, torch {torch_dev:.6f}", file=out)
    return {k: np.array(v) for k, v in curves.items()} | {"dev": np.array([numpy_dev,
                                                                          torch_dev])}


def main(argv: Sequence[str] | None = None) -> int:
    """``--train [--data FILE] [--steps N] [--out DIR] [--seed N]`` trains both twins side by
    side and saves the loss curves; anything else is ``dualgrad run lstm``."""
    parser = argparse.ArgumentParser(prog="python -m compare.sequence.lstm", add_help=False)
    parser.add_argument("--train", action="store_true", help="train both twins side by side")
    parser.add_argument("--data", metavar="FILE", help="your UTF-8 text (default: names)")
    parser.add_argument("--steps", type=int, default=1000, help="Adam steps (default 1000)")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="where to save lstm_train_loss.png")
    parser.add_argument("--seed", type=int, default=0)
    args, rest = parser.parse_known_args(argv)
    if not args.train:
        from compare.cli import main as cli_main
        return cli_main(["run", CONCEPT.name, *(argv if argv is not None else sys.argv[1:])])
    try:  # bad input ends in one line and exit code 2
        if args.steps < 1:
            raise ValueError(f"--steps must be a positive number of steps, got {args.steps}")
        if rest:
            raise ValueError(f"unknown arguments with --train: {' '.join(rest)}")
        words = get_words(args.data)
        torch.set_num_threads(1)
        curves = train_side_by_side(words, steps=args.steps, seed=args.seed)
    except (OSError, ValueError) as error:
        print(f"dualgrad: error: {error}", file=sys.stderr)
        return 2
    from compare.plots import plot_curves
    path = plot_curves(Path(args.out) / "lstm_train_loss.png",
                       f"char-level LSTM on {args.data or 'the names corpus'}, seed {args.seed}",
                       np.arange(1, args.steps + 1), curves["numpy"], curves["torch"],
                       xlabel="Adam step (32 windows of 16 characters)",
                       ylabel="cross-entropy loss (next character)", dtype="float32")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
