#!/usr/bin/env python3
"""OpenHands stand-in: a small test double for the OpenHands server and its sandboxes.

This is NOT OpenHands. It honours the part of the OpenHands V1 server contract that the
airlock deployment relies on, so that the deployment and the egress firewall can be
tested where the official image cannot be pulled. Python standard library, the
Docker SDK (as OpenHands uses it) for the sandboxes in server mode, dnspython for
the DNS probe and websockets for the websocket echo.

Two modes:

``standin.py server``  (the OpenHands app server stand-in, port 3000)
    GET  /alive, /health, /ready      200 {"status": "ok"}
    GET  /server_info                 what this is (says "stand-in")
    GET  /api/v1/settings             the settings store, shaped like 1.11.0's: 404
                                      {"error": "Settings not found"} until the first POST,
                                      then the LLM under agent_settings.llm (API key masked)
    POST /api/v1/settings             {"agent_settings_diff": {"llm": {...}}} merged and
                                      saved to <persistence dir>/settings.json in 1.11.0's
                                      shape: the LLM (key in clear) under agent_settings.llm,
                                      the other settings at the top level
    GET  /sockets/events              a websocket that echoes text frames
    POST /api/stand-in/sandboxes      start a sandbox container through the Docker socket,
                                      like V1 does: image AGENT_SERVER_IMAGE_REPOSITORY:TAG,
                                      ports 8000/8001/8011/8012 published on random host ports.
                                      Body (optional): {"probe_urls": [...]}.
    POST /api/v1/webhooks/<kind>      the sandboxes' event callbacks (V1: the agent server posts
                                      events to http://host.docker.internal:<OH_SANDBOX_HOST_PORT,
                                      3000>/api/v1/webhooks); counted per sandbox
    GET  /api/stand-in/sandboxes/<id> the sandbox's state, published ports, the report its
                                      process printed (LLM call, webhook and probes: status or
                                      error), the webhooks received from it, and the app's own
                                      health check of it through the Docker bridge gateway
                                      (host.docker.internal:<published port>, as V1 does);
                                      exposed_urls and session_api_key as 1.11.0 hands them to
                                      the browser (see sandbox_url_pattern), and health_via_url:
                                      the app's check of the agent server through the URL it
                                      hands out, as 1.11.0 calls its sandboxes (report only)
    DELETE /api/stand-in/sandboxes/<id>

``standin.py sandbox``  (the agent-server sandbox stand-in, ports 8000/8001/8011/8012)
    At start: calls the configured LLM (LLM_BASE_URL, LLM_API_KEY, LLM_MODEL), posts one
    event to the app server's webhook (STANDIN_WEBHOOK_URL, on the bridge gateway like V1),
    calls every URL in STANDIN_PROBE_URLS, prints one line ``STANDIN-REPORT <json>``.
    GET  /alive                       200 (every port; GET / too: VS Code's and the workers')
    GET  /sockets/events/<id>         a websocket that echoes text frames (the agent server's
                                      event stream, which the browser opens at the sandbox URL)
    POST /probe                       run one probe from inside the sandbox and say what
                                      happened: {"kind": "llm"} | {"kind": "http", "url": U}
                                      | {"kind": "tcp"|"udp", "host": H, "port": P}
                                      | {"kind": "dns", "server": S, "name": N}
                                      | {"kind": "ping", "host": H}
"""
from __future__ import annotations

import base64
import http.server
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

STANDIN_VERSION = "1"
SANDBOX_PORTS = (8000, 8001, 8011, 8012)


