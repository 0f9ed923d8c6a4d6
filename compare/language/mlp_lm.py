"""Compare the Bengio (2003) MLP language model: one forward and backward, then training.

Two kinds of case, one ``run``:

- *gradient* cases (the module runner): the loss -- or the logits, without targets -- and the
  gradient of every parameter (embedding, hidden, output), NumPy by hand vs autograd, vs
  central finite differences, and vs ``BuiltinMLPLanguageModel`` (``F.embedding``,
  ``F.linear``, ``torch.tanh``, ``F.cross_entropy`` on the same parameters);
- *training* cases: a few steps of minibatch SGD on the built-in names corpus (the train split),
  the same batches for both twins (drawn once), NumPy's SGD (numpy_impl.training) vs
  ``torch.optim.SGD``: ``step{k}/loss`` for every step, ``step{K}/param.*`` after the last, and
  ``sample.tokens``: words drawn from the trained model with shared uniforms (inverse CDF).
  The built-in model, trained the same way, witnesses the torch twin.

Sampled tokens are integers and must be equal, so they are compared in float64 only. After
a few float32 SGD steps the twins' parameters differ by ~1e-7 relative (6e-8 on embeddings of
3.5 at seed 646), so are their probabilities, and a uniform that close to one of the 26 CDF
steps picks the next word by rounding: about 1e-3 per seed for the cases' ~180 draws, and it
happened at seed 646 (train-small-batches). In float64 the probabilities agree to ~1e-15.
The float32 runs compare every loss and parameter.

Run: ``python -m compare.language.mlp_lm [--data FILE] [--steps N] [run options]``: the
comparison, then both twins trained side by side (losses per step, train / dev / test losses,
sampled words) on the built-in corpus or on your own text.
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F

from compare.cli.bench import train_step_work
from compare.cli.script import (
    Parser,
    ScriptError,
    guarded,
    help_requested,
    run_options_help,
)
from compare.concept import Bench, Case, Concept, Outcome, Trial, randint
from compare.data.names import Vocab, build_vocab, builtin_words, get_words, split_words
from compare.runner import initial_state, run_module, torch_module
from compare.runner import numpy_twin as make_numpy_twin
from compare.tolerances import Tolerance
from numpy_impl.language import mlp_lm as numpy_twin
from numpy_impl.training.optimizers import SGD
from torch_impl.language import mlp_lm as torch_twin

VOCAB_SIZE = 27  # '.' and 'a'..'z': the built-in corpus's vocabulary


class BuiltinMLPLanguageModel(torch_twin.MLPLanguageModel):
    """The same model (constructor, parameters) from torch's built-in functions."""

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        emb = F.embedding(idx, self.embedding.weight)                 # (B, T, E)
        h = torch.tanh(F.linear(emb.flatten(1), self.hidden.weight, self.hidden.bias))
        logits = F.linear(h, self.output.weight, self.output.bias)    # (B, V)
        return logits if targets is None else F.cross_entropy(logits, targets)


# --- data: the built-in corpus's train split, as (context, next token) examples -----------------
@functools.lru_cache(maxsize=4)
def corpus_examples(block_size: int) -> tuple[np.ndarray, np.ndarray]:
    words = builtin_words()
    train, _, _ = split_words(words)
    return numpy_twin.build_dataset(train, build_vocab(words).stoi, block_size)


# --- training: the same batches, each twin with its own optimizer --------------------------------
def _train_numpy(model: Any, X: np.ndarray, Y: np.ndarray, batches: np.ndarray, lr: float,
                 uniforms: np.ndarray, sample: bool) -> dict[str, np.ndarray]:
    optimizer = SGD(model.parameters(), lr=lr)
    values = {}
    for k, rows in enumerate(batches, start=1):
        values[f"step{k}/loss"] = np.asarray(
            numpy_twin.train_step(model, optimizer, X[rows], Y[rows]), dtype=uniforms.dtype)
    for name, param in model.named_parameters():
        values[f"step{len(batches)}/param.{name}"] = param.data.copy()
    if sample:
        values["sample.tokens"] = numpy_twin.sample(model, uniforms)
    return values


