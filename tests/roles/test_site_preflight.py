"""site.yml checks every role's input on every host before any host changes.

A mistake in a server-tier value (an NTP server that is not an address, which only the
server's egress firewall checks) used to be refused after the proxy play had already
written its configuration. The preflight play runs each tier's role checks first, every
host side by side; its verdict play stops the run on every host when one host failed: the
run stops, naming the variable, before the proxy tier's play starts.

Two local hosts stand in for the tiers (a proxy and a server, both this machine, nothing
configured: every run is limited to `--tags airlock_preflight`): with valid input the run
passes with nothing changed and goes on to the tier plays (the positive control); with one
bad value it fails in the preflight and the proxy tier's play never starts.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# The first task of each tier role (tasks/main.yml): it ends the play when the run's tags
# select none of the tier's roles.
TIERS_PLAY = "PLAY [Both tiers side by side"  # site.yml's play of the two tiers
GATE = "End this host's run of the tier when the run's tags select none of its roles"

GOOD = {
    "airlock_authorized_cidrs": ["203.0.113.0/24"],
    "airlock_admin_cidrs": ["203.0.113.10/32"],
    "airlock_public_hostname": "openhands.example.org",
    "airlock_public_url": "https://openhands.example.org",
    "airlock_openhands_address": "10.0.1.10",
    "airlock_openhands_port": 3000,
    "airlock_proxy_private_address": "10.0.0.10",
    "airlock_sandbox_port_range": {"start": 32768, "end": 60999},
    "airlock_users": [{"name": "alice", "password": "a-long-enough-password-1"}],
    "airlock_ntp_servers": ["169.254.169.123"],
    "airlock_dns_servers": ["10.0.0.2"],
    "airlock_llm_endpoints": [{"name": "openai", "hosts": ["api.openai.com"], "port": 443}],
    "airlock_llm_model": "openai/gpt-4o",
    "airlock_llm_base_url": "https://api.openai.com/v1",
    "airlock_llm_api_key": "sk-preflight-test-provider-key",
    "airlock_llm_gateway_port": 4000,
    "airlock_llm_gateway_key": "sk-preflight-test-gateway-key-0123456789",
    "airlock_alert_sinks": [{"type": "log", "path": "/var/log/airlock/alerts.jsonl"}],
    "airlock_backup_password": "preflight-test-backup-password",
}


def inventory(tmp_path: Path, extra: dict, group_overrides: dict | None = None) -> Path:
    """An inventory of a proxy and two servers (all this machine), built as every provider's
    is: the airlock_* values, and the shared mapping onto the roles linked into
    group_vars/<group>/00-airlock.yml. `extra` is set on the first server only, so the second
    one's preflight passes: one bad host must stop them all. `group_overrides` ({group:
    vars}) go to a later file of that group's group_vars, as an operator would put them."""
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    local = {"ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": sys.executable}
    (inv / "hosts.yml").write_text(json.dumps({"all": {"vars": GOOD, "children": {
        "proxy": {"hosts": {"preflight-proxy": local}},
        "openhands": {"hosts": {"preflight-server": {**local, **extra}, "preflight-server2": local}}}}}))
    for group in ("proxy", "openhands"):
        (inv / "group_vars" / group).mkdir()
        (inv / "group_vars" / group / "00-airlock.yml").symlink_to(ROOT / "inventories" / "common" / "group_vars" / f"{group}.yml")
        if group in (group_overrides or {}):
            (inv / "group_vars" / group / "local.yml").write_text(json.dumps(group_overrides[group]))
    return inv


