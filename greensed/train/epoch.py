"""One epoch, top to bottom: steps -> loss means -> divergence check -> BatchNorm
statistics -> validation -> energy reading -> record -> log and checkpoints.

The epoch is one measured window and returns what happened: :class:`Finished`
(with its record), :class:`Cut` (by a signal) or :class:`Diverged`. Every exit,
an exception included, ends the meter window and the heartbeat, and the energy
of a cut epoch lands in the lost-energy ledger once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from greensed.energy.base import MeterWindow
from greensed.library.journal import Beat
from greensed.runlog import LOSS_KEYS
from greensed.train.batches import epoch_batches
from greensed.train.console import epoch_bar
from greensed.train.group import NONFINITE_CHECK_STEPS
from greensed.train.outcome import Cut, Diverged, EpochOutcome, Finished
from greensed.train.session import Session
from greensed.train.step import optimize
from greensed.train.validate import score_test_set, validate, validation_clips


def run_epoch(s: Session, epoch: int) -> EpochOutcome:
    tc, group, state = s.cfg.train, s.group, s.state
    state.train_mode()
    sums = torch.zeros(len(LOSS_KEYS), device=s.device)
    n = 0
    with measured(s, epoch) as (window, beat), \
            epoch_bar(s.report, epoch, s.n_steps, tc.batch_size, s.history) as bar:
        t0 = time.monotonic()
        # Several ranks read only agreed flags: a signal on any rank cuts all at one step.
        cut, bad = None, False
        for idx in epoch_batches(s.data.sizes(), s.shares, tc.seed, epoch,
                                 tc.max_steps_per_epoch):
            losses = optimize(state.step_student, state.step_teacher, state.opt,
                              s.data.batch(group.shard(idx)), step=state.step,
                              rampup_steps=s.rampup_steps, tc=tc, rng=state.rng)
            state.step += 1
            n += 1
            bar.tick()  # a counter and a clock read; the display refreshes on its own
            sums += torch.stack([losses[k].detach() for k in LOSS_KEYS])
            check = n % NONFINITE_CHECK_STEPS == 0  # a host sync: only now and then
            cut, bad = group.agree_stop(s.stop.signum, check and not torch.isfinite(sums).all())
            if cut is not None or bad:
                break
        if cut is None and not bad:  # a signal during the last step cuts this epoch too
            cut, _ = group.agree_stop(s.stop.signum, False)
        train_s = time.monotonic() - t0
        mean = group.mean(sums, n)
        if cut is not None or bad or not all(math.isfinite(v) for v in mean):
            reading = window.end()
            s.writer.record_cut(epoch, reading, "a signal" if cut else "divergence", beat)
            return Cut(cut, reading) if cut is not None else Diverged(reading)

        t1 = time.monotonic()
        for model in (state.student, state.teacher):  # BatchNorm statistics of every shard
            group.average_buffers(model)
        metrics = group.from_main(lambda: validate(state.student, state.teacher, s.val, s.cfg,
                                                   bar.validating(validation_clips(s.val))))
        val_s = time.monotonic() - t1
        reading = window.end()
        # Outside the energy window: an evaluation aid, not the run's cost; no decision reads it.
        t2 = time.monotonic()
        test = group.from_main(lambda: score_test_set(state.student, state.teacher, s.test, s.cfg)
                               if s.test is not None else None)
        test_s = time.monotonic() - t2 if test is not None else None
        # An earlier attempt's unknown energy, estimated from this one's power (a write).
        group.on_main(lambda: s.writer.settle_unknown(epoch, reading.avg_power_w))
        record = group.from_main(
            lambda: s.make_record(epoch, mean, metrics, train_s, val_s, reading, test, test_s))
        rank_rngs = group.gather(state.rng_states()) if group.world_size > 1 else None
        best = s.best([*s.history, record])
        s.writer.commit(record, state, beat, is_best=best is record, metric=s.best_metric,
                        config_toml=s.config_toml, rank_rngs=rank_rngs)
    return Finished(record)


@contextmanager
def measured(s: Session, epoch: int) -> Iterator[tuple[MeterWindow, Beat]]:
    """The epoch's meter window and heartbeat. On an exception both still end; on
    one process the part measured so far goes to the ledger, and a run on several
    leaves it to the heartbeat (the other ranks may never reach a collective)."""
    with s.writer.heartbeat(epoch) as beat, MeterWindow(s.meter) as window:
        try:
            yield window, beat
        except BaseException as exc:
            window.abandon()
            if not beat.accounted and s.group.world_size == 1 and window.reading is not None:
                why = "a signal" if isinstance(exc, KeyboardInterrupt) else \
                    f"an error ({type(exc).__name__})"
                try:
                    s.writer.record_cut(epoch, window.reading, why, beat)
                except OSError:
                    pass  # the disk is what failed: the heartbeat estimates it on resume
            raise
