"""Throw-away certificate chains for tests, fuzzing and trying signing out: a root CA and a signer it issues, with
what C2PA requires (digitalSignature key usage, emailProtection EKU, key identifiers, a CA-issued signer). Never
for production: the keys are written unencrypted and nobody else trusts the root."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path


def _name(common_name: str, org: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def _certificate(subject, key, issuer, issuer_key, *, ca: bool, days: int = 30):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = _dt.datetime.now(_dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer_key is not key:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    if not ca:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_chain(folder: str | os.PathLike, *, org: str = "Test Hospital", signer: str = "medaudit signer",
               rsa: bool = False) -> dict[str, Path]:
    """Write ``root.pem`` (the CA, for a trust list), ``chain.pem`` (signer + root) and ``key.pem`` (the signer's
    unencrypted key; EC P-256, or RSA 2048 with ``rsa``) into ``folder``.

    Returns:
        {"root": path, "chain": path, "key": path}.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{org} Root CA", org)
    root = _certificate(root_name, root_key, root_name, root_key, ca=True, days=365)
    key = rsa_keys.generate_private_key(65537, 2048) if rsa else ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(_name(signer, org), key, root_name, root_key, ca=False)
    pem = serialization.Encoding.PEM
    paths = {"root": folder / "root.pem", "chain": folder / "chain.pem", "key": folder / "key.pem"}
    paths["root"].write_bytes(root.public_bytes(pem))
    paths["chain"].write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    paths["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(paths["key"], 0o600)
    return paths
