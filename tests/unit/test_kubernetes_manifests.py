"""The Kubernetes manifests under deploy/kubernetes/: valid against the Kubernetes schemas
(shipped by the kubernetes-validate package; offline, strict) and holding to the rules the
README promises."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

MANIFESTS = Path(__file__).parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"


def _objects() -> list[dict]:
    objects = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def _by_kind(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in _objects() if o["kind"] == kind}


@pytest.mark.parametrize("obj", _objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_object_is_valid_against_the_kubernetes_schema(obj: dict) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_a_deployment_per_service_and_region_with_storage_replicated() -> None:
    deployments = _by_kind("Deployment")
    assert set(deployments) == {"authz", "storage", "kms-eu", "kms-us"}
    assert deployments["storage"]["spec"]["replicas"] >= 2
    for region in ("eu", "us"):
        env = {e["name"]: e for e in deployments[f"kms-{region}"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["SECUREFILES_REGION"]["value"] == region
        assert env["SECUREFILES_KMS_ROOT_KEY_FILE"]["value"].endswith(f"kms-{region}-root-key")


@pytest.mark.parametrize("name", ["authz", "storage", "kms-eu", "kms-us"])
def test_each_pod_is_probed_bounded_unprivileged_and_gets_secrets_by_reference(name: str) -> None:
    deployment = _by_kind("Deployment")[name]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and "memory" in container["resources"]["limits"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"] and pod["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in container["env"]}
    assert env["SECUREFILES_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "securefiles-database"
    assert all("value" not in e or not any(w in e["name"] for w in ("PASSWORD", "PIN", "SECRET")) for e in env.values())
    (secret_volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert secret_volume["secret"]["secretName"] == f"securefiles-{name}"  # only its own files
    budget = _by_kind("PodDisruptionBudget")[name]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_only_storage_may_reach_kms() -> None:
    policies = _by_kind("NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    kms = policies["kms-ingress"]["spec"]
    assert kms["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "kms"
    peers = [peer for rule in kms["ingress"] for peer in rule["from"]]
    pods = [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in peers if "podSelector" in p]
    assert pods == ["storage"]
    # Everything else that may enter kms is the monitoring namespace, and only the operations port.
    for rule in kms["ingress"]:
        if any("namespaceSelector" in p for p in rule["from"]):
            assert [p["port"] for p in rule["ports"]] == [7780]
