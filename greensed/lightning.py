"""greensed's early stopping as a Lightning callback (``pip install greensed[lightning]``)::

    from greensed.lightning import EnergyEarlyStopping

    trainer = lightning.Trainer(callbacks=[EnergyEarlyStopping(
        stop=["plateau:patience=2", "budget:kwh=0.5"], monitor="val_f1",
        meter="auto", run_dir="runs/x")])

One implementation, :class:`EnergyEarlyStopping`, for each Lightning it runs
under: ``lightning.pytorch`` (2.x) and ``pytorch_lightning`` (1.9 and 2.x), whose
trainers accept only their own package's ``Callback``. Constructing it returns an
instance of a thin adapter, ``EnergyEarlyStopping`` plus the ``Callback`` of the
package the calling code imported (of both, when it imported both); no hook differs.
:func:`callback_class` names the package explicitly.

Each epoch is one meter window, from ``on_train_epoch_start`` to
``on_train_epoch_end``. Lightning (1.9 and 2.x, ``fit_loop``/``training_epoch_loop``)
runs an epoch's validation inside the training epoch: after its last training batch,
``on_validation_start`` ... ``on_validation_end``, and only then
``on_train_epoch_end``; so the window holds training and validation, as a greensed
epoch does. The sanity-check validation runs before ``on_train_start``, outside
every window. At ``on_train_epoch_end`` (callbacks are called before the
LightningModule's own ``on_train_epoch_end``: log the monitored metric in
validation, as DESED_task does from ``validation_epoch_end``), the epoch's record
(every scalar of ``trainer.callback_metrics``) goes to greensed's run log in
``run_dir``, the policies decide from the history, the decision is agreed across
ranks with the strategy's ``reduce_boolean_decision`` and sets ``trainer.should_stop``;
``energy/epoch_kwh``, ``energy/cumulative_kwh`` and ``energy/avg_power_w`` are
logged with ``pl_module.log`` to the trainer's loggers. ``summary.json`` is written
at ``on_train_end``, or at ``on_exception`` (interrupted, failed). See
docs/library.md.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # the hooks' types; at run time, whichever Lightning the user's is
    import lightning.pytorch as pl

from greensed.energy import Meter, Reading, make_meter
from greensed.energy.base import UNAVAILABLE, MeterWindow
from greensed.energy.carbon import CarbonIntensity
from greensed.energy.ranks import ReducedMeter, rank_meter
from greensed.errors import ConfigError
from greensed.library import RunRecorder, default_device
from greensed.library.energy import resolve_carbon
from greensed.numbers import count
from greensed.stopping import CONTINUE, Decision, Policy, make_policy
from greensed.stopping.base import watched_metrics, watching
from greensed.stopping.params import DEFAULT_METRIC

# The epoch cap when neither the callback nor the trainer has one (max_epochs=-1).
NO_CAP = 10**9
# The fill-in metric of a callback without monitor: a policy left watching it names none.
_UNNAMED = "<monitor>"
ENERGY_PREFIX = "energy/"
# The packages whose trainers take the callback (the first preferred when the calling
# code imported neither), and each one's adapter class.
PACKAGES = {"lightning.pytorch": "LightningEnergyEarlyStopping",
            "pytorch_lightning": "PLEnergyEarlyStopping"}
BOTH = "AnyLightningEnergyEarlyStopping"


class EnergyEarlyStopping:
    """Measure each epoch with greensed's meters, write greensed's run log and stop
    training with greensed's policies.

    ``stop``: policy specs as ``greensed replay --policy`` takes them
    (``"plateau:patience=2"``, ``"budget:kwh=0.5"``, ``"target:f1=0.6"``, ...; any
    of them stops); the epoch cap is the trainer's ``max_epochs`` (or ``max_epochs``).
    ``monitor``/``mode``: the logged metric the policies watch, as in Lightning's
    ``EarlyStopping`` (``strict``: a missing one is an error). ``meter``: a spec as
    ``greensed train --meter`` takes (auto, codecarbon, nvml, constant:W, none) or a
    :class:`greensed.energy.Meter`. ``run_dir``: the run directory (default
    ``<trainer.log_dir>/greensed``). ``batch_size``, ``seed``, ``recipe`` label the
    run for ``greensed report --by``. ``log_energy``: log the energy scalars.
    ``carbon_intensity`` (g CO2eq/kWh), else ``country_iso_code`` (and ``region``):
    the grid whose CO2 the run log counts; without either, CodeCarbon's world average.

    ``EnergyEarlyStopping(...)`` is an instance of the adapter for the Lightning the
    calling code imported (:func:`callback_class`), so that its trainer takes it.
    """

    lightning: ClassVar[tuple[str, ...]] = ()  # the adapter's packages
    _info: ClassVar[Callable[[str], None]] = staticmethod(print)  # its rank_zero_info

    def __new__(cls, *args: Any, **kwargs: Any) -> EnergyEarlyStopping:
        if not cls.lightning:  # the core itself: pick the adapter
            cls = callback_class()
        return super().__new__(cls)

    def __init__(self, stop: Sequence[str] | str = (), monitor: str | None = None,
                 mode: str = "max", meter: str | Meter = "auto",
                 run_dir: str | Path | None = None, *, max_epochs: int | None = None,
                 strict: bool = True, tracking_mode: str = "machine",
                 batch_size: int | None = None, seed: int | None = None,
                 recipe: str = "", log_energy: bool = True, verbose: bool = True,
                 carbon_intensity: float | CarbonIntensity | None = None,
                 country_iso_code: str | None = None, region: str | None = None) -> None:
        super().__init__()
        self.stop = [stop] if isinstance(stop, str) else list(stop)
        self.monitor, self.mode, self.meter_spec = monitor, mode, meter
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.max_epochs, self.strict, self.tracking_mode = max_epochs, strict, tracking_mode
        self.batch_size, self.seed, self.recipe = batch_size, seed, recipe
        self.log_energy, self.verbose = log_energy, verbose
        # Checked now, so that a bad spec fails before any training.
        self._policy(max_epochs or NO_CAP)
        self.carbon = resolve_carbon(carbon_intensity, country_iso_code, region)  # once
        if isinstance(meter, str):
            make_meter(meter, device="cpu", tracking_mode=tracking_mode)
        self.recorder: RunRecorder | None = None
        self.decision: Decision = CONTINUE
        self._meter: Meter | None = None
        self._window: MeterWindow | None = None
        self._unrecorded: Reading | None = None  # an epoch's reading not yet in the log
        self._val_s = 0.0
        self._val_t0: float | None = None
        self._resumed = False

    # -- set-up
    def _policy(self, cap: int) -> Policy:
        policy = make_policy(self.stop, max_epochs=cap, metric=self.monitor or _UNNAMED,
                             mode=self.mode)
        # Without monitor, a policy that names no metric of its own cannot know which (one
        # that names it, as "default" does, may watch any, greensed's default metric too).
        unnamed = [w.name for w in watching(policy) if w.watches == _UNNAMED]
        if unnamed:
            raise ConfigError(f"EnergyEarlyStopping: stop policy '{unnamed[0]}' watches a "
                              "metric; name the logged one with monitor=... (e.g. 'val_f1')")
        return policy

    def _cap(self, trainer: pl.Trainer) -> int:
        if self.max_epochs:
            return self.max_epochs
        n = trainer.max_epochs
        return n if n is not None and n > 0 else NO_CAP

    def _make_meter(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Meter:
        device = str(pl_module.device)
        m = self.meter_spec if not isinstance(self.meter_spec, str) else make_meter(
            self.meter_spec, device=device, tracking_mode=self.tracking_mode)
        if trainer.world_size == 1:
            return m
        import torch.distributed as dist

        def gather(reading: Reading) -> list[Reading]:
            out: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(out, reading)
            return out

        # The energy scalars are logged by rank 0 alone (rank_zero_only: no sync needed,
        # every window already holds the ranks' sum): Lightning's advice to sync is moot.
        warnings.filterwarnings("ignore", message=rf".*self\.log\('{ENERGY_PREFIX}",
                                category=UserWarning)
        part = rank_meter(m, measures_node=trainer.local_rank == 0)
        return ReducedMeter(part, gather, f"{m.name} x{trainer.world_size} ranks")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        cap = self._cap(trainer)
        self.policy = self._policy(cap)
        self._meter = self._make_meter(trainer, pl_module)
        methods = self._meter.describe()
        if self.policy.requires_energy and methods and all(
                m == UNAVAILABLE for m in methods.values()):
            raise ConfigError(f"EnergyEarlyStopping: stop {self.stop} needs energy readings "
                              f"but meter '{self._meter.name}' is unavailable")
        if trainer.is_global_zero:
            run_dir = self.run_dir or Path(trainer.log_dir or trainer.default_root_dir
                                           ) / "greensed"
            self.run_dir = Path(run_dir)
            # 1.9 wraps the user's loader in a CombinedLoader
            loader = getattr(trainer.train_dataloader, "loaders", trainer.train_dataloader)
            recorder = RunRecorder(
                run_dir,
                metric=(watched_metrics(self.policy) or [self.monitor or DEFAULT_METRIC])[0],
                mode=self.mode,
                policy=self.policy, max_epochs=cap if cap != NO_CAP else None,
                batch_size=self.batch_size or getattr(loader, "batch_size", None),
                seed=self.seed, recipe=self.recipe, trainer="lightning",
                stop=self.stop, device=device_of(pl_module), carbon_intensity=self.carbon,
                resume=self._resumed, held_epochs=trainer.current_epoch if self._resumed
                else None)
            self.recorder = recorder.start()  # refused (a used run_dir): nothing written
        self._meter.start()
        self._begin()  # a resumed epoch may not call on_train_epoch_start

    # -- the epoch window
    def _begin(self) -> None:
        if self._window is None and self._meter is not None:
            if self.recorder is not None:
                self.recorder.begin()  # the heartbeat of the epoch in flight
            self._window = MeterWindow(self._meter).__enter__()
            self._val_s, self._val_t0 = 0.0, None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_t0 = time.monotonic()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self._val_t0 is not None:
            self._val_s += time.monotonic() - self._val_t0
            self._val_t0 = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._window is None:
            return
        reading, self._window = self._window.end(), None  # a collective on several ranks
        self._unrecorded = reading  # until its record is written (see on_exception)
        # On every rank: reading callback_metrics syncs the sync_dist ones (a collective).
        metrics = self._metrics(trainer)
        stop = self._record(pl_module, reading, metrics, trainer) \
            if self.recorder is not None else False
        self._unrecorded = None
        stop = _any_rank(trainer, stop)
        if stop and self.verbose and trainer.is_global_zero:
            self._info(f"EnergyEarlyStopping: {self.decision.reason}")
        trainer.should_stop = trainer.should_stop or stop

    def _record(self, pl_module: pl.LightningModule, reading: Reading,
                metrics: dict[str, Any], trainer: pl.Trainer) -> bool:
        """Rank 0: the epoch's record to the run log, the energy scalars to the loggers;
        whether the policies stop."""
        assert self.recorder is not None
        record = self.recorder.add(
            len(self.recorder.history) + 1, metrics, reading,
            steps=trainer.global_step, lr=_lr(trainer),
            train_s=max(reading.duration_s - self._val_s, 0.0), val_s=self._val_s)
        if self.log_energy:
            values = {"epoch_kwh": record.energy_kwh, "cumulative_kwh": record.cumulative_kwh,
                      "avg_power_w": record.avg_power_w}
            for name, value in values.items():
                if value is not None and math.isfinite(value):
                    pl_module.log(ENERGY_PREFIX + name, float(value), on_step=False,
                                  on_epoch=True, rank_zero_only=True)
        self.decision = self.recorder.decide()
        return self.decision.stop

    def _metrics(self, trainer: pl.Trainer) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in trainer.callback_metrics.items():
            if key.startswith(ENERGY_PREFIX):
                continue
            try:
                out[key] = float(value)
            except (TypeError, ValueError, RuntimeError):  # not a scalar
                continue
        missing = [m for m in watched_metrics(self.policy) if m not in out]
        if missing and self.strict:
            raise ConfigError(
                f"EnergyEarlyStopping: monitor={missing[0]!r} is not among the logged "
                f"metrics ({', '.join(sorted(out)) or 'none'}); log it in validation or set "
                "strict=False")
        return out

    # -- the end
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._window is not None:  # begun for an epoch that never ran
            self._window.abandon()
            self._window = None
        if self.recorder is not None and self.recorder.summary is None:
            summary = self.recorder.finish(self.decision if self.decision.stop else None)
            if self.verbose:
                self._info(f"EnergyEarlyStopping: {summary.stop_reason}; "
                           f"{_kwh(summary.total_kwh)} in {count(summary.epochs, 'epoch')} -> "
                           f"{self.recorder.run.root}")
        self._close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        reading = self._window.abandon() if self._window is not None else self._unrecorded
        self._window = self._unrecorded = None
        rec = self.recorder
        if rec is not None and rec.summary is None:
            try:
                rec.abort(exception, reading)
            except OSError:
                pass  # the disk is what failed; Lightning re-raises the first error
        self._close()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._close()

    def _close(self) -> None:
        if self._meter is not None:
            self._meter.close()
            self._meter = None

    # -- checkpoints: plain values
    def state_dict(self) -> dict[str, Any]:
        rec = self.recorder
        return {"run_dir": str(self.run_dir) if self.run_dir else None,
                "epochs": len(rec.history) if rec is not None else None,
                "stop_policy": self.decision.policy, "stop_reason": self.decision.reason}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resuming from a checkpoint: the run continues in the same run directory;
        epochs logged after the checkpoint are redone (their energy is kept in the
        ledger)."""
        self._resumed = True
        if self.run_dir is None and state_dict.get("run_dir"):
            self.run_dir = Path(state_dict["run_dir"])