def ansible(tool: str, inv: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(ROOT / ".venv" / "bin" / tool), "-i", str(inv), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def site(tmp_path: Path, extra: dict, *args: str, group_overrides: dict | None = None) -> subprocess.CompletedProcess:
    """site.yml on the inventory above."""
    return ansible("ansible-playbook", inventory(tmp_path, extra, group_overrides), str(ROOT / "site.yml"), *args)


def changed(output: str) -> dict:
    return {host: int(n) for host, n in re.findall(r"^(preflight-[\w-]+)\s*:.*?changed=(\d+)", output, re.M)}


def test_valid_input_passes_the_preflight_and_changes_nothing(tmp_path):
    res = site(tmp_path, {}, "--tags", "airlock_preflight")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "PLAY [Preflight verdict" in res.stdout and TIERS_PLAY in res.stdout
    assert changed(res.stdout) == {"preflight-proxy": 0, "preflight-server": 0, "preflight-server2": 0}, res.stdout[-2000:]
    # The check alone was asked for: it selects no tier's role, so each host's tier ends at
    # its gate (the preflight plays checked every input), its roles' own copies of the checks
    # do not run again. What runs before the gate: Ansible's validation of the tier role's
    # own arguments, and the tier's own checks.
    ran = results(res.stdout[res.stdout.index(TIERS_PLAY):res.stdout.index("PLAY RECAP")])
    assert set(ran) == {"preflight-proxy", "preflight-server", "preflight-server2"}, ran
    for host, tasks in ran.items():
        assert tasks and all(t.startswith(("proxy_tier : ", "server_tier : ")) for t in tasks), (host, tasks)


def results(section: str) -> dict[str, list[str]]:
    """The tasks each host ran (an ok or changed result) in a section of a run's output, under
    any strategy: the default callback prints a task's header again before a result when
    another task's header came last (the free strategy interleaves the hosts)."""
    ran: dict[str, list[str]] = {}
    task = None
    for line in section.splitlines():
        m = re.match(r"^TASK \[(.*?)\]", line)
        if m:
            task = re.sub(r" - .*", "", m.group(1))
            continue
        m = re.match(r"^(?:ok|changed): \[([^\]]+?)\]", line)
        if m and task:
            host = m.group(1).split(" -> ")[0]
            if task not in ran.setdefault(host, []):
                ran[host].append(task)
    return ran


def test_an_unreachable_host_stops_the_run_before_any_host_changes(tmp_path, monkeypatch):
    """A host the preflight cannot reach (SSH to a closed port on this machine) is out of the
    run like a refused one: the verdict stops the others before the tier plays, whose first
    play would otherwise start on the proxy. The control, first: the same inventory with that
    host reachable goes on to the tier plays."""
    # No facts from this session's cache: with them, nothing would need to reach the host.
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN", "ansible.builtin.memory")
    control = site(tmp_path / "control", {}, "--tags", "airlock_preflight")
    assert control.returncode == 0 and TIERS_PLAY in control.stdout, control.stdout[-3000:]
    unreachable = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
                   "ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no"}
    res = site(tmp_path, unreachable, "--tags", "airlock_preflight")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert re.search(r"^preflight-server\s*:.*unreachable=1", res.stdout, re.M), res.stdout[-2000:]
    assert TIERS_PLAY not in out, "a tier play started after a host was unreachable"
    assert all(n == 0 for n in changed(res.stdout).values()), res.stdout[-2000:]


def preflight_plays(tmp_path: Path) -> Path:
    """site.yml's preflight plays alone (its first two), as a playbook of their own: a run
    with a role's tag then checks, and never configures this machine whatever it lets through."""
    plays = yaml.safe_load((ROOT / "site.yml").read_text())
    assert all(p["name"].startswith("Preflight") for p in plays[:2]), [p["name"] for p in plays]
    path = tmp_path / "preflight.yml"  # roles and plugins come from ansible.cfg's paths
    path.write_text(yaml.safe_dump(plays[:2], sort_keys=False))
    return path


@pytest.mark.parametrize("tags,refused", [("fail2ban", False), ("nginx_proxy,host_baseline", False),
                                          ("egress_firewall", True), ("egress_firewall_ruleset", True),
                                          ("server_tier", True), ("airlock_preflight", True)])
def test_a_drift_fix_checks_the_roles_its_tags_select(tmp_path, tags, refused):
    """A bad egress firewall value (an NTP server that is not an address) is refused by a run
    whose tags select the egress firewall (its tag, a sub-tag, its tier, the check alone: the
    controls), and not by a drift fix of proxy roles, which does not run the firewall."""
    res = ansible("ansible-playbook", inventory(tmp_path, {"airlock_ntp_servers": ["time.example.org"]}),
                  str(preflight_plays(tmp_path)), "--tags", tags)
    out = res.stdout + res.stderr
    assert (res.returncode != 0) == refused, out[-3000:]
    assert ("egress_firewall_ntp_servers" in out) == refused, out[-3000:]
    assert all(n == 0 for n in changed(res.stdout).values()), res.stdout[-2000:]


def assert_refused_naming(res: subprocess.CompletedProcess, variable: str, role_variable: str, airlock: str) -> None:
    """Refused in the preflight (the proxy tier's play never started, nothing changed),
    naming the role's variable and the airlock_* value the shared mapping sets it from."""
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert variable in out, out[-4000:]
    assert re.search(rf"{role_variable} is set from [a-z0-9_, ]*\b{airlock}\b", out), out[-4000:]
    assert TIERS_PLAY not in out, "the proxy tier's play started before the input was refused"
    assert all(n == 0 for n in changed(res.stdout).values()), res.stdout[-2000:]


