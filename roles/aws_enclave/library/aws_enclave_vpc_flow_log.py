#!/usr/bin/python
"""Keep one VPC flow log to a CloudWatch Logs group (amazon.aws and community.aws have no
flow log module)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: aws_enclave_vpc_flow_log
short_description: Keep exactly one VPC flow log to a CloudWatch Logs group
description:
  - With O(state=present), makes sure the VPC has a flow log to O(log_group_name) with these
    settings. Flow logs cannot be modified, so a flow log of the VPC to the same group with
    other settings (traffic type, delivery role, aggregation interval or tags) is deleted and
    created again. Other flow logs of the VPC that carry the same C(project) and
    C(environment) tags as O(tags) are deleted; flow logs of anyone else are left alone.
  - With O(state=absent), deletes every flow log whose C(project) and C(environment) tags
    equal those of O(tags) (of O(vpc_id) only, when given). Tags are checked client-side.
  - Supports check mode.
options:
  vpc_id:
    description: Id of the VPC. Required with O(state=present).
    type: str
  log_group_name:
    description: Name of the CloudWatch Logs group. Required with O(state=present).
    type: str
  deliver_logs_permission_arn:
    description: ARN of the role VPC Flow Logs assumes to write the group. Required with O(state=present).
    type: str
  traffic_type:
    description: Which traffic is logged.
    type: str
    choices: [ACCEPT, REJECT, ALL]
    default: ALL
  max_aggregation_interval:
    description: Seconds over which a flow is aggregated into one record.
    type: int
    choices: [60, 600]
    default: 600
  tags:
    description: Tags of the flow log; must hold C(project) and C(environment).
    type: dict
    required: true
  state:
    description: Whether the flow log should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Log all traffic of the VPC
  aws_enclave_vpc_flow_log:
    vpc_id: vpc-0123456789abcdef0
    log_group_name: /airlock/prod/vpc-flow-logs
    deliver_logs_permission_arn: arn:aws:iam::123456789012:role/airlock/airlock-prod-us-east-1-flow-logs
    tags: {project: airlock, environment: prod, Name: airlock-prod-flow-logs}
"""

RETURN = r"""
flow_log_id:
  description: Id of the flow log after the run (empty with O(state=absent)).
  returned: success
  type: str
deleted:
  description: Ids of the flow logs deleted.
  returned: success
  type: list
  elements: str
"""

try:
    import botocore.exceptions
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402

SCOPE_TAGS = ("project", "environment")


def tag_dict(flow_log):
    return {t["Key"]: t["Value"] for t in flow_log.get("Tags") or []}


def same_scope(flow_log, tags):
    found = tag_dict(flow_log)
    return all(found.get(key) == tags.get(key) for key in SCOPE_TAGS)


def matches(flow_log, params):
    """True when an existing flow log is exactly the one asked for."""
    return (
        flow_log.get("LogDestinationType", "cloud-watch-logs") == "cloud-watch-logs"
        and flow_log.get("LogGroupName") == params["log_group_name"]
        and flow_log.get("TrafficType") == params["traffic_type"]
        and flow_log.get("DeliverLogsPermissionArn") == params["deliver_logs_permission_arn"]
        and int(flow_log.get("MaxAggregationInterval") or 600) == params["max_aggregation_interval"]
        and tag_dict(flow_log) == {k: str(v) for k, v in params["tags"].items()}
    )


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            vpc_id=dict(type="str"),
            log_group_name=dict(type="str"),
            deliver_logs_permission_arn=dict(type="str"),
            traffic_type=dict(type="str", choices=["ACCEPT", "REJECT", "ALL"], default="ALL"),
            max_aggregation_interval=dict(type="int", choices=[60, 600], default=600),
            tags=dict(type="dict", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["vpc_id", "log_group_name", "deliver_logs_permission_arn"])],
        supports_check_mode=True,
    )
    params = module.params
    tags = params["tags"]
    missing = [key for key in SCOPE_TAGS if not tags.get(key)]
    if missing:
        module.fail_json(msg=f"tags must hold {', '.join(missing)}: they scope what this module may delete")
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
    filters = [{"Name": "resource-id", "Values": [params["vpc_id"]]}] if params["vpc_id"] else []
    try:
        found = client.describe_flow_logs(aws_retry=True, Filters=filters)["FlowLogs"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="Could not describe the flow logs")
    # The API (or an emulator) may ignore a filter: check the VPC again here.
    if params["vpc_id"]:
        found = [f for f in found if f.get("ResourceId") == params["vpc_id"]]

    keep = None
    if params["state"] == "present":
        keep = next((f for f in found if matches(f, params)), None)
    doomed = [
        f["FlowLogId"] for f in found
        if f is not keep and (
            same_scope(f, tags) or (params["state"] == "present" and f.get("LogGroupName") == params["log_group_name"]))
    ]
    changed = bool(doomed) or (params["state"] == "present" and keep is None)
    flow_log_id = keep["FlowLogId"] if keep else ""
    if module.check_mode or not changed:
        module.exit_json(changed=changed, flow_log_id=flow_log_id, deleted=doomed)

    try:
        if doomed:
            result = client.delete_flow_logs(aws_retry=True, FlowLogIds=doomed)
            if result.get("Unsuccessful"):
                module.fail_json(msg=f"Could not delete flow logs: {result['Unsuccessful']}")
        if params["state"] == "present" and keep is None:
            result = client.create_flow_logs(
                aws_retry=True,
                ResourceIds=[params["vpc_id"]],
                ResourceType="VPC",
                TrafficType=params["traffic_type"],
                LogDestinationType="cloud-watch-logs",
                LogGroupName=params["log_group_name"],
                DeliverLogsPermissionArn=params["deliver_logs_permission_arn"],
                MaxAggregationInterval=params["max_aggregation_interval"],
                TagSpecifications=[{
                    "ResourceType": "vpc-flow-log",
                    "Tags": [{"Key": k, "Value": str(v)} for k, v in tags.items()],
                }],
            )
            if result.get("Unsuccessful") or not result.get("FlowLogIds"):
                module.fail_json(msg=f"Could not create the flow log: {result.get('Unsuccessful')}")
            flow_log_id = result["FlowLogIds"][0]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        module.fail_json_aws(exc, msg=f"Could not bring the flow log of {params['vpc_id']} in line")
    module.exit_json(changed=True, flow_log_id=flow_log_id, deleted=doomed)


if __name__ == "__main__":
    main()
