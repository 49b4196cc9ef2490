"""The OpenHands server built from PyPI (airlock/openhands-pypi) holds a real conversation.

On this machine's Docker engine, with nothing from a registry:
  - the image is built (or found current) by tools/realserver/build.sh;
  - a fake OpenAI-compatible LLM (tools/standin/fake-llm/fake_llm.py, which refuses any
    key but a random one) runs on a Docker network of the test's own;
  - the app server runs with the Docker socket and the SAME image as its agent-server
    sandbox image (AGENT_SERVER_IMAGE_REPOSITORY/TAG), so each conversation starts a
    sandbox container from it, as V1 does with the official agent-server image;
  - the LLM is configured through the settings API, a conversation is started through
    the API, and the test proves: the fake LLM received the agent's request with the
    configured model and key FROM the sandbox container's address; the conversation
    finished with the fake reply, as recorded by the app server (events arrive there by
    the sandbox's webhook callbacks).

The sandbox URLs: the app server hands out OH_SANDBOX_CONTAINER_URL_PATTERN (read here
because OH_SANDBOX_KIND is set) pointing at prefixproxy.py, a stand-in for the airlock
proxy's /runtime/<port> route with a login (the app server's own address passes without
it, as nginx_proxy_internal_callers). The conversation therefore runs through that route,
and the test proves every URL handed out (conversation, agent server, VS Code, workers)
is the proxy's /runtime/<host port>, and what answers there with and without the login.
Separately, the env file the openhands role writes is read by the image's own
config_from_env: the pattern it yields is the one the role was given.

Run:  pytest -s tools/realserver/test_realserver.py       (about 1 min once built)
Timings and sizes are printed and written to reports/realserver-measurements.json.
"""
from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers.modules import load_module

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ohapi = load_module(HERE / "ohapi.py")
proxyurls = load_module(HERE / "proxyurls.py")

IMAGE = "airlock/openhands-pypi"
FAKE_LLM = ROOT / "tools" / "standin" / "fake-llm" / "fake_llm.py"
FAKE_REPLY = "Hello from the fake LLM stand-in."
MODEL = "openai/airlock-test-model"
MEASURED: dict = {}


def docker(*args: str, check: bool = True) -> str:
    res = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def bridge_ip(container: str) -> str:
    return docker("inspect", "-f", "{{ .NetworkSettings.Networks.bridge.IPAddress }}", container)


