"""The AWS tier against moto: converge, idempotence, exact read-back, inventory, Bedrock
access, teardown.

epsilon (no Bedrock, no evidence set, no backup bucket) is provisioned first and alone while
moto records every request, to prove that such a setup makes no IAM (or STS) call at all.
Then one module-scoped converge of two more environments (alpha with every kind of LLM
endpoint, Bedrock included, and without the evidence set and the backup bucket, which
test_evidence.py covers; beta with defaults) is shared by the read-back tests: the network,
the inventory, and Bedrock's IAM role, instance profile and endpoint policy on alpha. alpha
is then changed (other models), drifted by hand (endpoint policy back to AWS's full-access
default, an extra inline and a managed policy on the role) and provisioned again. The
teardown tests come last and remove alpha, proving beta, epsilon, an untagged VPC and a
foreign role that only shares the naming scheme survive.

moto keeps VPC endpoint policies (CreateVpcEndpoint and ModifyVpcEndpoint store the
document, DescribeVpcEndpoints returns it), so the endpoint policy is read back as it was
sent. moto does not evaluate IAM or endpoint policies: that the gateway can sign and
invoke, and that another account is refused, is AWS's part and not tested here.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml

from helpers.moto_server import BIN, base_env

ROOT = Path(__file__).resolve().parents[2]

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PROFILE_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
NOVA = "amazon.nova-pro-v1:0"
ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
# Without the evidence set and the backup bucket (their roles and policies are tested in
# test_evidence.py), so the server's role holds the Bedrock policy alone and the proxy no
# profile at all.
NO_EVIDENCE = {"airlock_aws_evidence_enabled": False, "airlock_aws_backup_s3_enabled": False}
ALPHA = {
    "airlock_authorized_cidrs": ["203.0.113.0/24", "198.51.100.7/32"],
    "airlock_llm_endpoints": [
        {"name": "openai", "hosts": ["api.openai.com"], "port": 443},
        {"name": "gateway", "cidrs": ["192.0.2.0/24"], "port": 8443},
        {"name": "bedrock", "bedrock": True, "region": REGION},
    ],
    # Required with a Bedrock entry: a model id and an inference profile ARN.
    "airlock_aws_bedrock_models": [SONNET, PROFILE_ARN],
    # The exact rule tables below are those without the evidence set (logs endpoint, its
    # group and 443 across the subnets): test_evidence.py reads those back. beta keeps the
    # default (evidence on), so alpha's teardown runs beside an environment that has it.
    "airlock_aws_evidence_enabled": False,
    # Nor the backup bucket's S3 gateway endpoint and the instance profiles its grants need
    # (test_evidence.py); beta keeps that default too.
    "airlock_aws_backup_s3_enabled": False,
}
ALPHA_CHANGED = {**ALPHA, "airlock_aws_bedrock_models": [NOVA]}
BETA = {"airlock_llm_endpoints": [{"name": "gateway", "cidrs": ["192.0.2.0/24"]}]}
EPSILON = {"airlock_llm_endpoints": [{"name": "gateway", "cidrs": ["192.0.2.0/24"]}], **NO_EVIDENCE}
ROLE = f"airlock-alpha-{REGION}-server"
FOREIGN_ROLE = f"airlock-zeta-{REGION}-server"
WORLD = "0.0.0.0/0"
RESOLVER = "10.0.0.2/32"
TIME = "169.254.169.123/32"
EPH = (1024, 65535)


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


@pytest.fixture(scope="module")
def converged(moto, playbook):
    """epsilon provisioned alone while moto records, then alpha and beta side by side, then
    alpha a second time."""
    moto.reset()
    moto.start_recording()
    epsilon = playbook("aws_provision.yml", "epsilon", EPSILON)
    epsilon_calls = services_called(moto.recorded_requests())
    assert epsilon.rc == 0, epsilon.output[-4000:]
    alpha = playbook.start("aws_provision.yml", "alpha", ALPHA)
    beta = playbook.start("aws_provision.yml", "beta", BETA)
    first, beta_run = playbook.wait(alpha), playbook.wait(beta)
    assert first.rc == 0, first.output[-4000:]
    assert beta_run.rc == 0, beta_run.output[-4000:]
    second = playbook("aws_provision.yml", "alpha", ALPHA)
    assert second.rc == 0, second.output[-4000:]
    return {"first": first, "second": second, "epsilon": epsilon, "epsilon_calls": epsilon_calls}


@pytest.fixture(scope="module")
def ec2(moto, converged):
    return moto.client()


def by_env(items, env):
    return [i for i in items if {"Key": "environment", "Value": env} in i.get("Tags", [])]


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def one(items, name):
    found = [i for i in items if tags(i).get("Name") == name]
    assert len(found) == 1, f"expected exactly one {name}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def alpha(ec2):
    """alpha's resources, read back with boto3."""
    vpc = one(ec2.describe_vpcs()["Vpcs"], "airlock-alpha-vpc")
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    subnets = ec2.describe_subnets(Filters=vpc_filter)["Subnets"]
    sgs = ec2.describe_security_groups(Filters=vpc_filter)["SecurityGroups"]
    instances = [i for r in ec2.describe_instances(Filters=vpc_filter)["Reservations"] for i in r["Instances"]]
    return {
        "vpc": vpc,
        "public": one(subnets, "airlock-alpha-public"),
        "private": one(subnets, "airlock-alpha-private"),
        "subnets": subnets,
        "igw": one(ec2.describe_internet_gateways()["InternetGateways"], "airlock-alpha-igw"),
        "nats": [n for n in ec2.describe_nat_gateways(Filters=vpc_filter)["NatGateways"] if n["State"] != "deleted"],
        "eips": by_env(ec2.describe_addresses()["Addresses"], "alpha"),
        "route_tables": ec2.describe_route_tables(Filters=vpc_filter)["RouteTables"],
        "nacls": ec2.describe_network_acls(Filters=vpc_filter)["NetworkAcls"],
        "sgs": {tags(g).get("Name"): g for g in sgs if g["GroupName"] != "default"},
        "instances": {tags(i)["Name"]: i for i in instances},
        "endpoints": ec2.describe_vpc_endpoints(Filters=vpc_filter)["VpcEndpoints"],
    }


