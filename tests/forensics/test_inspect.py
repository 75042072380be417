"""`medaudit inspect`: every element and chunk, identifiers redacted by default, bad files as records (CliRunner)."""

from __future__ import annotations

import io
import json
import os
import struct

import cv2
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian
from test_metadata import app11_segments, c2pa_store, chunk, segment, text_chunk, with_chunks, with_segments

from cli import main

PATIENT = "Doeinspect^Janeinspect"
PATIENT_ID = "PID-778899"
STUDY_DATE = "20190314"
SOP_UID = "1.2.826.0.1.3680043.8.498.111222333"


def _invoke(*args: str):
    return CliRunner().invoke(main, ["inspect", "--quiet", *args])


def _records(stdout: str) -> dict[str, dict]:
    return {os.path.basename(r["path"]): r for r in map(json.loads, filter(str.strip, stdout.splitlines()))}


def _flatten(entries: list[dict]) -> list[dict]:
    out = []
    for e in entries:
        out.append(e)
        out += _flatten(e.get("children") or [])
    return out


def _all(record: dict) -> list[dict]:
    return [e for s in record["sections"] for e in _flatten(s["entries"])]


def _dicom_file(path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = SOP_UID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = SOP_UID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.PatientName = PATIENT
    ds.PatientID = PATIENT_ID
    ds.StudyDate = STUDY_DATE
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.999"
    ds.ReferencedImageSequence = Sequence([item])
    block = ds.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", f"copied {PATIENT_ID}")  # a patient ID copied into a private tag
    block.add_new(0x02, "LO", "reconstruction kernel B30f")
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 16, 12, 11
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.PixelData = np.arange(64, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_every_element_private_and_nested_identifiers_redacted(tmp_path):
    path = tmp_path / "ct.dcm"
    _dicom_file(path)
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    result = _invoke("--format", "json", str(path))
    assert result.exit_code == 0, result.output
    rec = _records(result.stdout)["ct.dcm"]
    assert rec["status"] == "ok" and rec["format"] == "dicom"
    entries = [e for e in _all(rec) if "tag" in e]
    ds = pydicom.dcmread(path)
    expected = {f"({el.tag.group:04X},{el.tag.element:04X})" for el in [*ds.file_meta, *ds.iterall()]}
    assert expected <= {e["tag"] for e in entries}  # every element, nested and meta included
    by_tag = {e["tag"]: e for e in entries}
    assert by_tag["(0029,1001)"]["private_creator"] == "ACME 1.0"
    assert by_tag["(0029,1002)"]["value"] == "reconstruction kernel B30f"
    assert by_tag["(0029,1001)"]["value"].startswith("redacted:")  # contains the patient ID
    assert by_tag["(0008,0016)"]["value"].startswith("1.2.840.10008.5.1.4.1.1.2 (CT Image Storage)")
    assert by_tag["(7FE0,0010)"]["value"] == "<128 bytes>"
    sequence = by_tag["(0008,1140)"]
    assert sequence["children"][0]["children"][1]["value"].startswith("redacted:")  # nested instance UID
    for secret in (PATIENT, "Doeinspect", PATIENT_ID, STUDY_DATE, SOP_UID, "8.498.999"):
        assert secret not in result.stdout
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before  # never modified

    shown = _invoke("--format", "json", "--include-phi", str(path))
    for secret in (PATIENT, PATIENT_ID, STUDY_DATE, SOP_UID):
        assert secret in shown.stdout

    text = _invoke(str(path))
    assert "(0029,1002) LO" in text.stdout and "[ACME 1.0]" in text.stdout and PATIENT_ID not in text.stdout


def _icc_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(artist: str, software: str) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0131], exif[0x013B], exif[0x0132] = software, artist, "2021:02:03 04:05:06"
    return exif.tobytes()


def test_png_chunks_text_exif_xmp_icc_and_c2pa(tmp_path):
    import zlib

    ok, enc = cv2.imencode(".png", np.full((16, 16), 90, np.uint8))
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
           'xmp:CreatorTool="Stable Diffusion" xmp:CreateDate="2021-02-03T04:05:06"/></x:xmpmeta>')
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp.encode()
    raw = with_chunks(enc.tobytes(), text_chunk("parameters", "a chest x-ray, Steps: 20"),
                      text_chunk("Author", "Jane Q"),
                      chunk(b"iTXt", itxt), chunk(b"eXIf", _exif("Jane Q", "GIMP 2.10")),
                      chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(_icc_profile())),
                      chunk(b"caBX", c2pa_store("OpenAI-API", "trainedAlgorithmicMedia")))
    (tmp_path / "x.png").write_bytes(raw)
    rec = _records(_invoke("--format", "json", str(tmp_path / "x.png")).stdout)["x.png"]
    names = {s["section"]: {e["name"]: e for e in _flatten(s["entries"])} for s in rec["sections"]}
    listed = [e["name"] for e in next(s for s in rec["sections"] if s["section"] == "PNG chunks")["entries"]]
    assert listed[0] == "IHDR" and listed[-1] == "IEND" and {"tEXt", "iTXt", "eXIf", "iCCP", "caBX"} <= set(listed)
    assert names["PNG text (tEXt/zTXt/iTXt)"]["parameters"]["value"] == "a chest x-ray, Steps: 20"
    assert names["PNG text (tEXt/zTXt/iTXt)"]["Author"]["value"].startswith("redacted:")
    exif = names["EXIF (eXIf chunk)"]
    assert exif["Software"]["value"] == "GIMP 2.10" and exif["Artist"]["value"].startswith("redacted:")
    assert exif["DateTime"]["value"].startswith("redacted:")
    xmp_props = names["XMP"]
    assert xmp_props["xmp:CreatorTool"]["value"] == "Stable Diffusion"
    assert xmp_props["xmp:CreateDate"]["value"].startswith("redacted:")
    icc = names["PNG image header and ancillary chunks"]
    assert icc["colour space"]["value"] == "RGB" and icc["class"]["value"] == "mntr"
    c2pa = next(v for k, v in names.items() if k.startswith("C2PA manifest"))
    assert c2pa["manifest present"]["value"] is True
    assert c2pa["claim generators"]["value"] == ["OpenAI-API"]
    assert c2pa["digital source types"]["value"] == ["trainedAlgorithmicMedia"]
    text = json.dumps(rec)
    assert "Jane Q" not in text and "2021-02-03" not in text and "2021:02:03" not in text


