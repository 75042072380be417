"""Header bombs: a small file whose header declares a huge image, under max_pixels, with too little data to fill
it. The decoder would allocate the whole declared frame and leave it grey; the loader refuses it first."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.fuzz import png_chunk
from forensics.errors import InputError


def jpeg_claiming(width: int, height: int) -> bytes:
    """An 8 x 8 JPEG whose frame header says ``width`` x ``height``, then EOI (issue 15 row 11)."""
    ok, enc = cv2.imencode(".jpg", (np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8))
    data = bytearray(enc.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR says ``width`` x ``height`` (8-bit grey) over one row of zeros."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1), 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def _no_decode(monkeypatch):
    import forensics.io.raster as raster

    def refuse(*args, **kwargs):
        raise AssertionError("the declared frame was decoded (allocated) before the data was checked")

    monkeypatch.setattr(raster.cv2, "imdecode", refuse)


@pytest.mark.parametrize("data", [jpeg_claiming(11000, 11000), png_claiming(11000, 11000)], ids=["jpeg", "png"])
def test_a_header_bomb_is_truncated_before_anything_is_decoded(tmp_path, monkeypatch, data):
    from forensics.io import load

    path = tmp_path / "bomb.img"
    path.write_bytes(data)
    _no_decode(monkeypatch)
    with pytest.raises(InputError) as err:
        load(str(path))
    assert err.value.code == "truncated"


def test_scan_reports_the_issue_jpeg_as_truncated(tmp_path):
    """Issue 15 row 11, the exact input: status ok, risk 0.0, 2.2-3.6 GB RSS before; now an error record."""
    import json

    from cli import main

    path = tmp_path / "bomb.jpg"
    path.write_bytes(jpeg_claiming(11000, 11000))
    result = CliRunner().invoke(main, ["scan", "-q", str(path)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "error" and record["error"]["code"] == "truncated"


def test_real_images_of_every_size_still_load(tmp_path):
    """The floors are lower bounds real encoders never go under: flat and noisy images, small and large."""
    from forensics.io import load

    rng = np.random.default_rng(0)
    for h, w in ((1, 1), (8, 8), (9, 1000), (2000, 3000)):
        for img in (np.zeros((h, w), np.uint8), np.full((h, w, 3), 255, np.uint8),
                    (rng.random((h, w)) * 255).astype(np.uint8)):
            for ext in (".png", ".jpg"):
                path = tmp_path / f"x{ext}"
                path.write_bytes(cv2.imencode(ext, img)[1].tobytes())
                assert load(str(path)).pixels.shape[:2] == (h, w)
    progressive = cv2.imencode(".jpg", np.zeros((2000, 3000), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]
    path.write_bytes(progressive.tobytes())
    assert load(str(path)).pixels.shape == (2000, 3000)


def test_the_declared_size_limit_still_comes_first(tmp_path):
    """A header over max_pixels stays too_many_pixels (the cheaper, clearer reason)."""
    from forensics.io import load

    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(100000, 100000))
    with pytest.raises(InputError) as err:
        load(str(path))
    assert err.value.code == "too_many_pixels"
