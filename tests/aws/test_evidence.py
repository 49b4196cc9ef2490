"""What leaves the box on AWS, against moto: the evidence (log groups, the logs interface
endpoint and its policy, the instance roles' log policies, VPC Flow Logs, CloudTrail) and
the backups (the S3 repository: the bucket's settings, each tier's prefix-scoped grant, the
S3 gateway endpoint and its policy, the security group rules to S3's prefix list, the
network ACL entries, the inventory's mapping onto the backup role); then drift and teardown.

Both run in one enclave, eta, provisioned once: the AWS inventory's defaults (the evidence
set and the backup bucket on), with CloudTrail, a Bedrock entry and ACME on Route 53 added,
so the server's role carries its Bedrock, log and backup policies side by side and the
proxy's its ACME grant. (An enclave of the defaults alone is beta in test_enclave.py.)
Everything is read back with boto3 and compared exactly: a wildcard
resource, an extra action or an extra group in any policy fails a test here.

moto (5.2) supports every API used: CloudWatch Logs (groups, retention, tags), EC2 flow
logs (moto checks that the group exists), VPC endpoints (it stores the policy), IAM,
CloudTrail (trail and status) and S3 (policy, public access block, encryption, versioning,
lifecycle). moto's DeleteTrail ignores ARNs: tests/helpers/moto_launcher.py corrects that.
moto delivers no flow records and does not evaluate IAM or endpoint policies on requests,
so the backup grants are checked twice: as documents, and through moto's own policy
evaluator (moto.iam.access_control.IAMPolicy) with a positive control beside every
negative one (the own prefix is allowed where another tier's prefix or another bucket is
not). That AWS refuses another account or another group, applies the s3:prefix condition
of ListBucket, and that flow records arrive, is not tested here.
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
ENV = "eta"
PREFIX = f"/airlock/{ENV}"
STREAMS = {
    "proxy": ["audit", "alerts", "nginx-access", "nginx-error", "fail2ban"],
    "openhands": ["audit", "alerts", "fail2ban", "egress-drops", "llm-gateway"],
}
GROUPS = {tier: sorted(f"{PREFIX}/{tier}/{s}" for s in streams) for tier, streams in STREAMS.items()}
FLOW_GROUP = f"{PREFIX}/vpc-flow-logs"
WRITE_ACTIONS = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
ROLES = {"proxy": f"airlock-{ENV}-{REGION}-proxy", "openhands": f"airlock-{ENV}-{REGION}-server"}
FLOW_ROLE = f"airlock-{ENV}-{REGION}-flow-logs"
TRAIL = f"airlock-{ENV}-trail"
TRAIL_BUCKET = f"airlock-{ENV}-{REGION}-{ACCOUNT}-trail"
BACKUP_BUCKET = f"airlock-{ENV}-{REGION}-{ACCOUNT}-backup"
BACKUP_ARN = f"arn:aws:s3:::{BACKUP_BUCKET}"
PREFIXES = {"proxy": "airlock/proxy", "openhands": "airlock/openhands"}
OTHER = {"proxy": "openhands", "openhands": "proxy"}
ETA = {
    "airlock_llm_endpoints": [{"name": "bedrock", "bedrock": True, "region": REGION}],
    "airlock_aws_bedrock_models": ["anthropic.claude-3-5-sonnet-20240620-v1:0"],
    "airlock_aws_cloudtrail_enabled": True,
    # ACME dns-01 on Route 53: the proxy's role also gets the challenge record's grant.
    "airlock_aws_acme_route53_zone_id": "Z0123456789ABCDEFGHIJ",
    "airlock_public_hostname": "openhands.example.org",
}


def arn(group):
    return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:*"


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def doc(value):
    return json.loads(value) if isinstance(value, str) else value


def as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def runs(moto, playbook):
    moto.reset()
    first = playbook("aws_provision.yml", ENV, ETA)
    assert first.rc == 0, first.output[-4000:]
    second = playbook("aws_provision.yml", ENV, ETA)
    assert second.rc == 0, second.output[-4000:]
    return {"first": first, "second": second}


@pytest.fixture(scope="module")
def clients(moto, runs):
    return {name: moto.client(name) for name in ("ec2", "logs", "iam", "cloudtrail", "s3")}


@pytest.fixture(scope="module")
def vpc(clients):
    (found,) = clients["ec2"].describe_vpcs(Filters=[{"Name": "tag:environment", "Values": [ENV]}])["Vpcs"]
    return found


def live_endpoints(ec2):
    return [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
            if tags(e).get("environment") == ENV and e["State"].lower() not in ("deleted", "deleting")]


def logs_endpoint(ec2):
    found = [e for e in live_endpoints(ec2) if e["ServiceName"] == f"com.amazonaws.{REGION}.logs"]
    assert len(found) == 1, found
    return found[0]


def log_groups(logs):
    return {g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix=PREFIX + "/")["logGroups"]}


def inline(iam, role, name):
    return doc(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])


@pytest.fixture(scope="module")
def route_tables(clients):
    found = clients["ec2"].describe_route_tables(
        Filters=[{"Name": "tag:environment", "Values": [ENV]}])["RouteTables"]
    by_name = {tags(rt)["Name"]: rt for rt in found}
    assert set(by_name) == {f"airlock-{ENV}-public-rt", f"airlock-{ENV}-private-rt"}, by_name
    return by_name


def s3_endpoints(ec2):
    return [e for e in live_endpoints(ec2) if e["ServiceName"] == f"com.amazonaws.{REGION}.s3"]


def grant(iam, tier):
    return inline(iam, ROLES[tier], "backup-s3")


def allowed(policy, action, resource):
    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


# --- Converge and idempotence ------------------------------------------------------------------


def test_first_run_creates_second_run_changes_nothing(runs):
    assert runs["first"].recap["changed"] > 0
    assert runs["second"].recap["changed"] == 0, runs["second"].output[-4000:]


def test_report_names_groups_and_endpoint(runs):
    out = runs["second"].output
    for group in GROUPS["proxy"] + GROUPS["openhands"]:
        assert group in out
    assert re.search(r"logs endpoint: vpce-[0-9a-f]+ \(com\.amazonaws\.us-east-1\.logs", out), out[-3000:]
    assert f"cloudtrail: {TRAIL} -> s3://{TRAIL_BUCKET}" in out


# --- Log groups --------------------------------------------------------------------------------


def test_log_groups_exist_with_retention_and_tags(clients):
    found = log_groups(clients["logs"])
    assert set(found) == set(GROUPS["proxy"] + GROUPS["openhands"] + [FLOW_GROUP])
    for name, group in found.items():
        assert group["retentionInDays"] == 365, name
        group_tags = clients["logs"].list_tags_log_group(logGroupName=name)["tags"]
        assert group_tags["project"] == "airlock" and group_tags["environment"] == ENV


# --- The logs interface endpoint ----------------------------------------------------------------


def test_logs_endpoint_in_private_subnet_behind_its_group(clients, vpc):
    ec2 = clients["ec2"]
    endpoint = logs_endpoint(ec2)
    assert endpoint["VpcEndpointType"] == "Interface"
    assert endpoint["VpcId"] == vpc["VpcId"]
    (private,) = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": [f"airlock-{ENV}-private"]}])["Subnets"]
    assert endpoint["SubnetIds"] == [private["SubnetId"]]
    assert endpoint.get("PrivateDnsEnabled", True) is True
    (group,) = endpoint["Groups"]
    (sg,) = ec2.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"]
    assert tags(sg)["Name"] == f"airlock-{ENV}-logs-endpoint"


def test_logs_endpoint_policy_names_exactly_the_host_groups(clients):
    policy = doc(logs_endpoint(clients["ec2"])["PolicyDocument"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow" and statement["Principal"] == "*"
    assert sorted(as_list(statement["Action"])) == WRITE_ACTIONS
    assert sorted(as_list(statement["Resource"])) == sorted(arn(g) for g in GROUPS["proxy"] + GROUPS["openhands"])
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
    assert set(statement) == {"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}


def sg_by_name(ec2, name):
    (sg,) = ec2.describe_security_groups(Filters=[{"Name": "tag:Name", "Values": [name]}])["SecurityGroups"]
    return sg


def peers(perms, port=443):
    return {p["GroupId"] for perm in perms if perm.get("FromPort") == port and perm.get("ToPort") == port
            for p in perm.get("UserIdGroupPairs", [])}


def test_security_groups_open_443_to_the_endpoint_from_proxy_and_server_only(clients):
    ec2 = clients["ec2"]
    proxy, server, logs = (sg_by_name(ec2, f"airlock-{ENV}-{n}") for n in ("proxy", "server", "logs-endpoint"))
    assert peers(logs["IpPermissions"]) == {proxy["GroupId"], server["GroupId"]}
    assert [(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")) for p in logs["IpPermissions"]] == [("tcp", 443, 443)]
    assert not [p for p in logs["IpPermissions"] if p.get("IpRanges")], "no CIDR may reach the endpoint"
    assert logs["IpPermissionsEgress"] == []
    assert logs["GroupId"] in peers(proxy["IpPermissionsEgress"])
    assert logs["GroupId"] in peers(server["IpPermissionsEgress"])


def test_network_acls_let_the_proxy_reach_the_endpoint_across_the_subnets(clients):
    ec2 = clients["ec2"]

    def entries(name, egress):
        (nacl,) = ec2.describe_network_acls(Filters=[{"Name": "tag:Name", "Values": [name]}])["NetworkAcls"]
        return {(e["CidrBlock"], e["PortRange"]["From"], e["PortRange"]["To"])
                for e in nacl["Entries"] if e["Egress"] == egress and e["RuleNumber"] != 32767}

    assert ("10.0.1.0/24", 443, 443) in entries(f"airlock-{ENV}-public-nacl", egress=True)
    assert ("10.0.0.0/24", 443, 443) in entries(f"airlock-{ENV}-private-nacl", egress=False)
    # The replies: ephemeral ports back to the public subnet, and into it from anywhere.
    assert ("10.0.0.0/24", 1024, 65535) in entries(f"airlock-{ENV}-private-nacl", egress=True)
    assert ("0.0.0.0/0", 1024, 65535) in entries(f"airlock-{ENV}-public-nacl", egress=False)


# --- IAM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["proxy", "openhands"])
def test_tier_log_policy_is_exactly_its_groups(clients, tier):
    """Exact actions on exact ARNs: a wildcard, another tier's group or another action fails."""
    iam = clients["iam"]
    (statement,) = inline(iam, ROLES[tier], "evidence-logs")["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(as_list(statement["Action"])) == WRITE_ACTIONS
    resources = sorted(as_list(statement["Resource"]))
    assert resources == sorted(arn(g) for g in GROUPS[tier])
    for resource in resources:
        assert re.fullmatch(rf"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{PREFIX}/{tier}/[a-z0-9-]+:\*", resource)
    assert set(statement) == {"Sid", "Effect", "Action", "Resource"}, "no condition, principal or NotAction"


def test_roles_hold_only_their_policies(clients):
    iam = clients["iam"]
    # backup-s3: the backup bucket's grant (on by default; read back below).
    assert sorted(iam.list_role_policies(RoleName=ROLES["proxy"])["PolicyNames"]) == ["acme-route53", "backup-s3",
                                                                                      "evidence-logs"]
    assert sorted(iam.list_role_policies(RoleName=ROLES["openhands"])["PolicyNames"]) == ["backup-s3", "bedrock-invoke",
                                                                                          "evidence-logs"]
    for role in ROLES.values():
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
        trust = doc(iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"])
        assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]


def test_proxy_acme_grant_is_the_challenge_record_only(clients):
    """ACME dns-01: the proxy may change TXT records named _acme-challenge.<its name> in the
    one zone (UPSERT, DELETE), read that zone, wait for a change and find a zone by name;
    nothing else, and the server gets no Route 53 grant at all."""
    zone = "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"
    statements = {s["Sid"]: s for s in inline(clients["iam"], ROLES["proxy"], "acme-route53")["Statement"]}
    assert set(statements) == {"AcmeChallengeRecordOnly", "AcmeChallengeReadTheZone",
                               "AcmeChallengeWaitForTheChange", "AcmeChallengeFindTheZoneByName"}
    change = statements["AcmeChallengeRecordOnly"]
    assert (change["Action"], change["Resource"]) == ("route53:ChangeResourceRecordSets", zone)
    assert change["Condition"] == {"ForAllValues:StringEquals": {
        "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
        "route53:ChangeResourceRecordSetsNormalizedRecordNames": ["_acme-challenge.openhands.example.org"],
        "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"]}}
    read = statements["AcmeChallengeReadTheZone"]
    assert (sorted(as_list(read["Action"])), read["Resource"]) == (
        ["route53:GetHostedZone", "route53:ListResourceRecordSets"], zone)
    assert (statements["AcmeChallengeWaitForTheChange"]["Action"],
            statements["AcmeChallengeWaitForTheChange"]["Resource"]) == ("route53:GetChange", "arn:aws:route53:::change/*")
    assert (statements["AcmeChallengeFindTheZoneByName"]["Action"],
            statements["AcmeChallengeFindTheZoneByName"]["Resource"]) == ("route53:ListHostedZonesByName", "*")
    assert all(s["Effect"] == "Allow" for s in statements.values())
    assert "acme-route53" not in clients["iam"].list_role_policies(RoleName=ROLES["openhands"])["PolicyNames"]


