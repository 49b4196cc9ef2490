"""image_source controller: the controller fetches the pinned images into archives.

An enclave's server reaches no registry; with `openhands_image_source: controller` the
controller fetches the pinned tags with skopeo, once, and the server loads the archives.
Here a registry of the distribution (docker-registry) on loopback holds two small images
this test builds (a stand-in for docker.openhands.dev and ghcr.io); the role's fetch tasks
run on this machine and must leave archives that load into the very images that were
pushed, fetch nothing on a rerun, and leave nothing that looks like an archive when a tag
is not in the registry. The server side (copy and load) is the archive path the lab and the
server_tier scenario run.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs the Docker engine")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """docker-registry on 127.0.0.1 (plain HTTP), holding two images built here."""
    for tool in ("docker-registry", "skopeo"):
        assert shutil.which(tool), f"{tool} is missing (tools/testbed/install-packages.sh installs it)"
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    (root / "config.yml").write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"}}))
    proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    images = {}
    for name in ("openhands/openhands", "openhands/agent-server"):
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            payload = f"airlock image fetch test: {name}\n".encode()
            info = tarfile.TarInfo(f"etc/{name.replace('/', '-')}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        local = f"airlock/fetch-test-{name.split('/')[1]}:1.0"
        subprocess.run(["docker", "import", "-", local], input=data.getvalue(), check=True, capture_output=True)
        remote = f"127.0.0.1:{port}/{name}"
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"docker-daemon:{local}",
                        f"docker://{remote}:1.0"], check=True, capture_output=True)
        images[name] = {"remote": remote, "id": subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", local], check=True, capture_output=True, text=True).stdout.strip()}
    yield images
    proc.terminate()
    proc.wait(timeout=10)
    for name, image in images.items():
        subprocess.run(["docker", "image", "rm", "-f", f"airlock/fetch-test-{name.split('/')[1]}:1.0",
                        f"{image['remote']}:1.0"], capture_output=True)


def fetch(tmp_path: Path, registry: dict, tag: str = "1.0", **extra) -> subprocess.CompletedProcess:
    variables = {
        "openhands_image_source": "controller",
        "openhands_image_fetch_dir": str(tmp_path / "images"),
        "openhands_image_fetch_args": ["--src-tls-verify=false"],
        "openhands_image_repository": registry["openhands/openhands"]["remote"],
        "openhands_image_tag": tag,
        "openhands_agent_server_image_repository": registry["openhands/agent-server"]["remote"],
        "openhands_agent_server_image_tag": tag,
        **extra,
    }
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "openhands", "tasks_from": "fetch"}, "vars": variables}]}]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def changed(res: subprocess.CompletedProcess) -> int:
    return int(res.stdout.split("changed=")[1].split()[0])


def test_the_controller_fetches_archives_that_load_into_the_pushed_images(tmp_path, registry):
    res = fetch(tmp_path, registry)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    archives = sorted((tmp_path / "images").glob("*.tar"))
    assert len(archives) == 2 and not list((tmp_path / "images").glob("*.part")), archives
    for name, image in registry.items():
        archive = tmp_path / "images" / f"{image['remote'].replace('/', '_').replace(':', '_')}-1.0.tar"
        subprocess.run(["docker", "image", "rm", "-f", f"{image['remote']}:1.0"], capture_output=True)
        loaded = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True, text=True, check=True).stdout
        assert f"{image['remote']}:1.0" in loaded, loaded
        got = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", f"{image['remote']}:1.0"],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert got == image["id"], f"{name}: the archive loads {got}, the registry held {image['id']}"
    rerun = fetch(tmp_path, registry)
    assert rerun.returncode == 0 and changed(rerun) == 0, rerun.stdout[-2000:]


def test_a_tag_missing_from_the_registry_fails_and_leaves_no_archive(tmp_path, registry):
    res = fetch(tmp_path, registry, tag="9.9-missing")
    assert res.returncode != 0 and "skopeo" in res.stdout + res.stderr, res.stdout[-2000:]
    assert list((tmp_path / "images").iterdir()) == [] or not any(
        p.suffix == ".tar" for p in (tmp_path / "images").iterdir()), list((tmp_path / "images").iterdir())


@pytest.mark.parametrize("extra,message", [
    ({"openhands_image_tag": "sha256:" + "a" * 64}, "openhands_image_tag: a digest cannot be fetched"),
    ({"openhands_image_fetch_dir": "relative/images"}, "openhands_image_fetch_dir must be an absolute path"),
    ({"openhands_image_fetch_args": ["-v"]}, "openhands_image_fetch_args must be a list of skopeo copy options"),
])
def test_bad_fetch_input_is_refused_naming_the_variable(extra, message):
    sys.path.insert(0, str(ROOT / "roles" / "openhands" / "filter_plugins"))
    from openhands import openhands_input_errors  # noqa: PLC0415
    inputs = {"image_source": "controller", "image_fetch_dir": "/var/cache/airlock", "image_fetch_args": [],
              "image_tag": "1.11.0", "agent_server_image_tag": "1.34.0-python"}
    inputs.update({k.removeprefix("openhands_"): v for k, v in extra.items()})
    errors = openhands_input_errors(inputs)
    assert any(message in e for e in errors), errors
    control = {**inputs, "image_source": "archive", "image_archive": "/a.tar", "agent_server_image_archive": "/a.tar"}
    assert not any("fetch" in e or "digest" in e for e in openhands_input_errors(control))
