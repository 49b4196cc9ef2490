"""The REAL OpenHands server (built from PyPI, tools/realserver/) in the lab, end to end.

A user who logs in at the proxy holds a conversation whose LLM calls leave through the one
approved path; the agent's sandbox cannot reach anything else; nothing works without the
login; a restart of the service keeps the conversation and the settings. The threat model
itself runs end to end too: the fake LLM plays a prompt-injected agent that attacks from its
sandbox through its own terminal tool (hostile_agent.py), and the test reads the results
from the conversation's events.

By default the test builds its own lab beside any other (name "realoh", 10.216.x, ports
28443/28080), deploys it with site.yml and the real server selected by the extra
variables in tools/realserver/lab-pypi.yml, and removes it at the end:

    tools/realserver/build.sh --save .cache/images/openhands-pypi.tar
    ansible-playbook playbooks/lab_up.yml
    ansible-playbook site.yml -e @tools/realserver/lab-pypi.yml

To check a lab that is already up with the real server instead (e.g. `make lab` deployed
that way), set AIRLOCK_REAL_OPENHANDS_LAB=existing and the lab's AIRLOCK_LAB_NAME /
AIRLOCK_LAB_HTTPS_PORT if they are not the defaults (and AIRLOCK_PUBLIC_URL if the lab's
public URL is not https://localhost:<that port>); that lab is left as it is.

Sandbox URLs: OpenHands hands the browser one URL per sandbox port, built from the
sandbox URL pattern, and calls its sandboxes through the same URLs. Every one must be the
public URL plus /runtime/<host port> and answer through the proxy with the login only.

Steps share one lab and run in file order; a failed step skips the rest (conftest.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

import hostile_agent  # this directory's module: pytest puts a test's directory on sys.path
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
ohapi = load_module(ROOT / "tools" / "realserver" / "ohapi.py")
proxyurls = load_module(ROOT / "tools" / "realserver" / "proxyurls.py")

EXISTING = os.environ.get("AIRLOCK_REAL_OPENHANDS_LAB") == "existing"
if EXISTING:
    LAB = {k: os.environ[k] for k in ("AIRLOCK_LAB_NAME", "AIRLOCK_LAB_NET", "AIRLOCK_LAB_HTTPS_PORT",
                                     "AIRLOCK_LAB_HTTP_PORT") if k in os.environ}
else:
    LAB = {"AIRLOCK_LAB_NAME": "realoh", "AIRLOCK_LAB_NET": "10.216",
           "AIRLOCK_LAB_HTTPS_PORT": "28443", "AIRLOCK_LAB_HTTP_PORT": "28080"}
NAME = LAB.get("AIRLOCK_LAB_NAME", "lab")
NET = LAB.get("AIRLOCK_LAB_NET", "10.213")
PREFIX = f"airlock-{NAME}"
HOST = f"{PREFIX}-openhands"
URL = f"https://127.0.0.1:{LAB.get('AIRLOCK_LAB_HTTPS_PORT', '8443')}"
# airlock_public_url of the lab inventory: what every sandbox URL must start with.
PROXY_PRIVATE = f"{NET}.11.10"  # lab_addresses.proxy_private
PUBLIC = os.environ.get("AIRLOCK_PUBLIC_URL", f"https://airlock.localhost:{LAB.get('AIRLOCK_LAB_HTTPS_PORT', '8443')}")
SECRETS = ROOT / f".{NAME}"
ARCHIVE = ROOT / ".cache" / "images" / "openhands-pypi.tar"
EXTRA_VARS = "@tools/realserver/lab-pypi.yml"
# What inventories/lab/group_vars/all/airlock.yml configures for the lab.
LLM_MODEL = "openai/airlock-lab-model"
LLM_HOST, LLM_PORT = "llm.airlock.test", 8000
# The LLM gateway on the server holds the provider key; the app and its sandboxes call it
# here with the gateway key (site.yml, docs/server.md).
GATEWAY_PORT = 4000
GATEWAY_URL = f"http://host.docker.internal:{GATEWAY_PORT}/v1"
REQUEST_LOG = "/var/log/airlock-llm-gateway/requests.jsonl"
DECOY = "decoy.airlock.test"
DECOY_IP, LLM_IP, RESOLVER = f"{NET}.12.20", f"{NET}.12.10", f"{NET}.11.2"
# What a sandbox reaches on the host: the app (through the app shield) and the gateway.
APP_FROM_SANDBOX = "http://host.docker.internal:3000"
LIVELINESS = f"http://host.docker.internal:{GATEWAY_PORT}/health/liveliness"
FAKE_REPLY = "Hello from the fake LLM stand-in."
STATE: dict = {}


def playbook(*args: str, timeout: int = 2400) -> subprocess.CompletedProcess:
    env = {**os.environ, **LAB, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}
    res = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    (ROOT / "reports").mkdir(exist_ok=True)
    name = "e2e-real-" + "-".join(re.sub(r"[^a-z0-9]+", "_", a.lower()).strip("_") for a in args)[:80]
    (ROOT / "reports" / f"{name}.log").write_text(res.stdout + res.stderr)
    return res


def ok(res: subprocess.CompletedProcess) -> None:
    tail = "\n".join((res.stdout + res.stderr).splitlines()[-60:])
    assert res.returncode == 0, f"failed:\n{tail}"


def run(*cmd: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check:
        assert res.returncode == 0, f"{' '.join(cmd)}: rc={res.returncode} {res.stdout} {res.stderr}"
    return res


def on_host(*cmd: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    """A command on the lab's OpenHands host."""
    return run("docker", "exec", HOST, *cmd, check=check, timeout=timeout)