def callback_class(package: str | None = None) -> type[EnergyEarlyStopping]:
    """The callback class whose instances a trainer of ``package``
    (``"lightning.pytorch"`` or ``"pytorch_lightning"``) accepts. Without one: the
    package the calling code imported (a class of both when it imported both), else
    the first installed."""
    if package is not None:
        if package not in PACKAGES:
            raise ConfigError(f"EnergyEarlyStopping: no adapter for {package!r}; one of "
                              f"{', '.join(PACKAGES)}")
        return _adapter((package,))
    imported = tuple(p for p in PACKAGES if sys.modules.get(p) is not None)
    if imported:
        return _adapter(imported)
    for p in PACKAGES:
        try:
            return _adapter((p,))
        except ImportError:
            continue
    raise ImportError("greensed.lightning needs Lightning (lightning>=2.1 or "
                      "pytorch_lightning>=1.9): pip install 'greensed[lightning]'")


@functools.cache
def _adapter(packages: tuple[str, ...]) -> type[EnergyEarlyStopping]:
    """``EnergyEarlyStopping`` with each package's ``Callback`` as a base: a trainer
    checks ``isinstance(callback, Callback)`` and looks up overridden hooks against
    it; the core's hooks come first in the MRO."""
    modules = [importlib.import_module(p) for p in packages]
    info = importlib.import_module(packages[0] + ".utilities").rank_zero_info
    name = PACKAGES[packages[0]] if len(packages) == 1 else BOTH
    cls = type(name, (EnergyEarlyStopping, *(m.Callback for m in modules)),
               {"__module__": __name__, "__qualname__": name, "lightning": packages,
                "_info": staticmethod(info)})
    globals()[name] = cls  # pickled by name (ddp_spawn); __getattr__ makes it on demand
    return cls


def __getattr__(name: str) -> type[EnergyEarlyStopping]:
    """An adapter by its class name (what unpickling a callback asks for)."""
    if name == BOTH:
        return _adapter(tuple(PACKAGES))
    for package, cls_name in PACKAGES.items():
        if name == cls_name:
            return _adapter((package,))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def device_of(pl_module: pl.LightningModule) -> str:
    dev = pl_module.device
    return str(dev) if dev is not None else default_device()


def _any_rank(trainer: pl.Trainer, stop: bool) -> bool:
    """Whether any rank stops (rank 0 alone decides), the same on every rank. 1.5 and
    1.6 reduce a decision with ``all`` only: there rank 0's is broadcast."""
    strategy = getattr(trainer, "strategy", None) or trainer.training_type_plugin  # 1.5
    if "all" in inspect.signature(strategy.reduce_boolean_decision).parameters:
        return bool(strategy.reduce_boolean_decision(stop, all=False))
    return bool(strategy.broadcast(stop, src=0))


def _lr(trainer: pl.Trainer) -> float | None:
    try:
        return float(trainer.optimizers[0].param_groups[0]["lr"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def _kwh(value: float | None) -> str:
    return "energy unknown" if value is None else f"{value:.4g} kWh"
