"""bigram: counts and probabilities by hand, one-hot times W is a row lookup, smoothing is a
regularizer (numbers), training approaches the count table, --data, verify and the plots."""
import numpy as np
import pytest
import torch

from compare.concept import Trial
from compare.data import names
from compare.language import bigram as cmp
from compare.verify import verify
from numpy_impl.language.bigram import BigramCounts, NeuralBigram
from torch_impl.language import bigram as tb

WORDS = ["emma", "ava", "anna"]


def _pairs(words=WORDS):
    vocab = names.build_vocab(words)  # . a e m n v -> 0 .. 5
    xs, ys = names.bigram_pairs(words, vocab)
    return vocab, xs, ys


def test_counts_and_probabilities_known_answer():
    vocab, xs, ys = _pairs()
    model = BigramCounts(vocab.size, smoothing=0.0).fit(xs, ys)
    s = vocab.stoi
    assert model.counts[s["."], s["a"]] == 2 and model.counts[s["."], s["e"]] == 1
    assert model.counts[s["a"], s["."]] == 3 and model.counts.sum() == len(xs) == 14
    # row 'a': a. three times, av once, an once -> 3/5, 1/5, 1/5
    np.testing.assert_allclose(model.probs[s["a"], [s["."], s["v"], s["n"]]], [.6, .2, .2])
    smoothed = BigramCounts(vocab.size, smoothing=1.0).fit(xs, ys)
    assert smoothed.probs[s["a"], s["."]] == pytest.approx(4 / 11)  # (3 + 1) / (5 + 6)
    np.testing.assert_allclose(smoothed.probs.sum(axis=1), 1.0, rtol=1e-15)
    twin = tb.BigramCounts(vocab.size, smoothing=1.0).fit(torch.from_numpy(xs),
                                                            torch.from_numpy(ys))
    np.testing.assert_array_equal(twin.counts.numpy(), smoothed.counts)
    nll = -np.mean(np.log(model.probs[xs, ys]))
    assert float(model.nll(xs, ys)) == pytest.approx(nll, rel=1e-15)
    with pytest.raises(ValueError, match="smoothing"):
        BigramCounts(3, smoothing=-1.0)


def test_one_hot_times_W_is_a_row_lookup():
    vocab, xs, ys = _pairs()
    model = NeuralBigram(vocab.size).double()
    model(xs, ys)
    np.testing.assert_array_equal(model.xenc @ model.W.data, model.W.data[xs])
    assert model.state_dict().keys() == tb.NeuralBigram(vocab.size).state_dict().keys() == {"W"}


def _optimum(counts: np.ndarray, k: float) -> np.ndarray:
    """W* = log((N + k) / rowsum): the smoothed count table as logits."""
    smoothed = counts + k
    return np.log(smoothed / smoothed.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("k", [0.5, 1.0, 3.0])
def test_smoothing_is_a_regularizer_whose_minimum_is_the_smoothed_counts(k):
    vocab, xs, ys = cmp.dataset(max_pairs=3000)
    counts = BigramCounts(vocab.size, smoothing=k).fit(xs, ys).counts

    def grad_norm(model_k: float, W: np.ndarray) -> float:
        model = NeuralBigram(vocab.size, smoothing=model_k).double()
        model.load_state_dict({"W": W})
        model(xs, ys)
        model.backward(np.ones(()))
        twin = tb.NeuralBigram(vocab.size, smoothing=model_k).double()
        twin.load_state_dict({"W": torch.from_numpy(W.copy())})
        twin(torch.from_numpy(xs), torch.from_numpy(ys)).backward()
        np.testing.assert_allclose(model.W.grad, twin.W.grad.numpy(), rtol=0, atol=1e-15)
        return float(np.abs(model.W.grad).max())

    # NLL + (k/N) sum -log softmax(W) has zero gradient exactly at the k-smoothed counts ...
    assert grad_norm(k, _optimum(counts, k)) < 1e-14
    # ... and not at other smoothings, nor without the penalty
    assert grad_norm(k, _optimum(counts, 2 * k)) > 1e-4
    assert grad_norm(0.0, _optimum(counts, k)) > 1e-4
    # more smoothing, flatter rows: both the counts and the penalty pull toward uniform
    entropy = lambda p: -(p * np.log(p)).sum(axis=1).mean()  # noqa: E731
    assert entropy(np.exp(_optimum(counts, 2 * k))) > entropy(np.exp(_optimum(counts, k)))


def test_l2_also_pulls_toward_uniform_but_not_to_the_smoothed_counts():
    vocab, xs, ys = cmp.dataset(max_pairs=3000)
    counts = BigramCounts(vocab.size, smoothing=1.0).fit(xs, ys).counts
    model = NeuralBigram(vocab.size, l2=0.01).double()
    model.load_state_dict({"W": _optimum(counts, 1.0)})
    model(xs, ys)
    model.backward(np.ones(()))
    assert np.abs(model.W.grad).max() > 1e-4  # the L2 optimum is another table


def test_training_approaches_the_count_table():
    result = cmp.converge(smoothing=1.0, steps=60, max_pairs=1000)
    losses = result["loss_numpy"]
    np.testing.assert_allclose(losses, result["loss_torch"], rtol=1e-12)
    assert np.all(np.diff(losses) < 0)  # gradient descent on a convex loss: monotone
    gap = np.abs(result["neural"] - result["counts"]).max()
    initial = cmp.converge(smoothing=1.0, steps=1, max_pairs=1000)
    assert gap < 0.2 * np.abs(initial["neural"] - initial["counts"]).max()


def test_unicode_words_and_the_float32_run():
    outcome = cmp.run(cmp.CONCEPT.case("neural-unicode"), Trial("float32", fd=False))
    assert outcome.numpy["step0/grad.W"].shape == (len(set("".join(cmp.UNICODE_WORDS))) + 1,) * 2
    assert outcome.numpy["step4/param.W"].dtype == np.float32
    np.testing.assert_allclose(outcome.numpy["step4/loss"], outcome.torch["step4/loss"],
                               rtol=1e-5)


def test_verify_accepts_a_copy_of_the_neural_bigram():
    class MyNeuralBigram(NeuralBigram):
        pass
    report = verify("bigram", MyNeuralBigram)
    assert report.passed and len(report.diffs) > 20


def test_data_flag_runs_on_a_user_file_and_prints_both_losses(tmp_path, capsys):
    path = tmp_path / "words.txt"
    path.write_text("\n".join(names.builtin_words(300, seed=5)), encoding="utf-8")
    try:
        assert cmp.main(["--data", str(path), "--dtype", "float64", "--steps", "3"]) == 0
        assert cmp.dataset()[1].size == cmp.dataset(names.load_words(path))[1].size
    finally:
        cmp.use_words(None)
    out = capsys.readouterr().out
    assert "language/bigram: agree" in out
    lines = [line.split() for line in out.splitlines() if line[:5].strip() in {"0", "1", "2"}]
    assert len(lines) == 3
    assert all(float(numpy) == pytest.approx(float(torch_), rel=1e-12)
               for _, numpy, torch_, _ in lines)
    assert cmp.main(["--data", str(tmp_path / "nope.txt")]) == 2
    assert "--data: no such file" in capsys.readouterr().err


def test_extra_plots_are_written(tmp_path, monkeypatch):
    monkeypatch.setattr(cmp, "PLOT_STEPS", 5)
    paths = cmp.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["bigram_convergence.png", "bigram_loss.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
