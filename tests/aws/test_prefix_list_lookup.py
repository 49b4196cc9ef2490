"""The server's host-only route to S3, as the AWS inventory derives it, against moto.

The server's restic copy goes to S3 through the VPC's gateway endpoint, at the region's S3
ranges. The controller reads them from the AWS-managed prefix list
(lookup_plugins/airlock_aws_prefix_list.py) and inventories/aws/group_vars/openhands/aws.yml
hands them, with the two names restic resolves, to the server's egress firewall and local
resolver (airlock_host_services). What is proven here:

- the lookup returns exactly the AWS-managed list's CIDRs, and never a customer-managed list
  of the same name (one holding 0.0.0.0/0 is made in the account: the AWS one is still what
  comes back, the control); an unknown list is an error naming it, not an empty list;
- the inventory gives the server (and only the server) the entry: the regional name and the
  bucket's, the prefix list's CIDRs, port 443; beside it the log shipper's CloudWatch Logs
  endpoint by name; the backup's S3 copy is on and the metadata service open to root (the
  instance profile's credentials); with the bucket turned off there is no S3 entry, the copy
  is off, and the prefix list is not read at all; with the evidence set off too, nothing is
  left and the metadata service stays closed.

That the firewall admits root alone to these addresses, and no container or other user, is
proven on a real kernel by the egress firewall's own tests (tests/host/ and the server_tier
scenario), with the same entry format.
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

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
ENV = "lambda"
BUCKET = f"airlock-{ENV}-{REGION}-{ACCOUNT}-backup"
S3_LIST = f"com.amazonaws.{REGION}.s3"


def aws_s3_cidrs(ec2) -> list:
    (found,) = [p for p in ec2.describe_managed_prefix_lists()["PrefixLists"]
                if p["PrefixListName"] == S3_LIST and p["OwnerId"] == "AWS"]
    entries = ec2.get_managed_prefix_list_entries(PrefixListId=found["PrefixListId"])["Entries"]
    return sorted(e["Cidr"] for e in entries)


def template(moto, expression: str, inventory: Path, host: str = "localhost", extra: dict | None = None):
    """`expression` templated by Ansible for `host` of `inventory`, with moto's environment
    (the controller's credentials and endpoint); (rc, value or output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRLOCK_"))}
    env.update(moto.env())
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), AIRLOCK_ENVIRONMENT=ENV, ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    msg = "VALUE{{ (" + expression + ") | to_json }}END"
    cmd = [str(Path(sys.executable).parent / "ansible"), host, "-i", str(inventory),
           "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": msg})]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    found = re.findall(r"VALUE(.*?)END", out.stdout)
    if out.returncode != 0 or not found:
        return out.returncode or 1, out.stdout[-3000:] + out.stderr[-3000:]
    return 0, json.loads(json.loads(f'"{found[0]}"'))


@pytest.fixture()
def inventory(tmp_path) -> Path:
    """The AWS inventory's group_vars with one host per tier, as the aws_ec2 inventory lists
    them (owner_id is the account)."""
    inv = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventories" / "aws" / "group_vars", inv / "group_vars", symlinks=False)
    host = f"{{ansible_connection: local, ansible_python_interpreter: {sys.executable}, owner_id: '{ACCOUNT}'}}"
    (inv / "hosts.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
        "  children:\n"
        f"    proxy:\n      hosts:\n        p1: {host}\n"
        f"    openhands:\n      hosts:\n        s1: {host}\n")
    return inv


def firewall_checks():
    """The egress firewall role's filter plugin (its input checks)."""
    return load_module(ROOT / "roles" / "egress_firewall" / "filter_plugins" / "egress_firewall.py", "egress_firewall_filters")


LOOKUP = "lookup('airlock_aws_prefix_list', '{name}', region='{region}', endpoint_url=lookup('env', 'AWS_URL'))"


