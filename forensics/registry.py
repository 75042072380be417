"""A small timm-style registry: a decorator adds a factory, users call ``create(name)`` and ``names(pattern)``.

Shared by analyzers (here), generators and benchmark protocols.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from typing import Any


class Registry:
    """Name -> factory. Names are lower_snake; overwriting a name warns."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable:
        def add(factory: Callable[..., Any]) -> Callable[..., Any]:
            key = name or getattr(factory, "name", None) or factory.__name__
            if key in self._factories:
                warnings.warn(f"{self.kind} {key!r} registered twice; the later one wins", stacklevel=2)
            self._factories[key] = factory
            return factory

        return add

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name`` (KeyError naming the known ones otherwise)."""
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def create(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._factories if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return name in self._factories
