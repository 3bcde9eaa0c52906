"""Password-based decryption for PKCS#12 and PKCS#8, with capped key-derivation cost.

The iteration counts of PBKDF2 and the PKCS#12 KDF come from the file, so a hostile file could
ask for 2^31 iterations; every derivation is charged to a `WorkBudget` *before* it runs, and
a count above `MAX_KDF_ITERATIONS` is refused outright. So is every decryption: a file could
also hold many encrypted parts (each tried with every candidate password), and RC2 runs in Python
at about 8 hash iterations' worth of time per byte. Supported: PBES2 (PBKDF2 with HMAC-SHA1/2,
AES-CBC, DES-EDE3-CBC, DES-CBC), the PKCS#12 PBE schemes (3DES, RC2, RC4) and PBES1 (MD5/SHA-1 with
DES or RC2). RC2 with 40-bit keys (old PKCS#12 certificate bags) is not in `cryptography`, so it is
done here in Python, on at most `MAX_PYTHON_CIPHERTEXT` bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4, TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from . import der
from .model import ParseError

MAX_KDF_ITERATIONS = 500_000
DEFAULT_WORK_UNITS = 1_500_000  # one unit ~ one PKCS#12 KDF hash iteration (~0.25 us): ~0.4 s of CPU
PYTHON_CIPHER_UNITS_PER_BYTE = 8  # RC2 here: ~2 us per byte
NATIVE_CIPHER_BYTES_PER_UNIT = 64  # AES, 3DES, RC4 in OpenSSL
MAX_PYTHON_CIPHERTEXT = 256 * 1024
MAX_SALT_BYTES = 1024

PBES2 = "1.2.840.113549.1.5.13"
PBKDF2 = "1.2.840.113549.1.5.12"
PBMAC1 = "1.2.840.113549.1.5.14"
SCRYPT = "1.3.6.1.4.1.11591.4.11"

HMAC_PRFS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1.2.840.113549.2.7": hashes.SHA1,
    "1.2.840.113549.2.8": hashes.SHA224,
    "1.2.840.113549.2.9": hashes.SHA256,
    "1.2.840.113549.2.10": hashes.SHA384,
    "1.2.840.113549.2.11": hashes.SHA512,
    "1.2.840.113549.2.12": hashes.SHA512_224,
    "1.2.840.113549.2.13": hashes.SHA512_256,
}

# PKCS#12 PBE: OID -> (cipher, key bytes)
PKCS12_PBE: dict[str, tuple[str, int]] = {
    "1.2.840.113549.1.12.1.1": ("rc4", 16),
    "1.2.840.113549.1.12.1.2": ("rc4", 5),
    "1.2.840.113549.1.12.1.3": ("3des", 24),
    "1.2.840.113549.1.12.1.4": ("3des", 16),
    "1.2.840.113549.1.12.1.5": ("rc2", 16),
    "1.2.840.113549.1.12.1.6": ("rc2", 5),
}

# PBES1 (PKCS#5 v1.5): OID -> (hash, cipher)
PBES1: dict[str, tuple[str, str]] = {
    "1.2.840.113549.1.5.3": ("md5", "des"),
    "1.2.840.113549.1.5.6": ("md5", "rc2"),
    "1.2.840.113549.1.5.10": ("sha1", "des"),
    "1.2.840.113549.1.5.11": ("sha1", "rc2"),
}

# PBES2 encryption schemes: OID -> (cipher, key bytes)
PBES2_CIPHERS: dict[str, tuple[str, int]] = {
    "2.16.840.1.101.3.4.1.2": ("aes", 16),
    "2.16.840.1.101.3.4.1.22": ("aes", 24),
    "2.16.840.1.101.3.4.1.42": ("aes", 32),
    "1.2.840.113549.3.7": ("3des", 24),
    "1.3.14.3.2.7": ("des", 8),
}

# MacData digest algorithms: OID -> (hashlib name, cryptography hash)
DIGESTS: dict[str, tuple[str, Callable[[], hashes.HashAlgorithm]]] = {
    "1.3.14.3.2.26": ("sha1", hashes.SHA1),
    "2.16.840.1.101.3.4.2.4": ("sha224", hashes.SHA224),
    "2.16.840.1.101.3.4.2.1": ("sha256", hashes.SHA256),
    "2.16.840.1.101.3.4.2.2": ("sha384", hashes.SHA384),
    "2.16.840.1.101.3.4.2.3": ("sha512", hashes.SHA512),
}


class WrongPassword(Exception):
    """Decryption produced bad padding: the password (or the data) is wrong."""


class WorkBudget:
    """Key-derivation work (hash iterations) one parse may spend."""

    def __init__(self, units: int | None = None) -> None:
        self.remaining = DEFAULT_WORK_UNITS if units is None else units

    def spend(self, iterations: int, blocks: int = 1) -> None:
        if not 1 <= iterations <= MAX_KDF_ITERATIONS:
            raise ParseError("key derivation iteration count out of range")
        cost = iterations * blocks
        if cost > self.remaining:
            raise ParseError("key derivation too expensive")
        self.remaining -= cost

    def spend_decryption(self, size: int, in_python: bool) -> None:
        """Charge decrypting `size` bytes, before it runs."""
        cost = size * PYTHON_CIPHER_UNITS_PER_BYTE if in_python else 1 + size // NATIVE_CIPHER_BYTES_PER_UNIT
        if cost > self.remaining:
            raise ParseError("decryption too expensive")
        self.remaining -= cost


@dataclass(frozen=True)
class Algorithm:
    oid: str
    params: der.Tlv | None


def algorithm(buf: bytes, value: der.Tlv) -> Algorithm:
    """An AlgorithmIdentifier: SEQUENCE { OID, parameters OPTIONAL }."""
    der.expect_sequence(value)
    parts = der.child_list(buf, value, max_count=2)
    if not parts:
        raise der.DerError("unexpected structure")
    return Algorithm(der.read_oid(buf, parts[0]), parts[1] if len(parts) > 1 else None)


def describe(buf: bytes, alg: Algorithm) -> str:
    """A short public name for an encryption scheme, e.g. "PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC"."""
    if alg.oid in PKCS12_PBE:
        cipher, size = PKCS12_PBE[alg.oid]
        return f"PKCS12-PBE-SHA1-{cipher.upper()}-{size * 8}"
    if alg.oid in PBES1:
        digest, cipher = PBES1[alg.oid]
        return f"PBES1-{digest.upper()}-{cipher.upper()}"
    if alg.oid == PBES2 and alg.params is not None:
        try:
            kdf, scheme = _pbes2_parts(buf, alg.params)
            kdf_name = "PBKDF2" if kdf.oid == PBKDF2 else "scrypt" if kdf.oid == SCRYPT else kdf.oid
            cipher_name = scheme.oid
            if scheme.oid in PBES2_CIPHERS:
                cipher, size = PBES2_CIPHERS[scheme.oid]
                cipher_name = f"{cipher.upper()}-{size * 8}-CBC" if cipher != "des" else "DES-CBC"
            return f"PBES2/{kdf_name}/{cipher_name}"
        except (der.DerError, ParseError):
            return "PBES2"
    return alg.oid


def bmp_password(password: bytes | None) -> bytes:
    """The PKCS#12 KDF's password: BMPString with a terminating NUL; no password is empty."""
    if password is None:
        return b""
    try:
        text = password.decode("utf-8")
    except UnicodeDecodeError:
        text = password.decode("latin-1")
    return text.encode("utf-16-be") + b"\x00\x00"


