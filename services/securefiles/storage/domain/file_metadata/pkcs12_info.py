"""PKCS#12 (`.p12`, `.pfx`, and PKCS#12 Java/Android keystores), read with the bounded DER reader.

The file is taken apart here rather than handed to OpenSSL because every costly step is chosen by
the file: MAC and encryption iteration counts (charged to a `WorkBudget` before they run, see
`pbe`), nesting of SafeContents bags, the number of bags and certificates, and the size of the
private key (loaded without OpenSSL's slow RSA consistency check). Passwords tried: the given one,
then no password and the empty password; none is stored. "encrypted" is true when the given
password was needed (it verified the MAC or decrypted content).

Entries as Java's keytool writes them: a key bag or secret bag with a friendlyName (the alias) and a
localKeyID its certificate shares, and trusted certificates marked with Oracle's trusted-key-usage
attribute. They give `aliases` and `entries` as JKS files do, and the keystore expiry rule (see
`keystore_expiry`): the earliest expiry among the entries' own certificates.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_private_key

from . import der, pbe
from .model import MAX_CERTIFICATES, FileMetadata, ParseError, as_utc, clean_text
from .x509_info import certificate_fields, describe_key, load_certificate

DATA = "1.2.840.113549.1.7.1"
SIGNED_DATA = "1.2.840.113549.1.7.2"
ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
KEY_BAG = "1.2.840.113549.1.12.10.1.1"
SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
CERT_BAG = "1.2.840.113549.1.12.10.1.3"
SECRET_BAG = "1.2.840.113549.1.12.10.1.5"
SAFE_CONTENTS_BAG = "1.2.840.113549.1.12.10.1.6"
X509_CERTIFICATE = "1.2.840.113549.1.9.22.1"
FRIENDLY_NAME = "1.2.840.113549.1.9.20"
LOCAL_KEY_ID = "1.2.840.113549.1.9.21"
JAVA_TRUSTED_KEY_USAGE = "2.16.840.1.113894.746875.1.1"

MAX_AUTH_SAFES = 64
MAX_BAGS = 10_000
MAX_BAG_NESTING = 3
MAX_ATTRIBUTES = 32
MAX_KEY_BYTES = 256 * 1024
MAX_CONTENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class _KeyBag:
    buf: bytes  # the buffer `algorithm` points into
    algorithm: pbe.Algorithm | None  # None: `data` is a plain PrivateKeyInfo
    data: bytes  # PrivateKeyInfo, or the encrypted one
    key_id: bytes | None
    name: str | None = None


@dataclass(frozen=True)
class _Attributes:
    name: str | None = None  # friendlyName: the alias
    key_id: bytes | None = None  # localKeyID: shared by a key and its certificate
    trusted: bool = False  # a Java trusted-certificate entry


@dataclass
class _Bags:
    certs: list[tuple[bytes, _Attributes]] = field(default_factory=list)
    keys: list[_KeyBag] = field(default_factory=list)
    secret_keys: list[str | None] = field(default_factory=list)  # their aliases
    count: int = 0
    too_many_certs: bool = False


@dataclass(frozen=True)
class _Encrypted:
    buf: bytes
    alg: pbe.Algorithm
    ciphertext: bytes


@dataclass(frozen=True)
class _Mac:
    buf: bytes
    alg: pbe.Algorithm
    digest: bytes
    salt: bytes
    iterations: int


@dataclass(frozen=True)
class _Pfx:
    auth_safe: bytes
    mac: _Mac | None


def _content_info(buf: bytes, value: der.Tlv) -> tuple[str, der.Tlv | None]:
    der.expect_sequence(value)
    parts = der.child_list(buf, value, max_count=2)
    if not parts:
        raise der.DerError("unexpected structure")
    content = der.explicit(buf, parts[1], 0) if len(parts) > 1 else None
    return der.read_oid(buf, parts[0]), content


def _read_pfx(data: bytes) -> _Pfx:
    top = der.expect_sequence(der.read_tlv(data))
    parts = der.child_list(data, top, max_count=3)
    if len(parts) < 2 or der.read_integer(data, parts[0]) != 3:
        raise der.DerError("unexpected structure")
    kind, content = _content_info(data, parts[1])
    if kind == SIGNED_DATA:
        raise ParseError("PKCS#12 public-key integrity mode is not supported")
    if kind != DATA or content is None:
        raise der.DerError("unexpected structure")
    auth_safe = der.read_octets(data, content, MAX_CONTENT_BYTES)
    mac = None
    if len(parts) == 3:
        mac_data = der.child_list(data, der.expect_sequence(parts[2]), max_count=3)
        if len(mac_data) < 2:
            raise der.DerError("unexpected structure")
        digest_info = der.child_list(data, der.expect_sequence(mac_data[0]), max_count=2)
        if len(digest_info) != 2:
            raise der.DerError("unexpected structure")
        iterations = der.read_integer(data, mac_data[2], 8) if len(mac_data) == 3 else 1
        mac = _Mac(data, pbe.algorithm(data, digest_info[0]), der.read_octets(data, digest_info[1], 128),
                   der.read_octets(data, mac_data[1], pbe.MAX_SALT_BYTES), iterations)
    return _Pfx(auth_safe, mac)


def looks_like_pfx(data: bytes) -> bool:
    """PFX ::= SEQUENCE { version 3, authSafe ContentInfo, … }: checked on the headers only."""
    try:
        top = der.expect_sequence(der.read_tlv(data))
        first = der.read_tlv(data, top.content_start, top.content_end)
        if der.read_integer(data, first) != 3:
            return False
        second = der.expect_sequence(der.read_tlv(data, first.end, top.content_end))
        oid = der.read_oid(data, der.read_tlv(data, second.content_start, second.content_end))
        return oid in (DATA, SIGNED_DATA)
    except (der.DerError, ParseError):
        return False


def _attributes(buf: bytes, value: der.Tlv | None) -> _Attributes:
    name = key_id = None
    trusted = False
    if value is None:
        return _Attributes()
    der.expect(value, der.SET, constructed=True)
    for attribute in der.children(buf, value, MAX_ATTRIBUTES):
        parts = der.child_list(buf, der.expect_sequence(attribute), max_count=2)
        if len(parts) != 2:
            raise der.DerError("unexpected structure")
        oid = der.read_oid(buf, parts[0])
        values = der.child_list(buf, der.expect(parts[1], der.SET, constructed=True), max_count=MAX_ATTRIBUTES)
        if not values:
            continue
        if oid == FRIENDLY_NAME and values[0].is_(der.BMP_STRING):
            name = clean_text(der.read_bmp_string(buf, values[0]), 256)
        elif oid == LOCAL_KEY_ID and values[0].is_(der.OCTET_STRING):
            key_id = der.read_octets(buf, values[0], 128)
        elif oid == JAVA_TRUSTED_KEY_USAGE:
            trusted = True
    return _Attributes(name, key_id, trusted)


def _collect(buf: bytes, safe_contents: bytes | der.Tlv, bags: _Bags, depth: int = 0) -> None:
    """Gather the bags of one SafeContents (nested SafeContents bags: `MAX_BAG_NESTING` levels)."""
    if isinstance(safe_contents, bytes):
        buf = safe_contents
        top = der.read_tlv(buf)
    else:
        top = safe_contents
    der.expect_sequence(top)
    for bag in der.children(buf, top, MAX_BAGS + 1):
        bags.count += 1
        if bags.count > MAX_BAGS:
            raise ParseError("too many PKCS#12 bags")
        parts = der.child_list(buf, der.expect_sequence(bag), max_count=3)
        if len(parts) < 2:
            raise der.DerError("unexpected structure")
        kind = der.read_oid(buf, parts[0])
        value = der.explicit(buf, parts[1], 0)
        attributes = _attributes(buf, parts[2] if len(parts) == 3 else None)
        if kind == CERT_BAG:
            cert_parts = der.child_list(buf, der.expect_sequence(value), max_count=2)
            if len(cert_parts) != 2 or der.read_oid(buf, cert_parts[0]) != X509_CERTIFICATE:
                continue
            if len(bags.certs) >= MAX_CERTIFICATES:
                bags.too_many_certs = True
                continue
            cert = der.read_octets(buf, der.explicit(buf, cert_parts[1], 0), MAX_CONTENT_BYTES)
            bags.certs.append((cert, attributes))
        elif kind == KEY_BAG:
            bags.keys.append(_KeyBag(buf, None, buf[value.start:value.end], attributes.key_id, attributes.name))
        elif kind == SHROUDED_KEY_BAG:
            epki = der.child_list(buf, der.expect_sequence(value), max_count=2)
            if len(epki) != 2:
                raise der.DerError("unexpected structure")
            encrypted_key = der.read_octets(buf, epki[1], MAX_KEY_BYTES)
            bags.keys.append(_KeyBag(buf, pbe.algorithm(buf, epki[0]), encrypted_key, attributes.key_id,
                                     attributes.name))
        elif kind == SECRET_BAG:
            bags.secret_keys.append(attributes.name)
        elif kind == SAFE_CONTENTS_BAG:
            if depth + 1 > MAX_BAG_NESTING:
                raise ParseError("PKCS#12 bags nested too deeply")
            _collect(buf, value, bags, depth + 1)


def _verify_mac(pfx: _Pfx, password: bytes | None, budget: pbe.WorkBudget) -> bool | None:
    """True/False; None when the MAC algorithm is one we do not know (then it is not checked)."""
    mac = pfx.mac
    assert mac is not None
    if mac.alg.oid in pbe.DIGESTS:
        name, hash_type = pbe.DIGESTS[mac.alg.oid]
        size = hash_type().digest_size
        if not 1 <= mac.iterations <= pbe.MAX_KDF_ITERATIONS:
            raise ParseError("key derivation iteration count out of range")
        key = pbe.pkcs12_kdf(name, pbe.bmp_password(password), mac.salt, 3, mac.iterations, size, budget)
        return hmac.compare_digest(hmac.new(key, pfx.auth_safe, name).digest(), mac.digest)
    if mac.alg.oid == pbe.PBMAC1 and mac.alg.params is not None:
        buf = mac.buf
        parts = der.child_list(buf, der.expect_sequence(mac.alg.params), max_count=2)
        if len(parts) != 2:
            raise der.DerError("unexpected structure")
        kdf, scheme = pbe.algorithm(buf, parts[0]), pbe.algorithm(buf, parts[1])
        if kdf.oid != pbe.PBKDF2 or scheme.oid not in pbe.HMAC_PRFS:
            return None
        params = pbe.pbkdf2_params(buf, kdf.params)
        if params.key_length is None:
            raise der.DerError("missing key length")
        key = pbe.pbkdf2(password, params.salt, params.iterations, params.key_length, params.prf, budget)
        signer = crypto_hmac.HMAC(key, pbe.HMAC_PRFS[scheme.oid]())
        signer.update(pfx.auth_safe)
        return hmac.compare_digest(signer.finalize(), mac.digest)
    return None


def _read_auth_safe(pfx: _Pfx, bags: _Bags) -> tuple[list[_Encrypted], bool]:
    """Plain bags into `bags`; the encrypted SafeContents, and whether some content kind was unsupported."""
    buf = pfx.auth_safe
    top = der.expect_sequence(der.read_tlv(buf))
    encrypted: list[_Encrypted] = []
    unsupported = False
    for info in der.children(buf, top, MAX_AUTH_SAFES):
        kind, content = _content_info(buf, info)
        if content is None:
            continue
        if kind == DATA:
            _collect(buf, der.read_octets(buf, content, MAX_CONTENT_BYTES), bags)
        elif kind == ENCRYPTED_DATA:
            parts = der.child_list(buf, der.expect_sequence(content), max_count=3)
            if len(parts) < 2:
                raise der.DerError("unexpected structure")
            eci = der.child_list(buf, der.expect_sequence(parts[1]), max_count=3)
            if len(eci) != 3:
                raise der.DerError("unexpected structure")
            der.expect(eci[2], 0, der.CONTEXT)
            ciphertext = der.read_octets(buf, eci[2], MAX_CONTENT_BYTES, check_tag=False)
            encrypted.append(_Encrypted(buf, pbe.algorithm(buf, eci[1]), ciphertext))
        else:
            unsupported = True
    return encrypted, unsupported


def _empty_variants(password: bytes | None) -> list[bytes | None]:
    return [password] if password else [password, b"" if password is None else None]


@dataclass
class _Opened:
    password: bytes | None
    checked: bool  # the password was needed: it verified the MAC or decrypted something
    bags: _Bags
    key_der: bytes | None
    problem: str | None


def _open(pfx: _Pfx, candidates: list[bytes | None], budget: pbe.WorkBudget) -> _Opened | None:
    """The first candidate password that opens the file (MAC, encrypted bags, first key), or None."""
    plain = _Bags()
    encrypted, unsupported = _read_auth_safe(pfx, plain)
    for part in encrypted:
        pbe.check_cost(part.buf, part.alg)
    if plain.keys and plain.keys[0].algorithm is not None:
        pbe.check_cost(plain.keys[0].buf, plain.keys[0].algorithm)
    for candidate in candidates:
        verified = _verify_mac(pfx, candidate, budget) if pfx.mac is not None else None
        if verified is False:
            continue
        tries = _empty_variants(candidate) if verified else [candidate]
        opened = _decrypt_all(plain, encrypted, tries, budget)
        if opened is None and verified:
            return _Opened(candidate, True, plain, None, "could not decrypt the PKCS#12 contents")
        if opened is not None:
            opened.checked = opened.checked or bool(verified)
            if unsupported and opened.problem is None:
                opened.problem = "some PKCS#12 contents use an unsupported format"
            return opened
    return None


def _decrypt_all(plain: _Bags, encrypted: list[_Encrypted], tries: list[bytes | None],
                 budget: pbe.WorkBudget) -> _Opened | None:
    for password in tries:
        bags = _Bags(list(plain.certs), list(plain.keys), list(plain.secret_keys), plain.count, plain.too_many_certs)
        checked = bool(encrypted)
        try:
            for part in encrypted:
                inner = pbe.decrypt(part.buf, part.alg, part.ciphertext, password, budget)
                _collect(inner, inner, bags)
            key_der = None
            if bags.keys:
                key = bags.keys[0]
                if key.algorithm is None:
                    key_der = key.data
                else:
                    pbe.check_cost(key.buf, key.algorithm)
                    key_der = pbe.decrypt(key.buf, key.algorithm, key.data, password, budget)
                    checked = True
            return _Opened(password, checked, bags, key_der, None)
        except (pbe.WrongPassword, der.DerError):
            continue
    return None


def _public_key_der(key: object) -> bytes | None:
    try:
        public = key.public_key()  # type: ignore[attr-defined]  # any private key type, or none
        return bytes(public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    except Exception:
        return None


def _certificate_key_der(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except Exception:
        return None


def _report(opened: _Opened) -> tuple[dict[str, Any], datetime | None]:
    bags = opened.bags
    metadata: dict[str, Any] = {"encrypted": bool(opened.password) and opened.checked}
    certs: list[tuple[x509.Certificate, _Attributes]] = []
    unreadable = 0
    for cert_der, attributes in bags.certs:
        try:
            certs.append((load_certificate(cert_der), attributes))
        except ParseError:
            unreadable += 1
    key = None
    if opened.key_der is not None:
        try:
            key = load_der_private_key(opened.key_der, None, unsafe_skip_rsa_key_validation=True)
        except Exception:
            metadata["key_type"] = "unknown"
    main = None
    if key is not None:
        kind, size, curve = describe_key(key)
        metadata["key_type"] = kind
        if size is not None:
            metadata["key_size"] = size
        if curve is not None:
            metadata["key_curve"] = curve
        wanted = _public_key_der(key)
        if wanted is not None:
            main = next((index for index, entry in enumerate(certs) if _certificate_key_der(entry[0]) == wanted), None)
    key_certs = [_certificate_of(certs, bag.key_id) for bag in bags.keys]
    if main is None and key_certs:
        main = key_certs[0]
    if len(bags.keys) > 1:
        metadata["key_count"] = len(bags.keys)
    if bags.secret_keys:
        metadata["secret_keys"] = len(bags.secret_keys)
    metadata.update(_entries(bags, certs))
    if main is not None:
        cert, attributes = certs[main]
        metadata.update(certificate_fields(cert))
        if attributes.name:
            metadata["friendly_name"] = attributes.name
    others = [entry for index, entry in enumerate(certs) if index != main]
    metadata["additional_certificates"] = len(others)
    if others:
        metadata["additional_certificate_details"] = [certificate_fields(cert) for cert, _ in others]
    # The keystore rule: each entry's own certificate (a key's, a trusted one), not the CAs above a key.
    entry_certs = {index for index in [main, *key_certs] if index is not None}
    entry_certs |= {index for index, (_, attributes) in enumerate(certs) if _is_trusted_entry(attributes)}
    counted = [certs[index][0] for index in sorted(entry_certs)] or [cert for cert, _ in certs]
    expires_at = keystore_expiry(counted)
    if opened.problem:
        metadata["parse_error"] = opened.problem
    elif bags.too_many_certs:
        metadata["parse_error"] = f"more than {MAX_CERTIFICATES} certificates; only the first were read"
    elif unreadable:
        metadata["parse_error"] = f"{unreadable} certificate(s) could not be parsed"
    return metadata, expires_at


def keystore_expiry(entry_certificates: list[x509.Certificate]) -> datetime | None:
    """When a keystore (PKCS#12, JKS or JCEKS) expires: the first of its entries' own certificates."""
    return min((as_utc(cert.not_valid_after_utc) for cert in entry_certificates), default=None)


def _certificate_of(certs: list[tuple[x509.Certificate, _Attributes]], key_id: bytes | None) -> int | None:
    if key_id is None:
        return None
    return next((index for index, (_, attributes) in enumerate(certs) if attributes.key_id == key_id), None)


def _is_trusted_entry(attributes: _Attributes) -> bool:
    """A certificate that is an entry of its own, as Java marks one (keytool also names the CA
    certificates of a key's chain, so a name alone does not make an entry)."""
    return attributes.trusted


def _entries(bags: _Bags, certs: list[tuple[x509.Certificate, _Attributes]]) -> dict[str, Any]:
    """`aliases` and `entries` from the bags' friendly names, when the file names its entries."""
    entries = [{"alias": bag.name, "entry_type": "private_key"} for bag in bags.keys if bag.name]
    entries += [{"alias": name, "entry_type": "secret_key"} for name in bags.secret_keys if name]
    entries += [{"alias": attributes.name, "entry_type": "trusted_certificate"} for _, attributes in certs
                if attributes.name and _is_trusted_entry(attributes)]
    if not entries:
        return {}
    return {"aliases": [entry["alias"] for entry in entries], "entries": entries}


def _without_password(pfx: _Pfx, head: dict[str, Any], password: bytes | None) -> FileMetadata:
    """No candidate password opened the file: what its unencrypted parts show (often the
    certificates: `openssl pkcs12 -export -nomac` encrypts only the key), and "wrong password"
    when one was given."""
    plain = _Bags()
    _read_auth_safe(pfx, plain)
    problem = "wrong password" if password else None
    if not plain.certs:
        return FileMetadata({**head, "encrypted": True, **({"parse_error": problem} if problem else {})}, None)
    body, expires_at = _report(_Opened(None, False, plain, None, problem))
    return FileMetadata({**head, **body, "encrypted": True}, expires_at)


def parse_pkcs12(data: bytes, password: bytes | None, type_name: str = "pkcs12",
                 extra: dict[str, Any] | None = None) -> FileMetadata:
    head: dict[str, Any] = {"type": type_name, **(extra or {})}
    try:
        pfx = _read_pfx(data)
    except der.DerError:
        return FileMetadata({**head, "parse_error": "not a valid PKCS#12 file"}, None)
    except ParseError as exc:
        return FileMetadata({**head, "parse_error": str(exc)}, None)
    budget = pbe.WorkBudget()
    candidates: list[bytes | None] = [password] if password else []
    candidates += [None, b""]
    try:
        opened = _open(pfx, candidates, budget)
        if opened is None:
            return _without_password(pfx, head, password)
        body, expires_at = _report(opened)
    except der.DerError:
        return FileMetadata({**head, "parse_error": "not a valid PKCS#12 file"}, None)
    except ParseError as exc:
        return FileMetadata({**head, "parse_error": str(exc)}, None)
    return FileMetadata({**head, **body}, expires_at)

