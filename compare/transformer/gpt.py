"""Compare the whole GPT (nanoGPT's model): one step tensor by tensor, a training run step by
step, and sampling token by token.

Step cases (a forward with targets and ``backward(dL/dloss)``, dL/dloss a random scalar; or,
without targets, the last position's logits under a random upstream gradient): the logits,
the loss, the gradient of every parameter -- the tied ``transformer.wte.weight`` receives its
embedding and its LM-head gradient -- and per block the named intermediates and their
gradients (``inter.h.<i>.x``: the residual stream entering the block, ``ln_1``, the attention
weights ``attn.att``, the merged heads ``attn.y``, the attention branch ``attn.out``,
``ln_2``, ``mlp.fc`` before GELU, ``mlp.gelu``, ``mlp.out``; then ``inter.ln_f``). They cover
bias on and off, dropout 0 and 0.2 (every Dropout's keep-mask drawn once and given to both
twins), ``n_layer`` 1 to 4, a sequence shorter than ``block_size``, ignored targets (-1) and
no targets. Finite differences check the NumPy backward on a sample of each parameter's
elements in the small cases.

Training case: 20 steps of nanoGPT's recipe in each twin from one state, on the same batches
of the built-in text (``compare.data.text``): ``configure_optimizers`` (AdamW, weight decay on
the matrices only), linear warm-up then cosine decay (``LambdaLR(warmup_cosine)``), gradient
clipping at 1.0 (``clip_grad_norm_`` of the ``training`` family in each twin): the loss and
the pre-clipping gradient norm at every step (``step{k}/loss``, ``step{k}/grad_norm``) and
every parameter after the last (``step20/param.*``). Measured: float64 within 1e-14 after 20
steps, far inside the issue's 1e-9.

Generation cases: ``generate`` from the same prompt with the same uniforms (inverse-CDF
sampling) past ``block_size`` (the context is cropped): identical tokens for temperature 1.0
and 0.8, top_k None and 5.

Witness: ``BuiltinGPT``, the same model from ``nn.Embedding``, ``nn.LayerNorm``,
``F.scaled_dot_product_attention(is_causal=True)``, ``nn.GELU``, ``nn.Linear`` and
``F.cross_entropy``, with ``torch.optim.AdamW``, ``torch.optim.lr_scheduler.LambdaLR`` and
``torch.nn.utils.clip_grad_norm_`` in training. It cannot replay a dropout mask
(``nn.Dropout`` and the fused attention draw their own), so the dropout case has no witness.

Tolerance: the defaults, but for a finite-difference floor on c_attn.bias (its key third's
gradient is exactly 0). float32 intermediates and gradients agree to ~1e-6
normwise; the training case's AdamW uses eps 1e-5 (see ``_training``), which keeps 20 float32
steps within 1.2e-5 of each other.

Benchmark size: (B, T) = (16, 64), n_layer 4, n_head 4, n_embd 128, vocab 65
(``benchmarks/gpt_step.py``).

Run: ``python -m compare.transformer.gpt`` (as ``dualgrad run gpt``; ``--plots DIR`` adds both
twins' training loss curves). ``--train`` trains a character-level GPT in both twins on the
built-in text or ``--data FILE``, prints both losses side by side, samples from each, saves
the curves and says how long each twin took::

    python -m compare.transformer.gpt --train [--steps N] [--data FILE] [--out DIR]

Measured with the defaults (4 layers, 4 heads, 128 wide, context 64, batch 16, 300 steps,
float32, one thread each, on the shared 2-core machine under load): the loss falls from 3.70
to 0.83 in both twins, never more than 4e-5 apart; validation loss 0.7434 in both; NumPy 183
s, torch 198 s. The two samples (temperature 0.8, the same uniforms) are identical for their
first ~290 characters, until float32 rounding moves a cumulative probability across a
uniform. More steps (``--steps 1000``) give cleaner prose.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compare.concept import Bench, Case, Concept, Outcome, Trial, perturb_parameters
from compare.data.text import CharVocab, builtin_text, get_batch, load_text, split
from compare.finite_diff import numerical_gradient
from compare.tolerances import Tolerance
from numpy_impl.training import grad_clipping as numpy_clip
from numpy_impl.training import lr_schedules as numpy_schedules
from numpy_impl.transformer import gpt as numpy_gpt
from torch_impl.training import grad_clipping as torch_clip
from torch_impl.training import lr_schedules as torch_schedules
from torch_impl.transformer import gpt as torch_gpt

SMALL = dict(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=16, dropout=0.0,
             bias=True)
FD_SAMPLES = 6  # elements per parameter checked by central differences


# --- the built-in witness: the same model from torch's own layers --------------------------------
class BuiltinAttention(nn.Module):
    def __init__(self, config: Any) -> None:
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(self.n_embd, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training
                                           else 0.0, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class BuiltinBlock(nn.Module):
    def __init__(self, config: Any) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = BuiltinAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(config.n_embd, 4 * config.n_embd,
                                                     bias=config.bias),
                                      c_proj=nn.Linear(4 * config.n_embd, config.n_embd,
                                                       bias=config.bias)))
        self.gelu = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(self.gelu(self.mlp.c_fc(self.ln_2(x))))


class BuiltinGPT(nn.Module):
    """nanoGPT's model from torch's built-in layers (dropout 0 only): same state_dict keys."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList([BuiltinBlock(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias)))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                dropout_masks: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                       ignore_index=-1)

    configure_optimizers = torch_gpt.GPT.configure_optimizers
    generate = torch_gpt.GPT.generate  # the sampling loop; the model under it is built-in


