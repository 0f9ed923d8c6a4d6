"""Focused tests of the GPT twins: nanoGPT's names, tying and state dicts (both ways), the
forward's two modes, the tied weight's two gradients, causality, the optimizer groups,
generation (cropping, top_k, temperature), training parity in float64 and that both twins
learn, the --train demo, verify (a copy passes) and the first point of divergence (a bug in
one block's attention backward is located at that block)."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import compare.transformer.gpt as cmp_gpt
from compare.registry import get
from compare.runner import run_case
from compare.verify import load, verify
from numpy_impl import Parameter
from numpy_impl.layers.activations import log_softmax
from numpy_impl.transformer import gpt as numpy_gpt
from numpy_impl.transformer.gpt import GPT, GPTConfig
from torch_impl.transformer import gpt as torch_gpt

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)


def _twins(seed: int = 0, **overrides):
    config = {**SMALL, **overrides}
    torch.manual_seed(seed)
    twin = torch_gpt.GPT(torch_gpt.GPTConfig(**config)).double()
    model = GPT(GPTConfig(**config)).double()
    model.load_state_dict(twin.state_dict())
    return model, twin


def _tokens(seed: int, shape: tuple[int, int], high: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, shape)


def test_config_defaults_are_nanogpts():
    c = GPTConfig()
    assert (c.block_size, c.vocab_size, c.n_layer, c.n_head, c.n_embd, c.dropout, c.bias) == \
        (1024, 50304, 12, 12, 768, 0.0, True)


def test_names_tying_and_state_dict_keys():
    model = GPT(GPTConfig(**SMALL))
    block = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
             "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
             "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]
    params = (["transformer.wte.weight", "transformer.wpe.weight"]
              + [f"transformer.h.{i}.{n}" for i in range(2) for n in block]
              + ["transformer.ln_f.weight", "transformer.ln_f.bias"])
    assert [n for n, _ in model.named_parameters()] == params       # wte listed once
    assert list(model.state_dict()) == params + ["lm_head.weight"]  # both keys, as torch
    assert model.lm_head.weight is model.transformer.wte.weight     # one Parameter
    assert model.get_num_params() == sum(p.data.size for p in model.parameters()) - 8 * 16
    twin = torch_gpt.GPT(torch_gpt.GPTConfig(**SMALL))
    assert list(twin.state_dict()) == list(model.state_dict())
    assert [n for n, _ in twin.named_parameters()] == params


def test_init_follows_nanogpt():
    model = GPT(GPTConfig(**{**SMALL, "n_embd": 64, "n_layer": 4, "vocab_size": 500}))
    wte = model.transformer.wte.weight.data
    assert wte.dtype == np.float32 and abs(wte.std() - 0.02) < 0.002
    c_proj = model.transformer.h[0].mlp.c_proj.weight.data
    assert abs(c_proj.std() - 0.02 / np.sqrt(8)) < 0.001                # scaled residual init
    assert not model.transformer.h[0].attn.c_attn.bias.data.any()       # zero biases
    assert (model.transformer.h[0].ln_1.weight.data == 1).all()


def test_a_builtin_nanogpt_state_dict_loads_both_ways():
    """BuiltinGPT has nanoGPT's exact module tree (nn.Embedding, nn.LayerNorm, nn.Linear):
    its state_dict loads into the NumPy twin unchanged, and the NumPy one into it (strict)."""
    torch.manual_seed(1)
    builtin = cmp_gpt.BuiltinGPT(torch_gpt.GPTConfig(**SMALL)).double()
    model = GPT(GPTConfig(**SMALL)).double()
    model.load_state_dict(builtin.state_dict())
    idx, targets = _tokens(0, (2, 8)), _tokens(1, (2, 8))
    logits, loss = model(idx, targets)
    ref_logits, ref_loss = builtin(torch.from_numpy(idx), torch.from_numpy(targets))
    np.testing.assert_allclose(logits, ref_logits.detach().numpy(), rtol=0, atol=1e-12)
    assert float(loss) == pytest.approx(float(ref_loss.detach()), rel=1e-13)
    other = cmp_gpt.BuiltinGPT(torch_gpt.GPTConfig(**SMALL)).double()
    other.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    assert torch.equal(other.lm_head.weight, builtin.lm_head.weight)
    assert other.lm_head.weight is other.transformer.wte.weight          # still tied


def test_forward_with_and_without_targets():
    model, _ = _twins()
    idx, targets = _tokens(2, (3, 6)), _tokens(3, (3, 6))
    targets[0, :4] = -1                                                 # ignored
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 6, 11)
    logp = log_softmax(logits.reshape(-1, 11), 1)
    keep = targets.reshape(-1) != -1
    expected = -logp[keep, targets.reshape(-1)[keep]].mean()
    assert float(loss) == pytest.approx(expected, rel=1e-14)
    last, none = model(idx)
    assert none is None and last.shape == (3, 1, 11)
    np.testing.assert_allclose(last[:, 0], logits[:, -1], rtol=0, atol=1e-14)
    with pytest.raises(AssertionError, match="Cannot forward sequence of length 9, block size "
                                             "is only 8"):
        model(_tokens(0, (1, 9)))


def test_backward_without_targets_takes_grad_logits():
    model, twin = _twins()
    idx = _tokens(4, (2, 7))
    g = np.random.default_rng(5).standard_normal((2, 1, 11))
    model(idx)
    assert model.backward(g) is None
    logits, _ = twin(torch.from_numpy(idx))
    logits.backward(torch.from_numpy(g))
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters(),
                                     strict=True):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=0,
                                   atol=1e-12 * max(1.0, np.abs(q.grad.numpy()).max()),
                                   err_msg=name)


def test_the_tied_weight_gets_its_embedding_and_its_lm_head_gradient():
    model, _ = _twins()
    idx, targets = _tokens(6, (2, 8)), _tokens(7, (2, 8))
    model(idx, targets)
    model.backward(1.0)
    tied = model.transformer.wte.weight.grad.copy()
    untied, _ = _twins()                                               # the same weights ...
    untied.lm_head.weight = Parameter(untied.lm_head.weight.data.copy())  # ... untied
    untied(idx, targets)
    untied.backward(1.0)
    embedding_part = untied.transformer.wte.weight.grad
    head_part = untied.lm_head.weight.grad
    assert np.abs(embedding_part).max() > 1e-3 and np.abs(head_part).max() > 1e-3
    np.testing.assert_allclose(tied, embedding_part + head_part, rtol=0, atol=1e-15)


def test_backward_accumulates_like_autograd():
    model, _ = _twins()
    idx, targets = _tokens(8, (2, 8)), _tokens(9, (2, 8))
    model(idx, targets)
    model.backward(1.0)
    once = {n: p.grad.copy() for n, p in model.named_parameters()}
    model(idx, targets)
    model.backward(0.5)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, 1.5 * once[n], rtol=1e-13, atol=1e-18, err_msg=n)


def test_causality_later_tokens_do_not_change_earlier_logits():
    model, twin = _twins()
    idx = _tokens(10, (2, 8))
    changed = idx.copy()
    changed[:, 5] = (changed[:, 5] + 1) % 11
    a, _ = model(idx, idx)
    b, _ = model(changed, changed)
    np.testing.assert_array_equal(a[:, :5], b[:, :5])
    assert np.abs(a[:, 5:] - b[:, 5:]).max() > 1e-6
    with torch.no_grad():
        ta, _ = twin(torch.from_numpy(idx), torch.from_numpy(idx))
        tb, _ = twin(torch.from_numpy(changed), torch.from_numpy(changed))
    assert torch.equal(ta[:, :5], tb[:, :5])


def test_configure_optimizers_has_nanogpts_two_groups():
    model = GPT(GPTConfig(**SMALL))
    optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cpu")
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) == 2 + 4 * 2                           # wte, wpe, 4 matrices/block
    assert len(no_decay["params"]) == 8 * 2 + 2                         # biases and LN gains
    assert all(p.data.ndim >= 2 for p in decay["params"])
    assert all(p.data.ndim < 2 for p in no_decay["params"])
    assert decay["lr"] == 6e-4 and decay["betas"] == (0.9, 0.95)
    torch_groups = torch_gpt.GPT(torch_gpt.GPTConfig(**SMALL)).configure_optimizers(
        0.1, 6e-4, (0.9, 0.95), "cpu").param_groups
    assert [len(g["params"]) for g in torch_groups] == [10, 18]


def test_dropout_masks_replay_and_eval_ignores_dropout():
    model, twin = _twins(dropout=0.3)
    idx, targets = _tokens(11, (2, 6)), _tokens(12, (2, 6))
    rng = np.random.default_rng(0)
    masks = {n: rng.random(s) >= 0.3 for n, s in
             numpy_gpt.dropout_mask_shapes(model.config, 2, 6).items()}
    _, loss_a = model(idx, targets, masks)
    _, loss_b = model(idx, targets, masks)
    assert float(loss_a) == float(loss_b)
    _, loss_t = twin(torch.from_numpy(idx), torch.from_numpy(targets),
                     {k: torch.from_numpy(m) for k, m in masks.items()})
    assert float(loss_a) == pytest.approx(float(loss_t.detach()), rel=1e-13)
    model.eval()
    plain, _ = _twins(dropout=0.0)
    np.testing.assert_array_equal(model(idx, targets)[0], plain(idx, targets)[0])


def test_generate_identical_tokens_cropping_and_top_k():
    model, twin = _twins()
    model.eval()
    twin.eval()
    prompt = _tokens(13, (2, 3))
    u = np.random.default_rng(14).random((2, 12))                      # 3 + 12 > block_size 8
    for temperature, top_k in ((1.0, None), (0.8, 5), (1.5, 3)):
        mine = model.generate(prompt, 12, temperature, top_k, uniforms=u)
        ref = twin.generate(torch.from_numpy(prompt), 12, temperature, top_k,
                            uniforms=torch.from_numpy(u)).numpy()
        assert mine.shape == (2, 15)
        np.testing.assert_array_equal(mine, ref)
        np.testing.assert_array_equal(mine[:, :3], prompt)
    greedy = model.generate(prompt, 4, top_k=1, uniforms=u)            # top_k=1: argmax
    for step in range(4):
        logits, _ = model(greedy[:, : 3 + step])
        np.testing.assert_array_equal(greedy[:, 3 + step], logits[:, -1].argmax(-1))
    # top_k=2: every sampled token is one of the two most likely
    sampled = model.generate(prompt, 1, top_k=2, uniforms=u)
    logits, _ = model(prompt)
    top2 = np.argsort(logits[:, -1], axis=-1)[:, -2:]
    assert all(sampled[b, 3] in top2[b] for b in range(2))


def test_sample_inverse_cdf_known_answers():
    probs = np.array([[0.2, 0.0, 0.5, 0.3]] * 4)
    u = np.array([0.1, 0.2001, 0.69, 0.71])
    np.testing.assert_array_equal(numpy_gpt.sample(probs, u)[:, 0], [0, 2, 2, 3])
    np.testing.assert_array_equal(torch_gpt.sample(torch.from_numpy(probs),
                                                   torch.from_numpy(u))[:, 0].numpy(),
                                  [0, 2, 2, 3])


def test_crop_block_size():
    model, twin = _twins()
    model.crop_block_size(5)
    twin.crop_block_size(5)
    assert model.transformer.wpe.weight.shape == (5, 16)
    idx = _tokens(15, (1, 5))
    np.testing.assert_allclose(model(idx)[0], twin(torch.from_numpy(idx))[0].detach().numpy(),
                               rtol=0, atol=1e-12)
    with pytest.raises(AssertionError):
        model(_tokens(0, (1, 6)))


def test_training_parity_float64_within_1e_9():
    concept = get("gpt")
    diffs = run_case(concept, concept.case("train-20-steps"), "float64")
    twins = [d for d in diffs if d.check == "numpy-vs-torch"]
    assert len([d for d in twins if d.name.endswith("/loss")]) == 20
    assert max(d.max_rel for d in twins) < 1e-9
    assert all(d.passed for d in diffs)


def test_both_twins_learn_the_builtin_text(tmp_path):
    text = cmp_gpt.builtin_text(20_000)
    result = cmp_gpt.train_both(text, steps=60, n_layer=1, n_head=2, n_embd=32, block_size=16,
                                batch_size=8, lr=1e-2, seed=0, eval_every=1000,
                                sample_chars=40, out=tmp_path, log=lambda *a: None)
    for side in ("numpy", "torch"):
        losses = result["losses"][side]
        assert losses[0] > 3.3, side                                   # ln(38) = 3.6 at the start
        assert np.mean(losses[-10:]) < losses[0] - 0.5, side           # measured: 3.65 -> 2.94
        assert len(result["samples"][side]) == 41
    np.testing.assert_allclose(result["losses"]["numpy"], result["losses"]["torch"], rtol=1e-3)
    assert result["samples"]["numpy"] == result["samples"]["torch"]
    assert (tmp_path / "gpt_train_loss.png").stat().st_size > 10_000


def test_train_demo_runs_end_to_end(tmp_path, capsys):
    data = tmp_path / "tiny.txt"
    data.write_text("hello world, hello gpt. " * 40)
    code = cmp_gpt.main(["--train", "--data", str(data), "--steps", "3", "--n-layer", "1",
                         "--n-embd", "16", "--n-head", "2", "--block-size", "8",
                         "--batch-size", "2", "--sample-chars", "10", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "loss numpy" in out and "sample from the numpy twin" in out
    assert "training time: numpy" in out
    assert cmp_gpt.main(["--train", "--data", str(tmp_path / "missing.txt")]) == 2


def test_verify_a_copy_of_the_numpy_twin_passes(tmp_path):
    path = tmp_path / "my_gpt.py"
    shutil.copy(ROOT / "numpy_impl" / "transformer" / "gpt.py", path)
    report = verify("gpt", load(f"{path}:GPT"))
    assert report.passed, report.table()


class BrokenAttention(numpy_gpt.CausalSelfAttention):
    """The softmax's backward with the row sum left out: dS = P * dP (a classic mistake)."""

    def backward(self, grad_output):
        cache = self._cache
        B, T, C = grad_output.shape
        H, D = self.n_head, C // self.n_head
        dy = self.c_proj.backward(grad_output)                         # dropout 0 here
        dout = dy.reshape(B, T, H, D).transpose(0, 2, 1, 3)
        dv = np.swapaxes(cache.dropped, -1, -2) @ dout
        dweights = dout @ np.swapaxes(cache.value, -1, -2)
        dscores = cache.weights * dweights                             # forgot - sum(dP * P)
        dq = cache.scale * (dscores @ cache.key)
        dk = cache.scale * (np.swapaxes(dscores, -1, -2) @ cache.query)
        dqkv = np.concatenate([d.transpose(0, 2, 1, 3).reshape(B, T, C) for d in (dq, dk, dv)],
                              axis=-1)
        if self.track:
            self.intermediate_grads = {"att": dweights, "y": dy, "out": grad_output}
        return self.c_attn.backward(dqkv)


class GPTWithBrokenBlock1(GPT):
    def __init__(self, config):
        super().__init__(config)
        if config.n_layer > 1:
            self.transformer.h[1].attn.__class__ = BrokenAttention


def test_a_bug_in_one_blocks_attention_backward_is_located_at_that_block():
    concept = get("gpt")
    cases = [c for c in concept.cases if c.name in ("2-layer", "4-layer")]
    report = verify(dataclasses.replace(concept, cases=cases), GPTWithBrokenBlock1)
    assert not report.passed
    tables = report.divergence()
    assert len(tables) == 2
    for table in tables:
        assert table["first_forward"] is None                          # the forward is right
        assert table["first_backward"] == "h.1.ln_1"                   # where dS goes wrong
    failing = {d.name for d in report.failures}
    assert "grad.inter.h.1.attn.att" not in failing                    # dL/dP is still right
    assert "grad.param.transformer.h.1.attn.c_attn.weight" in failing
    assert not any(n.startswith("grad.param.transformer.h.2") for n in failing)