# --- Converge and idempotence -----------------------------------------------------------


def test_first_run_changes_things(converged):
    assert converged["first"].recap["changed"] > 0
    assert converged["first"].recap["failed"] == 0


def test_second_run_changes_nothing(converged):
    assert converged["second"].recap == {**converged["second"].recap, "changed": 0, "failed": 0}


def test_hostname_endpoints_are_warned_about(converged):
    out = converged["first"].output
    assert "WARNING: security groups and network ACLs cannot filter host names" in out
    assert "openai" in out


# --- Read-back: network ------------------------------------------------------------------


def test_vpc_and_subnets(alpha):
    assert alpha["vpc"]["CidrBlock"] == "10.0.0.0/16"
    assert tags(alpha["vpc"]) == {"Name": "airlock-alpha-vpc", "project": "airlock", "environment": "alpha",
                                  "tier": "network"}
    assert len(alpha["subnets"]) == 2
    for name, cidr, tier in (("public", "10.0.0.0/24", "proxy"), ("private", "10.0.1.0/24", "openhands")):
        subnet = alpha[name]
        assert subnet["CidrBlock"] == cidr
        assert subnet["AvailabilityZone"] == "us-east-1a"
        assert subnet["MapPublicIpOnLaunch"] is False
        assert tags(subnet)["tier"] == tier


def test_internet_gateway_attached(alpha):
    assert [a["VpcId"] for a in alpha["igw"]["Attachments"]] == [alpha["vpc"]["VpcId"]]


