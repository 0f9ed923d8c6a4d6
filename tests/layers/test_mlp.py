"""Focused tests of the "backprop ninja" MLP: the built-in loss on the twin's logits, train vs
eval semantics of the batchnorm statistics, the b1 gradient that is zero in train mode, names,
errors, and the lecture-style table of the __main__ demo."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compare import get, run_concept
from compare.layers.mlp import BuiltinCharMLP, lecture_table
from numpy_impl.layers import mlp as npm
from torch_impl.layers import mlp as thm

NAMES = ["emb", "embcat", "hprebn", "bnmeani", "bndiff", "bndiff2", "bnvar", "bnvar_inv",
         "bnraw", "hpreact", "h", "logits", "logit_maxes", "norm_logits", "counts",
         "counts_sum", "counts_sum_inv", "probs", "logprobs"]


def _twins(dtype=torch.float64, **init):
    """Torch twin, NumPy twin with its weights, and the data of one batch (B=16)."""
    torch.manual_seed(0)
    twin = thm.CharMLP(**init).to(dtype)
    with torch.no_grad():  # non-trivial running statistics, so eval mode shows their use
        twin.bnmean_running.normal_(0.0, 0.5)
        twin.bnvar_running.uniform_(0.5, 2.0)
    numpy_twin = npm.CharMLP(**init).to(twin.bngain.detach().numpy().dtype)
    numpy_twin.load_state_dict(twin.state_dict())
    rng = np.random.default_rng(0)
    idx = rng.integers(0, twin.vocab_size, (16, twin.block_size))
    targets = rng.integers(0, twin.vocab_size, 16)
    return numpy_twin, twin, idx, targets


def test_numpy_loss_equals_cross_entropy_of_the_torch_logits():
    numpy_twin, twin, idx, targets = _twins()
    loss = numpy_twin(idx, targets)
    twin(torch.from_numpy(idx), torch.from_numpy(targets))
    builtin = F.cross_entropy(twin.intermediates["logits"].detach(), torch.from_numpy(targets))
    assert loss.shape == ()
    assert abs(float(loss) - builtin.item()) <= 1e-14 * builtin.item()
    # a uniform guess over 27 characters costs log(27); the model at init is near that
    assert 2.0 < float(loss) < 6.0


def test_state_dict_keys_and_shapes_equal_across_twins_and_witness():
    numpy_twin, twin, _, _ = _twins(n_hidden=7)
    witness = BuiltinCharMLP(n_hidden=7)
    expected = {"C": (27, 10), "W1": (30, 7), "b1": (7,), "W2": (7, 27), "b2": (27,),
                "bngain": (1, 7), "bnbias": (1, 7), "bnmean_running": (1, 7),
                "bnvar_running": (1, 7)}
    for state in (numpy_twin.state_dict(), twin.state_dict(), witness.state_dict()):
        assert {k: tuple(v.shape) for k, v in state.items()} == expected
        assert list(state) == list(expected)


def test_train_mode_updates_running_stats_with_the_unbiased_variance():
    numpy_twin, twin, idx, targets = _twins(momentum=1.0)  # running <- this batch's statistics
    numpy_twin(idx, targets)
    twin(torch.from_numpy(idx), torch.from_numpy(targets))
    hprebn = numpy_twin.intermediates["hprebn"]
    for mean, var in ((numpy_twin.bnmean_running, numpy_twin.bnvar_running),
                      (twin.bnmean_running.numpy(), twin.bnvar_running.numpy())):
        np.testing.assert_allclose(mean, hprebn.mean(0, keepdims=True), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(var, hprebn.var(0, ddof=1, keepdims=True), rtol=1e-12)
    # while the normalization itself used the biased variance, as torch's BatchNorm does
    np.testing.assert_allclose(numpy_twin.intermediates["bnvar"], hprebn.var(0, keepdims=True),
                               rtol=1e-12)


def test_eval_mode_uses_running_stats_so_examples_are_independent():
    numpy_twin, twin, idx, targets = _twins()
    before = {k: v.copy() for k, v in numpy_twin.state_dict().items()}
    numpy_twin.eval()
    twin.eval()
    batch = float(numpy_twin(idx, targets))
    # with running statistics each example's loss depends on that example alone (even B=1)
    singles = [float(numpy_twin(idx[i:i + 1], targets[i:i + 1])) for i in range(len(idx))]
    assert abs(batch - np.mean(singles)) <= 1e-13 * batch
    with torch.no_grad():
        torch_singles = [twin(torch.from_numpy(idx[i:i + 1]), torch.from_numpy(targets[i:i + 1]))
                         .item() for i in range(len(idx))]
    np.testing.assert_allclose(singles, torch_singles, rtol=1e-13)
    # the running statistics are used as they are, and stay unchanged
    np.testing.assert_array_equal(numpy_twin.intermediates["bnmeani"], before["bnmean_running"])
    np.testing.assert_array_equal(numpy_twin.intermediates["bnvar"], before["bnvar_running"])
    for key, value in numpy_twin.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    np.testing.assert_array_equal(twin.bnvar_running.numpy(), before["bnvar_running"])
    # in train mode the batch statistics couple the examples: the two losses differ
    numpy_twin.train()
    assert abs(float(numpy_twin(idx, targets)) - batch) > 1e-3


@pytest.mark.parametrize("train", [True, False])
def test_intermediate_names_match_between_twins(train):
    numpy_twin, twin, idx, targets = _twins()
    numpy_twin.train(train)
    twin.train(train)
    numpy_twin(idx, targets)
    numpy_twin.backward(np.array(0.7))
    loss = twin(torch.from_numpy(idx), torch.from_numpy(targets))
    (0.7 * loss).backward()
    expected = NAMES if train else [n for n in NAMES if n != "bndiff2"]
    assert list(numpy_twin.intermediates) == expected == list(twin.intermediates)
    with_grad = [n for n, t in twin.intermediates.items() if t.requires_grad]
    assert list(numpy_twin.intermediate_grads) == with_grad
    assert "logit_maxes" not in with_grad
    if not train:  # running statistics are constants
        assert not {"bnmeani", "bnvar", "bnvar_inv"} & set(with_grad)
    for name in with_grad:
        np.testing.assert_allclose(numpy_twin.intermediate_grads[name],
                                   twin.intermediates[name].grad.numpy(), rtol=1e-10,
                                   atol=1e-12 * twin.intermediates[name].grad.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_b1_gradient_is_zero_to_rounding_in_train_mode_only(dtype):
    numpy_twin, twin, idx, targets = _twins(dtype)
    eps = torch.finfo(dtype).eps
    numpy_twin(idx, targets)
    numpy_twin.backward(np.array(1.0, dtype=numpy_twin.b1.data.dtype))
    twin(torch.from_numpy(idx), torch.from_numpy(targets)).backward()
    # db1 = sum_b dhprebn, whose rows cancel exactly; what is left is the rounding of
    # B terms, each computed from dbndiff-sized quantities
    scale = np.abs(numpy_twin.intermediate_grads["bndiff"]).max()
    bound = len(idx) * eps * scale
    assert np.abs(numpy_twin.b1.grad).max() <= bound
    assert twin.b1.grad.abs().max().item() <= bound
    assert np.abs(numpy_twin.W1.grad).max() > 1e4 * bound  # W1's gradient is not noise
    # in eval mode b1 moves the loss: its gradient is real and the twins agree on it
    numpy_twin, twin, idx, targets = _twins(dtype)
    numpy_twin.eval()
    twin.eval()
    numpy_twin(idx, targets)
    numpy_twin.backward(np.array(1.0, dtype=numpy_twin.b1.data.dtype))
    twin(torch.from_numpy(idx), torch.from_numpy(targets)).backward()
    assert np.abs(numpy_twin.b1.grad).max() > 1e4 * bound
    np.testing.assert_allclose(numpy_twin.b1.grad, twin.b1.grad.numpy(),
                               rtol=0, atol=1e3 * eps * np.abs(numpy_twin.b1.grad).max())


def test_batch_of_one_in_train_mode_is_an_error_everywhere():
    numpy_twin, twin, idx, targets = _twins()
    witness = BuiltinCharMLP().double()
    one_idx, one_target = idx[:1], targets[:1]
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        numpy_twin(one_idx, one_target)
    for module in (twin, witness):
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            module(torch.from_numpy(one_idx), torch.from_numpy(one_target))


def test_float32_twin_computes_in_float32():
    numpy_twin, _, idx, targets = _twins(torch.float32)
    loss = numpy_twin(idx, targets)
    numpy_twin.backward(np.array(1.0, dtype=np.float32))
    assert loss.dtype == np.float32
    assert all(v.dtype == np.float32 for v in numpy_twin.intermediates.values())
    assert all(v.dtype == np.float32 for v in numpy_twin.intermediate_grads.values())
    assert all(p.grad.dtype == np.float32 for p in numpy_twin.parameters())
    assert numpy_twin.bnvar_running.dtype == np.float32


def test_lecture_table_lists_every_gradient_as_approximately_equal():
    report = run_concept(get("mlp"), dtypes=("float64",), cases=["train"])
    assert report.passed, report.table()
    lines = [line for line in lecture_table(report).splitlines() if "|" in line]
    names = [line.split("|")[0].strip() for line in lines]
    params = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]
    assert sorted(names) == sorted([n for n in NAMES if n != "logit_maxes"] + params)
    assert names[0] == "logprobs" and names[-1] == "C"  # the lecture's backward order
    assert all("approximate: True" in line for line in lines)
    maxdiffs = [float(line.rsplit("maxdiff:", 1)[1]) for line in lines]
    assert max(maxdiffs) < 1e-14
