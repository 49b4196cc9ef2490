"""Unit tests of filter_plugins/airlock_net.py and of the aws_enclave role's filters
(roles/aws_enclave/filter_plugins/aws_enclave.py): plain Python, no Ansible run."""
from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
net = load_module(ROOT / "filter_plugins" / "airlock_net.py")
aws = load_module(ROOT / "roles" / "aws_enclave" / "filter_plugins" / "aws_enclave.py")

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVtb3RvbW90b21vdG9tb3RvbW90b21vdG9tb3RvbW90 me@host"

GOOD = {
    "environment": "prod",
    "region": "eu-west-1",
    "availability_zone": "",
    "endpoint_url": "",
    "vpc_cidr": "10.0.0.0/16",
    "public_subnet_cidr": "10.0.0.0/24",
    "private_subnet_cidr": "10.0.1.0/24",
    "authorized_cidrs": ["203.0.113.0/24"],
    "allow_ssh_from_anywhere": False,
    "openhands_port": 3000,
    "sandbox_port_range": {"start": 32768, "end": 60999},
    "proxy_patch_ports": [80, 443],
    "package_relay_port": 3142,
    "llm_endpoints": [
        {"name": "openai", "hosts": ["api.openai.com"], "port": 443},
        {"name": "gw", "cidrs": ["192.0.2.0/24"], "port": 8443},
        {"name": "bedrock", "bedrock": True, "region": "eu-west-1"},
    ],
    "time_server": "169.254.169.123",
    "nacl_ephemeral_ports": {"start": 1024, "end": 65535},
    "nat_gateway_enabled": True,
    "ssh_public_key": ED25519,
    "ami_id": "",
    "proxy_instance_type": "t3.small",
    "server_instance_type": "t3.large",
}


def with_(**changes):
    data = copy.deepcopy(GOOD)
    data.update(changes)
    return data


def test_filters_are_registered():
    assert {"airlock_vpc_resolver", "airlock_is_ipv4_cidr", "airlock_all_within"} <= set(net.FilterModule().filters())
    assert {"airlock_aws_input_errors", "airlock_nacl_entries", "airlock_security_group_rules",
            "airlock_tagged"} <= set(aws.FilterModule().filters())
    for module in (net, aws):
        for name, func in module.FilterModule().filters().items():
            assert func.__doc__, f"{name} is undocumented"


def test_the_two_plugins_register_no_filter_twice():
    # Ansible keeps one of two filters of the same name: a name in both would shadow the other.
    assert not set(net.FilterModule().filters()) & set(aws.FilterModule().filters())


@pytest.mark.parametrize("value,ok", [
    ("10.0.0.0/16", True), ("0.0.0.0/0", True), ("203.0.113.7/32", True),
    ("10.0.0.1/24", False), ("10.0.0.0", False), ("10.0.0.0/33", False), ("300.0.0.0/8", False),
    ("fd00::/8", False), ("", False), (None, False), (["10.0.0.0/8"], False),
])
def test_is_ipv4_cidr(value, ok):
    assert net.airlock_is_ipv4_cidr(value) is ok


def test_containment_overlap_world_resolver():
    assert net.airlock_cidr_within("10.0.1.0/24", "10.0.0.0/16")
    assert not net.airlock_cidr_within("10.1.0.0/24", "10.0.0.0/16")
    assert net.airlock_cidrs_overlap("10.0.0.0/24", "10.0.0.128/25")
    assert not net.airlock_cidrs_overlap("10.0.0.0/24", "10.0.1.0/24")
    assert net.airlock_is_world_cidr("0.0.0.0/0") and not net.airlock_is_world_cidr("0.0.0.0/1")
    assert net.airlock_vpc_resolver("10.0.0.0/16") == "10.0.0.2"
    assert net.airlock_vpc_resolver("172.31.16.0/20") == "172.31.16.2"


@pytest.mark.parametrize("value,ok", [
    ("api.openai.com", True), ("bedrock-runtime.us-east-1.amazonaws.com", True), ("example.com.", True),
    ("localhost", False), ("not a host", False), ("-bad.example.com", False), ("1.2.3.4", False),
    ("a" * 64 + ".com", False), ("", False), (None, False),
])
def test_is_hostname(value, ok):
    assert net.airlock_is_hostname(value) is ok


@pytest.mark.parametrize("value,ok", [
    ("http://127.0.0.1:5000", True), ("https://ec2.eu-west-1.amazonaws.com", True), ("http://localhost:4566/", True),
    ("ftp://127.0.0.1", False), ("127.0.0.1:5000", False), ("http://", False), ("http://a b", False),
    ("http://user:pw@host.example.com", False), ("http://127.0.0.1:99999", False), ("", False),
])
def test_is_endpoint_url(value, ok):
    assert net.airlock_is_endpoint_url(value) is ok


