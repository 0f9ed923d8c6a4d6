r"""The training loop by hand: Lightning's classic example without Lightning.

A model (``Classifier``: Linear -> ReLU -> [Dropout] -> Linear, cross-entropy loss, like a
LightningModule with its ``configure_optimizers``) and a ``Trainer`` that runs it:

    for epoch e = 0, 1, ..., max_epochs - 1:
        train: for each mini-batch B of the epoch's order (the last one may be smaller)
            logits = f(x_B);  L_B = CE(logits, y_B) = -(1/|B|) sum_i log softmax(logits_i)[y_i]
            zero_grad; backward: dL/dlogits = (softmax(logits) - onehot(y)) / |B|, then
            through the model; optimizer.step()
        train_loss_e = sum_B |B| L_B / n_train,   train_acc_e = #{argmax logits = y} / n_train
        validate (eval mode, no update): val_loss_e, val_acc_e on the whole validation set
        early stopping on val_loss: an improvement is val_loss_e < best - min_delta; it saves
        a checkpoint (best_epoch = e); after ``patience`` epochs without one, training stops
        (stopped_epoch = e)
    restore the best checkpoint; test: test_loss, test_acc

The epoch orders (one permutation of the training indices per epoch) are drawn once by the
caller and handed to the trainer, so two trainers see identical batches; so are dropout
masks (one per training step), when the model has dropout.

A checkpoint is a ``.npz`` file: ``epoch``, ``val_loss`` and the model's ``state_dict`` under
``state_dict.<name>`` (``save_checkpoint`` / ``load_checkpoint``); the torch twin writes the
same content with ``torch.save`` and reads it with ``torch.load(weights_only=True)``.
Optimizer state is not checkpointed: the checkpoint is for restoring the best weights, not for
resuming.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from numpy_impl.layers.activations import ReLU
from numpy_impl.layers.dropout import Dropout
from numpy_impl.layers.linear import Linear
from numpy_impl.layers.losses import CrossEntropyLoss
from numpy_impl.module import Module
from numpy_impl.training.optimizers import SGD, Adam, Optimizer

Data = tuple[np.ndarray, np.ndarray]  # (x (N, F) float, y (N,) int64 class indices)


class Classifier(Module):
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

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        h = self.act(self.fc1(x))                      # (B, H)
        if self.drop is not None:
            h = self.drop(h, mask)                     # (B, H) the given mask (True = keep)
        return self.fc2(h)                             # (B, C) logits

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad = self.fc2.backward(grad_output)          # dL/dh through fc2
        if self.drop is not None:
            grad = self.drop.backward(grad)            # through the mask
        return self.fc1.backward(self.act.backward(grad))  # through relu, then fc1

    def configure_optimizers(self) -> Optimizer:
        h = self.hparams
        if h["optimizer"] == "adam":
            return Adam(self.parameters(), lr=h["lr"], weight_decay=h["weight_decay"])
        return SGD(self.parameters(), lr=h["lr"], momentum=h["momentum"],
                   weight_decay=h["weight_decay"])


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """The fraction of rows whose largest logit is the target class."""
    return float(np.mean(np.argmax(logits, axis=1) == y))


def save_checkpoint(path: str | Path, model: Module, epoch: int, val_loss: float) -> Path:
    """Write epoch, val_loss and the model's state_dict to ``path`` (.npz)."""
    path = Path(path)
    arrays = {f"state_dict.{k}": v for k, v in model.state_dict().items()}
    np.savez(path, epoch=np.array(epoch), val_loss=np.array(val_loss), **arrays)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """{"epoch": int, "val_loss": float, "state_dict": {name: array}} from a .npz checkpoint."""
    with np.load(path) as stored:
        state = {k.removeprefix("state_dict."): stored[k] for k in stored.files
                 if k.startswith("state_dict.")}
        return {"epoch": int(stored["epoch"]), "val_loss": float(stored["val_loss"]),
                "state_dict": state}


class Trainer:
    """Mini-batch epochs, validation, early stopping on val_loss, best-checkpoint restore."""

    def __init__(self, max_epochs: int = 10, batch_size: int = 16, patience: int = 3,
                 min_delta: float = 0.0, checkpoint_dir: str | Path = ".") -> None:
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.min_delta = float(min_delta)
        self.checkpoint_path = Path(checkpoint_dir) / "best.npz"
        self.history: dict[str, list[float]] = {}
        self.best_epoch = -1
        self.stopped_epoch = -1                        # -1: ran every epoch

    def evaluate(self, model: Classifier, data: Data) -> tuple[float, float]:
        """(mean loss, accuracy) in eval mode; no gradient is computed."""
        x, y = data
        model.eval()
        logits = model(x)
        return float(model.loss_fn(logits, y)), accuracy(logits, y)

    def fit(self, model: Classifier, train: Data, val: Data, orders: np.ndarray,
            masks: Sequence[np.ndarray] | None = None) -> dict[str, list[float]]:
        """Train on ``train`` in the epochs' ``orders`` (max_epochs, n_train); dropout takes
        ``masks[step]``. Returns the history; the model ends with the best checkpoint's weights."""
        x, y = train
        optimizer = model.configure_optimizers()
        self.history = {k: [] for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
        best, wait, step = np.inf, 0, 0
        for epoch in range(self.max_epochs):
            model.train()
            total_loss, correct = 0.0, 0.0
            for start in range(0, len(y), self.batch_size):
                batch = orders[epoch, start:start + self.batch_size]
                xb, yb = x[batch], y[batch]                          # (B, F), (B,)
                optimizer.zero_grad()
                logits = model(xb) if masks is None else model(xb, masks[step])
                loss = model.loss_fn(logits, yb)                     # L_B
                one = np.ones((), dtype=logits.dtype)                # dL/dL
                model.backward(model.loss_fn.backward(one))          # dL/dlogits, then the model
                optimizer.step()
                total_loss += float(loss) * len(batch)               # sum_B |B| L_B
                correct += accuracy(logits, yb) * len(batch)
                step += 1
            val_loss, val_acc = self.evaluate(model, val)
            self._log(total_loss / len(y), correct / len(y), val_loss, val_acc)
            if val_loss < best - self.min_delta:                     # an improvement: keep it
                best, wait, self.best_epoch = val_loss, 0, epoch
                save_checkpoint(self.checkpoint_path, model, epoch, val_loss)
            else:
                wait += 1
                if wait >= self.patience:                            # early stopping
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
