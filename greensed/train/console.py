"""The faces of `greensed train` on a console (docs/training.md).

The loop only calls the reporter it is given with messages (greensed.train.messages);
what a reporter does with them is decided here, and the CLI picks one:

- :class:`PlainView` for a pipe or a file: every message as its whole lines (an
  epoch is one line), flushed, with no control codes and no trailing spaces.
- :class:`LiveView` for a terminal (rich): messages laid out to the terminal's
  width, a progress bar inside each epoch (step n/N, clips/s, ETA, running Wh and W)
  and during feature extraction.

Any other callable (``print``, a list's ``append``) gets the whole messages and no bar.
The bars cost the training nothing measurable: :meth:`Bar.tick` counts and reads the
clock, the display is updated at most ``refresh_per_second`` times a second by rich's
own thread, and nothing here touches the device.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from greensed.runlog import EpochRecord
from greensed.train.messages import fit
from greensed.units import fmt_clock

UPDATE_S = 0.25  # at most this often a tick reaches the display


class NullBar:
    """No display: what the loop gets from a reporter without bars."""

    def tick(self) -> None:
        pass

    def __enter__(self) -> NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


NULL_BAR = NullBar()


class PlainView:
    """Messages as whole lines on a stream that is not a terminal."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def __call__(self, message: str) -> None:
        out = self.stream or sys.stdout
        for row in str(message).split("\n"):
            out.write(row.rstrip() + "\n")
        out.flush()

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class LiveView:
    """Messages fitted to a terminal's width, and progress bars (rich).

    ``console``: a ``rich.console.Console`` (default: one on stdout); its width is read
    at each message, so a resized terminal gets lines that fit it.
    """

    def __init__(self, console: Any = None, *, refresh_per_second: float = 4.0) -> None:
        if console is None:
            from rich.console import Console

            console = Console(highlight=False)
        self.console = console
        self.refresh_per_second = refresh_per_second
        self._extracting: tuple[str, Bar] | None = None

    def __call__(self, message: str) -> None:
        for line in fit(message, self.console.width):
            self.console.print(line, markup=False, highlight=False, emoji=False,
                               soft_wrap=True)

    def bar(self, label: str, total: int, unit: str, *, clips_per_unit: float = 1.0,
            power_w: float | None = None) -> Bar:
        return Bar(self, label, total, unit, clips_per_unit=clips_per_unit, power_w=power_w)

    def clips(self, subset: str, done: int, total: int) -> None:
        """Feature extraction progress (the data layer calls it after each batch)."""
        if self._extracting is None or self._extracting[0] != subset:
            self._end_extraction()
            bar = self.bar(f"features {subset}", total, "clips")
            self._extracting = (subset, bar.__enter__())
        bar = self._extracting[1]
        bar.tick(done - bar.n)
        if done >= total:
            self._end_extraction()

    def _end_extraction(self) -> None:
        if self._extracting is not None:
            self._extracting[1].__exit__(None, None, None)
            self._extracting = None

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self._end_extraction()


class Bar:
    """One progress bar of ``total`` units (steps or clips) on a LiveView's console,
    shown while the ``with`` block runs and removed at its end (the epoch line follows).

    ``clips_per_unit`` turns the rate into clips/s; ``power_w`` (the previous epoch's
    mean power) gives the running energy estimate, shown with ``~``.
    """

    def __init__(self, view: LiveView, label: str, total: int, unit: str, *,
                 clips_per_unit: float = 1.0, power_w: float | None = None) -> None:
        self.view, self.label, self.total, self.unit = view, label, max(int(total), 1), unit
        self.clips_per_unit, self.power_w = clips_per_unit, power_w
        self.n = 0
        self._t0 = self._shown = time.monotonic()
        self._progress: Any = None
        self._task: Any = None
        self._bar: Any = None

    def __enter__(self) -> Bar:
        from rich.progress import BarColumn, Progress, TextColumn

        self._bar = BarColumn(bar_width=10)
        self._progress = Progress(TextColumn("{task.description}", markup=False), self._bar,
                                  TextColumn("{task.fields[info]}", markup=False),
                                  console=self.view.console, transient=True,
                                  refresh_per_second=self.view.refresh_per_second)
        self._t0 = self._shown = time.monotonic()
        self._task = self._progress.add_task(self.label, total=self.total, info="")
        self._show(self._t0)
        self._progress.start()
        return self

    def tick(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._shown >= UPDATE_S or self.n >= self.total:
            self._shown = now
            self._show(now)

    def _show(self, now: float) -> None:
        if self._progress is None:
            return
        # The bar keeps one width (room for the longest info); the info drops its last
        # parts where the terminal is too narrow for all of them.
        width = self.view.console.width
        longest = len(" | ".join(self.info(3600.0, longest=True)))
        self._bar.bar_width = min(max(width - len(self.label) - longest - 2, 6), 40)
        room = width - len(self.label) - self._bar.bar_width - 2
        info = _fitting(self.info(now - self._t0), room)
        self._progress.update(self._task, completed=min(self.n, self.total), info=info)

    def info(self, elapsed_s: float, *, longest: bool = False) -> list[str]:
        """The parts after the bar, most important first (``longest``: the widest they
        can be, for the layout)."""
        n = 1 if longest else self.n
        parts = [f"{self.total if longest else n}/{self.total} {self.unit}"]
        if n >= self.total and self.unit == "steps" and not longest:
            return [*parts, "validating"]
        if n and elapsed_s > 0:
            parts.append(f"{n * self.clips_per_unit / elapsed_s:.1f} clips/s")
            parts.append(f"ETA {fmt_clock(elapsed_s / n * (self.total - n))}")
        else:
            parts.append("ETA ?")
        if self.power_w is not None:
            parts.append(f"~{self.power_w * elapsed_s / 3600:.2f} Wh ~{self.power_w:.0f} W")
        return parts

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _fitting(parts: Sequence[str], room: int) -> str:
    """The leading parts that fit in ``room`` columns, joined by `` | ``."""
    out = ""
    for p in parts:
        cand = f"{out} | {p}" if out else p
        if len(cand) > room:
            break
        out = cand
    return out


def epoch_bar(report: Any, epoch: int, steps: int, batch_size: int,
              history: Sequence[EpochRecord]) -> Bar | NullBar:
    """The bar of one epoch when the reporter is a LiveView, else one that shows nothing;
    the running energy is estimated from the last epoch's mean power."""
    if not isinstance(report, LiveView):
        return NULL_BAR
    power = history[-1].avg_power_w if history else None
    return report.bar(f"epoch {epoch}", steps, "steps", clips_per_unit=batch_size,
                      power_w=power)