@pytest.mark.parametrize("value,ok", [
    ("t3.small", True), ("m7i-flex.large", True), ("c6gn.16xlarge", True), ("u-6tb1.metal", True),
    ("t3small", False), ("T3.small", False), ("t3.", False), (".small", False), ("t3.small extra", False), (3, False),
])
def test_is_instance_type(value, ok):
    assert aws.airlock_is_instance_type(value) is ok


def test_ssh_public_key_real_and_fake(tmp_path):
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    assert aws.airlock_is_ssh_public_key(key.with_suffix(".pub").read_text())
    assert not aws.airlock_is_ssh_public_key("ssh-ed25519 bm90IGEga2V5")  # blob does not name the type
    assert not aws.airlock_is_ssh_public_key("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGVt")  # type mismatch
    assert not aws.airlock_is_ssh_public_key("ssh-ed25519 ***")
    assert not aws.airlock_is_ssh_public_key("")


def test_good_input_has_no_errors():
    assert aws.airlock_aws_input_errors(GOOD) == []


@pytest.mark.parametrize("changes,variable", [
    ({"public_subnet_cidr": "10.1.0.0/24"}, "aws_enclave_public_subnet_cidr"),
    ({"private_subnet_cidr": "10.0.0.128/25"}, "aws_enclave_private_subnet_cidr"),
    ({"authorized_cidrs": []}, "aws_enclave_authorized_cidrs"),
    ({"authorized_cidrs": ["0.0.0.0/0"]}, "aws_enclave_allow_ssh_from_anywhere"),
    ({"authorized_cidrs": ["10.0.0.5/24"]}, "aws_enclave_authorized_cidrs"),
    ({"vpc_cidr": "10.0.0.0/33"}, "aws_enclave_vpc_cidr"),
    ({"vpc_cidr": "10.0.0.0/8"}, "aws_enclave_vpc_cidr"),
    ({"endpoint_url": "ftp://127.0.0.1"}, "aws_enclave_endpoint_url"),
    ({"llm_endpoints": [{"name": "x", "hosts": ["not a host"]}]}, "aws_enclave_llm_endpoints[0].hosts"),
    ({"llm_endpoints": [{"name": "x", "cidrs": ["1.2.3.4/40"]}]}, "aws_enclave_llm_endpoints[0].cidrs"),
    ({"llm_endpoints": [{"name": "x"}]}, "aws_enclave_llm_endpoints[0]"),
    ({"llm_endpoints": [{"name": "x", "hosts": ["a.example.com"], "cidrs": ["192.0.2.0/24"]}]},
     "aws_enclave_llm_endpoints[0]"),
    ({"llm_endpoints": [{"name": "Bad_Name", "hosts": ["a.example.com"]}]}, "aws_enclave_llm_endpoints[0].name"),
    ({"llm_endpoints": [{"name": "b", "bedrock": True, "region": "us-east-1"}]}, "aws_enclave_llm_endpoints[0].region"),
    ({"llm_endpoints": [{"name": "x", "hosts": ["a.example.com"], "port": 70000}]}, "aws_enclave_llm_endpoints[0].port"),
    ({"proxy_instance_type": "t3small"}, "aws_enclave_proxy_instance_type"),
    ({"server_instance_type": ""}, "aws_enclave_server_instance_type"),
    ({"ssh_public_key": ""}, "aws_enclave_ssh_public_key"),
    ({"ssh_public_key": "ssh-ed25519 garbage"}, "aws_enclave_ssh_public_key"),
    ({"environment": "Prod_1"}, "aws_enclave_environment"),
    ({"region": "europe"}, "aws_enclave_region"),
    ({"availability_zone": "us-east-1a"}, "aws_enclave_availability_zone"),
    ({"ami_id": "ami-xyz"}, "aws_enclave_ami_id"),
    ({"sandbox_port_range": {"start": 60999, "end": 32768}}, "aws_enclave_sandbox_port_range"),
    ({"openhands_port": 0}, "aws_enclave_openhands_port"),
    ({"time_server": "time.example.com"}, "aws_enclave_time_server"),
    ({"package_relay_port": 80}, "aws_enclave_package_relay_port"),
    ({"package_relay_port": 70000}, "aws_enclave_package_relay_port"),
    ({"package_relay_port": "3142"}, "aws_enclave_package_relay_port"),
    ({"proxy_patch_ports": [443]}, "aws_enclave_proxy_patch_ports"),
])
def test_bad_input_is_named(changes, variable):
    errors = aws.airlock_aws_input_errors(with_(**changes))
    assert errors, f"{changes} was accepted"
    assert any(variable in e for e in errors), errors


