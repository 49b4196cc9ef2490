"""Bedrock access against moto: the server's IAM role and instance profile, the endpoint policy.

delta has a Bedrock entry (one model id, one inference profile ARN); epsilon has none and
is provisioned while moto records every request, to prove that a setup without Bedrock
(and without the evidence set and the backup bucket, whose instance profiles need IAM)
makes no IAM (or STS) call at all. Both run with aws_enclave_evidence_enabled and
aws_enclave_backup_bucket_enabled false; test_evidence.py covers them. delta is then changed (other models), drifted by hand
(endpoint policy back to AWS's full-access default, an extra inline and a managed policy on
the role) and provisioned again, and finally torn down next to epsilon and a foreign role
that only shares the naming scheme.

moto keeps VPC endpoint policies (CreateVpcEndpoint and ModifyVpcEndpoint store the
document, DescribeVpcEndpoints returns it), so the endpoint policy is read back as it was
sent. moto does not evaluate IAM or endpoint policies: that the gateway can sign and
invoke, and that another account is refused, is AWS's part and not tested here.
"""
from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qs

import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PROFILE_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
NOVA = "amazon.nova-pro-v1:0"
ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
BEDROCK_ENTRY = {"name": "bedrock", "bedrock": True, "region": REGION}
# Without the evidence set and the backup bucket (their roles and policies are tested in
# test_evidence.py), so the server's role holds the Bedrock policy
# alone and the proxy no profile at all.
NO_EVIDENCE = {"airlock_aws_evidence_enabled": False, "airlock_aws_backup_s3_enabled": False}
DELTA = {
    "airlock_llm_endpoints": [{"name": "openai", "hosts": ["api.openai.com"]}, BEDROCK_ENTRY],
    "airlock_aws_bedrock_models": [SONNET, PROFILE_ARN],
    **NO_EVIDENCE,
}
DELTA_CHANGED = {**DELTA, "airlock_aws_bedrock_models": [NOVA]}
EPSILON = {"airlock_llm_endpoints": [{"name": "gateway", "cidrs": ["192.0.2.0/24"]}], **NO_EVIDENCE}
ROLE = f"airlock-delta-{REGION}-server"
FOREIGN_ROLE = f"airlock-zeta-{REGION}-server"


def arn(model):
    return model if model.startswith("arn:") else f"arn:aws:bedrock:{REGION}::foundation-model/{model}"


