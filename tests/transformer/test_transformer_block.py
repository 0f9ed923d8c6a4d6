"""Focused tests for the transformer block: nn.TransformerEncoderLayer's state dict loads
unchanged, causality in both twins, blocks stack (one backward per block, in reverse, equals
autograd through the stack), where the dropout masks act, and verify with a broken copy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compare.transformer.transformer_block import BuiltinBlock
from compare.verify import verify
from numpy_impl.transformer.transformer_block import TransformerBlock as NumpyBlock
from torch_impl.transformer.transformer_block import TransformerBlock as TorchBlock


@pytest.mark.parametrize("norm_first", [True, False])
def test_the_builtin_layer_state_dict_loads_unchanged(norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, activation="gelu",
                                       batch_first=True, norm_first=norm_first).double().eval()
    mine = NumpyBlock(8, 2, 16, dropout=0.1, norm_first=norm_first).double().eval()
    mine.load_state_dict(layer.state_dict())
    assert list(mine.state_dict()) == list(layer.state_dict()) == list(
        TorchBlock(8, 2, 16, norm_first=norm_first).state_dict())
    x = np.random.default_rng(0).standard_normal((2, 5, 8))
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(torch.from_numpy(x), src_mask=mask, is_causal=True).numpy()
    np.testing.assert_allclose(mine(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm_first", [True, False])
def test_causal_block_output_at_t_ignores_later_positions(norm_first):
    rng = np.random.default_rng(1)
    torch.manual_seed(1)
    twin = TorchBlock(8, 2, 16, norm_first=norm_first).double()
    mine = NumpyBlock(8, 2, 16, norm_first=norm_first).double()
    mine.load_state_dict(twin.state_dict())
    x = rng.standard_normal((2, 6, 8))
    for t in (0, 2, 4):
        y = x.copy()
        y[:, t + 1:] += rng.standard_normal(y[:, t + 1:].shape)
        a, b = mine(x), mine(y)
        assert np.array_equal(a[:, :t + 1], b[:, :t + 1])
        assert not np.allclose(a[:, t + 1], b[:, t + 1])
        with torch.no_grad():
            at, bt = twin(torch.from_numpy(x)), twin(torch.from_numpy(y))
        assert torch.equal(at[:, :t + 1], bt[:, :t + 1])


@pytest.mark.parametrize("norm_first", [True, False])
def test_blocks_stack_one_backward_per_block(norm_first):
    """Six blocks: forward in order, backward in reverse, each block's backward fed the next
    one's input gradient: the input and every parameter gradient equal autograd's."""
    torch.manual_seed(2)
    depth = 6
    twins = nn.ModuleList(TorchBlock(8, 2, norm_first=norm_first) for _ in range(depth)).double()
    blocks = [NumpyBlock(8, 2, norm_first=norm_first).double() for _ in range(depth)]
    for block, twin in zip(blocks, twins, strict=True):
        block.load_state_dict(twin.state_dict())
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 8))
    g = rng.standard_normal((2, 5, 8))
    h = x
    for block in blocks:
        h = block(h)
    grad = g
    for block in reversed(blocks):
        grad = block.backward(grad)
    xt = torch.from_numpy(x).requires_grad_()
    ht = xt
    for twin in twins:
        ht = twin(ht)
    ht.backward(torch.from_numpy(g))
    np.testing.assert_allclose(h, ht.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for block, twin in zip(blocks, twins, strict=True):
        for (name, p), (tname, tp) in zip(block.named_parameters(), twin.named_parameters(),
                                          strict=True):
            assert name == tname
            scale = np.abs(tp.grad.numpy()).max()
            assert np.abs(p.grad - tp.grad.numpy()).max() <= 1e-10 * scale, name


def test_dropout_masks_act_where_documented():
    """Pre-LN with both branch outputs dropped (dropout1, dropout2 all False) is the identity;
    with only the MLP hidden dropped, the MLP branch is linear2's bias scaled by 1/(1 - p)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 8))
    torch.manual_seed(3)
    twin = TorchBlock(8, 2, 16, dropout=0.5).double()
    nn.init.normal_(twin.linear2.bias)
    mine = NumpyBlock(8, 2, 16, dropout=0.5).double()
    mine.load_state_dict(twin.state_dict())
    shapes = mine.dropout_mask_shapes(2, 4)
    keep = {name: np.ones(shape, bool) for name, shape in shapes.items()}
    for module, wrap in ((mine, lambda a: a), (twin, torch.from_numpy)):
        dropped = dict(keep, dropout1=np.zeros(shapes["dropout1"], bool),
                       dropout2=np.zeros(shapes["dropout2"], bool))
        out = module(wrap(x), dropout_masks={k: wrap(v) for k, v in dropped.items()})
        np.testing.assert_array_equal(np.asarray(out.detach() if hasattr(out, "detach")
                                                 else out), x)
        hidden_off = dict(keep, dropout=np.zeros(shapes["dropout"], bool))
        module(wrap(x), dropout_masks={k: wrap(v) for k, v in hidden_off.items()})
        ffn = module.intermediates["ffn"]
        ffn = np.asarray(ffn.detach() if hasattr(ffn, "detach") else ffn)
        np.testing.assert_allclose(ffn, np.broadcast_to(2 * twin.linear2.bias.detach().numpy(),
                                                        ffn.shape), rtol=1e-15)


def test_builtin_wrapper_keeps_torchs_keys():
    assert list(BuiltinBlock(8, 2, 16).state_dict()) == list(NumpyBlock(8, 2, 16).state_dict())


class PreLNForgetsTheResidual(NumpyBlock):
    """The classic mistake: dL/dx1 = branch gradient only, the residual's g forgotten."""

    def backward(self, grad_output):
        if not self.norm_first:
            return super().backward(grad_output)
        dmid = self.norm2.backward(self._ff_backward(grad_output))  # missing: + grad_output
        return dmid + self.norm1.backward(self._sa_backward(dmid))


def test_verify_finds_a_forgotten_residual_gradient():
    report = verify("transformer_block", PreLNForgetsTheResidual)
    assert not report.passed and not report.error, report.error
    failed = {d.name for d in report.failures}
    assert "grad.input.src" in failed and "grad.param.self_attn.in_proj_weight" in failed
    assert "out" not in failed and "grad.param.linear2.weight" not in failed
    assert any(d.check == "yours-vs-fd" for d in report.failures)
