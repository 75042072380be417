"""Local tampering of a real image, CT-GAN style (2-D): a registry of methods that inject a lesion or remove one.

``tamper_methods(kind=, held_out=, modality=)`` lists the registered methods and ``tamper_method(name)`` describes
one (kind, training or held out, modalities, whether it needs a donor image); ``tamper_array`` applies one to an
array in any units (HU, display); ``tamper_file`` / ``tamper_bytes`` read, edit and encode PNG or DICOM through
``generators.provenance`` (labelled as a composite unless unstamped) and write the mask. ``inject`` / ``remove``
edit a loaded image or display pixels with the two original methods. ``train_inpainter`` trains the network the
removals use. What each method does and why it is held out or not: README.md beside this file.
"""

from __future__ import annotations

from .apply import inject, modality_of, remove, tamper_array
from .edit import TamperResult, default_radius, guess_modality, random_body_point
from .files import GENERATOR_NAME, VERSION, mask_png, tamper_bytes, tamper_file
from .lesions import MODALITIES
from .methods import KINDS, EditArgs, TamperMethod, register_method, tamper_method, tamper_methods
from .network import DEFAULT_WEIGHTS_DIR, PATCH, InpaintNet, load_inpainter
from .train import train_inpainter

__all__ = [
    "DEFAULT_WEIGHTS_DIR",
    "GENERATOR_NAME",
    "KINDS",
    "MODALITIES",
    "PATCH",
    "VERSION",
    "EditArgs",
    "InpaintNet",
    "TamperMethod",
    "TamperResult",
    "default_radius",
    "guess_modality",
    "inject",
    "load_inpainter",
    "mask_png",
    "modality_of",
    "random_body_point",
    "register_method",
    "remove",
    "tamper_array",
    "tamper_bytes",
    "tamper_file",
    "tamper_method",
    "tamper_methods",
    "train_inpainter",
]
