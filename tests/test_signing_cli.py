"""`medaudit generate/tamper --sign-key --sign-cert --watermark-key` and `scan/audit --trust-list --watermark-key`
end to end on real outputs, with a throw-away certificate chain made here."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import main
from forensics.signatures.throwaway import make_chain

pytest.importorskip("c2pa")
SECRET = "hospital-17-watermark-secret-do-not-share"
FAST = ["--analyzers", "metadata,watermark"]  # the two that read provenance; the pixel detectors are tested apart


def _codes(record: dict, analyzer: str) -> dict[str, str]:
    finding = next(f for f in record["findings"] if f["analyzer"] == analyzer)
    return {e["code"]: e["message"] for e in finding["evidence"]}


def test_signed_keyed_outputs_verify_in_scan_and_keys_never_leak(tmp_path, monkeypatch):
    chain = make_chain(tmp_path / "ca")
    key_file = tmp_path / "wm.key"
    key_file.write_text(SECRET + "\n")
    sign = ["--sign-key", str(chain["key"]), "--sign-cert", str(chain["chain"])]
    out = tmp_path / "out"
    made = CliRunner().invoke(main, ["generate", "cxr_gan", "-n", "1", "--format", "jpeg", "--out", str(out), "-q",
                                     *sign, "--watermark-key", str(key_file)])
    assert made.exit_code == 0, made.output
    image = made.stdout.split()[0]
    assert image.endswith(".jpg")

    scanned = CliRunner().invoke(main, ["scan", "-q", *FAST, image, "--trust-list", str(chain["root"]),
                                        "--watermark-key", str(key_file)])
    record = json.loads(scanned.stdout)
    meta, mark = _codes(record, "metadata"), _codes(record, "watermark")
    assert "in the trust list" in meta["signature.valid"] and "trainedAlgorithmicMedia" in meta["signature.valid"]
    assert "watermark.keyed" in mark and record["risk"] >= 0.99
    assert SECRET not in scanned.output

    # Without the key the keyed mark is invisible (it replaces the public one); the env var is the other way in.
    plain = json.loads(CliRunner().invoke(main, ["scan", "-q", *FAST, image]).stdout)
    assert set(_codes(plain, "watermark")) == {"watermark.absent"}
    assert "no trust list given" in _codes(plain, "metadata")["signature.valid"]
    monkeypatch.setenv("MEDAUDIT_WATERMARK_KEY", SECRET)
    by_env = json.loads(CliRunner().invoke(main, ["scan", "-q", *FAST, image]).stdout)
    assert "watermark.keyed" in _codes(by_env, "watermark")

    report = tmp_path / "report"
    audited = CliRunner().invoke(main, ["audit", "-q", *FAST, image, "--out", str(report),
                                        "--watermark-key", str(key_file), "--trust-list", str(chain["root"])])
    assert audited.exit_code == 0, audited.output
    for written in report.iterdir():
        if written.is_file():
            assert SECRET.encode() not in written.read_bytes()


def test_tamper_signed_dicom_declares_a_composite(tmp_path):
    import pydicom.examples

    chain = make_chain(tmp_path / "ca")
    out = tmp_path / "fake.dcm"
    result = CliRunner().invoke(main, ["tamper", "inject", str(pydicom.examples.get_path("ct")), "--at", "64,70",
                                       "--out", str(out), "--sign-key", str(chain["key"]),
                                       "--sign-cert", str(chain["chain"])])
    assert result.exit_code == 0, result.output
    scanned = CliRunner().invoke(main, ["scan", "-q", *FAST, str(out), "--trust-list", str(chain["root"])])
    record = json.loads(scanned.stdout)
    message = _codes(record, "metadata")["signature.valid"]
    assert "compositeWithTrainedAlgorithmicMedia" in message and "DICOM Digital Signature" in message


def test_signing_options_are_checked(tmp_path):
    chain = make_chain(tmp_path / "ca")
    half = CliRunner().invoke(main, ["generate", "cxr_gan", "-n", "1", "--out", str(tmp_path / "o"),
                                     "--sign-key", str(chain["key"])])
    assert half.exit_code == 2 and "go together" in half.output
    short = tmp_path / "short.key"
    short.write_text("abc")
    bad = CliRunner().invoke(main, ["scan", "-q", str(chain["root"]), "--watermark-key", str(short)])
    assert bad.exit_code == 2 and "at least 16 bytes" in bad.output
    not_pem = CliRunner().invoke(main, ["scan", "-q", str(short), "--trust-list", str(short)])
    assert not_pem.exit_code == 2 and "no PEM certificate" in not_pem.output


def test_inspect_shows_the_verified_signature_status(tmp_path):
    chain = make_chain(tmp_path / "ca")
    out = tmp_path / "out"
    made = CliRunner().invoke(main, ["generate", "cxr_gan", "-n", "1", "--out", str(out), "-q",
                                     "--sign-key", str(chain["key"]), "--sign-cert", str(chain["chain"])])
    assert made.exit_code == 0, made.output
    image = made.stdout.split()[0]
    record = json.loads(CliRunner().invoke(main, ["inspect", "--format", "json", "-q", image]).stdout)
    [section] = [s for s in record["sections"] if s["section"].startswith("Signature")]
    assert [e["name"] for e in section["entries"]] == ["signature.valid"]
    assert "trainedAlgorithmicMedia" in section["entries"][0]["value"]
    edited = tmp_path / "edited.png"  # the same bytes with one pixel row changed: the binding breaks
    import cv2

    pixels = cv2.imread(image, cv2.IMREAD_UNCHANGED)
    pixels[0] = 255 - pixels[0]
    cv2.imwrite(str(edited), pixels)
    record = json.loads(CliRunner().invoke(main, ["inspect", "--format", "json", "-q", str(edited)]).stdout)
    [section] = [s for s in record["sections"] if s["section"].startswith("Signature")]
    assert [e["name"] for e in section["entries"]] == ["signature.unsigned"]  # re-encoded: the manifest is gone