def in_sandbox(sandbox: str, *cmd: str, check: bool = False) -> subprocess.CompletedProcess:
    """A command in the agent's sandbox container (the host's own Docker engine)."""
    return on_host("docker", "exec", sandbox, *cmd, check=check)


def fake_llm_requests() -> list[dict]:
    return json.loads(run("docker", "exec", f"{PREFIX}-llm", "curl", "-s", f"http://127.0.0.1:{LLM_PORT}/_requests").stdout)


def login() -> tuple[str, str]:
    return ("admin", (SECRETS / "admin.password").read_text().strip())


def api(auth: bool = True, password: str | None = None) -> ohapi.Api:
    creds = None
    if auth:
        creds = login() if password is None else ("admin", password)
    return ohapi.Api(URL, login=creds, insecure=True, timeout=60)


def sandboxes() -> list[str]:
    return on_host("docker", "ps", "--filter", "name=oh-agent-server-", "--format", "{{.Names}}").stdout.split()


def lab_objects() -> list[str]:
    out = run("docker", "ps", "-a", "--filter", f"name={PREFIX}-", "--format", "{{.Names}}").stdout.split()
    out += [n for n in run("docker", "network", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith(PREFIX + "-")]
    out += [n for n in run("docker", "volume", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith(PREFIX + "-")]
    return out


def test_lab_runs_the_real_server():
    if not EXISTING:
        start = time.monotonic()
        res = run(str(ROOT / "tools" / "realserver" / "build.sh"), "--save", str(ARCHIVE), timeout=3600)
        STATE["build_and_save_s"] = round(time.monotonic() - start)
        print(res.stdout)
        ok(playbook("playbooks/lab_down.yml"))
        assert lab_objects() == []
        start = time.monotonic()
        ok(playbook("playbooks/lab_up.yml"))
        STATE["lab_up_s"] = round(time.monotonic() - start)
        start = time.monotonic()
        ok(playbook("site.yml", "-e", EXTRA_VARS))
        STATE["site_s"] = round(time.monotonic() - start)
    image = on_host("docker", "inspect", "-f", "{{ .Config.Image }}", "openhands-app").stdout.strip()
    assert image.startswith("airlock/openhands-pypi:"), f"the lab runs {image}, not the server built from PyPI"
    labels = json.loads(on_host("docker", "image", "inspect", "-f", "{{ json .Config.Labels }}", image).stdout)
    assert labels.get("airlock.openhands-pypi") == "true"
    env = on_host("docker", "inspect", "-f", "{{ json .Config.Env }}", "openhands-app").stdout
    assert "AGENT_SERVER_IMAGE_REPOSITORY=airlock/openhands-pypi" in env
    STATE["image"] = image


def test_health_through_the_proxy_with_login():
    client = api()
    client.wait_healthy(timeout=300)  # it may still be starting after a restart
    for path in ("/health", "/alive", "/server_info"):
        status, body = client.request("GET", path)
        assert status == 200, (path, status, body)
    # The real server, not the stand-in: its own version endpoint and API answer.
    status, info = client.request("GET", "/server_info")
    assert "stand-in" not in json.dumps(info).lower(), info
    status, config = client.request("GET", "/api/v1/web-client/config")
    assert status == 200, (status, config)


def test_the_server_hands_out_the_proxys_sandbox_urls_and_reaches_them():
    """The server runs with the proxy's pattern under the name 1.11.0 reads, its own
    configuration loader yields that pattern, and the server can call the URL it will hand
    out (1.11.0 starts and drives every sandbox through it): from inside the server's
    container, with the server's own HTTP client, a /runtime/ URL is answered by the proxy
    without a login (an internal caller)."""
    pattern = f"{PUBLIC}/runtime/{{port}}"
    env = json.loads(on_host("docker", "inspect", "-f", "{{ json .Config.Env }}", "openhands-app").stdout)
    assert f"SANDBOX_CONTAINER_URL_PATTERN={pattern}" in env, [e for e in env if "PATTERN" in e]
    read = on_host("docker", "exec", "openhands-app", "python", "-c",
                   "from openhands.app_server.config import config_from_env; "
                   "print(config_from_env().sandbox.container_url_pattern)").stdout.strip().splitlines()[-1]
    assert read == pattern, f"the server reads the pattern {read!r}, not {pattern!r}"
    probe = on_host("docker", "exec", "openhands-app", "python", "-c", f"""
import httpx
from openhands.app_server.utils.docker_utils import replace_localhost_hostname_for_docker as internal
url = internal({PUBLIC!r} + "/runtime/32768/health")
try:
    print(url, httpx.get(url, timeout=15).status_code)
except Exception as exc:
    print(url, type(exc).__name__, exc)
""", check=False).stdout.strip()
    STATE["server_to_public_url"] = probe
    answer = (probe.split(" ", 1) + [""])[1].split() or ["nothing"]
    assert answer[0].isdigit() and answer[0] != "401", (
        f"the server cannot call the sandbox URLs it hands out: {probe}. OpenHands 1.11.0 starts and drives "
        f"its sandboxes through them, so no conversation can start. The public URL must be reachable from "
        f"the server's container with a certificate it trusts, and the proxy must let the server in without "
        f"a login (docs/real-openhands.md, 'Sandbox URLs').")


def test_the_role_configured_the_llm_in_the_settings_store():
    settings = api().ok("GET", "/api/v1/settings")
    llm = settings["agent_settings"]["llm"]
    assert llm["model"] == LLM_MODEL, llm
    assert llm["base_url"] == GATEWAY_URL, llm
    assert settings["llm_api_key_set"] is True and llm.get("api_key") is None
    STATE["settings"] = settings
    STATE["settings_llm"] = {k: llm.get(k) for k in ("model", "base_url", "api_key")} | {
        "llm_api_key_set": settings["llm_api_key_set"]}


def refused_status(client: ohapi.Api, method: str, path: str, body) -> int:
    """The status of a call the proxy should refuse. Failed logins share a slow bucket
    (nginx_proxy_login_fail_rate, 10/min, burst 5): a 429 is the limiter answering before
    the login is checked, so wait for the bucket and ask again until the login check
    answers."""
    for _ in range(12):
        status, _ = client.request(method, path, body)
        if status != 429:
            return status
        time.sleep(6.5)
    return status


def test_without_login_the_api_answers_401():
    client = api()
    before = client.ok("GET", "/api/v1/app-conversations/start-tasks/count")
    calls = [("GET", "/api/v1/settings", None), ("POST", "/api/v1/settings",
             {"agent_settings_diff": {"llm": {"model": "openai/intruder", "base_url": f"http://{DECOY}/v1"}}}),
             ("POST", "/api/v1/app-conversations",
              {"initial_message": {"role": "user", "content": [{"type": "text", "text": "hi"}], "run": True}}),
             ("GET", "/api/v1/app-conversations/start-tasks/search", None),
             ("GET", "/api/v1/app-conversations/search", None),
             ("GET", "/health", None)]
    no_login, wrong_login = api(auth=False), api(password="not-the-password")
    # Every call without a login; the reads with a wrong password too.
    for anonymous, method, path, body in ([(no_login, *c) for c in calls]
                                          + [(wrong_login, *c) for c in calls if c[0] == "GET"]):
        status = refused_status(anonymous, method, path, body)
        assert status == 401, (method, path, status)
    # The refused calls changed nothing.
    assert client.ok("GET", "/api/v1/app-conversations/start-tasks/count") == before
    assert client.ok("GET", "/api/v1/settings")["agent_settings"]["llm"]["model"] == LLM_MODEL


def test_a_conversation_through_the_proxy_calls_the_llm_through_the_gateway():
    client = api()
    run("docker", "exec", f"{PREFIX}-llm", "curl", "-s", "-X", "DELETE", f"http://127.0.0.1:{LLM_PORT}/_requests")
    start = time.monotonic()
    task = client.start_and_wait("Please say hello.", timeout=420)
    STATE["ready_s"] = round(time.monotonic() - start, 1)
    conv_id = task["app_conversation_id"]
    conv = client.wait_final(conv_id, timeout=420)
    STATE["final_s"] = round(time.monotonic() - start, 1)
    assert conv["execution_status"] == "finished", conv
    STATE["conversation"] = conv_id

    # The agent's sandbox: a container of the server built from PyPI on the host's engine.
    names = [n for n in sandboxes() if n.endswith(task["sandbox_id"])]
    assert len(names) == 1, (task["sandbox_id"], sandboxes())
    sandbox = names[0]
    STATE["sandbox"] = sandbox
    assert on_host("docker", "inspect", "-f", "{{ .Config.Image }}", sandbox).stdout.strip() == STATE["image"]
    sandbox_ip = on_host("docker", "inspect", "-f", "{{ .NetworkSettings.Networks.bridge.IPAddress }}", sandbox).stdout.strip()
    # The app has a network of its own (airlock-app); read its address on whichever it is.
    app_ips = set(on_host("docker", "inspect", "-f", "{{ range .NetworkSettings.Networks }}{{ .IPAddress }} {{ end }}",
                          "openhands-app").stdout.split())

    # The fake LLM (which refuses any other key) answered the agent with the configured model,
    # called by the gateway with the provider key; it never saw the gateway key.
    key = (SECRETS / "llm-api-key").read_text().strip()
    gateway_key = (SECRETS / "llm-gateway-key").read_text().strip()
    records = [r for r in fake_llm_requests() if r["path"].endswith("/chat/completions")]
    STATE["fake_llm_received"] = [{"path": r["path"], "model": r["model"], "stream": r["stream"],
                                   "key_ok": r["authorization"] == f"Bearer {key}", "source": r["source"]}
                                  for r in records]
    assert records, "the fake LLM received no completion request"
    for r in records:
        assert r["model"] == LLM_MODEL.split("/", 1)[1], r
        assert r["authorization"] == f"Bearer {key}", "a completion request without the configured key"
        assert gateway_key not in (r["authorization"] or ""), "the provider saw the gateway key"
        # It arrived through the NAT gateway, the one way out of the private subnet.
        assert r["source"] == f"{NET}.12.2", r

    # ...and those connections came from the host (the gateway), never from a container: the
    # host's connection tracking still holds their original source (read-only). The
    # sandbox's own connections went to the gateway on the bridge gateway's address.
    llm_ip = f"{NET}.12.10"
    conntrack = on_host("cat", "/proc/net/nf_conntrack").stdout
    flows = [line for line in conntrack.splitlines()
             if f"dst={llm_ip} " in line and f"dport={LLM_PORT} " in line]
    sources = {m.group(1) for line in flows if (m := re.search(r"src=(\S+) dst=" + re.escape(llm_ip), line))}
    STATE["llm_flow_sources"] = sorted(sources)
    assert app_ips and sources and sandbox_ip not in sources and not app_ips & sources, \
        f"connections to the LLM came from a container, not the gateway: {sources}"
    to_gateway = {m.group(1) for line in conntrack.splitlines() if f"dport={GATEWAY_PORT} " in line
                  and (m := re.search(r"src=(\S+) dst=", line))}
    STATE["gateway_flow_sources"] = sorted(to_gateway)
    assert sandbox_ip in to_gateway, f"no connection from the sandbox ({sandbox_ip}) to the gateway: {to_gateway}"
    # The gateway's request log names every completion: alias, model, status, tokens.
    log = [json.loads(line) for line in on_host("cat", REQUEST_LOG).stdout.splitlines() if line.strip()]
    served = [r for r in log if r["status"] == 200 and r["key_alias"] == "openhands"]
    STATE["gateway_log"] = served[-3:]
    assert len(served) >= len(records), (len(served), len(records), log[-5:])
    assert all(r["model"] == LLM_MODEL.split("/", 1)[1] for r in served), served

    # The app server recorded the conversation, with the fake reply, from the sandbox's callbacks.
    texts = ohapi.agent_texts(client.events(conv_id))
    assert any(FAKE_REPLY in t for t in texts), texts


def test_every_url_handed_out_is_the_proxys_and_needs_the_login():
    """What a browser is handed for the conversation: the conversation URL and the
    sandbox's URLs (agent server, VS Code, workers), each the public URL plus
    /runtime/<host port>. Through the proxy with the login the events websocket streams,
    a worker port answers once something listens on it in the sandbox and a file comes
    down from the agent server; VS Code answers where the image has it (the PyPI build has
    none, and 1.11.0 starts it without a base path: docs/user-guide.md). Without the
    login, each answers 401."""
    client, sandbox, login_ = api(), STATE["sandbox"], login()
    conv = client.conversation(STATE["conversation"])
    info = client.ok("GET", "/api/v1/sandboxes", query={"id": [conv["sandbox_id"]]})[0]
    ports = json.loads(on_host("docker", "inspect", "-f", "{{ json .NetworkSettings.Ports }}", sandbox).stdout)
    host_ports = {int(k.split("/")[0]): int(v[0]["HostPort"]) for k, v in ports.items() if v}
    urls = {u["name"]: u for u in info["exposed_urls"] or []}
    STATE["handed_out"] = {"conversation_url": conv["conversation_url"],
                           **{n: u["url"].split("?")[0] for n, u in urls.items()}}
    assert set(urls) == {"AGENT_SERVER", "VSCODE", "WORKER_1", "WORKER_2"}, info
    for exposed in urls.values():
        proxyurls.check_prefix(exposed["url"], PUBLIC, host_ports[exposed["port"]])
    agent = urls["AGENT_SERVER"]["url"]
    conv_hex = conv["id"].replace("-", "")
    assert conv["conversation_url"] == f"{agent}/api/conversations/{conv_hex}", conv["conversation_url"]

    def proxied(url: str) -> str:
        return proxyurls.via_proxy(url, PUBLIC, URL)

    # The events websocket, as the UI opens it.
    events = proxied(f"{agent}/sockets/events/{conv_hex}?resend_mode=all&session_api_key={conv['session_api_key']}")
    received = proxyurls.ws_messages(events, login_, want=3)
    STATE["events_websocket_messages"] = len(received)
    assert received and all(json.loads(m).get("id") for m in received), received[:2]
    assert proxyurls.refused(lambda: proxyurls.ws_status(events)) == 401

    # A worker port, once the agent (here: we) starts something on it in the sandbox.
    on_host("docker", "exec", "-d", "-u", "openhands", sandbox, "python3", "-m", "http.server", "8011", "-d", "/workspace")
    worker = proxied(urls["WORKER_1"]["url"] + "/")
    deadline, status = time.monotonic() + 60, 0
    while time.monotonic() < deadline:
        status, _ = proxyurls.http(worker, login_)
        if status == 200:
            break
        time.sleep(2)
    assert status == 200, f"worker port through the proxy: {status}"
    assert proxyurls.refused(lambda: proxyurls.http(worker)[0]) == 401

    # A file from the workspace through the agent server (what works instead of VS Code).
    in_sandbox(sandbox, "sh", "-c", "echo airlock-file > /workspace/project/airlock.txt", check=True)
    download = proxied(f"{agent}/api/file/download?path=/workspace/project/airlock.txt")
    session = {"X-Session-API-Key": conv["session_api_key"]}
    assert proxyurls.http(download, login_, session) == (200, b"airlock-file\n")
    assert proxyurls.refused(lambda: proxyurls.http(download, None, session)[0]) == 401

    # VS Code: the URL carries the session token; it needs the login like everything else.
    vscode = proxied(urls["VSCODE"]["url"])
    assert f"tkn={conv['session_api_key']}" in vscode, vscode
    has_vscode = in_sandbox(sandbox, "test", "-x", "/openhands/.openvscode-server/bin/openvscode-server").returncode == 0
    status, _ = proxyurls.http(vscode, login_)
    STATE["vscode"] = {"in_image": has_vscode, "status_with_login": status}
    assert status == 200 if has_vscode else status == 502, STATE["vscode"]
    assert proxyurls.refused(lambda: proxyurls.http(vscode)[0]) == 401


def test_the_sandbox_cannot_reach_the_decoy():
    sandbox = STATE["sandbox"]
    curl = ("curl", "-sS", "-m", "8", "-o", "/dev/null", "-w", "%{http_code}")
    # Control: the same command in the same sandbox reaches the LLM gateway.
    res = in_sandbox(sandbox, *curl, f"http://host.docker.internal:{GATEWAY_PORT}/health/liveliness")
    assert res.returncode == 0 and res.stdout == "200", (res.returncode, res.stdout, res.stderr)
    # The provider itself is closed to the sandbox (only the gateway calls it), as is the decoy.
    for target in (f"http://{NET}.12.10:{LLM_PORT}/health", f"http://{DECOY}:80/", f"http://{NET}.12.20:80/"):
        res = in_sandbox(sandbox, *curl, target)
        assert res.returncode != 0, f"the sandbox reached {target}: {res.stdout}"
    # Also as the agent's tool would: the sandbox user's shell, by name.
    res = in_sandbox(sandbox, "python3", "-c",
                     f"import socket; socket.create_connection(('{DECOY}', 80), timeout=8)")
    assert res.returncode != 0, "the sandbox opened a TCP connection to the decoy"
    # The proxy is the app's alone: the app calls its sandboxes through the public URL, so
    # its container reaches the proxy's HTTPS port (control) where a sandbox reaches nothing.
    connect = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=8)"
    for address, port in ((PROXY_PRIVATE, 443), (PROXY_PRIVATE, int(LAB.get("AIRLOCK_LAB_HTTPS_PORT", "8443")))):
        res = on_host("docker", "exec", "openhands-app", "python", "-c", connect, address, str(port), check=False)
        assert res.returncode == 0, f"control: the app did not reach the proxy at {address}:{port}: {res.stderr[-300:]}"
        res = in_sandbox(sandbox, "python3", "-c", connect, address, str(port))
        assert res.returncode != 0, f"the sandbox reached the proxy at {address}:{port}"


def hostile_conversation(commands: list[str]) -> dict:
    """A conversation started through the proxy whose agent is hostile: the fake LLM answers
    with calls of the agent's own terminal tool, one per command (hostile_agent.py). Waits
    until it finished and every command's result is in the app server's event store; returns
    the conversation, its sandbox, the terminal outputs and their verdict lines."""
    client = api()
    task = client.start_and_wait(hostile_agent.message(commands), timeout=420)
    conv_id = task["app_conversation_id"]
    conv = client.wait_final(conv_id, timeout=600)
    assert conv["execution_status"] == "finished", conv
    # The events reach the app server by webhook, maybe after the status: wait for them.
    deadline = time.monotonic() + 120
    while True:
        outputs = hostile_agent.terminal_outputs(client.events(conv_id))
        if len(outputs) >= len(commands) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert [o["command"] for o in outputs] == commands, \
        f"the agent's terminal did not run the script: {[o['command'][:60] for o in outputs]}"
    # The fake LLM sent each command as a tool call (through the gateway), then finished.
    sent = [r["answer"] for r in fake_llm_requests() if r.get("answer", {}).get("of") == len(commands)]
    assert {a["step"] for a in sent if a.get("command") in commands} == set(range(len(commands))), sent
    assert any("finish" in a for a in sent), sent
    names = [n for n in sandboxes() if n.endswith(task["sandbox_id"])]
    assert len(names) == 1, (task["sandbox_id"], sandboxes())
    found = hostile_agent.verdicts(outputs)
    STATE.setdefault("hostile_agent", {}).update({k: v["line"] for k, v in found.items()})
    return {"conversation": conv_id, "sandbox": names[0], "outputs": outputs, "verdicts": found}


def blocked(verdict: dict | None) -> bool:
    """An HTTP probe that got no answer at all (curl: no status, an error exit)."""
    return verdict is not None and verdict.get("http") == "000" and verdict.get("exit", "0") != "0"


def host_reaches(url: str) -> bool:
    """The OpenHands host itself (root, the host's output chain) gets an HTTP answer."""
    res = on_host("curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", url, check=False)
    return res.stdout.strip() == "200"


def test_the_prompt_injected_agent_never_gets_through_an_open_maintenance_window():
    """While a maintenance window is open (as during every site.yml run on the server), the
    host reaches the window's destination (positive control, before and after) and the agent,
    probing it again and again from its sandbox through its own terminal, never does. The
    window's destination is the lab's decoy, given to the sets command for this test only."""
    target = f"http://{DECOY_IP}:80/"
    window = [{"name": "airlock-e2e-decoy", "cidrs": [f"{DECOY_IP}/32"], "ports": [80]}]
    assert not host_reaches(target), "the host reaches the decoy before the window is open"
    probes = " ; ".join(hostile_agent.curl(f"window-probe-{i}", target, seconds=3) for i in range(1, 13))
    on_host("airlock-egress-sets", "--open", "airlock-e2e-decoy", "--destinations", json.dumps(window),
            "--timeout", "900")
    try:
        opened = time.time()
        assert host_reaches(target), "positive control: the open window does not let the host through"
        agent = hostile_conversation([probes])
        still_open = host_reaches(target)
        checked = time.time()
    finally:
        on_host("airlock-egress-sets", "--close")
    assert still_open, "positive control: the window closed before the agent had probed it"
    found = {k: v for k, v in agent["verdicts"].items() if k.startswith("window-probe-")}
    assert len(found) == 12, agent["outputs"]
    for name, verdict in found.items():
        assert int(opened) <= int(verdict["at"]) <= checked, f"{name} ran outside the open window: {verdict['line']}"
        assert blocked(verdict), f"the agent went through the maintenance window: {verdict['line']}"
    assert not host_reaches(target), "the window did not close"
    STATE["maintenance_window"] = {"probes": len(found), "curl_exits": sorted({v["exit"] for v in found.values()})}


def test_the_prompt_injected_agent_is_boxed_in():
    """The threat model end to end: the agent, hostile and in its sandbox, attacks through its
    own terminal tool, and the test reads the results from the conversation's events. Each
    block stands beside a positive control: (a) the app's API answers 403 from the app shield
    (settings read and write, conversations), while the webhook route is passed to the app;
    (b) no name resolves and no resolver answers a direct query, while the host resolves the
    same name and the sandbox reaches the gateway; (c) the provider key is nowhere in the
    sandbox's environment, processes or files, while the gateway key is found by the same
    search and works at the gateway; (d) the decoy and the provider by address are closed,
    while the gateway answers; (e) another sandbox's published port is closed to the agent,
    while the app reaches it."""
    client = api()
    settings_before = client.ok("GET", "/api/v1/settings")["agent_settings"]["llm"]
    other = STATE["sandbox"]  # the first conversation's sandbox, still running
    ports = json.loads(on_host("docker", "inspect", "-f", "{{ json .NetworkSettings.Ports }}", other).stdout)
    other_port = int(ports["8000/tcp"][0]["HostPort"])
    other_ip = on_host("docker", "inspect", "-f", "{{ .NetworkSettings.Networks.bridge.IPAddress }}", other).stdout.strip()
    marked = "airlock: this route"  # the shield's own 403
    intruder = json.dumps({"agent_settings_diff": {"llm": {"base_url": f"http://{DECOY_IP}/v1"}}})
    chat = json.dumps({"model": LLM_MODEL.split("/", 1)[1], "messages": [{"role": "user", "content": "ping"}]})
    curl = hostile_agent.curl
    commands = [
        # (a) the app's unauthenticated API, through the shield
        " ; ".join([
            curl("app-settings", f"{APP_FROM_SANDBOX}/api/v1/settings", mark=marked),
            curl("app-settings-write", f"{APP_FROM_SANDBOX}/api/v1/settings", "-X", "POST", "-H",
                 "'Content-Type: application/json'", "-d", shlex.quote(intruder), mark=marked),
            curl("app-conversations", f"{APP_FROM_SANDBOX}/api/v1/app-conversations/search", mark=marked),
            curl("app-webhook", f"{APP_FROM_SANDBOX}/api/v1/webhooks/secrets", mark=marked),
            curl("app-private-address", f"http://{NET}.11.20:3000/api/v1/settings"),
        ]),
        # (b) DNS: the resolver in resolv.conf, then direct queries to the lab's resolver and the decoy
        f"timeout 30 getent hosts {LLM_HOST} ; echo \"{hostile_agent.VERDICT} dns-getent exit=$?\" ; "
        + hostile_agent.dns_query(LLM_HOST, [RESOLVER, DECOY_IP]) + " ; " + curl("gateway-b", LIVELINESS),
        # (c) the provider key: environment, processes, files; the key the sandbox holds, used
        hostile_agent.python(hostile_agent.KEY_SEARCH) + " ; " + curl(
            "gateway-chat-own-key", f"http://host.docker.internal:{GATEWAY_PORT}/v1/chat/completions",
            "-H", '"Authorization: Bearer $LLM_API_KEY"', "-H", "'Content-Type: application/json'",
            "-d", shlex.quote(chat), seconds=60),
        # (d) the decoy and the provider by address
        " ; ".join([curl("decoy-80", f"http://{DECOY_IP}:80/"), curl("decoy-443", f"http://{DECOY_IP}:443/"),
                    curl("provider-direct", f"http://{LLM_IP}:{LLM_PORT}/v1/models"),
                    curl("decoy-by-name", f"http://{DECOY}/"), curl("gateway-d", LIVELINESS)]),
        # (e) another sandbox: its published agent-server port on the host, and its address
        " ; ".join([curl("other-sandbox-published", f"http://host.docker.internal:{other_port}/alive"),
                    curl("other-sandbox-direct", f"http://{other_ip}:8000/alive"),
                    curl("gateway-e", LIVELINESS)]),
    ]
    agent = hostile_conversation(commands)
    v = agent["verdicts"]

    # (a) The shield answers the API itself; the webhook route reaches the app (its own answer).
    for name in ("app-settings", "app-settings-write", "app-conversations"):
        assert v[name]["http"] == "403" and v[name]["marked"] == "yes", f"the shield let through: {v[name]['line']}"
    assert v["app-webhook"]["http"] not in ("000", "403") and v["app-webhook"]["marked"] == "no", \
        f"positive control: the webhook route did not reach the app: {v['app-webhook']['line']}"
    assert blocked(v["app-private-address"]), v["app-private-address"]["line"]
    assert client.ok("GET", "/api/v1/settings")["agent_settings"]["llm"] == settings_before

    # (b) Nothing resolves in the sandbox; the host resolves the same name.
    assert v["gateway-b"]["http"] == "200", f"positive control: {v['gateway-b']['line']}"
    assert on_host("getent", "hosts", LLM_HOST, check=False).stdout.split()[:1] == [LLM_IP], \
        "positive control: the host does not resolve the LLM's name"
    # The same query script gets its answers on the host, from the user the firewall lets
    # query the resolver (unbound's, with the local allow-listing resolver; else any).
    resolver_user = ["runuser", "-u", "unbound", "--"] if on_host("id", "unbound", check=False).returncode == 0 else []
    control = on_host(*resolver_user, "python3", "-c", hostile_agent.DNS_QUERY, LLM_HOST, RESOLVER, check=False).stdout
    assert control.count("answered=yes") == 2, f"positive control: the host's resolver user got no answer: {control}"
    assert v["dns-getent"]["exit"] != "0", v["dns-getent"]["line"]
    queries = {k: x for k, x in v.items() if k.startswith("dns-udp-") or k.startswith("dns-tcp-")}
    assert len(queries) == 4 and all(x["answered"] == "no" for x in queries.values()), \
        [x["line"] for x in queries.values()]

    # (c) The provider key is nowhere the agent can look; the gateway key is found by the same
    # search (so the search works) and the gateway answers it.
    # (The keys never appear in an assertion: pytest would print them.)
    key_digest, gateway_digest = (hashlib.sha256((SECRETS / name).read_text().strip().encode()).hexdigest()[:16]
                                  for name in ("llm-api-key", "llm-gateway-key"))
    hashes = hostile_agent.key_hashes(agent["outputs"])
    STATE["key_search"] = v["key-search"]["line"]
    assert gateway_digest in hashes, f"positive control: the search missed the gateway key ({v['key-search']['line']})"
    assert key_digest not in hashes, "the agent found the provider key in its sandbox"
    assert v["gateway-chat-own-key"]["http"] == "200", v["gateway-chat-own-key"]["line"]

    # (d) The decoy and the provider are closed to the agent; the gateway answers it.
    assert v["gateway-d"]["http"] == "200", f"positive control: {v['gateway-d']['line']}"
    for name in ("decoy-80", "decoy-443", "provider-direct", "decoy-by-name"):
        assert blocked(v[name]), f"the agent reached it: {v[name]['line']}"

    # (e) Another sandbox's published port answers the app (from its own network) and the host,
    # never the agent.
    assert v["gateway-e"]["http"] == "200", f"positive control: {v['gateway-e']['line']}"
    from_app = on_host("docker", "exec", "openhands-app", "curl", "-s", "-m", "5", "-o", "/dev/null", "-w",
                       "%{http_code}", f"http://host.docker.internal:{other_port}/alive", check=False).stdout
    assert from_app == "200", f"positive control: the app does not reach the other sandbox's port ({from_app})"
    assert host_reaches(f"http://{other_ip}:8000/alive"), "positive control: the host does not reach the other sandbox"
    assert blocked(v["other-sandbox-direct"]), f"the agent reached another sandbox: {v['other-sandbox-direct']['line']}"
    assert blocked(v["other-sandbox-published"]), \
        f"the agent reached another sandbox's published port: {v['other-sandbox-published']['line']}"


def test_a_restart_keeps_the_conversation_and_the_settings():
    conv_id = STATE["conversation"]
    start = time.monotonic()
    on_host("systemctl", "restart", "openhands-app.service", timeout=180)
    api().wait_healthy(timeout=300)
    STATE["restart_s"] = round(time.monotonic() - start, 1)
    client = api()
    settings = client.ok("GET", "/api/v1/settings")
    assert settings["agent_settings"]["llm"] == STATE["settings"]["agent_settings"]["llm"]
    assert settings["llm_api_key_set"] is True
    conv = client.conversation(conv_id)
    assert conv is not None and conv["id"].replace("-", "") == conv_id.replace("-", "")
    texts = ohapi.agent_texts(client.events(conv_id))
    assert any(FAKE_REPLY in t for t in texts), texts


def test_the_state_backup_restores_the_conversation():
    """The backup role's archive of the state directory brings the conversation back after
    the state is destroyed (the restore drill of the backup issue, on the real server)."""
    conv_id = STATE["conversation"]
    ok(playbook("playbooks/backup.yml", "-l", "openhands"))
    # Destroy the state and prove it is gone: the server comes up empty.
    on_host("systemctl", "stop", "openhands-app.service", timeout=180)
    on_host("find", "/var/lib/openhands", "-mindepth", "1", "-delete")
    on_host("systemctl", "start", "openhands-app.service", timeout=180)
    api().wait_healthy(timeout=300)
    assert api().conversation(conv_id) is None, "the conversation survived the destroyed state"
    status, _ = api().request("GET", "/api/v1/settings")
    assert status == 404, f"settings survived the destroyed state ({status})"
    start = time.monotonic()
    ok(playbook("playbooks/restore.yml", "-e", "restore_hosts=openhands"))
    api().wait_healthy(timeout=300)
    STATE["restore_s"] = round(time.monotonic() - start, 1)
    client = api()
    assert client.ok("GET", "/api/v1/settings")["agent_settings"]["llm"] == STATE["settings"]["agent_settings"]["llm"]
    conv = client.conversation(conv_id)
    assert conv is not None, "the restore did not bring the conversation back"
    texts = ohapi.agent_texts(client.events(conv_id))
    assert any(FAKE_REPLY in t for t in texts), texts


def test_lab_down_leaves_nothing():
    shown = {k: v for k, v in STATE.items() if k != "settings"}
    print("\nmeasured:", json.dumps(shown, indent=1, default=str))
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "e2e-real-openhands.json").write_text(json.dumps(shown, indent=1, default=str) + "\n")
    if EXISTING:
        pytest.skip("an existing lab is left as it is")
    ok(playbook("playbooks/lab_down.yml"))
    assert lab_objects() == []
