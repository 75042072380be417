"""Every evidence code the metadata analyzer can emit: default weight, whether it is decisive, and its meaning.

Scripts match on these codes; the README table is generated from (and tested against) this catalogue. Weight 0
marks an informational observation that never moves the score.
"""

from __future__ import annotations

from dataclasses import dataclass

from forensics.records import Evidence


@dataclass(frozen=True)
class Code:
    weight: float
    decisive: bool
    meaning: str


CODES: dict[str, Code] = {
    # Generator signatures written by the generating software itself.
    "png.a1111_parameters": Code(1.0, True, "PNG text `parameters` holding an A1111/Forge/Fooocus infotext"),
    "png.parameters_text": Code(0.5, False, "PNG text `parameters` that does not look like an infotext"),
    "png.comfyui_prompt": Code(1.0, True, "PNG text `prompt` holding a ComfyUI API graph (nodes with class_type)"),
    "png.comfyui_workflow": Code(1.0, True, "PNG text `workflow` holding a ComfyUI UI graph (nodes, links)"),
    "png.invokeai": Code(1.0, True, "PNG text invokeai_metadata/_workflow/_graph, sd-metadata or Dream (InvokeAI)"),
    "png.novelai": Code(1.0, True, "PNG text Software=NovelAI or a NovelAI Source/Comment JSON"),
    "png.generator_keys": Code(1.0, True, "PNG text keys of other generators (fooocus_scheme, sui_image_params, ...)"),
    "png.text_generator": Code(1.0, True, "a PNG text Software/Source/Author/Description value naming a generator"),
    "exif.software_generator": Code(1.0, True, "EXIF Software/Make/Model/Artist/ImageDescription names a generator"),
    "exif.usercomment_generator": Code(1.0, True, "EXIF UserComment holds an infotext or names a generator"),
    "xmp.trained_algorithmic_media": Code(1.0, True, "XMP Iptc4xmpExt:DigitalSourceType trainedAlgorithmicMedia"),
    "xmp.composite_trained_algorithmic_media": Code(
        1.0, True, "XMP DigitalSourceType compositeWithTrainedAlgorithmicMedia"
    ),
    "xmp.algorithmic_media": Code(0.6, False, "XMP DigitalSourceType algorithmicMedia or compositeSynthetic"),
    "xmp.creatortool_generator": Code(1.0, True, "XMP xmp:CreatorTool names a generator"),
    "c2pa.manifest": Code(
        1.0,
        True,
        "C2PA manifest; decisive when its actions say (composite)trainedAlgorithmicMedia or its "
        "claim generator is a known image generator, else 0.15 with edit actions and 0 otherwise",
    ),
    # Signed provenance (C2PA in PNG/JPEG, DICOM PS3.15 Digital Signatures), verified offline in every scan.
    "signature.valid": Code(
        1.0, True, "signature valid, content unchanged since signing; decisive when the signed statement declares "
        "(composite)trainedAlgorithmicMedia, else 0; the message names the signer and whether it is trusted"
    ),
    "signature.metadata_changed": Code(
        0.1, True, "signature valid and the signed pixel digest matches, other bytes changed (metadata edit, "
        "lossless re-encoding); decisive (1.0) when the statement declares synthetic media"
    ),
    "signature.content_changed": Code(0.35, False, "signature valid but the pixels changed after signing"),
    "signature.invalid": Code(
        0.5, False, "the signature does not verify: forged, another key, or the signed statement edited"
    ),
    "signature.unsigned": Code(0.0, False, "no C2PA manifest / DICOM Digital Signature (informational)"),
    "medaudit.provenance": Code(1.0, True, "medaudit's own provenance label (PNG iTXt, XMP, DICOM private block)"),
    # JPEG structure.
    "jpeg.quality": Code(0.0, False, "estimated IJG quality of the last save (informational)"),
    "jpeg.nonstandard_tables": Code(0.0, False, "quantization tables are not IJG-scaled: camera, Adobe, other"),
    "jpeg.resaved": Code(
        0.2,
        False,
        "standard IJG tables under camera EXIF (Make/Model) or beside a camera-made (non-IJG) EXIF "
        "thumbnail: the image was re-encoded by software after capture",
    ),
    "file.trailing_data": Code(0.2, False, "bytes after the PNG IEND / JPEG EOI (appended payload)"),
    "file.malformed": Code(0.0, False, "container structure broken; metadata read up to the break (informational)"),
    # DICOM.
    "dicom.conversion_type_syn": Code(1.0, True, "ConversionType (0008,0064) = SYN, synthetic image"),
    "dicom.software_generator": Code(1.0, True, "Manufacturer/ModelName/SoftwareVersions names an image generator"),
    "dicom.derived_secondary": Code(0.15, False, "ImageType DERIVED\\SECONDARY: computed after the examination"),
    "dicom.secondary_capture_as_acquisition": Code(
        0.25, False, "SC SOP class claiming ORIGINAL\\PRIMARY, or an acquisition class with SC ConversionType"
    ),
    "dicom.missing_acquisition_attributes": Code(
        0.2, False, "acquisition attributes expected for the modality are absent or empty (0.1 when only some)"
    ),
    "dicom.bits_stored_exceeded": Code(0.3, False, "stored values outside the BitsStored/PixelRepresentation range"),
    "dicom.hu_implausible": Code(0.25, False, "CT values far outside -1024..3071 HU, or a constant image"),
    "dicom.uid_malformed": Code(0.2, False, "a UID longer than 64, with non-digit/dot characters or leading zeros"),
    "dicom.uid_meta_mismatch": Code(0.15, False, "file meta MediaStorageSOP*UID differs from SOPClass/InstanceUID"),
    "dicom.date_order": Code(0.05, False, "Study <= Series <= Acquisition <= Content dates violated by > 1 day"),
    "dicom.content_qualification": Code(0.1, False, "ContentQualification RESEARCH or SERVICE"),
    "dicom.preamble_executable": Code(0.35, False, "the 128-byte preamble holds a PE/ELF/Mach-O header"),
    "dicom.preamble_nonzero": Code(0.0, False, "the preamble is neither zeros nor a TIFF header (informational)"),
}


def evidence(code: str, message: str, weight: float | None = None) -> Evidence:
    """An Evidence with the catalogue's weight unless ``weight`` overrides it."""
    return Evidence(code, message, CODES[code].weight if weight is None else float(weight))


def is_decisive(ev: Evidence) -> bool:
    return CODES[ev.code].decisive and ev.weight >= 0.99
