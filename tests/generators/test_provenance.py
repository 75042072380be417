"""Provenance: the watermark survives JPEG 75, PNG carries iTXt + XMP labels, DICOM is a labelled SC instance;
tampered output is labelled a composite, and a derived DICOM keeps the original dataset."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pydicom
import pytest

from forensics import provenance as P
from generators.provenance import (
    derived_dicom_bytes,
    png_bytes,
    provenance_info,
    read_png_text,
    stamp,
    write_dicom,
    write_png,
)

INFO = {"generator": "cxr_gan", "version": "0.1.0", "seed": 3}


def _image(rgb: bool = False, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    im = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy) + 0.02 * rng.standard_normal((size, size))
    im = np.clip(im, 0, 1).astype(np.float32)
    return np.stack([im, im * 0.8, im * 0.6], axis=-1) if rgb else im


@pytest.mark.parametrize("rgb", [False, True])
def test_stamp_keeps_shape_and_range(rgb):
    x = _image(rgb)
    y = stamp(x, **INFO)
    assert y.shape == x.shape and y.dtype == np.float32
    assert 0 <= y.min() and y.max() <= 1
    assert 0 < np.abs(y - x).mean() < 0.05


@pytest.mark.parametrize("rgb", [False, True])
def test_watermark_survives_jpeg_75(rgb):
    from forensics.watermark import detect

    x = _image(rgb)
    assert not detect(x).present
    y = (stamp(x, **INFO) * 255 + 0.5).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", y[..., ::-1] if rgb else y, [cv2.IMWRITE_JPEG_QUALITY, 75])
    back = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    if rgb:
        back = back[..., ::-1]
    assert detect(np.ascontiguousarray(back)).present


@pytest.mark.parametrize("bits", [8, 16])
def test_png_labels(tmp_path, bits):
    path = write_png(tmp_path / "a.png", _image(), INFO, bits=bits)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img.dtype == (np.uint8 if bits == 8 else np.uint16) and img.shape == (96, 96)
    text = read_png_text(path)
    meta = json.loads(text[P.PNG_KEYWORD])
    assert meta["generator"] == "cxr_gan" and meta["version"] == "0.1.0" and meta["seed"] == 3
    assert meta["tool"] == P.TOOL and meta["created"]
    xmp = text[P.XMP_KEYWORD]
    assert f'Iptc4xmpExt:DigitalSourceType="{P.DIGITAL_SOURCE_TYPE}"' in xmp
    assert P.IPTC_NS in xmp
    # Pillow (an independent reader) sees the same chunks and a valid file
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        assert json.loads(im.text[P.PNG_KEYWORD])["seed"] == 3
        assert P.DIGITAL_SOURCE_TYPE in im.text[P.XMP_KEYWORD]


def test_png_rgb_channel_order(tmp_path):
    x = np.zeros((8, 8, 3), np.float32)
    x[..., 0] = 1.0  # pure red
    from PIL import Image

    with Image.open(write_png(tmp_path / "red.png", x, INFO)) as im:
        assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 0, 0)


def test_png_needs_the_provenance_fields(tmp_path):
    with pytest.raises(ValueError, match="generator"):
        write_png(tmp_path / "a.png", _image(), {"version": "1", "seed": 0})


@pytest.mark.parametrize("rgb", [False, True])
def test_dicom_secondary_capture(tmp_path, rgb):
    x = _image(rgb)
    a = write_dicom(tmp_path / "a.dcm", x, INFO, modality="DX")
    b = write_dicom(tmp_path / "b.dcm", x, INFO, modality="DX")
    ds = pydicom.dcmread(a)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.ConversionType == "SYN"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.Modality == "DX"
    arr = ds.pixel_array
    if rgb:
        assert arr.shape == (96, 96, 3) and ds.PhotometricInterpretation == "RGB" and ds.BitsStored == 8
        np.testing.assert_allclose(arr / 255.0, x, atol=1 / 255)
    else:
        assert arr.shape == (96, 96) and ds.BitsStored == 16 and ds.PhotometricInterpretation == "MONOCHROME2"
        np.testing.assert_allclose(arr / 65535.0, x, atol=1 / 65535)
    block = ds.private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR)
    values = {k: block[off].value for k, off in P.DICOM_ELEMENTS.items()}
    assert values == {"generator": "cxr_gan", "version": "0.1.0", "seed": "3", "kind": "synthetic"}
    other = pydicom.dcmread(b)
    for uid in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        assert ds[uid].value != other[uid].value
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_dicom_8_bit_grayscale(tmp_path):
    ds = pydicom.dcmread(write_dicom(tmp_path / "a.dcm", _image(), INFO, bits=8))
    assert ds.BitsStored == 8 and ds.pixel_array.dtype == np.uint8


def test_png_without_info_is_a_plain_png():
    data = png_bytes(_image(), None)
    assert read_png_text(data) == {}
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, np.round(_image().astype(np.float64) * 255).astype(np.uint8))


@pytest.mark.parametrize("bits", [8, 16])
def test_png_writes_integer_levels_as_they_are(bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    levels = np.random.default_rng(1).integers(0, np.iinfo(dtype).max + 1, (32, 48), dtype=dtype)
    back = cv2.imdecode(np.frombuffer(png_bytes(levels, INFO, bits=bits), np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, levels)


def test_png_refuses_levels_of_another_depth():
    with pytest.raises(ValueError, match="uint16"):
        png_bytes(np.zeros((8, 8), np.uint8), INFO, bits=16)


def test_tampered_png_is_labelled_a_composite():
    info = provenance_info("tamper", "1.0", 5, kind="tampered", mode="remove")
    text = read_png_text(png_bytes(_image(), info))
    xmp = text[P.XMP_KEYWORD]
    assert f'Iptc4xmpExt:DigitalSourceType="{P.COMPOSITE_SOURCE_TYPE}"' in xmp
    assert "real image locally altered by tamper" in xmp and "synthetic" not in xmp
    meta = json.loads(text[P.PNG_KEYWORD])
    assert meta["kind"] == "tampered" and meta["mode"] == "remove" and meta["seed"] == 5


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        png_bytes(_image(), {**INFO, "kind": "edited"})


def _ct_bytes() -> bytes:
    from io import BytesIO

    import pydicom.examples

    buf = BytesIO()
    pydicom.examples.ct.save_as(buf)
    return buf.getvalue()


def test_derived_dicom_writes_modality_values_on_the_original_scale():
    raw = _ct_bytes()
    src = pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw))
    hu = src.pixel_array * float(src.RescaleSlope) + float(src.RescaleIntercept)
    hu[10:20, 30:40] = 42.0
    out = pydicom.dcmread(pydicom.filebase.DicomBytesIO(derived_dicom_bytes(raw, hu, np.zeros(hu.shape), None)))
    back = out.pixel_array * float(out.RescaleSlope) + float(out.RescaleIntercept)
    np.testing.assert_array_equal(back, np.round(hu))
    for tag in ("SOPInstanceUID", "StudyInstanceUID", "PatientID", "ImageType", "RescaleSlope", "RescaleIntercept"):
        assert out.get(tag) == src.get(tag), tag


def test_derived_dicom_with_info_is_a_labelled_new_instance():
    raw = _ct_bytes()
    src = pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw))
    hu = src.pixel_array * float(src.RescaleSlope) + float(src.RescaleIntercept)
    info = provenance_info("tamper", "1.0", 2, kind="tampered", mode="inject")
    out = pydicom.dcmread(pydicom.filebase.DicomBytesIO(derived_dicom_bytes(raw, hu, np.zeros(hu.shape), info)))
    assert out.SOPInstanceUID != src.SOPInstanceUID == src.file_meta.MediaStorageSOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.StudyInstanceUID == src.StudyInstanceUID and out.PatientID == src.PatientID
    assert list(out.ImageType) == ["DERIVED", "SECONDARY"]
    assert out.DerivationDescription == "locally altered (inject) by medaudit tamper 1.0"
    block = out.private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR)
    assert {k: block[off].value for k, off in P.DICOM_ELEMENTS.items()} == {
        "generator": "tamper", "version": "1.0", "seed": "2", "kind": "tampered"
    }
