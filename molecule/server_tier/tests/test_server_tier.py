"""Server tier behaviour: the server host reaches the approved LLM endpoint (as the LLM
gateway's user only) and nothing else; its sandbox containers reach the LLM through the
gateway and nothing beyond the host; only the proxy gets in; all of it survives restarts.

Every "blocked" check has a positive control: the same probe from the unfiltered proxy
container succeeds, so a check fails if the decoy is merely down.
"""
from __future__ import annotations

import json
import time

import pytest
import testinfra

from tier import (DECOY_IP, DECOY_IP6, GATEWAY_KEY, GATEWAY_USER, KEY, LLM_IP,
                  SERVER_IP, http, probe, start_sandbox, wait_for)

server = testinfra.get_host("docker://server_tier-server")
llm = testinfra.get_host("docker://server_tier-llm")
decoy = testinfra.get_host("docker://server_tier-decoy")
proxy = testinfra.get_host("docker://server_tier-proxy")

BLOCKED_PROBES = [
    {"kind": "tcp", "host": DECOY_IP, "port": 8000},
    {"kind": "tcp", "host": DECOY_IP, "port": 9000},
    {"kind": "udp", "host": DECOY_IP, "port": 9001},
    {"kind": "udp", "host": DECOY_IP, "port": 123},
    {"kind": "ping", "host": DECOY_IP},
    {"kind": "tcp", "host": DECOY_IP6, "port": 8000},
    {"kind": "ping", "host": DECOY_IP6},
    {"kind": "dns", "server": DECOY_IP, "name": "decoy.airlock.test"},
]


def llm_requests() -> list:
    return json.loads(llm.check_output("curl -s http://127.0.0.1:8000/_requests"))


def sandbox_probe(info, spec):
    status, result = http(proxy, f"http://{SERVER_IP}:{info['ports']['8000']}/probe", "POST", spec, timeout=15)
    assert status == 200, result
    return result


@pytest.fixture(scope="module")
def sandbox():
    started = time.time()
    info = start_sandbox(proxy, [f"http://{DECOY_IP}:8000/", f"http://{LLM_IP}:8000/health"])
    info["started"] = started  # the provider's records of this sandbox's calls come after it
    yield info
    http(proxy, f"http://{SERVER_IP}:3000/api/stand-in/sandboxes/{info['id']}", "DELETE")


# ----------------------------------------------------------------------------- the host
def test_only_the_gateway_user_reaches_the_llm():
    """The LLM endpoint opens to the gateway's user (meta skuid) and to no other process of
    the host: the same request as root is refused, as the gateway's user it is answered."""
    # The header comes from stdin: on a command line, the key would land in the journal
    # (PAM records runuser's command line with its session lines).
    gw = server.run(f"printf 'Authorization: Bearer %s' {KEY} | runuser -u airlock-llm -- curl -sS -m 5 -H @- "
                    f"-d '{{\"model\": \"m\", \"stream\": true}}' http://{LLM_IP}:8000/v1/chat/completions")
    assert gw.rc == 0 and "data: [DONE]" in gw.stdout, f"positive control: the gateway's user is refused: {gw.stderr}"
    assert any(r["source"] == SERVER_IP and r["stream"] for r in llm_requests())
    assert http(server, f"http://{LLM_IP}:8000/v1/models", timeout=4)[0] == 0, "root reached the LLM endpoint"
    assert not probe(server, {"kind": "tcp", "host": LLM_IP, "port": 8000})["ok"]


@pytest.mark.parametrize("spec", BLOCKED_PROBES, ids=lambda s: f"{s['kind']}-{s.get('host', s.get('server'))}-{s.get('port', '')}")
def test_host_cannot_reach_the_decoy(spec):
    assert probe(proxy, spec)["ok"], f"positive control failed: the decoy does not answer {spec}"
    assert not probe(server, spec)["ok"], f"server reached the decoy: {spec}"


def test_dns_only_through_the_configured_resolver():
    """Only the local resolver's user (unbound) queries the configured resolver; the host
    resolves through unbound (test_dns_channel.py has the refusals)."""
    answer = probe(server, {"kind": "dns", "server": LLM_IP, "name": "llm.airlock.test"}, "unbound")
    assert answer["ok"] and answer["answers"] == [LLM_IP]
    assert not probe(server, {"kind": "dns", "server": LLM_IP, "name": "llm.airlock.test"})["ok"], "root queried the resolver directly"
    assert server.check_output("getent hosts llm.airlock.test").split()[0] == LLM_IP


