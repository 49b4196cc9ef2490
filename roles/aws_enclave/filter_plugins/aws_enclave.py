"""Filters of the aws_enclave role: its input checks and its security group and network ACL
builders (plain Python, standard library only, ``ipaddress`` for all address arithmetic), unit
tested in tests/unit/test_filter_aws_enclave.py without Ansible. The role calls
``airlock_aws_input_errors`` before its first API call and fails with the messages it returns;
every message starts with the name of the offending variable. The generic network checks
(CIDR, host name, endpoint URL) are plugin_utils/airlock_checks.py's; the inventory's
``airlock_vpc_resolver`` stays in filter_plugins/airlock_net.py, reachable from every play.

Filters
-------
airlock_is_instance_type(value)
    True for an EC2 instance type of the form ``family.size`` (``t3.small``).
airlock_is_ssh_public_key(value)
    True for one OpenSSH public key line whose base64 blob names the same key type.
airlock_aws_input_errors(inputs)
    Every cross-field check that argument specs cannot express; returns a list of
    messages (empty when the input is valid).
airlock_nacl_entries(inputs)
    The network ACL entries of both subnets, in ``amazon.aws.ec2_vpc_nacl`` format.
airlock_tagged(resources, project, environment)
    Only the resources (results of the amazon.aws *_info modules) whose tags say this
    project and environment; the teardown's second line of defence when an API ignores
    a tag filter.
airlock_security_group_rules(inputs, proxy_sg, server_sg, endpoint_sg)
    The security group rules of the proxy, server and Bedrock endpoint groups, in
    ``amazon.aws.ec2_security_group`` format.

``inputs`` is a dict of the role's variables without the ``aws_enclave_`` prefix
(``vpc_cidr``, ``public_subnet_cidr``, ``authorized_cidrs`` ...), see the role's
``vars/main.yml``.
"""
from __future__ import annotations

import base64
import binascii
import importlib.util
import ipaddress
import re
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "aws_enclave_"
ENV_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
ENDPOINT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$")
AMI_ID = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
# AWS default quota: 20 inbound and 20 outbound rules per network ACL.
NACL_RULE_LIMIT = 20
NACL_FIRST_RULE = 100
NACL_RULE_STEP = 10
ANYWHERE = "0.0.0.0/0"


def _net(value):
    return ipaddress.IPv4Network(str(value), strict=True)


def airlock_is_instance_type(value):
    """True for an EC2 instance type written family.size (t3.small, m7i-flex.large)."""
    return isinstance(value, str) and bool(INSTANCE_TYPE.match(value))


def airlock_is_ssh_public_key(value):
    """True for one OpenSSH public key line whose base64 blob names the same key type."""
    if not isinstance(value, str):
        return False
    fields = value.strip().split()
    if len(fields) < 2 or "\n" in value.strip() or fields[0] not in SSH_KEY_TYPES:
        return False
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(blob) < 4:
        return False
    length = int.from_bytes(blob[:4], "big")
    return blob[4:4 + length] == fields[0].encode()


def _cidr_list_errors(name, values, errors):
    if not isinstance(values, list):
        errors.append(f"{name}: must be a list of IPv4 CIDRs")
        return []
    good = []
    for value in values:
        if checks.is_ipv4_cidr(value):
            good.append(value)
        else:
            errors.append(f"{name}: {value!r} is not an IPv4 network in CIDR notation (like 203.0.113.0/24)")
    return good