# --- building the twins from one state -----------------------------------------------------------
def _config(case: Case, side: str) -> Any:
    module = numpy_gpt if side == "numpy" else torch_gpt
    return module.GPTConfig(**case.options["config"])


def initial_state(case: Case, trial: Trial, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The torch twin's nanoGPT init (seeded), perturbed: LayerNorm gains of 1 and zero
    biases would hide a forgotten term."""
    torch.manual_seed(trial.seed)
    reference = torch_gpt.GPT(_config(case, "torch")).to(torch.float64)
    if case.options.get("perturb", True):
        with torch.no_grad():
            perturb_parameters(reference, rng, scale=0.1)
    return {k: trial.cast(v.detach().numpy().copy()) for k, v in reference.state_dict().items()}


def numpy_model(case: Case, state: dict[str, np.ndarray], trial: Trial, cls: Any = None) -> Any:
    model = (cls or case.numpy)(_config(case, "numpy"))
    model.to(trial.np_dtype)
    model.load_state_dict(state)
    model.train(case.train)
    return model


def torch_model(case: Case, state: dict[str, np.ndarray], trial: Trial, cls: Any) -> Any:
    model = cls(_config(case, "torch")).to(dtype=trial.torch_dtype)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    model.to(trial.device)
    model.train(case.train)
    return model


# --- one step ------------------------------------------------------------------------------------
def step_data(case: Case, trial: Trial, rng: np.random.Generator) -> dict[str, Any]:
    """Tokens, targets (some -1 if the case ignores), dropout keep-masks, upstream gradient."""
    opts, cfg = case.options, case.options["config"]
    B, T, V = opts["batch"], opts["length"], cfg["vocab_size"]
    idx = rng.integers(0, V, (B, T))
    targets = rng.integers(0, V, (B, T)) if opts["targets"] else None
    if targets is not None and opts.get("ignore"):
        targets[rng.random((B, T)) < 0.3] = -1
        targets[0, 0] = 0  # at least one counted target: the mean is defined
    masks = None
    if cfg["dropout"] > 0:
        shapes = numpy_gpt.dropout_mask_shapes(numpy_gpt.GPTConfig(**cfg), B, T)
        masks = {name: rng.random(shape) >= cfg["dropout"] for name, shape in shapes.items()}
    upstream = rng.standard_normal(() if targets is not None else (B, 1, V))
    return dict(idx=idx, targets=targets, masks=masks, upstream=trial.cast(upstream))


def run_numpy_step(model: Any, data: dict[str, Any]) -> dict[str, np.ndarray]:
    model.track_intermediates = True
    logits, loss = model(data["idx"].copy(), None if data["targets"] is None
                         else data["targets"].copy(), data["masks"])
    model.backward(data["upstream"] if loss is not None else data["upstream"].copy())
    values = {"logits": np.asarray(logits)}
    if loss is not None:
        values["loss"] = np.asarray(loss)
    values.update({f"grad.param.{n}": p.grad for n, p in model.named_parameters()})
    grads = getattr(model, "intermediate_grads", {}) or {}
    for name, value in (getattr(model, "intermediates", {}) or {}).items():
        values[f"inter.{name}"] = np.asarray(value)
        if name in grads:
            values[f"grad.inter.{name}"] = np.asarray(grads[name])
    return values


def run_torch_step(model: Any, data: dict[str, Any], trial: Trial) -> dict[str, np.ndarray]:
    model.track_intermediates = True
    to = lambda a: None if a is None else torch.from_numpy(np.array(a)).to(trial.device)  # noqa
    masks = None if data["masks"] is None else {k: to(m) for k, m in data["masks"].items()}
    logits, loss = model(to(data["idx"]), to(data["targets"]), masks)
    upstream = to(data["upstream"])
    (loss if loss is not None else logits).backward(upstream)
    values = {"logits": logits.detach().cpu().numpy()}
    if loss is not None:
        values["loss"] = loss.detach().cpu().numpy()
    for name, p in model.named_parameters():
        values[f"grad.param.{name}"] = (p.grad if p.grad is not None
                                        else torch.zeros_like(p)).cpu().numpy()
    for name, tensor in (getattr(model, "intermediates", {}) or {}).items():
        values[f"inter.{name}"] = tensor.detach().cpu().numpy()
        if tensor.grad is not None:
            values[f"grad.inter.{name}"] = tensor.grad.cpu().numpy()
    return values


def finite_differences(case: Case, state: dict[str, np.ndarray], data: dict[str, Any],
                       analytic: dict[str, np.ndarray], trial: Trial, cls: Any = None,
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Central differences of g * loss (or sum(g * logits)) for FD_SAMPLES elements of every
    parameter, against the NumPy twin's gradient."""
    model = numpy_model(case, state, trial, cls)

    def objective() -> float:
        logits, loss = model(data["idx"], data["targets"], data["masks"])
        out = logits if loss is None else loss
        return float(np.sum(data["upstream"] * out))

    pick = np.random.default_rng(trial.seed + 1)
    result = {}
    for name, p in model.named_parameters():
        key = f"grad.param.{name}"
        if key not in analytic:
            continue
        index = np.sort(pick.choice(p.data.size, min(FD_SAMPLES, p.data.size), replace=False))
        result[key] = (np.asarray(analytic[key]).reshape(-1)[index],
                       numerical_gradient(objective, p.data, index))
    return result


def run_step(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    data = step_data(case, trial, rng)
    outcome = Outcome(
        numpy=run_numpy_step(numpy_model(case, state, trial, numpy_cls), data),
        torch=run_torch_step(torch_model(case, state, trial, torch_cls or case.torch), data,
                             trial),
        inputs={k: v for k, v in data.items() if isinstance(v, np.ndarray)})
    if trial.builtin and case.builtin is not None:
        outcome.builtin = run_torch_step(torch_model(case, state, trial, case.builtin), data,
                                         trial)
    if trial.fd and case.fd and trial.dtype == "float64":
        outcome.fd = finite_differences(case, state, data, outcome.numpy, trial, numpy_cls)
    return outcome


# --- training: nanoGPT's recipe, step by step ----------------------------------------------------
def training_batches(case: Case, trial: Trial) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` batches of the built-in text, drawn once from the trial's Generator."""
    opts = case.options
    text = builtin_text(20_000)
    vocab = CharVocab.from_text(text)
    data = np.array(vocab.encode(text), dtype=np.int64) % opts["config"]["vocab_size"]
    rng = trial.rng()
    return [get_batch(data, opts["length"], opts["batch"], rng) for _ in range(opts["steps"])]


def _optimizer(model: Any, options: dict[str, Any]) -> Any:
    optimizer = model.configure_optimizers(options["weight_decay"], options["lr"],
                                           options["betas"], "cpu")
    for group in optimizer.param_groups:  # the training case's eps (see _training)
        group["eps"] = options.get("eps", group["eps"])
    return optimizer


def train_numpy(model: Any, batches: list, options: dict[str, Any]) -> dict[str, np.ndarray]:
    """nanoGPT's loop in the NumPy twin: forward, backward(1.0), clip, AdamW, schedule."""
    optimizer = _optimizer(model, options)
    schedule = numpy_schedules.LambdaLR(optimizer, numpy_schedules.warmup_cosine(
        options["warmup"], len(batches)))
    values = {}
    for k, (x, y) in enumerate(batches, 1):
        optimizer.zero_grad()
        _, loss = model(x, y)
        model.backward(1.0)
        norm = numpy_clip.clip_grad_norm_(model.parameters(), options["grad_clip"])
        optimizer.step()
        schedule.step()
        values[f"step{k}/loss"] = np.asarray(loss)
        values[f"step{k}/grad_norm"] = np.asarray(norm)
    values.update({f"step{len(batches)}/param.{n}": p.data.copy()
                   for n, p in model.named_parameters()})
    return values


def train_torch(model: Any, batches: list, options: dict[str, Any], *, builtin: bool = False,
                ) -> dict[str, np.ndarray]:
    """The same loop in torch: the twin's schedule and clipping, or torch's own (builtin)."""
    optimizer = _optimizer(model, options)
    factor = torch_schedules.warmup_cosine(options["warmup"], len(batches))
    schedule = (torch.optim.lr_scheduler.LambdaLR(optimizer, factor) if builtin
                else torch_schedules.LambdaLR(optimizer, factor))
    clip = torch.nn.utils.clip_grad_norm_ if builtin else torch_clip.clip_grad_norm_
    device = next(model.parameters()).device
    values = {}
    for k, (x, y) in enumerate(batches, 1):
        optimizer.zero_grad(set_to_none=True)
        _, loss = model(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
        loss.backward()
        norm = clip(model.parameters(), options["grad_clip"])
        optimizer.step()
        schedule.step()
        values[f"step{k}/loss"] = loss.detach().cpu().numpy()
        values[f"step{k}/grad_norm"] = norm.detach().cpu().numpy()
    values.update({f"step{len(batches)}/param.{n}": p.detach().cpu().numpy().copy()
                   for n, p in model.named_parameters()})
    return values


def run_training(case: Case, trial: Trial, numpy_cls: Any = None,
                 torch_cls: Any = None) -> Outcome:
    state = initial_state(case, trial, trial.rng())
    batches = training_batches(case, trial)
    options = case.options
    outcome = Outcome(
        numpy=train_numpy(numpy_model(case, state, trial, numpy_cls), batches, options),
        torch=train_torch(torch_model(case, state, trial, torch_cls or case.torch), batches,
                          options))
    if trial.builtin and case.builtin is not None:
        outcome.builtin = train_torch(torch_model(case, state, trial, case.builtin), batches,
                                      options, builtin=True)
    return outcome


# --- generation: the same uniforms, the same tokens ----------------------------------------------
def run_generation(case: Case, trial: Trial, numpy_cls: Any = None,
                   torch_cls: Any = None) -> Outcome:
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    opts = case.options
    prompt = rng.integers(0, opts["config"]["vocab_size"], (opts["batch"], opts["length"]))
    uniforms = trial.cast(rng.random((opts["batch"], opts["new_tokens"])))
    sampling = dict(temperature=opts["temperature"], top_k=opts["top_k"])

    def numpy_side(cls: Any) -> dict[str, np.ndarray]:
        model = numpy_model(case, state, trial, cls)
        return {"tokens": np.asarray(model.generate(prompt.copy(), opts["new_tokens"],
                                                    uniforms=uniforms.copy(), **sampling))}

    def torch_side(cls: Any) -> dict[str, np.ndarray]:
        model = torch_model(case, state, trial, cls)
        tokens = model.generate(torch.from_numpy(prompt.copy()).to(trial.device),
                                opts["new_tokens"],
                                uniforms=torch.from_numpy(uniforms.copy()).to(trial.device),
                                **sampling)
        return {"tokens": tokens.cpu().numpy()}

    outcome = Outcome(numpy=numpy_side(numpy_cls), torch=torch_side(torch_cls or case.torch))
    if trial.builtin and case.builtin is not None:
        outcome.builtin = torch_side(case.builtin)
    return outcome


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Dispatch on the case's kind; ``numpy_cls`` / ``torch_cls``: a user's GPT class."""
    kind = case.options["kind"]
    runner = {"step": run_step, "train": run_training, "generate": run_generation}[kind]
    return runner(case, trial, numpy_cls, torch_cls)


# --- cases ---------------------------------------------------------------------------------------
def _step(name: str, *, batch: int = 2, length: int = 8, targets: bool = True,
          ignore: bool = False, fd: bool = False, **config: Any) -> Case:
    config = {**SMALL, **config}
    builtin = BuiltinGPT if config["dropout"] == 0 else None  # nn.Dropout cannot replay a mask
    return Case(name, numpy=numpy_gpt.GPT, torch=torch_gpt.GPT, builtin=builtin, prepare=None,
                fd=fd, options=dict(kind="step", config=config, batch=batch, length=length,
                                    targets=targets, ignore=ignore))




def _training(name: str, steps: int = 20, **config: Any) -> Case:
    # fd=False: a training run has no single backward to difference (the step cases do).
    # bias=False (nanoGPT's recommended setting): with biases, c_attn's key bias has a gradient
    # of exactly 0 in exact arithmetic (adding q.b_k to a whole row of scores leaves its softmax
    # unchanged), and AdamW turns the rounding noise it gets instead into steps of size ~lr
    # (m / sqrt(v) ~ 1): after 20 float32 steps both twins' key biases sit ~2e-4 (normwise)
    # from the float64 run (measured: numpy 2.1e-4, torch 1.8e-4) -- an undefined direction,
    # not a disagreement. Without biases every trained quantity is defined.
    # eps=1e-5 (AdamW's default 1e-8): an element whose gradient is near 0 takes a step
    # m / (sqrt(v) + eps) of size ~1 whichever way float32 rounding tips the gradient; the twins
    # parted by 1.3e-4 (seed 14) and 2.7e-4 (seed 26) normwise after 20 steps that way. eps
    # bounds that sensitivity to lr / eps, as in the cnn's Adam case: over seeds 0-40 the
    # float32 twins then agree to 1.2e-5 and the built-in model to 7.6e-6, inside the default
    # 1e-4 (with 1e-8 the built-in witness needed 1e-3).
    # lr=1e-3: at 3e-3 some runs spiked (seeds 155, 167: a pre-clipping gradient norm of 27.8
    # at step 18, against ~1 otherwise), and at the spike the float32 gradient is ill-
    # conditioned: both twins 2-3e-4 from float64 and 5.4e-4 from each other in grad_norm.
    # At 1e-3 the largest norm over seeds 150-169 is 1.8 and the worst difference 1.4e-5.
    return Case(name, numpy=numpy_gpt.GPT, torch=torch_gpt.GPT, builtin=BuiltinGPT,
                prepare=None, fd=False,
                options=dict(kind="train", config={**SMALL, "bias": False, **config}, batch=4,
                             length=8,
                             steps=steps, weight_decay=0.1, lr=1e-3, betas=(0.9, 0.95),
                             eps=1e-5, warmup=4, grad_clip=1.0, perturb=False))


def _generation(name: str, temperature: float, top_k: int | None) -> Case:
    return Case(name, numpy=numpy_gpt.GPT, torch=torch_gpt.GPT, builtin=BuiltinGPT,
                prepare=None, fd=False, train=False,
                options=dict(kind="generate", config=SMALL, batch=3, length=3, new_tokens=10,
                             temperature=temperature, top_k=top_k))


BENCH_CONFIG = dict(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                    bias=False)


def _bench_work(trial: Trial) -> dict[str, Any]:
    """One AdamW training step (zero_grad, forward with targets, backward, step) of each
    contender, from the same weights on the same batch (B, T) = (16, 64); the models train on."""
    case = Case("bench", numpy=numpy_gpt.GPT, torch=torch_gpt.GPT, builtin=BuiltinGPT,
                prepare=None, options=dict(config=BENCH_CONFIG, perturb=False))
    options = dict(weight_decay=0.1, lr=3e-4, betas=(0.9, 0.95))
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    x, y = (rng.integers(0, BENCH_CONFIG["vocab_size"], (16, 64)) for _ in range(2))
    model = numpy_model(case, state, trial)
    numpy_optimizer = _optimizer(model, options)

    def numpy_step() -> float:
        numpy_optimizer.zero_grad()
        _, loss = model(x, y)
        model.backward(1.0)
        numpy_optimizer.step()
        return float(loss)

    def torch_step(cls: Any) -> Any:
        net = torch_model(case, state, trial, cls)
        optimizer = _optimizer(net, options)
        xs, ys = torch.from_numpy(x), torch.from_numpy(y)

        def step() -> float:
            optimizer.zero_grad(set_to_none=True)
            _, loss = net(xs, ys)
            loss.backward()
            optimizer.step()
            return loss.item()
        return step
    return {"numpy": numpy_step, "torch": torch_step(case.torch),
            "builtin": torch_step(case.builtin)}


CONCEPT = Concept(
    name="gpt",
    family="transformer",
    summary="nanoGPT's GPT (tied embeddings, pre-LN blocks, causal attention) by hand: one "
            "step, 20 training steps, sampling",
    compares="logits, loss; grads of every parameter, tied wte/lm_head included; per block "
             "ln_1, attention weights, merged heads, attention and MLP branches, ln_2, MLP "
             "hidden, and their grads: bias on/off, dropout 0 and 0.2 (shared masks), "
             "n_layer 1-4, T < block_size, ignored targets, no targets; 20 AdamW steps "
             "(nanoGPT's groups, warm-up + cosine, clipping at 1.0) on the built-in text: "
             "loss and grad norm per step, parameters at the end; generated tokens for "
             "temperature 1.0 / 0.8, top_k None / 5",
    witness="nn.Embedding, nn.LayerNorm, F.scaled_dot_product_attention, nn.GELU, nn.Linear; "
            "torch.optim.AdamW, LambdaLR, clip_grad_norm_",
    bench=Bench("one AdamW training step of a GPT (n_layer 4, n_head 4, n_embd 128, block_size "
                "64, vocab 65, no bias) on a batch (B, T) = (16, 64)", work=_bench_work),
    run=run,
    # Finite differences sample FD_SAMPLES of c_attn.bias's 3C elements; the key third has a
    # gradient of exactly 0 (q.b_k shifts a whole row of scores, which softmax ignores), so the
    # sample can hold key biases only (seed 623, dropout, h.1): then the analytic gradient is
    # rounding (4e-18), the central differences 0 or their own rounding. An fd floor 5x the
    # largest fd error on c_attn.bias over seeds 0-399 (1.2e-9 on gradients of ~0.2); a wrong
    # backward is off by the gradient's own size.
    tolerance={f"fd:grad.param.transformer.h.{layer}.attn.c_attn.bias":
               Tolerance(rtol=1e-6, atol=6e-9) for layer in range(4)},
    cases=[
        _step("1-layer", n_layer=1, fd=True),
        _step("2-layer"),
        _step("4-layer", n_layer=4),
        _step("no-bias", bias=False, fd=True),
        _step("dropout", dropout=0.2, fd=True),
        _step("3-layer-wider", n_layer=3, n_embd=32, n_head=4, batch=3),
        _step("short-sequence", length=5),
        _step("ignored-targets", ignore=True),
        _step("no-targets", targets=False),
        _training("train-20-steps"),
        _generation("generate-t1.0", 1.0, None),
        _generation("generate-t0.8", 0.8, None),
        _generation("generate-t1.0-top5", 1.0, 5),
        _generation("generate-t0.8-top5", 0.8, 5),
    ],
)


# --- plots: both twins' training loss ------------------------------------------------------------
PLOT_STEPS = 100


def loss_curves(dtype: str, seed: int = 0, steps: int = PLOT_STEPS,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Both twins' losses over ``steps`` steps of the training case's recipe."""
    base = CONCEPT.case("train-20-steps")
    case = Case(base.name, numpy=base.numpy, torch=base.torch, prepare=None, fd=False,
                options=dict(base.options, steps=steps))
    outcome = run_training(case, Trial(dtype, seed=seed, builtin=False, fd=False))
    names = [f"step{k}/loss" for k in range(1, steps + 1)]
    return (np.array([outcome.numpy[n] for n in names]),
            np.array([outcome.torch[n] for n in names]))


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """gpt_training_<dtype>.png: both loss curves overlaid and |numpy - torch| per step."""
    from compare.plots import plot_curves
    paths = []
    for dtype in ("float64", "float32"):
        by_numpy, by_torch = loss_curves(dtype, seed)
        paths.append(plot_curves(
            Path(directory) / f"gpt_training_{dtype}.png",
            f"GPT (2 layers, 16 wide) trained with AdamW + warm-up/cosine + clipping, seed {seed}",
            np.arange(1, len(by_numpy) + 1), by_numpy, by_torch,
            xlabel="training step", ylabel="cross-entropy loss", dtype=dtype))
    return paths


CONCEPT.extra_plots = extra_plots


# --- python -m compare.transformer.gpt --train -------------------------------------------------
def train_both(text: str, *, steps: int, n_layer: int, n_head: int, n_embd: int,
               block_size: int, batch_size: int, lr: float, seed: int, eval_every: int,
               sample_chars: int, out: Path, log: Any = print) -> dict[str, Any]:
    """Train both twins in float32 from one initialization on the same batches; print both
    losses as they go, sample from each, save the curves. Returns losses, samples, seconds."""
    vocab = CharVocab.from_text(text)
    data = np.array(vocab.encode(text), dtype=np.int64)
    train, val = split(data)
    if len(val) <= block_size:
        train = val = data
    config = dict(block_size=block_size, vocab_size=vocab.size, n_layer=n_layer, n_head=n_head,
                  n_embd=n_embd, dropout=0.0, bias=True)
    torch.manual_seed(seed)
    torch_model_ = torch_gpt.GPT(torch_gpt.GPTConfig(**config))
    numpy_model_ = numpy_gpt.GPT(numpy_gpt.GPTConfig(**config))
    numpy_model_.load_state_dict(torch_model_.state_dict())
    options = dict(weight_decay=0.1, lr=lr, betas=(0.9, 0.99))
    optimizers = {"numpy": _optimizer(numpy_model_, options),
                  "torch": _optimizer(torch_model_, options)}
    warmup = max(1, steps // 10)
    schedules = {
        "numpy": numpy_schedules.LambdaLR(optimizers["numpy"],
                                          numpy_schedules.warmup_cosine(warmup, steps)),
        "torch": torch_schedules.LambdaLR(optimizers["torch"],
                                          torch_schedules.warmup_cosine(warmup, steps))}
    rng = np.random.default_rng(seed)
    losses = {"numpy": [], "torch": []}
    seconds = {"numpy": 0.0, "torch": 0.0}
    log(f"{'step':>5}  {'loss numpy':>10}  {'loss torch':>10}  {'|diff|':>9}")
    for step in range(1, steps + 1):
        x, y = get_batch(train, block_size, batch_size, rng)
        started = time.perf_counter()
        optimizers["numpy"].zero_grad()
        _, loss = numpy_model_(x, y)
        numpy_model_.backward(1.0)
        numpy_clip.clip_grad_norm_(numpy_model_.parameters(), 1.0)
        optimizers["numpy"].step()
        schedules["numpy"].step()
        seconds["numpy"] += time.perf_counter() - started
        losses["numpy"].append(float(loss))
        started = time.perf_counter()
        optimizers["torch"].zero_grad(set_to_none=True)
        _, loss_t = torch_model_(torch.from_numpy(x), torch.from_numpy(y))
        loss_t.backward()
        torch_clip.clip_grad_norm_(torch_model_.parameters(), 1.0)
        optimizers["torch"].step()
        schedules["torch"].step()
        seconds["torch"] += time.perf_counter() - started
        losses["torch"].append(float(loss_t.detach()))
        if step % eval_every == 0 or step in (1, steps):
            log(f"{step:5d}  {losses['numpy'][-1]:10.4f}  {losses['torch'][-1]:10.4f}  "
                f"{abs(losses['numpy'][-1] - losses['torch'][-1]):9.2e}")
    # validation loss and samples from one prompt, with the same uniforms for both
    vx, vy = get_batch(val, block_size, batch_size, np.random.default_rng(seed + 1))
    numpy_model_.eval()
    torch_model_.eval()
    with torch.no_grad():
        val_loss = {"numpy": float(numpy_model_(vx, vy)[1]),
                    "torch": float(torch_model_(torch.from_numpy(vx), torch.from_numpy(vy))[1])}
    prompt = np.array([vocab.encode(text[0])], dtype=np.int64)
    uniforms = np.random.default_rng(seed + 2).random((1, sample_chars))
    samples = {
        "numpy": vocab.decode(numpy_model_.generate(prompt, sample_chars, temperature=0.8,
                                                    uniforms=uniforms)[0]),
        "torch": vocab.decode(torch_model_.generate(torch.from_numpy(prompt), sample_chars,
                                                    temperature=0.8,
                                                    uniforms=torch.from_numpy(uniforms))[0])}
    from compare.plots import plot_curves
    path = plot_curves(Path(out) / "gpt_train_loss.png",
                       f"character GPT ({n_layer} layers, {n_head} heads, {n_embd} wide, "
                       f"context {block_size}), batch {batch_size}",
                       np.arange(1, steps + 1), np.array(losses["numpy"]),
                       np.array(losses["torch"]), xlabel="training step",
                       ylabel="cross-entropy loss (batch mean)", dtype="float32")
    return dict(losses=losses, val_loss=val_loss, samples=samples, seconds=seconds, plot=path)


def train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m compare.transformer.gpt --train",
        description="Train a character-level GPT in both twins side by side (float32).")
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--data", type=Path, metavar="FILE",
                        help="a UTF-8 text file (default: the built-in generated text)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=25, help="print every N steps")
    parser.add_argument("--sample-chars", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="where to save the curves (default: the current directory)")
    args = parser.parse_args(argv)
    if min(args.steps, args.n_layer, args.n_head, args.n_embd, args.block_size,
           args.batch_size, args.threads, args.eval_every) < 1:
        parser.error("sizes, --steps, --threads and --eval-every must be positive")
    if args.n_embd % args.n_head:
        parser.error("--n-embd must be a multiple of --n-head")
    try:
        text = builtin_text() if args.data is None else load_text(args.data)
    except (OSError, ValueError) as error:
        print(f"gpt --train: error: {error}", file=sys.stderr)
        return 2
    if len(text) <= args.block_size + 1:
        print(f"gpt --train: error: the text has {len(text)} characters, fewer than "
              f"--block-size + 2", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    source = "the built-in text" if args.data is None else str(args.data)
    print(f"training a character GPT on {source} ({len(text):,} characters) in both twins: "
          f"{args.n_layer} layers, {args.n_head} heads, {args.n_embd} wide, context "
          f"{args.block_size}, batch {args.batch_size}, {args.steps} steps, AdamW lr "
          f"{args.lr:g} (warm-up + cosine), clipping 1.0, float32, seed {args.seed}; torch "
          f"threads {torch.get_num_threads()}")
    result = train_both(text, steps=args.steps, n_layer=args.n_layer, n_head=args.n_head,
                        n_embd=args.n_embd, block_size=args.block_size,
                        batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                        eval_every=args.eval_every, sample_chars=args.sample_chars,
                        out=args.out)
    for side in ("numpy", "torch"):
        print(f"\n--- sample from the {side} twin (temperature 0.8) ---\n{result['samples'][side]}")
    s, v = result["seconds"], result["val_loss"]
    print(f"\nvalidation loss: numpy {v['numpy']:.4f}, torch {v['torch']:.4f}")
    print(f"training time: numpy {s['numpy']:.1f} s, torch {s['torch']:.1f} s "
          f"(numpy / torch = {s['numpy'] / s['torch']:.2f})")
    print(f"wrote {result['plot']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--train" in argv:
        return train_main(argv)
    from compare.cli import main as cli_main
    return cli_main(["run", CONCEPT.name, *argv])


if __name__ == "__main__":
    raise SystemExit(main())
