"""The analyzer registry: ``create_analyzer(name, **kw)``, ``list_analyzers(pattern)``, ``analyzer_settings(name)``,
``@register_analyzer``.

Built-in analyzers register on first use of the registry, so importing ``forensics`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from forensics.analyzers.base import Analyzer
from forensics.registry import Registry

ANALYZERS = Registry("analyzer")
register_analyzer = ANALYZERS.register

# Name -> module of each built-in analyzer; the module registers it on import.
_BUILTIN = {
    "metadata": "forensics.analyzers.metadata",
    "watermark": "forensics.analyzers.watermark",
    "frequency": "forensics.analyzers.frequency",
    "cnn": "forensics.analyzers.cnn",
    "residual": "forensics.analyzers.residual",
    "reuse": "forensics.reuse.analyzer",
    "localization": "forensics.analyzers.localization",
    "series": "forensics.analyzers.series",
}
_loaded = False


class _Unavailable(Analyzer):
    """Stands in for an analyzer whose module failed to import, so `medaudit list` can say why."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason

    def availability(self) -> tuple[bool, str]:
        return False, self.reason


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name, module in _BUILTIN.items():
            try:
                importlib.import_module(module)
            except ImportError as exc:
                reason = f"cannot import: {exc}"
                ANALYZERS.register(name)(lambda name=name, reason=reason, **_: _Unavailable(name, reason))


def create_analyzer(name: str, **kwargs: Any) -> Analyzer:
    _load_builtin()
    return ANALYZERS.create(name, **kwargs)


def list_analyzers(pattern: str = "*") -> list[str]:
    _load_builtin()
    return ANALYZERS.names(pattern)


def analyzer_settings(name: str) -> tuple[str, ...]:
    """The settings the analyzer ``name`` declares (``Analyzer.settings``), read before it is built."""
    _load_builtin()
    return tuple(getattr(ANALYZERS.get(name), "settings", ()))


__all__ = ["Analyzer", "ANALYZERS", "analyzer_settings", "create_analyzer", "list_analyzers", "register_analyzer"]
