"""Sample files for the file-metadata tests, all generated at test time (no key or certificate is committed).

Builders are cached so the whole suite generates each key once. The tests at the bottom check the
hand-built formats (JKS bytes, an OpenSSH key with a comment) against the real tools when present.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import plistlib
import shutil
import struct
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

NOW = datetime.now(UTC).replace(microsecond=0)
FIXED_NOT_BEFORE = datetime(2024, 11, 25, 21, 46, 13, tzinfo=UTC)
FIXED_NOT_AFTER = datetime(2026, 11, 25, 21, 46, 13, tzinfo=UTC)
PASSWORD = b"Correct-Horse-9f3a"


# --- keys and certificates ---

@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key(label: str = "default", curve: str = "secp256r1") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key({"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1(),
                                    "secp521r1": ec.SECP521R1()}[curve])


@functools.cache
def ed25519_key(label: str = "default") -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def make_cert(common_name: str, not_before: datetime, not_after: datetime, key=None, issuer=None,
              serial: int = 0x1A2B3C4D, ca: bool = False) -> x509.Certificate:
    """Self-signed unless `issuer=(certificate, key)`."""
    key = key or ec_key(common_name)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (name(common_name), key)
    builder = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    algorithm = None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signing_key, algorithm)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@functools.cache
def ca_pair() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec_key("ca")
    return make_cert("Test Root CA", NOW - timedelta(days=400), NOW + timedelta(days=3650), key, ca=True), key


@functools.cache
def fixed_cert() -> x509.Certificate:
    """RSA, CA-signed, known dates and serial."""
    return make_cert("fixed.example.com", FIXED_NOT_BEFORE, FIXED_NOT_AFTER, rsa_key(), issuer=ca_pair(),
                     serial=0x0123456789ABCDEF)


@functools.cache
def leaf_cert(days_left: int, label: str = "leaf") -> x509.Certificate:
    return make_cert(f"{label} {days_left}d", NOW - timedelta(days=100), NOW + timedelta(days=days_left),
                     ec_key(label), issuer=ca_pair(), serial=1000 + days_left % 1000)


# --- PKCS#12 ---

def p12(key=None, cert=None, cas=(), password: bytes | None = None, friendly: bytes | None = b"signing",
        legacy: bool = False) -> bytes:
    if password is None:
        encryption = serialization.NoEncryption()
    elif legacy:
        encryption = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
                      .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                      .hmac_hash(hashes.SHA1()).build(password))
    else:
        encryption = serialization.BestAvailableEncryption(password)
    return pkcs12.serialize_key_and_certificates(friendly, key, cert, list(cas) or None, encryption)


@functools.cache
def p12_main() -> tuple[x509.Certificate, x509.Certificate]:
    """(main certificate: expires in 200 days, intermediate: expires in 100 days)."""
    intermediate = make_cert("Intermediate", NOW - timedelta(days=10), NOW + timedelta(days=100),
                             ec_key("intermediate"), issuer=ca_pair(), ca=True)
    main = make_cert("iPhone Distribution: Example", NOW - timedelta(days=10), NOW + timedelta(days=200),
                     rsa_key(), issuer=(intermediate, ec_key("intermediate")), serial=0x7777)
    return main, intermediate


# --- minimal DER encoder, for hand-built and hostile structures ---

def der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + der_length(len(content)) + content


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def der_set(*parts: bytes) -> bytes:
    return tlv(0x31, b"".join(parts))


def integer(value: int) -> bytes:
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def octets(value: bytes) -> bytes:
    return tlv(0x04, value)


def ctx(number: int, content: bytes, constructed: bool = True) -> bytes:
    return tlv((0xA0 if constructed else 0x80) | number, content)


def oid(dotted: str) -> bytes:
    arcs = [int(part) for part in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


NULL = b"\x05\x00"
DATA = "1.2.840.113549.1.7.1"
SIGNED_DATA = "1.2.840.113549.1.7.2"
ENCRYPTED_DATA = "1.2.840.113549.1.7.6"


def pbes2_algorithm(iterations: int, salt: bytes = b"saltsalt", iv: bytes = b"\x00" * 16) -> bytes:
    return seq(oid("1.2.840.113549.1.5.13"), seq(
        seq(oid("1.2.840.113549.1.5.12"), seq(octets(salt), integer(iterations),
                                              seq(oid("1.2.840.113549.2.9"), NULL))),
        seq(oid("2.16.840.1.101.3.4.1.42"), octets(iv))))


def pbes2_encrypt(plaintext: bytes, password: bytes, iterations: int) -> tuple[bytes, bytes]:
    """(AlgorithmIdentifier, ciphertext) for PBES2 / PBKDF2-HMAC-SHA256 / AES-256-CBC."""
    salt, iv = os.urandom(8), os.urandom(16)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(password)
    pad = 16 - len(plaintext) % 16
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(plaintext + bytes([pad]) * pad) + encryptor.finalize()
    return pbes2_algorithm(iterations, salt, iv), ciphertext


def cert_bag(cert_der: bytes) -> bytes:
    return seq(oid("1.2.840.113549.1.12.10.1.3"),
               ctx(0, seq(oid("1.2.840.113549.1.9.22.1"), ctx(0, octets(cert_der)))))


def shrouded_key_bag(algorithm: bytes, ciphertext: bytes) -> bytes:
    return seq(oid("1.2.840.113549.1.12.10.1.2"), ctx(0, seq(algorithm, octets(ciphertext))))


def data_content(safe_contents: bytes) -> bytes:
    return seq(oid(DATA), ctx(0, octets(safe_contents)))


def encrypted_content(safe_contents: bytes, password: bytes, iterations: int = 1000) -> bytes:
    algorithm, ciphertext = pbes2_encrypt(safe_contents, password, iterations)
    return seq(oid(ENCRYPTED_DATA), ctx(0, seq(integer(0), seq(oid(DATA), algorithm, tlv(0x80, ciphertext)))))


def mac_data(iterations: int) -> bytes:
    return seq(seq(seq(oid("2.16.840.1.101.3.4.2.1"), NULL), octets(b"\x00" * 32)), octets(b"saltsalt"),
               integer(iterations))


def pfx(*content_infos: bytes, mac: bytes | None = None) -> bytes:
    return seq(integer(3), data_content(seq(*content_infos)), *([mac] if mac else []))


def to_ber(encoded: bytes, chunk: int = 1000) -> bytes:
    """Re-encode DER with indefinite lengths on every constructed value and long OCTET STRINGs in
    chunks, as Apple's signing tools do."""
    out = bytearray()
    pos = 0
    while pos < len(encoded):
        tag = encoded[pos]
        size_byte = encoded[pos + 1]
        if size_byte < 0x80:
            length, header = size_byte, 2
        else:
            count = size_byte & 0x7F
            length, header = int.from_bytes(encoded[pos + 2:pos + 2 + count], "big"), 2 + count
        body = encoded[pos + header:pos + header + length]
        if tag & 0x20:
            out += bytes([tag, 0x80]) + to_ber(body, chunk) + b"\x00\x00"
        elif tag == 0x04 and length > chunk:
            parts = b"".join(octets(body[i:i + chunk]) for i in range(0, len(body), chunk))
            out += b"\x24\x80" + parts + b"\x00\x00"
        else:
            out += encoded[pos:pos + header + length]
        pos += header + length
    return bytes(out)


