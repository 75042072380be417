"""Consistency rules for DICOM headers (research/forensics.md §3): each rule takes the context, returns Evidence.

Real scanner files break some of these for benign reasons (retrofitted test data, de-identification, vendor
quirks), so every non-decisive rule carries a small weight. Messages never quote patient identifiers, dates or
UIDs: they name the attribute and what is wrong with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from forensics import provenance
from forensics.analyzers.metadata._common import snippet
from forensics.analyzers.metadata.codes import evidence
from forensics.analyzers.metadata.generators import generator_name
from forensics.records import Evidence

SC_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.7"} | {f"1.2.840.10008.5.1.4.1.1.7.{i}" for i in range(1, 5)})
_EXPOSURE = ("XRayTubeCurrent", "Exposure", "ExposureTime", "ExposureInuAs", "XRayTubeCurrentInuA", "CTDIvol")
_XRAY = (("KVP",), _EXPOSURE)
# Classic (single-frame) acquisition storage classes -> groups of attributes; one present per group suffices.
ACQUISITION_ATTRIBUTES: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "1.2.840.10008.5.1.4.1.1.2": ("CT", (("KVP",), _EXPOSURE, ("SliceThickness",), ("ConvolutionKernel",))),
    "1.2.840.10008.5.1.4.1.1.4": (
        "MR",
        (("RepetitionTime",), ("EchoTime",), ("MagneticFieldStrength",), ("ScanningSequence",)),
    ),
    "1.2.840.10008.5.1.4.1.1.1": ("CR", _XRAY),
    "1.2.840.10008.5.1.4.1.1.1.1": ("DX", _XRAY),
    "1.2.840.10008.5.1.4.1.1.1.1.1": ("DX", _XRAY),
    "1.2.840.10008.5.1.4.1.1.1.2": ("MG", _XRAY),
    "1.2.840.10008.5.1.4.1.1.1.2.1": ("MG", _XRAY),
}
_UID = re.compile(r"^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*$")
_UID_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")
_META_UID_KEYWORDS = (
    "MediaStorageSOPClassUID",
    "MediaStorageSOPInstanceUID",
    "TransferSyntaxUID",
    "ImplementationClassUID",
)
_EXECUTABLE = {
    b"MZ": "a Windows PE (MZ) header",
    b"\x7fELF": "an ELF header",
    b"\xfe\xed\xfa\xce": "a Mach-O header",
    b"\xfe\xed\xfa\xcf": "a Mach-O header",
    b"\xce\xfa\xed\xfe": "a Mach-O header",
    b"\xcf\xfa\xed\xfe": "a Mach-O header",
    b"\xca\xfe\xba\xbe": "a Mach-O universal header",
}
_NATIVE_LE = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
HU_LOW = -4096.0  # below every vendor's padding convention (-3024 is the lowest seen after rescale)
HU_HIGH = 3071.0
HU_HIGH_FRACTION = 0.05  # more than this share above 3071 HU is not metal


@dataclass
class DicomContext:
    """What the rules look at: the dataset, the file bytes (for the preamble) and the stored values."""

    ds: Any
    raw: bytes = b""
    stored: np.ndarray | None = None


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _present(ds: Any, keyword: str) -> bool:
    value = ds.get(keyword)
    return value is not None and str(value).strip() != ""


def rule_preamble(ctx: DicomContext) -> list[Evidence]:
    raw = ctx.raw
    if len(raw) >= 132 and raw[128:132] == b"DICM":
        preamble = raw[:128]
    else:
        preamble = getattr(ctx.ds, "preamble", None) or b""
    if not preamble or not any(preamble):
        return []
    for magic, what in _EXECUTABLE.items():
        if preamble.startswith(magic):
            return [
                evidence(
                    "dicom.preamble_executable",
                    f"the DICOM preamble starts with {what}: a possible executable polyglot (CVE-2019-11687)",
                )
            ]
    if preamble[:4] in (b"II*\x00", b"MM\x00*"):
        return []  # a dual-personality DICOM/TIFF file, allowed by PS3.10
    return [evidence("dicom.preamble_nonzero", "the DICOM preamble is not zeros and not a TIFF header")]


def rule_provenance(ctx: DicomContext) -> list[Evidence]:
    ds = ctx.ds
    group = provenance.DICOM_PRIVATE_GROUP
    for tag in list(ds.keys()):
        if tag >> 16 != group or not 0x10 <= (tag & 0xFFFF) <= 0xFF:
            continue
        if str(ds[tag].value).strip() != provenance.DICOM_PRIVATE_CREATOR:
            continue
        block = (tag & 0xFF) << 8
        facts = []
        for name in ("generator", "version"):
            elem = ds.get((group << 16) | block | provenance.DICOM_ELEMENTS[name])
            if elem is not None:
                facts.append(f"{name} {snippet(str(elem.value), 40)}")
        detail = f" ({', '.join(facts)})" if facts else ""
        return [evidence("medaudit.provenance", f"medaudit provenance block in DICOM group 0011{detail}")]
    return []


def rule_conversion_type(ctx: DicomContext) -> list[Evidence]:
    if _text(ctx.ds, "ConversionType").strip().upper() == "SYN":
        return [evidence("dicom.conversion_type_syn", "ConversionType (0008,0064) is SYN: a synthetic image")]
    return []


def rule_software_generator(ctx: DicomContext) -> list[Evidence]:
    ds = ctx.ds
    keywords = (
        "Manufacturer",
        "ManufacturerModelName",
        "SoftwareVersions",
        "SecondaryCaptureDeviceManufacturer",
        "SecondaryCaptureDeviceManufacturerModelName",
        "SecondaryCaptureDeviceSoftwareVersions",
        "DerivationDescription",
    )
    sources = [(k, ds) for k in keywords]
    for item in list(ds.get("ContributingEquipmentSequence") or [])[:16]:
        sources += [(k, item) for k in ("Manufacturer", "ManufacturerModelName", "SoftwareVersions")]
    for keyword, where in sources:
        name = generator_name(_text(where, keyword))
        if name:
            return [evidence("dicom.software_generator", f"{keyword} names an image generator: {snippet(name)}")]
    return []


def _image_type(ds: Any) -> list[str]:
    return [v.strip().upper() for v in _text(ds, "ImageType").split("\\")]


def rule_derived_secondary(ctx: DicomContext) -> list[Evidence]:
    it = _image_type(ctx.ds)
    if len(it) >= 2 and it[0] == "DERIVED" and it[1] == "SECONDARY":
        return [
            evidence(
                "dicom.derived_secondary", "ImageType is DERIVED\\SECONDARY: pixels computed after the examination"
            )
        ]
    return []


def rule_sc_as_acquisition(ctx: DicomContext) -> list[Evidence]:
    ds = ctx.ds
    sop = _text(ds, "SOPClassUID")
    it = _image_type(ds)
    if sop in SC_CLASSES and it[:2] == ["ORIGINAL", "PRIMARY"]:
        return [
            evidence(
                "dicom.secondary_capture_as_acquisition",
                "a Secondary Capture object whose ImageType claims ORIGINAL\\PRIMARY (an original acquisition)",
            )
        ]
    if sop in ACQUISITION_ATTRIBUTES and _present(ds, "ConversionType"):
        return [
            evidence(
                "dicom.secondary_capture_as_acquisition",
                f"a {ACQUISITION_ATTRIBUTES[sop][0]} acquisition object carrying a Secondary Capture ConversionType",
            )
        ]
    return []


def rule_missing_acquisition(ctx: DicomContext) -> list[Evidence]:
    ds = ctx.ds
    spec = ACQUISITION_ATTRIBUTES.get(_text(ds, "SOPClassUID"))
    if spec is None:
        return []
    modality, groups = spec
    missing = [
        group[0] if len(group) == 1 else "/".join(group[:3]) + "…"
        for group in groups
        if not any(_present(ds, k) for k in group)
    ]
    if not missing:
        return []
    weight = 0.2 if len(missing) == len(groups) else 0.1
    return [evidence("dicom.missing_acquisition_attributes", f"{modality} object without {', '.join(missing)}", weight)]


def _rescale(ds: Any) -> tuple[float, float]:
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return slope, intercept


def _modality_values(ctx: DicomContext, prefer_native: bool = False) -> tuple[np.ndarray, bool] | None:
    """(values, rescaled) of a monochrome image without decoding: the record's ``stored`` array (already through
    the modality LUT), or a view of native little-endian PixelData (raw stored values); None otherwise.

    ``prefer_native`` looks at the PixelData bytes first: decoders mask bits above BitsStored, so only the bytes
    show values that exceed it.
    """
    ds = ctx.ds
    if not _text(ds, "PhotometricInterpretation").startswith("MONOCHROME"):
        return None
    if prefer_native:
        native = _native_view(ds)
        if native is not None:
            return native, False
    if ctx.stored is not None:
        values = np.asarray(ctx.stored)
        return (values, True) if values.size else None
    native = _native_view(ds)
    return None if native is None else (native, False)


def _native_view(ds: Any) -> np.ndarray | None:
    meta = getattr(ds, "file_meta", None)
    ts = _text(meta, "TransferSyntaxUID") if meta is not None else ""
    data = ds.get("PixelData")
    bits = ds.get("BitsAllocated")
    if ts not in _NATIVE_LE or not isinstance(data, bytes) or bits not in (8, 16):
        return None
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        return None
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    dtype = {8: "i1" if signed else "u1", 16: "<i2" if signed else "<u2"}[bits]
    usable = len(data) // (bits // 8) * (bits // 8)
    values = np.frombuffer(data[:usable], dtype=dtype)
    return values if values.size else None


def _stored_range(ctx: DicomContext) -> tuple[float, float] | None:
    """Min and max of the raw stored values (before the modality LUT): min/max first, then one linear map."""
    got = _modality_values(ctx, prefer_native=True)
    if got is None:
        return None
    values, rescaled = got
    lo, hi = float(np.min(values)), float(np.max(values))
    if rescaled:
        slope, intercept = _rescale(ctx.ds)
        lo, hi = sorted(((lo - intercept) / slope, (hi - intercept) / slope))
    return lo, hi


def rule_bits_stored(ctx: DicomContext) -> list[Evidence]:
    ds = ctx.ds
    bs = ds.get("BitsStored")
    if not isinstance(bs, int) or not 1 <= bs <= 32:
        return []
    rng = _stored_range(ctx)
    if rng is None:
        return []
    lo, hi = rng
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    allowed = (-(2 ** (bs - 1)), 2 ** (bs - 1) - 1) if signed else (0, 2**bs - 1)
    if lo < allowed[0] - 0.5 or hi > allowed[1] + 0.5:
        return [
            evidence(
                "dicom.bits_stored_exceeded",
                f"stored values {lo:.0f}..{hi:.0f} exceed BitsStored {bs} "
                f"({'signed' if signed else 'unsigned'} {allowed[0]}..{allowed[1]})",
            )
        ]
    return []


def rule_hu(ctx: DicomContext) -> list[Evidence]:
    ds = ctx.ds
    if _text(ds, "Modality").upper() != "CT":
        return []
    got = _modality_values(ctx)
    if got is None:
        return []
    values, rescaled = got
    slope, intercept = _rescale(ds)
    padding = ds.get("PixelPaddingValue")
    if isinstance(padding, int):
        values = values[values != (padding * slope + intercept if rescaled else padding)]
        if values.size == 0:
            return []
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo == hi:
        return [evidence("dicom.hu_implausible", "CT image of a single constant value")]
    if not rescaled:
        lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    if lo < HU_LOW:
        return [evidence("dicom.hu_implausible", f"CT minimum {lo:.0f} HU is far below air (-1024)")]
    if hi > HU_HIGH:
        if rescaled:
            above = np.count_nonzero(values > HU_HIGH)
        else:
            threshold = (HU_HIGH - intercept) / slope
            above = np.count_nonzero(values > threshold if slope > 0 else values < threshold)
        share = float(above) / values.size
        if share > HU_HIGH_FRACTION:
            return [
                evidence(
                    "dicom.hu_implausible",
                    f"{share:.0%} of CT pixels are above {HU_HIGH:.0f} HU (metal is never that much of a slice)",
                )
            ]
    return []


def rule_uids(ctx: DicomContext) -> list[Evidence]:
    ds = ctx.ds
    meta = getattr(ds, "file_meta", None)
    checks = [(k, ds) for k in _UID_KEYWORDS] + ([(k, meta) for k in _META_UID_KEYWORDS] if meta is not None else [])
    problems = []
    for keyword, where in checks:
        value = _text(where, keyword).rstrip("\x00 ")
        if not value:
            continue
        if len(value) > 64:
            problems.append(f"{keyword} longer than 64 characters")
        elif not _UID.match(value):
            why = (
                "a component with a leading zero"
                if re.fullmatch(r"[0-9.]+", value)
                else "characters other than digits and dots"
            )
            problems.append(f"{keyword} has {why}")
    if problems:
        return [evidence("dicom.uid_malformed", "; ".join(problems[:4]))]
    return []


def rule_uid_meta(ctx: DicomContext) -> list[Evidence]:
    ds = ctx.ds
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return []
    wrong = []
    for meta_kw, kw in (("MediaStorageSOPInstanceUID", "SOPInstanceUID"), ("MediaStorageSOPClassUID", "SOPClassUID")):
        a, b = _text(meta, meta_kw).rstrip("\x00 "), _text(ds, kw).rstrip("\x00 ")
        if a and b and a != b:
            wrong.append(f"{meta_kw} differs from {kw}")
    if wrong:
        return [evidence("dicom.uid_meta_mismatch", "; ".join(wrong) + " (file meta rewritten or copied)")]
    return []


def _date(value: str) -> date | None:
    value = value.strip()[:8]
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


def rule_date_order(ctx: DicomContext) -> list[Evidence]:
    ds = ctx.ds
    acq = _text(ds, "AcquisitionDate") or _text(ds, "AcquisitionDateTime")[:8]
    stages = [
        ("Study", _date(_text(ds, "StudyDate"))),
        ("Series", _date(_text(ds, "SeriesDate"))),
        ("Acquisition", _date(acq)),
        ("Content", _date(_text(ds, "ContentDate"))),
    ]
    stages = [(name, d) for name, d in stages if d is not None]
    worst = None
    for i, (early_name, early) in enumerate(stages):
        for late_name, late in stages[i + 1 :]:
            gap = (early - late).days
            if gap > 1 and (worst is None or gap > worst[0]):
                worst = (gap, early_name, late_name)
    if worst:
        gap, early_name, late_name = worst
        return [evidence("dicom.date_order", f"{late_name}Date is {gap} days before {early_name}Date")]
    return []


def rule_content_qualification(ctx: DicomContext) -> list[Evidence]:
    value = _text(ctx.ds, "ContentQualification").strip().upper()
    if value in ("RESEARCH", "SERVICE"):
        return [evidence("dicom.content_qualification", f"ContentQualification is {value}")]
    return []


RULES: tuple[Callable[[DicomContext], list[Evidence]], ...] = (
    rule_provenance,
    rule_conversion_type,
    rule_software_generator,
    rule_preamble,
    rule_derived_secondary,
    rule_sc_as_acquisition,
    rule_missing_acquisition,
    rule_bits_stored,
    rule_hu,
    rule_uids,
    rule_uid_meta,
    rule_date_order,
    rule_content_qualification,
)


def dicom_rules(ctx: DicomContext) -> list[Evidence]:
    """Run every rule; a rule that trips over an odd header contributes nothing rather than failing the scan."""
    found: list[Evidence] = []
    for rule in RULES:
        try:
            found.extend(rule(ctx))
        except Exception:  # noqa: BLE001 - hostile headers: a broken value is "no evidence", never a crash
            continue
    return found