def test_world_ssh_with_opt_in_is_accepted():
    assert aws.airlock_aws_input_errors(with_(authorized_cidrs=["0.0.0.0/0"], allow_ssh_from_anywhere=True)) == []


def test_private_key_is_refused_without_echoing_it():
    secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-SECRET\n-----END OPENSSH PRIVATE KEY-----"
    errors = aws.airlock_aws_input_errors(with_(ssh_public_key=secret))
    assert any("PRIVATE key" in e for e in errors)
    assert not any("SECRET" in e for e in errors)


def test_too_many_nacl_rules_are_refused():
    many = [f"198.51.{i}.0/24" for i in range(7)]  # 7 x 3 inbound rules > 20
    errors = aws.airlock_aws_input_errors(with_(authorized_cidrs=many))
    assert any("network ACL rules" in e and "aws_enclave_authorized_cidrs" in e for e in errors)


def as_set(rules):
    return {tuple(r[1:]) for r in rules}


def test_nacl_entries_exact():
    nacl = aws.airlock_nacl_entries(GOOD)
    eph = (1024, 65535)
    rule = ("tcp", "allow")

    def r(cidr, lo, hi=None):
        return (*rule, cidr, None, None, lo, hi if hi is not None else lo)

    assert as_set(nacl["public"]["ingress"]) == {
        r("203.0.113.0/24", 22), r("203.0.113.0/24", 80), r("203.0.113.0/24", 443),
        r("10.0.1.0/24", 443), r("10.0.1.0/24", 8443), r("10.0.1.0/24", 3142), r("0.0.0.0/0", *eph),
    }
    assert as_set(nacl["public"]["egress"]) == {
        r("203.0.113.0/24", *eph), r("10.0.1.0/24", 22), r("10.0.1.0/24", 3000), r("10.0.1.0/24", 32768, 60999),
        r("10.0.1.0/24", *eph), r("0.0.0.0/0", 80), r("0.0.0.0/0", 443), r("192.0.2.0/24", 8443),
    }
    assert as_set(nacl["private"]["ingress"]) == {
        r("10.0.0.0/24", 22), r("10.0.0.0/24", 3000), r("10.0.0.0/24", 32768, 60999), r("10.0.0.0/24", *eph),
        r("0.0.0.0/0", *eph), r("192.0.2.0/24", *eph),
    }
    assert as_set(nacl["private"]["egress"]) == {r("10.0.0.0/24", *eph), r("10.0.0.0/24", 443), r("10.0.0.0/24", 3142),
                                                 r("0.0.0.0/0", 443), r("192.0.2.0/24", 8443)}
    numbers = [e[0] for e in nacl["public"]["ingress"]]
    assert numbers == list(range(100, 100 + 10 * len(numbers), 10))


def test_nacl_without_nat_has_no_llm_rules():
    nacl = aws.airlock_nacl_entries(with_(llm_endpoints=[{"name": "b", "bedrock": True}], nat_gateway_enabled=True))
    # Without the NAT gateway the only way out of the private subnet is to the proxy: its
    # HTTPS port (the sandbox URLs), the package relay and replies.
    assert as_set(nacl["private"]["egress"]) == {("tcp", "allow", "10.0.0.0/24", None, None, 1024, 65535),
                                                 ("tcp", "allow", "10.0.0.0/24", None, None, 443, 443),
                                                 ("tcp", "allow", "10.0.0.0/24", None, None, 3142, 3142)}
    assert {(e[6], e[7]) for e in nacl["public"]["ingress"] if e[3] == "10.0.1.0/24"} == {(443, 443), (3142, 3142)}


def test_package_relay_port_is_the_only_new_way_from_the_server_to_the_proxy():
    """The relay's port, whatever it is set to, opens server -> proxy on that port alone (the
    security groups both ways and the network ACLs of both subnets); the proxy's way to the
    mirrors is its patch ports."""
    inputs = with_(package_relay_port=9999)
    rules = aws.airlock_security_group_rules(inputs, "sg-p", "sg-s", "sg-e")
    assert {key(r) for r in rules["proxy"]["rules"] if r.get("group_id") == "sg-s"} == {
        ("tcp", 443, 443, "sg-s"), ("tcp", 9999, 9999, "sg-s")}
    assert {key(r) for r in rules["server"]["rules_egress"] if r.get("group_id") == "sg-p"} == {
        ("tcp", 443, 443, "sg-p"), ("tcp", 9999, 9999, "sg-p")}
    nacl = aws.airlock_nacl_entries(inputs)
    assert ("tcp", "allow", "10.0.0.0/24", None, None, 9999, 9999) in as_set(nacl["private"]["egress"])
    assert ("tcp", "allow", "10.0.1.0/24", None, None, 9999, 9999) in as_set(nacl["public"]["ingress"])
    assert ("tcp", "allow", "10.0.0.0/24", None, None, 3142, 3142) not in as_set(nacl["private"]["egress"])


