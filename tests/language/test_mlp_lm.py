"""Focused tests of the Bengio MLP language model: the examples built from words, the loss
against torch's built-in, gradient accumulation, sampling by inverse CDF with shared uniforms,
training side by side, the script (--data), the plot and verify."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compare.data.names import build_vocab, builtin_words, split_words
from compare.language.mlp_lm import (
    BuiltinMLPLanguageModel,
    decode_words,
    extra_plots,
    script,
    train_side_by_side,
)
from compare.verify import verify
from numpy_impl.language import mlp_lm as npm
from numpy_impl.training.optimizers import SGD
from torch_impl.language import mlp_lm as thm

ROOT = Path(__file__).resolve().parents[2]
VOCAB = build_vocab(builtin_words())


def _twins(**init):
    torch.manual_seed(0)
    twin = thm.MLPLanguageModel(**init).double()
    numpy_twin = npm.MLPLanguageModel(**init).double()
    numpy_twin.load_state_dict(twin.state_dict())
    return numpy_twin, twin


def test_build_dataset_frames_each_word_with_the_boundary():
    # the lecture's example: "emma" gives ... -> e, ..e -> m, .em -> m, emm -> a, mma -> .
    e, m, a, b = (VOCAB.stoi[ch] for ch in "emab")
    for twin in (npm, thm):
        X, Y = twin.build_dataset(["emma", "ab"], VOCAB.stoi, 3)
        X, Y = np.asarray(X), np.asarray(Y)
        assert X[:5].tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a]]
        assert Y[:5].tolist() == [e, m, m, a, 0]
        assert X[5:].tolist() == [[0, 0, 0], [0, 0, a], [0, a, b]]
        assert Y[5:].tolist() == [a, b, 0]
        assert len(Y) == (4 + 1) + (2 + 1)
    X1, Y1 = npm.build_dataset(["ab"], VOCAB.stoi, 1)              # a bigram context
    assert X1.ravel().tolist() == [0, a, b] and Y1.tolist() == [a, b, 0]


def test_both_twins_build_the_same_splits():
    train, dev, test = split_words(builtin_words())
    for words in (train, dev, test):
        X, Y = npm.build_dataset(words, VOCAB.stoi, 3)
        X_t, Y_t = thm.build_dataset(words, VOCAB.stoi, 3)
        assert np.array_equal(X, X_t.numpy()) and np.array_equal(Y, Y_t.numpy())
        assert len(Y) == sum(len(w) + 1 for w in words)
        assert (Y == 0).sum() == len(words)                         # one end per word


def test_loss_equals_cross_entropy_of_the_logits_and_starts_near_uniform():
    numpy_twin, twin = _twins()
    X, Y = npm.build_dataset(builtin_words()[:50], VOCAB.stoi, 3)
    loss = numpy_twin(X, Y)
    logits = numpy_twin(X)                                         # without targets: logits
    builtin = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(Y)).item()
    assert loss.shape == () and logits.shape == (len(X), 27)
    assert abs(float(loss) - builtin) <= 1e-14 * builtin
    assert abs(float(loss) - twin(torch.from_numpy(X), torch.from_numpy(Y)).item()) < 1e-13
    assert abs(float(loss) - math.log(27)) < 0.3                   # torch's init: near uniform


def test_parameter_names_and_shapes_match_across_twins_and_witness():
    numpy_twin, twin = _twins(n_hidden=7)
    expected = {"embedding.weight": (27, 10), "hidden.weight": (7, 30), "hidden.bias": (7,),
                "output.weight": (27, 7), "output.bias": (27,)}
    for state in (numpy_twin.state_dict(), twin.state_dict(),
                  BuiltinMLPLanguageModel(n_hidden=7).state_dict()):
        assert {k: tuple(v.shape) for k, v in state.items()} == expected


def test_backward_accumulates_and_matches_autograd():
    numpy_twin, twin = _twins(n_hidden=16)
    X, Y = npm.build_dataset(builtin_words()[:5], VOCAB.stoi, 3)
    for _ in range(2):                                             # two backward passes add up
        numpy_twin(X, Y)
        numpy_twin.backward(np.array(1.0))
        twin(torch.from_numpy(X), torch.from_numpy(Y)).backward()
    grads = dict(twin.named_parameters())
    for name, param in numpy_twin.named_parameters():
        np.testing.assert_allclose(param.grad, grads[name].grad.numpy(), rtol=1e-12, atol=1e-15)
    # the rows of C of characters absent from the batch get no gradient
    absent = sorted(set(range(27)) - set(X.ravel().tolist()))
    assert absent and not numpy_twin.embedding.weight.grad[absent].any()


def test_wrong_context_width_is_refused():
    numpy_twin, twin = _twins()
    with pytest.raises(ValueError, match=r"expected contexts of shape \(B, 3\)"):
        numpy_twin(np.zeros((4, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"expected contexts of shape \(B, 3\)"):
        twin(torch.zeros(4, 2, dtype=torch.int64))


def test_sampling_is_the_inverse_cdf_of_the_next_token_distribution():
    # output weights 0: every context predicts p = (0.5, 0.25, 0.25) over '.', 'a', 'b'
    numpy_twin, twin = _twins(vocab_size=3, n_hidden=4)
    probs = np.array([0.5, 0.25, 0.25])
    state = twin.state_dict()
    state["output.weight"] = torch.zeros(3, 4, dtype=torch.float64)
    state["output.bias"] = torch.from_numpy(np.log(probs))
    twin.load_state_dict(state)
    numpy_twin.load_state_dict(state)
    # cdf = (0.5, 0.75, 1): u < 0.5 -> '.', [0.5, 0.75) -> 'a', >= 0.75 -> 'b'
    uniforms = np.array([[0.1, 0.9, 0.9], [0.6, 0.8, 0.2], [0.5, 0.75, 0.9999], [0.7, 0.3, 0.0]])
    expected = [[0, 0, 0], [1, 2, 0], [1, 2, 2], [1, 0, 0]]
    assert npm.sample(numpy_twin, uniforms).tolist() == expected
    assert thm.sample(twin, torch.from_numpy(uniforms)).tolist() == expected


def test_trained_twins_sample_the_same_words_from_shared_uniforms():
    numpy_twin, twin = _twins()
    X, Y = npm.build_dataset(builtin_words()[:400], VOCAB.stoi, 3)
    numpy_opt, torch_opt = SGD(numpy_twin.parameters(), lr=0.1), torch.optim.SGD(
        twin.parameters(), lr=0.1)
    rng = np.random.default_rng(1)
    for _ in range(50):
        rows = rng.integers(0, len(X), 32)
        npm.train_step(numpy_twin, numpy_opt, X[rows], Y[rows])
        thm.train_step(twin, torch_opt, torch.from_numpy(X[rows]), torch.from_numpy(Y[rows]))
    uniforms = rng.random((20, 15))
    words_np = decode_words(npm.sample(numpy_twin, uniforms), VOCAB)
    words_th = decode_words(thm.sample(twin, torch.from_numpy(uniforms)).numpy(), VOCAB)
    assert words_np == words_th
    assert len(set(words_np)) > 10 and all(w.isalpha() or w == "" for w in words_np)


def test_training_side_by_side_learns_and_the_twins_agree():
    out = []

    class Sink:
        def write(self, text):
            out.append(text)

    curves = train_side_by_side(builtin_words(), steps=300, every=100, out=Sink())
    numpy_curve, torch_curve = curves["numpy"], curves["torch"]
    assert len(numpy_curve) == 300
    np.testing.assert_allclose(numpy_curve, torch_curve, rtol=1e-4)   # float32 twins
    assert numpy_curve[-50:].mean() < numpy_curve[0] - 0.6            # from ~3.3 to ~2.5
    text = "".join(out)
    assert "numpy loss" in text and "torch loss" in text and "dev" in text and "test" in text
    assert curves["words"][0] == curves["words"][1]


def test_script_with_data_file_and_bad_data(tmp_path, capsys):
    data = tmp_path / "words.txt"
    data.write_text("\n".join(["anna", "bob", "carla", "dora", "emil", "fritz", "gustav",
                               "hanna", "ida", "jonas"] * 5) + "\n")
    assert script(["--data", str(data), "--steps", "20", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "language/mlp_lm: agree" in out
    assert "numpy loss   torch loss" in out and "sampled with shared uniforms" in out
    assert "vocabulary 21" in out                                   # '.' + the file's letters
    assert script(["--data", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dualgrad: error: no such file") and len(err.splitlines()) == 1
    assert script(["--steps", "0"]) == 2
    assert "--steps must be a positive number" in capsys.readouterr().err


def test_script_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "compare.language.mlp_lm", "--steps", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--steps must be a positive" in result.stderr


def test_training_plot_is_written(tmp_path):
    [path] = extra_plots(tmp_path, seed=0)
    assert path.name == "mlp_lm_training.png" and path.stat().st_size > 10_000


def test_verify_accepts_a_copy_and_catches_a_missing_tanh_derivative():
    class MyModel(npm.MLPLanguageModel):
        pass

    assert verify("mlp_lm", MyModel).passed

    class NoTanhDerivative(npm.MLPLanguageModel):
        def backward(self, grad_output):
            dlogits = self.criterion.backward(grad_output) if self._with_loss else grad_output
            dh = self.output.backward(dlogits)
            dx = self.hidden.backward(dh)                          # the bug: skips (1 - h^2)
            self.embedding.backward(dx.reshape(self._emb_shape))

    report = verify("mlp_lm", NoTanhDerivative)
    assert not report.passed
    failing = {d.name for d in report.failures}
    assert "grad.param.hidden.weight" in failing and "step5/loss" in failing
    assert "grad.param.output.weight" not in failing               # above the tanh: right
