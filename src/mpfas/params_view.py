"""What a stage may read of ``params.yaml``: what its ``dvc.yaml`` entry declares, no more.

DVC re-runs a stage when one of its declared params changes, so a key the stage reads
without declaring it is an edit DVC never notices. Each stage script therefore lists its
keys (``stage_main(reads=..., untracked=...)``) and gets a *view* of the params: the same
dataclasses, but every key outside its lists is an :class:`Undeclared` placeholder that
fails with a one-line error when it is used. ``reads`` are the stage's DVC params (a test
keeps them equal to ``dvc.yaml``); ``untracked`` keys are read but cannot change the
stage's outputs (MLflow names and tags, resume and checkpoint cadence), so they are not
DVC params and editing them does not re-run the stage.

Keys are dotted paths: a section (``align``), a field (``train.seed``) or an entry of a
mapping field (``data.roots.O``); ``${item}`` stands for the stage's argument, as in
``dvc.yaml``'s ``foreach``. A key covers every key below it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .config import Params
from .errors import MpfasError

ITEM = "${item}"


class UndeclaredParamError(MpfasError):
    """A stage used a params key its declaration (and so ``dvc.yaml``) does not list."""


class ParamsChangedError(MpfasError):
    """params.yaml changed, in a key the stage depends on, while the stage ran."""


def _refuse(self: Undeclared, *args: Any, **kwargs: Any) -> Any:
    raise UndeclaredParamError(
        f"params key {object.__getattribute__(self, 'key')!r} is used by this stage but not declared: "
        "add it to reads= of the stage's stage_main and to its params: in dvc.yaml "
        "(or to untracked= if it cannot change the stage's outputs)")


class Undeclared:
    """Stands in for an undeclared key: any use of the value raises UndeclaredParamError.

    Copying and pickling pass it along unchanged, so ``dataclasses.asdict`` of a section
    and process pools work as long as the value itself is never used.
    """

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        object.__setattr__(self, "key", key)

    def __repr__(self) -> str:  # debugging output only; str() and format() refuse
        return f"<undeclared params key {object.__getattribute__(self, 'key')}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _refuse(self)

    def __deepcopy__(self, memo: dict) -> Undeclared:
        return self

    def __copy__(self) -> Undeclared:
        return self

    def __reduce__(self) -> tuple:
        return Undeclared, (object.__getattribute__(self, "key"),)

    __hash__ = _refuse  # type: ignore[assignment]


for _name in ("bool", "eq", "ne", "lt", "le", "gt", "ge", "str", "format", "iter", "len", "contains",
              "getitem", "int", "float", "index", "fspath", "call", "add", "radd", "sub", "rsub", "mul",
              "rmul", "truediv", "rtruediv", "floordiv", "mod", "neg", "abs", "round"):
    setattr(Undeclared, f"__{_name}__", _refuse)


@dataclasses.dataclass(frozen=True)
class Declaration:
    """A stage's params keys: ``reads`` (its DVC params) and ``untracked`` (output-neutral)."""

    reads: tuple[str, ...]
    untracked: tuple[str, ...] = ()

    def expand(self, item: str) -> Declaration:
        """The keys with ``${item}`` replaced by the stage's argument."""
        return Declaration(tuple(k.replace(ITEM, item) for k in self.reads),
                           tuple(k.replace(ITEM, item) for k in self.untracked))

    @property
    def allowed(self) -> tuple[str, ...]:
        return self.reads + self.untracked


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a params tree to ``a.b.c`` keys (for MLflow); keys a stage's view of the
    params leaves undeclared (:class:`Undeclared`) are left out."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if not isinstance(obj, Undeclared):
        out[prefix.rstrip(".")] = obj
    return out


def covers(declared: Iterable[str], key: str) -> bool:
    """Whether ``key`` is one of ``declared`` or lies below one of them."""
    return any(key == d or key.startswith(d + ".") for d in declared)


def view(params: Params, allowed: Iterable[str], seen: set[str] | None = None) -> Params:
    """``params`` with every key outside ``allowed`` replaced by :class:`Undeclared`.

    ``seen`` (optional) collects the declared keys the stage actually accessed.
    """
    allowed = tuple(allowed)
    sections = {f.name: _section(getattr(params, f.name), f.name, allowed, seen)
                for f in dataclasses.fields(params)}
    return Params(**sections)


def _section(section: Any, name: str, allowed: tuple[str, ...], seen: set[str] | None) -> Any:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(section):
        key, value = f"{name}.{f.name}", getattr(section, f.name)
        if covers(allowed, key):
            values[f.name] = value
        elif isinstance(value, dict) and any(d.startswith(key + ".") for d in allowed):
            values[f.name] = {k: v if covers(allowed, f"{key}.{k}") else Undeclared(f"{key}.{k}")
                              for k, v in value.items()}
        else:
            values[f.name] = Undeclared(key)
    cls = _traced(type(section))
    traced = cls.__new__(cls)
    for field_name, value in values.items():
        object.__setattr__(traced, field_name, value)
    object.__setattr__(traced, "_mpfas_where", (name, seen))
    return traced


_TRACED: dict[type, type] = {}


def _traced(cls: type) -> type:
    """A subclass of section dataclass ``cls`` that notes which fields are accessed."""
    if cls in _TRACED:
        return _TRACED[cls]
    names = frozenset(f.name for f in dataclasses.fields(cls))

    def __getattribute__(self: Any, attr: str) -> Any:
        value = object.__getattribute__(self, attr)
        if attr in names and not isinstance(value, Undeclared):
            section, seen = _where(self)
            if seen is not None:
                seen.add(f"{section}.{attr}")
        return value

    def __reduce__(self: Any) -> tuple:  # pickles as the plain dataclass (spawned workers)
        return _plain, (cls, {n: object.__getattribute__(self, n) for n in names})

    _TRACED[cls] = type(cls.__name__, (cls,), {"__getattribute__": __getattribute__, "__reduce__": __reduce__,
                                                "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return _TRACED[cls]


def _where(section: Any) -> tuple[str, set[str] | None]:
    try:
        return object.__getattribute__(section, "_mpfas_where")
    except AttributeError:  # made by dataclasses.replace: nothing to note
        return "", None


def _plain(cls: type, values: dict[str, Any]) -> Any:
    return cls(**values)


MISSING = object()


def values_at(text: str, keys: Iterable[str]) -> dict[str, Any]:
    """The raw YAML value of each dotted key in ``text`` (MISSING where absent)."""
    data = yaml.safe_load(text) or {}
    out: dict[str, Any] = {}
    for key in keys:
        node: Any = data
        for part in key.split("."):
            node = node.get(part, MISSING) if isinstance(node, dict) else MISSING
        out[key] = node
    return out


def check_unchanged(path: Path, before: dict[str, Any]) -> None:
    """Refuse when any key of ``before`` has another value in ``path`` now.

    DVC records a stage's params in dvc.lock when the stage *ends*, reading the file
    again; a value edited while the stage ran would be recorded as if the outputs had been
    built with it.
    """
    try:
        now = values_at(path.read_text(), before)
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsChangedError(f"{path}: unreadable after the stage ran ({exc}); restore it and "
                                 "re-run the stage (dvc repro)") from None
    changed = sorted(k for k, v in before.items() if now[k] != v)
    if changed:
        raise ParamsChangedError(
            f"{path}: {', '.join(changed)} changed while the stage ran; its outputs were built with the "
            "old value(s), so the run is refused (DVC does not record it): re-run the stage (dvc repro)")
