"""The parsers against files made by the real tools (openssl 3, keytool 17, ssh-keygen), generated
here and compared with what the tools themselves print about them. Skipped, saying which tool is
missing, where a tool is not installed."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from securefiles.storage.domain.file_metadata import parse_file_metadata
from tests.unit.test_file_metadata_samples import FAST_JVM, needs_keytool, needs_ssh_keygen

needs_openssl = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode != 0, reason="openssl not on PATH")


def run(*command: str, cwd: Path) -> str:
    result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return result.stdout


def keytool(*arguments: str, cwd: Path) -> str:
    return run("keytool", *FAST_JVM, *arguments, cwd=cwd)


def self_signed(cwd: Path, stem: str, subject: str, days: int) -> None:
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{stem}.key", "-out", f"{stem}.pem", "-days", str(days), "-subj", subject, cwd=cwd)


def openssl_subject(cwd: Path, certificate: str) -> str:
    return run("openssl", "x509", "-in", certificate, "-noout", "-subject", "-nameopt", "RFC2253",
               cwd=cwd).strip().removeprefix("subject=")


def openssl_not_after(cwd: Path, certificate: str) -> datetime:
    text = run("openssl", "x509", "-in", certificate, "-noout", "-enddate", cwd=cwd).strip().removeprefix("notAfter=")
    return datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)


# -- 6. a PKCS#12 without MAC keeps its certificates readable --------------------------------


@needs_openssl
def test_a_nomac_pkcs12_shows_its_certificate_without_the_password(tmp_path) -> None:
    """`-nomac` leaves the certificate bag unencrypted: its subject and expiry can be read without
    the password (the product reported only `encrypted: true`)."""
    self_signed(tmp_path, "signing", "/CN=Nomac Signing/O=Example", 45)
    run("openssl", "pkcs12", "-export", "-inkey", "signing.key", "-in", "signing.pem", "-passout", "pass:X",
        "-nomac", "-out", "signing.p12", cwd=tmp_path)
    result = parse_file_metadata("signing.p12", (tmp_path / "signing.p12").read_bytes())
    metadata = result.metadata
    assert metadata["encrypted"] is True and "parse_error" not in metadata
    assert metadata["subject"] == openssl_subject(tmp_path, "signing.pem")
    assert "key_type" not in metadata  # the key needs the password
    assert result.expires_at == openssl_not_after(tmp_path, "signing.pem")
    opened = parse_file_metadata("signing.p12", (tmp_path / "signing.p12").read_bytes(), b"X").metadata
    assert opened["key_type"] == "EC" and opened["subject"] == metadata["subject"]


# -- 7. and 8. keystores: every entry, one expiry rule, aliases in every form -------------------


@pytest.fixture(scope="module")
def keystores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """The same entries as JCEKS (with a secret key), JKS (without: JKS cannot hold one) and a Java
    PKCS12 keystore: a key pair whose certificate (365 days) is signed by a CA that expires sooner
    (60 days), a trusted partner certificate (90 days), and in JCEKS/PKCS12 an AES key."""
    if subprocess.run(["which", "keytool"], capture_output=True).returncode != 0:
        pytest.skip("keytool not on PATH")
    work = tmp_path_factory.mktemp("keystores")
    self_signed(work, "ca", "/CN=Release CA", 60)
    self_signed(work, "partner", "/CN=Partner/emailAddress=partner@example.com", 90)
    store = ["-keystore", "full.jceks", "-storetype", "JCEKS", "-storepass", "changeit", "-keypass", "changeit"]
    keytool("-genkeypair", "-alias", "upload", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=Upload",
            "-validity", "400", "-noprompt", *store, cwd=work)
    keytool("-certreq", "-alias", "upload", "-file", "upload.csr", *store, cwd=work)
    run("openssl", "x509", "-req", "-in", "upload.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "365", "-out", "upload.pem", cwd=work)
    (work / "reply.pem").write_bytes((work / "upload.pem").read_bytes() + (work / "ca.pem").read_bytes())
    keytool("-importcert", "-alias", "upload", "-file", "reply.pem", "-noprompt", *store, cwd=work)
    keytool("-importcert", "-alias", "partner", "-file", "partner.pem", "-noprompt", *store, cwd=work)
    keytool("-genseckey", "-alias", "api-secret", "-keyalg", "AES", "-keysize", "256", *store, cwd=work)
    for target, kind in (("full.p12", "PKCS12"), ("full.jks", "JKS")):
        keytool("-importkeystore", "-srckeystore", "full.jceks", "-srcstoretype", "JCEKS", "-srcstorepass",
                "changeit", "-destkeystore", target, "-deststoretype", kind, "-deststorepass", "changeit",
                "-noprompt", cwd=work)
        listed = keytool("-list", "-keystore", target, "-storetype", kind, "-storepass", "changeit", cwd=work)
        assert "partner," in listed and "upload," in listed, listed
    return work, {"JCEKS": work / "full.jceks", "PKCS12": work / "full.p12", "JKS": work / "full.jks"}


@needs_keytool
def test_a_jceks_with_a_secret_key_lists_every_entry(keystores) -> None:
    """Reading stopped at the secret key: only its alias, no certificates, no expiry."""
    work, paths = keystores
    listed = keytool("-list", "-keystore", "full.jceks", "-storetype", "JCEKS", "-storepass", "changeit", cwd=work)
    result = parse_file_metadata("full.jceks", paths["JCEKS"].read_bytes())
    metadata = result.metadata
    assert sorted(metadata["aliases"]) == sorted(line.split(",")[0] for line in listed.splitlines()
                                                 if "Entry," in line)
    assert {entry["alias"]: entry["entry_type"] for entry in metadata["entries"]} == {
        "upload": "private_key", "partner": "trusted_certificate", "api-secret": "secret_key"}
    assert "parse_error" not in metadata and "partial" not in metadata
    assert sorted(cert["subject"] for cert in metadata["certificates"]) == sorted(
        [openssl_subject(work, "upload.pem"), openssl_subject(work, "ca.pem"), openssl_subject(work, "partner.pem")])
    assert result.expires_at == openssl_not_after(work, "partner.pem")


@needs_keytool
@pytest.mark.parametrize("file_name", ["release.jks", "release.p12"])
def test_one_expiry_rule_and_the_same_aliases_for_every_keystore_kind(keystores, file_name: str) -> None:
    """JKS/JCEKS took the earliest of all certificates (here the CA above the key), a PKCS12
    keystore only its key's certificate, and lost its aliases. The rule now, for all: the earliest
    of the entries' own certificates (the key's certificate, each trusted certificate)."""
    work, paths = keystores
    expected = min(openssl_not_after(work, "upload.pem"), openssl_not_after(work, "partner.pem"))
    assert expected < openssl_not_after(work, "upload.pem")
    seen = {}
    for kind, path in paths.items():
        result = parse_file_metadata(file_name, path.read_bytes(), b"changeit")
        aliases = set(result.metadata["aliases"])
        seen[kind] = (result.expires_at, aliases - {"api-secret"})
        assert result.expires_at == expected, kind
    assert all(facts == seen["JKS"] for facts in seen.values()), seen  # sets by equality, not by repr's order
    assert seen["JKS"][1] == {"upload", "partner"}


# -- 9. SSH public keys ----------------------------------------------------------------------


@needs_ssh_keygen
@pytest.mark.parametrize(("kind", "bits"), [("ed25519", None), ("rsa", "3072"), ("ecdsa", "384")])
def test_ssh_public_keys_read_as_ssh_keygen_prints_them(tmp_path, kind: str, bits: str | None) -> None:
    run("ssh-keygen", "-q", "-t", kind, *(["-b", bits] if bits else []), "-N", "", "-C", f"ci {kind} key",
        "-f", f"id_{kind}", cwd=tmp_path)
    size, fingerprint, rest = run("ssh-keygen", "-l", "-f", f"id_{kind}.pub", cwd=tmp_path).split(" ", 2)
    comment, label = rest.strip().rsplit(" ", 1)
    metadata = parse_file_metadata(f"id_{kind}.pub", (tmp_path / f"id_{kind}.pub").read_bytes()).metadata
    assert metadata["type"] == "ssh_public_key" and "parse_error" not in metadata
    assert (metadata["key_size"], metadata["fingerprint"], metadata["comment"]) == (int(size), fingerprint, comment)
    assert label.strip("()").lower() in metadata["key_type"].replace("ssh-", "")


# -- 10. a wrong password ----------------------------------------------------------------------


@needs_openssl
def test_a_wrong_password_is_not_taken_for_no_password(tmp_path) -> None:
    self_signed(tmp_path, "signing", "/CN=Password Test", 30)
    run("openssl", "pkcs12", "-export", "-inkey", "signing.key", "-in", "signing.pem", "-passout", "pass:right",
        "-out", "signing.p12", cwd=tmp_path)
    run("openssl", "pkcs8", "-topk8", "-in", "signing.key", "-passout", "pass:right", "-out", "pkcs8.key",
        cwd=tmp_path)
    run("openssl", "ec", "-in", "signing.key", "-aes256", "-passout", "pass:right", "-out", "traditional.key",
        cwd=tmp_path)
    for name in ("signing.p12", "pkcs8.key", "traditional.key"):
        data = (tmp_path / name).read_bytes()
        none = parse_file_metadata(name, data).metadata
        wrong = parse_file_metadata(name, data, b"wrong").metadata
        right = parse_file_metadata(name, data, b"right").metadata
        assert none["encrypted"] is True and "parse_error" not in none, name
        assert wrong["parse_error"] == "wrong password", name
        assert "parse_error" not in right and right["key_type"] in ("EC", "ecdsa-sha2-nistp256"), name


# -- 11. distinguished names ----------------------------------------------------------------------


@needs_openssl
def test_distinguished_names_read_as_openssl_prints_them(tmp_path) -> None:
    subject = ("/C=DE/ST=Berlin/L=Berlin/O=Example GmbH/OU=CI/CN=Many Names/emailAddress=ci@example.com"
               "/serialNumber=12345/title=Builder/GN=Grace/SN=Hopper/initials=GH/dnQualifier=dq/pseudonym=p"
               "/businessCategory=Private Organization/postalCode=10115/street=Main St 1/jurisdictionC=DE"
               "/jurisdictionST=Berlin/jurisdictionL=Berlin/organizationIdentifier=VATDE-1/DC=example/UID=u1"
               "/name=Full Name/description=desc/unstructuredName=un")
    self_signed(tmp_path, "names", subject, 30)
    metadata = parse_file_metadata("names.pem", (tmp_path / "names.pem").read_bytes()).metadata
    assert metadata["subject"] == openssl_subject(tmp_path, "names.pem")
    assert metadata["issuer"] == metadata["subject"]
    assert "emailAddress=ci@example.com" in metadata["subject"]