def _train_torch(model: torch.nn.Module, X: np.ndarray, Y: np.ndarray, batches: np.ndarray,
                 lr: float, uniforms: np.ndarray, sample: bool, device: str,
                 ) -> dict[str, np.ndarray]:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    X_t, Y_t = torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)
    dtype = next(model.parameters()).dtype
    values = {}
    for k, rows in enumerate(batches, start=1):
        index = torch.from_numpy(rows).to(device)
        loss = torch_twin.train_step(model, optimizer, X_t[index], Y_t[index])
        values[f"step{k}/loss"] = torch.tensor(loss, dtype=dtype).numpy()
    for name, param in model.named_parameters():
        values[f"step{len(batches)}/param.{name}"] = param.detach().cpu().numpy().copy()
    if sample:
        model.cpu()  # sampling builds its tensors on the CPU
        values["sample.tokens"] = torch_twin.sample(model, torch.from_numpy(uniforms)).numpy()
    return values


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Gradient cases: the module runner. Training cases: ``steps`` SGD steps on batches of
    ``batch_size`` drawn once, then ``samples`` words sampled with shared uniforms."""
    options = case.options
    if "steps" not in options:
        return run_module(case, trial, numpy_cls, torch_cls)
    rng = trial.rng()
    state = initial_state(case, trial, rng)         # the torch twin's init, in the trial's data
    X, Y = corpus_examples(case.init["block_size"])
    batches = rng.integers(0, len(X), size=(options["steps"], options["batch_size"]))
    uniforms = trial.cast(rng.random((options["samples"], options["max_len"])))
    lr, sample = options["lr"], trial.dtype == "float64"   # words: float64 only (docstring)
    numpy_values = _train_numpy(make_numpy_twin(case, state, trial, numpy_cls), X, Y, batches,
                                lr, uniforms, sample)
    torch_values = _train_torch(torch_module(torch_cls or case.torch, case, state, trial), X, Y,
                                batches, lr, uniforms, sample, trial.device)
    outcome = Outcome(numpy=numpy_values, torch=torch_values)
    if trial.builtin and case.builtin is not None:
        outcome.builtin = _train_torch(torch_module(case.builtin, case, state, trial), X, Y,
                                       batches, lr, uniforms, sample, trial.device)
    return outcome


# --- the demo: both twins trained side by side ------------------------------------------------
def train_side_by_side(words: Sequence[str], steps: int = 3000, batch_size: int = 32,
                       lr: float = 0.1, seed: int = 0, every: int = 300,
                       out: TextIO = sys.stdout) -> dict[str, Any]:
    """Train both twins (float32, the same init and batches) and print their losses side by
    side, then each split's loss and words sampled with shared uniforms. The learning rate
    drops tenfold for the last quarter of the steps, as in the lecture."""
    vocab = build_vocab(words)
    train, dev, test = split_words(words)
    splits = {name: numpy_twin.build_dataset(split, vocab.stoi, 3)
              for name, split in (("train", train), ("dev", dev), ("test", test))}
    torch.manual_seed(seed)
    torch_model = torch_twin.MLPLanguageModel(vocab_size=vocab.size)
    numpy_model = numpy_twin.MLPLanguageModel(vocab_size=vocab.size)
    numpy_model.load_state_dict(torch_model.state_dict())
    numpy_opt = SGD(numpy_model.parameters(), lr=lr)
    torch_opt = torch.optim.SGD(torch_model.parameters(), lr=lr)
    X, Y = splits["train"]
    X_t, Y_t = torch.from_numpy(X), torch.from_numpy(Y)
    rng = np.random.default_rng(seed)
    curves = {"step": [], "numpy": [], "torch": []}
    print(f"training both twins: {len(train)} train words, {len(X)} examples, vocabulary "
          f"{vocab.size}, {steps} steps of {batch_size}, float32", file=out)
    print(f"{'step':>6}  {'numpy loss':>11}  {'torch loss':>11}  {'|difference|':>12}", file=out)
    for step in range(1, steps + 1):
        if step == steps * 3 // 4 + 1:
            for group in numpy_opt.param_groups + torch_opt.param_groups:
                group["lr"] = lr / 10
        rows = rng.integers(0, len(X), batch_size)
        loss_np = numpy_twin.train_step(numpy_model, numpy_opt, X[rows], Y[rows])
        loss_th = torch_twin.train_step(torch_model, torch_opt, X_t[rows], Y_t[rows])
        curves["step"].append(step)
        curves["numpy"].append(loss_np)
        curves["torch"].append(loss_th)
        if step % every == 0 or step in (1, steps):
            print(f"{step:>6}  {loss_np:>11.6f}  {loss_th:>11.6f}  {abs(loss_np - loss_th):>12.3e}",
                  file=out)
    print(f"\n{'split':>6}  {'numpy loss':>11}  {'torch loss':>11}", file=out)
    for name, (Xs, Ys) in splits.items():
        if len(Xs):
            loss_np = numpy_twin.evaluate(numpy_model, Xs, Ys)
            loss_th = torch_twin.evaluate(torch_model, torch.from_numpy(Xs), torch.from_numpy(Ys))
            print(f"{name:>6}  {loss_np:>11.6f}  {loss_th:>11.6f}", file=out)
    uniforms = rng.random((10, 20)).astype(np.float32)
    words_np = decode_words(numpy_twin.sample(numpy_model, uniforms), vocab)
    words_th = decode_words(torch_twin.sample(torch_model, torch.from_numpy(uniforms)).numpy(),
                            vocab)
    print("\nsampled with shared uniforms:", file=out)
    for a, b in zip(words_np, words_th, strict=True):
        print(f"  {a:<20} {b:<20} {'same' if a == b else 'DIFFERENT'}", file=out)
    return {k: np.asarray(v) for k, v in curves.items()} | {"words": (words_np, words_th)}


def decode_words(tokens: np.ndarray, vocab: Vocab) -> list[str]:
    """Each row of sampled tokens up to its first boundary 0, as a string."""
    words = []
    for row in np.asarray(tokens).tolist():
        end = row.index(0) if 0 in row else len(row)
        words.append(vocab.decode(row[:end]))
    return words


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """mlp_lm_training.png: both twins' training loss per step, and their difference."""
    import io

    from compare.plots import plot_curves
    curves = train_side_by_side(builtin_words(), steps=300, seed=seed, out=io.StringIO())
    return [plot_curves(Path(directory) / "mlp_lm_training.png",
                        "MLP language model: training loss, the same batches", curves["step"],
                        curves["numpy"], curves["torch"], xlabel="SGD step (batch of 32)",
                        ylabel="cross-entropy loss", dtype="float32")]


