"""Focused tests of magnitude pruning: hand-computed masks, amounts (fractions rounded half to
even, counts, again on what is left), L1 vs L2 structured choices, global cuts, masks through
training, state_dict and remove, ties, the case construction (untie, safe cuts), the
sparsity-vs-accuracy curve, verify with copies and broken copies, the plot."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from compare.advanced import sparsity as cmp
from compare.concept import Trial
from compare.verify import load, verify
from numpy_impl.advanced import sparsity as nps
from numpy_impl.layers.linear import Linear
from numpy_impl.layers.losses import CrossEntropyLoss
from numpy_impl.training.optimizers import SGD
from numpy_impl.training.training_loop import Classifier
from torch_impl.advanced import sparsity as tps


def linear_trio(weight):
    """A NumPy Linear, a torch twin Linear and a torch built-in Linear with ``weight``."""
    weight = np.asarray(weight, dtype=np.float64)
    out, inp = weight.shape
    state = {"weight": weight, "bias": np.linspace(-1, 1, out)}
    numpy_layer = Linear(inp, out).double()
    numpy_layer.load_state_dict(state)
    torch_layers = []
    for _ in range(2):
        layer = nn.Linear(inp, out).double()
        layer.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
        torch_layers.append(layer)
    return numpy_layer, torch_layers[0], torch_layers[1]


def masks_of(numpy_layer, twin, builtin):
    return numpy_layer.weight_mask, twin.weight_mask.numpy(), builtin.weight_mask.numpy()


def test_the_smallest_magnitudes_go_first():
    weight = [[0.1, -0.5, 0.3], [-0.05, 0.7, -0.2]]
    numpy_layer, twin, builtin = linear_trio(weight)
    nps.l1_unstructured(numpy_layer, "weight", 0.5)
    tps.l1_unstructured(twin, "weight", 0.5)
    torch_prune.l1_unstructured(builtin, "weight", 0.5)
    expected = [[0, 1, 1], [0, 1, 0]]  # |.05|, |.1|, |.2| pruned
    for mask in masks_of(numpy_layer, twin, builtin):
        np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(numpy_layer.weight.data, [[0, -0.5, 0.3], [0, 0.7, 0]])


@pytest.mark.parametrize("amount,size,expected", [(0.5, 5, 2), (0.7, 5, 4), (0.3, 5, 2),
                                                  (0.1, 25, 2), (3, 10, 3), (0.0, 7, 0)])
def test_amounts_round_half_to_even_like_torch(amount, size, expected):
    assert nps.n_to_prune(amount, size) == expected == tps.n_to_prune(amount, size)
    weight = np.arange(1, size + 1, dtype=np.float64)[None, :] * 0.1
    *_, builtin = linear_trio(weight)
    torch_prune.l1_unstructured(builtin, "weight", amount)
    assert int((builtin.weight_mask == 0).sum()) == expected


def test_bad_amounts_are_refused():
    for twin in (nps, tps):
        with pytest.raises(ValueError, match="between 0 and"):
            twin.n_to_prune(11, 10)
        with pytest.raises(ValueError, match="fraction in"):
            twin.n_to_prune(1.5, 10)


def test_pruning_again_counts_what_is_left():
    weight = np.random.default_rng(0).standard_normal((8, 12))
    layers = linear_trio(weight)
    for amount in (0.3, 0.5):
        nps.l1_unstructured(layers[0], "weight", amount)
        tps.l1_unstructured(layers[1], "weight", amount)
        torch_prune.l1_unstructured(layers[2], "weight", amount)
    # round(.3 * 96) = 29, then round(.5 * 67) = 34 of the 67 left: 63 zeros
    for mask in masks_of(*layers):
        assert int(np.sum(mask == 0)) == 63
    np.testing.assert_array_equal(layers[0].weight_mask, layers[2].weight_mask.numpy())


def test_l1_and_l2_structured_pick_different_rows():
    # row 0: one large entry (L1 3, L2 3); row 1: spread out (L1 4, L2 2); row 2: large
    weight = [[3.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]]
    for n, pruned_row in ((1, 0), (2, 1)):
        layers = linear_trio(weight)
        nps.ln_structured(layers[0], "weight", 1, n, 0)
        tps.ln_structured(layers[1], "weight", 1, n, 0)
        torch_prune.ln_structured(layers[2], "weight", 1, n=n, dim=0)
        expected = np.ones((3, 4))
        expected[pruned_row] = 0
        for mask in masks_of(*layers):
            np.testing.assert_array_equal(mask, expected)


def test_structured_again_counts_the_slices_left_and_columns_work():
    weight = np.random.default_rng(1).standard_normal((6, 10))
    layers = linear_trio(weight)
    for amount in (0.2, 0.5):  # 2 columns, then round(.5 * 8) = 4 of the 8 left
        nps.ln_structured(layers[0], "weight", amount, 1, 1)
        tps.ln_structured(layers[1], "weight", amount, 1, 1)
        torch_prune.ln_structured(layers[2], "weight", amount, n=1, dim=1)
    for mask in masks_of(*layers):
        assert np.all(mask == mask[:1])  # whole columns
        assert int(np.sum(mask[0] == 0)) == 6


def test_global_pruning_cuts_across_layers():
    rng = np.random.default_rng(2)
    small = rng.standard_normal((4, 6)) * 0.1  # a layer of small weights loses far more
    large = rng.standard_normal((5, 4))
    (a1, b1, c1), (a2, b2, c2) = linear_trio(small), linear_trio(large)
    nps.global_unstructured([(a1, "weight"), (a2, "weight")], nps.L1Unstructured, amount=0.5)
    tps.global_unstructured([(b1, "weight"), (b2, "weight")], tps.L1Unstructured, amount=0.5)
    torch_prune.global_unstructured([(c1, "weight"), (c2, "weight")],
                                    pruning_method=torch_prune.L1Unstructured, amount=0.5)
    assert int(np.sum(a1.weight_mask == 0) + np.sum(a2.weight_mask == 0)) == 22  # of 44
    assert np.mean(a1.weight_mask == 0) > 0.8 > 0.2 > np.mean(a2.weight_mask == 0)
    for numpy_layer, twin, builtin in ((a1, b1, c1), (a2, b2, c2)):
        for mask in masks_of(numpy_layer, twin, builtin):
            np.testing.assert_array_equal(mask, numpy_layer.weight_mask)
    assert nps.sparsity([(a1, "weight"), (a2, "weight")]) == 0.5
    with pytest.raises(TypeError, match="unstructured"):
        nps.global_unstructured([(a1, "weight")], nps.LnStructured, amount=1, n=1, dim=0)


def test_masks_hold_through_training_with_momentum():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    model = Classifier(6, 10, 3).double()
    parameters = [(model.fc1, "weight"), (model.fc2, "weight")]
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    batches = rng.integers(0, 40, (5, 8))
    nps.fine_tune(model, CrossEntropyLoss(), optimizer, x, y, batches)  # momentum builds up
    nps.global_unstructured(parameters, nps.L1Unstructured, amount=0.6)
    before = model.fc1.weight_orig.data.copy()
    losses = nps.fine_tune(model, CrossEntropyLoss(), optimizer, x, y, batches)
    model(x)  # W is recomputed at the next forward
    for module, _ in parameters:
        pruned = module.weight_mask == 0
        assert np.all(module.weight.data[pruned] == 0)           # W stays zero
        assert np.all(module.weight_orig.grad[pruned] == 0)      # masked gradients
        assert np.any(module.weight.data[~pruned] != 0)
    # momentum from before the pruning still moves pruned W_orig entries: W hides them
    pruned = model.fc1.weight_mask == 0
    assert np.any(model.fc1.weight_orig.data[pruned] != before[pruned])
    assert len(losses) == 5 and np.isfinite(losses).all()


def test_state_dicts_cross_between_twins_and_remove_is_permanent():
    weight = np.random.default_rng(4).standard_normal((5, 7))
    numpy_layer, twin, builtin = linear_trio(weight)
    torch_prune.l1_unstructured(builtin, "weight", 0.4)
    tps.l1_unstructured(twin, "weight", 0.4)
    nps.l1_unstructured(numpy_layer, "weight", 0.1)
    assert list(numpy_layer.state_dict()) == list(builtin.state_dict()) == \
        list(twin.state_dict()) == ["bias", "weight_orig", "weight_mask"]
    assert [n for n, _ in numpy_layer.named_parameters()] == ["bias", "weight_orig"]
    numpy_layer.load_state_dict(builtin.state_dict())  # torch's pruned state, unchanged
    x = np.random.default_rng(5).standard_normal((3, 7))
    expected = builtin(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(numpy_layer(x), expected, rtol=1e-14)
    nps.remove(numpy_layer, "weight")
    tps.remove(twin, "weight")
    torch_prune.remove(builtin, "weight")
    assert list(numpy_layer.state_dict()) == list(builtin.state_dict()) == \
        list(twin.state_dict()) == ["bias", "weight"]
    assert not nps.is_pruned(numpy_layer) and not tps.is_pruned(twin)
    assert np.count_nonzero(numpy_layer.weight.data == 0) == 14
    np.testing.assert_allclose(numpy_layer(x), expected, rtol=1e-14)
    np.testing.assert_array_equal(twin.weight.detach().numpy(), numpy_layer.weight.data)
    with pytest.raises(ValueError, match="not pruned"):
        nps.remove(numpy_layer, "weight")


def test_equal_magnitudes_prune_the_lower_index_first_in_both_twins():
    weight = np.array([[0.5, -0.5, 0.5], [-0.5, 0.5, 0.9]])
    numpy_layer, twin, _ = linear_trio(weight)
    nps.l1_unstructured(numpy_layer, "weight", 3)
    tps.l1_unstructured(twin, "weight", 3)
    expected = [[0, 0, 0], [1, 1, 1]]
    np.testing.assert_array_equal(numpy_layer.weight_mask, expected)
    np.testing.assert_array_equal(twin.weight_mask.numpy(), expected)
    # rows with equal norms: the lower row index goes first
    numpy_layer, twin, _ = linear_trio([[1.0, 1.0], [-1.0, 1.0], [2.0, 2.0]])
    nps.ln_structured(numpy_layer, "weight", 1, 2, 0)
    tps.ln_structured(twin, "weight", 1, 2, 0)
    np.testing.assert_array_equal(numpy_layer.weight_mask, [[0, 0], [1, 1], [1, 1]])
    np.testing.assert_array_equal(twin.weight_mask.numpy(), [[0, 0], [1, 1], [1, 1]])


def test_untie_makes_magnitudes_distinct_by_one_ulp():
    a = np.array([0.25, -0.25, 0.5, 0.25], dtype=np.float32)
    b = np.array([[0.5, 1.0]], dtype=np.float32)
    ua, ub = cmp.untie([a, b])
    magnitudes = np.abs(np.concatenate([ua.ravel(), ub.ravel()]))
    assert len(np.unique(magnitudes)) == magnitudes.size
    assert ua.dtype == np.float32 and ub.shape == (1, 2)
    spacing = np.spacing(np.float32(0.5))
    assert np.max(np.abs(ua - a)) <= 2 * spacing and np.max(np.abs(ub - b)) <= spacing
    assert ua[0] == a[0] and ua[2] == a[2]  # the first of equal magnitudes stays,
    assert ub[0, 0] == np.nextafter(b[0, 0], np.float32(1))  # a later one moves away from 0


def test_the_iterative_case_cuts_with_a_margin():
    case = cmp.CONCEPT.case("iterative-global")
    trial = Trial("float32")
    state, data = cmp.mlp_state(case, trial), cmp.digit_data(trial)
    batches = cmp._batches(np.random.default_rng(9), len(data["y_train"]), (3, 4, 32))
    counts, clear = cmp.safe_schedule(case, state, data, batches)
    total = sum(state[f"{p}.weight"].size for p in cmp.MLP_PARAMETERS)
    left = total
    for count in counts:  # each count within a few of half of what is left
        assert abs(count - round(0.5 * left)) <= 50
        left -= count
    assert clear.mean() > 0.95


@pytest.fixture(scope="module")
def curves():
    small = dict(n_train=1000, n_test=400, size=14, hidden=48, pretrain_steps=300, rounds=5,
                 steps=40, one_shot=(0.5, 0.75, 0.875, 0.9375, 0.96875))
    return cmp.sparsity_curves(0, small)


def test_the_twins_draw_the_same_curves(curves):
    for sides in curves.values():
        for numpy_values, torch_values in zip(sides["numpy"], sides["torch"], strict=True):
            np.testing.assert_allclose(numpy_values, torch_values, rtol=0, atol=1e-12)


def test_fine_tuning_keeps_accuracy_where_one_shot_pruning_loses_it(curves):
    sparsity, accuracy = curves["global, fine-tuned"]["numpy"]
    np.testing.assert_allclose(sparsity, [0, 0.5, 0.75, 0.875, 0.9375, 0.96875], atol=1e-3)
    dense = accuracy[0]
    assert dense > 0.7                      # the pretrained MLP has learned the digits
    assert accuracy[3] > dense - 0.05       # 87.5 % sparse and fine-tuned: almost no loss
    one_shot_sparsity, one_shot = curves["global, one-shot (no fine-tuning)"]["numpy"]
    assert one_shot_sparsity[-1] == pytest.approx(0.96875, abs=1e-3)
    assert one_shot[-1] < accuracy[-1] - 0.1  # without fine-tuning, 97 % sparsity hurts
    units, unit_accuracy = curves["hidden units (L2 rows of fc1), fine-tuned"]["numpy"]
    # 48 -> 24 -> 12 -> 6 -> 3 -> 1 hidden units: round(.5 * 3) = round(1.5) = 2, half to even
    assert units[-1] == pytest.approx(1 - 1 / 48, abs=1e-9)
    assert unit_accuracy[-1] < accuracy[-1]  # one hidden unit cannot tell ten digits apart


def test_copies_verify_and_broken_copies_are_caught(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text(
        "import numpy as np\n"
        "import torch\n"
        "from numpy_impl.advanced import sparsity as nps\n"
        "from torch_impl.advanced import sparsity as tps\n"
        "class MyL1Unstructured(nps.L1Unstructured):\n"
        "    pass\n"
        "class LargestL1Unstructured(nps.L1Unstructured):\n"
        "    def compute_mask(self, t, default_mask):  # prunes the largest instead\n"
        "        return super().compute_mask(1.0 / (np.abs(t) + 1e-3), default_mask)\n"
        "class MyLnStructured(tps.LnStructured):\n"
        "    pass\n"
        "class AlwaysL1LnStructured(tps.LnStructured):\n"
        "    def compute_mask(self, t, default_mask):  # ignores n\n"
        "        return tps.LnStructured(self.amount, 1, self.dim).compute_mask(t, default_mask)\n")
    assert verify("sparsity", load(f"{source}:MyL1Unstructured")).passed
    assert verify("sparsity", load(f"{source}:MyLnStructured")).passed
    broken = verify("sparsity", load(f"{source}:LargestL1Unstructured"))
    failing = {d.name for d in broken.diffs if not d.passed}
    assert not broken.passed and "mask" in failing and "grad.param.weight_orig" in failing
    broken = verify("sparsity", load(f"{source}:AlwaysL1LnStructured"))
    failing = {(d.case, d.name) for d in broken.diffs if not d.passed}
    assert {("l2-structured-rows", "mask"), ("l2-structured-conv-input-channels", "mask")} \
        <= failing  # the L2 cases start from slices L1 and L2 rank in opposite orders
    assert all(not case.startswith("l1-") for case, _ in failing)  # L1 cases are right


def test_plot_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(cmp, "CURVE", {**cmp.CURVE, "n_train": 300, "n_test": 100, "size": 14,
                                       "hidden": 16, "pretrain_steps": 20, "rounds": 2,
                                       "steps": 3, "one_shot": (0.5, 0.9)})
    paths = cmp.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["sparsity_accuracy.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
