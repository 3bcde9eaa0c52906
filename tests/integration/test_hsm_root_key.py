"""Root keys in an HSM: each region's root key can be a non-extractable AES key in a PKCS#11
token (SoftHSM2 here), which seals and unseals key versions itself; the key never leaves it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive, UserAlreadyLoggedIn

from securefiles.client import DataLoss
from securefiles.common.errors import DataLoss as DomainDataLoss
from securefiles.kms.adapters.pkcs11_root_key import Pkcs11ConfigError, Pkcs11RootKey, Pkcs11Settings
from securefiles.kms.domain.key_ring import KeyRing
from tests.conftest import LocalSystem, job_token_for, unique
from tests.hsm import USER_PIN, init_token, softhsm_config, softhsm_module
from tests.unit.test_key_ring import CONTEXT, InMemoryKeyVersionStore

# Looks at what only `securefiles up`'s processes have (see tests/integration/conftest.py).
pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def token_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One SoftHSM2 token directory for this module's in-process tests (the library reads its
    configuration once per process), with tokens `first`, `second` and `untouched` (never logged
    into but with a wrong PIN: a login holds for the whole process)."""
    module = softhsm_module()
    config = softhsm_config(tmp_path_factory.mktemp("softhsm"))
    for label in ("first", "second", "untouched"):
        init_token(config, label)
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(config)
    yield module, config
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


def _session(module: str, token: str, rw: bool = False) -> pkcs11.Session:
    """A session on `token` (the login is per process: another session may hold it already)."""
    slot = pkcs11.lib(module).get_token(token_label=token)
    try:
        return slot.open(user_pin=USER_PIN, rw=rw)
    except UserAlreadyLoggedIn:
        return slot.open(rw=rw)


def _settings(module: str, token: str = "first", key: str = "root-eu", generate: bool = True,
              pin: str = USER_PIN) -> Pkcs11Settings:
    return Pkcs11Settings(module=module, token_label=token, key_label=key, pin=pin, generate=generate)


def test_a_ring_sealed_in_the_token_wraps_and_unwraps_and_the_key_stays_inside(token_config) -> None:
    module, _ = token_config
    root = Pkcs11RootKey(_settings(module, key=unique("root")))
    store = InMemoryKeyVersionStore()
    ring = KeyRing("eu", root, store)
    ring.rotate("user:op", "first")
    data_key, wrapped, _ = ring.generate_data_key(CONTEXT)

    # Another process (a restart, a replica) with the same token key unwraps it.
    settings = _settings(module, key=root._key.label, generate=False)
    assert KeyRing("eu", Pkcs11RootKey(settings), store).decrypt_data_key(wrapped, CONTEXT)[0] == data_key
    # The same version sealed elsewhere does not open: a key of another token is another key.
    other = KeyRing("eu", Pkcs11RootKey(_settings(module, token="second", key=root._key.label)), store)
    with pytest.raises(DomainDataLoss) as mismatch:
        other.decrypt_data_key(wrapped, CONTEXT)
    assert mismatch.value.reason == "ROOT_KEY_MISMATCH"

    with _session(module, "first") as session:
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=root._key.label)
        assert key[Attribute.EXTRACTABLE] is False and key[Attribute.SENSITIVE] is True
        with pytest.raises(AttributeSensitive):
            key[Attribute.VALUE]


def test_a_wrong_token_pin_or_key_or_an_extractable_key_is_refused_with_a_clear_error(token_config) -> None:
    module, _ = token_config
    with pytest.raises(Pkcs11ConfigError, match="no PKCS#11 token labelled 'absent'"):
        Pkcs11RootKey(_settings(module, token="absent"))
    with pytest.raises(Pkcs11ConfigError, match="PIN was refused"):
        Pkcs11RootKey(_settings(module, token="untouched", pin="0000"))
    with pytest.raises(Pkcs11ConfigError, match="no AES key labelled 'never-made'"):
        Pkcs11RootKey(_settings(module, key="never-made", generate=False))

    label = unique("extractable")
    with _session(module, "first", rw=True) as session:
        session.generate_key(KeyType.AES, 256, label=label, store=True,
                             template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False})
    with pytest.raises(Pkcs11ConfigError, match="must be sensitive and not extractable"):
        Pkcs11RootKey(_settings(module, key=label, generate=False))


@pytest.mark.slow
def test_a_system_whose_kms_root_key_is_in_the_token(fresh_system: LocalSystem, tmp_path: Path) -> None:
    module = softhsm_module()
    config = softhsm_config(tmp_path / "softhsm")
    init_token(config, "kms-eu")
    hsm = {"SOFTHSM2_CONF": str(config), "SECUREFILES_KMS_PKCS11_MODULE": module,
           "SECUREFILES_KMS_PKCS11_TOKEN_LABEL": "kms-eu", "SECUREFILES_KMS_PKCS11_PIN": USER_PIN,
           "SECUREFILES_KMS_PKCS11_GENERATE_KEY": "true"}
    fresh_system.extra_env.update(hsm)
    fresh_system.start()
    name, content = unique("hsm"), os.urandom(5000)
    with fresh_system.client() as admin:
        admin.upload_file(content, name=name)

    def download(where: str) -> bytes:
        with fresh_system.client(token=job_token_for(fresh_system, name)) as job:
            return job.download_secure_file(name, tmp_path / where, retry_count=0).path.read_bytes()

    assert download("first") == content
    # The root key file that `up` generated is not what sealed the key versions: started on it,
    # the kms cannot unseal them (not ready, and downloads fail DATA_LOSS) ...
    fresh_system.stop()
    for key in hsm:
        fresh_system.extra_env.pop(key)
    fresh_system.start()
    ready = fresh_system.operations_url("kms-eu")
    assert httpx.get(ready + "/readyz", timeout=10).json()["checks"]["primary_key"] == "failing"
    with pytest.raises(DataLoss) as lost:
        download("file-root")
    assert lost.value.reason == "ROOT_KEY_MISMATCH"
    # ... and back on the token, everything is there.
    fresh_system.stop()
    fresh_system.extra_env.update(hsm)
    fresh_system.start()
    assert download("again") == content
