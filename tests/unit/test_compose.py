"""docker-compose.yml cannot be run here (no Docker engine): check what can be checked
without one: it parses, every image is pinned, every path, command and setting it names
exists in the repository."""

from __future__ import annotations

import re
import subprocess
from dataclasses import fields

import yaml

from promise_tracker.cli import build_parser
from promise_tracker.runtime.settings import PREFIX, Settings
from tests.support import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_it_has_the_whole_pipeline():
    pipeline = {"kafka", "clickhouse", "grafana", "migrate", "worker", "sink"}
    assert pipeline | {"prometheus", "alertmanager"} <= SERVICES.keys()


def test_every_image_is_pinned_to_a_version():
    for name, service in SERVICES.items():
        image = service["image"]
        tag = image.rpartition(":")[2] if ":" in image else ""
        assert re.fullmatch(r"v?\d+(\.\d+)*(-[\w.]+)?", tag), f"{name}: {image} is not pinned"
    plugin = SERVICES["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    assert re.fullmatch(r"grafana-clickhouse-datasource@\d+\.\d+\.\d+", plugin)


def test_every_build_and_bind_mount_path_exists():
    for name, service in SERVICES.items():
        if "build" in service:
            context = ROOT / service["build"]
            assert (context / "Dockerfile").is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+)", dockerfile, flags=re.M):
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    assert re.search(r"^FROM \S+:\d+\.\d+\.\d+", dockerfile, flags=re.M)


def test_depends_on_names_services_of_the_file():
    for name, service in SERVICES.items():
        for other in service.get("depends_on", {}):
            assert other in SERVICES, f"{name} depends on {other}, which is not a service"


def test_the_pipeline_runs_real_commands_with_real_settings():
    parser = build_parser()
    known = {PREFIX + f.name.upper() for f in fields(Settings)}
    for name in ("migrate", "worker", "sink"):
        service = SERVICES[name]
        parser.parse_args(service["command"])  # exits on an unknown command
        for variable in service["environment"]:
            assert variable in known, f"{name}: {variable} is not a setting"


def test_grafana_is_provisioned_with_the_clickhouse_data_source():
    mount = next(v for v in SERVICES["grafana"]["volumes"] if "provisioning" in v)
    source = ROOT / mount.split(":")[0]
    datasource = yaml.safe_load((source / "datasources" / "clickhouse.yaml").read_text())
    (entry,) = datasource["datasources"]
    assert entry["type"] == "grafana-clickhouse-datasource" and entry["uid"] == "clickhouse"
    assert entry["jsonData"]["defaultDatabase"] == Settings().database


def test_no_secret_is_written_in_the_file():
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if "PASSWORD" in line and ":" in line and not line.strip().startswith("#"):
            assert "${" in line or "PASSWORD}" in line, line


def test_the_prometheus_and_alertmanager_configs_load():
    """promtool and amtool come with Debian's prometheus and prometheus-alertmanager."""
    checks = {
        "prometheus": ["promtool", "check", "config"],
        "alertmanager": ["amtool", "check-config"],
    }
    for name, command in checks.items():
        mounts = [v.split(":")[0] for v in SERVICES[name]["volumes"]]
        configs = [ROOT / m for m in mounts if m.endswith(".yml")]
        assert configs, name
        for config in configs:
            done = subprocess.run([*command, str(config)], capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
