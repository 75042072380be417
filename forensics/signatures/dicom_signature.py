"""DICOM PS3.15 Digital Signatures (PS3.3 C.12.1.1.3, the Digital Signatures Macro) made with the C2PA key.

Two signatures, each with its MAC Parameters item (SHA256 over Explicit VR Little Endian encodings, as DCMTK's
dcmsign computes them: the Data Elements Signed in tag order, then this signature's item attributes other than
Certificate of Signer, Signature and the certified time stamp):

* MAC 1, the **statement**: Conversion Type and medaudit's private provenance block, which holds the digest of the
  decoded pixel levels (0011,1010). It is C2PA's actions + ``org.medaudit.provenance``
  assertion: who made this, how, and which pixels.
* MAC 2, the **record**: every top-level element present when signing (bar those PS3.3 C.12.1.1.3.1.1 excludes:
  groups below 0008, group lengths, sequences, UN, the signature sequences themselves), Pixel Data included. It
  plays the part of C2PA's hard binding (``c2pa.hash.data``).

So: MAC 1 fails -> the statement was forged or altered (``invalid``); MAC 1 holds but the pixels' digest differs
-> ``content_changed``; both hold but MAC 2 fails -> ``metadata_changed`` (pixels as signed: other attributes or
the transfer syntax, e.g. lossless re-compression, changed); all hold -> ``valid``.

RSA keys sign with RSASSA-PKCS1-v1_5 (the Base RSA Digital Signature Profile); EC keys with ECDSA (DER, padded to an
even length), which DCMTK also reads. The Certificate of Signer is the signing certificate (X509_1993_SIG, DER).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from typing import Any

from forensics import provenance as P
from forensics.signatures.keys import SigningKey, chain_trusted, describe
from forensics.signatures.pixels import levels_sha256
from forensics.signatures.verdict import Verdict

EXPLICIT_LE = "1.2.840.10008.1.2.1"
DIGEST_OFFSET = 0x10  # private element (0011,1010): SHA-256 of the decoded pixel levels
_SIG_SEQ, _MAC_SEQ = 0xFFFAFFFA, 0x4FFE0001
_SIG_ITEM_SIGNED = (0x04000005, 0x04000100, 0x04000105, 0x04000110)  # MAC ID, UID, DateTime, Certificate Type
_HASHES = {"SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512", "SHA1": "sha1"}
# Conversion Type; the SOP Instance UID stays out (a PACS may re-assign it): it is in the record, MAC 2.
_STATEMENT_TAGS = (0x00080064,)


def _signable(elem) -> bool:
    tag = elem.tag
    return (tag.group >= 0x0008 and tag.element != 0 and tag != 0x00080001 and tag.group not in (0xFFFA, 0xFFFC)
            and tag != _MAC_SEQ and elem.VR not in ("SQ", "UN"))


def _encode(ds, tags) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    for tag in tags:
        write_data_element(fp, ds[tag], ds.get("SpecificCharacterSet"))
    return fp.getvalue()


def _item_bytes(item) -> bytes:
    return _encode(item, [t for t in _SIG_ITEM_SIGNED if t in item])


def _pixel_digest(ds) -> str:
    return levels_sha256(ds.pixel_array)


def _statement_tags(ds) -> list[int]:
    own = [e.tag for e in ds if e.tag.group == P.DICOM_PRIVATE_GROUP and _signable(e)]
    return sorted([t for t in _STATEMENT_TAGS if t in ds] + own)


def _sign_digest(key, digest: bytes, algorithm) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))
        return sig + b"\x00" * (len(sig) % 2)  # OB values have even length; the DER length says where it ends
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
    raise ValueError("DICOM signatures need an EC or RSA key")


def sign_bytes(raw: bytes, key: SigningKey, now: _dt.datetime | None = None) -> bytes:
    """The DICOM file ``raw`` with medaudit's pixel digest and the two Digital Signatures added.

    Works on the written bytes (not a Dataset being built) so every VR is resolved as a reader will see it.
    """
    from io import BytesIO

    import pydicom
    from cryptography.hazmat.primitives import hashes, serialization
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(BytesIO(raw), force=True)
    for tag in (_SIG_SEQ, _MAC_SEQ):  # re-signing replaces earlier signatures
        if tag in ds:
            del ds[tag]
    block = ds.private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR, create=True)
    block.add_new(DIGEST_OFFSET, "LO", _pixel_digest(ds))
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=False)  # resolve VRs of the new element as a reader will see them
    ds = pydicom.dcmread(BytesIO(buf.getvalue()), force=True)

    private, cert = key.private_key(), key.certificates()[0]
    stamp = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%d%H%M%S.%f+0000")
    record = [e.tag for e in ds if _signable(e)]
    macs, sigs = Sequence(), Sequence()
    for mac_id, tags in ((1, _statement_tags(ds)), (2, record)):
        mac = Dataset()
        mac.MACIDNumber = mac_id
        mac.MACCalculationTransferSyntaxUID = EXPLICIT_LE
        mac.MACAlgorithm = "SHA256"
        mac.DataElementsSigned = [int(t) for t in tags]
        item = Dataset()
        item.MACIDNumber = mac_id
        item.DigitalSignatureUID = generate_uid()
        item.DigitalSignatureDateTime = stamp
        item.CertificateType = "X509_1993_SIG"
        item.add_new(0x04000115, "OB", cert.public_bytes(serialization.Encoding.DER))
        digest = hashlib.sha256(_encode(ds, tags) + _item_bytes(item)).digest()
        item.add_new(0x04000120, "OB", _sign_digest(private, digest, hashes.SHA256()))
        macs.append(mac)
        sigs.append(item)
    ds.add_new(_MAC_SEQ, "SQ", macs)
    ds.add_new(_SIG_SEQ, "SQ", sigs)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def _der_length(der: bytes) -> bytes:
    """A DER SEQUENCE (ECDSA signature, certificate) without the pad byte an odd-length OB value gets: its own
    length header says where it ends."""
    if len(der) < 2 or der[0] != 0x30:
        return der
    if der[1] < 0x80:
        return der[: 2 + der[1]]
    n = der[1] & 0x7F
    if 1 <= n <= 4 and len(der) >= 2 + n:
        return der[: 2 + n + int.from_bytes(der[2 : 2 + n], "big")]
    return der


def _tag_list(value) -> list[int]:
    """Data Elements Signed as a list of ints (pydicom gives one tag for VM 1, a MultiValue otherwise)."""
    if value is None:
        return []
    if isinstance(value, int):
        return [int(value)]
    return [int(t) for t in value][:4096]


def _check_one(ds, item, mac) -> tuple[bool, Any, str]:
    """(signature holds, certificate or None, why not)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    try:
        cert = x509.load_der_x509_certificate(_der_length(bytes(item[0x04000115].value)))
    except Exception:  # noqa: BLE001 - absent or unparsable certificate
        return False, None, "no readable Certificate of Signer"
    if mac is None:
        return False, cert, "no MAC Parameters item"
    name = _HASHES.get(str(mac.get("MACAlgorithm", "")).upper())
    if str(mac.get("MACCalculationTransferSyntaxUID", "")) != EXPLICIT_LE or name is None:
        return False, cert, f"unsupported MAC algorithm {str(mac.get('MACAlgorithm', ''))[:16]}"
    tags = _tag_list(mac.get("DataElementsSigned"))
    missing = [t for t in tags if t not in ds]
    if not tags or missing:
        return False, cert, "a signed element was removed" if missing else "no Data Elements Signed"
    algorithm = getattr(hashes, name.upper())()
    digest = hashlib.new(name, _encode(ds, tags) + _item_bytes(item)).digest()
    sig = bytes(item.get(0x04000120).value) if 0x04000120 in item else b""
    public = cert.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(_der_length(sig), digest, ec.ECDSA(utils.Prehashed(algorithm)))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(sig, digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
        else:
            return False, cert, "unsupported key type"
    except InvalidSignature:
        return False, cert, "MAC does not match the signature"
    return True, cert, ""


def verify_dataset(ds, trust_pem: str | None = None) -> Verdict:
    """Check every Digital Signature at the top level of ``ds`` (a pydicom Dataset)."""
    from cryptography.hazmat.primitives import hashes

    if _SIG_SEQ not in ds:
        return Verdict("unsigned", "dicom")
    macs = {}
    for mac in ds.get(_MAC_SEQ) or []:
        macs.setdefault(mac.get("MACIDNumber"), mac)
    outcomes = []  # (mac id, holds, cert, why, signed tags)
    for item in list(ds[_SIG_SEQ].value or [])[:8]:
        mac = macs.get(item.get("MACIDNumber"))
        ok, cert, why = _check_one(ds, item, mac)
        outcomes.append((item.get("MACIDNumber"), ok, cert, why))
    if not outcomes:
        return Verdict("invalid", "dicom", failed=["empty Digital Signatures Sequence"])
    # the signer is the certificate of a statement signature (MAC 1) that verified: a trusted certificate in an item
    # whose signature does not hold proves nothing, and two verified signers that disagree are a forgery
    held = [c for mac_id, ok, c, _ in outcomes if mac_id == 1 and ok and c is not None]
    if len({c.fingerprint(hashes.SHA256()) for c in held}) > 1:
        return Verdict("invalid", "dicom", failed=["statement signatures by different certificates"])
    cert = held[0] if held else next((c for _, _, c, _ in outcomes if c is not None), None)
    verdict = Verdict("valid", "dicom")
    if cert is not None:
        verdict.signer, verdict.issuer = describe(cert.subject), describe(cert.issuer)
        when = _dt.datetime.now(_dt.timezone.utc)
        verdict.trusted = chain_trusted(cert, trust_pem, at=when) if trust_pem else None
    if ds.get("ConversionType") == "SYN":
        verdict.source_types.append("trainedAlgorithmicMedia")
    block = _own_block(ds)
    if block.get("kind") == "tampered":
        verdict.source_types = ["compositeWithTrainedAlgorithmicMedia"]
    elif block.get("kind") == "synthetic" and not verdict.source_types:
        verdict.source_types.append("trainedAlgorithmicMedia")
    verdict.generator = " ".join(v for v in (block.get("generator"), block.get("version")) if v) or None
    failed = [f"MAC {mac_id}: {why}" for mac_id, ok, _, why in outcomes if not ok]
    statement_holds = any(mac_id == 1 and ok for mac_id, ok, _, _ in outcomes)
    if not statement_holds:  # forged, wrong key, or the signed statement edited
        verdict.status, verdict.failed = "invalid", failed or ["no statement signature (MAC 1)"]
        return verdict
    if not failed:
        return verdict
    signed_digest = block.get("pixel_sha256")
    try:
        same = bool(signed_digest) and signed_digest == _pixel_digest(ds)
    except Exception:  # noqa: BLE001 - pixels no longer decode: certainly not the signed ones
        same = False
    verdict.status = "metadata_changed" if same else "content_changed"
    verdict.failed = failed
    return verdict


def _own_block(ds) -> dict[str, str]:
    """medaudit's private block as {key: value} (empty when absent)."""
    try:
        block = ds.private_block(P.DICOM_PRIVATE_GROUP, P.DICOM_PRIVATE_CREATOR)
    except (KeyError, ValueError):
        return {}
    out = {}
    for key, offset in list(P.DICOM_ELEMENTS.items()) + [("pixel_sha256", DIGEST_OFFSET)]:
        try:
            out[key] = str(block[offset].value)
        except (KeyError, ValueError):
            continue
    return out
