r"""The training loop in PyTorch: Lightning's classic example without Lightning.

    for epoch e: train on mini-batches of the epoch's order (zero_grad, loss.backward(),
                 optimizer.step()), validate under torch.no_grad() in eval mode,
                 early-stop on val_loss (improvement: val_loss < best - min_delta; stop after
                 ``patience`` epochs without one), checkpoint the best epoch
    restore the best checkpoint; test

train_loss_e = sum_B |B| L_B / n_train; accuracies count argmax(logits) = y. Epoch orders and
dropout masks are given by the caller, as to the NumPy twin. Checkpoints are written with
``torch.save`` ({"epoch", "val_loss", "state_dict"}) and read with
``torch.load(weights_only=True)``: tensors, ints and floats only, no pickled code.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torch_impl.layers.activations import ReLU
from torch_impl.layers.dropout import Dropout
from torch_impl.layers.linear import Linear
from torch_impl.layers.losses import CrossEntropyLoss

Data = tuple[torch.Tensor, torch.Tensor]


class Classifier(nn.Module):
    """logits = fc2(dropout(relu(fc1(x)))); ``configure_optimizers`` as a LightningModule."""

    def __init__(self, in_features: int, hidden: int, classes: int, dropout: float = 0.0,
                 optimizer: str = "sgd", lr: float = 0.1, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__()
        self.fc1 = Linear(in_features, hidden)
        self.act = ReLU()
        self.drop = Dropout(dropout) if dropout > 0 else None
        self.fc2 = Linear(hidden, classes)
        self.loss_fn = CrossEntropyLoss()
        self.hparams = dict(optimizer=optimizer, lr=lr, momentum=momentum,
                            weight_decay=weight_decay)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.act(self.fc1(x))                      # (B, H)
        if self.drop is not None:
            h = self.drop(h, mask)
        return self.fc2(h)                             # (B, C)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        h = self.hparams
        if h["optimizer"] == "adam":
            return torch.optim.Adam(self.parameters(), lr=h["lr"],
                                    weight_decay=h["weight_decay"])
        return torch.optim.SGD(self.parameters(), lr=h["lr"], momentum=h["momentum"],
                               weight_decay=h["weight_decay"])


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(dim=1) == y).double().mean().item()


def save_checkpoint(path: str | Path, model: nn.Module, epoch: int, val_loss: float) -> Path:
    path = Path(path)
    torch.save({"epoch": epoch, "val_loss": val_loss, "state_dict": model.state_dict()}, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)       # no arbitrary unpickling


class Trainer:
    """Mini-batch epochs, validation, early stopping on val_loss, best-checkpoint restore."""

    def __init__(self, max_epochs: int = 10, batch_size: int = 16, patience: int = 3,
                 min_delta: float = 0.0, checkpoint_dir: str | Path = ".") -> None:
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.min_delta = float(min_delta)
        self.checkpoint_path = Path(checkpoint_dir) / "best.pt"
        self.history: dict[str, list[float]] = {}
        self.best_epoch = -1
        self.stopped_epoch = -1

    @torch.no_grad()
    def evaluate(self, model: Classifier, data: Data) -> tuple[float, float]:
        x, y = data
        model.eval()
        logits = model(x)
        return model.loss_fn(logits, y).item(), accuracy(logits, y)

    def fit(self, model: Classifier, train: Data, val: Data, orders: torch.Tensor,
            masks: Sequence[torch.Tensor] | None = None) -> dict[str, list[float]]:
        x, y = train
        optimizer = model.configure_optimizers()
        self.history = {k: [] for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
        best, wait, step = float("inf"), 0, 0
        for epoch in range(self.max_epochs):
            model.train()
            total_loss, correct = 0.0, 0.0
            for start in range(0, len(y), self.batch_size):
                batch = orders[epoch, start:start + self.batch_size]
                xb, yb = x[batch], y[batch]
                optimizer.zero_grad()
                logits = model(xb) if masks is None else model(xb, masks[step])
                loss = model.loss_fn(logits, yb)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(batch)
                correct += accuracy(logits.detach(), yb) * len(batch)
                step += 1
            val_loss, val_acc = self.evaluate(model, val)
            self._log(total_loss / len(y), correct / len(y), val_loss, val_acc)
            if val_loss < best - self.min_delta:
                best, wait, self.best_epoch = val_loss, 0, epoch
                save_checkpoint(self.checkpoint_path, model, epoch, val_loss)
            else:
                wait += 1
                if wait >= self.patience:
                    self.stopped_epoch = epoch
                    break
        model.load_state_dict(load_checkpoint(self.checkpoint_path)["state_dict"])
        return self.history

    def test(self, model: Classifier, data: Data) -> dict[str, float]:
        loss, acc = self.evaluate(model, data)
        return {"test_loss": loss, "test_acc": acc}

    def _log(self, train_loss: float, train_acc: float, val_loss: float, val_acc: float) -> None:
        for name, value in (("train_loss", train_loss), ("train_acc", train_acc),
                            ("val_loss", val_loss), ("val_acc", val_acc)):
            self.history[name].append(value)