def _endpoint_errors(inputs, errors):
    name = PREFIX + "llm_endpoints"
    endpoints = inputs.get("llm_endpoints")
    if not isinstance(endpoints, list):
        errors.append(f"{name}: must be a list")
        return
    seen = set()
    for index, entry in enumerate(endpoints):
        where = f"{name}[{index}]"
        if not isinstance(entry, dict):
            errors.append(f"{where}: must be a mapping with name and one of hosts, cidrs, bedrock")
            continue
        label = entry.get("name")
        if not isinstance(label, str) or not ENDPOINT_NAME.match(label):
            errors.append(f"{where}.name: {label!r} must match [a-z0-9-]")
        elif label in seen:
            errors.append(f"{where}.name: {label!r} is used twice")
        seen.add(label)
        kinds = [k for k in ("hosts", "cidrs") if entry.get(k)] + (["bedrock"] if entry.get("bedrock") else [])
        if len(kinds) != 1:
            errors.append(f"{where}: needs exactly one of hosts, cidrs, bedrock (has {', '.join(kinds) or 'none'})")
            continue
        if "port" in entry and not checks.is_port(entry["port"]):
            errors.append(f"{where}.port: {entry['port']!r} is not a TCP port")
        if kinds == ["hosts"]:
            hosts = entry["hosts"]
            if not isinstance(hosts, list):
                errors.append(f"{where}.hosts: must be a list of host names")
                continue
            for host in hosts:
                if not checks.is_fqdn(host):
                    errors.append(f"{where}.hosts: {host!r} is not a fully qualified host name")
        elif kinds == ["cidrs"]:
            _cidr_list_errors(f"{where}.cidrs", entry["cidrs"], errors)
        else:
            region = entry.get("region", inputs.get("region"))
            if region != inputs.get("region"):
                errors.append(
                    f"{where}.region: {region!r} differs from {PREFIX}region {inputs.get('region')!r};"
                    " an interface endpoint lives in the VPC's region"
                )
            service = entry.get("service", "bedrock-runtime")
            if not isinstance(service, str) or not re.match(r"^bedrock(?:-[a-z-]+)?$", service):
                errors.append(f"{where}.service: {service!r} is not a Bedrock service name (like bedrock-runtime)")


