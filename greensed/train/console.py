"""The faces of `greensed train` on a console (docs/training.md).

The loop only calls the reporter it is given with messages (greensed.train.messages);
what a reporter does with them is decided here, and the CLI picks one:

- :class:`PlainView` for a pipe or a file: every message as its whole lines (an
  epoch is one line), flushed, with no control codes and no trailing spaces.
- :class:`LiveView` for a terminal (rich): messages laid out to the terminal's
  width, a progress bar inside each epoch (step n/N, clips/s, ETA, running Wh and W),
  then over its validation's clips, and during feature extraction.

Any other callable (``print``, a list's ``append``) gets the whole messages and no bar.
The bars cost the training nothing measurable: :meth:`Bar.tick` only counts; rich's
own thread redraws the bar ``refresh_per_second`` times a second from the count and
the clock (so the rate, ETA and energy move during a long step too), and nothing here
touches the device.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from greensed.runlog import EpochRecord
from greensed.train.messages import fit
from greensed.units import fmt_clock


class NullBar:
    """No display: what the loop gets from a reporter without bars."""

    def tick(self, n: int = 1) -> None:
        pass

    def validating(self, total: int) -> Callable[[int], None]:
        return self.tick

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
    shown while the ``with`` block runs and removed at its end (the epoch line follows);
    :meth:`validating` turns an epoch's bar into its validation's.

    ``clips_per_unit`` turns the rate into clips/s; ``power_w`` (the previous epoch's
    mean power) gives the running energy estimate, shown with ``~``. :meth:`tick` only
    counts: rich's refresh thread draws the bar and its figures from the count and the
    clock, so the rate, the ETA and the energy move between steps too.
    """

    def __init__(self, view: LiveView, label: str, total: int, unit: str, *,
                 clips_per_unit: float = 1.0, power_w: float | None = None) -> None:
        self.view, self.label, self.total, self.unit = view, label, max(int(total), 1), unit
        self.clips_per_unit, self.power_w = clips_per_unit, power_w
        self.n = 0
        self.phase = ""  # "validating": counting the clips validation predicts
        self._t0 = self._start = time.monotonic()  # the phase's start, the bar's start
        self._progress: Any = None

    def __enter__(self) -> Bar:
        from rich.progress import Progress

        part = _part_column()
        self._progress = Progress(part(self, "label"), part(self, "bar"),
                                  part(self, "info"), console=self.view.console,
                                  transient=True, auto_refresh=True,
                                  refresh_per_second=self.view.refresh_per_second)
        self._t0 = self._start = time.monotonic()
        self._progress.add_task(self.label, total=None)
        self._progress.start()
        return self

    def tick(self, n: int = 1) -> None:
        self.n += n  # the display reads it at its next refresh

    def validating(self, total: int) -> Callable[[int], None]:
        """Count validation's ``total`` clips from now on (the rate and ETA restart, the
        energy keeps running); returns the per-batch callback, :meth:`tick`."""
        self._t0 = time.monotonic()
        self.n, self.total, self.phase = 0, max(int(total), 1), "validating"
        self.unit, self.clips_per_unit = "clips", 1.0
        return self.tick

    def layout(self, width: int, now: float) -> tuple[int, str]:
        """The bar's width and the info after it, fitted to ``width`` columns: the bar
        keeps one width (room for the longest info); the info drops its last parts where
        the terminal is too narrow for all of them."""
        longest = len(" | ".join(self.info(3600.0, longest=True)))
        bar_width = min(max(width - len(self.label) - longest - 2, 6), 40)
        room = width - len(self.label) - bar_width - 2
        return bar_width, _fitting(self.info(now - self._t0, running_s=now - self._start), room)

    def info(self, elapsed_s: float, *, longest: bool = False,
             running_s: float | None = None) -> list[str]:
        """The parts after the bar, most important first (``elapsed_s``: of this phase;
        ``running_s``: since the bar began, for the energy; ``longest``: the widest they
        can be, for the layout)."""
        n = 1 if longest else self.n
        count = f"{self.total if longest else n}/{self.total} {self.unit}"
        parts = [f"validating {count}" if self.phase else count]
        if n >= self.total and self.unit == "steps" and not longest:
            return [*parts, "validating"]
        if n and elapsed_s > 0:
            parts.append(f"{n * self.clips_per_unit / elapsed_s:.1f} clips/s")
            parts.append(f"ETA {fmt_clock(elapsed_s / n * (self.total - n))}")
        else:
            parts.append("ETA ?")
        if self.power_w is not None:
            spent_s = elapsed_s if running_s is None else running_s
            parts.append(f"~{self.power_w * spent_s / 3600:.2f} Wh ~{self.power_w:.0f} W")
        return parts

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@functools.cache
def _part_column() -> type:
    """The rich column class of a Bar's parts (rich is imported when a bar is shown)."""
    from rich.progress import ProgressColumn

    class Part(ProgressColumn):
        """One part of a Bar (label, bar, info), drawn from the Bar's count and the clock
        at each refresh."""

        def __init__(self, bar: Bar, part: str) -> None:
            super().__init__()
            self.bar, self.part = bar, part

        def render(self, task: Any) -> Any:
            from rich.progress_bar import ProgressBar
            from rich.text import Text

            b = self.bar
            if self.part == "label":
                return Text(b.label)
            width, info = b.layout(b.view.console.width, time.monotonic())
            if self.part == "info":
                return Text(info)
            return ProgressBar(total=b.total, completed=min(b.n, b.total), width=width)

    return Part


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
