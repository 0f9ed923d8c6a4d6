"""Focused tests of gradient flow: the per-layer norms by hand, the twins' norms agreeing,
the trends the plot shows (asserted with the measured margins), the plot itself, and verify
(a copy passes, a backward that skips the final LayerNorm is named)."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from compare.advanced import gradient_flow as cmp_flow
from compare.verify import load, verify
from numpy_impl.advanced.gradient_flow import DeepTransformer, gradient_norms
from torch_impl.advanced import gradient_flow as torch_flow

ROOT = Path(__file__).resolve().parents[2]


def test_gradient_norms_by_hand():
    torch.manual_seed(0)
    twin = torch_flow.DeepTransformer(8, 2, 3, True).double()
    model = DeepTransformer(8, 2, 3, True).double()
    model.load_state_dict(twin.state_dict())
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 4, 8))
    model(x)
    dx = model.backward(g)
    found = gradient_norms(model)
    assert found["residual"].shape == (4,) and found["params"].shape == (3,)
    assert found["residual"][0] == pytest.approx(np.linalg.norm(dx), rel=1e-15)
    block = model.blocks[1]
    by_hand = np.sqrt(sum((p.grad ** 2).sum() for p in block.parameters()))
    assert found["params"][1] == pytest.approx(by_hand, rel=1e-15)
    twin(torch.from_numpy(x).requires_grad_(True)).backward(torch.from_numpy(g))
    theirs = torch_flow.gradient_norms(twin)
    for key in ("residual", "params"):
        np.testing.assert_allclose(found[key], theirs[key].detach().numpy(), rtol=1e-12)


@pytest.fixture(scope="module")
def profiles():
    return {(nf, depth): cmp_flow.profile(nf, depth) for nf in (True, False)
            for depth in (2, 24)}


def test_the_twins_agree_on_every_profile(profiles):
    for p in profiles.values():
        for key in ("params", "residual"):
            np.testing.assert_allclose(p[f"numpy.{key}"], p[f"torch.{key}"], rtol=1e-10)


def test_post_ln_is_flat_and_its_top_does_not_depend_on_depth(profiles):
    deep = profiles[(False, 24)]["numpy.params"]
    shallow = profiles[(False, 2)]["numpy.params"]
    assert deep.max() / deep.min() < 1.6                       # measured 1.30
    assert 0.8 < deep[-1] / shallow[-1] < 1.3                  # measured 210 / 181 = 1.16


def test_pre_ln_top_shrinks_with_depth_and_falls_toward_the_output(profiles):
    deep = profiles[(True, 24)]["numpy.params"]
    shallow = profiles[(True, 2)]["numpy.params"]
    assert deep[-1] / shallow[-1] < 0.75                       # measured 104 / 168 = 0.62
    assert deep[0] / deep[-1] > 1.8                            # measured 2.45
    residual = profiles[(True, 24)]["numpy.residual"]
    assert np.all(np.diff(residual) < 0)                       # grows toward the input


def test_at_depth_post_ln_output_layers_get_larger_gradients_than_pre_ln(profiles):
    ratio = {depth: profiles[(False, depth)]["numpy.params"][-1]
             / profiles[(True, depth)]["numpy.params"][-1] for depth in (2, 24)}
    assert ratio[2] < 1.3                                      # measured 1.08
    assert ratio[24] > 1.6                                     # measured 2.02


def test_plot_is_written(tmp_path):
    path = cmp_flow.plot_profiles(tmp_path / "flow.png", depths=(2, 4))
    assert path.stat().st_size > 20_000


def _copy(tmp_path: Path, replace: tuple[str, str] | None = None):
    path = tmp_path / "my_flow.py"
    shutil.copy(ROOT / "numpy_impl" / "advanced" / "gradient_flow.py", path)
    if replace is not None:
        text = path.read_text()
        assert replace[0] in text
        path.write_text(text.replace(*replace))
    return load(f"{path}:DeepTransformer")


def test_verify_a_copy_passes_and_a_skipped_final_layernorm_is_named(tmp_path):
    concept = cmp_flow.CONCEPT
    few = dataclasses.replace(concept, cases=[c for c in concept.cases
                                              if c.name in ("pre-ln-depth-2", "post-ln-depth-2")])
    assert verify(few, _copy(tmp_path)).passed
    broken = _copy(tmp_path, (
        "g = self.ln_f.backward(grad_output) if self.ln_f is not None else grad_output",
        "g = grad_output"))
    report = verify(few, broken)
    assert not report.passed
    failing = {(d.case, d.name) for d in report.failures}
    assert ("pre-ln-depth-2", "grad.input.x") in failing
    assert ("pre-ln-depth-2", "grad.inter.stream.2") in failing      # wrong from the top down
    assert ("pre-ln-depth-2", "grad.param.ln_f.weight") in failing   # never accumulated
    assert not any(case == "post-ln-depth-2" for case, _ in failing)   # no ln_f there