def airlock_aws_input_errors(inputs):
    """Validate the AWS tier's inputs; return a list of messages naming each bad variable.

    Checks what argument specs cannot: CIDR syntax and containment, overlapping
    subnets, an empty or world-open authorized list (world-open SSH needs the
    explicit opt-in ``aws_enclave_allow_ssh_from_anywhere``), the endpoint URL, the
    LLM endpoint entries, instance type and AMI id formats, the SSH public key, port
    ranges and the network ACL rule quota.
    """
    errors = []
    p = PREFIX
    env = inputs.get("environment")
    if not isinstance(env, str) or not ENV_NAME.match(env):
        errors.append(f"{p}environment: {env!r} must be 1-32 characters of [a-z0-9-], not starting or ending with '-'")
    region = inputs.get("region")
    if not isinstance(region, str) or not REGION.match(region):
        errors.append(f"{p}region: {region!r} is not an AWS region name (like eu-west-1)")
    zone = inputs.get("availability_zone") or ""
    if zone and not (isinstance(region, str) and re.match(rf"^{re.escape(region)}[a-z]$", zone)):
        errors.append(f"{p}availability_zone: {zone!r} is not a zone of region {region!r} (like {region}a)")
    url = inputs.get("endpoint_url") or ""
    if url and not checks.is_endpoint_url(url):
        errors.append(f"{p}endpoint_url: {url!r} is not an http(s)://host[:port] URL")

    cidr_ok = {}
    for key in ("vpc_cidr", "public_subnet_cidr", "private_subnet_cidr"):
        value = inputs.get(key)
        cidr_ok[key] = checks.is_ipv4_cidr(value)
        if not cidr_ok[key]:
            errors.append(f"{p}{key}: {value!r} is not an IPv4 network in CIDR notation (like 10.0.0.0/16)")
        elif not 16 <= _net(value).prefixlen <= 28:
            errors.append(f"{p}{key}: {value} must have a prefix length between /16 and /28 (AWS limit)")
            cidr_ok[key] = False
    for key in ("public_subnet_cidr", "private_subnet_cidr"):
        if cidr_ok[key] and cidr_ok["vpc_cidr"] and not _net(inputs[key]).subnet_of(_net(inputs["vpc_cidr"])):
            errors.append(f"{p}{key}: {inputs[key]} is not inside {p}vpc_cidr {inputs['vpc_cidr']}")
    if cidr_ok["public_subnet_cidr"] and cidr_ok["private_subnet_cidr"] and _net(inputs["public_subnet_cidr"]).overlaps(
        _net(inputs["private_subnet_cidr"])
    ):
        errors.append(
            f"{p}private_subnet_cidr: {inputs['private_subnet_cidr']} overlaps "
            f"{p}public_subnet_cidr {inputs['public_subnet_cidr']}"
        )

    authorized = inputs.get("authorized_cidrs")
    if not authorized:
        errors.append(f"{p}authorized_cidrs: is empty; list the networks that may reach the proxy (22, 80, 443)")
    else:
        good = _cidr_list_errors(f"{p}authorized_cidrs", authorized, errors)
        world = [c for c in good if _net(c).prefixlen == 0]
        if world and inputs.get("allow_ssh_from_anywhere") is not True:
            errors.append(
                f"{p}authorized_cidrs: {world[0]} would open SSH (22) to the whole internet; "
                f"set {p}allow_ssh_from_anywhere: true to accept that explicitly"
            )

    for key in ("openhands_port",):
        if not checks.is_port(inputs.get(key)):
            errors.append(f"{p}{key}: {inputs.get(key)!r} is not a TCP port (1-65535)")
    for key in ("sandbox_port_range", "nacl_ephemeral_ports"):
        if not checks.is_port_range(inputs.get(key)):
            errors.append(f"{p}{key}: {inputs.get(key)!r} must be {{start, end}} ports with start <= end")
    patch_ports = inputs.get("proxy_patch_ports", [])
    if not isinstance(patch_ports, list) or not all(checks.is_port(x) for x in patch_ports):
        errors.append(f"{p}proxy_patch_ports: {patch_ports!r} must be a list of TCP ports")
    relay_port = inputs.get("package_relay_port", 3142)
    if not (checks.is_port(relay_port) and relay_port >= 1024):
        errors.append(f"{p}package_relay_port: {relay_port!r} is not a TCP port from 1024 to 65535 (the package relay's port)")
    elif isinstance(patch_ports, list) and 80 not in patch_ports:
        errors.append(f"{p}proxy_patch_ports: {patch_ports!r} lacks 80; the package relay fetches from the "
                      "distribution's mirrors over HTTP (EC2's regional Ubuntu mirrors, security.ubuntu.com)")
    time_server = inputs.get("time_server")
    try:
        ipaddress.IPv4Address(str(time_server))
    except ValueError:
        errors.append(f"{p}time_server: {time_server!r} is not an IPv4 address")

    _endpoint_errors(inputs, errors)

    for key in ("proxy_instance_type", "server_instance_type"):
        if not airlock_is_instance_type(inputs.get(key)):
            errors.append(f"{p}{key}: {inputs.get(key)!r} is not an EC2 instance type (family.size, like t3.small)")
    ami = inputs.get("ami_id") or ""
    if ami and not AMI_ID.match(ami):
        errors.append(f"{p}ami_id: {ami!r} is not an AMI id (ami- and 8 or 17 hex digits)")
    key = inputs.get("ssh_public_key")
    if not key or not isinstance(key, str) or not key.strip():
        errors.append(f"{p}ssh_public_key: is empty; give the OpenSSH public key line for the EC2 key pair")
    elif "PRIVATE KEY" in key:
        # Never echo the value: it is a secret that was put in the wrong variable.
        errors.append(f"{p}ssh_public_key: holds a PRIVATE key; give the public key (the .pub file) instead")
    elif not airlock_is_ssh_public_key(key):
        errors.append(f"{p}ssh_public_key: is not one OpenSSH public key line ({', '.join(SSH_KEY_TYPES)})")

    if not errors:
        entries = airlock_nacl_entries(inputs)
        for subnet, directions in entries.items():
            for direction, rules in directions.items():
                if len(rules) > NACL_RULE_LIMIT:
                    errors.append(
                        f"{p}authorized_cidrs/{p}llm_endpoints: the {subnet} subnet needs {len(rules)} {direction} "
                        f"network ACL rules, more than the AWS quota of {NACL_RULE_LIMIT}; use fewer, wider CIDRs"
                    )
    return errors


