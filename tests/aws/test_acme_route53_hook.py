"""The Route 53 hook of the proxy's dns-01 certificates (roles/nginx_proxy/files/airlock-acme-route53)
against moto: which zone it picks or refuses, and that auth/cleanup leave a shared record
(a name and its wildcard) as they found it. The end-to-end issuance is test_acme_dns01.py."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.moto_server import base_env, free_port

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "roles" / "nginx_proxy" / "files" / "airlock-acme-route53"


@pytest.fixture
def zones(moto):
    moto.reset()
    r53 = moto.client("route53")
    vpc = moto.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]

    def create(name, private=False):
        # moto marks a zone private from HostedZoneConfig (AWS also from the VPC alone).
        extra = {"VPC": {"VPCRegion": "us-east-1", "VPCId": vpc}, "HostedZoneConfig": {"PrivateZone": True}} if private else {}
        return r53.create_hosted_zone(Name=name, CallerReference=f"{name}-{time.time()}", **extra)["HostedZone"]["Id"]

    return r53, create


def hook(moto, tmp_path, zone, *args, domain="", token=""):
    config = tmp_path / "route53.json"
    config.write_text(json.dumps({"zone": zone, "endpoint_url": moto.url}))
    env = {**base_env(moto, "test"), "AIRLOCK_ACME_ROUTE53_CONFIG": str(config),
           "CERTBOT_DOMAIN": domain, "CERTBOT_VALIDATION": token}
    return subprocess.run([sys.executable, str(HOOK), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def txt(r53, zone_id):
    return {s["Name"]: sorted(r["Value"] for r in s["ResourceRecords"])
            for s in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"] if s["Type"] == "TXT"}


def test_the_zone_is_found_by_name_and_by_id(moto, tmp_path, zones):
    _, create = zones
    zone_id = create("example.org")
    by_name = hook(moto, tmp_path, "example.org", "check", "proxy.example.org")
    by_id = hook(moto, tmp_path, zone_id.split("/")[-1], "check", "proxy.example.org")
    assert by_name.returncode == by_id.returncode == 0, by_name.stderr + by_id.stderr
    assert by_name.stdout == by_id.stdout
    apex = hook(moto, tmp_path, "example.org.", "check", "example.org")
    assert apex.returncode == 0, apex.stderr


@pytest.mark.parametrize("setup,zone,message", [
    ("public", "example.com", "no public hosted zone named example.com."),
    ("public", "Z0000000000000NOPE", "no hosted zone with id Z0000000000000NOPE"),
    ("public", "sub.proxy.example.org", "no public hosted zone named sub.proxy.example.org."),
    ("private", "example.org", "no public hosted zone named example.org."),
    ("twice", "example.org", "several public hosted zones are named example.org."),
    ("other", "example.net", "does not contain proxy.example.org."),
])
def test_a_zone_that_cannot_carry_the_challenge_is_refused(moto, tmp_path, zones, setup, zone, message):
    _, create = zones
    create("example.org", private=setup == "private")
    if setup == "twice":
        create("example.org")
    if setup == "other":
        create("example.net")
    result = hook(moto, tmp_path, zone, "check", "proxy.example.org")
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("nginx_proxy_acme_route53_zone: "), result.stderr
    assert message in result.stderr, result.stderr


def test_a_private_zone_by_id_is_refused(moto, tmp_path, zones):
    _, create = zones
    zone_id = create("example.org", private=True)
    result = hook(moto, tmp_path, zone_id, "check", "proxy.example.org")
    assert result.returncode == 2 and "is a private hosted zone" in result.stderr, result.stderr


def test_auth_and_cleanup_share_the_record_of_a_name_and_its_wildcard(moto, tmp_path, zones):
    r53, create = zones
    zone_id = create("example.org")
    record = "_acme-challenge.proxy.example.org."
    for domain, token in (("proxy.example.org", "token-a"), ("*.proxy.example.org", "token-b")):
        result = hook(moto, tmp_path, "example.org", "auth", domain=domain, token=token)
        assert result.returncode == 0, result.stderr
    assert txt(r53, zone_id) == {record: ['"token-a"', '"token-b"']}
    assert hook(moto, tmp_path, "example.org", "cleanup", domain="proxy.example.org", token="token-a").returncode == 0
    assert txt(r53, zone_id) == {record: ['"token-b"']}
    # A value that is not there (a retried cleanup) changes nothing and does not fail.
    assert hook(moto, tmp_path, "example.org", "cleanup", domain="proxy.example.org", token="token-a").returncode == 0
    assert hook(moto, tmp_path, "example.org", "cleanup", domain="*.proxy.example.org", token="token-b").returncode == 0
    assert txt(r53, zone_id) == {}


def test_an_unreachable_api_is_reported_not_a_traceback(moto, tmp_path, zones):
    _, create = zones
    create("example.org")
    config = tmp_path / "route53.json"
    config.write_text(json.dumps({"zone": "example.org", "endpoint_url": f"http://127.0.0.1:{free_port()}"}))
    env = {**base_env(moto, "test"), "AIRLOCK_ACME_ROUTE53_CONFIG": str(config), "AWS_MAX_ATTEMPTS": "1"}
    result = subprocess.run([sys.executable, str(HOOK), "check", "proxy.example.org"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("Route 53 API call failed: "), result.stderr
    assert "Traceback" not in result.stderr
