"""Local tampering of a real image, CT-GAN style (2-D): inject a nodule-like lesion or remove one.

``inject`` / ``remove`` edit a loaded image or display pixels; ``tamper_array`` works on an array in any units (HU,
display); ``tamper_file`` / ``tamper_bytes`` read, edit and encode PNG or DICOM through ``generators.provenance``
(labelled as a composite unless unstamped). ``train_inpainter`` trains the network ``remove`` uses. What each edit
does, the threat model and how the bundled weights were trained: README.md beside this file.
"""

from __future__ import annotations

from .edit import TamperResult, default_radius, guess_modality, inject, random_body_point, remove, tamper_array
from .files import GENERATOR_NAME, VERSION, tamper_bytes, tamper_file
from .network import DEFAULT_WEIGHTS_DIR, PATCH, InpaintNet, load_inpainter
from .train import train_inpainter

__all__ = [
    "DEFAULT_WEIGHTS_DIR",
    "GENERATOR_NAME",
    "PATCH",
    "VERSION",
    "InpaintNet",
    "TamperResult",
    "default_radius",
    "guess_modality",
    "inject",
    "load_inpainter",
    "random_body_point",
    "remove",
    "tamper_array",
    "tamper_bytes",
    "tamper_file",
    "train_inpainter",
]