def _unique(items):
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _llm_destinations(inputs):
    """(cidr, port) pairs that leave through the NAT gateway: cidr and host-name entries."""
    pairs = []
    for entry in inputs.get("llm_endpoints") or []:
        port = entry.get("port", 443)
        if entry.get("cidrs"):
            pairs.extend((cidr, port) for cidr in entry["cidrs"])
        elif entry.get("hosts"):
            # Security groups and ACLs cannot filter names: open the port, the host
            # firewall on the server filters by resolved name.
            pairs.append((ANYWHERE, port))
    return _unique(pairs)


def _number(rules):
    return [[NACL_FIRST_RULE + NACL_RULE_STEP * i, *rule] for i, rule in enumerate(_unique(rules))]


def airlock_nacl_entries(inputs):
    """Network ACL entries for both subnets: exactly the flows and their return traffic.

    Returns ``{"public": {"ingress": [...], "egress": [...]}, "private": {...}}`` where each
    entry is ``[rule_no, "tcp", "allow", cidr, None, None, port_from, port_to]``, the list
    format of ``amazon.aws.ec2_vpc_nacl``. Rule numbers start at 100 in steps of 10.
    Flows (see docs/aws.md): clients -> proxy (22, 80, 443); proxy -> server (22, app
    port, sandbox range); server -> proxy (443: OpenHands calls its sandboxes through the
    public URL; the package relay's port: the server's apt); proxy -> internet (patch
    ports: its own updates and the relay's mirrors); server -> LLM endpoints
    through the NAT gateway in the public subnet. Return traffic uses the ephemeral
    range. Amazon DNS and the Amazon Time Sync Service are not filtered by network
    ACLs, and traffic inside one subnet (server -> Bedrock endpoint) never crosses one.
    """
    public = inputs["public_subnet_cidr"]
    private = inputs["private_subnet_cidr"]
    eph = (inputs["nacl_ephemeral_ports"]["start"], inputs["nacl_ephemeral_ports"]["end"])
    app_ports = [
        (22, 22),
        (inputs["openhands_port"], inputs["openhands_port"]),
        (inputs["sandbox_port_range"]["start"], inputs["sandbox_port_range"]["end"]),
    ]
    llm = _llm_destinations(inputs)
    use_nat = bool(llm) and inputs.get("nat_gateway_enabled", True)

    def rule(cidr, ports):
        return ["tcp", "allow", cidr, None, None, ports[0], ports[1]]

    pub_in, pub_out, priv_in, priv_out = [], [], [], []
    for cidr in inputs["authorized_cidrs"]:
        pub_in.extend(rule(cidr, (port, port)) for port in (22, 80, 443))
    # The server calls the proxy's HTTPS port: OpenHands drives its sandboxes through the
    # public URLs it hands out (the proxy's /runtime/<port> routes).
    pub_in.append(rule(private, (443, 443)))
    relay = inputs.get("package_relay_port", 3142)
    pub_in.append(rule(private, (relay, relay)))  # the server's apt through the package relay
    if use_nat:
        pub_in.extend(rule(private, (port, port)) for port in sorted({port for _, port in llm}))
    pub_in.append(rule(ANYWHERE, eph))

    pub_out.extend(rule(cidr, eph) for cidr in inputs["authorized_cidrs"])
    pub_out.extend(rule(private, ports) for ports in app_ports)
    pub_out.append(rule(private, eph))
    pub_out.extend(rule(ANYWHERE, (port, port)) for port in inputs.get("proxy_patch_ports", []))
    if use_nat:
        pub_out.extend(rule(cidr, (port, port)) for cidr, port in llm)

    priv_in.extend(rule(public, ports) for ports in app_ports)
    priv_in.append(rule(public, eph))  # the proxy's replies to the server's HTTPS calls
    if use_nat:
        priv_in.extend(rule(cidr, eph) for cidr in _unique([cidr for cidr, _ in llm]))
    priv_out.append(rule(public, eph))
    priv_out.append(rule(public, (443, 443)))  # server -> proxy (sandbox URLs)
    priv_out.append(rule(public, (relay, relay)))  # server -> proxy (package relay)
    if inputs.get("evidence_enabled"):
        # The proxy's log shipper -> the CloudWatch Logs interface endpoint in the private
        # subnet (its replies use the ephemeral rules above in both ACLs).
        pub_out.append(rule(private, (443, 443)))
        priv_in.append(rule(public, (443, 443)))
    if use_nat:
        priv_out.extend(rule(cidr, (port, port)) for cidr, port in llm)
    if inputs.get("backup_bucket_enabled"):
        # Both hosts -> S3 (443) through the gateway endpoint. S3's addresses are a prefix
        # list, which network ACLs cannot name: the security groups allow exactly that list,
        # the route tables send it to the endpoint, and the endpoint policy admits one bucket.
        pub_out.append(rule(ANYWHERE, (443, 443)))
        priv_out.append(rule(ANYWHERE, (443, 443)))
        priv_in.append(rule(ANYWHERE, eph))

    return {
        "public": {"ingress": _number(pub_in), "egress": _number(pub_out)},
        "private": {"ingress": _number(priv_in), "egress": _number(priv_out)},
    }


