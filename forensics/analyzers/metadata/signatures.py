"""Signed provenance checked in every scan: C2PA manifests (PNG, JPEG) and DICOM Digital Signatures become one of
the ``signature.*`` evidence codes (see ``forensics.signatures``; the checks run offline).

A valid signature that declares synthetic media (trainedAlgorithmicMedia / compositeWithTrainedAlgorithmicMedia)
is decisive, and so is ``metadata_changed`` with that declaration, since the signed pixel digest still matches: the
pixels are the ones the signer made. A broken binding or signature is suspicious but bounded: an honest pipeline
(a PACS rewriting headers, a lossy re-export) breaks bindings too.
"""

from __future__ import annotations

from forensics.analyzers.metadata._common import snippet
from forensics.analyzers.metadata.codes import evidence
from forensics.records import Evidence, MedicalImage
from forensics.signatures.verdict import Verdict

_WHAT = {"c2pa": "C2PA manifest", "dicom": "DICOM Digital Signature"}


def _who(v: Verdict) -> str:
    who = snippet(v.signer or "an unnamed signer", 80) + (f" (issued by {snippet(v.issuer, 80)})" if v.issuer else "")
    if v.trusted is None:
        return f"signed by {who} (no trust list given)"
    return f"signed by {who}, {'in' if v.trusted else 'NOT in'} the trust list"


def _declares(v: Verdict) -> str:
    parts = []
    if v.source_types:
        parts.append("declares " + ", ".join(v.source_types[:3]))
    if v.generator:
        parts.append(f"generator {snippet(v.generator, 60)}")
    return "; ".join(parts)


def verdict_evidence(v: Verdict) -> list[Evidence]:
    """The evidence for one verdict: code ``signature.<status>``, message naming the signer and failed checks."""
    what = _WHAT.get(v.kind, v.kind)
    declares = _declares(v)
    failed = ", ".join(snippet(f, 80) for f in v.failed[:3])
    if v.status == "unsigned":
        return [evidence("signature.unsigned", f"no {what}: provenance unsigned")]
    if v.status == "valid":
        weight = 1.0 if v.declares_synthetic else 0.0
        tail = f"; {declares}" if declares else ""
        return [evidence("signature.valid", f"{what} valid, content unchanged since signing, {_who(v)}{tail}",
                         weight)]
    if v.status == "metadata_changed":
        weight = 1.0 if v.declares_synthetic else evidence("signature.metadata_changed", "").weight
        return [evidence("signature.metadata_changed",
                         f"{what} valid and the pixels are those signed, but other bytes changed after signing "
                         f"({failed}); {_who(v)}" + (f"; {declares}" if declares else ""), weight)]
    if v.status == "content_changed":
        return [evidence("signature.content_changed",
                         f"{what}: the pixels changed after signing (check failed: {failed}); {_who(v)}"
                         + (f"; the signed statement {declares}" if declares else ""))]
    return [evidence("signature.invalid",
                     f"{what} does not verify (check failed: {failed or 'signature'}): forged, made with another "
                     f"key, or its signed statement was edited" + (f"; it claims to be {_who(v)}" if v.signer else ""))]


def raster_signature(image: MedicalImage, container: str, trust_pem: str | None) -> list[Evidence]:
    """Check the C2PA manifest of a PNG or JPEG (``signature.unsigned`` when there is none)."""
    from forensics.signatures import c2pa_manifest
    from forensics.signatures.pixels import display_sha256

    raw = image.raw or b""
    if not _has_store(raw, container):
        return verdict_evidence(Verdict("unsigned", "c2pa"))
    if not c2pa_manifest.available():
        return []  # c2pa.manifest still reports what the store claims, unverified

    def digest() -> str:
        return display_sha256(image.pixels, image.bit_depth)

    return verdict_evidence(c2pa_manifest.verify(raw, container, trust_pem, digest))


def dicom_signature(ds, trust_pem: str | None) -> list[Evidence]:
    from forensics.signatures.dicom_signature import verify_dataset

    return verdict_evidence(verify_dataset(ds, trust_pem))


def _has_store(raw: bytes, container: str) -> bool:
    """Cheap pre-check before loading the SDK: a PNG caBX chunk or a JPEG APP11 JUMBF segment."""
    if container == "png":
        return b"caBX" in raw
    return b"\xff\xeb" in raw and b"jumb" in raw
