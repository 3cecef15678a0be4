"""A tiny LightningModule for tests/test_lightning.py, in a module of its own: spawned
ranks import it by name, and test collection does not import Lightning."""

from __future__ import annotations

import lightning.pytorch as pl
import torch


def loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(8, 4, generator=g),
                                          torch.randn(8, generator=g))
    return torch.utils.data.DataLoader(data, batch_size=4)


class TinyCore:
    """A linear model whose logged ``val_f1`` at epoch i is ``f1[i]`` (scripted); a
    LightningModule with either package's (``Tiny``: lightning.pytorch's)."""

    def __init__(self, f1: list[float]) -> None:
        super().__init__()
        self.f1, self.net = f1, torch.nn.Linear(4, 1)

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x).squeeze(1), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch, _):
        f1 = self.f1[min(self.current_epoch, len(self.f1) - 1)]
        self.log("val_f1", f1, on_step=False, on_epoch=True, sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return loader()

    def val_dataloader(self):
        return loader()


class Tiny(TinyCore, pl.LightningModule):
    pass


HOOKS = ("on_train_start", "on_train_epoch_start", "on_validation_start", "on_validation_end",
         "on_train_epoch_end", "on_train_end")


class Hooks(pl.Callback):
    """Records the order of the hooks greensed's callback relies on."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattribute__(self, name: str):
        if name in HOOKS:
            calls = object.__getattribute__(self, "calls")
            return lambda trainer, *_: calls.append(
                name + (" (sanity)" if trainer.sanity_checking else ""))
        return object.__getattribute__(self, name)