# --- provisioning profiles ---

def profile_plist(developer_certs: list[x509.Certificate], expiration: datetime, **overrides: object) -> dict:
    plist: dict[str, object] = {
        "AppIDName": "Example App",
        "ApplicationIdentifierPrefix": ["ABCDE12345"],
        "CreationDate": datetime(2025, 1, 2, 3, 4, 5),
        "Platform": ["iOS", "xrOS"],
        "IsXcodeManaged": False,
        "DeveloperCertificates": [der(cert) for cert in developer_certs],
        "Entitlements": {"application-identifier": "ABCDE12345.com.example.app",
                         "keychain-access-groups": ["ABCDE12345.*"], "get-task-allow": False,
                         "com.apple.developer.team-identifier": "ABCDE12345"},
        "ExpirationDate": expiration.replace(tzinfo=None),
        "Name": "Example App Store Profile",
        "ProvisionedDevices": ["00008030-001A2B3C4D5E6F70", "00008101-000A1B2C3D4E5F60"],
        "TeamIdentifier": ["ABCDE12345"],
        "TeamName": "Example Corp",
        "TimeToLive": 365,
        "UUID": "8f1c6a52-3a4b-4c2d-9e8f-0123456789ab",
        "Version": 1,
    }
    plist.update(overrides)
    return plist


def sign_cms(content: bytes) -> bytes:
    signer = make_cert("Apple iPhone OS Provisioning Profile Signing", NOW - timedelta(days=1),
                       NOW + timedelta(days=30), ec_key("apple"))
    return (pkcs7.PKCS7SignatureBuilder().set_data(content)
            .add_signer(signer, ec_key("apple"), hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))


@functools.cache
def developer_certs() -> tuple[x509.Certificate, x509.Certificate]:
    return (make_cert("Apple Development: Jane Doe (X1Y2Z3)", NOW - timedelta(days=5), NOW + timedelta(days=360),
                      ec_key("dev1"), issuer=ca_pair(), serial=0xDEAD01),
            make_cert("Apple Distribution: Example Corp (ABCDE12345)", NOW - timedelta(days=5),
                      NOW + timedelta(days=20), ec_key("dev2"), issuer=ca_pair(), serial=0xDEAD02))