@pytest.mark.parametrize("extra,variable,role_variable", [
    ({"airlock_ntp_servers": ["time.example.org"]}, "egress_firewall_ntp_servers", "egress_firewall_ntp_servers"),
    ({"airlock_openhands_port": 0}, "openhands_port", "openhands_port"),
    ({"airlock_llm_gateway_key": ""}, "llm_gateway_keys", "llm_gateway_keys"),
    ({"airlock_dns_servers": ["resolver.example.org"]}, "dns_resolver_upstreams", "dns_resolver_upstreams"),
    ({"airlock_backup_password": "short"}, "backup_restic_password is too short", "backup_restic_password"),
    ({"airlock_host_services": [{"name": "s3"}]}, "egress_firewall_host_services[0] (s3) needs hosts or cidrs",
     "egress_firewall_host_services"),
])
def test_a_server_tier_mistake_stops_the_run_before_the_proxy_changes(tmp_path, extra, variable, role_variable):
    """Refused in the preflight, naming the role's variable and the airlock_* value the user
    set, which the shared mapping turns into it."""
    # --tags airlock_preflight: the preflight runs whole (its tasks are tagged always), and
    # should it ever let a mistake through, the later plays run their always-tagged tasks
    # alone (checks and facts), so this machine is never configured by the test.
    res = site(tmp_path, extra, "--tags", "airlock_preflight")
    assert_refused_naming(res, variable, role_variable, *extra)


@pytest.mark.parametrize("extra,variable,role_variable", [
    ({"airlock_public_hostname": "open hands"}, "nginx_proxy_server_name", "nginx_proxy_server_name"),
    ({"airlock_users": [{"name": "alice", "password": "short"}]}, "nginx_proxy_users", "nginx_proxy_users"),
], ids=["server-name", "users"])
def test_a_proxy_tier_mistake_names_the_airlock_value_behind_it(tmp_path, extra, variable, role_variable):
    """The same for the proxy tier's roles: the airlock_* value (given with -e here, so the
    proxy sees it) is named beside the role's variable, and nothing changes."""
    res = site(tmp_path, {}, "--tags", "airlock_preflight", "-e", json.dumps(extra))
    assert_refused_naming(res, variable, role_variable, *extra)


@pytest.mark.parametrize("tier,values,message", [
    ("openhands", {"openhands_docker_install_method": "snap"},
     "value of openhands_docker_install_method must be one of: distribution, docker_repo, got: snap"),
    ("openhands", {"openhands_health_retries": "many"},
     "argument 'openhands_health_retries' is of type str and we were unable to convert to int"),
    ("proxy", {"nginx_proxy_htpasswd_hash_scheme": "md5"},
     "value of nginx_proxy_htpasswd_hash_scheme must be one of: sha512_crypt, sha256_crypt, bcrypt, got: md5"),
    # The tier's own value (server_tier's tasks/assert.yml and its preflight spec).
    ("openhands", {"server_tier_proxy_wait_timeout": "soon"},
     "argument 'server_tier_proxy_wait_timeout' is of type str and we were unable to convert to int"),
    ("openhands", {"server_tier_proxy_wait_timeout": 0}, "server_tier_proxy_wait_timeout is 0: it must be a whole"),
], ids=["server-choice", "server-type", "proxy-choice", "tier-type", "tier-value"])
def test_a_value_its_roles_argument_specs_refuse_is_refused_in_the_preflight(tmp_path, tier, values, message):
    """A value of the wrong type, or not one of its choices, that no check of the role's
    tasks/assert.yml looks at: refused by the role's argument specs (meta/argument_specs.yml,
    entry point main) in the preflight, naming the variable, before any play changes
    anything. It used to pass the preflight, which ran the roles' checks without their specs,
    and be refused only when the tier's play started the role (a server's value after the
    proxy tier's play had run). The server's value is set on the first server alone (one bad
    host stops them all); the proxy's in the inventory's group_vars/proxy/, as an operator would.
    (test_valid_input_passes_the_preflight_and_changes_nothing is the control.)"""
    if tier == "openhands":
        res = site(tmp_path, values, "--tags", "airlock_preflight")
    else:
        res = site(tmp_path, {}, "--tags", "airlock_preflight", group_overrides={tier: values})
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert TIERS_PLAY not in out, "the proxy tier's play started before the input was refused"
    assert message in out, out[-4000:]
    # The inventory set the role's own variable, which the shared mapping does not set: no
    # airlock_* value is named for it (the control of the test above).
    assert " is set from " not in out, out[-4000:]
    assert all(n == 0 for n in changed(res.stdout).values()), res.stdout[-2000:]


@pytest.mark.parametrize("admin,refused", [(["203.0.113.0/24"], True), (["203.0.0.0/16"], True),
                                           (["203.0.113.10/32"], False)])
