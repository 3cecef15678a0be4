"""How greensed.lightning picks the Callback base a trainer accepts, without importing
Lightning (fast): stand-in packages in ``sys.modules`` play ``lightning.pytorch`` and
``pytorch_lightning``. The real trainers run in tests/test_lightning.py (2.x) and
tests/test_lightning_legacy.py (1.5, 1.6, 1.9)."""

from __future__ import annotations

import pickle
import sys
import types

import pytest

import greensed.lightning as gl
from greensed.errors import ConfigError


def stand_in(monkeypatch, name: str | None, present: bool = True) -> type | None:
    """``name`` imported (a stand-in with a Callback), or not importable at all."""
    if not present:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
        return None
    mod, util = types.ModuleType(name), types.ModuleType(name + ".utilities")
    mod.Callback = type("Callback", (), {})
    util.rank_zero_info = lambda msg: None
    monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setitem(sys.modules, name + ".utilities", util)
    return mod.Callback


@pytest.fixture(autouse=True)
def fresh_adapters(monkeypatch):
    gl._adapter.cache_clear()
    for name in (*gl.PACKAGES.values(), gl.BOTH):
        monkeypatch.delitem(vars(gl), name, raising=False)
    yield
    gl._adapter.cache_clear()
    for name in (*gl.PACKAGES.values(), gl.BOTH):
        vars(gl).pop(name, None)


def make(**kw) -> gl.EnergyEarlyStopping:
    return gl.EnergyEarlyStopping(stop="budget:kwh=1", meter="none", **kw)


def test_the_package_the_caller_imported(monkeypatch):
    pl_cb = stand_in(monkeypatch, "pytorch_lightning")
    monkeypatch.delitem(sys.modules, "lightning.pytorch", raising=False)
    cb = make()
    assert type(cb).__name__ == "PLEnergyEarlyStopping" and type(cb).lightning == (
        "pytorch_lightning",)
    assert isinstance(cb, pl_cb) and isinstance(cb, gl.EnergyEarlyStopping)
    assert cb.stop == ["budget:kwh=1"]  # __init__ ran once, on the adapter's instance


def test_both_imported_gives_a_callback_of_both(monkeypatch):
    a, b = stand_in(monkeypatch, "lightning.pytorch"), stand_in(monkeypatch, "pytorch_lightning")
    cb = make()
    assert type(cb).__name__ == "AnyLightningEnergyEarlyStopping"
    assert isinstance(cb, a) and isinstance(cb, b)
    assert type(cb).__mro__[1] is gl.EnergyEarlyStopping  # its hooks before the bases'
    assert gl.callback_class("lightning.pytorch").__name__ == "LightningEnergyEarlyStopping"


def test_none_imported_takes_the_first_installed(monkeypatch):
    """Nothing imported yet: lightning.pytorch if installed, else pytorch_lightning."""
    for name in gl.PACKAGES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    callback = type("Callback", (), {})
    installed = {"pytorch_lightning": types.SimpleNamespace(Callback=callback),
                 "pytorch_lightning.utilities": types.SimpleNamespace(rank_zero_info=print)}

    def import_module(name: str):
        if name not in installed:
            raise ImportError(f"No module named {name!r}")
        return installed[name]

    monkeypatch.setattr(gl, "importlib", types.SimpleNamespace(import_module=import_module))
    cb = make()
    assert type(cb).__name__ == "PLEnergyEarlyStopping" and isinstance(cb, callback)


def test_no_lightning_is_one_clear_error(monkeypatch):
    stand_in(monkeypatch, "lightning.pytorch", present=False)
    stand_in(monkeypatch, "pytorch_lightning", present=False)
    with pytest.raises(ImportError, match=r"pip install 'greensed\[lightning\]'"):
        make()
    with pytest.raises(ConfigError, match="no adapter for 'keras'"):
        gl.callback_class("keras")


def test_an_adapter_unpickles_by_name_in_a_fresh_process(monkeypatch):
    """ddp_spawn pickles the callback; the spawned process has made no adapter yet."""
    stand_in(monkeypatch, "pytorch_lightning")
    monkeypatch.delitem(sys.modules, "lightning.pytorch", raising=False)
    data = pickle.dumps(make(recipe="r"))
    gl._adapter.cache_clear()
    del vars(gl)["PLEnergyEarlyStopping"]
    back = pickle.loads(data)  # module __getattr__ makes the class again
    assert type(back).__name__ == "PLEnergyEarlyStopping" and back.recipe == "r"
    assert type(back) is gl.PLEnergyEarlyStopping