def _gradient_case(name: str, batch: int, targets: bool = True, **init: Any) -> Case:
    sizes = dict(vocab_size=VOCAB_SIZE, block_size=3, n_embd=10, n_hidden=200) | init
    inputs = dict(idx=randint(sizes["vocab_size"], batch, sizes["block_size"]))
    if targets:
        inputs["targets"] = randint(sizes["vocab_size"], batch)
    return Case(name, numpy=numpy_twin.MLPLanguageModel, torch=torch_twin.MLPLanguageModel,
                builtin=BuiltinMLPLanguageModel, init=sizes, inputs=inputs)


def _training_case(name: str, steps: int, batch_size: int, lr: float = 0.1,
                   **init: Any) -> Case:
    sizes = dict(vocab_size=VOCAB_SIZE, block_size=3, n_embd=10, n_hidden=200) | init
    # fd=False: a training trajectory has no single backward to difference; the gradient
    # cases check the same backward against finite differences.
    # prepare=None: training starts from the torch twin's own initialization.
    return Case(name, numpy=numpy_twin.MLPLanguageModel, torch=torch_twin.MLPLanguageModel,
                builtin=BuiltinMLPLanguageModel, init=sizes, prepare=None, fd=False,
                options=dict(steps=steps, batch_size=batch_size, lr=lr, samples=5, max_len=12))