def test_an_admin_list_that_exempts_every_authorized_address_is_refused(tmp_path, admin, refused):
    """fail2ban never bans airlock_admin_cidrs: a list covering all of the authorized CIDRs
    means nobody who can reach the proxy could ever be banned. One operator's /32 is fine
    (the control)."""
    res = site(tmp_path, {}, "--tags", "airlock_preflight", "-e", json.dumps({"airlock_admin_cidrs": admin}))
    out = res.stdout + res.stderr
    if refused:
        assert res.returncode != 0 and "airlock_admin_cidrs covers every entry of airlock_authorized_cidrs" in out, out[-3000:]
        assert TIERS_PLAY not in out
    else:
        assert res.returncode == 0, out[-3000:]


DUAL_STACK = ["203.0.113.0/24", "2001:db8::/64"]


@pytest.mark.parametrize("authorized,admin,refused", [
    # With an IPv6 entry authorized, 0.0.0.0/0 does not cover the list: only its own check refuses it.
    (DUAL_STACK, ["0.0.0.0/0"], "0.0.0.0/0"),
    (["203.0.113.0/24"], ["::/0"], "::/0"),
    (DUAL_STACK, ["203.0.113.10/32", "0.0.0.0/0.0.0.0"], "0.0.0.0/0.0.0.0"),
    # The control: the operators' own addresses, one of each IP version.
    (DUAL_STACK, ["203.0.113.10/32", "2001:db8::10/128"], None),
], ids=["ipv4-world-beside-ipv6", "ipv6-world", "ipv4-world-as-netmask", "operators-own"])
def test_a_never_ban_entry_of_prefix_length_0_is_refused_naming_airlock_admin_cidrs(tmp_path, authorized, admin, refused):
    """An airlock_admin_cidrs entry of prefix length 0 exempts every address of its IP version
    from bans, whatever airlock_authorized_cidrs holds: refused in the proxy tier's preflight,
    naming the shared variable (and the role's it is mapped onto), before any host changes."""
    extra = {"airlock_authorized_cidrs": authorized, "airlock_admin_cidrs": admin}
    res = site(tmp_path, {}, "--tags", "airlock_preflight", "-e", json.dumps(extra))
    out = res.stdout + res.stderr
    if refused:
        assert res.returncode != 0, out[-3000:]
        assert f"airlock_admin_cidrs (fail2ban_ignoreip) holds {refused}, which covers every IPv4 or IPv6 address" in out, \
            out[-3000:]
        assert TIERS_PLAY not in out
        assert all(n == 0 for n in changed(res.stdout).values()), res.stdout[-2000:]
    else:
        assert res.returncode == 0, out[-3000:]
        assert changed(res.stdout) == {"preflight-proxy": 0, "preflight-server": 0, "preflight-server2": 0}, res.stdout[-2000:]


def test_every_provider_loads_the_one_shared_mapping():
    """The lab and AWS inventories map the airlock_* values onto the roles with the same file
    (a link in each group's group_vars, loaded first so the inventory's own files can
    override it), and site.yml itself sets no variable: nothing above the inventory."""
    for provider in ("lab", "lab-ssh", "aws"):
        for group in ("proxy", "openhands"):
            link = ROOT / "inventories" / provider / "group_vars" / group / "00-airlock.yml"
            assert link.is_symlink(), f"{link} is not a link to the shared mapping"
            assert link.resolve() == ROOT / "inventories" / "common" / "group_vars" / f"{group}.yml"
            assert sorted(p.name for p in link.parent.iterdir())[0] == link.name, "the mapping must load first"
    plays = yaml.safe_load((ROOT / "site.yml").read_text())
    assert all(not {"vars", "vars_files", "vars_prompt"} & set(play) for play in plays), "site.yml sets play variables"


def test_the_lab_over_ssh_connects_with_the_aws_inventorys_own_files():
    """The lab's SSH variant reaches its hosts exactly as the AWS inventory does: both link
    the same connection files (login user, ProxyJump, the sshd allow list), and the SSH
    lab's shared values are the lab's own files, not copies."""
    for group in ("proxy", "openhands"):
        for provider in ("aws", "lab-ssh"):
            link = ROOT / "inventories" / provider / "group_vars" / group / "10-ssh.yml"
            assert link.is_symlink() and link.resolve() == ROOT / "inventories" / "common" / "connection" / f"{group}.yml"
    for name in ("airlock.yml", "lab.yml"):
        link = ROOT / "inventories" / "lab-ssh" / "group_vars" / "all" / name
        assert link.is_symlink() and link.resolve() == ROOT / "inventories" / "lab" / "group_vars" / "all" / name


