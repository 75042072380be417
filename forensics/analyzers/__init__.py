"""The analyzer registry: ``create_analyzer(name, **kw)``, ``list_analyzers(pattern)``, ``@register_analyzer``.

Built-in analyzers register on first use of the registry, so importing ``forensics`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from forensics.analyzers.base import Analyzer
from forensics.registry import Registry

ANALYZERS = Registry("analyzer")
register_analyzer = ANALYZERS.register

# Module per built-in analyzer; each registers itself on import.
_BUILTIN = ("metadata", "watermark")
_loaded = False


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN:
            importlib.import_module(f"forensics.analyzers.{module}")


def create_analyzer(name: str, **kwargs: Any) -> Analyzer:
    _load_builtin()
    return ANALYZERS.create(name, **kwargs)


def list_analyzers(pattern: str = "*") -> list[str]:
    _load_builtin()
    return ANALYZERS.names(pattern)


__all__ = ["Analyzer", "ANALYZERS", "create_analyzer", "list_analyzers", "register_analyzer"]
