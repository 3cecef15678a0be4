"""greensed installed as a user installs it into an environment that already has torch:
a wheel built from this checkout, ``pip install WHEEL[lightning,tensorboard,dev]``
without requirements.lock, into a fresh virtual environment.

That environment's torch is the project environment's own (2.9.1 and its torchaudio),
not a copy: a folder of links to torch, torchaudio and the distributions they require
(the CUDA libraries included, 6 GB that are linked, not copied), put on the new
environment's path by a ``.pth`` file, as a conda or system torch would be. pip sees
it as installed; had it chosen to replace it, the new torch would land in the new
environment's own site-packages (it cannot uninstall what lies outside), which the
test checks for. The rest comes from the package index (pip's cache after the first
run). The new environment's ``greensed --version``, ``greensed meters`` and
``import greensed.lightning`` then run. A second test moves that environment to
numpy's lower bound (1.24.4: pip takes an older scipy and matplotlib with it, torch
stays) and runs part of the suite there on the installed greensed. Both together,
on 2 shared cores: 174 s with pip's cache warm (99 s of it the first install), about
4 minutes with it cold; most of it pip. Skipped, saying why, where the index cannot
be reached.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "greensed")


def run(*cmd: str | Path, timeout: int = 900, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                         timeout=timeout, **kw)
    assert res.returncode == 0, f"{cmd}:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


def pip(python: str | Path, *args: str | Path, env: dict | None = None) -> str:
    """``python -m pip ARGS``; its output. Skips the test when the index is out of reach."""
    res = subprocess.run([str(python), "-m", "pip", *map(str, args), "--timeout", "30",
                          "--retries", "2"], capture_output=True, text=True, timeout=1500,
                         env=env)
    text = res.stdout + res.stderr
    if res.returncode != 0 and re.search(r"NewConnectionError|Name or service not known|"
                                         r"Temporary failure in name resolution", text):
        pytest.skip("the package index is not reachable: " + text.strip().splitlines()[-1])
    assert res.returncode == 0, f"pip {args}:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def build_wheel(out: Path) -> Path:
    """The wheel of this checkout's tracked sources (built from a copy: the checkout
    gets no build/ or egg-info)."""
    src = out / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    # Isolated, as `python -m build` does: setuptools from the index, not this environment.
    pip(sys.executable, "wheel", "--no-deps", "-w", out / "dist", src)
    (wheel,) = (out / "dist").glob("greensed-*.whl")
    return wheel


def closure(*names: str) -> dict[str, md.Distribution]:
    """The installed distributions ``names`` need, themselves included."""
    seen: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        key = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if key in seen:
            continue
        try:
            dist = md.distribution(key)
        except md.PackageNotFoundError:
            continue
        seen[key] = dist
        for req in dist.requires or []:
            if "extra ==" not in req:
                todo.append(re.match(r"[A-Za-z0-9._-]+", req).group(0))
    return seen


def link_torch(folder: Path) -> dict[str, str]:
    """``folder``: links to this environment's torch, torchaudio and what they need;
    returns their versions."""
    folder.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    dists = closure("torch", "torchaudio")
    for dist in dists.values():
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            if top.endswith(".dist-info") or (site / top).exists():
                dest = folder / top
                if not dest.exists() and (site / top).exists():
                    dest.symlink_to(site / top)
    return {k: d.version for k, d in dists.items()}


@pytest.fixture(scope="module")
def user_env(tmp_path_factory) -> SimpleNamespace:
    """A fresh virtual environment with the user's torch, and greensed installed
    from its wheel with all three extras; what pip printed."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = build_wheel(tmp)
    versions = link_torch(tmp / "torch-site")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
                    ).stdout.strip())
    (site / "users_torch.pth").write_text(f"{tmp / 'torch-site'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = pip(py, "install", f"{wheel}[lightning,tensorboard,dev]", env=env)
    return SimpleNamespace(tmp=tmp, wheel=wheel, versions=versions, py=py, bin=venv / "bin",
                           site=site, env=env, pip_out=out)


def assert_torch_untouched(e: SimpleNamespace, pip_out: str) -> None:
    """pip installed no torch, torchaudio or CUDA library, and torch is still the user's."""
    installed = re.findall(r"Successfully installed (.*)", pip_out)
    assert not [p for line in installed for p in line.split()
                if re.match(r"(torch|torchaudio|nvidia-[a-z-]+-cu\d+|triton)-\d", p)]
    mine = [p.name for p in e.site.iterdir()
            if re.match(r"(torch|torchaudio)(-\d.*\.dist-info)?$", p.name)]
    assert not mine, f"pip put {mine} into the new environment"
    version, where = run(e.py, "-c", "import torch, torchaudio; "
                         "print(torch.__version__, torch.__file__)", env=e.env).stdout.split()
    assert version.split("+")[0] == e.versions["torch"]
    assert where.startswith(str(e.tmp / "torch-site"))


def test_a_wheel_installs_beside_the_users_torch(user_env):
    e = user_env
    assert_torch_untouched(e, e.pip_out)
    assert re.search(r"Successfully installed .*\bgreensed-0\.", e.pip_out)
    # The commands and the callback, from the wheel (run outside the checkout).
    assert re.fullmatch(r"greensed \d+\.\d+\.\d+\s*",
                        run(e.bin / "greensed", "--version", env=e.env).stdout)
    meters = run(e.bin / "greensed", "meters", env=e.env, cwd=e.tmp).stdout
    assert "codecarbon" in meters and "cpu" in meters
    code = ("import greensed, greensed.lightning, lightning.pytorch as pl, tensorboard, pytest; "
            "from greensed.lightning import EnergyEarlyStopping as E; "
            "cb = E(stop='budget:kwh=1', meter='none'); assert isinstance(cb, pl.Callback); "
            "print(greensed.__file__)")
    where = run(e.py, "-c", code, env=e.env, cwd=e.tmp).stdout.strip()
    assert where.startswith(str(e.site))  # the wheel's copy, not this checkout


NUMPY_LOWEST = "1.24.4"  # pyproject.toml: numpy>=1.24
# Tests that lean on numpy (decoding, PSDS against psds_eval, replay), and a Lightning fit.
ON_LOWEST = ["tests/test_metrics_intersection.py", "tests/test_metrics_psds.py",
             "tests/test_study_replay.py",
             "tests/test_lightning.py::test_stops_a_lightning_training_on_a_plateau"]


def test_the_lowest_numpy_beside_the_users_torch(user_env):
    """numpy's lower bound: pip takes the scipy and matplotlib that go with it, torch
    stays; part of the suite then runs there on the wheel's greensed."""
    e = user_env
    out = pip(e.py, "install", f"numpy=={NUMPY_LOWEST}", f"{e.wheel}[lightning,tensorboard]",
              env=e.env)
    assert_torch_untouched(e, out)
    assert run(e.py, "-c", "import numpy; print(numpy.__version__)", env=e.env
               ).stdout.strip() == NUMPY_LOWEST
    # From outside the checkout, so that `greensed` is the installed one.
    res = subprocess.run([str(e.py), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--rootdir", str(ROOT), *(str(ROOT / t) for t in ON_LOWEST)],
                         capture_output=True, text=True, timeout=900, env=e.env, cwd=e.tmp)
    assert res.returncode == 0, res.stdout[-3000:]
    assert re.search(r"\d+ passed", res.stdout)
