"""The CIDRs of an AWS-managed prefix list, read on the controller.

    {{ lookup('airlock_aws_prefix_list', 'com.amazonaws.us-east-1.s3',
              region='us-east-1', endpoint_url='') }}
      -> ["3.5.0.0/19", "52.216.0.0/15", "54.231.0.0/16", ...]

Why: the server reaches S3 (its restic backup) through the VPC's S3 gateway endpoint, whose
addresses are the region's public S3 ranges. S3's DNS answers one address of those ranges
per query, with a TTL of seconds, so a firewall set filled by resolving the name would miss
most of the addresses restic is given. The ranges themselves are the AWS-managed prefix
list `com.amazonaws.<region>.s3`, the same list the gateway endpoint's route and the
security group rule name (roles/aws_enclave). The server cannot read it (it reaches no EC2
API), so the inventory reads it here, with the controller's credentials (the ones the
aws_ec2 inventory uses), and hands the CIDRs to the server's egress firewall
(inventories/aws/group_vars/openhands/aws.yml, airlock_host_services).

Only AWS-managed lists (owner "AWS") are read: a customer-managed list of the same name in
the account cannot widen the firewall. A list that is missing or empty is an error naming
it, never an empty result (an empty rule would look like a working deployment whose backup
fails every night). The result is sorted and de-duplicated, so a rerun renders the same
ruleset.

Tested against moto in tests/aws/test_prefix_list_lookup.py.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import re
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: airlock_aws_prefix_list
short_description: CIDRs of an AWS-managed prefix list
description:
  - Returns the CIDRs of the AWS-managed prefix list with the given name, for example
    C(com.amazonaws.us-east-1.s3), sorted.
options:
  _terms:
    description: The prefix list's name (one).
    required: true
  region:
    description: The AWS region.
    required: true
    type: str
  endpoint_url:
    description: Another EC2 endpoint (an emulator); empty for AWS's own.
    type: str
    default: ""
"""

RETURN = r"""
_raw:
  description: The list's CIDRs, sorted.
  type: list
  elements: str
"""

# The checks every role shares (the AWS region's form among them): plugin_utils/airlock_checks.py,
# loaded by path as the filter plugins do.
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[1] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

NAME = re.compile(r"^com\.amazonaws\.(?:global|[a-z]{2}(?:-[a-z]+)+-\d)\.[a-z0-9.-]+$")

# One API call per list and endpoint per process: the variable is templated several times
# in one task (its checks, the ruleset, the sets configuration).
_CACHE: dict = {}


def prefix_list_cidrs(client, name: str) -> list:
    """The CIDRs of the AWS-managed prefix list `name`, sorted; ValueError naming the list
    when there is none or it holds nothing."""
    found = client.describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": [name]}, {"Name": "owner-id", "Values": ["AWS"]}]
    ).get("PrefixLists", [])
    # Filters an emulator may ignore are applied again here.
    found = [p for p in found if p.get("PrefixListName") == name and p.get("OwnerId") == "AWS"]
    if len(found) != 1:
        raise ValueError(f"there is {'no' if not found else 'more than one'} AWS-managed prefix list named {name}")
    cidrs, token = set(), None
    while True:
        kwargs = {"PrefixListId": found[0]["PrefixListId"]}
        if token:
            kwargs["NextToken"] = token
        page = client.get_managed_prefix_list_entries(**kwargs)
        cidrs |= {str(ipaddress.ip_network(e["Cidr"])) for e in page.get("Entries", [])}
        token = page.get("NextToken")
        if not token:
            break
    if not cidrs:
        raise ValueError(f"the AWS-managed prefix list {name} ({found[0]['PrefixListId']}) holds no CIDR")
    return sorted(cidrs, key=lambda c: (ipaddress.ip_network(c).version, ipaddress.ip_network(c)))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1 or not isinstance(terms[0], str) or not NAME.match(terms[0]):
            raise AnsibleError(f"airlock_aws_prefix_list: one AWS-managed prefix list name is needed "
                               f"(com.amazonaws.<region>.<service>), got {terms!r}")
        region = self.get_option("region")
        if not isinstance(region, str) or not checks.AWS_REGION.match(region):
            raise AnsibleError(f"airlock_aws_prefix_list: region {region!r} is not an AWS region")
        endpoint = (self.get_option("endpoint_url") or "").strip()
        key = (terms[0], region, endpoint)
        if key not in _CACHE:
            try:
                import boto3  # pylint: disable=import-outside-toplevel
                import botocore.exceptions  # pylint: disable=import-outside-toplevel
            except ImportError as exc:
                raise AnsibleError("airlock_aws_prefix_list needs boto3 on the controller") from exc
            try:
                client = boto3.session.Session(region_name=region).client("ec2", endpoint_url=endpoint or None)
                _CACHE[key] = prefix_list_cidrs(client, terms[0])
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, ValueError) as exc:
                raise AnsibleError(f"airlock_aws_prefix_list: cannot read {terms[0]} in {region}: {exc}") from exc
        return [list(_CACHE[key])]
