"""The S3 backup repository against moto: the bucket's settings, each tier's prefix-scoped
grant, the S3 gateway endpoint and its policy, the security group rules to S3's prefix
list and the network ACL entries, the inventory's mapping onto the backup role, drift,
idempotence and teardown.

iota runs with the AWS inventory's defaults (backup bucket and evidence on). Everything is
read back with boto3 and compared exactly. moto does not evaluate IAM or endpoint policies
on requests, so the grants are checked twice: as documents, and through moto's own policy
evaluator (moto.iam.access_control.IAMPolicy) with a positive control beside every
negative one (the own prefix is allowed where another tier's prefix or another bucket is
not). That AWS applies the s3:prefix condition of ListBucket is not tested here: the
condition is compared as written.
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
from moto.iam.access_control import IAMPolicy, PermissionResult

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
ENV = "iota"
BUCKET = f"airlock-{ENV}-{REGION}-{ACCOUNT}-backup"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
ROLES = {"proxy": f"airlock-{ENV}-{REGION}-proxy", "openhands": f"airlock-{ENV}-{REGION}-server"}
PREFIXES = {"proxy": "airlock/proxy", "openhands": "airlock/openhands"}
OTHER = {"proxy": "openhands", "openhands": "proxy"}
IOTA: dict = {}


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def doc(value):
    return json.loads(value) if isinstance(value, str) else value


def allowed(policy, action, resource):
    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


@pytest.fixture(scope="module")
def runs(moto, playbook):
    moto.reset()
    first = playbook("aws_provision.yml", ENV, IOTA)
    assert first.rc == 0, first.output[-4000:]
    second = playbook("aws_provision.yml", ENV, IOTA)
    assert second.rc == 0, second.output[-4000:]
    return {"first": first, "second": second}


@pytest.fixture(scope="module")
def clients(moto, runs):
    return {name: moto.client(name) for name in ("ec2", "iam", "s3")}


@pytest.fixture(scope="module")
def route_tables(clients):
    found = clients["ec2"].describe_route_tables(
        Filters=[{"Name": "tag:environment", "Values": [ENV]}])["RouteTables"]
    by_name = {tags(rt)["Name"]: rt for rt in found}
    assert set(by_name) == {f"airlock-{ENV}-public-rt", f"airlock-{ENV}-private-rt"}, by_name
    return by_name


def s3_endpoints(ec2):
    return [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
            if tags(e).get("environment") == ENV and e["ServiceName"] == f"com.amazonaws.{REGION}.s3"
            and e["State"].lower() not in ("deleted", "deleting")]


def grant(iam, tier):
    return doc(iam.get_role_policy(RoleName=ROLES[tier], PolicyName="backup-s3")["PolicyDocument"])


# --- Converge and idempotence ------------------------------------------------------------------


def test_first_run_creates_second_run_changes_nothing(runs):
    assert runs["first"].recap["changed"] > 0
    assert runs["second"].recap["changed"] == 0, runs["second"].output[-4000:]


# --- The bucket ----------------------------------------------------------------------------------


def test_bucket_exists_with_the_derived_name_and_tags(clients):
    s3 = clients["s3"]
    assert BUCKET in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    bucket_tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]}
    assert (bucket_tags["project"], bucket_tags["environment"], bucket_tags["Name"]) == ("airlock", ENV, BUCKET)


def test_bucket_is_encrypted_versioned_and_private(clients):
    s3 = clients["s3"]
    (rule,) = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    (ownership,) = s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"]["Rules"]
    assert ownership["ObjectOwnership"] == "BucketOwnerEnforced"


def test_bucket_policy_refuses_requests_without_tls(clients):
    policy = doc(clients["s3"].get_bucket_policy(Bucket=BUCKET)["Policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert sorted(deny["Resource"]) == [BUCKET_ARN, f"{BUCKET_ARN}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_noncurrent_versions_expire(clients):
    (rule,) = clients["s3"].get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7


# --- The grants ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["proxy", "openhands"])
def test_grant_is_exactly_the_tiers_prefix(clients, tier):
    statements = {s["Sid"]: s for s in grant(clients["iam"], tier)["Statement"]}
    assert set(statements) == {"BackupListOwnPrefix", "BackupFindTheBucketsRegion", "BackupOwnObjects"}
    listing = statements["BackupListOwnPrefix"]
    assert (listing["Action"], listing["Resource"]) == ("s3:ListBucket", BUCKET_ARN)
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [PREFIXES[tier], f"{PREFIXES[tier]}/*"]}}
    objects = statements["BackupOwnObjects"]
    assert sorted(objects["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert objects["Resource"] == f"{BUCKET_ARN}/{PREFIXES[tier]}/*"
    assert all(s["Effect"] == "Allow" for s in statements.values())


@pytest.mark.parametrize("tier", ["proxy", "openhands"])
def test_grant_allows_the_own_prefix_and_nothing_beside_it(clients, tier):
    policy = grant(clients["iam"], tier)
    own = f"{BUCKET_ARN}/{PREFIXES[tier]}/data/ab/abcdef"
    # Positive control first: the same evaluator says yes to the tier's own objects.
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert allowed(policy, action, own), action
    assert not allowed(policy, "s3:PutObject", f"{BUCKET_ARN}/{PREFIXES[OTHER[tier]]}/data/ab/abcdef")
    assert not allowed(policy, "s3:GetObject", f"{BUCKET_ARN}/{PREFIXES[OTHER[tier]]}/config")
    assert not allowed(policy, "s3:PutObject", f"{BUCKET_ARN}/elsewhere")
    assert not allowed(policy, "s3:PutObject", f"arn:aws:s3:::someone-elses-bucket/{PREFIXES[tier]}/x")
    assert not allowed(policy, "s3:DeleteBucket", BUCKET_ARN)
    assert not allowed(policy, "s3:PutBucketPolicy", BUCKET_ARN)


def test_both_roles_carry_the_grant_next_to_their_other_policies(clients):
    iam = clients["iam"]
    assert sorted(iam.list_role_policies(RoleName=ROLES["proxy"])["PolicyNames"]) == ["backup-s3", "evidence-logs"]
    assert sorted(iam.list_role_policies(RoleName=ROLES["openhands"])["PolicyNames"]) == ["backup-s3", "evidence-logs"]


# --- The gateway endpoint ------------------------------------------------------------------------


def test_gateway_endpoint_on_both_route_tables(clients, route_tables):
    (endpoint,) = s3_endpoints(clients["ec2"])
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert sorted(endpoint["RouteTableIds"]) == sorted(rt["RouteTableId"] for rt in route_tables.values())
    assert tags(endpoint)["Name"] == f"airlock-{ENV}-s3"
    # The route tables route S3's prefix list to the endpoint (their other routes untouched).
    for name, table in route_tables.items():
        fresh = clients["ec2"].describe_route_tables(RouteTableIds=[table["RouteTableId"]])["RouteTables"][0]
        targets = [r.get("GatewayId") for r in fresh["Routes"] if r.get("DestinationPrefixListId")]
        assert targets == [endpoint["VpcEndpointId"]], name


def test_gateway_endpoint_policy_admits_this_bucket_only(clients):
    (endpoint,) = s3_endpoints(clients["ec2"])
    policy = doc(endpoint["PolicyDocument"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow" and statement["Principal"] == "*"
    assert sorted(statement["Resource"]) == [BUCKET_ARN, f"{BUCKET_ARN}/*"]
    assert sorted(statement["Action"]) == ["s3:DeleteObject", "s3:GetBucketLocation", "s3:GetObject",
                                           "s3:ListBucket", "s3:PutObject"]
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
    # Positive control beside the negative ones, through the same evaluator.
    assert allowed(policy, "s3:PutObject", f"{BUCKET_ARN}/airlock/openhands/data/x")
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::exfiltration-bucket/loot")
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::ubuntu-mirror/pool/x.deb")
    assert not allowed(policy, "s3:PutBucketPolicy", BUCKET_ARN)


def test_security_groups_open_443_to_s3s_prefix_list_only(clients, route_tables):
    """Both hosts may open 443 to the prefix list the endpoint's routes name, and the server
    to nothing else outside the VPC on 443 (no LLM host names here: no 0.0.0.0/0 rule)."""
    ec2 = clients["ec2"]
    (endpoint,) = s3_endpoints(ec2)
    fresh = ec2.describe_route_tables(RouteTableIds=[route_tables[f"airlock-{ENV}-private-rt"]["RouteTableId"]])
    (prefix_list,) = [r["DestinationPrefixListId"] for r in fresh["RouteTables"][0]["Routes"]
                      if r.get("GatewayId") == endpoint["VpcEndpointId"]]
    groups = {g["GroupName"]: g for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:environment", "Values": [ENV]}])["SecurityGroups"]}
    for name in (f"airlock-{ENV}-proxy", f"airlock-{ENV}-server"):
        to_lists = [(p["FromPort"], p["ToPort"], [x["PrefixListId"] for x in p.get("PrefixListIds", [])])
                    for p in groups[name]["IpPermissionsEgress"] if p.get("PrefixListIds")]
        assert to_lists == [(443, 443, [prefix_list])], name
    server_443 = [p for p in groups[f"airlock-{ENV}-server"]["IpPermissionsEgress"]
                  if p.get("FromPort") == 443 and p.get("IpRanges")]
    assert server_443 == [], server_443


def test_network_acls_carry_443_out_of_both_subnets(clients):
    def entries(name, egress):
        (nacl,) = clients["ec2"].describe_network_acls(Filters=[{"Name": "tag:Name", "Values": [name]}])["NetworkAcls"]
        return {(e["CidrBlock"], e["PortRange"]["From"], e["PortRange"]["To"])
                for e in nacl["Entries"] if e["Egress"] == egress and e["RuleNumber"] != 32767}
    assert ("0.0.0.0/0", 443, 443) in entries(f"airlock-{ENV}-private-nacl", egress=True)
    assert ("0.0.0.0/0", 1024, 65535) in entries(f"airlock-{ENV}-private-nacl", egress=False)
    assert ("0.0.0.0/0", 443, 443) in entries(f"airlock-{ENV}-public-nacl", egress=True)


# --- The inventory's mapping onto the backup role ---------------------------------------------------


def test_hosts_back_up_into_the_bucket_under_their_tiers_prefix(local_inventory, tmp_path):
    """The AWS inventory maps the backup role onto the bucket aws_enclave made, with the
    account the aws_ec2 inventory reports (owner_id) and each tier's own prefix; a host
    without owner_id gets no bucket name (the backup role then refuses the run). Both
    tiers' copies are on (the server's route to S3: tests/aws/test_prefix_list_lookup.py)."""
    inv = tmp_path / "inventory"
    shutil.copytree(local_inventory / "group_vars", inv / "group_vars")
    host = f"{{ansible_connection: local, ansible_python_interpreter: {sys.executable}"
    (inv / "hosts.yml").write_text(
        "all:\n  children:\n"
        f"    proxy:\n      hosts:\n        p1: {host}, owner_id: '{ACCOUNT}'}}\n"
        f"    openhands:\n      hosts:\n        s1: {host}, owner_id: '{ACCOUNT}'}}\n"
        f"        s2: {host}}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRLOCK_"))}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), AIRLOCK_ENVIRONMENT=ENV, ANSIBLE_NOCOLOR="1")
    msg = ("BACKUP {{ inventory_hostname }}|{{ backup_s3_enabled }}|{{ backup_s3_bucket | trim }}|"
           "{{ backup_s3_prefix | trim }}|{{ backup_s3_region }}|END")
    out = subprocess.run([str(Path(sys.executable).parent / "ansible"), "all", "-i", str(inv),
                          "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": msg})],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    found = dict(re.findall(r"BACKUP (\w+)\|(.*?)\|END", out.stdout))
    assert found == {
        "p1": f"True|{BUCKET}|airlock/proxy|{REGION}",
        "s1": f"True|{BUCKET}|airlock/openhands|{REGION}",
        "s2": f"True||airlock/openhands|{REGION}",
    }, out.stdout[-3000:]


# --- Drift ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repaired(clients, playbook):
    """Drift by hand: versioning suspended, the TLS policy removed, a whole-bucket grant on
    the server's role, the endpoint opened to every bucket; then a run and a rerun."""
    s3, iam, ec2 = clients["s3"], clients["iam"], clients["ec2"]
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_bucket_policy(Bucket=BUCKET)
    iam.put_role_policy(RoleName=ROLES["openhands"], PolicyName="backup-s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    (endpoint,) = s3_endpoints(ec2)
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}))
    run = playbook("aws_provision.yml", ENV, IOTA)
    again = playbook("aws_provision.yml", ENV, IOTA)
    return {"run": run, "again": again}


