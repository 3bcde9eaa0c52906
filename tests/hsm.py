"""SoftHSM2 tokens for the HSM root key tests (the distribution's softhsm2 package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MODULE_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                     "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")
USER_PIN = "1234-user"


def softhsm_module() -> str:
    """The SoftHSM2 PKCS#11 library; the test is skipped where the package is missing (.ci/run installs it)."""
    module = next((m for m in MODULE_CANDIDATES if Path(m).exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2)")
    return module


def softhsm_config(directory: Path) -> Path:
    """A SoftHSM2 configuration keeping its tokens under `directory` (point SOFTHSM2_CONF at it)."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    config = directory / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    return config


def init_token(config: Path, label: str) -> None:
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", USER_PIN,
                    "--so-pin", "5678-so"], check=True, capture_output=True, env={"SOFTHSM2_CONF": str(config)})
