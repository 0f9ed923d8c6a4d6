"""compare.verify.diagnose: each mistake pattern is recognised and named with its numbers, and
nothing is claimed where the difference has no simple shape."""
import numpy as np
import pytest

from compare.verify.diagnose import Context, diagnose

RTOL = 1e-10
EMPTY = Context()


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _say(name, yours, reference, context=EMPTY, rtol=RTOL):
    reference = np.asarray(reference, dtype=np.float64)
    finite = reference[np.isfinite(reference)]
    bound = rtol * (float(np.max(np.abs(finite))) if finite.size else 0.0)
    sentence = diagnose(name, np.asarray(yours), reference, context, bound)
    assert isinstance(sentence, str) and "\n" not in sentence
    tail = sentence.rsplit(" -- ", 1)[-1]  # always ends with the worst element (or why not)
    assert " -- " in sentence and ("vs reference" in tail or "no element-by-element" in tail)
    return sentence


# --- 1. shapes -----------------------------------------------------------------------------
def test_transposed_shapes():
    w = _rng().standard_normal((3, 5))
    s = _say("grad.param.weight", w.T, w)
    assert s.startswith("transposed: yours is (5, 3), the reference (3, 5)")


def test_axes_permuted():
    a = _rng().standard_normal((2, 3, 4))
    s = _say("out", a.transpose(0, 2, 1), a)
    assert "axes permuted" in s and "(2, 4, 3)" in s and "transpose(0, 2, 1)" in s


def test_missing_sum_over_the_batch():
    g = _rng().standard_normal((4, 5))
    s = _say("grad.param.bias", g, g.sum(axis=0))
    assert "a reduction over axis 0 is missing" in s and "summing" in s


def test_missing_reduction_over_two_axes_by_mean():
    g = _rng().standard_normal((2, 3, 4))
    s = _say("grad.param.bias", g, g.mean(axis=(0, 2)))
    assert "a reduction over axes (0, 2) is missing" in s and "averaging" in s


def test_loss_left_unreduced():
    losses = _rng().standard_normal(6)
    s = _say("out", losses, losses.mean())
    assert "a reduction over axis 0 is missing" in s and "averaging" in s


def test_right_values_wrong_shape():
    a = _rng().standard_normal((2, 3))
    s = _say("out", a.reshape(6), a)
    assert s.startswith("right values, wrong shape: yours is (6,), the reference (2, 3)")


def test_same_ndim_other_size():
    s = _say("grad.param.bias", np.ones(4), np.ones(5))
    assert "shape (4,) but the reference is (5,): a reduction over the wrong axis?" in s
    assert "yours has 4 elements, the reference 5" in s


def test_unrelated_shapes():
    s = _say("out", np.ones((2, 2, 2)), np.ones(3))
    assert s.startswith("shape (2, 2, 2), expected (3,)")


# --- 2. NaN / inf --------------------------------------------------------------------------
def test_nan_introduced():
    ref = _rng().standard_normal((3, 4))
    yours = ref.copy()
    yours[1, 2] = np.nan
    yours[2, 0] = np.inf
    s = _say("out", yours, ref)
    assert "NaN or inf introduced at 2 element(s) (first at [1, 2])" in s
    assert "overflow" in s and "worst at [1, 2]" in s


def test_finite_where_the_reference_is_nan():
    ref = np.array([1.0, np.nan, 3.0])
    s = _say("out", np.array([1.0, 2.0, 3.0]), ref)
    assert "finite at 1 element(s) (first at [1]) where the reference is NaN or inf" in s


def test_nan_where_the_reference_has_inf():
    s = _say("out", np.array([1.0, np.nan]), np.array([1.0, np.inf]))
    assert "NaN or inf of a different kind at 1 element(s) (first at [1])" in s


# --- 3. zeros, 4. sign ---------------------------------------------------------------------
def test_all_zeros_gradient():
    ref = _rng().standard_normal((3, 4))
    s = _say("grad.param.weight", np.zeros_like(ref), ref)
    assert s.startswith("all zeros: no gradient reaches this tensor")


def test_reference_all_zeros():
    s = _say("grad.input.x", np.ones((2, 3)), np.zeros((2, 3)))
    assert s.startswith("the reference is all zeros but yours is not")
    assert "sign flipped" not in s


