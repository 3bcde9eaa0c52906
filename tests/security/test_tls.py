"""Transport security: every service listens twice, with modern TLS only.

- The *public* port (agents, people): server-authenticated TLS; the caller proves who it is with
  a bearer token and needs no client certificate. A certificate cannot make anyone a service here.
- The *internal* port (services): mutual TLS; only a certificate from our CA gets through, and
  only a service's certificate makes the caller that service. Only storage's gets data keys.

The handshake tests drive Python's `ssl` module directly. Where a client *could* fail on its
own (a legacy protocol or a weak cipher the local OpenSSL refuses to offer), the same client
settings are first shown to work against a permissive local TLS server, so a refusal by the
service is the service's doing.
"""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from securefiles.authz.v1 import authz_pb2, authz_pb2_grpc
from securefiles.client.config import load_config
from securefiles.common.dev_pki import ensure_ca, ensure_identity
from securefiles.common.rich_status import error_info_of
from securefiles.common.tls import TlsFiles, channel_credentials, channel_options, client_channel_credentials
from securefiles.kms.v1 import kms_pb2, kms_pb2_grpc
from securefiles.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.conftest import LocalSystem, bearer, job_token_for, unique

SERVICES = ("storage", "authz", "kms")
PORTS = ("public", "internal")
CONTEXT = {"project": "default", "secure_file_id": "tls-test", "version": "1"}
# Failures the *client* raises before the server had a say.
CLIENT_SIDE_REASONS = {"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE", "UNSUPPORTED_PROTOCOL"}
HTTP2_SETTINGS = 0x04


def _target(system: LocalSystem, service: str, port: str = "public") -> str:
    if port == "internal":
        return system.internal_target(service)
    config = load_config(system.env())
    return config.kms["eu"] if service == "kms" else getattr(config, service)


@pytest.fixture(scope="module")
def client_identity(system: LocalSystem) -> TlsFiles:
    """A certificate our CA issued to something that is not a service (no SPIFFE service name)."""
    paths = ensure_identity(system.state_dir / "pki", "client")
    return TlsFiles(ca=system.tls("storage").ca, cert=paths.cert, key=paths.key)


def _authenticated_call(service: str) -> Callable[[grpc.Channel, str], object]:
    """One RPC per service that a valid admin token may make (no token: no authorization header)."""
    if service == "storage":
        return lambda channel, token: storage_pb2_grpc.SecureFileServiceStub(channel).ListSecureFiles(
            storage_pb2.ListSecureFilesRequest(parent="projects/default", page_size=1),
            metadata=bearer(token) if token else (), timeout=10)
    if service == "authz":
        return lambda channel, token: authz_pb2_grpc.AuthorizationServiceStub(channel).ListProjects(
            authz_pb2.ListProjectsRequest(), metadata=bearer(token) if token else (), timeout=10)
    return lambda channel, token: kms_pb2_grpc.KeyManagementServiceStub(channel).ListKeyVersions(
        kms_pb2.ListKeyVersionsRequest(parent="regions/eu"), metadata=bearer(token) if token else (), timeout=10)


