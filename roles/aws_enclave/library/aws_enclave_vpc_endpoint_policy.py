#!/usr/bin/python
"""Set the policy of an existing VPC endpoint (amazon.aws.ec2_vpc_endpoint sets it only
when it creates an endpoint, and leaves an existing endpoint's policy as it is)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: aws_enclave_vpc_endpoint_policy
short_description: Set the policy document of an existing VPC endpoint
description:
  - Reads the endpoint's policy and replaces it (ModifyVpcEndpoint) only when it grants
    something else than O(policy). Statement order of actions and resources, and
    one-element lists written as plain strings, do not count as a difference.
  - C(amazon.aws.ec2_vpc_endpoint) applies a policy only when it creates the endpoint;
    this module keeps the policy of an endpoint created earlier in line.
options:
  vpc_endpoint_id:
    description: Id of the endpoint (C(vpce-...)).
    type: str
    required: true
  policy:
    description: The policy document (a dict or a JSON string).
    type: json
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Limit the endpoint to this account
  aws_enclave_vpc_endpoint_policy:
    vpc_endpoint_id: vpce-0123456789abcdef0
    policy: "{{ my_policy | to_json }}"
"""

RETURN = r"""
policy_document:
  description: The endpoint's policy after the run.
  returned: success
  type: dict
"""

import json  # noqa: E402

try:
    import botocore.exceptions
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402


def canonical(value):
    """Policy JSON in a comparable form: lists sorted, one-element lists as scalars."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [canonical(v) for v in value]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            vpc_endpoint_id=dict(type="str", required=True),
            policy=dict(type="json", required=True),
        ),
        supports_check_mode=True,
    )
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
    endpoint_id = module.params["vpc_endpoint_id"]
    try:
        desired = json.loads(module.params["policy"])
    except ValueError as exc:
        module.fail_json(msg=f"policy is not valid JSON: {exc}")
    try:
        found = client.describe_vpc_endpoints(aws_retry=True, VpcEndpointIds=[endpoint_id])["VpcEndpoints"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg=f"Could not describe VPC endpoint {endpoint_id}")
    if not found:
        module.fail_json(msg=f"VPC endpoint {endpoint_id} not found")
    current_text = found[0].get("PolicyDocument") or "{}"
    try:
        current = json.loads(current_text)
    except ValueError:
        current = None
    if canonical(current) == canonical(desired):
        module.exit_json(changed=False, policy_document=current)
    if not module.check_mode:
        try:
            client.modify_vpc_endpoint(aws_retry=True, VpcEndpointId=endpoint_id, PolicyDocument=json.dumps(desired))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            module.fail_json_aws(exc, msg=f"Could not set the policy of VPC endpoint {endpoint_id}")
    module.exit_json(changed=True, policy_document=desired, diff={"before": current, "after": desired})


if __name__ == "__main__":
    main()
