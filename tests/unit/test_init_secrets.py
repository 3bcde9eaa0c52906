"""`securefiles init-secrets` (compose's secrets-init): the host gets a client config of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys

from securefiles.client.config import load_config


def test_the_host_config_names_published_endpoints_and_the_ca_beside_it(tmp_path) -> None:
    secrets = tmp_path / "secrets"
    result = subprocess.run(
        [sys.executable, "-m", "securefiles", "init-secrets", "--dir", str(secrets), "--regions", "eu,us",
         "--storage-endpoint", "storage:7700", "--authz-endpoint", "authz:7700",
         "--kms-endpoints", "eu=kms-eu:7700,us=kms-us:7700",
         "--host-storage-endpoint", "localhost:7801", "--host-authz-endpoint", "localhost:7800",
         "--host-kms-endpoints", "eu=localhost:7803,us=localhost:7804"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"client config: {secrets / 'host-client.toml'}" in result.stdout

    in_network = load_config({}, secrets / "client.toml")
    assert (in_network.storage, in_network.authz) == ("storage:7700", "authz:7700")
    # Wherever the directory ends up (a bind mount, a copy), the host config finds its CA.
    moved = shutil.copytree(secrets, tmp_path / "elsewhere")
    host = load_config({}, moved / "host-client.toml")
    assert (host.storage, host.authz, host.kms) == ("localhost:7801", "localhost:7800",
                                                    {"eu": "localhost:7803", "us": "localhost:7804"})
    assert host.ca_file == moved / "ca.pem" and host.ca_file.read_bytes() == (secrets / "ca.pem").read_bytes()
    assert host.token.count(".") == 2  # a JWT: the bootstrap administrator
