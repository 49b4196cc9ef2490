"""The sandbox boundary, attacked from where a prompt-injected agent stands: root inside a
sandbox container started the way OpenHands starts them (through the Docker socket, on the
default bridge), with a shell in it (`docker exec`, the agent's terminal).

Each block is asserted beside a positive control: the same probe from a vantage point
where it must succeed, in the same test, so a block can never be an outage.
"""
from __future__ import annotations

import contextlib
import json
import shlex
from urllib.parse import urlsplit

import pytest
import testinfra

from tier import DECOY_IP, GATEWAY_KEY, LLM_IP, PROBE, PROXY_IP, SERVER_IP, http, probe, start_sandbox, wait_for
from tier import KEY as PROVIDER_KEY

GATEWAY = "http://host.docker.internal:4000"
GATEWAY_CONFIG_DIR = "/etc/airlock-llm-gateway"
REQUEST_LOG = "/var/log/airlock-llm-gateway/requests.jsonl"
# One HTTP request from inside a container, its path sent exactly as given (no client-side
# normalization): prints {"status": N, "body": TEXT}; status 0 when nothing answered
# (refused, unreachable, timed out).
HTTP_SCRIPT = r"""
import http.client, json, sys
host, port, method, path, headers, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5]), sys.argv[6]
try:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request(method, path, body=body or None, headers=headers)
    resp = conn.getresponse()
    print(json.dumps({"status": resp.status, "body": resp.read(4096).decode("utf-8", "replace")}))
except Exception as e:
    print(json.dumps({"status": 0, "body": f"{type(e).__name__}: {e}"}))
"""

server = testinfra.get_host("docker://server_tier-server")
decoy = testinfra.get_host("docker://server_tier-decoy")
proxy = testinfra.get_host("docker://server_tier-proxy")
llm = testinfra.get_host("docker://server_tier-llm")


def api(method: str, path: str, body: dict | None = None):
    """The stand-in app's own API, called from the proxy (the one way in)."""
    return http(proxy, f"http://{SERVER_IP}:3000{path}", method, body, timeout=20)


def in_sandbox(info: dict, command: str):
    return server.run(f"docker exec {info['name']} {command}")


