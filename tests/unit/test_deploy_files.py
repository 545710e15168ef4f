"""The deploy files say only what the code can do: every role deployed with a command the CLI has, env
names that Settings reads, probes on routes the API serves. The compose file is checked by `docker
compose config` where docker compose is installed, and the Kubernetes manifests by a schema validator
from PyPI (kubernetes-validate, the deploy-check extra) where it is installed; both skip otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from orchestrator.api import health
from orchestrator.cli import app as cli_app
from orchestrator.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
# Role -> the command that runs it; every one must be deployed, in compose and in Kubernetes.
ROLES = {
    "api": "serve",
    "worker": "worker",
    "relay": "relay",
    "projector": "project",
    "reconciler": "reconcile",
}
CLI_COMMANDS = set(typer.main.get_command(cli_app).commands)  # type: ignore[attr-defined]
SETTINGS_ENV = {f"ORCH_{name.upper()}" for name in Settings.model_fields}
API_ROUTES = {route.path for route in health.router.routes}  # type: ignore[attr-defined]
# A secret that passes start-up's checks, for interpolating the compose file only.
EXAMPLE_SECRET = "k" * 40


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_is_valid_for_docker_compose() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("docker compose is not installed (apt-get install docker-compose)")
    env = {**os.environ, "ORCH_SECRET_KEY": EXAMPLE_SECRET}
    checked = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    # The secret is required, not defaulted: without it the file does not resolve.
    env.pop("ORCH_SECRET_KEY")
    refused = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True)
    assert refused.returncode != 0


def test_compose_runs_every_role_with_real_commands_and_settings() -> None:
    services = _compose()["services"]
    commands = {name: service.get("command") for name, service in services.items()}
    for role, command in ROLES.items():
        assert commands.get(role) == ["orchestrator", command], role
    assert commands["migrate"] == ["orchestrator", "migrate"]
    assert {"postgres", "redis", "proxy"} <= set(services)
    for name, service in services.items():
        command = service.get("command") or []
        if command[:1] == ["orchestrator"]:
            assert command[1] in CLI_COMMANDS, name
            names = {key for key in service["environment"] if key.startswith("ORCH_")}
            assert names <= SETTINGS_ENV, f"{name}: {names - SETTINGS_ENV}"
    probe = " ".join(services["api"]["healthcheck"]["test"])
    assert "/readyz" in probe and "/readyz" in API_ROUTES


def _manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _manifests() if doc["kind"] == kind}


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers


def test_kustomization_lists_every_manifest_and_names_the_one_image() -> None:
    (kustomization,) = (doc for _, doc in _manifests() if doc["kind"] == "Kustomization")
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    image = {entry["name"] for entry in kustomization["images"]}
    workloads = [*_by_kind("Deployment").values(), *_by_kind("Job").values()]
    assert {c["image"] for w in workloads for c in _containers(w)} == image


def test_every_role_is_deployed_with_a_command_the_cli_has() -> None:
    deployed = {c["command"][1]: w for w in _by_kind("Deployment").values() for c in _containers(w)}
    assert set(deployed) == set(ROLES.values())
    for workload in [*_by_kind("Deployment").values(), *_by_kind("Job").values()]:
        for container in _containers(workload):
            assert container["command"][0] == "orchestrator" and container["command"][1] in CLI_COMMANDS
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if workload["kind"] == "Deployment":
            assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (job,) = _by_kind("Job").values()
    assert _containers(job)[0]["command"] == ["orchestrator", "migrate"]


def test_settings_come_from_env_names_settings_reads() -> None:
    config_maps, secrets = _by_kind("ConfigMap"), _by_kind("Secret")
    named = set()
    for config_map in config_maps.values():
        named |= set(config_map["data"])
    for secret in secrets.values():
        named |= set(secret["stringData"])
    for workload in [*_by_kind("Deployment").values(), *_by_kind("Job").values()]:
        for container in _containers(workload):
            named |= {entry["name"] for entry in container.get("env", [])}
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                else:
                    assert source["secretRef"]["name"] in secrets
    assert named <= SETTINGS_ENV, named - SETTINGS_ENV
    assert {"ORCH_DATABASE_URL", "ORCH_REDIS_URL", "ORCH_SECRET_KEY"} <= {
        key for secret in secrets.values() for key in secret["stringData"]
    }


def test_api_probes_and_service_point_at_what_the_api_serves() -> None:
    api = _by_kind("Deployment")["orchestrator-api"]
    (container,) = _containers(api)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= API_ROUTES
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert int(env["ORCH_PORT"]) in ports.values() and env["ORCH_HOST"] == "0.0.0.0"
    (service,) = _by_kind("Service").values()
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    assert all(port["targetPort"] in ports for port in service["spec"]["ports"])
    claims = set(_by_kind("PersistentVolumeClaim"))
    for workload in _by_kind("Deployment").values():
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_manifests_pass_the_kubernetes_schemas() -> None:
    validator = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (pip install -e '.[deploy-check]')",
    )
    for filename, document in _manifests():
        if document["kind"] == "Kustomization":  # kustomize's own file, not an API object
            continue
        try:
            validator.validate(document, "1.30", strict=True)
        except validator.ValidationError as exc:
            pytest.fail(f"{filename}: {document['kind']} {document['metadata']['name']}: {exc}")
