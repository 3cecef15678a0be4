"""docs/dcase.md's lines in a script shaped like DESED_task's ``single_run``
(recipes/dcase2024_task4_baseline/train_pretrained.py), run as a child process by
tests/test_lightning_legacy.py with an older pytorch_lightning first on ``sys.path``.

    python tests/desed_run.py DOC LOG_DIR OUT_JSON

Executes the doc's python blocks where the doc says (the import at the top, the
callback after the recipe's ``callbacks`` list, the PSDS after ``trainer.test``),
with the recipe's TensorBoardLogger, ``EarlyStopping`` and ``ModelCheckpoint``, and
``validation_interval`` 10 as in ``confs/pretrained.yaml``; writes what the test
checks to OUT_JSON.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

# Test environment only: pytorch_lightning < 2 reads np.Inf, which numpy 2 removed.
if not hasattr(np, "Inf"):
    np.Inf = np.inf

import pytorch_lightning as pl  # noqa: E402  (after the shim)
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402
from pytorch_lightning.loggers import TensorBoardLogger  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from desed_shaped import SEDTask4  # noqa: E402

# The i-th validation's objective (every 10th epoch): best at the 2nd, then 3 without
# a better one, so the doc's plateau:patience=30 stops at epoch 50.
OBJ_METRIC = [0.9, 1.2, 1.1, 1.15, 1.0, 1.3]
PSDS = (0.48, 0.71)


def doc_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)


HOOKS = ("on_train_start", "on_train_epoch_start", "on_validation_start",
         "on_validation_end", "on_train_epoch_end", "on_train_end")


class Hooks(pl.Callback):
    """The order of the hooks greensed's callback relies on, under this Lightning."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattribute__(self, name: str):
        if name in HOOKS:
            calls = object.__getattribute__(self, "calls")
            return lambda trainer, *_: calls.append(name)
        return object.__getattribute__(self, name)


def single_run(config: dict, log_dir: str, blocks: list[str], ns: dict) -> dict:
    """The recipe's single_run, cut to what touches the trainer."""
    config.update({"log_dir": log_dir})
    logger = TensorBoardLogger(os.path.dirname(config["log_dir"]),
                               config["log_dir"].split("/")[-1])
    callbacks = [
        EarlyStopping(monitor="val/obj_metric", patience=config["training"]["early_stop_patience"],
                      verbose=True, mode="max"),
        ModelCheckpoint(logger.log_dir, monitor="val/obj_metric", save_top_k=1, mode="max",
                        save_last=True),
    ]
    ns.update(config=config, log_dir=log_dir, logger=logger, callbacks=callbacks)
    exec(blocks[1], ns)  # docs/dcase.md: the callback
    hooks = Hooks()
    callbacks.append(hooks)
    desed_training = SEDTask4(config, OBJ_METRIC, PSDS)
    trainer = pl.Trainer(max_epochs=config["training"]["n_epochs"], callbacks=callbacks,
                         accelerator="cpu", devices=1, logger=logger,
                         check_val_every_n_epoch=config["training"]["validation_interval"],
                         num_sanity_val_steps=0, log_every_n_steps=1,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(desed_training)
    stopped_epoch = trainer.current_epoch
    best_path = trainer.checkpoint_callback.best_model_path
    test_state_dict = torch.load(best_path, weights_only=False)["state_dict"]
    desed_training.load_state_dict(test_state_dict)
    results = trainer.test(desed_training)[0]
    ns.update(trainer=trainer, results=results)
    exec(blocks[2], ns)  # docs/dcase.md: the PSDS for greensed dcase
    cb = next(c for c in callbacks if isinstance(c, ns["EnergyEarlyStopping"]))
    return {"lightning": pl.__version__, "current_epoch": stopped_epoch,
            "run_dir": str(ns["run_dir"]), "best_model_path": best_path,
            "callback_class": type(cb).__name__, "hooks": hooks.calls,
            "should_stop": trainer.should_stop}


def main() -> None:
    doc, log_dir, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    blocks = doc_blocks(doc)
    assert len(blocks) == 3, f"{doc}: expected 3 python blocks, found {len(blocks)}"
    ns: dict = {"os": os, "__name__": "train_pretrained"}  # os: the recipe imports it
    exec(blocks[0], ns)  # docs/dcase.md: the import at the top
    config = {"training": {"batch_size": [12, 6, 6, 12, 24], "seed": 42, "n_epochs": 300,
                           "early_stop_patience": 200, "validation_interval": 10}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and log steps
        out.write_text(json.dumps(single_run(config, log_dir, blocks, ns)))


if __name__ == "__main__":
    main()