def sandbox_raw(info, host, port, method, path, body=None, headers=None) -> dict:
    """One request from inside the sandbox; the path goes on the wire exactly as given."""
    headers = dict(headers or ({"Content-Type": "application/json"} if body is not None else {}))
    args = " ".join(shlex.quote(str(a)) for a in (host, port, method, path, json.dumps(headers),
                                                    json.dumps(body) if body is not None else ""))
    out = in_sandbox(info, f"python3 -c {shlex.quote(HTTP_SCRIPT)} {args}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def sandbox_http(info, url, method="GET", headers=None, body=None) -> dict:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return sandbox_raw(info, parts.hostname, parts.port or 80, method, path, body, headers)


def sandbox_probe(info, spec) -> dict:
    out = in_sandbox(info, f"python3 -c {shlex.quote(PROBE)} {shlex.quote(json.dumps(spec))}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def host_probe(spec, user=None) -> dict:
    return probe(server, spec, user)


def chat(info, key=GATEWAY_KEY, model="fake-model", path="/v1/chat/completions", **extra) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": "boundary test"}], **extra}
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    return sandbox_http(info, f"{GATEWAY}{path}", "POST", headers, body)


@pytest.fixture(scope="module")
def sandbox():
    info = start_sandbox(proxy)
    yield info
    api("DELETE", f"/api/stand-in/sandboxes/{info['id']}")


@pytest.fixture(scope="module")
def other_sandbox():
    info = start_sandbox(proxy)
    yield info
    api("DELETE", f"/api/stand-in/sandboxes/{info['id']}")


# ------------------------------------------------------------------------- the gateway
def test_gateway_answers_the_gateway_key_only(sandbox):
    ok = chat(sandbox)
    assert ok["status"] == 200 and "fake LLM" in ok["body"], f"positive control: {ok}"
    assert chat(sandbox, key="sk-not-a-gateway-key-000000000000000")["status"] == 401
    assert chat(sandbox, key=PROVIDER_KEY)["status"] == 401, "the provider key opens the gateway"
    assert sandbox_http(sandbox, f"{GATEWAY}/v1/chat/completions", "POST", {"Content-Type": "application/json"},
                        {"model": "fake-model", "messages": []})["status"] == 401


@pytest.mark.parametrize("method,path", [
    ("GET", "/key/info"), ("POST", "/key/generate"), ("GET", "/model/info"), ("GET", "/config/yaml"),
    ("POST", "/config/update"), ("GET", "/health"), ("GET", "/global/spend"), ("POST", "/model/new"),
    ("GET", "/routes"), ("GET", "/"), ("POST", "/v1/embeddings"),
])
def test_gateway_serves_inference_routes_only(sandbox, method, path):
    assert sandbox_http(sandbox, f"{GATEWAY}/v1/models", headers={"Authorization": f"Bearer {GATEWAY_KEY}"})["status"] == 200
    answer = sandbox_http(sandbox, f"{GATEWAY}{path}", method,
                          {"Authorization": f"Bearer {GATEWAY_KEY}", "Content-Type": "application/json"},
                          {} if method == "POST" else None)
    assert answer["status"] in (403, 404, 405), f"{method} {path} answered {answer}"


def test_gateway_serves_the_configured_model_only(sandbox):
    assert chat(sandbox)["status"] == 200
    assert chat(sandbox, model="gpt-4o")["status"] == 400
    listed = json.loads(sandbox_http(sandbox, f"{GATEWAY}/v1/models", headers={"Authorization": f"Bearer {GATEWAY_KEY}"})["body"])
    assert [m["id"] for m in listed["data"]] == ["fake-model"]


def test_gateway_ignores_a_request_that_names_its_own_upstream(sandbox):
    """A request body may not redirect the gateway (api_base) or bring a key of its own: the
    agent's own account on the approved endpoint is not the approved account."""
    llm.check_output("curl -s -X DELETE http://127.0.0.1:8000/_requests")
    assert chat(sandbox)["status"] == 200
    assert len(json.loads(llm.check_output("curl -s http://127.0.0.1:8000/_requests"))) == 1, "positive control"
    for extra in ({"api_base": f"http://{DECOY_IP}:8000/v1"}, {"base_url": f"http://{DECOY_IP}:8000/v1"},
                  {"api_key": "sk-attacker-own-account-key"},
                  {"extra_headers": {"Authorization": "Bearer sk-attacker-own-account-key"}}):
        assert chat(sandbox, **extra)["status"] == 400, f"the gateway did not refuse {extra}"
    assert len(json.loads(llm.check_output("curl -s http://127.0.0.1:8000/_requests"))) == 1


def test_gateway_logs_every_request(sandbox):
    before = int(server.check_output(f"wc -l < {REQUEST_LOG}") or 0)
    assert chat(sandbox)["status"] == 200
    assert chat(sandbox, model="gpt-4o")["status"] == 400

    def new_lines():
        lines = server.check_output(f"cat {REQUEST_LOG}").splitlines()[before:]
        return [json.loads(line) for line in lines] if len(lines) >= 2 else None
    records = wait_for(new_lines, 20)
    assert records, "no request log lines"
    ok = next(r for r in records if r["status"] == 200)
    assert ok["key_alias"] == "openhands" and ok["model"] == "fake-model"
    assert ok["prompt_tokens"] > 0 and ok["completion_tokens"] > 0 and ok["latency_ms"] >= 0 and ok["time"]
    assert any(r["status"] == 400 and r["key_alias"] == "openhands" for r in records), records
    log = server.file(REQUEST_LOG)
    assert log.user == "airlock-llm" and log.mode & 0o007 == 0
    assert PROVIDER_KEY not in log.content_string and GATEWAY_KEY not in log.content_string


def sandbox_ip(info) -> str:
    return server.check_output(
        "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' " + info["name"]).strip()


def test_gateway_logs_every_refused_request_with_its_reason(sandbox):
    """What the auth hook refuses is in the request log too (alerts watch it): the reason,
    route and client, never the key the client brought. A served request carries no
    "refused" (the control)."""
    before = int(server.check_output(f"wc -l < {REQUEST_LOG}") or 0)
    wrong_key = "sk-agent-guess-0000000000000000000"
    assert chat(sandbox)["status"] == 200
    assert chat(sandbox, key=wrong_key)["status"] == 401
    assert sandbox_http(sandbox, f"{GATEWAY}/key/generate", "POST",
                        {"Authorization": f"Bearer {GATEWAY_KEY}", "Content-Type": "application/json"}, {})["status"] == 403
    # api_base is refused by LiteLLM's own check before the hook, api_key by the hook: both
    # answer 400 and are logged the same way.
    assert chat(sandbox, api_base=f"http://{DECOY_IP}:8000/v1")["status"] == 400
    assert chat(sandbox, api_key="sk-agent-own-account-000000000")["status"] == 400

    def new_records():
        records = [json.loads(line) for line in server.check_output(f"cat {REQUEST_LOG}").splitlines()[before:]]
        return records if len([r for r in records if r.get("refused")]) >= 4 and any(r["status"] == 200 for r in records) else None
    records = wait_for(new_records, 20)
    assert records, "the refusals are not in the request log"
    client = sandbox_ip(sandbox)
    served = [r for r in records if r["status"] == 200]
    assert served and not any(r.get("refused") for r in served), served
    refused = {r["refused"]: r for r in records if r.get("refused")}
    assert refused["key"]["status"] == 401 and refused["key"]["key_alias"] is None, refused
    assert refused["route"]["status"] == 403 and refused["route"]["path"] == "/key/generate", refused
    assert refused["client credentials: api_base"]["status"] == 400, refused
    assert refused["client credentials: api_key"]["status"] == 400 and refused["client credentials: api_key"]["key_alias"] == "openhands"
    assert {r["client"] for r in refused.values()} == {client}, refused
    text = server.file(REQUEST_LOG).content_string
    assert wrong_key not in text and GATEWAY_KEY not in text and PROVIDER_KEY not in text


def test_gateway_reached_from_containers_only(sandbox):
    assert sandbox_http(sandbox, f"{GATEWAY}/health/liveliness")["status"] == 200, "positive control"
    for outsider in (decoy, proxy):
        assert outsider.run(f"curl -s -m 4 -o /dev/null http://{SERVER_IP}:4000/health/liveliness").rc != 0


def test_gateway_runs_unprivileged_and_hardened():
    unit = "airlock-llm-gateway.service"
    assert server.service(unit).is_running and server.service(unit).is_enabled
    props = dict(line.split("=", 1) for line in server.check_output(
        f"systemctl show {unit} -p User -p NoNewPrivileges -p ProtectSystem -p CapabilityBoundingSet").splitlines())
    assert props["User"] == "airlock-llm" and props["NoNewPrivileges"] == "yes" and props["ProtectSystem"] == "strict"
    pid = server.check_output(f"systemctl show -p MainPID --value {unit}")
    assert server.check_output(f"ps -o user= -p {pid}").strip() == "airlock-llm"
    secrets = server.file(f"{GATEWAY_CONFIG_DIR}/secrets.env")
    assert secrets.user == "root" and secrets.mode == 0o600
    # Controls: the same user with the same commands reads its config and writes its log.
    assert server.run(f"runuser -u airlock-llm -- cat {GATEWAY_CONFIG_DIR}/config.yaml").rc == 0, "positive control"
    assert server.run("runuser -u airlock-llm -- touch /var/log/airlock-llm-gateway/requests.jsonl").rc == 0, \
        "positive control"
    assert server.run(f"runuser -u airlock-llm -- cat {GATEWAY_CONFIG_DIR}/secrets.env").rc != 0
    assert server.run(f"runuser -u airlock-llm -- touch {GATEWAY_CONFIG_DIR}/config.yaml").rc != 0


# ------------------------------------------------------------------------- the provider key
def test_provider_key_is_held_by_the_gateway_alone(sandbox):
    """Look for the provider key everywhere an agent or the app could read it: every
    container's configuration, environment and process environments, the app's state, the
    host's configuration, state and logs, the journal. The gateway's own secrets are the
    positive control: the same search finds the key there."""
    pattern = shlex.quote(PROVIDER_KEY)
    found = server.run(f"grep -rlF {pattern} {GATEWAY_CONFIG_DIR}")
    assert found.stdout.split() == [f"{GATEWAY_CONFIG_DIR}/secrets.env"], "positive control: the search does not find the key"
    gw_pid = server.check_output("systemctl show -p MainPID --value airlock-llm-gateway.service")
    assert server.run(f"grep -c -aF {pattern} /proc/{gw_pid}/environ").rc == 0, "positive control: the gateway lacks the key"

    containers = server.check_output("docker ps -q").split()
    assert len(containers) >= 2, "expected the app and at least one sandbox"
    for cid in containers:
        inspect = server.check_output(f"docker inspect {cid}")
        assert PROVIDER_KEY not in inspect, f"container {cid} is configured with the provider key"
        environ = server.run(f"docker exec {cid} sh -c 'cat /proc/[0-9]*/environ 2>/dev/null' | tr '\\0' '\\n'")
        assert environ.stdout and PROVIDER_KEY not in environ.stdout, f"a process in container {cid} holds the provider key"
    sandbox_search = in_sandbox(sandbox, f"grep -rlsF {pattern} /etc /root /tmp /var /home /opt /.openhands")
    assert sandbox_search.stdout.strip() == "", sandbox_search.stdout

    places = "/etc /var/lib/openhands /var/lib/docker/containers /var/log /run /tmp /var/tmp /root /home /opt /usr/local"
    leaks = server.run(f"grep -rlsF {pattern} {places}").stdout.split()
    assert [p for p in leaks if not p.startswith(GATEWAY_CONFIG_DIR + "/")] == [], leaks
    assert PROVIDER_KEY not in server.check_output("journalctl --no-pager -o cat -q"), "the provider key is in the journal"


# ------------------------------------------------------------------------- the network
def test_sandbox_cannot_reach_another_sandbox_directly(sandbox, other_sandbox):
    other_ip = server.check_output(
        "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' " + other_sandbox["name"]).strip()
    spec = {"kind": "tcp", "host": other_ip, "port": 8000}
    assert host_probe(spec)["ok"], "positive control: the other sandbox does not answer the host"
    assert not sandbox_probe(sandbox, spec)["ok"], "a sandbox reached another sandbox's agent server"


def app_probe(spec) -> dict:
    """One probe from inside the app container (on its own network, as the app calls its
    sandboxes)."""
    out = server.run(f"docker exec openhands-app python3 -c {shlex.quote(PROBE)} {shlex.quote(json.dumps(spec))}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def test_app_and_sandboxes_live_on_networks_apart(sandbox):
    networks = "docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}' "
    assert server.check_output(networks + "openhands-app").split() == ["airlock-app"]
    assert server.check_output(networks + sandbox["name"]).split() == ["bridge"]
    assert server.interface("br-airlock-app").exists


def test_sandbox_cannot_reach_another_sandbox_published_ports(sandbox, other_sandbox):
    """The app calls each sandbox at host.docker.internal:<published port> from its own
    network; a sandbox calling the same name and port (the agent-server, and the sandbox
    port range as a whole) is dropped at the host."""
    for port in sorted(set(other_sandbox["ports"].values())):
        spec = {"kind": "tcp", "host": "host.docker.internal", "port": int(port)}
        assert app_probe(spec)["ok"], f"positive control: the app does not reach the sandbox's port {port}"
        assert not sandbox_probe(sandbox, spec)["ok"], f"a sandbox reached another sandbox's published port {port}"
    own = {"kind": "tcp", "host": "host.docker.internal", "port": int(sandbox["ports"]["8000"])}
    assert app_probe(own)["ok"], "positive control: the app does not reach the first sandbox"
    assert not sandbox_probe(other_sandbox, own)["ok"], "the other sandbox reached the first one's published port"


@pytest.fixture()
def proxy_https_standin():
    """The proxy's HTTPS port: openssl s_server on the proxy client's 443 (and, to show the
    firewall turns the public port into 443, nothing on 8443), with the certificate for its
    public name that the app was given to trust (prepare.yml)."""
    unit = "airlock-test-proxy-https"
    proxy.check_output(f"systemd-run --unit {unit} openssl s_server -quiet -www -accept 443 "
                       "-cert /etc/airlock-test/proxy.crt -key /etc/airlock-test/proxy.key")
    assert wait_for(lambda: proxy.socket("tcp://0.0.0.0:443").is_listening, 15), "the HTTPS stand-in did not start"
    yield
    proxy.run(f"systemctl stop {unit}")


APP_HTTPS = """
import json, ssl, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        print(json.dumps({"status": r.status}))
except Exception as e:
    print(json.dumps({"status": 0, "error": f"{type(e).__name__}: {e}"}))
"""


def app_https(url: str, trust: bool = True) -> dict:
    env = "" if trust else "env -u SSL_CERT_FILE "
    out = server.run(f"docker exec openhands-app {env}python3 -c {shlex.quote(APP_HTTPS)} {shlex.quote(url)}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def test_the_app_reaches_the_proxy_at_the_public_url_and_sandboxes_do_not(sandbox, proxy_https_standin):
    """OpenHands calls its sandboxes at the URLs it hands out: the app, from its own network,
    reaches https://<public name>:<public port>/ (its name mapped to the proxy, the port
    translated to the proxy's 443, the proxy's certificate trusted), and without the trusted
    certificate the same call fails verification. A sandbox reaches the proxy nowhere: not
    at the address and port the app dials, not at the proxy's 443."""
    url = "https://proxy.airlock.test:8443/"
    assert app_https(url)["status"] == 200, app_https(url)
    untrusted = app_https(url, trust=False)
    assert untrusted["status"] == 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted["error"], untrusted
    for port in (8443, 443):
        spec = {"kind": "tcp", "host": PROXY_IP, "port": port}
        assert app_probe(spec)["ok"], f"positive control: the app does not reach the proxy at {PROXY_IP}:{port}"
        assert not sandbox_probe(sandbox, spec)["ok"], f"a sandbox reached the proxy at {PROXY_IP}:{port}"
    assert in_sandbox(sandbox, "getent hosts proxy.airlock.test").rc != 0, "the public name resolves in a sandbox"


def test_sandbox_cannot_reach_the_provider_or_anything_else(sandbox):
    spec = {"kind": "tcp", "host": LLM_IP, "port": 8000}
    assert host_probe(spec, user="airlock-llm")["ok"], "positive control: the gateway's user reaches the provider"
    assert not sandbox_probe(sandbox, spec)["ok"], "a sandbox reached the provider directly"
    resolver = {"kind": "dns", "server": LLM_IP, "name": "llm.airlock.test"}
    assert host_probe(resolver, user="unbound")["ok"], "positive control: the resolver answers the host (its local resolver, unbound)"
    assert not sandbox_probe(sandbox, resolver)["ok"], "a sandbox reached the resolver"


IMDS = "169.254.169.254"


@pytest.fixture()
def metadata_standin():
    """An instance metadata service stand-in: 169.254.169.254:80 on the decoy (an address of
    its own and a listener), routed there from the server and the proxy, as the VPC does."""
    unit = "airlock-test-imds"
    decoy.check_output(f"ip addr add {IMDS}/32 dev eth0")
    decoy.check_output(f"systemd-run --unit {unit} /usr/bin/python3 -m http.server 80 --bind {IMDS}")
    for host in (server, proxy):
        host.check_output(f"ip route replace {IMDS}/32 via {DECOY_IP}")
    assert wait_for(lambda: decoy.socket(f"tcp://{IMDS}:80").is_listening, 15), "the metadata stand-in did not start"
    yield {"kind": "tcp", "host": IMDS, "port": 80}
    for host in (server, proxy):
        host.run(f"ip route del {IMDS}/32")
    decoy.run(f"systemctl stop {unit}")
    decoy.run(f"ip addr del {IMDS}/32 dev eth0")


# The host-only routes below are attacked at rest and while a maintenance window is open (as
# during every site.yml run): opening one rebuilds the window's sets, and must not widen them.
WINDOW = {"kind": "tcp", "host": DECOY_IP, "port": 9000}  # test-mirror, the window's destination
STATES = ["at rest", "window open"]


@contextlib.contextmanager
def window_state(state: str):
    if state == "at rest":
        assert not host_probe(WINDOW)["ok"], "a maintenance window is open at rest"
        yield
        return
    server.check_output("airlock-egress-sets --open test-mirror")
    try:
        assert host_probe(WINDOW)["ok"], "positive control: the window did not open for the host"
        yield
    finally:
        server.check_output("airlock-egress-sets --close")


@pytest.mark.parametrize("state", STATES)
def test_instance_metadata_is_closed_to_the_host_and_sandboxes(sandbox, metadata_standin, state):
    """egress_firewall_metadata_access is off here (no Bedrock model): neither root on the
    host, nor the gateway's user, nor a sandbox reaches the metadata service, which answers
    the proxy over the same route (the control)."""
    spec = metadata_standin
    with window_state(state):
        assert probe(proxy, spec)["ok"], "positive control: the metadata stand-in does not answer the proxy"
        assert not host_probe(spec)["ok"], "root on the server reached the metadata service"
        assert not host_probe(spec, user="airlock-llm")["ok"], "the gateway's user reached the metadata service"
        assert not sandbox_probe(sandbox, spec)["ok"], "a sandbox reached the metadata service"


def test_maintenance_window_is_open_to_the_host_only(sandbox):
    """While a maintenance window is open (as during every site.yml run), the host reaches
    the window's destination and a sandbox, probing again and again, never does."""
    spec = WINDOW
    assert not host_probe(spec)["ok"], "the window is open before the test opened it"
    server.check_output("airlock-egress-sets --open test-mirror")
    try:
        for _ in range(5):
            assert host_probe(spec)["ok"], "positive control: the open window does not let the host through"
            assert not sandbox_probe(sandbox, spec)["ok"], "a sandbox went through the maintenance window"
    finally:
        server.check_output("airlock-egress-sets --close")
    assert not host_probe(spec)["ok"], "the window did not close"


@pytest.fixture()
def package_relay_standin():
    """The package relay's port on the proxy (3142, egress_firewall_package_relays) and the
    port next to it (3143, not listed): a listener on each, on the proxy client."""
    units = {port: f"airlock-test-relay-{port}" for port in (3142, 3143)}
    for port, unit in units.items():
        proxy.check_output(f"systemd-run --unit {unit} /usr/bin/python3 -m http.server {port} --bind {PROXY_IP}")
    for port in units:
        assert wait_for(lambda port=port: proxy.socket(f"tcp://{PROXY_IP}:{port}").is_listening, 15), \
            f"the relay stand-in on {port} did not start"
    yield
    for unit in units.values():
        proxy.run(f"systemctl stop {unit}")


@pytest.mark.parametrize("state", STATES)
def test_package_relay_is_open_to_the_host_only(sandbox, package_relay_standin, state):
    """The host (apt, as root) reaches the relay's address and port at all times; a sandbox,
    probing again and again, and the app's own network never do; and the host's rule is that
    port only (the listener beside it, which answers the proxy itself, stays closed)."""
    relay = {"kind": "tcp", "host": PROXY_IP, "port": 3142}
    beside = {"kind": "tcp", "host": PROXY_IP, "port": 3143}
    with window_state(state):
        assert probe(proxy, beside)["ok"], "positive control: the listener beside the relay does not answer the proxy"
        assert not host_probe(beside)["ok"], "the host reached a port of the proxy beside the relay's"
        for _ in range(3):
            assert host_probe(relay)["ok"], "positive control: the host does not reach the package relay"
            assert not sandbox_probe(sandbox, relay)["ok"], "a sandbox reached the package relay"
        assert not app_probe(relay)["ok"], "the app's container reached the package relay"


@pytest.mark.parametrize("state", STATES)
def test_host_service_is_open_to_root_only(sandbox, state):
    """A host service (egress_firewall_host_services: on AWS S3 and CloudWatch Logs) opens to
    root on the host, as egress_firewall_host_service_users says, and to nothing else: not
    another user of the host (nobody, the gateway's user), not a sandbox probing again and
    again, not the app's network; and the rule is that address and port only (the decoy's
    port 3000 beside it, which no rule opens, at rest or in a window)."""
    service = {"kind": "tcp", "host": DECOY_IP, "port": 9443}
    beside = {"kind": "tcp", "host": DECOY_IP, "port": 3000}
    with window_state(state):
        assert probe(proxy, service)["ok"] and probe(proxy, beside)["ok"], \
            "positive control: the decoy does not answer the proxy"
        assert not host_probe(beside)["ok"], "root reached a port of the decoy beside the host service's"
        for _ in range(3):
            assert host_probe(service)["ok"], "positive control: root on the host does not reach the host service"
            for user in ("nobody", "airlock-llm"):
                assert not host_probe(service, user)["ok"], f"{user} on the host reached the host service"
            assert not sandbox_probe(sandbox, service)["ok"], "a sandbox reached the host service"
        assert not app_probe(service)["ok"], "the app's container reached the host service"


# ------------------------------------------------------------------------- the app shield
APP = "host.docker.internal"


def test_sandbox_reaches_the_app_through_the_shield_only(sandbox):
    """The app's API (settings, conversations, secrets) answers the proxy; a sandbox gets its
    webhook routes and a 403 for the rest, and cannot go around the shield to the app's
    published address."""
    assert api("GET", "/api/v1/settings")[0] == 200, "positive control: the app does not answer the proxy"
    hook = sandbox_raw(sandbox, APP, 3000, "POST", "/api/v1/webhooks/events", {"kind": "boundary-test"})
    assert hook["status"] in (200, 201, 204), f"positive control: the shield refused the webhook route: {hook}"
    for method, path in (("GET", "/api/v1/settings"), ("GET", "/api/v1/app-conversations/search"),
                         ("GET", "/api/v1/webhooks/../settings"), ("GET", "/api/v1/webhooks/%2e%2e/settings"),
                         ("GET", "/api/v1/webhooks/..%2fsettings"), ("GET", "//api/v1/settings"),
                         ("GET", "/server_info"), ("GET", "/mcpx/mcp")):
        answer = sandbox_raw(sandbox, APP, 3000, method, path)
        assert answer["status"] == 403, f"{method} {path} from a sandbox answered {answer}"
    # The app's MCP server is passed (1.11.0 hands it to every conversation); the stand-in
    # has none, so the app's own answer (not the shield's 403) comes back.
    mcp = sandbox_raw(sandbox, APP, 3000, "POST", "/mcp/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert mcp["status"] not in (0, 403) and "airlock" not in mcp["body"], mcp


def test_sandbox_cannot_rewrite_the_llm_settings(sandbox):
    before = api("GET", "/api/v1/settings")[1]["agent_settings"]["llm"]
    evil = {"agent_settings_diff": {"llm": {"base_url": f"http://{DECOY_IP}:8000/v1", "model": "openai/intruder"}}}
    assert sandbox_raw(sandbox, APP, 3000, "POST", "/api/v1/settings", evil)["status"] == 403
    assert api("GET", "/api/v1/settings")[1]["agent_settings"]["llm"] == before


def test_sandbox_cannot_go_around_the_shield(sandbox):
    spec = {"kind": "tcp", "host": SERVER_IP, "port": 3000}
    assert probe(proxy, spec)["ok"], "positive control: the app's published address does not answer the proxy"
    assert not sandbox_probe(sandbox, spec)["ok"], "a sandbox reached the app's published address directly"
    gateway = {"kind": "tcp", "host": SERVER_IP, "port": 4000}
    assert probe(server, gateway)["ok"], "positive control: the gateway does not answer on the private address"
    assert sandbox_http(sandbox, f"{GATEWAY}/health/liveliness")["status"] == 200, "positive control: on the bridge"
    assert not sandbox_probe(sandbox, gateway)["ok"], "a sandbox reached the LLM gateway on the host's private address"
