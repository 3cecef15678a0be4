"""The training state a checkpoint holds: models, optimizer, step and generators.

``state_dict`` is plain values and tensors; ``load_state_dict`` reads keys that
later versions added with ``.get`` (so every older checkpoint still loads) and
refuses a checkpoint of a newer schema with one line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from greensed import config
from greensed.data.features import n_frames
from greensed.data.spec import CLASSES, out_frame_s
from greensed.errors import GreensedError
from greensed.model.factory import build_model, time_pooling
from greensed.model.teacher import make_teacher
from greensed.runlog import SCHEMA_VERSION
from greensed.train.group import Group


def make_model(cfg: config.RunConfig) -> nn.Module:
    """The run's network: ``[model] factory``'s, checked, or the baseline CRNN."""
    return build_model(cfg, n_classes=len(CLASSES), n_frames=n_frames(cfg.features))


def model_time_pooling(cfg: config.RunConfig) -> int:
    """T / T' of the run's network (4 for the baseline CRNN), without building it."""
    return time_pooling(cfg, n_classes=len(CLASSES))


def model_frame_s(cfg: config.RunConfig) -> float:
    """Seconds per output frame of the run's network (0.064 for the baseline CRNN)."""
    return out_frame_s(cfg.features, model_time_pooling(cfg))


@dataclass
class TrainState:
    student: nn.Module
    teacher: nn.Module
    opt: torch.optim.Optimizer
    # Host generator of mixup decisions and lambdas: every rank draws the same.
    rng: np.random.Generator
    device: torch.device
    # What the step calls: the student itself or its DDP wrapper (gradients averaged
    # over ranks in backward, so one optimizer step sees the global batch), and the
    # teacher; with train.compile, compiled wrappers of them (shared parameters).
    # Validation, EMA and checkpoints use the eager modules, so eval mode and other
    # batch shapes trigger no recompilation.
    step_student: nn.Module
    step_teacher: nn.Module
    step: int = 0

    @classmethod
    def create(cls, cfg: config.RunConfig, device: torch.device, group: Group) -> TrainState:
        tc = cfg.train
        torch.manual_seed(tc.seed)
        student = make_model(cfg).to(device)
        teacher = make_teacher(student)
        if group.world_size > 1:
            # Same initial weights on every rank (above); its own dropout masks (here).
            seq = np.random.SeedSequence([tc.seed, group.rank])
            torch.manual_seed(int(seq.generate_state(1)[0]))
        step_student, step_teacher = group.wrap(student), teacher
        if tc.compile:
            step_student, step_teacher = torch.compile(step_student), torch.compile(teacher)
        opt = torch.optim.Adam(student.parameters(), lr=tc.lr, betas=(0.9, 0.999), foreach=True)
        return cls(student, teacher, opt, np.random.default_rng(tc.seed), device,
                   step_student, step_teacher)

    def train_mode(self) -> None:
        self.student.train()
        self.teacher.train()  # the baseline runs the teacher in train mode, without grads

    def rng_states(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return (torch.get_rng_state(),
                torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [])

    def state_dict(self, *, epoch: int, cumulative_kwh: float | None, config_toml: str,
                   rank_rngs: list[Any] | None = None) -> dict[str, Any]:
        torch_rng, cuda_rng = self.rng_states()
        return {"student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "optimizer": self.opt.state_dict(), "step": self.step, "epoch": epoch,
                "torch_rng": torch_rng, "cuda_rng": cuda_rng,
                "numpy_rng": self.rng.bit_generator.state, "config": config_toml,
                "cumulative_kwh": cumulative_kwh, "schema": SCHEMA_VERSION,
                "rank_rngs": rank_rngs or []}

    def load_state_dict(self, ck: dict[str, Any], *, where: str, group: Group,
                        seed: int) -> int:
        """Weights, optimizer, step and generators; returns the epochs the state holds."""
        schema = ck.get("schema", 1)
        if schema > SCHEMA_VERSION:
            raise GreensedError(f"{where}: checkpoint schema {schema} is newer than this "
                                f"greensed understands ({SCHEMA_VERSION}); upgrade greensed")
        try:
            self.student.load_state_dict(ck["student"])
            self.teacher.load_state_dict(ck["teacher"])
            self.opt.load_state_dict(ck["optimizer"])
            self.step = int(ck["step"])
            epochs = int(ck["epoch"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise GreensedError(f"{where}: not a greensed training state ({exc})") from None
        torch_rng, cuda_rng = ck.get("torch_rng"), ck.get("cuda_rng")
        ranks = ck.get("rank_rngs") or []
        if group.world_size > 1:
            if len(ranks) == group.world_size:  # each rank's own dropout stream
                torch_rng, cuda_rng = ranks[group.rank]
            else:  # another number of ranks: distinct streams, from the seed and the step
                torch_rng, cuda_rng = None, None
                torch.manual_seed(int(np.random.SeedSequence(
                    [seed, group.rank, self.step]).generate_state(1)[0]))
        if torch_rng is not None:
            torch.set_rng_state(torch_rng)
        if cuda_rng and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(cuda_rng)
        if ck.get("numpy_rng") is not None:
            self.rng.bit_generator.state = ck["numpy_rng"]
        return epochs

    def model_sha256(self) -> str:
        """SHA-256 of the student and teacher weights: equal on every rank of a group."""
        h = hashlib.sha256()
        for model in (self.student, self.teacher):
            for t in model.state_dict().values():
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