def _section(rec: dict, prefix: str) -> dict[str, dict]:
    return {e["name"]: e for s in rec["sections"] if s["section"].startswith(prefix) for e in _flatten(s["entries"])}


def test_jpeg_tables_encoder_icc_iptc_and_c2pa(tmp_path):
    from PIL import Image

    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 77])
    iptc = b"\x1c\x02\x50" + struct.pack(">H", 6) + b"Jane Q" + b"\x1c\x02\x05" + struct.pack(">H", 5) + b"chest"
    irb = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc + b"\x00" * (len(iptc) & 1)
    raw = with_segments(enc.tobytes(), segment(0xED, b"Photoshop 3.0\x00" + irb),
                        *app11_segments(c2pa_store("Adobe Firefly", "compositeWithTrainedAlgorithmicMedia")))
    (tmp_path / "ijg.jpg").write_bytes(raw)
    custom = io.BytesIO()  # tables no IJG quality gives: a camera or another encoder
    Image.fromarray(img).save(custom, "JPEG", qtables=[[3 + (i % 7) for i in range(64)], [5] * 64],
                              icc_profile=_icc_profile())
    (tmp_path / "custom.jpg").write_bytes(custom.getvalue())
    recs = _records(_invoke("--format", "json", str(tmp_path)).stdout)

    ijg = recs["ijg.jpg"]
    tables = _section(ijg, "JPEG quantization tables")
    assert "IJG libjpeg tables at quality 77" in tables["encoder"]["value"]
    assert len(tables["table 0"]["children"]) == 8 and len(tables["row 0"]["value"]) == 8
    assert "baseline, 32 x 32, 8-bit, 3 component(s)" in _section(ijg, "JPEG frame")["frame"]["value"]
    assert set(e["value"] for e in _section(ijg, "JPEG Huffman").values()) == {"standard (Annex K)"}
    iptc_entries = _section(ijg, "Photoshop resources")
    assert iptc_entries["ObjectName"]["value"] == "chest" and iptc_entries["By-line"]["value"].startswith("redacted:")
    assert _section(ijg, "C2PA manifest")["claim generators"]["value"] == ["Adobe Firefly"]

    other = recs["custom.jpg"]
    assert _section(other, "JPEG quantization tables")["encoder"]["value"].startswith("not IJG tables")
    assert _section(other, "ICC profile")["colour space"]["value"] == "RGB"


def test_nifti_header_with_acquisition_time_redacted(tmp_path):
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.diag([2.0, 2.0, 3.0, 1.0]))
    img.header["descrip"] = b"TE=2.5;Time=101112.000;phase=1"
    nib.save(img, tmp_path / "v.nii.gz")
    rec = _records(_invoke("--format", "json", str(tmp_path / "v.nii.gz")).stdout)["v.nii.gz"]
    header = _section(rec, "NIfTI-1 header")
    assert header["dim"]["value"][:4] == [3, 4, 5, 6] and header["pixdim"]["value"][1:4] == [2.0, 2.0, 3.0]
    assert header["descrip"]["value"].startswith("TE=2.5;redacted:") and "101112" not in json.dumps(rec)


def test_bad_inputs_are_records_and_the_run_goes_on(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00")
    _dicom_file(tmp_path / "ok.dcm")
    result = _invoke("--format", "json", "--max-bytes", "150", str(tmp_path / "nope.dcm"), str(tmp_path))
    assert result.exit_code == 0, result.output
    recs = _records(result.stdout)
    assert recs["nope.dcm"]["error"]["code"] == "not_found"
    assert recs["notes.txt"]["error"]["code"] == "unsupported_format"
    assert recs["big.png"]["error"]["code"] == "too_large"
    assert recs["ok.dcm"]["error"]["code"] == "too_large"  # the same limit as scan
    assert _section(recs["cut.png"], "Structure")["structure"]["value"].startswith("walk stopped")
    assert _invoke("--format", "json", str(tmp_path / "ok.dcm")).exit_code == 0

    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(main, ["inspect", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "nothing to inspect" in empty.output


@pytest.mark.parametrize("name", ["a.dcm", "noext"])
def test_text_that_is_not_dicom_is_unsupported_even_with_a_dicom_suffix(tmp_path, name):
    (tmp_path / name).write_bytes(b"hello, this is a plain text file\n" * 4)
    rec = _records(_invoke("--format", "json", str(tmp_path / name)).stdout)[name]
    assert rec["error"]["code"] == "unsupported_format"
