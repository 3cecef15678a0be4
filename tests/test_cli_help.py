"""The help a user reads first (issue 24, item 5): commands in the order a user meets
them, and usage lines that name arguments by their metavar alone."""

from __future__ import annotations

import re

import pytest
from helpers import cli

from greensed.cli.app import ORDER

COMMANDS = ["train", "synth", "meters", "reproduce", "report", "dcase", "replay",
            "bench-policies", "status", "evaluate"]


def test_the_commands_are_listed_as_a_user_meets_them(monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, "-h")
    listed = re.findall(r"^  (\S+)\s", out.split("Commands:")[1], re.M)
    assert code == 0 and listed[0] == "train"
    assert listed == [c for c in ORDER if c in COMMANDS] and sorted(listed) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_and_arguments_show_metavars_only(command, monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, command, "-h")
    usage = out.split("\n\n")[0]
    assert code == 0 and usage.startswith("Usage: ") and f" {command} [OPTIONS]" in usage
    assert not re.search(r"[{}<>]", usage), usage
    arguments = out.split("Arguments:")[1].split("Options:")[0] if "Arguments:" in out else ""
    assert "<" not in arguments and "{" not in arguments, arguments


def test_several_run_dirs_read_as_such(monkeypatch, capsys):
    _, out, _ = cli(monkeypatch, capsys, "report", "-h")
    assert out.splitlines()[0].endswith(" report [OPTIONS] RUN_DIR...")
    assert re.search(r"^  RUN_DIR\.\.\.  Run directories", out, re.M)
    _, out, _ = cli(monkeypatch, capsys, "evaluate", "-h")
    assert out.splitlines()[0].endswith(" evaluate [OPTIONS] RUN_DIR")
