"""Reliability, bad command-line and recipe values: `greensed train` prints one
line `error: ...` and exits 2 before any training, leaving no run directory."""

from __future__ import annotations

import sys

import pytest

from greensed.cli import main

RECIPES = {
    "unknown_key": ("[train]\nbach_size = 8\n",
                    "[train]: unknown key 'bach_size' (did you mean 'batch_size'?)"),
    "wrong_type": ("[train]\nepochs = \"ten\"\n",
                   "[train]: key 'epochs' = 'ten' has the wrong type (expected int)"),
    "unknown_section": ("[trian]\nepochs = 3\n", "unknown section [trian] (did you mean"),
}

CASES = [
    (["--budget-kwh", "-1"], "command line [stop].budget: key 'kwh' = -1.0 must be > 0"),
    (["--stop", "platoe"], "unknown stop policy 'platoe' (did you mean 'plateau'?)"),
    (["--batch-size", "6"], "train.batch_size = 6: must be a multiple of 4"),
    (["--epochs", "0"], "command line [train]: key 'epochs' = 0 must be >= 1"),
    (["--min-delta", "-1"], "key 'min_delta' = -1.0 must be >= 0"),
    (["--combine", "xor"], "key 'combine' = 'xor' is not one of any, all"),
    (["--metric", "teacher_F1"], "stop.metric = 'teacher_F1': unknown metric (did you mean "
                                 "'teacher_f1'?)"),
    (["--meter", "bogus"], "meter 'bogus' unknown"),
    (["--budget-kwh", "1", "--meter", "none"],
     "needs energy readings but meter 'unavailable' is unavailable"),
    (["--device", "tpu"], "--device 'tpu': expected auto, cpu or cuda"),
    (["--recipe", "{tmp}/nope.toml"], "nope.toml: recipe not found"),
    *[(["--recipe", f"{{tmp}}/{name}.toml"], f"{name}.toml {needle}"
       if needle.startswith("[") else f"{name}.toml: {needle}")
      for name, (_, needle) in RECIPES.items()],
]


def run_cli(monkeypatch, capsys, args: list[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["greensed", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize(("flags", "needle"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_value_is_one_line_exit_2_and_no_run_dir(tiny_dataset, tmp_path, monkeypatch,
                                                     capsys, flags, needle):
    for name, (text, _) in RECIPES.items():
        (tmp_path / f"{name}.toml").write_text(text)
    run = tmp_path / "run"
    args = ["train", "--data", str(tiny_dataset), "--cache-dir", str(tmp_path / "cache"),
            "--out", str(run), "--batch-size", "4", "--epochs", "1",
            "--meter", "constant:40", *[f.format(tmp=tmp_path) for f in flags]]
    code, out, err = run_cli(monkeypatch, capsys, args)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle.format(tmp=tmp_path) in err
    assert not run.exists() and not (tmp_path / "cache").exists()


def test_unwritable_run_dir_fails_before_training(tiny_dataset, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where a folder is needed: unwritable even for root
    code, _, err = run_cli(monkeypatch, capsys, [
        "train", "--data", str(tiny_dataset), "--cache-dir", str(tmp_path / "cache"),
        "--out", str(blocker / "run"), "--batch-size", "4", "--meter", "constant:40"])
    assert code == 2
    assert err == f"error: {blocker / 'run'}: run directory is not writable (Not a directory)\n"
    assert not (tmp_path / "cache").exists()


def test_resume_of_a_directory_without_a_run(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, ["train", "--resume", str(tmp_path / "none")])
    assert code == 2 and err == f"error: {tmp_path / 'none'}: nothing to resume (no config.toml)\n"


def test_flag_of_the_wrong_type_is_a_usage_error_before_training(tmp_path, monkeypatch, capsys):
    # Parsed by typer/click, not greensed: its own message format, same exit code.
    code, _, err = run_cli(monkeypatch, capsys, ["train", "--out", str(tmp_path / "run"),
                                                 "--batch-size", "abc"])
    assert code == 2 and "--batch-size" in err and not (tmp_path / "run").exists()

