"""The run's network: the baseline CRNN, or the model a recipe's ``[model] factory`` names.

A factory is ``"package.module:function"`` (any callable: a function or a class)
returning an ``nn.Module`` with the baseline's I/O contract (docs/library.md):

- in: normalised log-mel ``[B, T, F]`` (T feature frames, F = ``features.n_mels``);
- out: a pair ``(strong, weak)``: frame probabilities ``[B, C, T']`` and clip
  probabilities ``[B, C]``, in [0, 1] (C = 10 DESED classes);
- ``T' = T // time_pooling``, the pooling read from the model's ``time_pooling``
  attribute or declared in ``[model] time_pooling``.

It is called with the ``[model.kwargs]`` table, plus ``n_classes`` and ``n_mels``
when its signature takes them. Every way of not meeting the contract is one
ConfigError line naming ``[model] factory`` and what was expected.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from greensed.config import ModelConfig, RunConfig
from greensed.errors import ConfigError
from greensed.model.crnn import CRNN

# Clips in the dry forward pass that checks a factory's model.
DRY_BATCH = 2


def resolve_factory(spec: str) -> Callable[..., Any]:
    """The callable ``"package.module:attr"`` names (``attr`` may be dotted)."""
    where = f"[model] factory = {spec!r}"
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise ConfigError(f"{where}: expected 'package.module:function', e.g. "
                          "'greensed.model.examples:small_crnn'")
    obj: Any = _import(module_name.strip(), where)
    for part in attr.strip().split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{where}: {attr!r} is a {type(obj).__name__}, not callable")
    return obj


def search_folder(folder: str | Path) -> None:
    """Let a factory's module be found in ``folder`` (a recipe's), as in the current one."""
    path = str(Path(folder).expanduser().resolve())
    if path not in sys.path:
        sys.path.append(path)  # after the installed packages: it never shadows one


def _import(module_name: str, where: str) -> ModuleType:
    """The module, found on the Python path or else in the current folder, as `python -m`
    would find it (the `greensed` command does not put that folder on the path)."""
    try:
        return _import_or_none(module_name, where)
    except ModuleNotFoundError:
        search_folder(Path.cwd())
        importlib.invalidate_caches()  # a module written since the last look
    try:
        return _import_or_none(module_name, where)
    except ModuleNotFoundError:
        top = module_name.split(".")[0]
        raise ConfigError(
            f"{where}: no module {top!r} in the current folder ({Path.cwd()}), the "
            f"recipe's folder or the Python path; put {top}.py (or the package {top}/) in "
            "one of them, pip install it, or add its folder to PYTHONPATH") from None


def _import_or_none(module_name: str, where: str) -> ModuleType:
    """The module; ModuleNotFoundError where its top package is not found, and every other
    failure (a module that imports a missing one, an error in it) one ConfigError."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name.split(".")[0]:
            raise
        raise ConfigError(f"{where}: cannot import module {module_name!r} ({exc})") from None
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import module {module_name!r} ({exc})") from None


def _arguments(fn: Callable[..., Any], cfg: RunConfig, n_classes: int) -> dict[str, Any]:
    """``[model.kwargs]``, plus n_classes and n_mels where ``fn`` takes them; a call
    that cannot bind is one line."""
    kwargs = dict(cfg.model.kwargs)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: pass kwargs as they are
        return kwargs
    params = sig.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, value in (("n_classes", n_classes), ("n_mels", cfg.features.n_mels)):
        if name not in kwargs and (name in params or var_kw):
            kwargs[name] = value
    try:
        sig.bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"[model] factory = {cfg.model.factory!r}: cannot be called with "
                          f"{sorted(kwargs)} ({exc}); set its arguments in [model.kwargs]"
                          ) from None
    return kwargs


def _call(cfg: RunConfig, n_classes: int) -> nn.Module:
    assert cfg.model.factory is not None
    fn = resolve_factory(cfg.model.factory)
    model = fn(**_arguments(fn, cfg, n_classes))
    if not isinstance(model, nn.Module):
        raise ConfigError(f"[model] factory = {cfg.model.factory!r}: returned a "
                          f"{type(model).__name__}, not a torch.nn.Module")
    return model


