"""A LightningModule shaped like DESED_task's ``SEDTask4`` (recipes/dcase2023_task4_baseline
and dcase2024_task4_baseline, ``local/sed_trainer*.py``), for pytorch_lightning 1.x: the
tests of docs/dcase.md run greensed's callback beside it, in a child process whose
``sys.path`` holds an older pytorch_lightning (tests/test_lightning_legacy.py).

What it keeps of SEDTask4: ``hparams.update(config)``; a student and an EMA teacher
(updated in ``on_before_zero_grad``); ``[opt], [scheduler]`` with a per-step scheduler
dict; per-step losses logged from ``training_step``; the objective computed in
``validation_epoch_end`` and logged as ``val/obj_metric`` (scripted here: the i-th
validation logs ``obj_metric[i]``); the models' state in ``on_save_checkpoint``; and
``test/teacher/psds1|2/sed_scores_eval`` logged at the end of ``trainer.test``.
"""

from __future__ import annotations

import copy

import pytorch_lightning as pl
import torch


def dataset(n: int = 8) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(n, 4, generator=g),
                                          torch.rand(n, 2, generator=g).round())


class SEDTask4(pl.LightningModule):
    def __init__(self, hparams: dict, obj_metric: list[float], psds: tuple[float, float],
                 opt=None, train_data=None, valid_data=None, test_data=None,
                 scheduler=None) -> None:
        super().__init__()
        self.hparams.update(hparams)
        self.sed_student = torch.nn.Linear(4, 2)
        self.sed_teacher = copy.deepcopy(self.sed_student)
        self.obj_metric, self.psds, self.validations = obj_metric, psds, 0
        self.opt = opt or torch.optim.Adam(self.sed_student.parameters(), 1e-3)
        self.scheduler = scheduler or {
            "scheduler": torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: 1.0),
            "interval": "step"}
        self.train_data, self.valid_data = train_data or dataset(), valid_data or dataset()
        self.test_data = test_data or dataset()

    def lr_scheduler_step(self, scheduler, optimizer_idx, metric):
        scheduler.step()

    def training_step(self, batch, batch_indx):
        x, y = batch
        loss_strong = torch.nn.functional.binary_cross_entropy_with_logits(
            self.sed_student(x), y)
        self.log("train/student/loss_strong", loss_strong)
        self.log("train/lr", self.opt.param_groups[-1]["lr"], prog_bar=True)
        return loss_strong

    def on_before_zero_grad(self, *args, **kwargs):
        with torch.no_grad():  # the EMA teacher
            for t, s in zip(self.sed_teacher.parameters(), self.sed_student.parameters(),
                            strict=True):
                t.mul_(0.999).add_(s, alpha=0.001)

    def validation_step(self, batch, batch_indx):
        x, y = batch
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self.sed_teacher(x), y)
        self.log("val/synth/teacher/loss_strong", loss)

    def validation_epoch_end(self, outputs):
        obj_metric = torch.tensor(self.obj_metric[min(self.validations,
                                                      len(self.obj_metric) - 1)])
        self.validations += 1
        self.log("val/obj_metric", obj_metric, prog_bar=True)
        self.log("val/teacher/intersection_f1_macro_thres05/sed_scores_eval", obj_metric / 2)
        return obj_metric

    def on_save_checkpoint(self, checkpoint):
        checkpoint["sed_student"] = self.sed_student.state_dict()
        checkpoint["sed_teacher"] = self.sed_teacher.state_dict()
        return checkpoint

    def test_step(self, batch, batch_indx):
        x, y = batch
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self.sed_teacher(x), y)
        self.log("test/teacher/loss_strong", loss)

    def on_test_epoch_end(self):
        self.log("test/teacher/psds1/sed_scores_eval", self.psds[0])
        self.log("test/teacher/psds2/sed_scores_eval", self.psds[1])

    def configure_optimizers(self):
        return [self.opt], [self.scheduler]

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train_data, batch_size=4)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.valid_data, batch_size=4)

    def test_dataloader(self):
        return torch.utils.data.DataLoader(self.test_data, batch_size=4)
