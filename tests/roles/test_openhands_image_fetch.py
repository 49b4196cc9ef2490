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
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs the Docker engine")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def push(port: int, name: str, tag: str) -> str:
    """Build a one-file image for `name` (its content names the tag) and push it to the
    registry on `port`; the image id."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        payload = f"airlock image fetch test: {name} {tag}\n".encode()
        info = tarfile.TarInfo(f"etc/{name.replace('/', '-')}")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    local = f"airlock/fetch-test-{name.split('/')[1]}:{tag}"
    subprocess.run(["docker", "import", "-", local], input=data.getvalue(), check=True, capture_output=True)
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"docker-daemon:{local}",
                    f"docker://127.0.0.1:{port}/{name}:{tag}"], check=True, capture_output=True)
    return subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", local], check=True, capture_output=True,
                          text=True).stdout.strip()


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
    images = {name: {"remote": f"127.0.0.1:{port}/{name}", "id": push(port, name, "1.0")}
              for name in ("openhands/openhands", "openhands/agent-server")}
    yield {"images": images, "data": root / "data", "port": port}
    proc.terminate()
    proc.wait(timeout=10)
    for name, image in images.items():
        for tag in ("1.0", "2.0", "3.0"):  # 3.0: the killed-copy test's
            subprocess.run(["docker", "image", "rm", "-f", f"airlock/fetch-test-{name.split('/')[1]}:{tag}",
                            f"{image['remote']}:{tag}"], capture_output=True)


def fetch(tmp_path: Path, registry: dict, tag: str = "1.0", background: bool = False, **extra):
    registry = registry["images"]
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
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")]
    if background:  # a session of its own; the test kills it and every process below it (kill_tree)
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def changed(res: subprocess.CompletedProcess) -> int:
    return int(res.stdout.split("changed=")[1].split()[0])


def test_the_controller_fetches_archives_that_load_into_the_pushed_images(tmp_path, registry):
    res = fetch(tmp_path, registry)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    archives = sorted((tmp_path / "images").glob("*.tar"))
    assert len(archives) == 2 and not list((tmp_path / "images").glob("*.part")), archives
    for name, image in registry["images"].items():
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


def test_a_failed_copy_leaves_no_archive_and_the_rerun_completes_it(tmp_path, registry):
    """A copy that fails half-way (the registry loses a layer of the app's image after
    serving its manifest) leaves no file at the archive's path, which the next run would
    take for a whole image and ship to the server. The agent server's archive, copied
    whole, stays. Once the layer is back, the rerun fetches the app's image alone, and its
    archive loads the pushed image. (skopeo removes its own output when a copy fails; a run
    that is killed is the next test.)"""
    port, images = registry["port"], registry["images"]
    ids = {name: push(port, name, "2.0") for name in images}
    manifest = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{images['openhands/openhands']['remote']}:2.0"],
        check=True, capture_output=True, text=True).stdout)
    digest = manifest["layers"][-1]["digest"].split(":", 1)[1]
    blob = registry["data"] / "docker" / "registry" / "v2" / "blobs" / "sha256" / digest[:2] / digest / "data"
    assert blob.is_file(), blob
    saved = tmp_path / "layer"
    blob.rename(saved)
    try:
        broken = fetch(tmp_path, registry, tag="2.0")
    finally:
        saved.rename(blob)
    app = tmp_path / "images" / f"{images['openhands/openhands']['remote'].replace('/', '_').replace(':', '_')}-2.0.tar"
    agent = tmp_path / "images" / f"{images['openhands/agent-server']['remote'].replace('/', '_').replace(':', '_')}-2.0.tar"
    assert broken.returncode != 0, broken.stdout[-2000:]
    assert not app.exists(), f"an interrupted fetch left {app.name} ({app.stat().st_size} bytes)"
    assert agent.is_file()
    rerun = fetch(tmp_path, registry, tag="2.0")
    assert rerun.returncode == 0 and changed(rerun) == 1, (rerun.stdout + rerun.stderr)[-2000:]
    remote = f"{images['openhands/openhands']['remote']}:2.0"
    subprocess.run(["docker", "image", "rm", "-f", remote], capture_output=True)
    subprocess.run(["docker", "load", "-i", str(app)], capture_output=True, text=True, check=True)
    got = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", remote], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert got == ids["openhands/openhands"]


def descendants(pid: int) -> list[int]:
    """Every process below pid (read from /proc): Ansible starts each task's worker in a
    session of its own, so killing the run's process group missed the worker and its skopeo,
    which stayed behind for the rest of the suite."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_tree(pid: int) -> None:
    for each in [pid, *descendants(pid)]:
        try:
            os.kill(each, signal.SIGKILL)
        except ProcessLookupError:
            pass