def test_sign_flipped():
    ref = _rng().standard_normal((3, 4))
    s = _say("grad.input.x", -ref, ref)
    assert s.startswith("sign flipped")


def test_scalar_sign_flipped():
    s = _say("out", np.array(-0.7), np.array(0.7))
    assert s.startswith("sign flipped") and "yours -0.7 vs reference 0.7" in s


# --- 5. factors ----------------------------------------------------------------------------
def test_linear_bias_grad_taken_as_a_mean():
    rng = _rng(1)
    x = rng.standard_normal((4, 3))
    dy = rng.standard_normal((4, 2))
    s = _say("grad.param.bias", dy.mean(axis=0), dy.sum(axis=0), Context(inputs={"x": x}))
    assert "yours is the reference divided by 4 (the batch size of x)" in s and "mean" in s


def test_sum_where_the_reference_means():
    x = _rng().standard_normal((5, 3))
    ref = _rng(2).standard_normal(3)
    s = _say("grad.param.bias", 5 * ref, ref, Context(inputs={"x": x}))
    assert "yours is 5 times the reference (5 = the batch size of x)" in s


def test_per_channel_count():
    x = _rng().standard_normal((2, 3, 7))  # per channel N·L = 14
    ref = _rng(3).standard_normal(3)
    s = _say("grad.param.weight", ref / 14, ref, Context(inputs={"x": x}))
    assert "divided by 14" in s and "per channel" in s and "dims (0, 2) of x" in s


def test_single_dimension_named():
    x = _rng().standard_normal((2, 3, 7))
    ref = _rng(4).standard_normal((2, 3))
    s = _say("out", 7 * ref, ref, Context(inputs={"x": x}))
    assert "yours is 7 times the reference (7 = dim 2 of x)" in s


def test_dropout_without_the_inverse_keep_scale():
    rng = _rng(5)
    p = 0.25
    x = rng.standard_normal((4, 6))
    mask = rng.random((4, 6)) >= p
    dy = rng.standard_normal((4, 6))
    reference = dy * mask / (1 - p)
    yours = dy * mask  # the 1/(1 - p) forgotten
    s = _say("grad.input.x", yours, reference, Context(inputs={"x": x, "mask": mask},
                                                       init={"p": p}))
    assert "(1 - p) = 0.75" in s and "1/(1 - p) scaling missing" in s


def test_factor_from_p_itself():
    ref = _rng().standard_normal(8)
    s = _say("out", 0.3 * ref, ref, Context(init={"p": 0.3}))
    assert "p = 0.3 times the reference" in s


def test_twice_and_half():
    ref = _rng().standard_normal((3, 3))
    assert _say("grad.input.x", 2 * ref, ref).startswith("yours is twice the reference")
    assert _say("grad.input.x", 0.5 * ref, ref).startswith("yours is half the reference")
    assert "square's derivative" in _say("grad.input.x", 2 * ref, ref)


def test_negative_named_factor():
    x = _rng().standard_normal((4, 3))
    ref = _rng(6).standard_normal(3)
    s = _say("grad.param.bias", -4 * ref, ref, Context(inputs={"x": x}))
    assert s.startswith("sign flipped: yours is minus 4 times the reference (4 = the batch size")


def test_unnamed_factor():
    ref = _rng().standard_normal((3, 4))
    s = _say("out", 0.37 * ref, ref)
    assert "off by a constant factor 0.37" in s


def test_factor_in_float32_with_a_float32_bound():
    rng = _rng(7)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    ref = rng.standard_normal(3).astype(np.float32)
    yours = (ref / np.float32(8)).astype(np.float32)
    s = _say("grad.param.bias", yours, ref, Context(inputs={"x": x}), rtol=1e-4)
    assert "divided by 8 (the batch size of x)" in s


def test_mean_over_ignored_targets():
    target = np.array([1, -100, 2, 0])
    ref = _rng().standard_normal((4, 3))
    ref[1] = 0
    s = _say("grad.input.input", ref * 3 / 4, ref,
             Context(inputs={"input": np.ones((4, 3)), "target": target},
                     init={"ignore_index": -100}))
    assert "3/4 of the reference" in s and "not ignored" in s