@functools.cache
def profile(days_left: int = 300) -> bytes:
    expiration = NOW + timedelta(days=days_left)
    return sign_cms(plistlib.dumps(profile_plist(list(developer_certs()), expiration)))


# --- JKS / JCEKS, byte by byte ---

JKS_MAGIC = b"\xfe\xed\xfe\xed"
JCEKS_MAGIC = b"\xce\xce\xce\xce"


@dataclass(frozen=True)
class Entry:
    alias: str
    kind: str  # "key", "cert" or "secret"
    certs: tuple[bytes, ...] = ()
    created_ms: int = 1_700_000_000_000


def java_utf(text: str) -> bytes:
    raw = text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")
    encoded = bytearray()
    for char in raw:
        code = ord(char)
        if code == 0:
            encoded += b"\xc0\x80"
        elif code > 0xFFFF:
            for unit in struct.unpack(">2H", char.encode("utf-16-be")):
                encoded += chr(unit).encode("utf-8", "surrogatepass")
        else:
            encoded += char.encode("utf-8", "surrogatepass")
    return struct.pack(">H", len(encoded)) + bytes(encoded)


ENCRYPTED_KEY_PLACEHOLDER = seq(seq(oid("1.3.6.1.4.1.42.2.17.1.1"), NULL), octets(bytes(range(256)) * 4))
def _java_string(text: str) -> bytes:
    return struct.pack(">H", len(text)) + text.encode()


def sealed_object(encrypted: bytes = bytes(range(160))) -> bytes:
    """A JCEKS secret-key entry's body as Java serializes it: a SealedObjectForKeyProtector whose
    SealedObject superclass has two byte arrays and two strings (as in keytool's files)."""
    byte_array_class = b"ur" + _java_string("[B") + bytes.fromhex("acf317f8060854e0") + b"\x02\x00\x00xp"
    return b"".join([
        b"\xac\xed\x00\x05", b"sr", _java_string("com.sun.crypto.provider.SealedObjectForKeyProtector"),
        bytes.fromhex("cd57ca59e730bb53"), b"\x02\x00\x00x",
        b"r", _java_string("javax.crypto.SealedObject"), bytes.fromhex("3e363da6c3b75470"), b"\x02\x00\x04",
        b"[", _java_string("encodedParams"), b"t", _java_string("[B"),
        b"[", _java_string("encryptedContent"), b"q\x00\x7e\x00\x02",
        b"L", _java_string("paramsAlg"), b"t", _java_string("Ljava/lang/String;"),
        b"L", _java_string("sealAlg"), b"q\x00\x7e\x00\x03", b"xp",
        byte_array_class, struct.pack(">i", 17), bytes(17),
        b"uq\x00\x7e\x00\x05", struct.pack(">i", len(encrypted)), encrypted,
        b"t", _java_string("PBEWithMD5AndTripleDES"), b"t", _java_string("PBEWithMD5AndTripleDES"),
    ])


def java_keystore(entries: list[Entry], magic: bytes = JKS_MAGIC, version: int = 2,
                  password: str = "changeit", count: int | None = None,
                  encrypted_key: bytes = ENCRYPTED_KEY_PLACEHOLDER) -> bytes:
    out = bytearray(magic + struct.pack(">II", version, len(entries) if count is None else count))

    def certificate(body: bytes) -> bytes:
        return (java_utf("X.509") if version == 2 else b"") + struct.pack(">I", len(body)) + body

    for entry in entries:
        tag = {"key": 1, "cert": 2, "secret": 3}[entry.kind]
        out += struct.pack(">I", tag) + java_utf(entry.alias) + struct.pack(">q", entry.created_ms)
        if entry.kind == "key":
            out += struct.pack(">I", len(encrypted_key)) + encrypted_key
            out += struct.pack(">I", len(entry.certs)) + b"".join(certificate(body) for body in entry.certs)
        elif entry.kind == "cert":
            out += certificate(entry.certs[0])
        else:
            out += sealed_object()
    digest = hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + bytes(out)).digest()
    return bytes(out) + digest


@functools.cache
def upload_chain() -> tuple[x509.Certificate, x509.Certificate]:
    upload = make_cert("Android Upload Key", NOW - timedelta(days=30), NOW + timedelta(days=25 * 365),
                       rsa_key(), issuer=ca_pair(), serial=0xA1)
    return upload, ca_pair()[0]