def pkcs12_kdf(digest: str, password: bytes, salt: bytes, purpose: int, iterations: int, size: int,
               budget: WorkBudget) -> bytes:
    """RFC 7292 appendix B.2; `password` already in BMPString form. Purpose 1 key, 2 IV, 3 MAC."""
    new = getattr(hashlib, digest)
    u: int = new().digest_size
    v: int = new().block_size
    blocks = -(-size // u)
    budget.spend(iterations, blocks)

    def stretch(value: bytes) -> bytes:
        if not value:
            return b""
        count = -(-len(value) // v) * v
        return (value * (count // len(value) + 1))[:count]

    d = bytes([purpose]) * v
    i = stretch(salt) + stretch(password)
    out = b""
    for block in range(blocks):
        a = new(d + i).digest()
        for _ in range(iterations - 1):
            a = new(a).digest()
        out += a
        if block + 1 < blocks and i:
            b = int.from_bytes((a * (v // u + 1))[:v], "big") + 1
            modulus = 1 << (8 * v)
            i = b"".join(((int.from_bytes(i[j:j + v], "big") + b) % modulus).to_bytes(v, "big")
                         for j in range(0, len(i), v))
    return out[:size]


def pbkdf2(password: bytes | None, salt: bytes, iterations: int, size: int, prf: hashes.HashAlgorithm,
           budget: WorkBudget) -> bytes:
    budget.spend(iterations, -(-size // prf.digest_size))
    return PBKDF2HMAC(prf, size, salt, iterations).derive(password or b"")


def _pbes2_parts(buf: bytes, params: der.Tlv) -> tuple[Algorithm, Algorithm]:
    der.expect_sequence(params)
    parts = der.child_list(buf, params, max_count=2)
    if len(parts) != 2:
        raise der.DerError("unexpected structure")
    return algorithm(buf, parts[0]), algorithm(buf, parts[1])


@dataclass(frozen=True)
class Pbkdf2Params:
    salt: bytes
    iterations: int
    key_length: int | None
    prf: hashes.HashAlgorithm


def pbkdf2_params(buf: bytes, params: der.Tlv | None) -> Pbkdf2Params:
    if params is None:
        raise der.DerError("missing parameters")
    der.expect_sequence(params)
    parts = der.child_list(buf, params, max_count=4)
    if len(parts) < 2:
        raise der.DerError("unexpected structure")
    salt = der.read_octets(buf, parts[0], MAX_SALT_BYTES)
    iterations = der.read_integer(buf, parts[1], 8)
    key_length = None
    prf: hashes.HashAlgorithm = hashes.SHA1()  # noqa: S303 - PBKDF2's default PRF, fixed by the format
    for part in parts[2:]:
        if part.is_(der.INTEGER):
            key_length = der.read_integer(buf, part, 4)
            if not 1 <= key_length <= 64:
                raise der.DerError("invalid key length")
        else:
            prf_alg = algorithm(buf, part)
            if prf_alg.oid not in HMAC_PRFS:
                raise ParseError("unsupported encryption algorithm")
            prf = HMAC_PRFS[prf_alg.oid]()
    if not 1 <= iterations <= MAX_KDF_ITERATIONS:
        raise ParseError("key derivation iteration count out of range")
    return Pbkdf2Params(salt, iterations, key_length, prf)


def _salt_and_iterations(buf: bytes, params: der.Tlv | None) -> tuple[bytes, int]:
    if params is None:
        raise der.DerError("missing parameters")
    der.expect_sequence(params)
    parts = der.child_list(buf, params, max_count=2)
    if len(parts) != 2:
        raise der.DerError("unexpected structure")
    iterations = der.read_integer(buf, parts[1], 8)
    if not 1 <= iterations <= MAX_KDF_ITERATIONS:
        raise ParseError("key derivation iteration count out of range")
    return der.read_octets(buf, parts[0], MAX_SALT_BYTES), iterations


def check_cost(buf: bytes, alg: Algorithm) -> None:
    """Refuse, without any work, a scheme we cannot run or whose iteration count is out of range."""
    if alg.oid in PKCS12_PBE or alg.oid in PBES1:
        _salt_and_iterations(buf, alg.params)
    elif alg.oid == PBES2 and alg.params is not None:
        kdf, scheme = _pbes2_parts(buf, alg.params)
        if kdf.oid != PBKDF2 or scheme.oid not in PBES2_CIPHERS:
            raise ParseError("unsupported encryption algorithm")
        pbkdf2_params(buf, kdf.params)
    else:
        raise ParseError("unsupported encryption algorithm")


def decrypt(buf: bytes, alg: Algorithm, ciphertext: bytes, password: bytes | None, budget: WorkBudget) -> bytes:
    """Plaintext, or WrongPassword when the padding is wrong; ParseError for what we do not run."""
    if alg.oid in PKCS12_PBE:
        salt, iterations = _salt_and_iterations(buf, alg.params)
        cipher, key_size = PKCS12_PBE[alg.oid]
        secret = bmp_password(password)
        key = pkcs12_kdf("sha1", secret, salt, 1, iterations, key_size, budget)
        budget.spend_decryption(len(ciphertext), in_python=cipher == "rc2")
        if cipher == "rc4":
            return _stream(ARC4(key), ciphertext)
        iv = pkcs12_kdf("sha1", secret, salt, 2, iterations, 8, budget)
        if cipher == "rc2":
            return _unpad(rc2_cbc_decrypt(key, key_size * 8, iv, ciphertext), 8)
        return _unpad(_cbc(TripleDES(key), iv, ciphertext), 8)
    if alg.oid in PBES1:
        salt, iterations = _salt_and_iterations(buf, alg.params)
        digest, cipher = PBES1[alg.oid]
        if len(salt) != 8:
            raise der.DerError("invalid salt")
        budget.spend(iterations)
        derived = hashlib.new(digest, (password or b"") + salt).digest()
        for _ in range(iterations - 1):
            derived = hashlib.new(digest, derived).digest()
        key, iv = derived[:8], derived[8:16]
        budget.spend_decryption(len(ciphertext), in_python=cipher == "rc2")
        if cipher == "rc2":
            return _unpad(rc2_cbc_decrypt(key, 64, iv, ciphertext), 8)
        return _unpad(_cbc(TripleDES(key), iv, ciphertext), 8)
    if alg.oid == PBES2 and alg.params is not None:
        kdf, scheme = _pbes2_parts(buf, alg.params)
        if kdf.oid != PBKDF2 or scheme.oid not in PBES2_CIPHERS:
            raise ParseError("unsupported encryption algorithm")
        params = pbkdf2_params(buf, kdf.params)
        cipher, key_size = PBES2_CIPHERS[scheme.oid]
        if params.key_length is not None and params.key_length != key_size:
            raise der.DerError("invalid key length")
        if scheme.params is None:
            raise der.DerError("missing parameters")
        iv = der.read_octets(buf, scheme.params, 16)
        key = pbkdf2(password, params.salt, params.iterations, key_size, params.prf, budget)
        budget.spend_decryption(len(ciphertext), in_python=False)
        if cipher == "aes":
            if len(iv) != 16:
                raise der.DerError("invalid IV")
            return _unpad(_cbc(algorithms.AES(key), iv, ciphertext), 16)
        if len(iv) != 8:
            raise der.DerError("invalid IV")
        return _unpad(_cbc(TripleDES(key), iv, ciphertext), 8)
    raise ParseError("unsupported encryption algorithm")


def _cbc(algorithm_: algorithms.AES | TripleDES, iv: bytes, ciphertext: bytes) -> bytes:
    if not ciphertext or len(ciphertext) % (algorithm_.block_size // 8):
        raise WrongPassword
    decryptor = Cipher(algorithm_, modes.CBC(iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def _stream(algorithm_: ARC4, ciphertext: bytes) -> bytes:
    decryptor = Cipher(algorithm_, mode=None).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def _unpad(plaintext: bytes, block: int) -> bytes:
    pad = plaintext[-1] if plaintext else 0
    if not 1 <= pad <= block or plaintext[-pad:] != bytes([pad]) * pad:
        raise WrongPassword
    return plaintext[:-pad]


# --- RC2 (RFC 2268), decryption only ---

_PITABLE = bytes.fromhex(
    "d978f9c419ddb5ed28e9fd794aa0d89dc67e37832b76538e624c6488448bfba2"
    "179a59f587b34f1361456d8d09817d32bd8f40eb86b77b0bf09521225c6b4e82"
    "54d66593ce60b21c7356c014a78cf1dc1275ca1f3bbee4d1423dd430a33cb626"
    "6fbf0eda4669075727f21d9bbc944303f811c7f690ef3ee706c3d52fc8661ed7"
    "08e8eade8052eef784aa72ac354d6a2a961ad2715a1549744b9fd05e0418a4ec"
    "c2e0416e0f51cbcc2491af50a1f47039997c3a8523b8b47afc02365b25559731"
    "2d5dfa98e38a92ae05df2910676cbac9d300e6cfe19ea82c6316013f58e289a9"
    "0d38341bab33ffb0bb480c5fb9b1cd2ec5f3db47e5a59c770aa62068fe7fc1ad"
)


def _rc2_key_schedule(key: bytes, effective_bits: int) -> list[int]:
    size = len(key)
    table = list(key) + [0] * (128 - size)
    for i in range(size, 128):
        table[i] = _PITABLE[(table[i - 1] + table[i - size]) & 0xFF]
    t8 = (effective_bits + 7) // 8
    mask = 0xFF >> (8 * t8 - effective_bits)
    table[128 - t8] = _PITABLE[table[128 - t8] & mask]
    for i in range(127 - t8, -1, -1):
        table[i] = _PITABLE[table[i + 1] ^ table[i + t8]]
    return [table[2 * i] | (table[2 * i + 1] << 8) for i in range(64)]


def _rc2_decrypt_block(k: list[int], block: bytes) -> bytes:
    r = [block[0] | block[1] << 8, block[2] | block[3] << 8, block[4] | block[5] << 8, block[6] | block[7] << 8]
    shifts = (1, 2, 3, 5)
    j = 63
    for round_ in range(16):
        for i in (3, 2, 1, 0):
            s = shifts[i]
            value = ((r[i] >> s) | (r[i] << (16 - s))) & 0xFFFF
            r[i] = (value - k[j] - (r[i - 1] & r[i - 2]) - (~r[i - 1] & r[i - 3])) & 0xFFFF
            j -= 1
        if round_ in (4, 10):
            for i in (3, 2, 1, 0):
                r[i] = (r[i] - k[r[i - 1] & 63]) & 0xFFFF
    return bytes((r[0] & 0xFF, r[0] >> 8, r[1] & 0xFF, r[1] >> 8, r[2] & 0xFF, r[2] >> 8, r[3] & 0xFF, r[3] >> 8))


def rc2_cbc_decrypt(key: bytes, effective_bits: int, iv: bytes, ciphertext: bytes) -> bytes:
    if len(ciphertext) > MAX_PYTHON_CIPHERTEXT:
        raise ParseError("legacy-encrypted content too large")
    if not ciphertext or len(ciphertext) % 8:
        raise WrongPassword
    k = _rc2_key_schedule(key, effective_bits)
    out = bytearray()
    previous = iv
    for pos in range(0, len(ciphertext), 8):
        block = ciphertext[pos:pos + 8]
        plain = _rc2_decrypt_block(k, block)
        out += bytes(a ^ b for a, b in zip(plain, previous, strict=True))
        previous = block
    return bytes(out)