def test_bessel_correction():
    x = _rng().standard_normal((5, 3))
    ref = np.abs(_rng(8).standard_normal(3))
    s = _say("out", ref * 5 / 4, ref, Context(inputs={"x": x}))
    assert "n/(n - 1) with n = 5" in s and "unbiased" in s


def test_factor_needs_the_whole_tensor():
    ref = _rng().standard_normal((4, 5))
    yours = 2 * ref + 0.3 * _rng(9).standard_normal((4, 5))  # factor 2 plus noise
    s = _say("out", yours, ref)
    assert "factor" not in s and "twice" not in s
    assert s.startswith("no simple pattern")


def test_scalar_with_no_named_factor():
    s = _say("out", np.array(2.5), np.array(1.0))
    assert "no recognised factor" in s and "2.5" in s and "factor 2.5" not in s


def test_scalar_loss_summed_instead_of_averaged():
    x = _rng().standard_normal((6, 2))
    s = _say("out", np.array(6 * 0.8), np.array(0.8), Context(inputs={"x": x}))
    assert "the batch size of x" in s and "6 times" in s and "yours 4.8 vs reference 0.8" in s


# --- 6. square transpose -------------------------------------------------------------------
def test_square_transposed():
    w = _rng().standard_normal((4, 4))
    s = _say("grad.param.weight", w.T, w)
    assert s.startswith("transposed: yours is the reference's transpose (both (4, 4)")


# --- 7. subsets ----------------------------------------------------------------------------
def _embedding_grads(indices, num_embeddings=6, dim=3, seed=10):
    dy = _rng(seed).standard_normal(indices.shape + (dim,))
    right = np.zeros((num_embeddings, dim))
    np.add.at(right, indices, dy)
    wrong = np.zeros((num_embeddings, dim))
    wrong[indices] += dy  # fancy-index += keeps only the last write of a repeated index
    return wrong, right


def test_embedding_overwrites_repeated_indices():
    indices = np.array([[2, 0, 5], [2, 1, 5]])
    wrong, right = _embedding_grads(indices)
    ctx = Context(inputs={"indices": indices}, init={"num_embeddings": 6, "embedding_dim": 3})
    s = _say("grad.param.weight", wrong, right, ctx)
    assert "rows whose index repeats in indices (rows 2, 5)" in s and "np.add.at" in s


def test_padding_row_gets_a_gradient():
    indices = np.array([[0, 3, 4], [1, 3, 0]])
    dy = _rng(11).standard_normal((2, 3, 2))
    yours = np.zeros((5, 2))
    np.add.at(yours, indices, dy)
    ref = yours.copy()
    ref[4] = 0
    ctx = Context(inputs={"indices": indices},
                  init={"num_embeddings": 5, "embedding_dim": 2, "padding_idx": -1})
    s = _say("grad.param.weight", yours, ref, ctx)
    assert "wrong only in the padding row 4: it must receive no gradient" in s


def test_ignored_targets_contribute():
    target = np.array([0, -100, 2, -100, 1])
    ref = _rng(12).standard_normal((5, 3))
    ref[target == -100] = 0
    yours = ref.copy()
    yours[1] = [0.1, -0.2, 0.1]
    ctx = Context(inputs={"input": np.ones((5, 3)), "target": target},
                  init={"ignore_index": -100})
    s = _say("grad.input.input", yours, ref, ctx)
    assert "wrong only at ignored positions (target == -100" in s and "nothing" in s


def test_ignored_targets_in_a_none_reduction():
    target = np.array([[0, -1], [2, 1]])
    ref = np.array([[0.5, 0.0], [1.5, 0.7]])
    yours = np.array([[0.5, 2.0], [1.5, 0.7]])
    ctx = Context(inputs={"input": np.ones((2, 3, 2)), "target": target},
                  init={"ignore_index": -1, "reduction": "none"})
    s = _say("out", yours, ref, ctx)
    assert "wrong only at ignored positions (target == -1" in s


