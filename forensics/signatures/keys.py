"""The signer's key and certificate chain, and the verifier's trust list. Keys stay with the user: read from their
files for one run, never written, never printed (``repr`` shows the subject only)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: Passphrase of an encrypted private key (never a command-line option: argv is visible to other users).
PASSWORD_ENV = "MEDAUDIT_SIGN_KEY_PASSWORD"


@dataclass(frozen=True)
class SigningKey:
    """A private key and its certificate chain (signer first, then intermediates; the root may follow).

    Attributes:
        alg: the C2PA signing algorithm for this key: ``es256`` / ``es384`` (ECDSA P-256 / P-384) or ``ps256``
            (RSA-PSS); DICOM signatures use ECDSA or RSA PKCS#1 v1.5 with the same key.
        subject: the signing certificate's subject, for messages.
    """

    key_pem: bytes = field(repr=False)
    chain_pem: bytes = field(repr=False)
    alg: str = "es256"
    subject: str = ""

    def private_key(self):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return load_pem_private_key(self.key_pem, password=None)

    def certificates(self) -> list:
        from cryptography import x509

        return x509.load_pem_x509_certificates(self.chain_pem)


def describe(name) -> str:
    """``CN=…, O=…`` of an x509 Name (the parts people recognise), else its RFC 4514 string."""
    from cryptography.x509.oid import NameOID

    parts = []
    for oid, label in ((NameOID.COMMON_NAME, "CN"), (NameOID.ORGANIZATION_NAME, "O")):
        parts += [f"{label}={a.value}" for a in name.get_attributes_for_oid(oid)]
    return ", ".join(parts) or name.rfc4514_string()


def load_signing_key(key_path: str | os.PathLike, chain_path: str | os.PathLike) -> SigningKey:
    """Read a PEM private key and a PEM certificate chain and check that they belong together.

    C2PA accepts an ES256/ES384 (EC P-256/P-384) or PS256 (RSA >= 2048 bit) key whose signing certificate has the
    digitalSignature key usage, an extended key usage C2PA allows (emailProtection is the one every validator takes),
    Subject/Authority Key Identifiers, and is issued by a CA (a self-signed signing certificate is refused).

    Raises:
        ValueError: unreadable files, a key that is not EC/RSA, a chain whose first certificate is not the key's.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key_bytes = Path(key_path).read_bytes()
        chain_bytes = Path(chain_path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the signing key or certificate: {exc.strerror or exc}") from None
    password = os.environ.get(PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(key_bytes, password=password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--sign-key is not a readable PEM private key ({exc}); an encrypted key needs "
                         f"${PASSWORD_ENV}") from None
    try:
        chain = x509.load_pem_x509_certificates(chain_bytes)
    except ValueError:
        raise ValueError("--sign-cert holds no PEM certificate") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in ("secp256r1", "secp384r1"):
        alg = "es256" if key.curve.name == "secp256r1" else "es384"
    elif isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        alg = "ps256"
    else:
        raise ValueError("the signing key must be EC P-256/P-384 or RSA >= 2048 bit (what C2PA and DICOM accept)")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if chain[0].public_key().public_bytes(enc, pub) != key.public_key().public_bytes(enc, pub):
        raise ValueError("the first certificate of --sign-cert is not the certificate of --sign-key")
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return SigningKey(key_pem=pkcs8, chain_pem=pem, alg=alg, subject=describe(chain[0].subject))


def load_trust_list(path: str | os.PathLike) -> str:
    """The PEM text of a trust list (one or more CA or signer certificates).

    Raises:
        ValueError: the file cannot be read or holds no certificate.
    """
    from cryptography import x509

    try:
        text = Path(path).read_bytes()
        certs = x509.load_pem_x509_certificates(text)
    except OSError as exc:
        raise ValueError(f"cannot read the trust list: {exc.strerror or exc}") from None
    except ValueError:
        raise ValueError(f"{path} holds no PEM certificate") from None
    from cryptography.hazmat.primitives import serialization

    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def chain_trusted(cert, trust_pem: str | None, at=None) -> bool | None:
    """Whether ``cert`` is in the trust list or directly issued (signature checked) by a certificate in it.

    None when no trust list is given. ``at`` (a datetime) also requires the certificate to be valid then.
    """
    if not trust_pem:
        return None
    from cryptography import x509

    if at is not None and not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
        return False
    for anchor in x509.load_pem_x509_certificates(trust_pem.encode("ascii")):
        if anchor == cert:
            return True
        if anchor.subject == cert.issuer:
            try:
                cert.verify_directly_issued_by(anchor)
                return True
            except (ValueError, TypeError, Exception):  # noqa: BLE001 - wrong signature or key type: not this anchor
                continue
    return False