def key(rule):
    return (rule["proto"], rule["from_port"], rule["to_port"], rule.get("cidr_ip") or rule["group_id"])


def test_security_group_rules_exact():
    rules = aws.airlock_security_group_rules(GOOD, "sg-p", "sg-s", "sg-e")
    dns_ntp = {("udp", 53, 53, "10.0.0.2/32"), ("tcp", 53, 53, "10.0.0.2/32"), ("udp", 123, 123, "169.254.169.123/32")}
    app = {("tcp", 22, 22), ("tcp", 3000, 3000), ("tcp", 32768, 60999)}
    assert {key(r) for r in rules["proxy"]["rules"]} == {("tcp", p, p, "203.0.113.0/24") for p in (22, 80, 443)} | {
        ("tcp", 443, 443, "sg-s"), ("tcp", 3142, 3142, "sg-s")}
    assert {key(r) for r in rules["proxy"]["rules_egress"]} == {
        *((*a, "sg-s") for a in app), ("tcp", 80, 80, "0.0.0.0/0"), ("tcp", 443, 443, "0.0.0.0/0"), *dns_ntp}
    assert {key(r) for r in rules["server"]["rules"]} == {(*a, "sg-p") for a in app}
    assert {key(r) for r in rules["server"]["rules_egress"]} == {
        ("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 8443, 8443, "192.0.2.0/24"), ("tcp", 443, 443, "sg-e"),
        ("tcp", 443, 443, "sg-p"), ("tcp", 3142, 3142, "sg-p"), *dns_ntp}
    assert {key(r) for r in rules["endpoint"]["rules"]} == {("tcp", 443, 443, "sg-s")}
    assert rules["endpoint"]["rules_egress"] == []
    for group in rules.values():
        for direction in group.values():
            assert len({key(r) for r in direction}) == len(direction), "duplicate rule"


def test_evidence_adds_only_443_to_the_logs_endpoint():
    """With the evidence set: both hosts -> the logs endpoint group on 443, that group
    admits exactly the two host groups, and the ACLs carry the proxy's 443 into the private
    subnet (the server sits beside the endpoint). Nothing else changes."""
    base = aws.airlock_security_group_rules(GOOD, "sg-p", "sg-s", "sg-e", "sg-l")
    rules = aws.airlock_security_group_rules(with_(evidence_enabled=True), "sg-p", "sg-s", "sg-e", "sg-l")
    assert base["logs_endpoint"] == {"rules": [], "rules_egress": []}
    assert {key(r) for r in rules["logs_endpoint"]["rules"]} == {("tcp", 443, 443, "sg-p"), ("tcp", 443, 443, "sg-s")}
    assert rules["logs_endpoint"]["rules_egress"] == []
    for tier in ("proxy", "server"):
        added = {key(r) for r in rules[tier]["rules_egress"]} - {key(r) for r in base[tier]["rules_egress"]}
        assert added == {("tcp", 443, 443, "sg-l")}
        assert rules[tier]["rules"] == base[tier]["rules"]
    # Without the group id (it does not exist yet) no rule refers to it.
    assert aws.airlock_security_group_rules(with_(evidence_enabled=True), "sg-p", "sg-s", "sg-e")["logs_endpoint"][
        "rules"] == []
    plain, evidence = aws.airlock_nacl_entries(GOOD), aws.airlock_nacl_entries(with_(evidence_enabled=True))
    diff = {(subnet, direction): as_set(evidence[subnet][direction]) - as_set(plain[subnet][direction])
            for subnet in ("public", "private") for direction in ("ingress", "egress")}
    assert diff == {
        ("public", "egress"): {("tcp", "allow", "10.0.1.0/24", None, None, 443, 443)},
        ("private", "ingress"): {("tcp", "allow", "10.0.0.0/24", None, None, 443, 443)},
        ("public", "ingress"): set(), ("private", "egress"): set(),
    }


def test_backup_bucket_adds_only_443_to_s3s_prefix_list():
    """With the backup bucket: both hosts -> 443 of S3's prefix list (the gateway endpoint's
    destination) in the security groups, nothing wider; the ACLs, which cannot name a prefix
    list, carry 443 out of both subnets and its replies into the private one. Without the
    prefix list's id no rule refers to it."""
    plain_inputs = with_(llm_endpoints=[{"name": "gw", "cidrs": ["192.0.2.0/24"], "port": 8443}])
    backup_inputs = {**plain_inputs, "backup_bucket_enabled": True}
    base = aws.airlock_security_group_rules(plain_inputs, "sg-p", "sg-s", "sg-e", None)
    rules = aws.airlock_security_group_rules(backup_inputs, "sg-p", "sg-s", "sg-e", None, "pl-63a5400a")
    for tier in ("proxy", "server"):
        added = [r for r in rules[tier]["rules_egress"] if r not in base[tier]["rules_egress"]]
        assert added == [{"proto": "tcp", "from_port": 443, "to_port": 443, "ip_prefix": "pl-63a5400a"}]
        assert rules[tier]["rules"] == base[tier]["rules"]
    assert aws.airlock_security_group_rules(backup_inputs, "sg-p", "sg-s", "sg-e", None) == base
    assert aws.airlock_security_group_rules(plain_inputs, "sg-p", "sg-s", "sg-e", None, "pl-63a5400a") == base
    plain, backup = aws.airlock_nacl_entries(plain_inputs), aws.airlock_nacl_entries(backup_inputs)
    diff = {(subnet, direction): as_set(backup[subnet][direction]) - as_set(plain[subnet][direction])
            for subnet in ("public", "private") for direction in ("ingress", "egress")}
    assert diff == {
        ("private", "egress"): {("tcp", "allow", "0.0.0.0/0", None, None, 443, 443)},
        ("private", "ingress"): {("tcp", "allow", "0.0.0.0/0", None, None, 1024, 65535)},
        # The proxy's patch ports already hold 443 to anywhere, and its replies come back
        # on the ephemeral rule it always has.
        ("public", "ingress"): set(), ("public", "egress"): set(),
    }
    no_443 = aws.airlock_nacl_entries({**backup_inputs, "proxy_patch_ports": [80]})
    assert ("tcp", "allow", "0.0.0.0/0", None, None, 443, 443) in as_set(no_443["public"]["egress"])


def test_tagged_keeps_only_this_project_and_environment():
    items = [
        {"id": 1, "tags": {"project": "airlock", "environment": "alpha"}},
        {"id": 2, "tags": {"project": "airlock", "environment": "beta"}},
        {"id": 3, "tags": {}},
        {"id": 4},
        {"id": 5, "Tags": [{"Key": "project", "Value": "airlock"}, {"Key": "environment", "Value": "alpha"}]},
        {"id": 6, "tags": {"project": "other", "environment": "alpha"}},
    ]
    assert [i["id"] for i in aws.airlock_tagged(items, "airlock", "alpha")] == [1, 5]
    assert aws.airlock_tagged(items, "airlock", "") == []
    assert aws.airlock_tagged(None, "airlock", "alpha") == []


def test_all_within_is_true_only_when_every_network_is_covered():
    f = net.airlock_all_within
    assert f(["203.0.113.0/24"], ["203.0.113.0/24"]) and f(["203.0.113.0/24", "198.51.100.7/32"], ["0.0.0.0/0"])
    assert not f(["203.0.113.0/24", "198.51.100.0/24"], ["203.0.113.0/24"])
    assert not f(["203.0.113.0/24"], ["203.0.113.10/32"]) and not f(["2001:db8::/64"], ["0.0.0.0/0"])
    assert not f([], ["0.0.0.0/0"]) and not f(["203.0.113.0/24"], [])


def test_world_entries_are_the_prefix_length_0_ones_in_any_form():
    """The never-ban list's refusal (proxy_tier): every spelling of a whole address space,
    of either IP version, is found, in its order and as given; anything narrower, or no
    network at all, is not."""
    f = net.airlock_world_entries
    assert f(["203.0.113.10/32", "0.0.0.0/0", "2001:db8::/64", "::/0"]) == ["0.0.0.0/0", "::/0"]
    assert f(["0.0.0.0/0.0.0.0", "0.0.0.0/00", "0::0/0", "1.2.3.4/0"]) == ["0.0.0.0/0.0.0.0", "0.0.0.0/00", "0::0/0", "1.2.3.4/0"]
    assert f(["0.0.0.0/1", "128.0.0.0/1", "::/1", "0.0.0.0", "::", "0/0", "example.org", ""]) == []
    assert f([]) == [] and f(None) == []