def airlock_security_group_rules(inputs, proxy_sg, server_sg, endpoint_sg=None, logs_endpoint_sg=None,
                                 s3_prefix_list=None):
    """Security group rules for the proxy, server, Bedrock endpoint and logs endpoint groups.

    Returns ``{"proxy": {"rules": [...], "rules_egress": [...]}, "server": {...},
    "endpoint": {...}, "logs_endpoint": {...}}`` in ``amazon.aws.ec2_security_group`` format
    (``proto``, ``from_port``, ``to_port``, ``cidr_ip`` or ``group_id``, ``rule_desc``). The
    logs endpoint rules (both hosts -> 443 of that group only) exist only with
    ``evidence_enabled`` and its group id. With ``backup_bucket_enabled`` and the S3 prefix
    list's id (``pl-...``, the gateway endpoint's destination), both hosts may open 443 to
    that prefix list (``ip_prefix``): S3 through the endpoint, nowhere else.
    """
    resolver = checks.aws_vpc_resolver(inputs["vpc_cidr"]) + "/32"
    time_server = f"{inputs['time_server']}/32"
    app_ports = [
        (22, 22, "ssh"),
        (inputs["openhands_port"], inputs["openhands_port"], "openhands app"),
        (inputs["sandbox_port_range"]["start"], inputs["sandbox_port_range"]["end"], "openhands sandboxes"),
    ]

    def tcp(from_port, to_port, desc, cidr=None, group=None):
        out = {"proto": "tcp", "from_port": from_port, "to_port": to_port, "rule_desc": desc}
        out.update({"cidr_ip": cidr} if cidr else {"group_id": group})
        return out

    proxy_in = [
        tcp(port, port, f"{label} from authorized", cidr=cidr)
        for cidr in inputs["authorized_cidrs"]
        for port, label in ((22, "ssh"), (80, "http"), (443, "https"))
    ]
    # OpenHands calls its sandboxes through the public URLs it hands out: the proxy's 443.
    proxy_in.append(tcp(443, 443, "https from server (sandbox urls)", group=server_sg))
    relay = inputs.get("package_relay_port", 3142)
    proxy_in.append(tcp(relay, relay, "package relay from server (apt)", group=server_sg))
    proxy_out = [tcp(lo, hi, f"{label} to server", group=server_sg) for lo, hi, label in app_ports]
    # The proxy's own updates and the package relay's fetches from the distribution's mirrors.
    proxy_out += [tcp(port, port, "patching and package relay mirrors", cidr=ANYWHERE)
                  for port in inputs.get("proxy_patch_ports", [])]
    proxy_out += [
        {"proto": "udp", "from_port": 53, "to_port": 53, "cidr_ip": resolver, "rule_desc": "dns to vpc resolver"},
        tcp(53, 53, "dns to vpc resolver", cidr=resolver),
        {"proto": "udp", "from_port": 123, "to_port": 123, "cidr_ip": time_server, "rule_desc": "ntp to time sync"},
    ]

    server_in = [tcp(lo, hi, f"{label} from proxy", group=proxy_sg) for lo, hi, label in app_ports]
    server_out = [tcp(443, 443, "https to proxy (sandbox urls)", group=proxy_sg),
                  tcp(relay, relay, "package relay on proxy (apt)", group=proxy_sg)]
    for entry in inputs.get("llm_endpoints") or []:
        port = entry.get("port", 443)
        label = f"llm {entry['name']}"
        if entry.get("cidrs"):
            server_out += [tcp(port, port, label, cidr=cidr) for cidr in entry["cidrs"]]
        elif entry.get("hosts"):
            server_out.append(tcp(port, port, f"{label} (names filtered by host firewall)", cidr=ANYWHERE))
        elif entry.get("bedrock") and endpoint_sg:
            server_out.append(tcp(443, 443, f"{label} bedrock endpoint", group=endpoint_sg))
    server_out += [
        {"proto": "udp", "from_port": 53, "to_port": 53, "cidr_ip": resolver, "rule_desc": "dns to vpc resolver"},
        tcp(53, 53, "dns to vpc resolver", cidr=resolver),
        {"proto": "udp", "from_port": 123, "to_port": 123, "cidr_ip": time_server, "rule_desc": "ntp to time sync"},
    ]
    logs = bool(inputs.get("evidence_enabled") and logs_endpoint_sg)
    logs_in = []
    if logs:
        proxy_out.append(tcp(443, 443, "cloudwatch logs endpoint (evidence)", group=logs_endpoint_sg))
        server_out.append(tcp(443, 443, "cloudwatch logs endpoint (evidence)", group=logs_endpoint_sg))
        logs_in = [tcp(443, 443, "https from proxy (log shipper)", group=proxy_sg),
                   tcp(443, 443, "https from server (log shipper)", group=server_sg)]
    if inputs.get("backup_bucket_enabled") and s3_prefix_list:
        # No rule_desc: the test emulator (moto 5.2) drops prefix-list descriptions, so a
        # description would be rewritten on every run there; docs/aws.md (flow 10) names it.
        s3 = {"proto": "tcp", "from_port": 443, "to_port": 443, "ip_prefix": s3_prefix_list}
        proxy_out.append(dict(s3))
        server_out.append(dict(s3))
    # One rule per (protocol, ports, peer): the API rejects duplicates; keep the first label.
    server_out = _dedupe_rules(server_out)

    endpoint_in = [tcp(443, 443, "https from server", group=server_sg)]
    return {
        "proxy": {"rules": _dedupe_rules(proxy_in), "rules_egress": _dedupe_rules(proxy_out)},
        "server": {"rules": server_in, "rules_egress": server_out},
        "endpoint": {"rules": endpoint_in, "rules_egress": []},
        "logs_endpoint": {"rules": logs_in, "rules_egress": []},
    }


