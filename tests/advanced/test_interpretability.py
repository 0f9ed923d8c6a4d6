"""Focused tests of advanced/interpretability: a hand-set copying head that patching, the
attention patterns and direct logit attribution must find (in both twins); the identities the
analyses obey (DLA sums to the logit difference, the last lens layer is the model's logits,
patching the final stream restores the clean answer, patching an unchanged activation does
nothing); hooks leave the model clean; checkpoints load; verify catches a broken copy."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from compare.advanced import interpretability as cmp
from compare.concept import Trial
from compare.verify import load, verify
from numpy_impl.advanced import interpretability as numpy_interp
from torch_impl.advanced import interpretability as torch_interp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def copying():
    """Both twins' maps on the hand-set copying model (float64, seed 0)."""
    case = cmp.CONCEPT.case("copying-head")
    outcome = cmp.run(case, Trial("float64", seed=0, builtin=False, fd=False))
    return outcome, cmp.case_setup(case, 0)


@pytest.fixture(scope="module")
def trained():
    case = cmp.CONCEPT.case("trained-2-layer")
    outcome = cmp.run(case, Trial("float64", seed=0, builtin=False, fd=False))
    return outcome, cmp.case_setup(case, 0)


def test_copying_model_predicts_the_first_token(copying):
    outcome, setup = copying
    for side in (outcome.numpy, outcome.torch):
        assert np.array_equal(np.argmax(side["logits"][:, -1], -1), setup["answer"])
        assert np.all(side["ld.clean"] > 3) and np.all(side["ld.corrupted"] < -3)


def test_the_copying_head_attends_to_position_zero(copying):
    outcome, _ = copying
    for side in (outcome.numpy, outcome.torch):
        pattern = side["cache.clean.pattern.1"]                      # (B, H, T, T)
        assert np.all(pattern[:, 0, :, 0] > 1 - 1e-9)                 # head 0: all on token 0
        T = pattern.shape[-1]
        causal_uniform = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
        np.testing.assert_allclose(pattern[:, 1], np.broadcast_to(causal_uniform,
                                                                  pattern[:, 1].shape))


def test_patching_finds_the_copying_head(copying):
    outcome, _ = copying
    for side in (outcome.numpy, outcome.torch):
        effect = numpy_interp.normalized_effect(side["patch.resid"], side["ld.clean"],
                                                side["ld.corrupted"])    # (B, L+1, T)
        B, _, T = effect.shape
        expected = np.zeros((3, T))
        expected[0, 0] = expected[1, 0] = 1.0     # the first token, until head 1.0 reads it
        expected[2, T - 1] = 1.0                  # after layer 1: all at the last position
        np.testing.assert_allclose(effect, np.broadcast_to(expected, effect.shape), atol=1e-9)
        attn = numpy_interp.normalized_effect(side["patch.attn_out"], side["ld.clean"],
                                              side["ld.corrupted"])      # (B, L, T)
        expected = np.zeros((2, T))
        expected[1, T - 1] = 1.0                  # layer 1's attention output, last position
        np.testing.assert_allclose(attn, np.broadcast_to(expected, attn.shape), atol=1e-9)
        np.testing.assert_allclose(side["patch.mlp_out"],             # zero MLPs: no effect
                                   np.broadcast_to(side["ld.corrupted"][:, None, None],
                                                   side["patch.mlp_out"].shape), atol=1e-12)


def test_attribution_finds_the_copying_head(copying):
    outcome, _ = copying
    for side in (outcome.numpy, outcome.torch):
        heads = side["dla.heads"]                                     # (B, L, H)
        flat = heads.reshape(len(heads), -1)
        assert np.all(np.argmax(np.abs(flat), -1) == 2)               # (layer 1, head 0)
        others = np.delete(flat, 2, axis=1)
        assert np.all(np.abs(others) < 1e-12)
        # the rest of the logit difference: the current token's embedding reads 0 along
        # W_U[A] - W_U[B] (it is neither), so head 1.0 carries all of it
        np.testing.assert_allclose(heads[:, 1, 0], side["ld.clean"], rtol=1e-12)
        assert np.all(np.abs(side["dla.embed"]) < 1e-12)


def test_direct_logit_attribution_sums_to_the_logit_difference(trained):
    outcome, _ = trained
    for side in (outcome.numpy, outcome.torch):
        total = (side["dla.embed"] + side["dla.heads"].sum((1, 2))
                 + side["dla.attn_bias"].sum(1) + side["dla.mlp"].sum(1) + side["dla.ln_bias"])
        np.testing.assert_allclose(total, side["ld.clean"], rtol=1e-12, atol=1e-12)
        assert np.min(np.abs(side["dla.heads"])) > 0                  # every head writes


def test_the_last_lens_layer_is_the_models_logits(trained):
    outcome, _ = trained
    for side in (outcome.numpy, outcome.torch):
        np.testing.assert_allclose(side["lens"][-1][:, -1], side["logits"][:, 0], rtol=1e-12)
        assert np.max(np.abs(side["lens"][0] - side["lens"][-1])) > 0.1  # layers differ


