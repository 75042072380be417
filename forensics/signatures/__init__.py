"""Signed provenance: C2PA manifests (PNG, JPEG) and DICOM PS3.15 Digital Signatures, made and checked here.

* ``keys``: the user's signing key and certificate chain (``--sign-key`` / ``--sign-cert``) and trust lists.
* ``c2pa_manifest``: sign and verify Content Credentials through the official ``c2pa-python`` bindings, offline.
* ``dicom_signature``: sign and verify a Digital Signatures Sequence (FFFA,FFFA) with the same key.
* ``verdict``: the one result both verifiers return, which the metadata analyzer turns into evidence.

The generators sign (``generators.provenance``); every scan verifies (``forensics.analyzers.metadata``).
"""

from forensics.signatures.keys import SigningKey, load_signing_key, load_trust_list
from forensics.signatures.verdict import STATUSES, Verdict

__all__ = ["STATUSES", "SigningKey", "Verdict", "load_signing_key", "load_trust_list"]
