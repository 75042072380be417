"""medaudit's detector suite: load medical images, run analyzers, fuse their findings into a risk, report.

    >>> from forensics import scan_paths, ScanOptions
    >>> for result in scan_paths(["claims/"], ScanOptions(), workers=2):
    ...     print(result.path, result.level, result.risk)

Names are imported lazily so that ``import forensics`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load": "forensics.io",
    "MedicalImage": "forensics.records",
    "Finding": "forensics.records",
    "Evidence": "forensics.records",
    "ScanResult": "forensics.records",
    "InputError": "forensics.errors",
    "Scanner": "forensics.scanner",
    "ScanOptions": "forensics.scanner",
    "scan_paths": "forensics.scanner",
    "FusionConfig": "forensics.fusion",
    "audit": "forensics.audit",
    "create_analyzer": "forensics.analyzers",
    "list_analyzers": "forensics.analyzers",
    "register_analyzer": "forensics.analyzers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'forensics' has no attribute {name!r}")