def test_patching_identities_on_the_trained_model(trained):
    outcome, setup = trained
    at = cmp.CONCEPT.case("trained-2-layer").options["corrupt_at"]
    for side in (outcome.numpy, outcome.torch):
        patch = side["patch.resid"]                                   # (B, L+1, T)
        # the whole final stream at the last position decides the logits: clean LD back
        np.testing.assert_allclose(patch[:, -1, -1], side["ld.clean"], rtol=1e-12)
        # before the first block only the corrupted position differs: elsewhere no effect
        unchanged = np.delete(patch[:, 0], at, axis=1)
        np.testing.assert_allclose(unchanged, np.broadcast_to(side["ld.corrupted"][:, None],
                                                              unchanged.shape), rtol=1e-12)
        # later positions cannot influence earlier ones: nothing before `at` matters
        np.testing.assert_allclose(patch[:, :, :at], np.broadcast_to(
            side["ld.corrupted"][:, None, None], patch[:, :, :at].shape), rtol=1e-12)
        # attribution patching: zero where the two streams agree, the same sign of effect
        # as real patching at the corrupted token in layer 0
        attribution = side["attribution.resid"]
        assert np.all(np.delete(attribution[:, 0], at, axis=1) == 0)
        assert np.all(attribution[:, 0, at] != 0)


def test_run_with_cache_matches_the_gpts_own_forward_and_leaves_no_hooks(trained):
    _, setup = trained
    trial = Trial("float64")
    numpy_model = cmp.build(numpy_interp.InterpretableGPT, "numpy", setup, trial)
    torch_model = cmp.build(torch_interp.InterpretableGPT, "torch", setup, trial)
    logits, cache = numpy_model.run_with_cache(setup["clean"])
    np.testing.assert_array_equal(logits, numpy_model(setup["clean"])[0])
    with torch.no_grad():
        t_logits, t_cache = torch_model.run_with_cache(torch.from_numpy(setup["clean"]))
        assert torch.equal(t_logits, torch_model(torch.from_numpy(setup["clean"]))[0])
    assert set(cache) == set(t_cache)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in torch_model.modules())


def test_a_nanogpt_checkpoint_loads(tmp_path):
    config = dict(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, dropout=0.0,
                  bias=True)
    torch.manual_seed(3)
    model = torch_interp.InterpretableGPT(torch_interp.GPTConfig(**config)).double()
    state = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()
             if k != "lm_head.weight"}                                # as torch.compile saves
    torch.save({"model": state, "model_args": {**config, "dropout": 0.1}, "iter_num": 5},
               tmp_path / "ckpt.pt")
    loaded_config, loaded = cmp.load_checkpoint(tmp_path / "ckpt.pt")
    assert loaded_config == config
    twin = numpy_interp.InterpretableGPT(numpy_interp.GPTConfig(**loaded_config)).double()
    twin.load_state_dict(loaded)
    idx = np.arange(8)[None] % 11
    with torch.no_grad():
        expected = model(torch.from_numpy(idx))[0].numpy()
    np.testing.assert_allclose(twin(idx)[0], expected, rtol=1e-13)


def _broken_copy(tmp_path: Path, tree: str, old: str, new: str) -> Path:
    source = (ROOT / tree / "advanced" / "interpretability.py").read_text()
    assert old in source
    path = tmp_path / f"my_{tree}_interpretability.py"
    path.write_text(source.replace(old, new))
    return path


def test_verify_a_copy_of_the_numpy_twin_passes(tmp_path):
    path = tmp_path / "mine.py"
    shutil.copy(ROOT / "numpy_impl" / "advanced" / "interpretability.py", path)
    report = verify("interpretability", load(f"{path}:InterpretableGPT"))
    assert report.passed, report.table()


def test_verify_finds_an_uncentred_attribution_in_a_numpy_class(tmp_path):
    # DLA without ln_f's mean removal: every dla.* map is off, nothing else
    path = _broken_copy(tmp_path, "numpy_impl", "centred = c - c.mean(axis=-1, keepdims=True)",
                        "centred = c")
    report = verify("interpretability", load(f"{path}:InterpretableGPT"))
    assert not report.passed
    failing = {d.name for d in report.diffs if not d.passed}
    assert failing and all(name.startswith("dla.") for name in failing)
    assert "dla.heads" in failing


def test_verify_finds_an_off_by_one_patch_in_a_torch_class(tmp_path):
    # the clean activation of position t put at position t - 1: the patching maps are off
    path = _broken_copy(tmp_path, "torch_impl",
                        "patched[positions, :, positions] = clean_cache[name].transpose(0, 1)",
                        "patched[positions, :, positions - 1] = "
                        "clean_cache[name].transpose(0, 1)")
    report = verify("interpretability", load(f"{path}:InterpretableGPT"))
    assert not report.passed
    failing = {d.name for d in report.diffs if not d.passed}
    assert "patch.resid" in failing
    assert all(name.startswith("patch.") for name in failing)


def test_the_demo_trains_analyses_and_plots(tmp_path, capsys):
    code = cmp.train_main(["--train", "--steps", "3", "--n-layer", "1", "--n-head", "2",
                           "--n-embd", "16", "--block-size", "8", "--prompts", "2",
                           "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert (tmp_path / "interpretability_demo.png").stat().st_size > 10_000
    worst = float(out.split("over ")[1].split(": ")[1].split()[0])
    assert worst < 1e-10                       # both twins' maps, float64
    assert cmp.train_main(["--train", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