def test_each_host_has_its_tier_profile(clients):
    iam, ec2 = clients["iam"], clients["ec2"]
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:environment", "Values": [ENV]},
                                                   {"Name": "instance-state-name", "Values": ["running"]}])
    hosts = {tags(i)["tier"]: i for r in reservations["Reservations"] for i in r["Instances"]}
    assert set(hosts) == {"proxy", "openhands"}
    for tier, host in hosts.items():
        profile = iam.get_instance_profile(InstanceProfileName=ROLES[tier])["InstanceProfile"]
        assert [r["RoleName"] for r in profile["Roles"]] == [ROLES[tier]]
        assert host["IamInstanceProfile"]["Arn"] == profile["Arn"]
        assert host["MetadataOptions"]["HttpPutResponseHopLimit"] == 1


# --- VPC Flow Logs ----------------------------------------------------------------------------------


def test_flow_log_on_the_vpc_to_its_group(clients, vpc):
    iam = clients["iam"]
    flow_logs = clients["ec2"].describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc["VpcId"]]}])
    (flow_log,) = flow_logs["FlowLogs"]
    assert flow_log["LogGroupName"] == FLOW_GROUP
    assert flow_log["TrafficType"] == "ALL"
    assert flow_log["DeliverLogsPermissionArn"] == iam.get_role(RoleName=FLOW_ROLE)["Role"]["Arn"]
    assert tags(flow_log)["environment"] == ENV