def test_one_nat_gateway_with_the_tagged_eip(alpha):
    assert len(alpha["nats"]) == 1, "a rerun must not create a second NAT gateway"
    nat = alpha["nats"][0]
    assert nat["SubnetId"] == alpha["public"]["SubnetId"]
    nat_eip = one(alpha["eips"], "airlock-alpha-nat-eip")
    assert [a["AllocationId"] for a in nat["NatGatewayAddresses"]] == [nat_eip["AllocationId"]]
    assert sorted(tags(e)["Name"] for e in alpha["eips"]) == ["airlock-alpha-nat-eip", "airlock-alpha-proxy-eip"]


def routes(table):
    out = set()
    for r in table["Routes"]:
        target = r.get("GatewayId") or r.get("NatGatewayId")
        out.add((r["DestinationCidrBlock"], target))
    return out


def test_route_tables(alpha):
    public = one(alpha["route_tables"], "airlock-alpha-public-rt")
    private = one(alpha["route_tables"], "airlock-alpha-private-rt")
    assert routes(public) == {("10.0.0.0/16", "local"), (WORLD, alpha["igw"]["InternetGatewayId"])}
    assert routes(private) == {("10.0.0.0/16", "local"), (WORLD, alpha["nats"][0]["NatGatewayId"])}
    assert [a["SubnetId"] for a in public["Associations"] if not a.get("Main")] == [alpha["public"]["SubnetId"]]
    assert [a["SubnetId"] for a in private["Associations"] if not a.get("Main")] == [alpha["private"]["SubnetId"]]


def nacl_rules(nacl, egress):
    out = set()
    for e in nacl["Entries"]:
        if e["Egress"] != egress or e["RuleNumber"] == 32767:
            continue
        assert e["RuleAction"] == "allow"
        assert e["Protocol"] == "6", "only TCP rules are expected"
        out.add((e["CidrBlock"], e["PortRange"]["From"], e["PortRange"]["To"]))
    return out


def test_public_nacl_exact(alpha):
    nacl = one(alpha["nacls"], "airlock-alpha-public-nacl")
    assert [a["SubnetId"] for a in nacl["Associations"]] == [alpha["public"]["SubnetId"]]
    clients = ["203.0.113.0/24", "198.51.100.7/32"]
    private = "10.0.1.0/24"
    assert nacl_rules(nacl, egress=False) == {
        *((c, p, p) for c in clients for p in (22, 80, 443)),  # clients -> proxy
        (private, 443, 443),  # server -> proxy (sandbox URLs); server -> NAT gateway (LLM port)
        (private, 8443, 8443),  # server -> NAT gateway (LLM port)
        (private, 3142, 3142),  # server -> package relay (its apt)
        (WORLD, *EPH),  # replies from the internet (proxy patching, NAT) and the server
    }
    assert nacl_rules(nacl, egress=True) == {
        *((c, *EPH) for c in clients),  # replies to clients
        (private, 22, 22), (private, 3000, 3000), (private, 32768, 60999),  # proxy -> server
        (private, *EPH),  # NAT replies to the server
        (WORLD, 80, 80), (WORLD, 443, 443),  # proxy patching and the relay's mirrors; NAT -> hostname endpoints
        ("192.0.2.0/24", 8443, 8443),  # NAT -> gateway endpoint
    }


def test_private_nacl_exact(alpha):
    nacl = one(alpha["nacls"], "airlock-alpha-private-nacl")
    assert [a["SubnetId"] for a in nacl["Associations"]] == [alpha["private"]["SubnetId"]]
    public = "10.0.0.0/24"
    assert nacl_rules(nacl, egress=False) == {
        (public, 22, 22), (public, 3000, 3000), (public, 32768, 60999),  # proxy -> server
        (public, *EPH),  # the proxy's replies to the server's HTTPS calls
        (WORLD, *EPH), ("192.0.2.0/24", *EPH),  # LLM replies (hostname entry: anywhere)
    }
    assert nacl_rules(nacl, egress=True) == {
        (public, *EPH),  # replies to the proxy
        (public, 443, 443),  # server -> proxy (sandbox URLs)
        (public, 3142, 3142),  # server -> package relay (its apt)
        (WORLD, 443, 443), ("192.0.2.0/24", 8443, 8443),  # server -> LLM endpoints
    }