def test_the_lookup_returns_the_aws_managed_lists_cidrs_only(moto, inventory):
    ec2 = moto.client("ec2")
    want = aws_s3_cidrs(ec2)
    assert want, "moto's S3 prefix list is empty: nothing to compare"
    # A customer-managed list of the same name, holding everything: it must not be read.
    own = ec2.create_managed_prefix_list(PrefixListName=S3_LIST, MaxEntries=2, AddressFamily="IPv4",
                                         Entries=[{"Cidr": "0.0.0.0/0"}])["PrefixList"]["PrefixListId"]
    try:
        rc, got = template(moto, LOOKUP.format(name=S3_LIST, region=REGION), inventory)
        assert rc == 0, got
        assert got == want
        assert "0.0.0.0/0" not in got
    finally:
        ec2.delete_managed_prefix_list(PrefixListId=own)


@pytest.mark.parametrize("name,region,message", [
    ("com.amazonaws.us-east-1.nothing", REGION, "no AWS-managed prefix list named com.amazonaws.us-east-1.nothing"),
    ("s3", REGION, "one AWS-managed prefix list name is needed"),
    (S3_LIST, "us-east", "region 'us-east' is not an AWS region"),
])
def test_an_unknown_list_is_an_error_naming_it(moto, inventory, name, region, message):
    rc, out = template(moto, LOOKUP.format(name=name, region=region), inventory)
    assert rc != 0 and message in out, out
    # The control: the same call with the real list's name works.
    rc, got = template(moto, LOOKUP.format(name=S3_LIST, region=REGION), inventory)
    assert rc == 0 and got == aws_s3_cidrs(moto.client("ec2")), got


def test_the_server_reaches_s3_as_a_host_service_and_the_proxy_gets_none(moto, inventory):
    cidrs = aws_s3_cidrs(moto.client("ec2"))
    rc, server = template(moto, "[airlock_host_services, backup_s3_enabled | bool, egress_firewall_metadata_access | bool]",
                          inventory, "s1")
    assert rc == 0, server
    assert server == [[{"name": "backup-s3",
                        "hosts": [f"s3.{REGION}.amazonaws.com", f"{BUCKET}.s3.{REGION}.amazonaws.com"],
                        "cidrs": cidrs, "port": 443},
                       # The log shipper's endpoint: by name (the interface endpoint's stable addresses).
                       {"name": "cloudwatch-logs", "hosts": [f"logs.{REGION}.amazonaws.com"], "port": 443}], True, True]
    # The shared mapping hands the same entries to the egress firewall and the local resolver,
    # and the firewall's own checks take them as they are (a resolver is named, root alone).
    rc, mapped = template(moto, "[egress_firewall_host_services, dns_resolver_host_services, egress_firewall_dns_servers]",
                          inventory, "s1")
    assert rc == 0, mapped
    assert mapped[0] == server[0] and mapped[1] == server[0]
    errors: list = []
    firewall_checks()._host_service_errors(
        {"host_services": mapped[0], "host_service_users": ["root"], "dns_servers": mapped[2]}, errors)
    assert errors == []
    # The proxy (UFW, open egress on 443 through its security group) gets no such entry.
    rc, proxy = template(moto, "airlock_host_services | default('undefined')", inventory, "p1")
    assert rc == 0 and proxy == "undefined", proxy


def test_without_the_bucket_there_is_no_route_and_no_api_call(moto, inventory):
    """airlock_aws_backup_s3_enabled: false: no S3 entry and no S3 copy, and the prefix list
    is never read: with the endpoint pointing nowhere the templating still succeeds (the
    control above reads it). Without the evidence set either, no host service is left and
    the metadata service stays closed (no Bedrock model either)."""
    off = {"airlock_aws_backup_s3_enabled": False, "airlock_aws_endpoint_url": "http://127.0.0.1:9"}
    probe = "[airlock_host_services | map(attribute='name'), backup_s3_enabled | bool, egress_firewall_metadata_access | bool]"
    rc, server = template(moto, probe, inventory, "s1", off)
    assert rc == 0, server
    assert server == [["cloudwatch-logs"], False, True]
    rc, server = template(moto, probe, inventory, "s1", {**off, "airlock_aws_evidence_enabled": False})
    assert rc == 0, server
    assert server == [[], False, False]
