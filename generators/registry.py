"""The generator registry (``forensics.registry.Registry``): ``@register_generator("name")`` on a class or
factory; users call ``create_generator(name, **cfg)`` and ``list_generators(pattern)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forensics.registry import Registry

_REGISTRY = Registry("generator")


def register_generator(name: str | Callable | None = None) -> Callable:
    """Decorator adding a generator class or factory under ``name`` (default: its ``family``)."""
    if callable(name):  # used bare: @register_generator
        factory = name
        return _REGISTRY.register(getattr(factory, "family", None) or factory.__name__)(factory)
    return _REGISTRY.register(name)


def create_generator(name: str, **cfg: Any):
    """Build an unfitted generator of family ``name`` (``gan``, ``vae``, ``ddpm``, ``ldm``) from constructor args."""
    return _REGISTRY.create(name, **cfg)


def list_generators(pattern: str = "*") -> list[str]:
    """Registered generator families matching an fnmatch ``pattern``."""
    return _REGISTRY.names(pattern)
