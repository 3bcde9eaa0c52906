"""X.509 certificates: one DER/PEM certificate or a PEM bundle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519

from . import der
from .model import MAX_CERTIFICATES, FileMetadata, ParseError, as_utc, clean_text, hex_pairs, rfc3339
from .pem import PemBlock

CERTIFICATE_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})

# OpenSSL's short names for attributes RFC 4514 has none for (`openssl x509 -nameopt RFC2253`),
# so a subject reads as openssl shows it rather than as dotted numbers.
OPENSSL_ATTRIBUTE_NAMES = {x509.ObjectIdentifier(dotted): name for dotted, name in {
    "1.2.840.113549.1.9.1": "emailAddress",
    "1.2.840.113549.1.9.2": "unstructuredName",
    "1.2.840.113549.1.9.8": "unstructuredAddress",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.9": "street",
    "2.5.4.12": "title",
    "2.5.4.13": "description",
    "2.5.4.15": "businessCategory",
    "2.5.4.16": "postalAddress",
    "2.5.4.17": "postalCode",
    "2.5.4.18": "postOfficeBox",
    "2.5.4.41": "name",
    "2.5.4.42": "GN",
    "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "2.5.4.97": "organizationIdentifier",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}.items()}


def distinguished_name(name: x509.Name) -> str:
    """RFC 4514 text with OpenSSL's attribute names, e.g. `emailAddress=ci@example.com,CN=Build`."""
    return clean_text(name.rfc4514_string(OPENSSL_ATTRIBUTE_NAMES))


def load_certificate(data: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except Exception as exc:
        raise ParseError("invalid certificate") from exc


def not_after(cert: x509.Certificate) -> datetime:
    return as_utc(cert.not_valid_after_utc)


def serial_hex(cert: x509.Certificate) -> str:
    serial = cert.serial_number
    digits = format(abs(serial), "X")
    digits = ("0" * (len(digits) % 2)) + digits
    return clean_text(("-" if serial < 0 else "") + digits, 128)


def public_key_info(cert: x509.Certificate) -> dict[str, Any]:
    try:
        key = cert.public_key()
    except Exception:
        try:
            return {"public_key_type": clean_text(cert.public_key_algorithm_oid.dotted_string, 128)}
        except Exception:
            return {"public_key_type": "unknown"}
    return key_description(key, "public_key")


def key_description(key: object, prefix: str) -> dict[str, Any]:
    """{prefix_type, prefix_size[, prefix_curve]} for a public or private key object."""
    kind, size, curve = describe_key(key)
    info: dict[str, Any] = {f"{prefix}_type": kind}
    if size is not None:
        info[f"{prefix}_size"] = size
    if curve is not None:
        info[f"{prefix}_curve"] = curve
    return info


def describe_key(key: object) -> tuple[str, int | None, str | None]:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return "EC", key.curve.key_size, key.curve.name
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey | ed448.Ed448PrivateKey):
        return "Ed448", 448, None
    if isinstance(key, dsa.DSAPublicKey | dsa.DSAPrivateKey):
        return "DSA", key.key_size, None
    if isinstance(key, x25519.X25519PublicKey | x25519.X25519PrivateKey):
        return "X25519", 256, None
    if isinstance(key, x448.X448PublicKey | x448.X448PrivateKey):
        return "X448", 448, None
    return "unknown", None, None


def certificate_fields(cert: x509.Certificate) -> dict[str, Any]:
    """What a user wants to see of one certificate; all of it public."""
    fields: dict[str, Any] = {}
    try:
        fields["subject"] = distinguished_name(cert.subject)
    except Exception:
        fields["subject"] = None
    try:
        fields["issuer"] = distinguished_name(cert.issuer)
    except Exception:
        fields["issuer"] = None
    fields["serial"] = serial_hex(cert)
    fields["not_before"] = rfc3339(cert.not_valid_before_utc)
    fields["not_after"] = rfc3339(cert.not_valid_after_utc)
    fields["sha256_fingerprint"] = hex_pairs(cert.fingerprint(hashes.SHA256()))
    fields.update(public_key_info(cert))
    return fields


def summarize(certs: list[x509.Certificate]) -> tuple[dict[str, Any], datetime | None]:
    """One certificate: its fields at top level. Several: `certificates`, `count`, and the top-level
    fields of the one that expires first."""
    if not certs:
        return {}, None
    listed = [certificate_fields(cert) for cert in certs]
    first = min(range(len(certs)), key=lambda index: not_after(certs[index]))
    metadata = dict(listed[first])
    if len(certs) > 1:
        metadata["certificates"] = listed
        metadata["count"] = len(certs)
    return metadata, not_after(certs[first])


def _first_value(data: bytes) -> bytes:
    """A TRUSTED CERTIFICATE is the certificate followed by OpenSSL's trust settings."""
    try:
        return data[: der.read_tlv(data).end]
    except der.DerError as exc:
        raise ParseError("invalid certificate") from exc


def parse_pem_certificates(blocks: list[PemBlock], more: bool) -> FileMetadata:
    certs: list[x509.Certificate] = []
    failed = 0
    truncated = False
    for block in blocks:
        if block.label not in CERTIFICATE_LABELS:
            continue
        if not block.complete:
            truncated = True
            continue
        if len(certs) + failed >= MAX_CERTIFICATES:
            more = True
            break
        try:
            body = block.decode()
            if block.label == "TRUSTED CERTIFICATE":
                body = _first_value(body)
            certs.append(load_certificate(body))
        except (ValueError, ParseError):
            failed += 1
    metadata: dict[str, Any] = {"type": "x509"}
    summary, expires_at = summarize(certs)
    metadata.update(summary)
    if any(block.label.endswith("PRIVATE KEY") for block in blocks):
        metadata["contains_private_key"] = True
    if more:
        metadata["parse_error"] = f"more than {MAX_CERTIFICATES} certificates; only the first were read"
    elif truncated:
        metadata["parse_error"] = "truncated PEM block"
    elif failed:
        metadata["parse_error"] = f"{failed} certificate(s) could not be parsed"
    return FileMetadata(metadata, expires_at)


def parse_der_certificate(data: bytes) -> FileMetadata:
    cert = load_certificate(data)
    metadata: dict[str, Any] = {"type": "x509"}
    summary, expires_at = summarize([cert])
    metadata.update(summary)
    return FileMetadata(metadata, expires_at)
