"""The compose stack, read as data (no Docker engine here): what an operator relies on."""

from __future__ import annotations

import re

import pytest
import yaml

from sandbox.processes import ROOT

COMPOSE = ROOT / "docker" / "compose.yaml"
SECRETS = ("POSTGRES_PASSWORD", "API_TOKEN", "BILLING_CALLBACK_SECRET", "FLOWER_BASIC_AUTH")


@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def services(text: str) -> dict:
    return yaml.safe_load(text)["services"]


def test_every_service_has_a_health_check_with_a_command(services):
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_every_service_restarts_on_its_own(services):
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_are_required_variables_without_defaults(text, secret):
    uses = re.findall(r"\$\{%s(:?[?-])?[^}]*\}" % secret, text)
    assert uses, f"{secret} is not used"
    assert all(kind == ":?" for kind in uses), f"{secret} has a default or is optional"


def test_no_literal_password_or_token_anywhere(services):
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET|AUTH", key):
                assert str(value).startswith("${") and ":?" in str(value), (name, key)
            assert "change-me" not in str(value), (name, key)


def test_flower_runs_the_celery_command_with_basic_auth(services):
    flower = services["flower"]
    assert flower["command"][:4] == ["celery", "-A", "workers", "flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")


def test_postgres_keeps_its_data_in_a_named_volume(text, services):
    volumes = yaml.safe_load(text).get("volumes") or {}
    mounts = services["postgres"].get("volumes") or []
    assert any(m.split(":")[0] in volumes and m.endswith("/var/lib/postgresql/data")
               for m in mounts)


def test_one_image_is_built_once_and_run_by_every_celgate_service(services):
    built = [name for name, s in services.items() if "build" in s]
    assert built == ["migrate"]
    image = services["migrate"]["image"]
    ours = [name for name, s in services.items() if s.get("image") == image]
    assert set(ours) == {"migrate", "worker", "beat", "api", "flower", "sandbox"}
    assert all(services[name].get("pull_policy") == "never" for name in ours if name != "migrate")


def test_the_image_installs_pinned_versions_and_skips_local_clutter():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt", dockerfile)
    pins = (ROOT / "docker" / "constraints.txt").read_text().splitlines()
    pinned = {re.sub(r"[-_.]+", "-", line.split("==")[0].lower()) for line in pins if "==" in line}
    for dependency in ("celery", "kombu", "sqlalchemy", "fastapi", "prometheus-client",
                       "flower", "rich", "fastapi-offline"):
        assert dependency in pinned, dependency
    assert all("==" in line for line in pins if line and not line.startswith("#"))
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".git", ".venv", "**/__pycache__", ".env"):
        assert entry in ignored


def test_services_wait_for_what_they_need(services):
    for name in ("worker", "beat", "api"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        assert needs["postgres"]["condition"] == "service_healthy", name
