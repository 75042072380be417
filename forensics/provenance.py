"""The explicit labels medaudit's generators write, in one place so the stamp and the metadata analyzer agree.

The invisible pixel watermark lives in ``forensics.watermark``; these are the readable labels beside it.
"""

from __future__ import annotations

TOOL = "medaudit"
# PNG: one iTXt chunk with this keyword holding JSON {generator, version, seed, created}.
PNG_KEYWORD = "medaudit:provenance"
# XMP packet (PNG iTXt "XML:com.adobe.xmp", JPEG APP1): IPTC digital source type.
XMP_KEYWORD = "XML:com.adobe.xmp"
IPTC_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
# DICOM: a private block in group 0x0011 reserved by this creator; elements at offsets below.
DICOM_PRIVATE_GROUP = 0x0011
DICOM_PRIVATE_CREATOR = "MEDAUDIT PROVENANCE"
DICOM_ELEMENTS = {"generator": 0x01, "version": 0x02, "seed": 0x03, "kind": 0x04}
# Written only by class-conditional sampling (absent otherwise, so unconditional outputs are unchanged).
DICOM_CONDITION_ELEMENTS = {"class": 0x05, "guidance": 0x06}