def sg_rules(group, egress, names):
    out = set()
    for perm in group["IpPermissionsEgress" if egress else "IpPermissions"]:
        key = (perm["IpProtocol"], perm.get("FromPort"), perm.get("ToPort"))
        out.update((*key, r["CidrIp"]) for r in perm.get("IpRanges", []))
        out.update((*key, "sg:" + names[p["GroupId"]]) for p in perm.get("UserIdGroupPairs", []))
        assert not perm.get("Ipv6Ranges") and not perm.get("PrefixListIds")
    return out


def test_security_groups_exact(alpha):
    sgs = alpha["sgs"]
    assert set(sgs) == {"airlock-alpha-proxy", "airlock-alpha-server", "airlock-alpha-bedrock-endpoint"}
    names = {g["GroupId"]: n.removeprefix("airlock-alpha-") for n, g in sgs.items()}
    proxy, server, endpoint = (sgs[f"airlock-alpha-{n}"] for n in ("proxy", "server", "bedrock-endpoint"))
    dns_ntp = {("udp", 53, 53, RESOLVER), ("tcp", 53, 53, RESOLVER), ("udp", 123, 123, TIME)}
    app = {("tcp", 22, 22), ("tcp", 3000, 3000), ("tcp", 32768, 60999)}
    assert sg_rules(proxy, False, names) == {
        ("tcp", p, p, c) for c in ("203.0.113.0/24", "198.51.100.7/32") for p in (22, 80, 443)
    } | {("tcp", 443, 443, "sg:server"),  # the server calls its sandboxes through the public URL
         ("tcp", 3142, 3142, "sg:server")}  # and reaches the package relay (its apt), nothing else
    assert sg_rules(proxy, True, names) == {
        *((*a, "sg:server") for a in app), ("tcp", 80, 80, WORLD), ("tcp", 443, 443, WORLD), *dns_ntp,
    }
    assert sg_rules(server, False, names) == {(*a, "sg:proxy") for a in app}
    assert sg_rules(server, True, names) == {
        ("tcp", 443, 443, WORLD),  # hostname entry: names are filtered on the host
        ("tcp", 8443, 8443, "192.0.2.0/24"),
        ("tcp", 443, 443, "sg:bedrock-endpoint"),
        ("tcp", 443, 443, "sg:proxy"),  # the sandbox URLs, through the proxy
        ("tcp", 3142, 3142, "sg:proxy"),  # apt, through the package relay
        *dns_ntp,
    }
    assert sg_rules(endpoint, False, names) == {("tcp", 443, 443, "sg:server")}
    assert sg_rules(endpoint, True, names) == set()


def test_bedrock_interface_endpoint(alpha):
    live = [e for e in alpha["endpoints"] if e["State"].lower() not in ("deleted", "deleting")]
    assert len(live) == 1
    ep = live[0]
    assert ep["ServiceName"] == "com.amazonaws.us-east-1.bedrock-runtime"
    assert ep["VpcEndpointType"] == "Interface"
    assert ep["SubnetIds"] == [alpha["private"]["SubnetId"]]
    assert [g["GroupId"] for g in ep["Groups"]] == [alpha["sgs"]["airlock-alpha-bedrock-endpoint"]["GroupId"]]


# --- Read-back: hosts --------------------------------------------------------------------


def test_key_pair(ec2, alpha, ssh_public_key):
    keys = ec2.describe_key_pairs(KeyNames=["airlock-alpha"])["KeyPairs"]
    assert len(keys) == 1 and tags(keys[0])["environment"] == "alpha"