def test_drift_is_repaired(repaired, clients):
    assert repaired["run"].rc == 0, repaired["run"].output[-4000:]
    assert repaired["run"].recap["changed"] >= 3
    assert repaired["again"].recap["changed"] == 0, repaired["again"].output[-4000:]
    s3 = clients["s3"]
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert doc(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"][0]["Sid"] == "DenyInsecureTransport"
    assert not allowed(grant(clients["iam"], "openhands"), "s3:PutObject", "arn:aws:s3:::other/x")
    assert allowed(grant(clients["iam"], "openhands"), "s3:PutObject", f"{BUCKET_ARN}/airlock/openhands/x")
    (endpoint,) = s3_endpoints(clients["ec2"])
    assert not allowed(doc(endpoint["PolicyDocument"]), "s3:PutObject", "arn:aws:s3:::other/x")


# --- Teardown (last) ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torn_down(playbook, repaired, clients):
    """Teardown with backups in the bucket: two versions of one object and a delete marker.
    moto evaluates a bucket policy's conditions without the request's context, so its
    conditional Deny (no TLS) refuses every object call: the objects go in with the policy
    taken off (teardown does not depend on it)."""
    s3 = clients["s3"]
    s3.delete_bucket_policy(Bucket=BUCKET)
    for body in (b"one", b"two"):
        s3.put_object(Bucket=BUCKET, Key="airlock/openhands/config", Body=body)
    s3.delete_object(Bucket=BUCKET, Key="airlock/openhands/config")
    versions = s3.list_object_versions(Bucket=BUCKET)
    assert len(versions.get("Versions", [])) == 2 and len(versions.get("DeleteMarkers", [])) == 1
    first = playbook("teardown.yml", ENV)
    second = playbook("teardown.yml", ENV)
    return {"first": first, "second": second}


def test_teardown_removes_the_bucket_and_the_endpoint(torn_down, clients):
    assert torn_down["first"].rc == 0, torn_down["first"].output[-4000:]
    assert BUCKET not in [b["Name"] for b in clients["s3"].list_buckets()["Buckets"]]
    assert s3_endpoints(clients["ec2"]) == []
    names = [r["RoleName"] for r in clients["iam"].list_roles()["Roles"]]
    assert not set(names) & set(ROLES.values())


def test_teardown_twice_changes_nothing(torn_down):
    assert torn_down["second"].rc == 0, torn_down["second"].output[-4000:]
    assert torn_down["second"].recap["changed"] == 0, torn_down["second"].output[-4000:]