@pytest.mark.parametrize("user", ["ubuntu", "ops"])
def test_the_connection_files_admit_the_login_user_alone_through_the_jump_host(tmp_path, user):
    """The AWS inventory's connection files (linked as group_vars/<tier>/10-ssh.yml, after
    the mapping), as an operator's inventory loads them: both tiers log in as
    airlock_ssh_user, sshd there admits that user alone (host_baseline_ssh_allow_users), and
    the server is reached through the first proxy's address (ProxyJump). A login user other
    than the images' own follows the variable everywhere (the second case). The e2e test
    tests/e2e/test_lab_ssh.py runs this connection against the hardened hosts."""
    inv = inventory(tmp_path, {}, {"proxy": {"ansible_host": "198.51.100.10", "airlock_ssh_user": user},
                                   "openhands": {"airlock_ssh_user": user}})
    for group in ("proxy", "openhands"):
        (inv / "group_vars" / group / "10-ssh.yml").symlink_to(ROOT / "inventories" / "common" / "connection" / f"{group}.yml")
    for host in ("preflight-proxy", "preflight-server"):
        assert shown(inv, host, "ansible_user") == user
        assert shown(inv, host, "host_baseline_ssh_allow_users") == [user]
    assert shown(inv, "preflight-server", "ansible_ssh_common_args").split() == ["-o", f"ProxyJump={user}@198.51.100.10"]
    assert "ansible_ssh_common_args" not in shown(inv, "preflight-proxy", "vars")


@pytest.mark.parametrize("override", [None, ["/etc/ssl/certs/custom-proxy.pem"]])
def test_the_inventory_overrides_a_mapped_role_variable(tmp_path, override):
    """monitoring_cert_paths, which the shared mapping sets for the proxy, takes the value an
    operator puts in a later file of the inventory's group_vars/proxy/ (it used to be a play
    variable of site.yml, above anything the inventory could say). Without the override the
    proxy sees the mapping's value (the control)."""
    overrides = {"proxy": {"monitoring_cert_paths": override}} if override else None
    res = ansible("ansible", inventory(tmp_path, {}, overrides), "preflight-proxy", "-m", "ansible.builtin.debug",
                  "-a", "var=monitoring_cert_paths")
    assert res.returncode == 0, res.stdout + res.stderr
    shown = json.loads(res.stdout.split("=>", 1)[1])["monitoring_cert_paths"]
    assert shown == (override or ["/etc/nginx/tls/airlock.crt"])


def test_an_inventory_override_reaches_the_role_through_site_yml(tmp_path):
    """The same through site.yml: a monitoring_sinks entry of an unknown type, set in the
    inventory's group_vars/proxy/ over the mapping of airlock_alert_sinks, is what the
    monitoring role checks in the preflight, and it is refused there, naming the variable.
    (The valid run is test_valid_input_passes_the_preflight_and_changes_nothing.)"""
    res = site(tmp_path, {}, "--tags", "airlock_preflight", group_overrides={"proxy": {"monitoring_sinks": [{"type": "pager"}]}})
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "monitoring_sinks[0].type: unknown sink type pager" in out, out[-3000:]
    assert TIERS_PLAY not in out


@pytest.mark.parametrize("extra,variable", [
    ({"airlock_package_relay_port": 80}, "package_relay_port"),
    ({"airlock_package_mirrors": ["http://mirror.example.org/ubuntu"]}, "package_relay_allowed_hosts"),
    ({"airlock_package_mirrors": ["*.ec2.archive.ubuntu.com"]}, "package_relay_allowed_hosts"),
])
def test_a_package_relay_mistake_is_refused_before_any_change(tmp_path, extra, variable):
    """The package relay's inputs, set as airlock_* values for every host (as an inventory's
    group_vars/all does), are checked in the proxy tier's preflight: refused naming the
    relay's variable, before any play changes anything."""
    res = site(tmp_path, {}, "--tags", "airlock_preflight", "-e", json.dumps(extra))
    out = res.stdout + res.stderr
    assert res.returncode != 0 and variable in out, out[-3000:]
    assert TIERS_PLAY not in out
    assert all(n == 0 for n in changed(res.stdout).values()), res.stdout[-2000:]


def test_without_the_relay_its_checks_are_left_out_too(tmp_path):
    """airlock_package_relay: false leaves the role out, its checks included: the same bad
    mirror list that is refused above (the control) passes the preflight."""
    extra = {"airlock_package_relay": False, "airlock_package_mirrors": ["http://mirror.example.org/ubuntu"]}
    res = site(tmp_path, {}, "--tags", "airlock_preflight", "-e", json.dumps(extra))
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


def shown(inv: Path, host: str, var: str):
    res = ansible("ansible", inv, host, "-m", "ansible.builtin.debug", "-a", f"var={var}")
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout.split("=>", 1)[1])[var]