def log(msg: str) -> None:
    print(f"[stand-in] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- probes
def probe_http(url: str, headers: dict | None = None, body: bytes | None = None, timeout: float = 4.0) -> dict:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return {"ok": True, "status": resp.status, "body": resp.read(2048).decode("utf-8", "replace")}
    except urllib.error.HTTPError as exc:
        return {"ok": False, "status": exc.code, "error": f"HTTP {exc.code}"}
    except Exception as exc:  # noqa: BLE001 - report every failure as data
        return {"ok": False, "status": None, "error": f"{type(exc).__name__}: {exc}"}


def upstream_model_name(model: str) -> str:
    """The model name a litellm client sends to an OpenAI-compatible base URL: litellm
    strips the provider prefix (`openai/gpt-4o` is sent as `gpt-4o`, and so is
    `litellm_proxy/gpt-4o`), as the real agent-server does."""
    for prefix in ("openai/", "litellm_proxy/"):
        if model.startswith(prefix):
            return model[len(prefix):]
    return model


def probe_llm(timeout: float = 5.0) -> dict:
    base = os.environ.get("LLM_BASE_URL", "").rstrip("/")
    if not base:
        return {"ok": False, "status": None, "error": "LLM_BASE_URL is not set"}
    payload = {
        "model": upstream_model_name(os.environ.get("LLM_MODEL", "")),
        "messages": [{"role": "user", "content": "stand-in sandbox says hello"}],
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {os.environ.get('LLM_API_KEY', '')}"}
    result = probe_http(f"{base}/chat/completions", headers, json.dumps(payload).encode(), timeout)
    result["url"] = f"{base}/chat/completions"
    return result


def probe_tcp(host: str, port: int, timeout: float = 3.0) -> dict:
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            sock.settimeout(timeout)
            data = sock.recv(256)
            return {"ok": True, "reply": data.decode("utf-8", "replace")[:80]}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def probe_udp(host: str, port: int, timeout: float = 3.0) -> dict:
    try:
        info = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
        with socket.socket(info[0], socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect(info[4])
            sock.send(b"stand-in udp probe")
            data = sock.recv(512)
            return {"ok": True, "reply": data.decode("utf-8", "replace")[:80]}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def dns_query(server: str, name: str, qtype: int = 1, timeout: float = 3.0) -> dict:
    """One query over UDP by tools/standin/fake-dns/dns_query.py (the one DNS query code of
    the tests: beside this file in the image, /opt/standin, and on the Molecule hosts,
    /usr/local/lib/airlock-test), in this probe API's shape: {"ok": rcode is NOERROR,
    "rcode": int, "answers": [addresses]}, or {"ok": False, "error": ...} without an answer
    (blocked, refused, timed out). It needs dnspython (the distribution's python3-dnspython:
    in the image, and on the hosts that run these probes): imported here, so that the other
    probes run on a host without it."""
    import dns.rcode  # noqa: PLC0415
    import dns.rdatatype  # noqa: PLC0415
    from dns_query import query  # noqa: PLC0415

    try:
        result = query(server, name, dns.rdatatype.to_text(qtype), timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - e.g. a reply that is not this query's: no answer
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    if result["outcome"] != "answer":
        return {"ok": False, "error": result["error"]}
    rcode = dns.rcode.from_text(result["rcode"])
    return {"ok": rcode == dns.rcode.NOERROR, "rcode": int(rcode), "answers": result["answers"]}


def probe_ping(host: str) -> dict:
    flag = "-6" if ":" in host else "-4"
    proc = subprocess.run(["ping", flag, "-c", "1", "-W", "2", host], capture_output=True, text=True, check=False)
    return {"ok": proc.returncode == 0, "rc": proc.returncode, "error": proc.stderr.strip()[:200]}


def run_probe(spec: dict) -> dict:
    kind = spec.get("kind")
    if kind == "llm":
        return probe_llm()
    if kind == "http":
        return probe_http(spec["url"])
    if kind == "tcp":
        return probe_tcp(spec["host"], spec["port"])
    if kind == "udp":
        return probe_udp(spec["host"], spec["port"])
    if kind == "dns":
        return dns_query(spec["server"], spec["name"], 28 if spec.get("type") == "AAAA" else 1)
    if kind == "ping":
        return probe_ping(spec["host"])
    return {"ok": False, "error": f"unknown probe kind {kind!r}"}


# --------------------------------------------------------------------------- http helpers
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openhands-stand-in/" + STANDIN_VERSION

    def log_message(self, fmt, *args):  # quieter, one line per request on stderr
        log(f"{self.client_address[0]} {fmt % args}")

    def reply(self, code: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body_json(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        return json.loads(self.rfile.read(length) or b"{}")


    def websocket(self):
        """Echo text frames as "stand-in echo: <text>" (ws_echo.py, beside this file in the
        image: the websockets library). Imported here, like the Docker SDK: hosts that import
        this module for its probes lack it."""
        from ws_echo import serve  # noqa: PLC0415

        serve(self, lambda text: "stand-in echo: " + text)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


# --------------------------------------------------------------------------- docker API
# The Docker SDK (docker-py, the distribution's python3-docker in the image), as OpenHands'
# own Docker sandbox service uses it. Imported on first use: the probes above import this
# module on hosts that have no SDK.
_DOCKER = None


def docker_sdk():
    import docker  # noqa: PLC0415 (server mode only)
    return docker


def docker_client():
    global _DOCKER
    if _DOCKER is None:
        _DOCKER = docker_sdk().from_env(timeout=30)
    return _DOCKER


# --------------------------------------------------------------------------- server mode
class AppState:
    def __init__(self) -> None:
        self.dir = os.environ.get("OH_PERSISTENCE_DIR", "/.openhands")
        self.lock = threading.Lock()
        os.makedirs(self.dir, exist_ok=True)

    @property
    def path(self) -> str:
        return os.path.join(self.dir, "settings.json")

    def load(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return {}

    def save(self, settings: dict) -> None:
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(settings, fh, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def llm(self) -> dict:
        return (self.load().get("agent_settings") or {}).get("llm") or {}

    def public(self) -> dict | None:
        """What GET answers; None (404) until settings were saved once, like 1.11.0."""
        settings = self.load()
        if not settings:
            return None
        llm = (settings.get("agent_settings") or {}).get("llm") or {}
        return {
            **{k: v for k, v in settings.items() if k != "agent_settings"},
            "llm_api_key_set": bool(llm.get("api_key")),
            "agent_settings": {"llm": {"model": llm.get("model"), "base_url": llm.get("base_url"), "api_key": None}},
        }


STATE: AppState | None = None
WEBHOOKS: dict[str, int] = {}  # sandbox name -> events received
WEBHOOKS_LOCK = threading.Lock()


def llm_env() -> dict:
    """What a sandbox is given: the settings store first, the LLM_* env vars as fallback."""
    llm = STATE.llm()
    return {
        "LLM_MODEL": llm.get("model") or os.environ.get("LLM_MODEL", ""),
        "LLM_BASE_URL": llm.get("base_url") or os.environ.get("LLM_BASE_URL", ""),
        "LLM_API_KEY": llm.get("api_key") or os.environ.get("LLM_API_KEY", ""),
    }


# The V1 Docker sandbox service's names for the published ports (1.11.0,
# openhands/app_server/sandbox/docker_sandbox_service.py, exposed_ports).
EXPOSED_PORTS = (("AGENT_SERVER", 8000), ("VSCODE", 8001), ("WORKER_1", 8011), ("WORKER_2", 8012))
DOCKER_SANDBOX_KIND = "openhands.app_server.sandbox.docker_sandbox_service.DockerSandboxServiceInjector"
SESSION_API_KEY_VARIABLE = "OH_SESSION_API_KEYS_0"
WORKING_DIR = "/workspace/project"


def sandbox_url_pattern() -> str:
    """The sandbox URL pattern, read from the environment exactly as 1.11.0 reads it
    (openhands/app_server/config.py, config_from_env): with OH_SANDBOX_KIND naming the
    Docker sandbox service, OH_SANDBOX_CONTAINER_URL_PATTERN; without OH_SANDBOX_KIND (the
    legacy fallback the official image and the PyPI build take by default),
    SANDBOX_CONTAINER_URL_PATTERN. Otherwise the upstream default, http://localhost:{port}."""
    kind = os.environ.get("OH_SANDBOX_KIND", "")
    if kind:
        name = "OH_SANDBOX_CONTAINER_URL_PATTERN" if kind in (DOCKER_SANDBOX_KIND, "DockerSandboxServiceInjector") else ""
    else:
        name = "SANDBOX_CONTAINER_URL_PATTERN"
    return (os.environ.get(name) if name else None) or "http://localhost:{port}"


def exposed_urls(ports: dict, session_api_key: str | None) -> list[dict]:
    """What 1.11.0 hands to the browser for a running sandbox: the pattern with each
    published host port; VS Code's URL with its token and the working directory."""
    pattern, out = sandbox_url_pattern(), []
    for name, container_port in EXPOSED_PORTS:
        if str(container_port) not in ports:
            continue
        url = pattern.format(port=ports[str(container_port)])
        if name == "VSCODE":
            url += f"/?tkn={session_api_key}&folder={WORKING_DIR}"
        out.append({"name": name, "url": url, "port": container_port})
    return out


def for_app(url: str) -> str:
    """1.11.0 running in a container calls localhost URLs at host.docker.internal
    (openhands/app_server/utils/docker_utils.py, replace_localhost_hostname_for_docker)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname == "localhost":
        parts = parts._replace(netloc=parts.netloc.replace("localhost", "host.docker.internal", 1))
    return urllib.parse.urlunsplit(parts)


def start_sandbox(probe_urls: list[str]) -> tuple[int, dict]:
    repo = os.environ.get("AGENT_SERVER_IMAGE_REPOSITORY")
    tag = os.environ.get("AGENT_SERVER_IMAGE_TAG")
    if not repo or not tag:
        return 500, {"error": "AGENT_SERVER_IMAGE_REPOSITORY and AGENT_SERVER_IMAGE_TAG must both be set"}
    name = f"oh-agent-server-standin-{int(time.time() * 1000) % 10**10}"
    callback = int(os.environ.get("OH_SANDBOX_HOST_PORT", "3000"))
    env = [f"{k}={v}" for k, v in llm_env().items()] + [
        f"{SESSION_API_KEY_VARIABLE}={base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip('=')}",
        f"STANDIN_PROBE_URLS={','.join(probe_urls)}",
        f"STANDIN_SANDBOX_NAME={name}",
        f"STANDIN_WEBHOOK_URL=http://host.docker.internal:{callback}/api/v1/webhooks/events"]
    try:
        # Like V1: every port on a random host port, on all interfaces, and the host's
        # bridge gateway as host.docker.internal.
        container = docker_client().containers.run(
            f"{repo}:{tag}", ["python3", "/opt/standin/standin.py", "sandbox"], name=name, detach=True,
            environment=env, labels={"airlock.stand-in": "sandbox"}, working_dir=WORKING_DIR,
            ports={f"{p}/tcp": None for p in SANDBOX_PORTS},
            extra_hosts={"host.docker.internal": "host-gateway"})
    except docker_sdk().errors.DockerException as exc:
        return 502, {"error": f"docker run: {exc}"}
    return 201, sandbox_info(container.id)


def sandbox_info(cid: str) -> dict:
    api = docker_client().api
    try:
        info = api.inspect_container(cid)
    except docker_sdk().errors.DockerException as exc:
        return {"error": f"docker inspect: {exc}"}
    ports = {}
    for key, binds in (info["NetworkSettings"].get("Ports") or {}).items():
        if binds:
            ports[key.split("/")[0]] = int(binds[0]["HostPort"])
    env = dict(e.split("=", 1) for e in info["Config"].get("Env") or [] if "=" in e)
    session_api_key = env.get(SESSION_API_KEY_VARIABLE)
    running = info["State"]["Running"]
    urls = exposed_urls(ports, session_api_key) if running else []
    agent_url = next((u["url"] for u in urls if u["name"] == "AGENT_SERVER"), None)
    logs = api.logs(cid, stdout=True, stderr=False).decode("utf-8", "replace")
    report = None
    for line in logs.splitlines():
        if line.startswith("STANDIN-REPORT "):
            report = json.loads(line[len("STANDIN-REPORT "):])
    return {
        "id": info["Id"],
        "name": info["Name"].lstrip("/"),
        "image": info["Config"]["Image"],
        "running": info["State"]["Running"],
        "ports": ports,
        "report": report,
        "webhooks_received": WEBHOOKS.get(info["Name"].lstrip("/"), 0),
        # V1's app server health-checks its sandboxes at host.docker.internal:<published port>.
        "health_from_app": probe_http(f"http://host.docker.internal:{ports['8000']}/alive", timeout=3)
        if info["State"]["Running"] and "8000" in ports else None,
        "session_api_key": session_api_key,
        "exposed_urls": urls,
        # 1.11.0 calls its sandboxes (health, conversation start) through the URL it hands out.
        "health_via_url": probe_http(for_app(agent_url) + "/health", timeout=3) if agent_url else None,
    }


class AppHandler(Handler):
    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        if path in ("/alive", "/health", "/ready"):
            return self.reply(200, {"status": "ok"})
        if path == "/server_info":
            return self.reply(200, {"name": "openhands stand-in", "stand_in": True, "version": STANDIN_VERSION})
        if path in ("/api/v1/settings", "/api/settings"):
            public = STATE.public()
            return self.reply(200, public) if public is not None else self.reply(404, {"error": "Settings not found"})
        if path == "/sockets/events" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if path.startswith("/api/stand-in/sandboxes/"):
            return self.reply(200, sandbox_info(path.rsplit("/", 1)[1]))
        return self.reply(404, {"error": "not found", "path": path})

    def do_POST(self):  # noqa: N802
        path = self.path.split("?")[0]
        try:
            body = self.body_json()
        except ValueError:
            return self.reply(400, {"error": "body is not JSON"})
        if path in ("/api/v1/settings", "/api/settings"):
            diff = (body.get("agent_settings_diff") or {}).get("llm")
            if not isinstance(diff, dict):
                return self.reply(422, {"error": "expected {'agent_settings_diff': {'llm': {...}}}"})
            with STATE.lock:
                settings = STATE.load()
                llm = settings.setdefault("agent_settings", {}).setdefault("llm", {})
                llm.update({k: v for k, v in diff.items() if k in ("model", "base_url", "api_key")})
                # Top-level settings (e.g. user_consents_to_analytics) are kept as given.
                settings.update({k: v for k, v in body.items() if k not in ("agent_settings_diff", "agent_settings")})
                STATE.save(settings)
            return self.reply(200, {"message": "Settings stored"})
        if path.startswith("/api/v1/webhooks/"):
            sender = str(body.get("sandbox") or "")
            with WEBHOOKS_LOCK:
                WEBHOOKS[sender] = WEBHOOKS.get(sender, 0) + 1
            return self.reply(200, {"received": True})
        if path == "/api/stand-in/sandboxes":
            code, obj = start_sandbox(list(body.get("probe_urls") or []))
            return self.reply(code, obj)
        return self.reply(404, {"error": "not found", "path": path})

    def do_DELETE(self):  # noqa: N802
        path = self.path.split("?")[0]
        if path.startswith("/api/stand-in/sandboxes/"):
            try:
                docker_client().api.remove_container(path.rsplit("/", 1)[1], force=True)
            except docker_sdk().errors.NotFound as exc:
                return self.reply(404, {"error": f"docker remove: {exc}"})
            except docker_sdk().errors.DockerException as exc:
                return self.reply(502, {"error": f"docker remove: {exc}"})
            return self.reply(200, {"removed": True})
        return self.reply(404, {"error": "not found"})

def serve_app() -> None:
    global STATE
    STATE = AppState()
    port = int(os.environ.get("STANDIN_PORT", "3000"))
    log(f"OpenHands stand-in app on :{port}, state in {STATE.dir}")
    Server(("0.0.0.0", port), AppHandler).serve_forever()


# --------------------------------------------------------------------------- sandbox mode
class SandboxHandler(Handler):
    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        if path in ("/alive", "/health", "/"):
            return self.reply(200, {"status": "ok", "stand_in": "sandbox", "port": self.server.server_address[1]})
        if path.startswith("/sockets/events/") and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        return self.reply(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        if self.path.split("?")[0] == "/probe":
            try:
                return self.reply(200, run_probe(self.body_json()))
            except (KeyError, ValueError) as exc:
                return self.reply(400, {"error": f"bad probe: {exc}"})
        return self.reply(404, {"error": "not found"})


def post_webhook() -> dict:
    url = os.environ.get("STANDIN_WEBHOOK_URL", "")
    if not url:
        return {"ok": False, "status": None, "error": "STANDIN_WEBHOOK_URL is not set"}
    body = json.dumps({"sandbox": os.environ.get("STANDIN_SANDBOX_NAME", ""), "events": [{"kind": "stand-in"}]})
    result = probe_http(url, {"Content-Type": "application/json"}, body.encode(), timeout=4)
    result["url"] = url
    return result


def serve_sandbox() -> None:
    report = {"llm": probe_llm(), "webhook": post_webhook(), "probes": {}}
    for url in filter(None, os.environ.get("STANDIN_PROBE_URLS", "").split(",")):
        report["probes"][url] = probe_http(url, timeout=3)
    print("STANDIN-REPORT " + json.dumps(report), flush=True)
    servers = [Server(("0.0.0.0", p), SandboxHandler) for p in SANDBOX_PORTS]
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    # PID 1 in its container: exit promptly on docker stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    mode = sys.argv[1] if len(sys.argv) > 1 else "server"
    if mode == "server":
        serve_app()
    elif mode == "sandbox":
        serve_sandbox()
    else:
        sys.exit(f"usage: {sys.argv[0]} server|sandbox")