class StallingProxy:
    """A TCP relay to the registry that, once it has passed on the request for one blob,
    passes on the first 64 KiB of the answer and then holds the connection open: a copy
    stuck half-way through a layer, as on a link that died. `stalling = False` relays all."""

    def __init__(self, upstream: int, blob: str):
        self.upstream, self.blob, self.stalling = upstream, blob.encode(), True
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stalled = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            state = {"asked": False}
            threading.Thread(target=self._pipe, args=(client, server, state, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, state, False), daemon=True).start()

    def _pipe(self, src, dst, state, request):
        passed = 0
        try:
            while data := src.recv(65536):
                if request and self.stalling and self.blob in data:
                    state["asked"] = True
                elif not request and state["asked"]:
                    data = data[:max(0, 65536 - passed)]
                    passed += len(data)
                    if not data:
                        self.stalled.set()
                        threading.Event().wait()  # hold the connection open, send nothing
                dst.sendall(data)
        except OSError:
            pass

    def close(self):
        self.sock.close()


def test_a_run_killed_mid_copy_leaves_no_archive_and_the_rerun_completes_it(tmp_path, registry):
    """The controller's run dies while skopeo is half-way through a layer (killed, as by a
    lost session or a power cut). skopeo had already created its output: written straight
    to the archive's path, that empty file would be taken for the image by every later run
    and shipped to the server. The role's partial file keeps the path free, and the rerun
    (the link back) fetches the image whole; its archive loads the pushed image."""
    port, images = registry["port"], registry["images"]
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        payload = os.urandom(4 * 1024 * 1024)  # incompressible: the layer is still on the way at 64 KiB
        info = tarfile.TarInfo("opt/app.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    local = "airlock/fetch-test-openhands:3.0"
    subprocess.run(["docker", "import", "-", local], input=data.getvalue(), check=True, capture_output=True)
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"docker-daemon:{local}",
                    f"docker://127.0.0.1:{port}/openhands/openhands:3.0"], check=True, capture_output=True)
    image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", local], check=True, capture_output=True,
                              text=True).stdout.strip()
    push(port, "openhands/agent-server", "3.0")
    manifest = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://127.0.0.1:{port}/openhands/openhands:3.0"],
        check=True, capture_output=True, text=True).stdout)
    proxy = StallingProxy(port, "blobs/" + manifest["layers"][-1]["digest"])
    stuck = {"images": {name: {"remote": f"127.0.0.1:{proxy.port}/{name}"} for name in images}}
    archive = tmp_path / "images" / f"127.0.0.1_{proxy.port}_openhands_openhands-3.0.tar"
    try:
        run = fetch(tmp_path, stuck, tag="3.0", background=True)
        try:
            assert proxy.stalled.wait(120), "the copy never reached the layer"
            time.sleep(1)
            left = sorted(p.name for p in (tmp_path / "images").iterdir())
        finally:
            kill_tree(run.pid)
            run.wait(timeout=30)
        assert left, "skopeo had written nothing: the kill proves nothing"
        assert not archive.exists(), f"a killed fetch left {archive.name} ({archive.stat().st_size} bytes): {left}"
        proxy.stalling = False
        rerun = fetch(tmp_path, stuck, tag="3.0")
        assert rerun.returncode == 0 and changed(rerun) == 1, (rerun.stdout + rerun.stderr)[-2000:]
    finally:
        proxy.close()
        subprocess.run(["docker", "image", "rm", "-f", local], capture_output=True)
    assert not list((tmp_path / "images").glob("*.part"))
    remote = f"127.0.0.1:{proxy.port}/openhands/openhands:3.0"
    loaded = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True, text=True, check=True).stdout
    try:
        assert remote in loaded, loaded
        got = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", remote], capture_output=True, text=True,
                             check=True).stdout.strip()
        assert got == image_id
    finally:
        subprocess.run(["docker", "image", "rm", "-f", remote], capture_output=True)


@pytest.mark.parametrize("extra,message", [
    ({"openhands_image_tag": "sha256:" + "a" * 64}, "openhands_image_tag: a digest cannot be fetched"),
    ({"openhands_image_fetch_dir": "relative/images"}, "openhands_image_fetch_dir must be an absolute path"),
    ({"openhands_image_fetch_args": ["-v"]}, "openhands_image_fetch_args must be a list of skopeo copy options"),
])
def test_bad_fetch_input_is_refused_naming_the_variable(extra, message):
    openhands_input_errors = load_module(ROOT / "roles" / "openhands" / "filter_plugins" / "openhands.py").openhands_input_errors
    inputs = {"image_source": "controller", "image_fetch_dir": "/var/cache/airlock", "image_fetch_args": [],
              "image_tag": "1.11.0", "agent_server_image_tag": "1.34.0-python"}
    inputs.update({k.removeprefix("openhands_"): v for k, v in extra.items()})
    errors = openhands_input_errors(inputs)
    assert any(message in e for e in errors), errors
    control = {**inputs, "image_source": "archive", "image_archive": "/a.tar", "agent_server_image_archive": "/a.tar"}
    assert not any("fetch" in e or "digest" in e for e in openhands_input_errors(control))