@pytest.mark.parametrize(
    "name,itype,subnet,sg,size",
    [("proxy", "t3.small", "public", "proxy", 20), ("openhands", "t3.large", "private", "server", 100)],
)
def test_instance(ec2, alpha, name, itype, subnet, sg, size):
    assert set(alpha["instances"]) == {"airlock-alpha-proxy", "airlock-alpha-openhands"}
    inst = alpha["instances"][f"airlock-alpha-{name}"]
    assert inst["State"]["Name"] == "running"
    assert inst["InstanceType"] == itype
    assert inst["ImageId"] == "ami-785db401"  # moto's Canonical image matched by the name filter
    assert inst["KeyName"] == "airlock-alpha"
    assert inst["SubnetId"] == alpha[subnet]["SubnetId"]
    assert [g["GroupId"] for g in inst["SecurityGroups"]] == [alpha["sgs"][f"airlock-alpha-{sg}"]["GroupId"]]
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    assert inst["MetadataOptions"]["HttpEndpoint"] == "enabled"
    assert inst["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert tags(inst) == {"Name": f"airlock-alpha-{name}", "project": "airlock", "environment": "alpha", "tier": name}
    root = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == inst["RootDeviceName"]]
    assert len(root) == 1
    vol = ec2.describe_volumes(VolumeIds=[root[0]["Ebs"]["VolumeId"]])["Volumes"][0]
    assert (vol["VolumeType"], vol["Encrypted"], vol["Size"]) == ("gp3", True, size)
    eip = one(alpha["eips"], "airlock-alpha-proxy-eip")
    if name == "proxy":
        assert eip["InstanceId"] == inst["InstanceId"]
        assert inst.get("PublicIpAddress") == eip["PublicIp"]
    else:
        assert "PublicIpAddress" not in inst or not inst["PublicIpAddress"]


def test_every_tagged_resource_names_its_environment(ec2, converged):
    described = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["environment"]}])["Tags"]
    ids = {t["ResourceId"] for t in described if t["Value"] == "alpha"}
    assert len(ids) >= 15
    names = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": sorted(ids)}, {"Name": "key", "Values": ["Name"]}])
    named = {t["ResourceId"]: t["Value"] for t in names["Tags"]}
    assert set(named) == ids, f"resources without a Name tag: {ids - set(named)}"
    assert all(v.startswith("airlock-alpha") for v in named.values()), named


# --- Inventory --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered_inventory(moto, converged, tmp_path_factory):
    """inventories/aws with its aws_ec2 config rendered to point at moto (endpoint_url),
    so the inventory is tested without the endpoint environment variables."""
    inv = tmp_path_factory.mktemp("aws_inventory")
    shutil.copytree(ROOT / "inventories" / "aws" / "group_vars", inv / "group_vars")
    config = yaml.safe_load((ROOT / "inventories" / "aws" / "aws_ec2.yml").read_text())
    assert config["plugin"] == "amazon.aws.aws_ec2"
    config["endpoint_url"] = moto.url
    (inv / "aws_ec2.yml").write_text(yaml.safe_dump(config))
    env = base_env(moto, "alpha")
    for key in ("AWS_URL", "AWS_ENDPOINT_URL"):
        env.pop(key)
    return inv, env


def test_inventory_groups_and_hosts(rendered_inventory, alpha):
    inv, env = rendered_inventory
    out = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(inv), "--list"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["proxy"]["hosts"] == ["airlock-alpha-proxy"]
    assert data["openhands"]["hosts"] == ["airlock-alpha-openhands"]
    groups = {g for g in data if g not in ("_meta", "all", "ungrouped", "aws_ec2")}
    assert groups == {"proxy", "openhands"}, "beta's hosts or extra groups leaked in"
    hostvars = data["_meta"]["hostvars"]
    assert set(hostvars) == {"airlock-alpha-proxy", "airlock-alpha-openhands"}

    def plain(value):
        return value.get("__ansible_unsafe") if isinstance(value, dict) else value

    proxy, server = alpha["instances"]["airlock-alpha-proxy"], alpha["instances"]["airlock-alpha-openhands"]
    assert plain(hostvars["airlock-alpha-proxy"]["ansible_host"]) == proxy["PublicIpAddress"]
    assert plain(hostvars["airlock-alpha-openhands"]["ansible_host"]) == server["PrivateIpAddress"]