def test_drops_are_counted_by_the_logging_rule():
    """The kernel does not emit nft log lines from a container's network namespace
    (nf_log_all_netns=0), so the proof here is the logging rule's own counter."""
    def packets():
        rules = json.loads(server.check_output("nft -j list chain inet airlock egress_drop"))["nftables"]
        for item in rules:
            exprs = item.get("rule", {}).get("expr", [])
            if any("log" in e and e["log"].get("prefix", "").startswith("AIRLOCK-EGRESS-DROP") for e in exprs):
                return next(e["counter"]["packets"] for e in exprs if "counter" in e)
        raise AssertionError("no AIRLOCK-EGRESS-DROP logging rule")
    before = packets()
    # The logging rule is rate limited (10/minute, burst 10) and the counter sits behind the
    # limit: after earlier drops have used the burst, a token frees up every 6 s.
    assert wait_for(lambda: probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 9000}) and packets() > before, 40)


# ----------------------------------------------------------------------------- sandboxes
def test_sandbox_called_the_llm_through_the_gateway(sandbox):
    """The sandbox's LLM call goes to the gateway with the gateway key; the provider sees the
    provider key (and never the gateway key), and the sandbox cannot reach the provider itself."""
    info = wait_for(lambda: (lambda i: i if i.get("report") else None)(
        http(proxy, f"http://{SERVER_IP}:3000/api/stand-in/sandboxes/{sandbox['id']}")[1]), 30)
    report = info["report"]
    assert report["llm"]["ok"] and report["llm"]["status"] == 200, report
    assert report["llm"]["url"] == "http://host.docker.internal:4000/v1/chat/completions", report["llm"]
    assert not report["probes"][f"http://{LLM_IP}:8000/health"]["ok"], "the sandbox reached the provider directly"
    assert not report["probes"][f"http://{DECOY_IP}:8000/"]["ok"]
    assert probe(proxy, {"kind": "http", "url": f"http://{LLM_IP}:8000/health"})["ok"], "positive control: the provider is down"
    # What the provider received since this sandbox started (its records of earlier runs, a
    # restored mutant's say, are not this call's).
    seen = [r for r in llm_requests() if r.get("time", 0) >= sandbox["started"] - 1]
    assert any(r["source"] == SERVER_IP and r["authorization"] == f"Bearer {KEY}" and r["model"] == "fake-model" for r in seen)
    assert not any(GATEWAY_KEY in (r["authorization"] or "") for r in seen), "the provider saw the gateway key"


def bridge_gateway() -> str:
    """The address of docker0 (Docker 20.10 leaves the gateway out of `network inspect`)."""
    return server.check_output("ip -4 -o addr show dev docker0").split()[3].split("/")[0]


def test_sandbox_and_app_reach_each_other_through_the_bridge_gateway(sandbox):
    """V1 topology: the sandbox posts its events to the app at host.docker.internal:3000 and
    the app health-checks the sandbox at host.docker.internal:<published port>; both cross
    the server's input chain (Docker does not DNAT traffic from its own bridge)."""
    info = wait_for(lambda: (lambda i: i if i.get("report") else None)(
        http(proxy, f"http://{SERVER_IP}:3000/api/stand-in/sandboxes/{sandbox['id']}")[1]), 30)
    hook = info["report"]["webhook"]
    assert hook["ok"] and hook["url"] == "http://host.docker.internal:3000/api/v1/webhooks/events", hook
    assert info["webhooks_received"] >= 1
    assert info["health_from_app"]["ok"], info["health_from_app"]


def test_sandbox_reaches_no_other_host_port(sandbox):
    """Only the callback port and the sandbox range are open from containers: a service
    listening on every address of the host answers the host itself, not a sandbox."""
    gateway = bridge_gateway()
    server.check_output("systemd-run --unit airlock-test-listener python3 -m http.server 9099")
    try:
        assert wait_for(lambda: server.run(f"curl -s -m 3 -o /dev/null http://{gateway}:9099/").rc == 0, 15), \
            "positive control: the listener does not answer on the gateway"
        assert not sandbox_probe(sandbox, {"kind": "tcp", "host": gateway, "port": 9099})["ok"]
    finally:
        server.run("systemctl stop airlock-test-listener")
    assert sandbox_probe(sandbox, {"kind": "tcp", "host": gateway, "port": 3000})["ok"]