def _tag_dict(resource):
    tags = resource.get("tags", resource.get("Tags")) or {}
    if isinstance(tags, list):
        return {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags if isinstance(t, dict)}
    return tags if isinstance(tags, dict) else {}


def airlock_tagged(resources, project, environment):
    """Keep only the resources tagged with this project and environment.

    Accepts tags as a dict (amazon.aws snake_case results) or as a boto3 list of
    Key/Value pairs. The teardown deletes nothing that does not pass this check, even
    when the API (or an emulator) ignored a tag filter of the lookup.
    """
    if not project or not environment:
        return []
    return [
        r for r in resources or []
        if _tag_dict(r).get("project") == project and _tag_dict(r).get("environment") == environment
    ]


def _dedupe_rules(rules):
    seen, out = set(), []
    for rule in rules:
        key = (rule["proto"], rule["from_port"], rule["to_port"], rule.get("cidr_ip"), rule.get("group_id"),
               rule.get("ip_prefix"))
        if key not in seen:
            seen.add(key)
            out.append(rule)
    return out


ACME_ZONE_ID = re.compile(r"^Z[0-9A-Z]{1,32}$")


def airlock_acme_input_errors(inputs):
    """The proxy's Route 53 grant for ACME dns-01: a hosted zone id and the names the
    certificate covers, both or neither; each message names its variable."""
    errors = []
    zone = inputs.get("acme_route53_zone_id") or ""
    names = inputs.get("acme_names")
    if not isinstance(zone, str) or (zone and not ACME_ZONE_ID.match(zone)):
        errors.append(f"{PREFIX}acme_route53_zone_id: {zone!r} is not a Route 53 hosted zone id (like Z0123456789ABC)")
    if not isinstance(names, list):
        errors.append(f"{PREFIX}acme_names: must be a list of the certificate's host names")
        return errors
    for name in names:
        if not checks.is_fqdn(name):
            errors.append(f"{PREFIX}acme_names: {name!r} is not a fully qualified host name")
    if zone and not names:
        errors.append(f"{PREFIX}acme_names: empty, but {PREFIX}acme_route53_zone_id is set (name the certificate's hosts)")
    if names and not zone:
        errors.append(f"{PREFIX}acme_route53_zone_id: empty, but {PREFIX}acme_names is set")
    return errors