@pytest.mark.parametrize("relay", [True, False])
def test_the_mapping_sends_the_servers_apt_through_the_relay(tmp_path, relay):
    """With the relay (the default), the shared mapping points the server's apt at the relay
    on the proxy's private address, lets the server's host (never its containers: the
    egress firewall's host-only list) reach it, and opens the proxy's UFW to the server's
    address alone on the relay's port; the relay listens on the proxy's private address.
    Without it, none of these is set (the control)."""
    inv = inventory(tmp_path, {}, {"proxy": {"airlock_package_relay": relay}, "openhands": {"airlock_package_relay": relay}})
    rules = shown(inv, "preflight-proxy", "host_baseline_ufw_extra_rules")
    apt = shown(inv, "preflight-server", "host_baseline_apt_proxy")
    relays = shown(inv, "preflight-server", "egress_firewall_package_relays")
    assert {"source": "10.0.1.10", "port": 443} in rules
    if relay:
        assert apt == "http://10.0.0.10:3142"
        assert relays == [{"address": "10.0.0.10", "port": 3142}]
        assert [r for r in rules if r["port"] == 3142] == [{"source": "10.0.1.10", "port": 3142}]
        assert shown(inv, "preflight-proxy", "package_relay_listen_address") == "10.0.0.10"
        assert shown(inv, "preflight-proxy", "proxy_tier_package_relay") is True
    else:
        assert apt == "" and relays == [] and [r for r in rules if r["port"] == 3142] == []
        assert shown(inv, "preflight-proxy", "proxy_tier_package_relay") is False


EVIDENCE = {"enabled": True, "region": "us-east-1", "endpoint_host": "logs.us-east-1.amazonaws.com", "endpoint_port": 443,
            "endpoint_subnet_cidr": "10.0.1.0/24",
            "log_groups": {"proxy": {s: f"/airlock/t/proxy/{s}" for s in
                                     ("audit", "alerts", "nginx-access", "nginx-error", "fail2ban")},
                           "openhands": {s: f"/airlock/t/openhands/{s}" for s in
                                         ("audit", "alerts", "fail2ban", "egress-drops", "llm-gateway")},
                           "flow_logs": "/airlock/t/vpc-flow-logs"}}


@pytest.mark.parametrize("evidence", [True, False])
def test_the_mapping_ships_each_tiers_streams_from_their_files(tmp_path, evidence):
    """With airlock_evidence_cloudwatch on, each tier's log shipper sends that tier's streams,
    each read from the file its role writes, to that tier's groups; absent (the lab), the
    shipper is off and ships nothing (the control)."""
    inv = inventory(tmp_path, {})
    if evidence:
        for group in ("proxy", "openhands"):
            (inv / "group_vars" / group / "local.yml").write_text(json.dumps({"airlock_evidence_cloudwatch": EVIDENCE}))
    proxy = {s["name"]: s for s in shown(inv, "preflight-proxy", "log_shipper_streams")}
    server = {s["name"]: s for s in shown(inv, "preflight-server", "log_shipper_streams")}
    assert shown(inv, "preflight-proxy", "log_shipper_enabled") is evidence
    assert shown(inv, "preflight-server", "log_shipper_enabled") is evidence
    if not evidence:
        assert proxy == {} and server == {}
        return
    assert {n: (s["file"], s["group"]) for n, s in proxy.items()} == {
        "audit": ("/var/log/audit/audit.log", "/airlock/t/proxy/audit"),
        "alerts": ("/var/log/airlock/alerts.jsonl", "/airlock/t/proxy/alerts"),
        "nginx-access": ("/var/log/nginx/airlock-access.log", "/airlock/t/proxy/nginx-access"),
        "nginx-error": ("/var/log/nginx/airlock-error.log", "/airlock/t/proxy/nginx-error"),
        "fail2ban": ("/var/log/fail2ban.log", "/airlock/t/proxy/fail2ban")}
    assert {n: (s["file"], s["group"]) for n, s in server.items()} == {
        "audit": ("/var/log/audit/audit.log", "/airlock/t/openhands/audit"),
        "alerts": ("/var/log/airlock/alerts.jsonl", "/airlock/t/openhands/alerts"),
        "fail2ban": ("/var/log/fail2ban.log", "/airlock/t/openhands/fail2ban"),
        "egress-drops": ("/var/log/ulog/airlock-egress-drops.log", "/airlock/t/openhands/egress-drops"),
        "llm-gateway": ("/var/log/airlock-llm-gateway/requests.jsonl", "/airlock/t/openhands/llm-gateway")}
    assert shown(inv, "preflight-proxy", "log_shipper_region") == "us-east-1"