@functools.cache
def jks_sample() -> bytes:
    upload, root = upload_chain()
    expiring = leaf_cert(12, "partner")
    return java_keystore([Entry("upload", "key", (der(upload), der(root))),
                          Entry("partner-ca", "cert", (der(expiring),))])


@functools.cache
def jceks_sample() -> bytes:
    upload, root = upload_chain()
    return java_keystore([Entry("upload", "key", (der(upload), der(root))), Entry("api-secret", "secret"),
                          Entry("after-secret", "cert", (der(root),))], magic=JCEKS_MAGIC)


# --- SSH keys ---

def ssh_string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def openssh_container(blob: bytes, private: bytes, cipher: bytes = b"none", kdf: bytes = b"none",
                      kdf_options: bytes = b"", count: int = 1) -> bytes:
    body = (b"openssh-key-v1\x00" + ssh_string(cipher) + ssh_string(kdf) + ssh_string(kdf_options)
            + struct.pack(">I", count) + ssh_string(blob) + ssh_string(private))
    text = base64.b64encode(body).decode()
    lines = "\n".join(text[i:i + 70] for i in range(0, len(text), 70))
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{lines}\n-----END OPENSSH PRIVATE KEY-----\n".encode()


def openssh_ed25519_with_comment(key: ed25519.Ed25519PrivateKey, comment: str) -> bytes:
    """An unencrypted openssh-key-v1 file built by hand (cryptography writes no comment)."""
    public = key.public_key().public_bytes_raw()
    secret = key.private_bytes_raw()
    blob = ssh_string(b"ssh-ed25519") + ssh_string(public)
    private = (struct.pack(">II", 0x5EC2E7, 0x5EC2E7) + ssh_string(b"ssh-ed25519") + ssh_string(public)
               + ssh_string(secret + public) + ssh_string(comment.encode()))
    private += bytes(range(1, (-len(private) % 8) + 1))
    return openssh_container(blob, private)


def openssh_encrypted_ed25519(key: ed25519.Ed25519PrivateKey) -> bytes:
    """The layout `ssh-keygen -N passphrase` writes (aes256-ctr, bcrypt); the private part is opaque
    bytes here, as it is to the parser (building it needs the bcrypt module, which is not installed)."""
    blob = ssh_string(b"ssh-ed25519") + ssh_string(key.public_key().public_bytes_raw())
    return openssh_container(blob, os.urandom(144), b"aes256-ctr", b"bcrypt",
                             ssh_string(os.urandom(16)) + struct.pack(">I", 16))


def openssh(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())


def pem_key(key, private_format: serialization.PrivateFormat, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption)


def expected_fingerprint(key) -> str:
    """Independent of the parser: cryptography's OpenSSH public key line, decoded and hashed."""
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    digest = hashlib.sha256(base64.b64decode(line.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def secret_forms(key) -> list[str]:
    """Ways private key material could leak into JSON: hex (both cases), base64, and decimal."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes_raw()
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        value = key.private_numbers().private_value
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    else:
        value = key.private_numbers().d
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    forms = [raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(), ":".join(f"{b:02X}" for b in raw)]
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        forms.append(str(int.from_bytes(raw, "big")))
    return forms


def ssh_keygen_fingerprint(tmp_path, content: bytes) -> tuple[int, str, str]:
    """(bits, fingerprint, comment) as `ssh-keygen -l` prints them."""
    path = tmp_path / "key"
    path.write_bytes(content)
    path.chmod(0o600)
    result = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=30, check=True)
    bits, fingerprint, rest = result.stdout.strip().split(" ", 2)
    return int(bits), fingerprint, rest.rsplit(" (", 1)[0]


needs_ssh_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not on PATH")
FAST_JVM = ["-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-J-Xshare:auto"]
needs_keytool = pytest.mark.skipif(shutil.which("keytool") is None, reason="keytool not on PATH")


# --- the builders agree with the real tools ---

@needs_keytool
def test_hand_built_jks_is_a_keystore_keytool_reads(tmp_path):
    path = tmp_path / "store.jks"
    path.write_bytes(jks_sample())
    result = subprocess.run(["keytool", *FAST_JVM, "-list", "-keystore", str(path), "-storepass", "changeit",
                             "-storetype", "JKS"], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "upload, " in result.stdout and "partner-ca, " in result.stdout
    assert "PrivateKeyEntry" in result.stdout and "trustedCertEntry" in result.stdout


@needs_ssh_keygen
def test_hand_built_openssh_key_with_comment_is_read_by_ssh_keygen(tmp_path):
    key = ed25519_key("comment")
    bits, fingerprint, comment = ssh_keygen_fingerprint(tmp_path, openssh_ed25519_with_comment(key, "ci@build-42"))
    assert (bits, fingerprint, comment) == (256, expected_fingerprint(key), "ci@build-42")
