"""Finding and registering extension agent types, one entry point at a time.

Each entry point is loaded and checked on its own: a failing import, an object that is not
an Agent subclass, a name already taken or a constructor the appliance cannot call is
recorded against that entry point (and said on the console and in the log), and the rest
load. An extension must never keep the appliance from starting.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, TextIO

from appliance.runtime import Agent, Runtime
from appliance.scope import Scope
from appliance.settings import Settings

log = logging.getLogger(__name__)

GROUP = "qey.agents"

# What an extension type's constructor may ask for, by parameter name; anything else must
# have a default. The built-in types get the same objects (app.py / agents.register_builtin).
INJECTABLE = ("scope", "settings")


def site_dir(data_dir: Path) -> Path:
    """Where ``qey extension install`` puts wheels: on the data partition, not the root."""
    return data_dir / "extensions" / "site"


def add_site(data_dir: Path) -> Path:
    """Append the extensions' site directory to ``sys.path``: after the appliance's own
    site-packages, so a module an extension ships never shadows one the appliance uses."""
    site = site_dir(data_dir)
    if str(site) not in sys.path:
        sys.path.append(str(site))
        importlib.invalidate_caches()
    return site


@dataclass(slots=True)
class Extensions:
    """What start found: the types that loaded (with the distribution each came from) and,
    per entry point that did not, why."""

    types: list[type[Agent]] = field(default_factory=list)
    origins: dict[str, str] = field(default_factory=dict)  # type name -> "dist version"
    failed: dict[str, str] = field(default_factory=dict)  # entry point name -> why

    def fail(self, name: str, why: str) -> None:
        self.failed[name] = why
        log.warning("qey extension %s failed: %s", name, why)


def discover(reserved: Collection[str] = (), group: str = GROUP) -> Extensions:
    """Load every entry point in ``group``; ``reserved``: type names already taken."""
    found = Extensions()
    taken = set(reserved)
    seen: set[tuple[str, str]] = set()
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        if (ep.name, ep.value) in seen:  # one distribution found twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        cls = _load(ep, found)
        if cls is None:
            continue
        if cls.name in taken:
            found.fail(
                ep.name,
                f"{ep.value} is named {cls.name!r}, which another agent type already has; "
                "give it a name of its own",
            )
            continue
        why = _constructor_problem(cls)
        if why is not None:
            found.fail(ep.name, why)
            continue
        taken.add(cls.name)
        found.types.append(cls)
        found.origins[cls.name] = _origin(ep)
    return found


def _load(ep: EntryPoint, found: Extensions) -> type[Agent] | None:
    try:
        obj = ep.load()
    except Exception as err:  # whatever an extension's import raises stays its own
        found.fail(ep.name, f"importing {ep.value}: {type(err).__name__}: {err}")
        return None
    if not (isinstance(obj, type) and issubclass(obj, Agent)) or obj is Agent:
        found.fail(
            ep.name,
            f"{ep.value} is {obj!r}, not an Agent subclass; an entry point in {GROUP} "
            'names a class: NAME = "package.module:ClassName"',
        )
        return None
    return obj


def _constructor_problem(cls: type[Agent]) -> str | None:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError) as err:
        return f"{cls.__qualname__}: its constructor cannot be inspected ({err})"
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty:
            continue
        if p.name not in INJECTABLE:
            return (
                f"{cls.__qualname__}.__init__ needs {p.name!r}, which the appliance cannot "
                f"give; an agent type's constructor takes only {', '.join(INJECTABLE)} "
                "(by those names) or parameters with defaults"
            )
    return None


def _origin(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else ep.value


def factory_for(cls: type[Agent], scope: Scope, settings: Settings) -> Callable[[], Agent]:
    """A constructor call giving the type what it asks for by name (``scope``, ``settings``),
    the same objects the built-in types get."""
    offered: dict[str, Any] = {"scope": scope, "settings": settings}
    wanted = {name: offered[name] for name in inspect.signature(cls).parameters if name in offered}
    return lambda: cls(**wanted)


def register_extensions(
    runtime: Runtime, found: Extensions, scope: Scope, settings: Settings
) -> None:
    """Register the types that loaded; one the runtime refuses is recorded, not raised."""
    for cls in list(found.types):
        try:
            runtime.register(cls, factory_for(cls, scope, settings))
        except (TypeError, ValueError) as err:
            found.types.remove(cls)
            found.fail(cls.name, str(err))


def report(found: Extensions, out: TextIO | None = None) -> None:
    """One console line per failed extension (the log has them too)."""
    stream = out if out is not None else sys.stderr
    for name, why in found.failed.items():
        print(f"qey extension {name} failed: {why}", file=stream)


def load_extensions(
    data_dir: Path, reserved: Iterable[str] = (), out: TextIO | None = None
) -> Extensions:
    """At start (``qey run``, ``agents``, ``route``, ``plan``): the data directory's site on
    the path, every entry point loaded in isolation, and each failure said."""
    add_site(data_dir)
    found = discover(reserved=set(reserved))
    report(found, out)
    return found


def with_builtin(data_dir: Path) -> tuple[list[type[Agent]], Extensions]:
    """The built-in routable types and the extensions' (for ``qey agents``, ``route``,
    ``plan``, which see exactly what ``qey run`` would register)."""
    from appliance.agents import BUILTIN_TYPES
    from appliance.agents.netwatch import NetworkWatcher

    reserved = [cls.name for cls in (*BUILTIN_TYPES, NetworkWatcher)]
    found = load_extensions(data_dir, reserved=reserved)
    return [*BUILTIN_TYPES, *found.types], found
