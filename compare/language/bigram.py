"""Compare the bigram models: counting (counts, smoothed probabilities, NLL) and the neural
bigram trained by gradient descent (loss, dL/dW and W after every step).

Data: the pairs of ".word." of the training split (80%) of the built-in names corpus
(``compare.data.names``), or of your own UTF-8 text file:

    python -m compare.language.bigram --data FILE [run options]

The vocabulary covers every word (train, dev and test), '.' first. The comparison cases use
the first 1024 training pairs; the convergence plot and the printed training use them all (a
very large file or vocabulary is cut to its first 5e6 / V pairs: the (N, V) one-hot matrix
stays small).

Witnesses: ``torch.bincount`` for the counts; for the neural model, the one-hot matmul replaced
by a row lookup ``W[x]`` and ``F.cross_entropy``, trained by ``torch.optim.SGD``. Finite
differences check the first step's dL/dW (48 sampled entries).

Why the two models meet: the neural model's loss plus the smoothing penalty
(k/N) Σ_ij -log softmax(W)_ij is minimized exactly by the smoothed counts, so gradient
descent on W converges to the count model's table (``extra_plots``: both 27x27 matrices and
their difference), and the penalty's gradient vanishes there (tests/language/test_bigram.py).

After the table, ``python -m compare.language.bigram`` trains both twins and prints their
losses side by side, next to the count model's NLL.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compare.cli.bench import (
    numpy_loss_model_step,
    torch_loss_model_step,
    torch_optimizer,
    train_step_work,
)
from compare.cli.script import (
    Parser,
    ScriptError,
    guarded,
    help_requested,
    positive_int_value,
    run_options_help,
)
from compare.concept import Bench, Case, Concept, Outcome, Trial, randint
from compare.data import names
from compare.finite_diff import numerical_gradient
from numpy_impl.language import bigram as numpy_twin
from numpy_impl.training.optimizers import SGD
from torch_impl.language import bigram as torch_twin

MAX_ONE_HOT = 5_000_000  # elements of the (N, V) one-hot matrix
# The comparison cases train on the first 1024 pairs: every formula is exercised as on the full
# set, and finite differences (two forward passes per checked entry) stay fast. Converging to
# the count model (the plot, the printed losses) uses the whole training split.
CASE_PAIRS = 1024
PLOT_STEPS = 1000  # gradient-descent steps behind the convergence plot
UNICODE_WORDS = ("zoë", "łukasz", "émile", "名前", "ana", "o", "björk", "zoë", "ñandú")

_user_words: list[str] | None = None  # set by --data (``use_words``); None: the built-in corpus


def use_words(words: Sequence[str] | None) -> None:
    """Compare on these words instead of the built-in corpus (None: back to the corpus)."""
    global _user_words
    _user_words = None if words is None else list(words)


def dataset(words: Sequence[str] | None = None,
            max_pairs: int | None = None) -> tuple[names.Vocab, np.ndarray, np.ndarray]:
    """Vocabulary of all words, and the (xs, ys) pairs of the training split, capped."""
    words = list(words) if words is not None else (_user_words or names.builtin_words())
    vocab = names.build_vocab(words)
    train = names.split_words(words)[0] if len(words) >= 10 else words  # tiny: use them all
    xs, ys = names.bigram_pairs(train, vocab)
    cap = max(1, MAX_ONE_HOT // vocab.size)
    cap = cap if max_pairs is None else min(cap, max_pairs)
    return vocab, xs[:cap], ys[:cap]


def _data(case: Case) -> tuple[names.Vocab, np.ndarray, np.ndarray]:
    return dataset(case.options.get("words"), case.options.get("max_pairs", CASE_PAIRS))


# --- counting ----------------------------------------------------------------------------------
def run_counts(case: Case, trial: Trial, numpy_cls: Any = None,
               torch_cls: Any = None) -> Outcome:
    """Both counters (or a user's class in place of either) fitted on the same pairs."""
    import torch
    vocab, xs, ys = _data(case)
    k = case.options["smoothing"]
    mine = (numpy_cls or case.numpy)(vocab.size, smoothing=k)
    mine.fit(xs, ys, dtype=trial.np_dtype)
    twin = (torch_cls or case.torch)(vocab.size, smoothing=k)
    twin.fit(torch.from_numpy(xs), torch.from_numpy(ys), dtype=trial.torch_dtype)
    outcome = Outcome(
        numpy={"counts": np.asarray(mine.counts, dtype=np.float64), "probs": mine.probs,
               "nll": np.asarray(mine.nll(xs, ys))},
        torch={"counts": twin.counts.double().numpy(), "probs": twin.probs.numpy(),
               "nll": twin.nll(torch.from_numpy(xs), torch.from_numpy(ys)).numpy()},
        inputs={"xs": xs, "ys": ys})
    if trial.builtin:
        V = vocab.size
        counts = torch.bincount(torch.from_numpy(xs * V + ys), minlength=V * V).reshape(V, V)
        smoothed = (counts + k).to(trial.torch_dtype)
        probs = smoothed / smoothed.sum(1, keepdim=True)
        outcome.builtin = {"counts": counts.double().numpy(), "probs": probs.numpy()}
    return outcome


# --- the neural bigram, trained ----------------------------------------------------------------
def initial_W(vocab_size: int, trial: Trial) -> np.ndarray:
    """The torch twin's own initialization (torch.randn under the trial's seed), cast."""
    import torch
    torch.manual_seed(trial.seed)
    return trial.cast(torch_twin.NeuralBigram(vocab_size).W.detach().double().numpy())


def train_numpy(model: Any, xs: np.ndarray, ys: np.ndarray, steps: int,
                lr: float) -> dict[str, np.ndarray]:
    """Gradient descent by hand: forward, zero_grad, backward(1), W -= lr dL/dW."""
    record = {}
    for step in range(steps):
        loss = model(xs, ys)
        model.zero_grad()
        model.backward(np.ones((), dtype=model.W.data.dtype))  # dL/dL = 1: L is the loss
        record[f"step{step}/loss"] = np.asarray(loss)
        record[f"step{step}/grad.W"] = model.W.grad.copy()
        model.W.data += -lr * model.W.grad
        record[f"step{step}/param.W"] = model.W.data.copy()
    return record


def train_torch(model: Any, xs: Any, ys: Any, steps: int, lr: float) -> dict[str, np.ndarray]:
    """The lecture's loop: forward, W.grad = None, loss.backward(), W.data += -lr W.grad."""
    record = {}
    for step in range(steps):
        loss = model(xs, ys)
        model.W.grad = None
        loss.backward()
        record[f"step{step}/loss"] = loss.detach().numpy()
        record[f"step{step}/grad.W"] = model.W.grad.numpy().copy()
        model.W.data += -lr * model.W.grad
        record[f"step{step}/param.W"] = model.W.detach().numpy().copy()
    return record


def train_builtin(W0: np.ndarray, xs: np.ndarray, ys: np.ndarray, case: Case,
                  steps: int) -> dict[str, np.ndarray]:
    """The witness: a row lookup W[x] (what one-hot times W computes), F.cross_entropy and
    torch.optim.SGD."""
    import torch
    import torch.nn.functional as F
    l2, k, lr = case.options["l2"], case.options["smoothing"], case.options["lr"]
    W = torch.nn.Parameter(torch.from_numpy(W0.copy()))
    optimizer = torch.optim.SGD([W], lr=lr)
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    record = {}
    for step in range(steps):
        loss = F.cross_entropy(W[x], y) + l2 * W.pow(2).mean() \
            - (k / len(xs)) * F.log_softmax(W, dim=1).sum()
        optimizer.zero_grad()
        loss.backward()
        record[f"step{step}/loss"] = loss.detach().numpy()
        record[f"step{step}/grad.W"] = W.grad.numpy().copy()
        optimizer.step()
        record[f"step{step}/param.W"] = W.detach().numpy().copy()
    return record


def _neural_init(case: Case, vocab: names.Vocab) -> dict[str, Any]:
    return dict(vocab_size=vocab.size, l2=case.options["l2"],
                smoothing=case.options["smoothing"])


def run_neural(case: Case, trial: Trial, numpy_cls: Any = None,
               torch_cls: Any = None) -> Outcome:
    import torch
    vocab, xs, ys = _data(case)
    init = _neural_init(case, vocab)
    W0 = initial_W(vocab.size, trial)
    steps, lr = case.options["steps"], case.options["lr"]
    mine = (numpy_cls or case.numpy)(**init)
    mine.to(trial.np_dtype)
    mine.load_state_dict({"W": W0})
    twin = (torch_cls or case.torch)(**init).to(trial.torch_dtype)
    twin.load_state_dict({"W": torch.from_numpy(W0.copy())})
    outcome = Outcome(numpy=train_numpy(mine, xs, ys, steps, lr),
                      torch=train_torch(twin, torch.from_numpy(xs), torch.from_numpy(ys),
                                        steps, lr),
                      inputs={"xs": xs, "ys": ys})
    if trial.builtin:
        outcome.builtin = train_builtin(W0, xs, ys, case, steps)
    if trial.fd and case.fd and trial.dtype == "float64":
        model = (numpy_cls or case.numpy)(**init)
        model.to(np.float64)
        point = W0.copy()
        model.load_state_dict({"W": point})
        model.W.data = point  # the array finite differences perturb in place
        index = np.sort(np.random.default_rng(trial.seed + 1).choice(
            point.size, min(48, point.size), replace=False))
        numeric = numerical_gradient(lambda: float(model(xs, ys)), point, index)
        analytic = outcome.numpy["step0/grad.W"].reshape(-1)[index]
        outcome.fd = {"step0/grad.W": (analytic, numeric)}
    return outcome


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    if case.options["kind"] == "counts":
        return run_counts(case, trial, numpy_cls, torch_cls)
    return run_neural(case, trial, numpy_cls, torch_cls)


# --- the neural model converges to the count model -------------------------------------------
def converge(smoothing: float = 1.0, steps: int = 1000, lr: float = 50.0, seed: int = 0,
             words: Sequence[str] | None = None,
             max_pairs: int | None = 4000) -> dict[str, np.ndarray]:
    """Train both twins of the neural bigram with the smoothing penalty k (no l2) by gradient
    descent (float64) on the first ``max_pairs`` training pairs; return the NumPy twin's
    softmax(W), the count model's table with the same k, and both twins' losses per step.

    Plain gradient descent is slow on the rows of rare characters (their gradient scales with
    their share of the pairs), so the gap closes over thousands of steps, not hundreds."""
    import torch
    vocab, xs, ys = dataset(words, max_pairs)
    W0 = initial_W(vocab.size, Trial("float64", seed=seed))
    mine = numpy_twin.NeuralBigram(vocab.size, smoothing=smoothing).double()
    mine.load_state_dict({"W": W0})
    twin = torch_twin.NeuralBigram(vocab.size, smoothing=smoothing).double()
    twin.load_state_dict({"W": torch.from_numpy(W0.copy())})
    by_numpy = train_numpy(mine, xs, ys, steps, lr)
    by_torch = train_torch(twin, torch.from_numpy(xs), torch.from_numpy(ys), steps, lr)
    counts = numpy_twin.BigramCounts(vocab.size, smoothing=smoothing).fit(xs, ys)
    return {"neural": mine.probs(), "counts": counts.probs,
            "count_nll": np.asarray(counts.nll(xs, ys)),
            "loss_numpy": np.array([by_numpy[f"step{k}/loss"] for k in range(steps)]),
            "loss_torch": np.array([by_torch[f"step{k}/loss"] for k in range(steps)]),
            "itos": np.array([vocab.itos[i] for i in range(vocab.size)])}


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """bigram_convergence.png: the count model's P, the trained neural model's softmax(W) and
    |difference|; bigram_loss.png: both twins' losses during that training."""
    from compare.plots import new_figure, plot_curves, save
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    steps = PLOT_STEPS
    result = converge(smoothing=1.0, steps=steps, seed=seed)
    labels = list(result["itos"])
    fig = new_figure(figsize=(19, 6.5), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = [("count model: P_ij = (N_ij + 1) / Σ_j (N_ij + 1)", result["counts"], "viridis"),
              (f"neural model after {steps} steps: softmax(W)_ij", result["neural"], "viridis"),
              ("|neural - counts|", np.abs(result["neural"] - result["counts"]), "magma")]
    for ax, (title, matrix, cmap) in zip(axes, panels, strict=True):
        image = ax.imshow(matrix, cmap=cmap)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(labels)), labels, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_xlabel("next character j")
        ax.set_ylabel("current character i")
        fig.colorbar(image, ax=ax, shrink=0.7)
    gap = np.abs(result["neural"] - result["counts"]).max()
    fig.suptitle("Bigram: the neural model (one-hot x W, softmax, NLL + smoothing penalty k=1, "
                 f"gradient descent lr 50, float64, seed {seed}) converges to the smoothed "
                 f"counts; max |difference| {gap:.1e}")
    convergence = directory / "bigram_convergence.png"
    save(fig, convergence, dpi=90)
    loss = plot_curves(directory / "bigram_loss.png",
                       "neural bigram training loss, NLL + smoothing penalty k=1", np.arange(steps),
                       result["loss_numpy"], result["loss_torch"],
                       xlabel="gradient-descent step", ylabel="loss", dtype="float64")
    return [convergence, loss]


def _counts_case(name: str, smoothing: float, **options: Any) -> Case:
    return Case(name, numpy=numpy_twin.BigramCounts, torch=torch_twin.BigramCounts,
                prepare=None, options=dict(kind="counts", smoothing=smoothing, **options))


def _neural_case(name: str, l2: float, smoothing: float, **options: Any) -> Case:
    return Case(name, numpy=numpy_twin.NeuralBigram, torch=torch_twin.NeuralBigram,
                prepare=None, options=dict(kind="neural", l2=l2, smoothing=smoothing,
                                           steps=5, lr=50.0, **options))


CONCEPT = Concept(
    name="bigram",
    family="language",
    summary="the bigram character model: counting with smoothing, and one-hot x W, softmax, "
            "NLL trained by gradient descent",
    compares="counts, smoothed probabilities and NLL (k = 0, 1; Unicode words); the neural "
             "bigram (l2, smoothing penalty) over 5 steps of gradient descent: loss, dL/dW "
             "and W per step; witnesses torch.bincount, F.cross_entropy on W[x] + "
             "torch.optim.SGD; plot: trained softmax(W) vs the count table",
    witness="torch.bincount; F.cross_entropy + torch.optim.SGD",
    run=run,
    extra_plots=extra_plots,
    bench=Bench("one SGD step of the neural bigram (V = 27) on 32,768 (x, y) pairs, about "
                "the names corpus's bigrams (no built-in: vs the torch twin)",
                work=train_step_work(
                    (numpy_twin.NeuralBigram, None, SGD, numpy_loss_model_step),
                    (torch_twin.NeuralBigram, None, torch_optimizer("SGD"),
                     torch_loss_model_step),
                    None, dict(vocab_size=27), randint(27, 32768), randint(27, 32768),
                    dict(lr=50.0))),
    cases=[
        _counts_case("counts", smoothing=1.0),
        _counts_case("counts-unsmoothed", smoothing=0.0),
        _counts_case("counts-unicode", smoothing=1.0, words=UNICODE_WORDS),
        _neural_case("neural", l2=0.01, smoothing=0.0),  # the lecture's regularizer
        _neural_case("neural-smoothing", l2=0.0, smoothing=1.0),
        _neural_case("neural-unicode", l2=0.01, smoothing=1.0, words=UNICODE_WORDS),
    ],
)


def print_losses(steps: int = 20, lr: float = 50.0, seed: int = 0) -> None:
    """Both twins' training losses side by side (l2 0.01, as the lecture), and the counts'."""
    case = Case("print", numpy=numpy_twin.NeuralBigram, torch=torch_twin.NeuralBigram,
                options=dict(kind="neural", l2=0.01, smoothing=0.0, steps=steps, lr=lr,
                             max_pairs=None))  # the whole training split
    outcome = run_neural(case, Trial("float64", seed=seed, builtin=False, fd=False))
    vocab, xs, ys = _data(case)
    count_nll = numpy_twin.BigramCounts(vocab.size, smoothing=1.0).fit(xs, ys).nll(xs, ys)
    print(f"neural bigram, {len(xs)} training pairs, V = {vocab.size}, lr {lr}, l2 0.01, "
          f"float64 (count model NLL, k = 1: {float(count_nll):.6f})")
    print(f"{'step':>5} {'numpy loss':>14} {'torch loss':>14} {'|difference|':>13}")
    for k in range(steps):
        a, b = float(outcome.numpy[f"step{k}/loss"]), float(outcome.torch[f"step{k}/loss"])
        print(f"{k:>5} {a:>14.10f} {b:>14.10f} {abs(a - b):>13.2e}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m compare.language.bigram [--data FILE] [--steps N] [run options]``: the
    comparison, then both twins' training losses side by side. Bad input is one line on
    stderr and exit 2, found before anything runs (``compare.cli.script.guarded``)."""
    from compare.cli import main as cli_main
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(prog="python -m compare.language.bigram", add_help=False,
                    description="The bigram comparison (as `dualgrad run bigram`), then the "
                                "neural bigram's training losses of both twins side by side.")
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument("--data", type=Path, metavar="FILE",
                        help="a UTF-8 text file of words (default: the built-in names corpus)")
    parser.add_argument("--steps", type=positive_int_value, default=20,
                        help="training steps to print (20)")

    def body() -> int:
        if help_requested(argv):
            print(parser.format_help() + "\n" + run_options_help())
            return 0
        known, rest = parser.parse_known_args(argv)
        if known.data is not None:
            try:
                words = names.load_words(known.data)
            except (OSError, ValueError) as error:
                raise ScriptError(f"--data: {error}") from None
            # the registry imports this file as compare.language.bigram, not as __main__
            from compare.language import bigram as registered
            registered.use_words(words)
            use_words(words)
        code = cli_main(["run", "bigram", *rest])
        if "--json" not in rest and code != 2:
            print()
            print_losses(steps=known.steps)
        return code
    return guarded("dualgrad", body)  # as the comparison it runs: one prefix


if __name__ == "__main__":
    raise SystemExit(main())