def airlock_acme_route53_policy(zone_id, names):
    """The proxy's inline policy for ACME dns-01 on Route 53: TXT records named
    _acme-challenge.<name> in that one zone (UPSERT and DELETE only), reading the zone,
    waiting for a change, and finding a zone by name; nothing else."""
    zone_arn = f"arn:aws:route53:::hostedzone/{zone_id}"
    records = sorted(f"_acme-challenge.{n.rstrip('.').lower()}" for n in names)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AcmeChallengeRecordOnly", "Effect": "Allow", "Action": "route53:ChangeResourceRecordSets",
             "Resource": zone_arn,
             "Condition": {"ForAllValues:StringEquals": {
                 "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
                 "route53:ChangeResourceRecordSetsNormalizedRecordNames": records,
                 "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"]}}},
            {"Sid": "AcmeChallengeReadTheZone", "Effect": "Allow",
             "Action": ["route53:GetHostedZone", "route53:ListResourceRecordSets"], "Resource": zone_arn},
            {"Sid": "AcmeChallengeWaitForTheChange", "Effect": "Allow", "Action": "route53:GetChange",
             "Resource": "arn:aws:route53:::change/*"},
            {"Sid": "AcmeChallengeFindTheZoneByName", "Effect": "Allow", "Action": "route53:ListHostedZonesByName",
             "Resource": "*"},
        ],
    }


class FilterModule:
    """aws_enclave's filters (see the module docstring)."""

    def filters(self):
        return {
            "airlock_is_instance_type": airlock_is_instance_type,
            "airlock_is_ssh_public_key": airlock_is_ssh_public_key,
            "airlock_aws_input_errors": airlock_aws_input_errors,
            "airlock_acme_input_errors": airlock_acme_input_errors,
            "airlock_acme_route53_policy": airlock_acme_route53_policy,
            "airlock_nacl_entries": airlock_nacl_entries,
            "airlock_security_group_rules": airlock_security_group_rules,
            "airlock_tagged": airlock_tagged,
        }