def test_flow_log_role_trusts_the_service_and_writes_only_its_group(clients):
    iam = clients["iam"]
    trust = doc(iam.get_role(RoleName=FLOW_ROLE)["Role"]["AssumeRolePolicyDocument"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert iam.list_role_policies(RoleName=FLOW_ROLE)["PolicyNames"] == ["flow-logs-delivery"]
    assert iam.list_attached_role_policies(RoleName=FLOW_ROLE)["AttachedPolicies"] == []
    (allow,) = inline(iam, FLOW_ROLE, "flow-logs-delivery")["Statement"]
    assert sorted(as_list(allow["Action"])) == WRITE_ACTIONS
    assert as_list(allow["Resource"]) == [arn(FLOW_GROUP)]


# --- CloudTrail -------------------------------------------------------------------------------------


def test_trail_logs_into_its_bucket(clients):
    cloudtrail = clients["cloudtrail"]
    (trail,) = cloudtrail.describe_trails(trailNameList=[TRAIL])["trailList"]
    assert trail["S3BucketName"] == TRAIL_BUCKET
    assert trail["LogFileValidationEnabled"] is True
    assert trail["IncludeGlobalServiceEvents"] is True
    assert cloudtrail.get_trail_status(Name=TRAIL)["IsLogging"] is True


def test_trail_bucket_is_private_encrypted_and_admits_this_trail_only(clients):
    s3 = clients["s3"]
    block = s3.get_public_access_block(Bucket=TRAIL_BUCKET)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    (rule,) = s3.get_bucket_encryption(Bucket=TRAIL_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = doc(s3.get_bucket_policy(Bucket=TRAIL_BUCKET)["Policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    trail_arn = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{TRAIL}"
    for sid in ("CloudTrailAclCheck", "CloudTrailWrite"):
        assert by_sid[sid]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert by_sid[sid]["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
    assert by_sid["CloudTrailWrite"]["Resource"] == f"arn:aws:s3:::{TRAIL_BUCKET}/AWSLogs/{ACCOUNT}/*"
    assert by_sid["DenyInsecureTransport"]["Effect"] == "Deny"
    assert set(by_sid) == {"CloudTrailAclCheck", "CloudTrailWrite", "DenyInsecureTransport"}


# --- The backup bucket ----------------------------------------------------------------------------------


def test_bucket_exists_with_the_derived_name_and_tags(clients):
    s3 = clients["s3"]
    assert BACKUP_BUCKET in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    bucket_tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=BACKUP_BUCKET)["TagSet"]}
    assert (bucket_tags["project"], bucket_tags["environment"], bucket_tags["Name"]) == ("airlock", ENV, BACKUP_BUCKET)


def test_bucket_is_encrypted_versioned_and_private(clients):
    s3 = clients["s3"]
    (rule,) = s3.get_bucket_encryption(Bucket=BACKUP_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=BACKUP_BUCKET)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=BACKUP_BUCKET)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    (ownership,) = s3.get_bucket_ownership_controls(Bucket=BACKUP_BUCKET)["OwnershipControls"]["Rules"]
    assert ownership["ObjectOwnership"] == "BucketOwnerEnforced"


def test_bucket_policy_refuses_requests_without_tls(clients):
    policy = doc(clients["s3"].get_bucket_policy(Bucket=BACKUP_BUCKET)["Policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert sorted(deny["Resource"]) == [BACKUP_ARN, f"{BACKUP_ARN}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_noncurrent_versions_expire(clients):
    (rule,) = clients["s3"].get_bucket_lifecycle_configuration(Bucket=BACKUP_BUCKET)["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7


# --- The grants ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["proxy", "openhands"])
def test_grant_is_exactly_the_tiers_prefix(clients, tier):
    statements = {s["Sid"]: s for s in grant(clients["iam"], tier)["Statement"]}
    assert set(statements) == {"BackupListOwnPrefix", "BackupFindTheBucketsRegion", "BackupOwnObjects"}
    listing = statements["BackupListOwnPrefix"]
    assert (listing["Action"], listing["Resource"]) == ("s3:ListBucket", BACKUP_ARN)
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [PREFIXES[tier], f"{PREFIXES[tier]}/*"]}}
    objects = statements["BackupOwnObjects"]
    assert sorted(objects["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert objects["Resource"] == f"{BACKUP_ARN}/{PREFIXES[tier]}/*"
    assert all(s["Effect"] == "Allow" for s in statements.values())


@pytest.mark.parametrize("tier", ["proxy", "openhands"])
def test_grant_allows_the_own_prefix_and_nothing_beside_it(clients, tier):
    policy = grant(clients["iam"], tier)
    own = f"{BACKUP_ARN}/{PREFIXES[tier]}/data/ab/abcdef"
    # Positive control first: the same evaluator says yes to the tier's own objects.
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert allowed(policy, action, own), action
    assert not allowed(policy, "s3:PutObject", f"{BACKUP_ARN}/{PREFIXES[OTHER[tier]]}/data/ab/abcdef")
    assert not allowed(policy, "s3:GetObject", f"{BACKUP_ARN}/{PREFIXES[OTHER[tier]]}/config")
    assert not allowed(policy, "s3:PutObject", f"{BACKUP_ARN}/elsewhere")
    assert not allowed(policy, "s3:PutObject", f"arn:aws:s3:::someone-elses-bucket/{PREFIXES[tier]}/x")
    assert not allowed(policy, "s3:DeleteBucket", BACKUP_ARN)
    assert not allowed(policy, "s3:PutBucketPolicy", BACKUP_ARN)


# --- The backup bucket's gateway endpoint ------------------------------------------------------------------------


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
    assert sorted(statement["Resource"]) == [BACKUP_ARN, f"{BACKUP_ARN}/*"]
    assert sorted(statement["Action"]) == ["s3:DeleteObject", "s3:GetBucketLocation", "s3:GetObject",
                                           "s3:ListBucket", "s3:PutObject"]
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
    # Positive control beside the negative ones, through the same evaluator.
    assert allowed(policy, "s3:PutObject", f"{BACKUP_ARN}/airlock/openhands/data/x")
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::exfiltration-bucket/loot")
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::ubuntu-mirror/pool/x.deb")
    assert not allowed(policy, "s3:PutBucketPolicy", BACKUP_ARN)


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
        "p1": f"True|{BACKUP_BUCKET}|airlock/proxy|{REGION}",
        "s1": f"True|{BACKUP_BUCKET}|airlock/openhands|{REGION}",
        "s2": f"True||airlock/openhands|{REGION}",
    }, out.stdout[-3000:]


# --- Drift ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repaired(clients, playbook, vpc):
    """Drift by hand, in the evidence and in the backups: shorter retention, a wildcard log
    policy on the proxy's role, the flow log replaced by one that records rejects only;
    bucket versioning suspended, its TLS policy removed, a whole-bucket grant on the
    server's role, the S3 endpoint opened to every bucket. Then a run and a rerun."""
    logs, iam, ec2, s3 = clients["logs"], clients["iam"], clients["ec2"], clients["s3"]
    logs.put_retention_policy(logGroupName=GROUPS["proxy"][0], retentionInDays=1)
    iam.put_role_policy(RoleName=ROLES["proxy"], PolicyName="extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}))
    (old,) = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc["VpcId"]]}])["FlowLogs"]
    ec2.delete_flow_logs(FlowLogIds=[old["FlowLogId"]])
    ec2.create_flow_logs(ResourceIds=[vpc["VpcId"]], ResourceType="VPC", TrafficType="REJECT",
                         LogGroupName=FLOW_GROUP, DeliverLogsPermissionArn=old["DeliverLogsPermissionArn"])
    s3.put_bucket_versioning(Bucket=BACKUP_BUCKET, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_bucket_policy(Bucket=BACKUP_BUCKET)
    iam.put_role_policy(RoleName=ROLES["openhands"], PolicyName="backup-s3", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    (endpoint,) = s3_endpoints(ec2)
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}))
    run = playbook("aws_provision.yml", ENV, ETA)
    again = playbook("aws_provision.yml", ENV, ETA)
    return {"run": run, "again": again}


def test_drift_is_repaired(repaired, clients, vpc):
    assert repaired["run"].rc == 0, repaired["run"].output[-4000:]
    assert repaired["run"].recap["changed"] >= 3
    assert repaired["again"].recap["changed"] == 0, repaired["again"].output[-4000:]
    assert log_groups(clients["logs"])[GROUPS["proxy"][0]]["retentionInDays"] == 365
    assert sorted(clients["iam"].list_role_policies(RoleName=ROLES["proxy"])["PolicyNames"]) == ["acme-route53",
                                                                                             "backup-s3",
                                                                                             "evidence-logs"]
    flow_logs = clients["ec2"].describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc["VpcId"]]}])
    assert [(f["TrafficType"], f["LogGroupName"]) for f in flow_logs["FlowLogs"]] == [("ALL", FLOW_GROUP)]


def test_backup_drift_is_repaired(repaired, clients):
    assert repaired["run"].rc == 0, repaired["run"].output[-4000:]
    s3 = clients["s3"]
    assert s3.get_bucket_versioning(Bucket=BACKUP_BUCKET)["Status"] == "Enabled"
    assert doc(s3.get_bucket_policy(Bucket=BACKUP_BUCKET)["Policy"])["Statement"][0]["Sid"] == "DenyInsecureTransport"
    assert not allowed(grant(clients["iam"], "openhands"), "s3:PutObject", "arn:aws:s3:::other/x")
    assert allowed(grant(clients["iam"], "openhands"), "s3:PutObject", f"{BACKUP_ARN}/airlock/openhands/x")
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
    s3.delete_bucket_policy(Bucket=BACKUP_BUCKET)
    for body in (b"one", b"two"):
        s3.put_object(Bucket=BACKUP_BUCKET, Key="airlock/openhands/config", Body=body)
    s3.delete_object(Bucket=BACKUP_BUCKET, Key="airlock/openhands/config")
    versions = s3.list_object_versions(Bucket=BACKUP_BUCKET)
    assert len(versions.get("Versions", [])) == 2 and len(versions.get("DeleteMarkers", [])) == 1
    first = playbook("teardown.yml", ENV)
    second = playbook("teardown.yml", ENV)
    return {"first": first, "second": second}


def test_teardown_removes_the_evidence_set_and_the_backups(torn_down, clients):
    assert torn_down["first"].rc == 0, torn_down["first"].output[-4000:]
    assert log_groups(clients["logs"]) == {}
    assert [f for f in clients["ec2"].describe_flow_logs()["FlowLogs"] if tags(f).get("environment") == ENV] == []
    assert live_endpoints(clients["ec2"]) == []
    assert clients["cloudtrail"].describe_trails()["trailList"] == []
    buckets = [b["Name"] for b in clients["s3"].list_buckets()["Buckets"]]
    assert TRAIL_BUCKET not in buckets and BACKUP_BUCKET not in buckets, "the trail's and the backups' buckets"
    names = [r["RoleName"] for r in clients["iam"].list_roles()["Roles"]]
    assert not set(names) & {*ROLES.values(), FLOW_ROLE}
    assert not [p for p in clients["iam"].list_instance_profiles()["InstanceProfiles"]
                if p["InstanceProfileName"] in ROLES.values()]


def test_teardown_twice_changes_nothing(torn_down):
    assert torn_down["second"].rc == 0, torn_down["second"].output[-4000:]
    assert torn_down["second"].recap["changed"] == 0, torn_down["second"].output[-4000:]