def test_wrong_at_dropped_positions():
    rng = _rng(13)
    mask = rng.random((4, 5)) < 0.6
    ref = rng.standard_normal((4, 5)) * mask
    yours = ref + 0.5 * ~mask
    s = _say("grad.input.x", yours, ref, Context(inputs={"x": np.ones((4, 5)), "mask": mask}))
    assert "wrong only where mask is False" in s and "dropped" in s


def test_wrong_at_kept_positions():
    rng = _rng(14)
    mask = rng.random((4, 5)) < 0.6
    ref = rng.standard_normal((4, 5)) * mask
    yours = ref + 0.3 * mask * rng.standard_normal((4, 5))
    s = _say("grad.input.x", yours, ref, Context(inputs={"mask": mask}))
    assert "wrong only where mask is True (the kept positions" in s


def test_relu_kink():
    x = np.array([[-1.0, 0.0, 2.0], [0.0, 3.0, -0.5]])
    dy = np.array([[0.3, 0.7, -1.2], [0.4, 0.9, 2.0]])
    ref = dy * (x > 0)
    yours = dy * (x >= 0)
    s = _say("grad.input.x", yours, ref, Context(inputs={"x": x}))
    assert "wrong only where x is exactly 0 (2 position(s))" in s and "subgradient" in s


def test_wrong_in_one_slice():
    ref = _rng(15).standard_normal((3, 4, 5))
    yours = ref.copy()
    yours[:, 3, :] *= 0.0
    yours[:, 3, 0] = 1.0
    s = _say("grad.input.h", yours, ref)
    assert "wrong only in the slice [:, 3, :]" in s and "the last along axis 1" in s


def test_wrong_at_a_few_elements():
    ref = _rng(16).standard_normal((6, 7))
    yours = ref.copy()
    yours[2, 5] = -yours[2, 5]
    yours[4, 1] = -yours[4, 1]
    s = _say("out", yours, ref)
    assert "wrong at 2 of 42 elements (first at [2, 5])" in s and "sign is flipped" in s


def test_repeated_index_does_not_fire_on_batch_aligned_logits():
    target = np.array([1, 1, 0, 2])
    ref = _rng(17).standard_normal((4, 3))
    yours = ref.copy()
    yours[1] += 1.0
    ctx = Context(inputs={"input": np.ones((4, 3)), "target": target})
    s = _say("grad.input.input", yours, ref, ctx)
    assert "repeats" not in s


# --- 8. nothing simple ---------------------------------------------------------------------
def test_random_perturbation_has_no_simple_pattern():
    rng = _rng(18)
    ref = rng.standard_normal((5, 6))
    yours = ref + 0.1 * rng.standard_normal((5, 6))
    s = _say("grad.param.weight", yours, ref, Context(inputs={"x": ref}, init={"p": 0.5}))
    assert s.startswith("no simple pattern: 30 of 30 elements outside the tolerance")


def test_most_elements_wrong_is_not_a_few():
    ref = np.arange(1.0, 5.0)
    s = _say("out", np.array([1.0, 9.0, 8.0, 7.0]), ref)
    assert s.startswith("no simple pattern: 3 of 4 elements")


def test_worst_element_is_reported():
    ref = np.array([[1.0, 2.0], [3.0, 4.0]])
    yours = np.array([[1.1, 2.0], [3.0, 9.0]])
    s = _say("out", yours, ref)
    assert s.endswith("-- worst at [1, 1]: yours 9 vs reference 4")


# --- robustness ----------------------------------------------------------------------------
@pytest.mark.parametrize("yours, reference", [
    (np.array([]), np.array([])),
    (np.array(["a"], dtype=object), np.array([1.0])),
    (np.ones((2, 2)), np.full((2, 2), np.nan)),
    (np.ones(3, dtype=np.int64), np.arange(3)),
])
def test_never_raises(yours, reference):
    sentence = diagnose("grad.param.x", yours, reference,
                        Context(inputs={"t": np.array([1, 2]), "o": "junk"},
                                init={"p": "x", "padding_idx": 99, "ignore_index": None}),
                        float("nan"))
    assert isinstance(sentence, str) and sentence and "\n" not in sentence


def test_no_context_at_all():
    s = diagnose("out", np.array([1.0, 2.0]), np.array([2.0, 4.0]), None, 0.0)
    assert s.startswith("yours is half the reference")