@pytest.mark.parametrize("spec", [s for s in BLOCKED_PROBES if ":" not in s.get("host", "")],
                         ids=lambda s: f"{s['kind']}-{s.get('host', s.get('server'))}-{s.get('port', '')}")
def test_sandbox_cannot_reach_the_decoy(sandbox, spec):
    assert probe(proxy, spec)["ok"], f"positive control failed: {spec}"
    assert not sandbox_probe(sandbox, spec)["ok"], f"sandbox reached the decoy: {spec}"


def test_sandbox_has_no_ipv6_route_out(sandbox):
    # The inner Docker bridge has no IPv6 here, so this only shows there is no IPv6 way out in
    # this deployment; it would pass without the firewall. That the ruleset closes a real IPv6
    # path (positive control: the path works without it, and for the app through it) is
    # proven in network namespaces: tests/host/test_egress_app_proxy_netns.py.
    assert not sandbox_probe(sandbox, {"kind": "tcp", "host": DECOY_IP6, "port": 8000})["ok"]


def test_sandbox_resolves_nothing(sandbox):
    """No DNS leaves a sandbox, not even to the host's configured resolver (no tunnel in
    query names): the same query from the host is answered."""
    spec = {"kind": "dns", "server": LLM_IP, "name": "llm.airlock.test"}
    host_answer = probe(server, spec, "unbound")  # the host's one user allowed to query it
    assert host_answer["ok"] and host_answer["answers"] == [LLM_IP], "positive control: the resolver does not answer the host"
    assert not sandbox_probe(sandbox, spec)["ok"], "a sandbox resolved a name through the configured resolver"


def test_sandbox_reaches_the_llm_through_the_gateway(sandbox):
    result = sandbox_probe(sandbox, {"kind": "llm"})
    assert result["ok"] and result["status"] == 200, result


# ----------------------------------------------------------------------------- inbound
def test_app_and_sandbox_ports_from_the_proxy_only(sandbox):
    port = sandbox["ports"]["8000"]
    assert http(proxy, f"http://{SERVER_IP}:3000/alive")[0] == 200
    assert http(proxy, f"http://{SERVER_IP}:{port}/alive")[0] == 200
    assert http(decoy, f"http://{SERVER_IP}:3000/alive", timeout=3)[0] == 0
    assert http(decoy, f"http://{SERVER_IP}:{port}/alive", timeout=3)[0] == 0


def test_ssh_port_from_the_proxy_only():
    """The scenario's server runs no sshd, so a closed port 22 alone would prove nothing: a
    listener stands in for it during the test, answers the proxy (an SSH source) and not
    the decoy."""
    unit = "airlock-test-ssh-standin"
    listening = server.socket("tcp://0.0.0.0:22").is_listening
    if not listening:
        server.check_output(f"systemd-run --unit {unit} /usr/bin/python3 -m http.server 22 --bind 0.0.0.0")
        assert wait_for(lambda: server.socket("tcp://0.0.0.0:22").is_listening, 15), "the port 22 stand-in did not start"
    try:
        assert proxy.run(f"nc -z -w 3 {SERVER_IP} 22").rc == 0, "positive control: port 22 does not answer the proxy"
        assert decoy.run(f"nc -z -w 3 {SERVER_IP} 22").rc != 0, "port 22 answered the decoy"
    finally:
        if not listening:
            server.run(f"systemctl stop {unit}")


def test_websocket_from_the_proxy():
    """The app's websocket opens (101) from the proxy and echoes a text frame. The client is
    tools/probes/ws_client.py (the websockets library: python3-websockets on the proxy,
    Debian 12's 10.4): a handshake answered with anything but 101 prints that status."""
    out = proxy.check_output(f"ws-client {SERVER_IP} /sockets/events --scheme ws --port 3000 --message hi")
    assert out == "HTTP/1.1 101 Switching Protocols\nstand-in echo: hi"


