"""The ready-made CI integrations work as written: the GitHub composite action's download step
and the GitLab template's scripts run under bash as the CI systems would run them (inputs as
environment variables), against a real system, with the test OpenID provider as the CI
provider."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import LocalSystem, unique
from tests.oidc_provider import GITHUB_REQUEST_TOKEN, OidcProvider

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)  # where `securefiles` is installed


@pytest.fixture
def oidc(tmp_path: Path) -> Iterator[OidcProvider]:
    provider = OidcProvider(tmp_path / "oidc")
    with provider.running():
        yield provider


def _setup(system: LocalSystem, oidc: OidcProvider, preset: str, subject: str) -> tuple[str, str]:
    project = f"ci{uuid.uuid4().hex[:10]}"
    names = [unique("signing") + ".p12", unique("profile") + ".mobileprovision"]
    pipeline = unique("release")
    with system.client(project="default") as admin:
        admin.create_project(project)
    with system.client(project=project) as admin:
        admin.create_pipeline(pipeline)
        for name in names:
            admin.upload_file(name.encode(), name=name)
            admin.set_pipeline_permission(name, pipeline, True)
    added = system.cli("--project", project, "trusts", "add", "ci", "--pipeline", pipeline, preset, subject,
                       "--issuer", oidc.issuer, "--ca-file", str(oidc.ca_file))
    assert added.code == 0, added.stderr
    return names[0], names[1]


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def _endpoints(system: LocalSystem) -> dict[str, str]:
    config = system.client().config
    return {"storage": config.storage, "authz": config.authz, "ca": (system.state_dir / "pki" / "ca.pem").read_text()}


def test_github_composite_action_downloads_with_the_jobs_oidc_token(system: LocalSystem, oidc: OidcProvider,
                                                                     tmp_path: Path) -> None:
    certificate, profile = _setup(system, oidc, "--github", "org/app")
    oidc.github_claims = {"repository": "org/app", "ref": "refs/heads/main", "run_id": "9", "run_attempt": "1",
                          "actor": "alice"}
    action = yaml.safe_load((ROOT / "integrations" / "github" / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "download")
    endpoints = _endpoints(system)
    runner_temp, output = tmp_path / "runner", tmp_path / "github_output"
    runner_temp.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SECUREFILES_")} | {
        "PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(system.home), "GITHUB_ACTIONS": "true",
        "RUNNER_TEMP": str(runner_temp), "GITHUB_OUTPUT": str(output), "SSL_CERT_FILE": str(oidc.ca_file),
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{oidc.issuer}/github-token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": GITHUB_REQUEST_TOKEN,
    }
    inputs = {"inputs.files": certificate, "inputs.name": "securefile", "inputs.ca-certificate": endpoints["ca"],
              "inputs.storage-endpoint": endpoints["storage"], "inputs.authz-endpoint": endpoints["authz"],
              "inputs.audience": "securefiles"}
    # GitHub evaluates each `${{ … }}` of the step's env; the script sees only the variables.
    env = base | {key: inputs[value.strip("${} ")] for key, value in step["env"].items()}
    one = _bash(step["run"], env, tmp_path)
    assert one.returncode == 0, one.stderr
    assert (runner_temp / certificate).read_bytes() == certificate.encode()
    assert f"securefile_path={runner_temp / certificate}" in output.read_text()

    env["FILES"] = "*.mobileprovision"  # a glob reaches the agent, not the shell
    glob = _bash(step["run"], env, tmp_path)
    assert glob.returncode == 0, glob.stderr
    assert (runner_temp / profile).read_bytes() == profile.encode()

    cleanup = _bash("securefiles agent cleanup", env, tmp_path)
    assert cleanup.returncode == 0, cleanup.stderr
    assert not (runner_temp / certificate).exists() and not (runner_temp / profile).exists()


def test_gitlab_template_downloads_with_the_jobs_id_token(system: LocalSystem, oidc: OidcProvider,
                                                          tmp_path: Path) -> None:
    certificate, profile = _setup(system, oidc, "--gitlab", "group/app")
    template = yaml.safe_load((ROOT / "integrations" / "gitlab" / "securefiles.gitlab-ci.yml").read_text())
    job = template[".securefiles"]
    assert job["id_tokens"]["SECUREFILES_OIDC_TOKEN"]["aud"] == "securefiles"
    endpoints = _endpoints(system)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(endpoints["ca"])
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    id_token = oidc.mint({"aud": "securefiles", "project_path": "group/app", "ref": "main", "ref_type": "branch",
                          "pipeline_id": "77", "user_login": "bob"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREFILES_")} | {
        "PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(system.home), "CI_PROJECT_DIR": str(project_dir),
        "SECUREFILES_OIDC_TOKEN": id_token, "SECUREFILES_STORAGE_ENDPOINT": endpoints["storage"],
        "SECUREFILES_AUTHZ_ENDPOINT": endpoints["authz"], "SECUREFILES_CA_FILE": str(ca_file),
        "SECUREFILES_FILES": f"{certificate} *.mobileprovision",
        # The template's variables, as GitLab expands them (pip would install the package: it is installed).
        "SECUREFILES_DEST": str(project_dir / ".securefiles"),
    }
    before = [line for line in job["before_script"] if "pip install" not in line]
    downloaded = _bash("\n".join(["set -e", *before]), env, project_dir)
    assert downloaded.returncode == 0, downloaded.stderr
    assert (project_dir / ".securefiles" / certificate).read_bytes() == certificate.encode()
    assert (project_dir / ".securefiles" / profile).read_bytes() == profile.encode()
    cleaned = _bash("\n".join(job["after_script"]), env, project_dir)
    assert cleaned.returncode == 0, cleaned.stderr
    assert list((project_dir / ".securefiles").iterdir()) == []