def test_inventory_connection_settings(rendered_inventory, alpha):
    inv, env = rendered_inventory
    proxy, server = alpha["instances"]["airlock-alpha-proxy"], alpha["instances"]["airlock-alpha-openhands"]
    probe = "{{ [ansible_host, ansible_user, ansible_ssh_common_args | default(''), airlock_openhands_address] | to_json }}"
    out = subprocess.run([str(BIN / "ansible"), "-i", str(inv), "all", "-o", "-m", "ansible.builtin.debug",
                          "-a", f"msg={probe}"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    seen = {}
    for line in out.stdout.splitlines():
        host, _, rest = line.partition(" | SUCCESS => ")
        if rest:
            seen[host.strip()] = json.loads(json.loads(rest)["msg"]) if isinstance(json.loads(rest)["msg"], str) \
                else json.loads(rest)["msg"]
    assert seen["airlock-alpha-proxy"] == [proxy["PublicIpAddress"], "ubuntu", "", server["PrivateIpAddress"]]
    assert seen["airlock-alpha-openhands"] == [
        server["PrivateIpAddress"], "ubuntu", f"-o ProxyJump=ubuntu@{proxy['PublicIpAddress']}",
        server["PrivateIpAddress"],
    ]


# --- Bedrock: without it, no IAM at all -------------------------------------------------------


@pytest.fixture(scope="module")
def iam(moto, converged):
    return moto.client("iam")


def instances(ec2, env):
    reservations = ec2.describe_instances(Filters=[
        {"Name": "tag:environment", "Values": [env]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ])["Reservations"]
    return {tags(i)["Name"]: i for r in reservations for i in r["Instances"]}


def live_endpoints(ec2, env):
    return [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
            if tags(e).get("environment") == env and e["State"].lower() not in ("deleted", "deleting")]


def arn(model):
    return model if model.startswith("arn:") else f"arn:aws:bedrock:{REGION}::foundation-model/{model}"


def inline_policy(iam, name="bedrock-invoke"):
    doc = iam.get_role_policy(RoleName=ROLE, PolicyName=name)["PolicyDocument"]
    return json.loads(doc) if isinstance(doc, str) else doc


def endpoint_policy(endpoint):
    return json.loads(endpoint["PolicyDocument"])


def test_without_bedrock_no_iam_call_is_made(converged):
    """Not even a read: a deployer without any IAM permission can provision this setup
    (without Bedrock and with the evidence set switched off).
    (STS GetCallerIdentity is made anyway: amazon.aws.ec2_security_group looks up the
    account for group references; it needs no permission.)"""
    calls = converged["epsilon_calls"]
    assert "ec2" in calls, "the recording saw nothing: this test would prove nothing"
    assert "iam" not in calls, f"IAM calls without Bedrock: {calls.get('iam')}"
    assert calls.get("sts", set()) <= {"GetCallerIdentity"}


def test_without_bedrock_no_role_profile_or_instance_profile(iam, ec2):
    assert not [r for r in iam.list_roles()["Roles"] if "epsilon" in r["RoleName"]]
    assert not [p for p in iam.list_instance_profiles()["InstanceProfiles"] if "epsilon" in p["InstanceProfileName"]]
    assert set(instances(ec2, "epsilon")) == {"airlock-epsilon-proxy", "airlock-epsilon-openhands"}
    for inst in instances(ec2, "epsilon").values():
        assert "IamInstanceProfile" not in inst


# --- Bedrock on alpha: the server's role, its instance profile, the endpoint policy ------------


def test_role_trusts_ec2_only(iam):
    role = iam.get_role(RoleName=ROLE)["Role"]
    assert role["Path"] == "/airlock/"
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust == {"Version": "2012-10-17", "Statement": [{
        "Sid": "Ec2AssumeRole", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    assert tags(role) == {"Name": ROLE, "project": "airlock", "environment": "alpha", "tier": "openhands",
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
    assert tags(profile)["environment"] == "alpha"


def test_only_the_server_has_the_profile(iam, ec2):
    profile = iam.get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]
    hosts = instances(ec2, "alpha")
    assert set(hosts) == {"airlock-alpha-proxy", "airlock-alpha-openhands"}
    assert hosts["airlock-alpha-openhands"]["IamInstanceProfile"]["Arn"] == profile["Arn"]
    assert "IamInstanceProfile" not in hosts["airlock-alpha-proxy"]
    # IMDSv2 with hop limit 1 keeps these credentials away from containers.
    assert hosts["airlock-alpha-openhands"]["MetadataOptions"]["HttpTokens"] == "required"
    assert hosts["airlock-alpha-openhands"]["MetadataOptions"]["HttpPutResponseHopLimit"] == 1


def test_endpoint_policy_limits_to_this_account_and_the_models(ec2):
    (endpoint,) = live_endpoints(ec2, "alpha")
    assert endpoint["ServiceName"] == f"com.amazonaws.{REGION}.bedrock-runtime"
    policy = endpoint_policy(endpoint)
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == "*"
    assert sorted(statement["Action"]) == ACTIONS
    assert sorted(statement["Resource"]) == sorted([arn(SONNET), PROFILE_ARN])
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}


# --- Bedrock changes and drift (after every read-back of alpha above) ---------------------------


@pytest.fixture(scope="module")
def changed(moto, playbook, iam, ec2, alpha):
    """Other models, then drift made by hand, each followed by a run and a rerun (after the
    tests above, in file order, read alpha back as the converge left it)."""
    models = playbook("aws_provision.yml", "alpha", ALPHA_CHANGED)
    models_again = playbook("aws_provision.yml", "alpha", ALPHA_CHANGED)
    after_models = {"inline": inline_policy(iam), "endpoint": endpoint_policy(live_endpoints(ec2, "alpha")[0])}

    (endpoint,) = live_endpoints(ec2, "alpha")
    # AWS's default: full access for anyone (moto ignores ResetPolicy, so it is written out).
    full_access = {"Statement": [{"Action": "*", "Effect": "Allow", "Principal": "*", "Resource": "*"}]}
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], PolicyDocument=json.dumps(full_access))
    default_policy = endpoint_policy(live_endpoints(ec2, "alpha")[0])
    iam.put_role_policy(RoleName=ROLE, PolicyName="extra",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    managed = iam.create_policy(PolicyName="airlock-test-extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]}))
    iam.attach_role_policy(RoleName=ROLE, PolicyArn=managed["Policy"]["Arn"])
    repair = playbook("aws_provision.yml", "alpha", ALPHA_CHANGED)
    repair_again = playbook("aws_provision.yml", "alpha", ALPHA_CHANGED)
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
    (statement,) = endpoint_policy(live_endpoints(ec2, "alpha")[0])["Statement"]
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
    assert statement["Resource"] in ([arn(NOVA)], arn(NOVA))


# --- Teardown (last: it removes alpha) ----------------------------------------------------


def snapshot(ec2, env):
    """Every live resource tagged with this environment, read type by type (moto keeps
    the tags of deleted resources, so DescribeTags alone would not prove a deletion)."""
    f = [{"Name": "tag:environment", "Values": [env]}]
    live = set()
    live |= {v["VpcId"] for v in ec2.describe_vpcs(Filters=f)["Vpcs"]}
    live |= {s["SubnetId"] for s in ec2.describe_subnets(Filters=f)["Subnets"]}
    live |= {g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=f)["InternetGateways"]}
    live |= {r["RouteTableId"] for r in ec2.describe_route_tables(Filters=f)["RouteTables"]}
    live |= {n["NetworkAclId"] for n in ec2.describe_network_acls(Filters=f)["NetworkAcls"]}
    live |= {g["GroupId"] for g in ec2.describe_security_groups(Filters=f)["SecurityGroups"]}
    live |= {a["AllocationId"] for a in ec2.describe_addresses(Filters=f)["Addresses"]}
    live |= {k["KeyPairId"] for k in ec2.describe_key_pairs(Filters=f)["KeyPairs"]}
    live |= {v["VolumeId"] for v in ec2.describe_volumes(Filters=f)["Volumes"]}
    # moto ignores tag filters on these two calls: check the tags here.
    live |= {n["NatGatewayId"] for n in ec2.describe_nat_gateways(Filter=f)["NatGateways"]
             if n["State"] not in ("deleted", "deleting") and tags(n).get("environment") == env}
    live |= {e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints(Filters=f)["VpcEndpoints"]
             if e["State"].lower() not in ("deleted", "deleting") and tags(e).get("environment") == env}
    live |= {i["InstanceId"] for r in ec2.describe_instances(Filters=f)["Reservations"] for i in r["Instances"]
             if i["State"]["Name"] not in ("terminated", "shutting-down")}
    return live


@pytest.fixture(scope="module")
def torn_down(ec2, iam, alpha, changed, playbook):
    untagged = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    iam.create_role(RoleName=FOREIGN_ROLE, Path="/airlock/",
                    AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    beta_before, epsilon_before = snapshot(ec2, "beta"), snapshot(ec2, "epsilon")
    first = playbook("teardown.yml", "alpha")
    second = playbook("teardown.yml", "alpha")
    zeta = playbook("teardown.yml", "zeta")
    return {"first": first, "second": second, "zeta": zeta, "untagged": untagged, "beta_before": beta_before,
            "epsilon_before": epsilon_before}


def test_teardown_removes_every_alpha_resource(ec2, iam, torn_down):
    assert torn_down["first"].rc == 0, torn_down["first"].output[-4000:]
    assert snapshot(ec2, "alpha") == set()
    assert not by_env(ec2.describe_addresses()["Addresses"], "alpha")
    assert not ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": ["airlock-alpha"]}])["KeyPairs"]
    # Bedrock's role and instance profile too (the hand-attached policies did not keep them).
    assert ROLE not in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert ROLE not in [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]]
    assert live_endpoints(ec2, "alpha") == []


def test_teardown_twice_is_fine(torn_down):
    assert torn_down["second"].rc == 0, torn_down["second"].output[-4000:]
    assert torn_down["second"].recap["changed"] == 0


def test_teardown_leaves_untagged_role_and_other_environment(torn_down, iam, ec2):
    """zeta's teardown finds a role with its name but without its tags: it stays."""
    assert torn_down["zeta"].rc == 0, torn_down["zeta"].output[-4000:]
    assert torn_down["zeta"].recap["changed"] == 0
    assert iam.get_role(RoleName=FOREIGN_ROLE)["Role"]["RoleName"] == FOREIGN_ROLE
    assert snapshot(ec2, "epsilon") == torn_down["epsilon_before"]
    assert set(instances(ec2, "epsilon")) == {"airlock-epsilon-proxy", "airlock-epsilon-openhands"}


def test_teardown_leaves_other_environment_and_untagged_alone(ec2, torn_down):
    assert snapshot(ec2, "beta") == torn_down["beta_before"]
    assert len(torn_down["beta_before"]) >= 15
    beta = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:environment", "Values": ["beta"]}])["Reservations"]
            for i in r["Instances"]]
    assert sorted(i["State"]["Name"] for i in beta) == ["running", "running"]
    assert ec2.describe_vpcs(VpcIds=[torn_down["untagged"]])["Vpcs"]
