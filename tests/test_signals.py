"""A stop signal is acknowledged the moment it arrives; the stop waits for the step."""

from __future__ import annotations

import io
import os
import signal

import pytest

from greensed.train.signals import StopSignal, request_stop


def test_the_first_signal_is_acknowledged_at_once_and_only_flags_the_stop():
    out = io.StringIO()
    stop = StopSignal(out)
    stop(signal.SIGINT, None)
    assert stop.signum == signal.SIGINT
    assert out.getvalue() == ("greensed: SIGINT received: stopping after the current step, "
                              "then the run can be resumed; Ctrl-C again stops at once\n")
    stop(signal.SIGTERM, None)  # a later signal is not acknowledged twice
    assert out.getvalue().count("\n") == 1
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGINT, None)  # a second Ctrl-C stops now


def test_a_real_signal_is_acknowledged_from_the_handler(capsys):
    stop = StopSignal()
    with stop.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM  # handled here, before any step ended
    assert capsys.readouterr().err.startswith("greensed: SIGTERM received: stopping after ")


def test_a_closed_stream_never_keeps_the_stop_from_being_flagged():
    out = io.StringIO()
    out.close()
    stop = StopSignal(out)
    stop(signal.SIGHUP, None)
    assert stop.signum == signal.SIGHUP
    assert not request_stop()  # nothing installed: nothing to stop
