"""What a signature check concluded, the same shape for C2PA and DICOM."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Every status, each its own evidence code ``signature.<status>`` in the metadata analyzer.
STATUSES = (
    "valid",  # signature verifies, the signed content is unchanged
    "metadata_changed",  # signature verifies; the pixels are as signed, other bytes (metadata, encoding) changed
    "content_changed",  # signature verifies, but the pixels are no longer those that were signed
    "invalid",  # the signature itself does not verify (forged, altered manifest, wrong key, unreadable)
    "unsigned",  # no signature at all
)


@dataclass
class Verdict:
    """The outcome of checking one file's signature.

    Attributes:
        status: one of ``STATUSES``.
        kind: ``"c2pa"`` or ``"dicom"``.
        signer: the signing certificate's subject (CN, O), or None.
        issuer: its issuer (CN, O), or None.
        trusted: True when the signer is in the user's trust list or directly issued by a certificate there (one hop:
            intermediates are not walked), False when not,
            None when no trust list was given.
        source_types: IPTC digital source types the signed statement declares (last URI component).
        generator: generator and version named in the signed statement, or None.
        failed: names of the checks that failed (C2PA validation codes, DICOM MAC ids), for the message.
    """

    status: str
    kind: str
    signer: str | None = None
    issuer: str | None = None
    trusted: bool | None = None
    source_types: list[str] = field(default_factory=list)
    generator: str | None = None
    failed: list[str] = field(default_factory=list)

    @property
    def declares_synthetic(self) -> bool:
        return any(t in ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia") for t in self.source_types)

    def to_dict(self) -> dict:
        return {"status": self.status, "kind": self.kind, "signer": self.signer, "issuer": self.issuer,
                "trusted": self.trusted, "source_types": list(self.source_types), "generator": self.generator,
                "failed": list(self.failed)}