def test_a_log_shipper_mistake_is_refused_in_the_preflight(tmp_path):
    """The log shipper's checks are in both tiers' preflights: an evidence set whose region is
    not one is refused naming the shipper's variable, before any play changes anything
    (test_valid_input_passes_the_preflight_and_changes_nothing is the control: no evidence
    set, the shipper off)."""
    extra = {"airlock_evidence_cloudwatch": {**EVIDENCE, "region": "nowhere"}}
    res = site(tmp_path, {}, "--tags", "airlock_preflight", "-e", json.dumps(extra))
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "log_shipper_region: 'nowhere' is not an AWS region" in out, out[-3000:]
    assert TIERS_PLAY not in out
    assert all(n == 0 for n in changed(res.stdout).values()), res.stdout[-2000:]
    ok = site(tmp_path / "ok", {}, "--tags", "airlock_preflight", "-e", json.dumps({"airlock_evidence_cloudwatch": EVIDENCE}))
    assert ok.returncode == 0, (ok.stdout + ok.stderr)[-3000:]


def test_the_mapping_gives_the_host_services_to_the_firewall_and_the_resolver(tmp_path):
    """airlock_host_services (set by the AWS inventory: S3 by cidrs, CloudWatch Logs by name)
    reaches the server's egress firewall as it is (for root alone: the role's default users),
    and the local resolver answers the names in it; a server without it (the second, which
    keeps the default, the control) has none."""
    services = [{"name": "s3", "cidrs": ["198.51.100.0/24"], "port": 443},
                {"name": "logs", "hosts": ["logs.us-east-1.amazonaws.com"], "port": 443}]
    inv = inventory(tmp_path, {"airlock_host_services": services})
    assert shown(inv, "preflight-server", "egress_firewall_host_services") == services
    assert shown(inv, "preflight-server", "dns_resolver_host_services") == services
    assert shown(inv, "preflight-server2", "egress_firewall_host_services") == []
    assert shown(inv, "preflight-server2", "dns_resolver_host_services") == []


# --- The AWS inventory's own values --------------------------------------------------------

AWS_HOSTS = {"aws-proxy": {"private_ip_address": "10.0.0.10", "public_ip_address": "198.51.100.10"},
             "aws-server": {"private_ip_address": "10.0.1.10"}}


def aws_inventory(tmp_path: Path, operator: dict | None = None) -> Path:
    """inventories/aws's group_vars (its links followed: the shared mapping and the connection
    files, as the inventory loads them) with one static host per tier in the groups the
    aws_ec2 plugin makes (proxy, openhands), carrying the values it would (addresses,
    owner_id), so nothing asks EC2. Every host is this machine: connection local, set per
    host, above the connection files. `operator` ({group: vars}) goes to a later file of that
    group's group_vars, as an operator adds their own settings."""
    inv = tmp_path / "aws-inventory"
    shutil.copytree(ROOT / "inventories" / "aws" / "group_vars", inv / "group_vars")
    local = {"ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": sys.executable,
             "owner_id": "123456789012"}
    (inv / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"localhost": local}, "children": {
        "proxy": {"hosts": {"aws-proxy": {**local, **AWS_HOSTS["aws-proxy"]}}},
        "openhands": {"hosts": {"aws-server": {**local, **AWS_HOSTS["aws-server"]}}}}}}))
    for group, values in (operator or {}).items():
        (inv / "group_vars" / group / "operator.yml").write_text(json.dumps(values))
    return inv


def resolved(inv: Path, host: str, names: list[str]) -> dict:
    """The variables as Ansible resolves them for `host` (inventory group_vars in their
    order, the mapping's templates rendered); an undefined one fails the call."""
    expression = "{{ {" + ", ".join(f"'{n}': {n}" for n in names) + "} }}"
    res = ansible("ansible", inv, host, "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": expression}))
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout.split("=>", 1)[1])["msg"]


def test_the_aws_inventory_sets_the_hardened_values_the_roles_see(tmp_path):
    """What a real deployment gets from inventories/aws, as each tier's roles see it: audit
    rules locked until reboot on both tiers; on the proxy a self-signed certificate not
    acknowledged (refused until the operator decides, the next test) and no never-ban
    address (airlock_admin_cidrs empty, so fail2ban may ban anyone); on the server the
    images fetched by the controller and no destination in the maintenance window; for
    provisioning the evidence set on and CloudTrail off. Each fails here when its line is
    deleted from the inventory (the lab's own values differ: tests/e2e)."""
    inv = aws_inventory(tmp_path)
    proxy = resolved(inv, "aws-proxy", ["auditd_immutable", "nginx_proxy_selfsigned_acknowledged", "airlock_admin_cidrs",
                                        "fail2ban_ignoreip"])
    assert proxy == {"auditd_immutable": True, "nginx_proxy_selfsigned_acknowledged": False, "airlock_admin_cidrs": [],
                     "fail2ban_ignoreip": []}
    server = resolved(inv, "aws-server", ["auditd_immutable", "openhands_image_source", "airlock_maintenance_destinations",
                                          "egress_firewall_maintenance_destinations", "egress_firewall_maintenance_open"])
    assert server == {"auditd_immutable": True, "openhands_image_source": "controller", "airlock_maintenance_destinations": [],
                      "egress_firewall_maintenance_destinations": [], "egress_firewall_maintenance_open": []}
    provisioning = resolved(inv, "localhost", ["aws_enclave_evidence_enabled", "aws_enclave_cloudtrail_enabled"])
    assert provisioning == {"aws_enclave_evidence_enabled": True, "aws_enclave_cloudtrail_enabled": False}