# ----------------------------------------------------------------------------- deployment
def test_settings_seeded_and_key_kept_out_of_sight():
    status, settings = http(proxy, f"http://{SERVER_IP}:3000/api/v1/settings")
    assert status == 200 and settings["agent_settings"]["llm"]["model"] == "openai/fake-model" and settings["llm_api_key_set"]
    assert settings["agent_settings"]["llm"]["base_url"] == "http://host.docker.internal:4000/v1"
    assert settings["agent_settings"]["llm"]["api_key"] is None
    assert settings["user_consents_to_analytics"] is False
    env = server.file("/etc/openhands/openhands.env")
    assert env.mode == 0o600 and env.user == "root" and f"LLM_API_KEY={GATEWAY_KEY}" in env.content_string
    assert KEY not in env.content_string, "the app holds the provider key"
    assert KEY not in server.check_output("ps -eo args")
    assert KEY not in server.file("/etc/systemd/system/openhands-app.service").content_string
    assert server.file("/var/lib/openhands/settings.json").mode == 0o600


def test_app_published_on_the_private_address_only_and_shielded_on_the_bridge_gateway():
    ports = server.check_output("docker port openhands-app 3000/tcp")
    assert ports.split() == [f"{SERVER_IP}:3000"]
    assert server.service("airlock-app-shield").is_running and server.service("airlock-app-shield").is_enabled
    assert server.socket(f"tcp://{bridge_gateway()}:3000").is_listening


def test_hostname_endpoint_follows_its_address():
    records = "/etc/airlock-test-dns.json"
    try:
        llm.run(f"echo '{{\"llm.airlock.test\": [\"{DECOY_IP}\"]}}' > {records}")
        # The host's resolver (unbound) keeps the old answer for its TTL (5 s): forget it.
        server.check_output("unbound-control flush llm.airlock.test")
        assert not probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 8000}, GATEWAY_USER)["ok"]
        server.check_output("systemctl start airlock-egress-refresh.service")
        assert probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 8000}, GATEWAY_USER)["ok"], "new address not followed"
        assert not probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 8000})["ok"], "root reached an LLM endpoint"
        assert not probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 9000}, GATEWAY_USER)["ok"], "only the endpoint port opens"
    finally:
        llm.run(f"echo '{{\"llm.airlock.test\": [\"{LLM_IP}\"]}}' > {records}")
        server.run("unbound-control flush llm.airlock.test")
        server.run("systemctl start airlock-egress-refresh.service")
    assert not probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 8000}, GATEWAY_USER)["ok"], "old address not dropped"


def test_maintenance_window_closed_in_steady_state():
    shown = json.loads(server.check_output("airlock-egress-sets --show"))
    assert shown["maintenance_open"] == [] and shown["maintenance_v4"] == []


def _service_back():
    return (server.run("nft list table inet airlock").rc == 0
            and server.service("openhands-app").is_running
            and http(proxy, f"http://{SERVER_IP}:3000/alive")[0] == 200
            and http(server, "http://127.0.0.1:4000/health/liveliness")[0] == 200)


def test_rules_service_and_state_survive_a_docker_restart():
    server.check_output("systemctl restart docker")
    assert wait_for(_service_back, 90), "service or rules not back after docker restart"
    assert http(proxy, f"http://{SERVER_IP}:3000/api/v1/settings")[1]["agent_settings"]["llm"]["model"] == "openai/fake-model"
    info = start_sandbox(proxy)
    assert sandbox_probe(info, {"kind": "llm"})["ok"]
    assert not sandbox_probe(info, {"kind": "tcp", "host": DECOY_IP, "port": 9000})["ok"]


def test_rules_service_and_state_survive_a_host_restart():
    import subprocess
    subprocess.run(["docker", "restart", "server_tier-server"], check=True, capture_output=True)
    assert wait_for(lambda: server.run("systemctl is-system-running --wait").rc in (0, 1), 90)
    assert wait_for(_service_back, 180), "service, gateway or rules not back after host restart"
    assert http(proxy, f"http://{SERVER_IP}:3000/api/v1/settings")[1]["llm_api_key_set"]
    assert wait_for(lambda: [["10.213.5.20/32", 8000]] == json.loads(
        server.check_output("airlock-egress-sets --show"))["llm_hosts_v4"], 60), "name-based set not refilled at boot"
    assert not probe(server, {"kind": "tcp", "host": DECOY_IP, "port": 9000})["ok"]
    info = start_sandbox(proxy)
    assert sandbox_probe(info, {"kind": "llm"})["ok"]
    assert not sandbox_probe(info, {"kind": "tcp", "host": DECOY_IP, "port": 9000})["ok"]