def _health(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def _assert_refused_at_transport(call: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError) as error:
        call()
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE, error.value
    assert error_info_of(error.value) is None  # no service code ran: the connection itself was refused


# -- gRPC clients that must not get in ------------------------------------------------


@pytest.mark.parametrize("port", PORTS)
@pytest.mark.parametrize("service", SERVICES)
def test_plaintext_client_is_refused(system: LocalSystem, service: str, port: str) -> None:
    target = _target(system, service, port)
    with grpc.insecure_channel(target) as plaintext:
        _assert_refused_at_transport(lambda: _health(plaintext))
        _assert_refused_at_transport(lambda: _authenticated_call(service)(plaintext, system.admin_token))


@pytest.mark.parametrize("service", SERVICES)
def test_agents_and_people_need_no_client_certificate(system: LocalSystem, service: str) -> None:
    """On the public port trusting the CA and holding a token is enough; without the token the
    service itself answers (not the transport) that credentials are missing."""
    with system.channel(service) as channel:
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        _authenticated_call(service)(channel, system.admin_token)
        with pytest.raises(grpc.RpcError) as error:
            _authenticated_call(service)(channel, "")
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info_of(error.value).reason == "MISSING_CREDENTIALS"


@pytest.mark.parametrize("service", SERVICES)
def test_internal_port_refuses_a_client_without_certificate(system: LocalSystem, service: str) -> None:
    """Trusting the right CA is not enough there; a valid bearer token is not enough either."""
    target = _target(system, service, "internal")
    with grpc.secure_channel(target, client_channel_credentials(system.tls("storage").ca),
                             options=channel_options(target)) as channel:
        _assert_refused_at_transport(lambda: _health(channel))
        _assert_refused_at_transport(lambda: _authenticated_call(service)(channel, system.admin_token))


@pytest.mark.parametrize("service", SERVICES)
def test_internal_port_takes_a_non_service_certificate_for_nobody(
        system: LocalSystem, client_identity: TlsFiles, service: str) -> None:
    target = _target(system, service, "internal")
    with grpc.secure_channel(target, channel_credentials(client_identity), options=channel_options(target)) as channel:
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as error:
            _authenticated_call(service)(channel, "")
    assert error_info_of(error.value).reason == "MISSING_CREDENTIALS"


def test_a_service_certificate_on_the_public_port_makes_nobody_a_service(system: LocalSystem) -> None:
    """The public port never asks for a certificate: storage's own, presented there, is not sent."""
    target = _target(system, "kms")
    request = kms_pb2.GenerateDataKeyRequest(name="regions/eu", encryption_context=CONTEXT)
    with grpc.secure_channel(target, channel_credentials(system.tls("storage")),
                             options=channel_options(target, "kms-eu")) as channel:
        with pytest.raises(grpc.RpcError) as error:
            kms_pb2_grpc.KeyManagementServiceStub(channel).GenerateDataKey(request, timeout=10)
    assert error_info_of(error.value).reason == "MISSING_CREDENTIALS"


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA, with identities named like ours (`client`, even `storage`)."""
    directory = tmp_path_factory.mktemp("foreign-pki")
    ensure_ca(directory, "Not the Securefiles CA")
    for identity in ("client", "storage"):
        ensure_identity(directory, identity)
    return directory


def _foreign_tls(system: LocalSystem, foreign_pki: Path, identity: str) -> TlsFiles:
    """A foreign certificate, while trusting the real CA (so only the server's check can fail)."""
    return TlsFiles(ca=system.tls("storage").ca, cert=foreign_pki / f"{identity}.pem",
                    key=foreign_pki / f"{identity}-key.pem")


@pytest.mark.parametrize("service", SERVICES)
def test_certificate_from_another_ca_is_refused(system: LocalSystem, foreign_pki: Path, service: str) -> None:
    target = _target(system, service, "internal")
    credentials = channel_credentials(_foreign_tls(system, foreign_pki, "client"))
    with grpc.secure_channel(target, credentials, options=channel_options(target)) as channel:
        _assert_refused_at_transport(lambda: _health(channel))
        _assert_refused_at_transport(lambda: _authenticated_call(service)(channel, system.admin_token))


def test_another_cas_storage_certificate_gets_no_data_key(system: LocalSystem, foreign_pki: Path) -> None:
    """A certificate naming spiffe://securefiles/storage is worthless unless our CA issued it."""
    target = _target(system, "kms", "internal")
    credentials = channel_credentials(_foreign_tls(system, foreign_pki, "storage"))
    request = kms_pb2.GenerateDataKeyRequest(name="regions/eu", encryption_context=CONTEXT)
    with grpc.secure_channel(target, credentials, options=channel_options(target)) as channel:
        stub = kms_pb2_grpc.KeyManagementServiceStub(channel)
        _assert_refused_at_transport(lambda: stub.GenerateDataKey(request, timeout=10))
    with system.channel("kms", identity="storage") as genuine:
        generated = kms_pb2_grpc.KeyManagementServiceStub(genuine).GenerateDataKey(request, timeout=10)
    assert len(generated.plaintext) == 32


# -- only storage's identity gets (and unwraps) data keys -----------------------------
# tests/integration/test_kms.py covers GenerateDataKey with client/authz/kms certificates; this
# pins the exact reasons and covers unwrapping and re-encrypting a real wrapped key too.


@pytest.fixture(scope="module")
def wrapped_key(system: LocalSystem) -> kms_pb2.GenerateDataKeyResponse:
    with system.channel("kms", identity="storage") as channel:
        return kms_pb2_grpc.KeyManagementServiceStub(channel).GenerateDataKey(
            kms_pb2.GenerateDataKeyRequest(name="regions/eu", encryption_context=CONTEXT), timeout=10)


def _data_key_calls(wrapped: bytes) -> dict[str, Callable[[kms_pb2_grpc.KeyManagementServiceStub, tuple], object]]:
    return {
        "generate": lambda stub, md: stub.GenerateDataKey(kms_pb2.GenerateDataKeyRequest(
            name="regions/eu", encryption_context=CONTEXT), metadata=md, timeout=10),
        "decrypt": lambda stub, md: stub.DecryptDataKey(kms_pb2.DecryptDataKeyRequest(
            name="regions/eu", wrapped_key=wrapped, encryption_context=CONTEXT), metadata=md, timeout=10),
        "re-encrypt": lambda stub, md: stub.ReEncryptDataKey(kms_pb2.ReEncryptDataKeyRequest(
            name="regions/eu", wrapped_key=wrapped, encryption_context=CONTEXT), metadata=md, timeout=10),
    }


@pytest.mark.parametrize(
    ("identity", "token", "expected"),
    [
        ("client", "", ("UNAUTHENTICATED", "MISSING_CREDENTIALS")),
        ("authz", "", ("PERMISSION_DENIED", "NOT_STORAGE_SERVICE")),
        ("kms-eu", "", ("PERMISSION_DENIED", "NOT_STORAGE_SERVICE")),
        ("client", "admin", ("PERMISSION_DENIED", "NOT_STORAGE_SERVICE")),
        ("authz", "admin", ("PERMISSION_DENIED", "NOT_STORAGE_SERVICE")),
        ("kms-eu", "admin", ("PERMISSION_DENIED", "NOT_STORAGE_SERVICE")),
        # A bearer token decides who calls: storage's certificate does not lend its identity to a person or job.
        ("storage", "admin", ("PERMISSION_DENIED", "NOT_STORAGE_SERVICE")),
        ("storage", "job", ("PERMISSION_DENIED", "NOT_STORAGE_SERVICE")),
    ],
)
def test_only_storage_gets_or_unwraps_data_keys(
    system: LocalSystem, wrapped_key: kms_pb2.GenerateDataKeyResponse, identity: str, token: str,
    expected: tuple[str, str],
) -> None:
    metadata: tuple = ()
    if token == "admin":
        metadata = bearer(system.admin_token)
    elif token == "job":
        name = unique("tls-job")
        with system.client() as admin:
            admin.upload_file(b"job file", name=name)
        metadata = bearer(job_token_for(system, name))
    with system.channel("kms", identity=identity) as channel:
        stub = kms_pb2_grpc.KeyManagementServiceStub(channel)
        for operation, call in _data_key_calls(wrapped_key.wrapped_key).items():
            with pytest.raises(grpc.RpcError) as error:
                call(stub, metadata)
            info = error_info_of(error.value)
            assert (error.value.code().name, info.reason if info else None) == expected, operation
    with system.channel("kms", identity="storage") as channel:  # storage itself, with no token, may
        stub = kms_pb2_grpc.KeyManagementServiceStub(channel)
        assert _data_key_calls(wrapped_key.wrapped_key)["decrypt"](stub, ()).plaintext == wrapped_key.plaintext


# -- the handshake itself ---------------------------------------------------------------


@dataclass(frozen=True)
class Handshake:
    version: str
    cipher: str
    alpn: str | None
    first_frame_type: int | None  # what the server sends first after the handshake (HTTP/2 SETTINGS)


def _context(ca: Path, identity: TlsFiles | None, *, maximum: ssl.TLSVersion | None = None,
             ciphers: str | None = None, legacy: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    if identity is not None:
        context.load_cert_chain(identity.cert, identity.key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if legacy:  # let this client really offer what OpenSSL would otherwise hold back
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
        elif ciphers:
            context.set_ciphers(ciphers)
        if maximum is not None:
            context.maximum_version = maximum
    context.set_alpn_protocols(["h2"])
    return context


def _first_frame_type(connection: ssl.SSLSocket) -> int | None:
    data = b""
    try:
        while len(data) < 9:
            part = connection.recv(9 - len(data))
            if not part:
                return None
            data += part
    except (ssl.SSLError, OSError):
        return None
    return data[3]


def _handshake(target: str, context: ssl.SSLContext) -> Handshake:
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as connection:
        cipher = connection.cipher()
        return Handshake(str(connection.version()), cipher[0] if cipher else "", connection.selected_alpn_protocol(),
                         _first_frame_type(connection))


@pytest.fixture(scope="module")
def permissive_server(foreign_pki: Path) -> Iterator[str]:
    """A local TLS server that accepts TLS 1.0+ and every cipher (an ECDSA certificate, like ours)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(foreign_pki / "client.pem", foreign_pki / "client-key.pem")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                continue
            with raw:
                raw.settimeout(5)
                try:
                    with context.wrap_socket(raw, server_side=True) as connection:
                        connection.sendall(b"\0\0\0\x04\0\0\0\0\0")  # an empty SETTINGS frame
                except (ssl.SSLError, OSError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    listener.close()


def _service_refuses(target: str, context: ssl.SSLContext) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)) as error:
        _handshake(target, context)
    assert getattr(error.value, "reason", None) not in CLIENT_SIDE_REASONS, error.value


@pytest.mark.parametrize("service", SERVICES)
def test_tls_1_1_is_refused(system: LocalSystem, foreign_pki: Path, permissive_server: str, service: str,
                           client_identity: TlsFiles) -> None:
    control = _handshake(permissive_server, _context(foreign_pki / "ca.pem", None, maximum=ssl.TLSVersion.TLSv1_1,
                                                     legacy=True))
    if control.version != "TLSv1.1":
        pytest.skip(f"this OpenSSL cannot speak TLS 1.1 at all (got {control.version})")
    for port, tls in (("public", None), ("internal", client_identity)):
        _service_refuses(_target(system, service, port),
                         _context(client_identity.ca, tls, maximum=ssl.TLSVersion.TLSv1_1, legacy=True))


@pytest.mark.parametrize(
    "cipher",
    # AES128-SHA: RSA key exchange, CBC; the ECDHE-ECDSA ones are forward secret but not AEAD.
    ["AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256"],
)
@pytest.mark.parametrize("service", SERVICES)
def test_weak_tls_1_2_cipher_suites_are_refused(
    system: LocalSystem, foreign_pki: Path, permissive_server: str, service: str, cipher: str,
    client_identity: TlsFiles,
) -> None:
    if cipher.startswith("ECDHE-ECDSA"):  # our keys are ECDSA: show this client really offers the suite
        control = _handshake(permissive_server, _context(foreign_pki / "ca.pem", None,
                                                         maximum=ssl.TLSVersion.TLSv1_2, ciphers=cipher, legacy=True))
        assert control.cipher == cipher
    for port, tls in (("public", None), ("internal", client_identity)):
        _service_refuses(_target(system, service, port),
                         _context(client_identity.ca, tls, maximum=ssl.TLSVersion.TLSv1_2, ciphers=cipher, legacy=True))


AEAD_TLS12 = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305")


@pytest.mark.parametrize("port", PORTS)
@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_2, None], ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("service", SERVICES)
def test_normal_handshake_negotiates_forward_secret_aead(
    system: LocalSystem, service: str, maximum: ssl.TLSVersion | None, port: str, client_identity: TlsFiles
) -> None:
    tls = client_identity if port == "internal" else None
    result = _handshake(_target(system, service, port), _context(client_identity.ca, tls, maximum=maximum))
    if maximum is ssl.TLSVersion.TLSv1_2:
        assert result.version == "TLSv1.2" and result.cipher in AEAD_TLS12, result
    else:
        assert result.version == "TLSv1.3", result
        assert result.cipher in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
    assert result.alpn == "h2"
    assert result.first_frame_type == HTTP2_SETTINGS  # the server goes on to speak HTTP/2


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_2, None], ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("service", SERVICES)
def test_internal_handshake_without_client_certificate_gets_nothing(
    system: LocalSystem, service: str, maximum: ssl.TLSVersion | None
) -> None:
    """TLS 1.2 fails the handshake; with TLS 1.3 the client's side may complete, but the server
    closes before it sends a single HTTP/2 frame."""
    context = _context(system.tls("storage").ca, None, maximum=maximum)
    try:
        result = _handshake(_target(system, service, "internal"), context)
    except (ssl.SSLError, ConnectionError) as error:
        assert getattr(error, "reason", None) not in CLIENT_SIDE_REASONS, error
    else:
        assert maximum is None and result.version == "TLSv1.3", result
        assert result.first_frame_type is None, result
