"""forensics.io: every format loads with the right range, every bad input gets its exact error code."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import struct
import zlib
from collections import Counter
from pathlib import Path

import cv2
import nibabel
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from forensics.errors import InputError
from forensics.io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, has_image_suffix, load, sniff_format

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_DICOMS = sorted(glob.glob(os.path.join(os.path.dirname(nibabel.__file__), "nicom", "tests", "data", "*.dcm")))
SWEEP_ALLOWED = {"missing_decoder", "corrupt_image", "truncated", "no_pixel_data", "too_many_pixels"}
SWEEP_COUNTS: Counter = Counter()


def _assert_valid(img, shape=None):
    assert img.pixels.dtype == np.float32
    assert img.pixels.ndim in (2, 3)
    if img.pixels.ndim == 3:
        assert img.pixels.shape[2] == 3
    assert np.isfinite(img.pixels).all()
    assert img.pixels.min() >= 0.0 and img.pixels.max() <= 1.0
    if shape is not None:
        assert img.pixels.shape == shape


def _files_with_pixel_data() -> list[Path]:
    out = []
    for path in sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=False)
        except Exception:  # noqa: BLE001 - not DICOM at all
            continue
        if any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            out.append(path)
    return out


PIXEL_FILES = _files_with_pixel_data()


# ------------------------------------------------------------------------------------------------ DICOM sweep
def test_sweep_found_files():
    assert len(PIXEL_FILES) >= 60


@pytest.mark.parametrize("path", PIXEL_FILES, ids=lambda p: str(p.relative_to(PYDICOM_FILES)))
def test_pydicom_test_file_loads_or_fails_cleanly(path: Path):
    if path.stat().st_size > 20_000_000:
        pytest.skip("larger than 20 MB: keeps the sweep fast")
    try:
        img = load(path)
    except InputError as exc:
        SWEEP_COUNTS[exc.code] += 1
        assert exc.code in SWEEP_ALLOWED, f"{exc.code}: {exc.message}"
        if exc.code == "missing_decoder":
            assert "pip install" in exc.message or "would need" in exc.message
        return
    SWEEP_COUNTS["loaded"] += 1
    ds = img.dicom
    assert img.format == "dicom"
    rows, cols = int(ds.Rows), int(ds.Columns)
    expected = (rows, cols, 3) if img.pixels.ndim == 3 else (rows, cols)
    _assert_valid(img, expected)
    assert img.frames == int(ds.get("NumberOfFrames") or 1)


def test_sweep_summary():
    """Runs after the sweep (file order); prints the counts for the report and checks most files decode."""
    if not SWEEP_COUNTS:
        pytest.skip("sweep not run in this session")
    print("\npydicom test_files sweep:", dict(SWEEP_COUNTS))
    assert SWEEP_COUNTS["loaded"] >= 0.8 * sum(SWEEP_COUNTS.values())


# ------------------------------------------------------------------------------------------------ DICOM examples
@pytest.mark.parametrize(
    "name", ["ct", "mr", "rgb_color", "ybr_color", "palette_color", "jpeg2k", "overlay", "rt_dose"]
)
def test_pydicom_examples_load(name):
    path = pydicom.examples.get_path(name)
    img = load(path)
    _assert_valid(img)
    assert img.raw == path.read_bytes()
    assert img.sha256 == hashlib.sha256(img.raw).hexdigest()


def test_ct_example_facts():
    img = load(pydicom.examples.get_path("ct"))
    ds = img.dicom
    assert img.modality == "CT"
    assert img.spacing_mm == tuple(float(v) for v in ds.PixelSpacing)
    assert img.bit_depth == int(ds.BitsStored)
    assert img.metadata["Modality"] == "CT" and img.metadata["Rows"] == 128
    assert img.metadata["TransferSyntaxUID"] == str(ds.file_meta.TransferSyntaxUID)
    # rescaled: stored holds Hounsfield units
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(img.stored, hu)


def test_metadata_has_no_patient_identifiers():
    from forensics.phi import PHI_KEYWORDS

    img = load(pydicom.examples.get_path("ct"))
    assert not PHI_KEYWORDS.intersection(img.metadata)
    text = repr(img.metadata)
    assert str(img.dicom.PatientName) not in text and str(img.dicom.PatientID) not in text


def test_colour_examples_are_rgb():
    for name in ("rgb_color", "ybr_color", "palette_color"):
        img = load(pydicom.examples.get_path(name))
        assert img.pixels.ndim == 3 and img.pixels.shape[2] == 3, name


def test_multiframe_example_takes_middle_frame():
    path = pydicom.examples.get_path("ybr_color")  # 30 frames
    img = load(path)
    ds = pydicom.dcmread(path)
    assert img.frames == 30
    middle = ds.pixel_array[15].astype(np.float32) / 255
    np.testing.assert_allclose(img.pixels, middle, atol=1e-6)


@pytest.mark.parametrize("path", NIBABEL_DICOMS, ids=os.path.basename)
def test_nibabel_dicoms(path):
    ds = pydicom.dcmread(path, force=True)
    if "PixelData" not in ds:
        with pytest.raises(InputError) as err:
            load(path)
        assert err.value.code == "no_pixel_data"
        return
    img = load(path)
    _assert_valid(img, (int(ds.Rows), int(ds.Columns)))
    assert img.modality == "MR"


# ------------------------------------------------------------------------------------------------ built datasets
def _write_dicom(path: Path, arr: np.ndarray, **attrs) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = attrs.pop("Modality", "OT")
    frames = arr.shape[0] if arr.ndim == 3 else 1
    ds.Rows, ds.Columns = arr.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = attrs.pop("PhotometricInterpretation", "MONOCHROME2")
    ds.BitsAllocated = 16
    ds.BitsStored = attrs.pop("BitsStored", 16)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype == np.int16 else 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_monochrome1_is_inverted(tmp_path):
    arr = np.tile(np.arange(0, 256, dtype=np.uint16), (8, 1))
    window = {"WindowCenter": 128, "WindowWidth": 256}
    p1 = _write_dicom(tmp_path / "m1.dcm", arr, PhotometricInterpretation="MONOCHROME1", **window)
    p2 = _write_dicom(tmp_path / "m2.dcm", arr, PhotometricInterpretation="MONOCHROME2", **window)
    a, b = load(p1), load(p2)
    np.testing.assert_allclose(a.pixels, 1.0 - b.pixels, atol=1e-6)
    assert a.pixels[0, 0] == pytest.approx(1.0) and a.pixels[0, -1] == pytest.approx(0.0)


def test_rescale_gives_hounsfield_units_and_file_window(tmp_path):
    raw = np.array([[0, 1000, 1024, 2024]] * 4, dtype=np.uint16)
    p = _write_dicom(
        tmp_path / "ct.dcm",
        raw,
        Modality="CT",
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=40,
        WindowWidth=400,
        BitsStored=12,
    )
    img = load(p)
    assert img.stored.dtype == np.float32
    np.testing.assert_array_equal(img.stored[0], [-1024, -24, 0, 1000])
    # window 40/400: HU -160 -> 0, +240 -> 1
    assert img.pixels[0, 0] == 0.0 and img.pixels[0, 3] == 1.0
    assert 0.0 < img.pixels[0, 1] < img.pixels[0, 2] < 1.0
    assert img.metadata["window_source"] == "file"
    assert img.bit_depth == 12


def test_no_window_uses_robust_min_max(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(100, 4000, size=(64, 64)).astype(np.uint16)
    arr[0, 0] = 65535  # one outlier must not squash the rest
    img = load(_write_dicom(tmp_path / "r.dcm", arr))
    assert img.metadata["window_source"] == "robust"
    assert img.pixels.max() == 1.0 and img.pixels.min() == 0.0
    assert np.median(img.pixels) > 0.3


def test_built_multiframe_middle_frame(tmp_path):
    arr = np.stack([np.full((4, 5), 100 * (i + 1), np.uint16) for i in range(5)])
    arr[:, 0, 0] = 0
    img = load(_write_dicom(tmp_path / "mf.dcm", arr, WindowCenter=150, WindowWidth=301))
    assert img.frames == 5 and img.pixels.shape == (4, 5)
    np.testing.assert_array_equal(img.stored[1:, 1:], 300)


def test_dicom_without_preamble_loads(tmp_path):
    data = load(pydicom.examples.get_path("mr")).raw
    bare = data[132:]  # drop preamble + "DICM": starts with the file meta group
    p = tmp_path / "bare.dcm"
    p.write_bytes(bare)
    img = load(p)
    assert img.format == "dicom" and img.pixels.shape == (64, 64)


def test_dicom_truncated_pixel_data(tmp_path):
    data = pydicom.examples.get_path("ct").read_bytes()
    p = tmp_path / "cut.dcm"
    p.write_bytes(data[: len(data) - 5000])
    with pytest.raises(InputError) as err:
        load(p)
    assert err.value.code == "truncated"


def test_dicom_too_many_pixels_from_header(tmp_path):
    p = _write_dicom(tmp_path / "big.dcm", np.zeros((4, 4), np.uint16))
    with pytest.raises(InputError) as err:
        load(p, max_pixels=15)
    assert err.value.code == "too_many_pixels"


def test_dicom_no_pixel_data():
    with pytest.raises(InputError) as err:
        load(pydicom.examples.get_path("rt_plan"))
    assert err.value.code == "no_pixel_data"


def test_missing_decoder_names_syntax_and_package(tmp_path):
    ds = pydicom.dcmread(pydicom.examples.get_path("mr"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: pydicom has no decoder
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds["PixelData"].VR = "OB"
    p = tmp_path / "mpeg.dcm"
    ds.save_as(p)
    with pytest.raises(InputError) as err:
        load(p)
    assert err.value.code == "missing_decoder"
    assert "MPEG2" in err.value.message and "av" in err.value.message


# ------------------------------------------------------------------------------------------------ rasters
def _gradient(h=32, w=48, dtype=np.uint8, channels=1):
    full = np.iinfo(dtype).max
    g = (np.linspace(0, 1, h * w).reshape(h, w) * full).astype(dtype)
    if channels == 1:
        return g
    return np.stack([g, full - g, g // 2][:channels] + ([np.full_like(g, full)] if channels == 4 else []), axis=2)


@pytest.mark.parametrize("ext,fmt", [(".png", "png"), (".tiff", "tiff"), (".bmp", "bmp"), (".webp", "webp")])
def test_lossless_8bit_grey(tmp_path, ext, fmt):
    arr = _gradient()
    p = tmp_path / f"g{ext}"
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
    assert cv2.imwrite(str(p), arr, params)
    img = load(p)
    assert img.format == fmt and img.bit_depth == 8
    _assert_valid(img, arr.shape)  # BMP/WebP store grey as 3 equal channels: back to (H, W)
    np.testing.assert_allclose(img.pixels, arr / 255, atol=1e-6)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit(tmp_path, ext):
    arr = _gradient(dtype=np.uint16)
    p = tmp_path / f"g16{ext}"
    assert cv2.imwrite(str(p), arr)
    img = load(p)
    assert img.bit_depth == 16
    np.testing.assert_allclose(img.pixels, arr / 65535, atol=1e-6)
    np.testing.assert_array_equal(img.stored, arr)


def test_colour_png_is_rgb_and_alpha_dropped(tmp_path):
    bgra = _gradient(channels=4)
    p = tmp_path / "c.png"
    assert cv2.imwrite(str(p), bgra)
    img = load(p)
    assert img.pixels.shape == (32, 48, 3)
    np.testing.assert_allclose(img.pixels[..., 0], bgra[..., 2] / 255, atol=1e-6)  # R came from BGR's last


def test_jpeg(tmp_path):
    arr = _gradient(channels=3)
    p = tmp_path / "c.jpg"
    assert cv2.imwrite(str(p), arr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    img = load(p)
    assert img.format == "jpeg" and img.bit_depth == 8
    _assert_valid(img, (32, 48, 3))
    assert "trailing_bytes" not in img.metadata


def test_jpeg_trailing_bytes_reported(tmp_path):
    p = tmp_path / "t.jpg"
    assert cv2.imwrite(str(p), _gradient())
    p.write_bytes(p.read_bytes() + b"appended secret")
    assert load(p).metadata["trailing_bytes"] == len(b"appended secret")


def test_format_by_magic_not_extension(tmp_path):
    p = tmp_path / "really_a_png.jpg"
    assert cv2.imwrite(str(tmp_path / "x.png"), _gradient())
    p.write_bytes((tmp_path / "x.png").read_bytes())
    assert load(p).format == "png"


def test_data_argument_skips_the_disk(tmp_path):
    assert cv2.imwrite(str(tmp_path / "x.png"), _gradient())
    data = (tmp_path / "x.png").read_bytes()
    img = load("not/on/disk.png", data=data)
    assert img.path == "not/on/disk.png" and img.raw == data


def test_file_unchanged(tmp_path):
    p = tmp_path / "x.png"
    assert cv2.imwrite(str(p), _gradient())
    before, mtime = p.read_bytes(), p.stat().st_mtime_ns
    load(p)
    assert p.read_bytes() == before and p.stat().st_mtime_ns == mtime
    dcm = _write_dicom(tmp_path / "x.dcm", np.zeros((4, 4), np.uint16))
    before, mtime = dcm.read_bytes(), dcm.stat().st_mtime_ns
    load(dcm)
    assert dcm.read_bytes() == before and dcm.stat().st_mtime_ns == mtime


# ------------------------------------------------------------------------------------------------ bad inputs
def _code(path, **kw) -> str:
    with pytest.raises(InputError) as err:
        load(path, **kw)
    return err.value.code


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    assert _code(tmp_path / "e.png") == "empty_file"


def test_random_bytes_named_dcm(tmp_path):
    (tmp_path / "r.dcm").write_bytes(np.random.default_rng(1).bytes(4096))
    assert _code(tmp_path / "r.dcm") == "unsupported_format"


def test_text_file(tmp_path):
    (tmp_path / "notes.txt").write_text("claim notes\n")
    with pytest.raises(InputError) as err:
        load(tmp_path / "notes.txt")
    assert err.value.code == "unsupported_format" and "text" in err.value.message


def test_directory(tmp_path):
    assert _code(tmp_path) == "not_a_file"


def test_not_found(tmp_path):
    assert _code(tmp_path / "missing.png") == "not_found"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads everything")
def test_unreadable(tmp_path):
    p = tmp_path / "locked.png"
    assert cv2.imwrite(str(p), _gradient())
    p.chmod(0)
    try:
        assert _code(p) == "unreadable"
    finally:
        p.chmod(0o644)


def test_unreadable_permission_error(tmp_path, monkeypatch):
    import forensics.io.guarded as guarded

    p = tmp_path / "locked.png"
    assert cv2.imwrite(str(p), _gradient())

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(guarded.os, "open", deny)
    assert _code(p) == "unreadable"


def test_png_bad_crc(tmp_path):
    p = tmp_path / "x.png"
    assert cv2.imwrite(str(p), _gradient())
    data = bytearray(p.read_bytes())
    data[30] ^= 0xFF  # inside IHDR's data
    p.write_bytes(bytes(data))
    assert _code(p) == "corrupt_image"


def test_png_without_iend(tmp_path):
    p = tmp_path / "x.png"
    assert cv2.imwrite(str(p), _gradient())
    p.write_bytes(p.read_bytes()[:-12])
    assert _code(p) == "truncated"


def test_jpeg_cut_in_half(tmp_path):
    p = tmp_path / "x.jpg"
    assert cv2.imwrite(str(p), _gradient(256, 256, channels=3))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    assert _code(p) == "truncated"


def test_png_header_declaring_huge_size_costs_nothing(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(InputError) as err:
        load(tmp_path / "bomb.png")
    assert err.value.code == "too_many_pixels" and "100000x100000" in err.value.message


def test_max_pixels_applies_to_rasters(tmp_path):
    p = tmp_path / "x.png"
    assert cv2.imwrite(str(p), _gradient(32, 48))
    assert _code(p, max_pixels=32 * 48 - 1) == "too_many_pixels"
    assert load(p, max_pixels=32 * 48).pixels.shape == (32, 48)


def test_garbage_after_png_signature(tmp_path):
    (tmp_path / "g.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"\x01" * 40)
    assert _code(tmp_path / "g.png") in {"corrupt_image", "truncated"}


# ------------------------------------------------------------------------------------------------ sniff, nifti, api
def test_sniff_format():
    assert sniff_format(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10) == "png"
    assert sniff_format(b"\xff\xd8\xff\xe0" + b"\x00" * 10) == "jpeg"
    assert sniff_format(b"II*\x00" + b"\x00" * 10) == "tiff"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_format(b"\x00" * 128 + b"DICM" + b"\x00" * 10) == "dicom"
    assert sniff_format(b"hello world") is None
    assert sniff_format(b"") is None


def test_public_constants():
    assert DEFAULT_MAX_PIXELS > 4096 * 4096
    assert {".dcm", ".png", ".jpg", ".tif", ".bmp", ".webp", ".nii.gz"} <= IMAGE_SUFFIXES
    assert has_image_suffix("a/B.NII.GZ") and not has_image_suffix("notes.txt")
    assert os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS")


def test_nifti(tmp_path):
    nib = nibabel
    vol = np.arange(6 * 5 * 7, dtype=np.int16).reshape(6, 5, 7)
    nib.save(nib.Nifti1Image(vol, np.diag([0.5, 0.8, 2.0, 1.0])), tmp_path / "v.nii.gz")
    img = load(tmp_path / "v.nii.gz")
    assert img.format == "nifti" and img.frames == 7
    _assert_valid(img, (5, 6))
    assert img.spacing_mm == pytest.approx((0.8, 0.5))
    assert _code(tmp_path / "v.nii.gz", max_pixels=100) == "too_many_pixels"


@pytest.mark.parametrize("kind", ["png", "jpg", "tif", "bmp", "webp", "ct", "jpeg2k", "rle"])
def test_damaged_files_never_crash(kind):
    """Cut and byte-flipped copies of valid files give an image or an InputError, nothing else."""
    if kind in ("ct", "jpeg2k"):
        data, name = pydicom.examples.get_path(kind).read_bytes(), "x.dcm"
    elif kind == "rle":
        data, name = (PYDICOM_FILES / "MR_small_RLE.dcm").read_bytes(), "x.dcm"
    else:
        ok, buf = cv2.imencode(f".{kind}", _gradient(channels=3))
        data, name = buf.tobytes(), f"x.{kind}"
    rng = np.random.default_rng(7)
    for i in range(40):
        damaged = bytearray(data)
        if i % 2:
            damaged = damaged[: int(rng.integers(1, len(data)))]
        else:
            for _ in range(3):
                damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
        try:
            img = load(name, data=bytes(damaged))
        except InputError as exc:
            assert exc.code in {"truncated", "corrupt_image", "no_pixel_data", "unsupported_format"}, exc.message
        else:
            _assert_valid(img)


# --- binary PGM / PPM (digitised films, mini-MIAS) -----------------------------------------------------------
def _pnm(magic: bytes, samples: np.ndarray, maxval: int, comment: bytes = b"") -> bytes:
    h, w = samples.shape[:2]
    return magic + b"\n" + comment + f"{w} {h}\n{maxval}\n".encode() + samples.tobytes()


def test_pgm_8_bit_and_ppm_rgb_decode_exactly(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    (tmp_path / "g.pgm").write_bytes(_pnm(b"P5", grey, 255, b"# scanned film\n"))
    (tmp_path / "c.ppm").write_bytes(_pnm(b"P6", rgb, 255))
    g, c = load(tmp_path / "g.pgm"), load(tmp_path / "c.ppm")
    assert sniff_format((tmp_path / "g.pgm").read_bytes()) == "pnm"
    assert g.pixels.shape == (20, 30) and np.array_equal(np.round(g.pixels * 255).astype(np.uint8), grey)
    assert c.pixels.shape == (20, 30, 3) and np.array_equal(np.round(c.pixels * 255).astype(np.uint8), rgb)


def test_pgm_12_bit_is_scaled_by_its_declared_maximum(tmp_path):
    samples = np.array([[0, 2048, 4095]], dtype=">u2")
    (tmp_path / "a.pgm").write_bytes(_pnm(b"P5", samples, 4095))
    im = load(tmp_path / "a.pgm")
    assert im.bit_depth == 12
    assert np.allclose(im.pixels, [[0.0, 2048 / 4095, 1.0]], atol=1e-6)
    assert im.stored.tolist() == [[0, 2048, 4095]]


def test_pgm_with_a_small_maximum_reaches_full_scale(tmp_path):
    (tmp_path / "b.pgm").write_bytes(_pnm(b"P5", np.array([[0, 8, 15]], np.uint8), 15))
    im = load(tmp_path / "b.pgm")
    assert im.bit_depth == 4 and np.allclose(im.pixels, [[0.0, 8 / 15, 1.0]], atol=1e-6)


def test_truncated_pgm_is_an_error_not_a_grey_image(tmp_path):
    data = _pnm(b"P5", np.zeros((40, 40), np.uint8), 255)
    (tmp_path / "t.pgm").write_bytes(data[:-100])
    with pytest.raises(InputError) as err:
        load(tmp_path / "t.pgm")
    assert err.value.code == "truncated"


def test_inspect_redacts_pgm_comments_unless_asked(tmp_path):
    from forensics.inspect import inspect_bytes

    data = _pnm(b"P5", np.zeros((2, 4), np.uint8), 255, b"# Patient SMITH 1994-03-02\n")
    shown = json.dumps(inspect_bytes(data, "x.pgm"))
    assert "SMITH" not in shown and "1994" not in shown and "maximum value" in shown
    assert "SMITH" in json.dumps(inspect_bytes(data, "x.pgm", include_phi=True))