CONCEPT = Concept(
    name="mlp_lm",
    family="language",
    summary="Bengio 2003 MLP language model: embed 3 characters, concat, tanh layer, softmax",
    compares="loss or logits; grads of embedding, hidden, output weights and biases; SGD "
             "training: loss per step, parameters after the last step, words sampled with "
             "shared uniforms",
    witness="F.embedding, F.linear, F.cross_entropy; torch.optim.SGD",
    run=run,
    extra_plots=extra_plots,
    # integers below 1e12: any difference (>= 1) exceeds 1e-12 max|b|, so the same words,
    # token for token (rtol=0 itself trips the plots' log10 axis)
    tolerance={"float64:sample.tokens": Tolerance(rtol=1e-12)},   # float64 only: docstring
    bench=Bench("one SGD step of the MLP language model (block 3, n_embd 10, n_hidden 200) on a "
                "batch of 32 contexts", work=train_step_work(
                    (numpy_twin.MLPLanguageModel, None, SGD,
                     lambda model, _, opt, x, y: numpy_twin.train_step(model, opt, x, y)),
                    (torch_twin.MLPLanguageModel, None, torch.optim.SGD,
                     lambda model, _, opt, x, y: torch_twin.train_step(model, opt, x, y)),
                    (BuiltinMLPLanguageModel, None, torch.optim.SGD,
                     lambda model, _, opt, x, y: torch_twin.train_step(model, opt, x, y)),
                    {}, randint(27, 32, 3), randint(27, 32), dict(lr=0.1))),
    cases=[
        _gradient_case("loss", 32),
        _gradient_case("logits", 8, targets=False),
        _gradient_case("batch-of-one", 1, n_hidden=16),
        _gradient_case("context-of-one", 16, block_size=1, n_hidden=16),
        _gradient_case("repeated-contexts", 64, vocab_size=3, n_hidden=8),
        _training_case("train-lecture-sizes", steps=5, batch_size=32),
        _training_case("train-small-batches", steps=8, batch_size=4, n_hidden=32),
        _training_case("train-batch-of-one", steps=4, batch_size=1, n_hidden=16),
    ],
)




# 80 / 10 / 10 split: ten words give every split at least one (8 / 1 / 1)
MIN_DEMO_WORDS = 10


def script(argv: Sequence[str] | None = None) -> int:
    """``python -m compare.language.mlp_lm [--data FILE] [--steps N] [run options]``: the
    comparison (``dualgrad run mlp_lm`` with the run options), then the training demo.
    Returns the comparison's exit code; bad input is one line on stderr and 2, found before
    anything runs (``compare.cli.script.guarded``)."""
    from compare.cli import main
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(prog="python -m compare.language.mlp_lm", add_help=False,
                    description="The mlp_lm comparison (as `dualgrad run mlp_lm`), then a demo: "
                                "both twins trained side by side on a corpus of words, their "
                                "losses printed every 300 steps, and words sampled from each.")
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument("--data", type=Path, metavar="FILE",
                        help="train the demo on your UTF-8 text file of words (at least "
                             f"{MIN_DEMO_WORDS}; default: the built-in names corpus)")
    parser.add_argument("--steps", type=int, default=3000,
                        help="training steps of the demo (3000)")

    def body() -> int:
        if help_requested(argv):
            print(parser.format_help() + "\n" + run_options_help())
            return 0
        args, rest = parser.parse_known_args(argv)
        if args.steps < 1:
            raise ScriptError(f"--steps must be a positive number of steps, got {args.steps}")
        try:
            demo_words = get_words(args.data)
        except (OSError, ValueError) as error:
            raise ScriptError(str(error)) from None
        if len(demo_words) < MIN_DEMO_WORDS:
            raise ScriptError(f"--data {args.data}: {len(demo_words)} word(s); the demo splits "
                              f"the words 80/10/10 and needs at least {MIN_DEMO_WORDS}")
        code = main(["run", CONCEPT.name, *rest])
        if code != 2:  # with --json, stdout stays JSON: the demo goes to stderr
            demo_out = sys.stderr if "--json" in rest else sys.stdout
            print(file=demo_out)
            train_side_by_side(demo_words, steps=args.steps, out=demo_out)
        return code
    return guarded("dualgrad", body)  # as the comparison it runs: one prefix


if __name__ == "__main__":
    raise SystemExit(script())
