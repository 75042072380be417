"""C2PA Content Credentials for PNG and JPEG through the official ``c2pa-python`` bindings, entirely offline.

Signing: a ``c2pa.actions.v2`` assertion (``c2pa.created`` with digitalSourceType trainedAlgorithmicMedia, or
compositeWithTrainedAlgorithmicMedia plus ``c2pa.edited`` for a tampered image) and medaudit's own assertion
``org.medaudit.provenance`` (generator, version, weights hash, seed, family, kind, and the pixel digest). No
time-stamp authority is contacted (``ta_url`` None): the claim carries no trusted time, which C2PA allows; no
thumbnail is embedded (a tampered image is a patient's image).

Verification: the SDK checks the claim signature, the certificate and the hash binding; remote manifests and OCSP
are switched off, so nothing leaves the machine. The trust list, when given, replaces the SDK's anchors.
"""

from __future__ import annotations

import functools
import io
import json
from typing import Any

from forensics import provenance as P
from forensics.signatures.keys import SigningKey
from forensics.signatures.verdict import Verdict

ASSERTION = "org.medaudit.provenance"
MIME = {"png": "image/png", "jpeg": "image/jpeg"}
_OFFLINE = {"remote_manifest_fetch": False, "ocsp_fetch": False}
# A failure of one of these means the content no longer matches the signed hash; any other failure (bar trust,
# OCSP and ingredients, reported apart) means the signature or the signed statement itself does not hold.
_BINDING = ("assertion.dataHash.mismatch", "assertion.boxesHash.mismatch", "assertion.bmffHash.mismatch",
            "assertion.collectionHash.mismatch")
_NOT_SIGNATURE = ("signingCredential.untrusted", "signingCredential.ocsp.", "ingredient.", "timeStamp.untrusted")
# Info keys copied into the medaudit assertion (scalars only: the statement stays small and predictable).
_STATEMENT_KEYS = ("generator", "version", "seed", "kind", "family", "modality", "weights_sha256", "index", "mode",
                   "model_steps", "created", "tool")


def available() -> bool:
    try:
        import c2pa  # noqa: F401
    except ImportError:
        return False
    return True


def _source_type(kind: str) -> str:
    return P.COMPOSITE_SOURCE_TYPE if kind == "tampered" else P.DIGITAL_SOURCE_TYPE


def manifest_definition(info: dict[str, Any], pixel_sha256: str) -> dict[str, Any]:
    """The manifest medaudit signs for an output described by ``info`` (see ``generators.provenance``)."""
    kind = info.get("kind", "synthetic")
    agent = {"name": f"{P.TOOL} {info.get('generator', '')}".strip(), "version": str(info.get("version", ""))}
    actions = [{"action": "c2pa.created", "digitalSourceType": _source_type(kind), "softwareAgent": agent}]
    if kind == "tampered":
        actions.append({"action": "c2pa.edited", "digitalSourceType": _source_type(kind), "softwareAgent": agent,
                        "description": f"lesion {info.get('mode', 'edit')} by {P.TOOL}"})
    statement = {k: info[k] for k in _STATEMENT_KEYS if k in info and isinstance(info[k], (str, int, float))}
    statement["pixel_sha256"] = pixel_sha256
    return {
        "claim_generator_info": [{"name": P.TOOL, "version": str(info.get("tool_version", info.get("version", "")))}],
        "title": f"{info.get('generator', P.TOOL)} output",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": ASSERTION, "data": statement},
        ],
    }


def sign(data: bytes, fmt: str, info: dict[str, Any], key: SigningKey, pixel_sha256: str) -> bytes:
    """``data`` (PNG or JPEG bytes) with a signed C2PA manifest embedded (PNG ``caBX``, JPEG APP11).

    Raises:
        ValueError: the SDK refuses the key or certificate (its message says why).
    """
    import c2pa

    alg = {"es256": c2pa.C2paSigningAlg.ES256, "es384": c2pa.C2paSigningAlg.ES384,
           "ps256": c2pa.C2paSigningAlg.PS256}[key.alg]
    ctx = c2pa.Context.from_dict({"verify": dict(_OFFLINE), "builder": {"thumbnail": {"enabled": False}}})
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, key.chain_pem, key.key_pem, None))
        builder = c2pa.Builder(manifest_definition(info, pixel_sha256), context=ctx)
        out = io.BytesIO()
        builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise ValueError(f"C2PA signing refused the key or certificate: {exc}") from None
    return out.getvalue()


@functools.lru_cache(maxsize=4)
def _context(trust_pem: str | None):
    import c2pa

    settings: dict[str, Any] = {"verify": dict(_OFFLINE)}
    if trust_pem:
        settings["trust"] = {"trust_anchors": trust_pem}
    return c2pa.Context.from_dict(settings)


def _source_types(manifest: dict) -> list[str]:
    out = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            dst = action.get("digitalSourceType") if isinstance(action, dict) else None
            if isinstance(dst, str):
                out.append(dst.rsplit("/", 1)[-1])
    return list(dict.fromkeys(out))


def _statement(manifest: dict) -> dict:
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and assertion.get("label") == ASSERTION and isinstance(assertion.get("data"),
                                                                                               dict):
            return assertion["data"]
    return {}


def verify(data: bytes, fmt: str, trust_pem: str | None, pixel_sha256) -> Verdict:
    """Check the C2PA manifest of PNG/JPEG ``data``.

    Args:
        trust_pem: certificates whose chains count as trusted, or None (then ``trusted`` is None).
        pixel_sha256: a callable returning the digest of the pixels as loaded (only called when the hash binding
            is broken, to tell ``content_changed`` from ``metadata_changed``).
    """
    import c2pa

    try:
        reader = c2pa.Reader(MIME[fmt], io.BytesIO(data), context=_context(trust_pem or None))
        store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        if type(exc).__name__.endswith("ManifestNotFound"):
            return Verdict("unsigned", "c2pa")
        return Verdict("invalid", "c2pa", failed=[f"unreadable manifest: {str(exc)[:120]}"])
    except (ValueError, TypeError) as exc:
        return Verdict("invalid", "c2pa", failed=[f"unreadable manifest: {str(exc)[:120]}"])
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest") or "", {})
    failures = [f.get("code", "") for f in results.get("failure") or [] if isinstance(f, dict)]
    successes = {s.get("code", "") for s in results.get("success") or [] if isinstance(s, dict)}
    sig = manifest.get("signature_info") or {}
    statement = _statement(manifest)
    verdict = Verdict(
        "valid", "c2pa",
        signer=sig.get("common_name") and f"CN={sig.get('common_name')}",
        issuer=sig.get("issuer"),
        trusted=("signingCredential.trusted" in successes) if trust_pem else None,
        source_types=_source_types(manifest),
        generator=" ".join(str(statement[k]) for k in ("generator", "version") if k in statement) or None,
    )
    broken = [c for c in failures if c in _BINDING]
    bad = [c for c in failures if c not in _BINDING and not c.startswith(_NOT_SIGNATURE)]
    if not manifest or "claimSignature.validated" not in successes:
        bad = bad or ["claimSignature.validated missing"]
    if bad:
        verdict.status, verdict.failed = "invalid", list(dict.fromkeys(bad))
    elif broken:
        signed = statement.get("pixel_sha256")
        same = isinstance(signed, str) and signed == pixel_sha256()
        verdict.status = "metadata_changed" if same else "content_changed"
        verdict.failed = list(dict.fromkeys(broken))
    return verdict
