"""Shared knowledge: what agents have learnt, readable and updatable by all of them at once.

``update(key, fn)`` applies a plain function to the current value and stores the result in
one step. The function is synchronous on purpose: nothing else on the event loop can run
between reading the old value and writing the new one, so concurrent updaters never tear or
lose each other's writes, without a lock. Every update is persisted with its version (a
burst of updates to one key commits as its last value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from appliance.runtime.clock import Clock
from appliance.runtime.store import Store

T = TypeVar("T")


class KnowledgeStore:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        rows = store.read_now(
            lambda db: list(db.query("SELECT key, value, version FROM knowledge"))
        )
        self._values: dict[str, tuple[int, bytes]] = {
            r["key"]: (r["version"], r["value"].encode()) for r in rows
        }

    def get(self, key: str, type: type[T], default: T) -> T:
        found = self._values.get(key)
        return default if found is None else msgspec.json.decode(found[1], type=type)

    def version(self, key: str) -> int:
        found = self._values.get(key)
        return 0 if found is None else found[0]

    def update(self, key: str, fn: Callable[[T], T], *, type: type[T], default: T) -> T:
        """Replace the value under ``key`` with ``fn(current)``; returns the new value.

        If ``fn`` raises, nothing changes. The new value must encode as JSON.
        """
        new = fn(self.get(key, type, default))
        encoded = msgspec.json.encode(new)
        version = self.version(key) + 1
        self._values[key] = (version, encoded)
        self._store.put("knowledge", key, (key, encoded.decode(), version, self._clock.now()))
        return new

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self._values if k.startswith(prefix))

    def snapshot(self, prefix: str = "") -> dict[str, Any]:
        return {k: msgspec.json.decode(self._values[k][1]) for k in self.keys(prefix)}