def services_called(requests):
    """{service: {actions}} of moto's recorded requests (service from the SigV4 scope)."""
    out: dict[str, set] = {}
    for req in requests:
        scope = re.search(r"/([a-z0-9-]+)/aws4_request", (req.get("headers") or {}).get("Authorization", ""))
        body = req.get("body") or ""
        if req.get("body_encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        action = parse_qs(body).get("Action", ["?"])[0]
        out.setdefault(scope.group(1) if scope else "?", set()).add(action)
    return out


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


@pytest.fixture(scope="module")
def runs(moto, playbook):
    moto.reset()
    moto.start_recording()
    epsilon = playbook("aws_provision.yml", "epsilon", EPSILON)
    epsilon_calls = services_called(moto.recorded_requests())
    assert epsilon.rc == 0, epsilon.output[-4000:]
    first = playbook("aws_provision.yml", "delta", DELTA)
    assert first.rc == 0, first.output[-4000:]
    second = playbook("aws_provision.yml", "delta", DELTA)
    assert second.rc == 0, second.output[-4000:]
    return {"epsilon": epsilon, "epsilon_calls": epsilon_calls, "first": first, "second": second}


@pytest.fixture(scope="module")
def iam(moto, runs):
    return moto.client("iam")


@pytest.fixture(scope="module")
def ec2(moto, runs):
    return moto.client("ec2")


def instances(ec2, env):
    reservations = ec2.describe_instances(Filters=[
        {"Name": "tag:environment", "Values": [env]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ])["Reservations"]
    return {tags(i)["Name"]: i for r in reservations for i in r["Instances"]}


def live_endpoints(ec2, env):
    return [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
            if tags(e).get("environment") == env and e["State"].lower() not in ("deleted", "deleting")]


def inline_policy(iam, name="bedrock-invoke"):
    doc = iam.get_role_policy(RoleName=ROLE, PolicyName=name)["PolicyDocument"]
    return json.loads(doc) if isinstance(doc, str) else doc


def endpoint_policy(endpoint):
    return json.loads(endpoint["PolicyDocument"])


# --- Without Bedrock: no IAM at all ----------------------------------------------------------


def test_without_bedrock_no_iam_call_is_made(runs):
    """Not even a read: a deployer without any IAM permission can provision this setup
    (without Bedrock and with the evidence set switched off).
    (STS GetCallerIdentity is made anyway: amazon.aws.ec2_security_group looks up the
    account for group references; it needs no permission.)"""
    calls = runs["epsilon_calls"]
    assert "ec2" in calls, "the recording saw nothing: this test would prove nothing"
    assert "iam" not in calls, f"IAM calls without Bedrock: {calls.get('iam')}"
    assert calls.get("sts", set()) <= {"GetCallerIdentity"}


def test_without_bedrock_no_role_profile_or_instance_profile(iam, ec2):
    assert not [r for r in iam.list_roles()["Roles"] if "epsilon" in r["RoleName"]]
    assert not [p for p in iam.list_instance_profiles()["InstanceProfiles"] if "epsilon" in p["InstanceProfileName"]]
    for inst in instances(ec2, "epsilon").values():
        assert "IamInstanceProfile" not in inst


# --- With Bedrock --------------------------------------------------------------------------


def test_rerun_changes_nothing(runs):
    assert runs["first"].recap["changed"] > 0
    assert runs["second"].recap["changed"] == 0, runs["second"].output[-4000:]


def test_role_trusts_ec2_only(iam):
    role = iam.get_role(RoleName=ROLE)["Role"]
    assert role["Path"] == "/airlock/"
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust == {"Version": "2012-10-17", "Statement": [{
        "Sid": "Ec2AssumeRole", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    assert tags(role) == {"Name": ROLE, "project": "airlock", "environment": "delta", "tier": "openhands",
                          "region": REGION}


def test_role_has_exactly_the_invoke_policy(iam):
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["bedrock-invoke"]
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    (statement,) = inline_policy(iam)["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ACTIONS
    assert sorted(statement["Resource"]) == sorted([arn(SONNET), PROFILE_ARN])
    assert set(statement) == {"Sid", "Effect", "Action", "Resource"}, "no condition, principal or NotAction"


def test_instance_profile_holds_the_role(iam):
    profile = iam.get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]
    assert profile["Path"] == "/airlock/"
    assert [r["RoleName"] for r in profile["Roles"]] == [ROLE]
    assert tags(profile)["environment"] == "delta"


def test_only_the_server_has_the_profile(iam, ec2):
    profile = iam.get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]
    hosts = instances(ec2, "delta")
    assert set(hosts) == {"airlock-delta-proxy", "airlock-delta-openhands"}
    assert hosts["airlock-delta-openhands"]["IamInstanceProfile"]["Arn"] == profile["Arn"]
    assert "IamInstanceProfile" not in hosts["airlock-delta-proxy"]
    # IMDSv2 with hop limit 1 keeps these credentials away from containers.
    assert hosts["airlock-delta-openhands"]["MetadataOptions"]["HttpTokens"] == "required"
    assert hosts["airlock-delta-openhands"]["MetadataOptions"]["HttpPutResponseHopLimit"] == 1


def test_endpoint_policy_limits_to_this_account_and_the_models(ec2):
    (endpoint,) = live_endpoints(ec2, "delta")
    assert endpoint["ServiceName"] == f"com.amazonaws.{REGION}.bedrock-runtime"
    policy = endpoint_policy(endpoint)
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == "*"
    assert sorted(statement["Action"]) == ACTIONS
    assert sorted(statement["Resource"]) == sorted([arn(SONNET), PROFILE_ARN])
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}


# --- Changes and drift ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def changed(moto, playbook, iam, ec2, runs):
    """Other models, then drift made by hand, each followed by a run and a rerun."""
    models = playbook("aws_provision.yml", "delta", DELTA_CHANGED)
    models_again = playbook("aws_provision.yml", "delta", DELTA_CHANGED)
    after_models = {"inline": inline_policy(iam), "endpoint": endpoint_policy(live_endpoints(ec2, "delta")[0])}

    (endpoint,) = live_endpoints(ec2, "delta")
    # AWS's default: full access for anyone (moto ignores ResetPolicy, so it is written out).
    full_access = {"Statement": [{"Action": "*", "Effect": "Allow", "Principal": "*", "Resource": "*"}]}
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], PolicyDocument=json.dumps(full_access))
    default_policy = endpoint_policy(live_endpoints(ec2, "delta")[0])
    iam.put_role_policy(RoleName=ROLE, PolicyName="extra",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    managed = iam.create_policy(PolicyName="airlock-test-extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}))
    iam.attach_role_policy(RoleName=ROLE, PolicyArn=managed["Policy"]["Arn"])
    repair = playbook("aws_provision.yml", "delta", DELTA_CHANGED)
    repair_again = playbook("aws_provision.yml", "delta", DELTA_CHANGED)
    return {"models": models, "models_again": models_again, "after_models": after_models,
            "default_policy": default_policy, "repair": repair, "repair_again": repair_again}


def test_changed_models_update_both_policies(changed):
    assert changed["models"].rc == 0, changed["models"].output[-4000:]
    assert changed["models"].recap["changed"] == 2, "the inline policy and the endpoint policy"
    assert changed["models_again"].recap["changed"] == 0, changed["models_again"].output[-4000:]
    for doc in changed["after_models"].values():
        (statement,) = doc["Statement"]
        assert statement["Resource"] in ([arn(NOVA)], arn(NOVA))


def test_drift_is_repaired(changed, iam, ec2):
    assert "Condition" not in changed["default_policy"]["Statement"][0], "the drift was applied"
    assert changed["repair"].rc == 0, changed["repair"].output[-4000:]
    assert changed["repair"].recap["changed"] > 0
    assert changed["repair_again"].recap["changed"] == 0, changed["repair_again"].output[-4000:]
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["bedrock-invoke"]
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    (statement,) = endpoint_policy(live_endpoints(ec2, "delta")[0])["Statement"]
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
    assert statement["Resource"] in ([arn(NOVA)], arn(NOVA))


# --- Teardown (last) ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torn_down(playbook, iam, ec2, changed):
    iam.create_role(RoleName=FOREIGN_ROLE, Path="/airlock/",
                    AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    epsilon_before = instances(ec2, "epsilon")
    first = playbook("teardown.yml", "delta")
    second = playbook("teardown.yml", "delta")
    zeta = playbook("teardown.yml", "zeta")
    return {"first": first, "second": second, "zeta": zeta, "epsilon_before": epsilon_before}


def test_teardown_removes_role_profile_and_instances(torn_down, iam, ec2):
    assert torn_down["first"].rc == 0, torn_down["first"].output[-4000:]
    names = [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert ROLE not in names
    assert ROLE not in [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]]
    assert instances(ec2, "delta") == {}
    assert live_endpoints(ec2, "delta") == []


def test_teardown_twice_changes_nothing(torn_down):
    assert torn_down["second"].rc == 0, torn_down["second"].output[-4000:]
    assert torn_down["second"].recap["changed"] == 0


def test_teardown_leaves_untagged_role_and_other_environment(torn_down, iam, ec2):
    """zeta's teardown finds a role with its name but without its tags: it stays."""
    assert torn_down["zeta"].rc == 0, torn_down["zeta"].output[-4000:]
    assert torn_down["zeta"].recap["changed"] == 0
    assert iam.get_role(RoleName=FOREIGN_ROLE)["Role"]["RoleName"] == FOREIGN_ROLE
    assert set(instances(ec2, "epsilon")) == set(torn_down["epsilon_before"]) == {
        "airlock-epsilon-proxy", "airlock-epsilon-openhands"}
