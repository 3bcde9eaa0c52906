"""A token signed by a rotated-out signing key stops working everywhere."""

from __future__ import annotations

import signal
import time

import pytest

from securefiles.client import Unauthenticated
from securefiles.common.files import write_private_file
from securefiles.common.tokens import TokenIssuer, generate_signing_key_pem, load_signing_key
from tests.conftest import LocalSystem

# Looks at what only `securefiles up`'s processes have (see tests/integration/conftest.py).
pytestmark = pytest.mark.processes


def test_rotated_out_signing_key_is_refused(fresh_system: LocalSystem) -> None:
    fresh_system.extra_env["SECUREFILES_SIGNING_KEYS_MAX_AGE_SECONDS"] = "1"
    fresh_system.start()
    old_token = fresh_system.admin_token
    with fresh_system.client(token=old_token) as admin:
        admin.upload_file(b"x", name="rotation.pem")

    new_key = generate_signing_key_pem()
    write_private_file(fresh_system.state_dir / "secrets" / "authz-signing-key.pem", new_key)
    old_pid = fresh_system.signal_service("authz", signal.SIGKILL)  # `up` restarts it with the new key
    fresh_system.wait_restarted("authz", old_pid)
    new_token, _ = TokenIssuer(load_signing_key(new_key)).issue("user:admin", 600, kind="user")

    # Each service refuses the old token once its cached keys are older than 1 s: wait for that,
    # then the new token works everywhere.
    deadline = time.monotonic() + 30
    with fresh_system.client(token=old_token) as stale:
        for call in (lambda: stale.get_file("rotation.pem"), stale.list_projects, stale.list_key_versions):
            while True:
                try:
                    call()
                except Unauthenticated as refused:
                    assert refused.reason == "UNKNOWN_SIGNING_KEY"
                    break
                assert time.monotonic() < deadline, "a token of the rotated-out key still works after 30 s"
                time.sleep(0.1)
    with fresh_system.client(token=new_token) as admin:
        assert admin.get_file("rotation.pem").display_name == "rotation.pem"  # storage
        assert admin.list_projects()  # authz
        assert admin.list_key_versions()[1]  # kms