def declared_pooling(model: nn.Module | None, mc: ModelConfig) -> int:
    """The time pooling factor: ``[model] time_pooling``, else the model's
    ``time_pooling`` attribute; both given must agree."""
    attr = getattr(model, "time_pooling", None) if model is not None else None
    if attr is not None and (isinstance(attr, bool) or not isinstance(attr, int) or attr < 1):
        raise ConfigError(f"[model] factory = {mc.factory!r}: the model's time_pooling "
                          f"= {attr!r} is not a positive int")
    if mc.time_pooling is not None:
        if attr is not None and attr != mc.time_pooling:
            raise ConfigError(f"[model] time_pooling = {mc.time_pooling} but the model says "
                              f"time_pooling = {attr}; drop the key or fix it")
        return mc.time_pooling
    if attr is None:
        raise ConfigError(f"[model] factory = {mc.factory!r}: the model has no time_pooling "
                          "attribute; declare [model] time_pooling = T/T' (e.g. 4)")
    return attr


def time_pooling(cfg: RunConfig, *, n_classes: int) -> int:
    """The run's model's time pooling factor (4 for the baseline CRNN), known before
    the model is built: declared, or read from a model built on the meta device (no
    memory, no draw from the random generators), once per process and factory."""
    mc = cfg.model
    if mc.time_pooling is not None and mc.factory is None:
        return declared_pooling(CRNN, mc)
    if mc.factory is None:
        return CRNN.time_pooling
    if mc.time_pooling is not None:
        return mc.time_pooling
    key = (mc.factory, json.dumps(dict(mc.kwargs), sort_keys=True, default=repr),
           cfg.features.n_mels, n_classes)
    if key not in _POOLING:
        _POOLING[key] = _attribute_pooling(cfg, n_classes)
    return _POOLING[key]


# (factory, kwargs, n_mels, n_classes) -> pooling read from the model, once per process.
_POOLING: dict[tuple[str, str, int, int], int] = {}


def _attribute_pooling(cfg: RunConfig, n_classes: int) -> int:
    with torch.random.fork_rng(devices=[]):
        try:
            with torch.device("meta"):
                model = _call(cfg, n_classes)
        except ConfigError:
            raise
        except Exception:  # a factory that cannot build on meta (e.g. it loads weights)
            model = _call(cfg, n_classes)
    return declared_pooling(model, cfg.model)


def build_model(cfg: RunConfig, *, n_classes: int, n_frames: int) -> nn.Module:
    """The run's network on the CPU, in train mode: the baseline CRNN without
    ``[model] factory``, else the factory's model, checked by a dry forward pass of
    ``[DRY_BATCH, n_frames, n_mels]`` (eval mode, no gradients, random generators
    untouched) against the I/O contract."""
    mc = cfg.model
    if mc.factory is None:
        model: nn.Module = CRNN(n_classes=n_classes, n_mels=cfg.features.n_mels)
        declared_pooling(model, mc)  # a declared pooling other than 4 is an error
        return model
    model = _call(cfg, n_classes)
    check_io(model, mc, n_classes=n_classes, n_frames=n_frames, n_mels=cfg.features.n_mels)
    return model


def check_io(model: nn.Module, mc: ModelConfig, *, n_classes: int, n_frames: int,
             n_mels: int) -> None:
    """One dry forward pass: ``[B, T, F]`` in; ``(strong [B, C, T // pooling],
    weak [B, C])`` out, else one ConfigError line saying what came out."""
    pooling = declared_pooling(model, mc)
    want_t = n_frames // pooling
    where = f"[model] factory = {mc.factory!r}"
    expected = (f"expected log-mel [B, T, F] = [{DRY_BATCH}, {n_frames}, {n_mels}] in; "
                f"strong [B, C, T'] = [{DRY_BATCH}, {n_classes}, {want_t}] (T' = T // "
                f"time_pooling {pooling}) and weak [B, C] = [{DRY_BATCH}, {n_classes}] out")
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(DRY_BATCH, n_frames, n_mels, device=device)
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            try:
                out = model(x)
            except Exception as exc:
                raise ConfigError(f"{where}: the forward pass failed ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}); "
                                  f"{expected}") from None
    finally:
        model.train(was_training)
    got = _shapes(out)
    ok = (isinstance(out, (tuple, list)) and len(out) == 2
          and all(isinstance(t, torch.Tensor) for t in out)
          and tuple(out[0].shape) == (DRY_BATCH, n_classes, want_t)
          and tuple(out[1].shape) == (DRY_BATCH, n_classes))
    if not ok:
        raise ConfigError(f"{where}: the model returned {got}; {expected}")


def _shapes(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return f"one tensor {list(out.shape)}"
    if isinstance(out, (tuple, list)):
        return "(" + ", ".join(f"{list(t.shape)}" if isinstance(t, torch.Tensor)
                               else type(t).__name__ for t in out) + ")"
    if isinstance(out, Mapping):
        return f"a mapping with keys {sorted(map(str, out))}"
    return f"a {type(out).__name__}"