def recap(output: str) -> dict:
    return {host: int(n) for host, n in re.findall(r"^(aws-[\w-]+)\s*:.*?changed=(\d+)", output, re.M)}


@pytest.mark.parametrize("acknowledged", [False, True], ids=["default", "acknowledged"])
def test_the_aws_inventory_refuses_a_self_signed_certificate_until_acknowledged(tmp_path, acknowledged):
    """site.yml's preflight on the AWS inventory, with the values it leaves to the operator
    (authorized CIDRs, the logins and the backup password, as from vault) and its default TLS
    (self-signed, no ACME): the proxy's preflight refuses it, naming
    nginx_proxy_selfsigned_acknowledged, before any play changes anything. With the
    acknowledgement in the operator's group_vars/proxy/ (the control) the same run passes
    that check and the whole proxy preflight. The run is limited to the proxy: the server's
    preflight reads the S3 prefix list from the EC2 API (tests/aws/test_prefix_list_lookup.py
    runs it against an emulator)."""
    inv = aws_inventory(tmp_path, {"proxy": {"nginx_proxy_selfsigned_acknowledged": True}} if acknowledged else None)
    operator = {"airlock_authorized_cidrs": ["203.0.113.0/24"],
                "vault_airlock_users": [{"name": "alice", "password": "a-long-enough-password-1"}],
                "vault_airlock_backup_password": "aws-inventory-test-backup-password"}
    res = ansible("ansible-playbook", inv, str(ROOT / "site.yml"), "--tags", "airlock_preflight", "--limit", "aws-proxy",
                  "-e", json.dumps(operator))
    out = res.stdout + res.stderr
    assert "TASK [nginx_proxy : Check the login, TLS, routing and session settings]" in out, out[-3000:]
    assert recap(res.stdout) == {"aws-proxy": 0}, res.stdout[-2000:]
    if acknowledged:
        assert res.returncode == 0, out[-3000:]
        assert "nginx_proxy_selfsigned_acknowledged is false" not in out
    else:
        assert res.returncode != 0
        assert "nginx_proxy_tls_mode is selfsigned and nginx_proxy_selfsigned_acknowledged is false" in out, out[-3000:]
        assert TIERS_PLAY not in out


@pytest.mark.parametrize("tags,limit,tiers", [
    ("nginx_proxy", "openhands", ["server_tier"]),               # a proxy drift fix: the server's tier
    ("egress_firewall_ruleset", "proxy", ["proxy_tier"]),        # a server drift fix: the proxy's tier
    ("aws_network", "all", ["proxy_tier", "server_tier"]),       # neither tier's
])
def test_a_tier_ends_at_once_when_the_tags_select_none_of_its_roles(tmp_path, tags, limit, tiers):
    """A drift fix of one tier's role (`--tags nginx_proxy`) runs the other tier's hosts too:
    there the tier ends at its first task instead of running its roles' argument checks and
    OS values for nothing. Limited to the tier whose roles the tags do not select (and in
    check mode), so this machine is never configured whatever the gate lets through.
    (test_tier_roles.py::test_a_tier_is_selected_by_its_own_roles_tags is the control: a
    tier's own tags select it.)"""
    res = site(tmp_path, {}, "--tags", tags, "--limit", limit, "--check")
    out = res.stdout
    assert res.returncode == 0, out[-4000:] + res.stderr[-2000:]
    section = out.split(TIERS_PLAY)[1].split("PLAY RECAP")[0]
    ran = results(section)
    hosts = {"proxy_tier": ["preflight-proxy"], "server_tier": ["preflight-server", "preflight-server2"]}
    for tier in tiers:
        for host in hosts[tier]:
            # Nothing but the tier's own first steps ran there: no role of the tier started.
            # Past the gate, Ansible's argument validation of each role the tier imports
            # (tagged always) would show as a result. (The free strategy prints no header for
            # the gate itself, a meta task.)
            assert ran.get(host) and all(t.startswith(f"{tier} : ") for t in ran[host]), (host, ran.get(host))
    assert all(n == 0 for n in changed(out).values()), out[-2000:]