@pytest.fixture(scope="module")
def stack():
    start = time.monotonic()
    out = subprocess.run([str(HERE / "build.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    MEASURED["build_step_s"] = round(time.monotonic() - start, 1)
    MEASURED["build_output"] = out.stdout.strip()
    tag = docker("image", "inspect", "-f", '{{ index .Config.Labels "airlock.recipe" }}', f"{IMAGE}:latest")
    MEASURED["image"] = f"{IMAGE}:{tag}"
    MEASURED["image_size_mb"] = round(int(docker("image", "inspect", "-f", "{{ .Size }}", f"{IMAGE}:{tag}")) / 1e6)

    uid = secrets.token_hex(4)
    name = f"airlock-rs-{uid}"
    sandbox_prefix = f"{name}-sbx-"
    key = secrets.token_urlsafe(24)
    state = Path(tempfile.mkdtemp(prefix="airlock-rs-state."))
    port = free_port()
    proxy_port = free_port()
    proxy = None
    proxy_login = ("user", secrets.token_urlsafe(12))
    try:
        docker("network", "create", "--label", "airlock.test=realserver", f"{name}-net")
        docker("run", "-d", "--name", f"{name}-llm", "--network", f"{name}-net", "--label", "airlock.test=realserver",
               "-v", f"{FAKE_LLM}:/opt/fake_llm.py:ro", "airlock/debian:13",
               "python3", "/opt/fake_llm.py", "--port", "8000", "--api-key", key)
        # Upstream 1.11.0 starts every sandbox on Docker's default bridge (network_mode is
        # not configurable), so the fake LLM must also be reachable there.
        docker("network", "connect", "bridge", f"{name}-llm")
        llm_ip = bridge_ip(f"{name}-llm")
        # What host.docker.internal (host-gateway) means inside a sandbox.
        gateway = docker("inspect", "-f", "{{ .NetworkSettings.Networks.bridge.Gateway }}", f"{name}-llm")
        public = f"http://{gateway}:{proxy_port}"
        start = time.monotonic()
        docker("run", "-d", "--name", f"{name}-app", "--label", "airlock.test=realserver",
               "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{state}:/.openhands",
               # the test talks to loopback; sandboxes call the webhooks on the bridge gateway
               "-p", f"127.0.0.1:{port}:3000", "-p", f"{gateway}:{port}:3000",
               "--add-host", "host.docker.internal:host-gateway",
               "-e", f"AGENT_SERVER_IMAGE_REPOSITORY={IMAGE}", "-e", f"AGENT_SERVER_IMAGE_TAG={tag}",
               # Name this test's sandboxes apart: the app server manages (and prunes) every
               # container whose name has its prefix, and this engine is shared.
               "-e", "OH_SANDBOX_KIND=openhands.app_server.sandbox.docker_sandbox_service.DockerSandboxServiceInjector",
               "-e", f"OH_SANDBOX_CONTAINER_NAME_PREFIX={sandbox_prefix}",
               "-e", f"OH_SANDBOX_HOST_PORT={port}",
               # Sandbox URLs through the path-prefix proxy, as behind airlock's proxy.
               "-e", f"OH_SANDBOX_CONTAINER_URL_PATTERN={public}/runtime/{{port}}",
               # (with OH_SANDBOX_KIND set, the legacy SANDBOX_* variables are not read)
               "-e", "OH_SANDBOX_STARTUP_GRACE_SECONDS=180",
               "-e", "LOG_ALL_EVENTS=true",
               f"{IMAGE}:{tag}")
        # The route's stand-in: on the bridge gateway, the sandboxes' published ports behind
        # it; the app server's own calls pass without the login.
        proxy = subprocess.Popen([sys.executable, str(HERE / "prefixproxy.py"), "--listen", f"{gateway}:{proxy_port}",
                                  "--upstream", "127.0.0.1", "--login", ":".join(proxy_login),
                                  "--internal", bridge_ip(f"{name}-app")],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert "listening" in (proxy.stdout.readline() if proxy.stdout else ""), "prefixproxy did not start"
        api = ohapi.Api(f"http://127.0.0.1:{port}")
        MEASURED["app_startup_s"] = round(api.wait_healthy(timeout=180), 1) + 0.0
        yield {"api": api, "name": name, "key": key, "llm_ip": llm_ip, "sandbox_prefix": sandbox_prefix,
               "state": state, "tag": tag, "public": public, "proxy_login": proxy_login}
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)
        res = subprocess.run(["docker", "logs", "--tail", "400", f"{name}-app"], capture_output=True, text=True)
        logs = res.stdout + res.stderr
        (ROOT / "reports").mkdir(exist_ok=True)
        (ROOT / "reports" / "realserver-app.log").write_text(logs)
        for sbx in docker("ps", "-aq", "--filter", f"name={sandbox_prefix}", check=False).split():
            res = subprocess.run(["docker", "logs", "--tail", "200", sbx], capture_output=True, text=True)
            (ROOT / "reports" / "realserver-sandbox.log").write_text(res.stdout + res.stderr)
            docker("rm", "-f", "-v", sbx, check=False)
        docker("rm", "-f", f"{name}-app", f"{name}-llm", check=False)
        docker("network", "rm", f"{name}-net", check=False)
        shutil.rmtree(state, ignore_errors=True)
        (ROOT / "reports" / "realserver-measurements.json").write_text(json.dumps(MEASURED, indent=1) + "\n")
        print("\nmeasured:", json.dumps(MEASURED, indent=1))


def test_image_is_labelled_as_built_from_pypi(stack):
    labels = json.loads(docker("image", "inspect", "-f", "{{ json .Config.Labels }}", f"{IMAGE}:{stack['tag']}"))
    assert labels["airlock.openhands-pypi"] == "true"
    assert "built from PyPI" in labels["org.opencontainers.image.description"]
    assert "not the official image" in labels["org.opencontainers.image.description"]
    versions = docker("run", "--rm", f"{IMAGE}:{stack['tag']}", "pip", "list", "--format", "json")
    got = {p["name"]: p["version"] for p in json.loads(versions)}
    assert got["openhands-ai"] == "1.11.0"
    # The build host's CA bundle reached only the build stage.
    assert docker("run", "--rm", f"{IMAGE}:{stack['tag']}", "sh", "-c",
                  "ls /tmp/build-ca.crt 2>/dev/null; env | grep -c PIP_CERT || true") == "0"


def test_settings_api_stores_the_llm(stack):
    api = stack["api"]
    settings = api.configure_llm(MODEL, f"http://{stack['llm_ip']}:8000/v1", stack["key"])
    llm = settings["agent_settings"]["llm"]
    MEASURED["settings_after_post"] = {"agent_settings.llm": {k: llm.get(k) for k in ("model", "base_url", "api_key")},
                                       "llm_api_key_set": settings.get("llm_api_key_set")}
    assert llm["model"] == MODEL
    assert llm["base_url"] == f"http://{stack['llm_ip']}:8000/v1"
    assert llm["api_key"] is None and settings["llm_api_key_set"] is True
    assert stack["key"] not in json.dumps(settings), "the settings API must not hand the key back"


def test_conversation_runs_in_a_sandbox_and_calls_the_llm(stack):
    api = stack["api"]
    start = time.monotonic()
    task = api.start_conversation("Please say hello.")
    task = api.wait_started(task["id"])
    MEASURED["conversation_ready_s"] = round(time.monotonic() - start, 1)
    conv_id = task["app_conversation_id"]
    conv = api.wait_final(conv_id)
    MEASURED["conversation_final_s"] = round(time.monotonic() - start, 1)
    MEASURED["execution_status"] = conv["execution_status"]
    assert conv["execution_status"] == "finished", conv

    sandboxes = docker("ps", "--filter", f"name={stack['sandbox_prefix']}", "--format", "{{.Names}} {{.Image}}").splitlines()
    assert len(sandboxes) == 1, sandboxes
    sandbox, image = sandboxes[0].split()
    assert image == f"{IMAGE}:{stack['tag']}"
    sandbox_ip = bridge_ip(sandbox)
    # The agent-server in the sandbox runs as the unprivileged user, like the official image.
    assert docker("exec", sandbox, "sh", "-c", "ps -o user= -C python | sort -u") == "openhands"

    records = json.loads(docker("exec", f"{stack['name']}-llm", "curl", "-s", "http://127.0.0.1:8000/_requests"))
    MEASURED["fake_llm_received"] = [
        {k: (v if k != "authorization" else ("Bearer <configured key>" if v == f"Bearer {stack['key']}" else v))
         for k, v in r.items() if k != "time"} | {"from": "sandbox" if r["source"] == sandbox_ip else r["source"]}
        for r in records]
    agent_calls = [r for r in records if r["path"].endswith("/chat/completions") and r["source"] == sandbox_ip]
    assert agent_calls, f"no completion request from the sandbox ({sandbox_ip}): {records}"
    for r in agent_calls:
        assert r["model"] == MODEL.split("/", 1)[1]
        assert r["authorization"] == f"Bearer {stack['key']}"

    texts = ohapi.agent_texts(api.events(conv_id))
    assert any(FAKE_REPLY in t for t in texts), texts
    stack["conversation"] = conv_id


def test_sandbox_urls_behind_a_path_prefix_proxy(stack):
    """What a browser is handed for the conversation, and what answers there through the
    /runtime/<port> route: with the login, the events websocket streams, a worker port
    answers once something listens on it in the sandbox, and files come down through the
    agent server; VS Code answers only if the image has it (the PyPI build has not); without
    the login, 401."""
    api, public, login = stack["api"], stack["public"], stack["proxy_login"]
    conv = api.conversation(stack["conversation"])
    sandbox_info = api.ok("GET", "/api/v1/sandboxes", query={"id": [conv["sandbox_id"]]})[0]
    sandbox = next(n for n in docker("ps", "--filter", f"name={stack['sandbox_prefix']}", "--format", "{{.Names}}").split())
    host_ports = {int(k.split("/")[0]): int(v[0]["HostPort"]) for k, v in json.loads(
        docker("inspect", "-f", "{{ json .NetworkSettings.Ports }}", sandbox)).items() if v}
    urls = {u["name"]: u for u in sandbox_info["exposed_urls"]}
    MEASURED["handed_out"] = {"conversation_url": conv["conversation_url"],
                              **{n: u["url"].split("?")[0] for n, u in urls.items()}}
    assert set(urls) == {"AGENT_SERVER", "VSCODE", "WORKER_1", "WORKER_2"}, urls
    for exposed in urls.values():
        proxyurls.check_prefix(exposed["url"], public, host_ports[exposed["port"]])
    agent = urls["AGENT_SERVER"]["url"]
    assert conv["conversation_url"] == f"{agent}/api/conversations/{conv['id'].replace('-', '')}", conv
    session = {"X-Session-API-Key": conv["session_api_key"]}

    events = f"{agent}/sockets/events/{conv['id'].replace('-', '')}?resend_mode=all&session_api_key={conv['session_api_key']}"
    received = proxyurls.ws_messages(events, login, want=3)
    MEASURED["events_websocket_messages"] = len(received)
    assert received and all(json.loads(m).get("id") for m in received), received[:2]
    assert proxyurls.ws_status(events) == 401

    docker("exec", "-d", "-u", "openhands", sandbox, "python3", "-m", "http.server", "8011", "-d", "/workspace")
    worker = urls["WORKER_1"]["url"] + "/"
    status = 0
    for _ in range(30):
        try:
            status, _ = proxyurls.http(worker, login)
        except OSError:  # Docker's port proxy accepts, then closes: nothing listens yet
            status = 0
        if status == 200:
            break
        time.sleep(1)
    assert status == 200, status
    assert proxyurls.http(worker)[0] == 401

    docker("exec", "-u", "openhands", sandbox, "sh", "-c", "echo airlock-file > /workspace/project/airlock.txt")
    status, body = proxyurls.http(f"{agent}/api/file/download?path=/workspace/project/airlock.txt", login, session)
    assert (status, body) == (200, b"airlock-file\n"), (status, body)
    assert proxyurls.http(f"{agent}/api/file/download?path=/workspace/project/airlock.txt", None, session)[0] == 401

    vscode = urls["VSCODE"]["url"]
    assert f"tkn={conv['session_api_key']}" in vscode, vscode
    has_vscode = subprocess.run(["docker", "exec", sandbox, "test", "-x", "/openhands/.openvscode-server/bin/openvscode-server"]).returncode == 0
    try:
        status, _ = proxyurls.http(vscode, login)
    except OSError:  # nothing listens on 8001: Docker's port proxy accepts and closes (nginx: 502)
        status = 0
    MEASURED["vscode"] = {"in_image": has_vscode, "status_with_login": status}
    assert status == 200 if has_vscode else status in (0, 502), MEASURED["vscode"]
    assert proxyurls.http(vscode)[0] == 401


def test_the_role_env_file_sets_the_pattern_1_11_0_reads(stack, tmp_path):
    """The env file the openhands role writes, read by this image's own config_from_env
    (openhands/app_server/config.py): the sandbox URL pattern is the one the role was
    given. The old file (OH_SANDBOX_CONTAINER_URL_PATTERN alone) gives the default."""
    import jinja2

    template = (ROOT / "roles" / "openhands" / "templates" / "openhands.env.j2").read_text()
    env = jinja2.Environment(keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    pattern = "https://proxy.example.org/runtime/{port}"
    rendered = env.from_string(template).render(
        ansible_managed="test", openhands_agent_server_image_repository=IMAGE,
        openhands_agent_server_image_tag=stack["tag"], openhands_sandbox_url_pattern=pattern,
        openhands_llm_model=MODEL, openhands_llm_base_url="http://llm.invalid/v1", openhands_llm_api_key="k",
        openhands_agent_server_env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"}, openhands_log_all_events=True,
        openhands_extra_env={})
    read = ("from openhands.app_server.config import config_from_env; "
            "print(config_from_env().sandbox.container_url_pattern)")
    seen = {}
    for label, text in (("role", rendered),
                        ("OH_ only", f"OH_SANDBOX_CONTAINER_URL_PATTERN={pattern}\n")):
        path = tmp_path / f"{label.replace(' ', '_')}.env"
        path.write_text(text)
        seen[label] = docker("run", "--rm", "--env-file", str(path), f"{IMAGE}:{stack['tag']}",
                             "python", "-c", read).splitlines()[-1]
    MEASURED["pattern_read_from_env_file"] = seen
    assert seen == {"role": pattern, "OH_ only": "http://localhost:{port}"}, seen


def test_conversation_and_settings_survive_a_restart(stack):
    api = stack["api"]
    start = time.monotonic()
    docker("restart", "-t", "20", f"{stack['name']}-app")
    api.wait_healthy(timeout=180)
    MEASURED["restart_s"] = round(time.monotonic() - start, 1)
    settings = api.ok("GET", "/api/v1/settings")
    assert settings["agent_settings"]["llm"]["model"] == MODEL and settings["llm_api_key_set"] is True
    conv = api.conversation(stack["conversation"])
    assert conv is not None
    texts = ohapi.agent_texts(api.events(stack["conversation"]))
    assert any(FAKE_REPLY in t for t in texts), texts
