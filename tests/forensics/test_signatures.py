"""Signed provenance end to end: a corpus made at test time (signed PNG/JPEG/DICOM, then edited, re-encoded, forged
or stripped) and the verdict the metadata analyzer gives each, by evidence code."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest

from forensics.analyzers.metadata import MetadataAnalyzer
from forensics.io import load
from forensics.signatures import load_signing_key, load_trust_list
from forensics.signatures.throwaway import make_chain
from generators import provenance

pytest.importorskip("c2pa")

INFO = {"generator": "cxr_gan", "version": "7", "seed": 3, "family": "gan", "weights_sha256": "ab" * 32}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    ours = make_chain(root / "ours")
    other = make_chain(root / "attacker", org="Someone Else", signer="medaudit signer")
    return {
        "key": load_signing_key(ours["key"], ours["chain"]),
        "trust": load_trust_list(ours["root"]),
        "other": load_signing_key(other["key"], other["chain"]),
        "paths": ours,
    }


def _pixels(rgb: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32), (0, 0), 3) * 2 - 0.5
    x = np.clip(x, 0, 1)
    return np.stack([x, x * 0.9, x * 0.8], -1) if rgb else x


def _signature(data: bytes, trust: str | None = None, path: str = "x") -> tuple[str, float, str]:
    img = load(path, data=data)
    finding = MetadataAnalyzer(trust_list=trust).analyze(img)
    found = [e for e in finding.evidence if e.code.startswith("signature.")]
    assert len(found) == 1, finding.evidence
    return found[0].code, found[0].weight, found[0].message


def _chunks(png: bytes) -> list[tuple[bytes, int, int]]:
    out, pos = [], 8
    while pos < len(png):
        n = struct.unpack(">I", png[pos : pos + 4])[0]
        out.append((png[pos + 4 : pos + 8], pos, pos + 12 + n))
        pos += 12 + n
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _cabx(png: bytes) -> bytes:
    return b"".join(png[a:b] for kind, a, b in _chunks(png) if kind == b"caBX")


def _with_cabx(png: bytes, cabx: bytes) -> bytes:
    """A PNG with a manifest store carried over (what an editor that keeps unknown chunks writes)."""
    ihdr_end = _chunks(png)[0][2]
    return png[:ihdr_end] + cabx + png[ihdr_end:]


def _app11(jpg: bytes) -> list[bytes]:
    segs, pos = [], 2
    while pos + 4 <= len(jpg) and jpg[pos] == 0xFF and jpg[pos + 1] != 0xDA:
        n = struct.unpack(">H", jpg[pos + 2 : pos + 4])[0]
        if jpg[pos + 1] == 0xEB:
            segs.append(jpg[pos : pos + 2 + n])
        pos += 2 + n
    return segs


@pytest.fixture(scope="module")
def signed(keys):
    png = provenance.sign(provenance.png_bytes(_pixels(), dict(INFO)), "png", dict(INFO), keys["key"])
    jpg = provenance.sign(provenance.jpeg_bytes(_pixels(rgb=True), dict(INFO)), "jpeg", dict(INFO), keys["key"])
    dcm = provenance.sign(provenance.dicom_bytes(_pixels(), dict(INFO)), "dicom", dict(INFO), keys["key"])
    return {"png": png, "jpeg": jpg, "dicom": dcm}


# --- PNG -----------------------------------------------------------------------------------------------------


def test_signed_png_is_valid_and_decisive_and_names_the_signer(signed, keys):
    code, weight, message = _signature(signed["png"], keys["trust"])
    assert (code, weight) == ("signature.valid", 1.0)
    assert "CN=medaudit signer" in message and "in the trust list" in message and "trainedAlgorithmicMedia" in message
    code, _, message = _signature(signed["png"])
    assert code == "signature.valid" and "no trust list given" in message
    finding = MetadataAnalyzer(trust_list=keys["trust"]).analyze(load("x.png", data=signed["png"]))
    assert finding.decisive and finding.score >= 0.99


def test_png_pixel_edit_is_content_changed(signed, keys):
    levels = cv2.imdecode(np.frombuffer(signed["png"], np.uint8), cv2.IMREAD_UNCHANGED)
    levels[10:20, 10:20] = 255 - levels[10:20, 10:20]
    edited = _with_cabx(cv2.imencode(".png", levels)[1].tobytes(), _cabx(signed["png"]))
    code, weight, message = _signature(edited, keys["trust"])
    assert code == "signature.content_changed" and 0 < weight < 0.5 and "dataHash" in message


def test_png_metadata_edit_and_lossless_reencode_keep_the_pixels_signed(signed, keys):
    meta = _with_cabx(signed["png"][: _chunks(signed["png"])[0][2]] + _chunk(b"tEXt", b"Comment\x00PACS")
                      + signed["png"][_chunks(signed["png"])[0][2] :], b"")
    assert _signature(meta, keys["trust"])[:2] == ("signature.metadata_changed", 1.0)
    levels = cv2.imdecode(np.frombuffer(signed["png"], np.uint8), cv2.IMREAD_UNCHANGED)
    recoded = _with_cabx(cv2.imencode(".png", levels, [cv2.IMWRITE_PNG_COMPRESSION, 0])[1].tobytes(),
                         _cabx(signed["png"]))
    assert _signature(recoded, keys["trust"])[:2] == ("signature.metadata_changed", 1.0)


def test_png_reencoded_or_stripped_is_unsigned(signed, keys):
    levels = cv2.imdecode(np.frombuffer(signed["png"], np.uint8), cv2.IMREAD_UNCHANGED)
    assert _signature(cv2.imencode(".png", levels)[1].tobytes(), keys["trust"])[:2] == ("signature.unsigned", 0.0)
    stripped = b"".join(signed["png"][a:b] for kind, a, b in _chunks(signed["png"]) if kind != b"caBX")
    assert _signature(signed["png"][:8] + stripped, keys["trust"])[0] == "signature.unsigned"


def test_png_forged_statement_and_wrong_key_are_invalid(signed, keys):
    forged = bytearray(signed["png"])
    at = forged.find(b"cxr_gan")
    forged[at] ^= 0x01
    kind_end = [c for c in _chunks(bytes(forged)) if c[0] == b"caBX"][0]
    body = bytes(forged[kind_end[1] + 8 : kind_end[2] - 4])
    forged[kind_end[2] - 4 : kind_end[2]] = struct.pack(">I", zlib.crc32(b"caBX" + body))
    code, weight, message = _signature(bytes(forged), keys["trust"])
    assert code == "signature.invalid" and weight == 0.5 and "hashedURI" in message

    import c2pa

    from forensics.signatures.c2pa_manifest import manifest_definition

    unsigned = provenance.png_bytes(_pixels(), dict(INFO))
    # Our certificate, someone else's key: the SDK refuses this unless told not to check its own work.
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, keys["key"].chain_pem, keys["other"].key_pem, None)
    ctx = c2pa.Context.from_dict({"verify": {"verify_after_sign": False, "remote_manifest_fetch": False},
                                  "builder": {"thumbnail": {"enabled": False}}})
    out = io.BytesIO()
    c2pa.Builder(manifest_definition(dict(INFO), "0" * 64), context=ctx).sign(
        c2pa.Signer.from_info(info), "image/png", io.BytesIO(unsigned), out)
    code, _, message = _signature(out.getvalue(), keys["trust"])
    assert code == "signature.invalid" and "claimSignature.mismatch" in message


def test_self_made_chain_verifies_but_is_not_trusted(keys):
    # C2PA refuses a self-signed signing certificate outright, so a forger's own CA is the self-signed case.
    forged = provenance.sign(provenance.png_bytes(_pixels(), dict(INFO)), "png", dict(INFO), keys["other"])
    code, _, message = _signature(forged, keys["trust"])
    assert code == "signature.valid" and "NOT in the trust list" in message


# --- JPEG ----------------------------------------------------------------------------------------------------


def test_jpeg_verdicts(signed, keys):
    jpg = signed["jpeg"]
    assert _signature(jpg, keys["trust"])[:2] == ("signature.valid", 1.0)
    com = b"\xff\xfe" + struct.pack(">H", 6) + b"PACS"
    assert _signature(jpg[:2] + com + jpg[2:], keys["trust"])[0] == "signature.metadata_changed"
    rgb = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
    rgb[5:15, 5:15] = 0
    edited = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    assert _signature(edited, keys["trust"])[0] == "signature.unsigned"  # re-encoding drops APP11
    kept = edited[:2] + b"".join(_app11(jpg)) + edited[2:]
    assert _signature(kept, keys["trust"])[0] == "signature.content_changed"


# --- DICOM ---------------------------------------------------------------------------------------------------


def _dicom(data: bytes):
    import pydicom

    return pydicom.dcmread(io.BytesIO(data), force=True)


def _save(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def test_dicom_signed_is_valid_and_trusted(signed, keys):
    code, weight, message = _signature(signed["dicom"], keys["trust"])
    assert (code, weight) == ("signature.valid", 1.0) and "in the trust list" in message and "cxr_gan 7" in message
    ds = _dicom(signed["dicom"])
    assert [m.MACIDNumber for m in ds.MACParametersSequence] == [1, 2]
    assert ds.MACParametersSequence[1].MACAlgorithm == "SHA256"
    assert 0x7FE00010 in ds.MACParametersSequence[1].DataElementsSigned


def test_dicom_pixel_edit_metadata_edit_reencode(signed, keys):
    ds = _dicom(signed["dicom"])
    pixels = bytearray(ds.PixelData)
    pixels[100] ^= 0x10
    ds.PixelData = bytes(pixels)
    assert _signature(_save(ds), keys["trust"])[0] == "signature.content_changed"

    ds = _dicom(signed["dicom"])
    ds.SeriesDescription = "renamed by a PACS"
    assert _signature(_save(ds), keys["trust"])[:2] == ("signature.metadata_changed", 1.0)

    ds = _dicom(signed["dicom"])
    ds.InstitutionName = "added later"  # not signed: the signed content is intact
    assert _signature(_save(ds), keys["trust"])[0] == "signature.valid"

    from pydicom.uid import RLELossless

    ds = _dicom(signed["dicom"])
    ds.compress(RLELossless)  # lossless, with a new SOP Instance UID (pydicom default)
    assert _signature(_save(ds), keys["trust"])[0] == "signature.metadata_changed"


def test_dicom_forged_statement_wrong_key_stripped(signed, keys):
    from forensics.signatures import dicom_signature

    ds = _dicom(signed["dicom"])
    ds.ConversionType = "DI"  # relabel a signed synthetic image as digitized film
    code, _, message = _signature(_save(ds), keys["trust"])
    assert code == "signature.invalid" and "MAC 1" in message

    forged = _dicom(dicom_signature.sign_bytes(signed["dicom"], keys["other"]))
    forged[0xFFFAFFFA].value[0][0x04000115].value = _dicom(signed["dicom"])[0xFFFAFFFA].value[0][0x04000115].value
    assert _signature(_save(forged), keys["trust"])[0] == "signature.invalid"

    ds = _dicom(signed["dicom"])
    del ds[0xFFFAFFFA]
    assert _signature(_save(ds), keys["trust"])[0] == "signature.unsigned"

    other = dicom_signature.sign_bytes(provenance.dicom_bytes(_pixels(), dict(INFO)), keys["other"])
    code, _, message = _signature(other, keys["trust"])
    assert code == "signature.valid" and "NOT in the trust list" in message


def test_malformed_signatures_never_crash(signed, keys):
    ds = _dicom(signed["dicom"])
    ds[0xFFFAFFFA].value[0][0x04000120].value = b"\x30\x82\xff"
    ds.MACParametersSequence[0].DataElementsSigned = [0x7FE00010, 0x12345678]
    assert _signature(_save(ds), keys["trust"])[0] == "signature.invalid"
    png = signed["png"]
    cut = bytearray(png)
    for kind, a, b in _chunks(png):
        if kind == b"caBX":
            body = png[a + 8 : b - 4][: (b - a) // 3]
            cut = png[:a] + _chunk(b"caBX", body) + png[b:]
    assert _signature(bytes(cut), keys["trust"])[0] == "signature.invalid"


def test_unsigned_files_report_unsigned(keys):
    assert _signature(provenance.png_bytes(_pixels(), dict(INFO)))[:2] == ("signature.unsigned", 0.0)
    assert _signature(provenance.dicom_bytes(_pixels(), dict(INFO)))[:2] == ("signature.unsigned", 0.0)


def test_keys_are_checked_and_never_shown(keys, tmp_path):
    assert "PRIVATE" not in repr(keys["key"])
    with pytest.raises(ValueError, match="not the certificate"):
        load_signing_key(keys["paths"]["key"], make_chain(tmp_path)["chain"])


def test_dicom_signer_is_the_one_whose_signature_holds(signed, keys):
    """A trusted certificate in a signature item that does not verify must not lend its name to another signer."""
    import copy

    from forensics.signatures import dicom_signature

    attacker = _dicom(dicom_signature.sign_bytes(provenance.dicom_bytes(_pixels(), dict(INFO)), keys["other"]))
    decoy = copy.deepcopy(_dicom(signed["dicom"])[0xFFFAFFFA].value[0])  # our trusted certificate ...
    decoy[0x04000120].value = bytes(len(decoy[0x04000120].value))  # ... with a signature of zeros
    attacker[0xFFFAFFFA].value.insert(0, decoy)
    code, _, message = _signature(_save(attacker), keys["trust"])
    assert code.startswith("signature.") and "in the trust list" not in message.replace("NOT in the trust list", "")
