"""Evidence off the box against moto: log groups, the logs interface endpoint and its
policy, the instance roles' log policies, VPC Flow Logs, CloudTrail, drift, teardown.

eta has the evidence set (the default) with CloudTrail and a Bedrock entry, so the
server's role carries both its Bedrock and its log policy. Everything is read back with
boto3 and compared exactly: a wildcard resource, an extra action or an extra group in any
policy fails a test here.

moto (5.2) supports every API used: CloudWatch Logs (groups, retention, tags), EC2 flow
logs (moto checks that the group exists), VPC endpoints (it stores the policy), IAM,
CloudTrail (trail and status) and S3 (policy, public access block, encryption). moto's
DeleteTrail ignores ARNs: tests/helpers/moto_launcher.py corrects that. moto does not
evaluate policies and delivers no flow records: that AWS refuses another account or
another group, and that records arrive, is not tested here.
"""
from __future__ import annotations

import json
import re

import pytest

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
BUCKET = f"airlock-{ENV}-{REGION}-{ACCOUNT}-trail"
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


# --- Converge and idempotence ------------------------------------------------------------------


def test_first_run_creates_second_run_changes_nothing(runs):
    assert runs["first"].recap["changed"] > 0
    assert runs["second"].recap["changed"] == 0, runs["second"].output[-4000:]


def test_report_names_groups_and_endpoint(runs):
    out = runs["second"].output
    for group in GROUPS["proxy"] + GROUPS["openhands"]:
        assert group in out
    assert re.search(r"logs endpoint: vpce-[0-9a-f]+ \(com\.amazonaws\.us-east-1\.logs", out), out[-3000:]
    assert f"cloudtrail: {TRAIL} -> s3://{BUCKET}" in out


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
    # backup-s3: the backup bucket's grant (on by default; test_backup_bucket.py reads it back).
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
    assert trail["S3BucketName"] == BUCKET
    assert trail["LogFileValidationEnabled"] is True
    assert trail["IncludeGlobalServiceEvents"] is True
    assert cloudtrail.get_trail_status(Name=TRAIL)["IsLogging"] is True


def test_trail_bucket_is_private_encrypted_and_admits_this_trail_only(clients):
    s3 = clients["s3"]
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    (rule,) = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = doc(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    trail_arn = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{TRAIL}"
    for sid in ("CloudTrailAclCheck", "CloudTrailWrite"):
        assert by_sid[sid]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
        assert by_sid[sid]["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
    assert by_sid["CloudTrailWrite"]["Resource"] == f"arn:aws:s3:::{BUCKET}/AWSLogs/{ACCOUNT}/*"
    assert by_sid["DenyInsecureTransport"]["Effect"] == "Deny"
    assert set(by_sid) == {"CloudTrailAclCheck", "CloudTrailWrite", "DenyInsecureTransport"}


# --- Drift ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repaired(clients, playbook, vpc):
    """Drift by hand: shorter retention, a wildcard log policy on the proxy's role, the flow
    log replaced by one that records rejects only; then a run and a rerun."""
    logs, iam, ec2 = clients["logs"], clients["iam"], clients["ec2"]
    logs.put_retention_policy(logGroupName=GROUPS["proxy"][0], retentionInDays=1)
    iam.put_role_policy(RoleName=ROLES["proxy"], PolicyName="extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}))
    (old,) = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc["VpcId"]]}])["FlowLogs"]
    ec2.delete_flow_logs(FlowLogIds=[old["FlowLogId"]])
    ec2.create_flow_logs(ResourceIds=[vpc["VpcId"]], ResourceType="VPC", TrafficType="REJECT",
                         LogGroupName=FLOW_GROUP, DeliverLogsPermissionArn=old["DeliverLogsPermissionArn"])
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


# --- Teardown (last) ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torn_down(playbook, repaired):
    first = playbook("teardown.yml", ENV)
    second = playbook("teardown.yml", ENV)
    return {"first": first, "second": second}


def test_teardown_removes_the_evidence_set(torn_down, clients):
    assert torn_down["first"].rc == 0, torn_down["first"].output[-4000:]
    assert log_groups(clients["logs"]) == {}
    assert [f for f in clients["ec2"].describe_flow_logs()["FlowLogs"] if tags(f).get("environment") == ENV] == []
    assert live_endpoints(clients["ec2"]) == []
    assert clients["cloudtrail"].describe_trails()["trailList"] == []
    assert BUCKET not in [b["Name"] for b in clients["s3"].list_buckets()["Buckets"]]
    names = [r["RoleName"] for r in clients["iam"].list_roles()["Roles"]]
    assert not set(names) & {*ROLES.values(), FLOW_ROLE}
    assert not [p for p in clients["iam"].list_instance_profiles()["InstanceProfiles"]
                if p["InstanceProfileName"] in ROLES.values()]


def test_teardown_twice_changes_nothing(torn_down):
    assert torn_down["second"].rc == 0, torn_down["second"].output[-4000:]
    assert torn_down["second"].recap["changed"] == 0, torn_down["second"].output[-4000:]
