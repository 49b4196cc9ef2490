"""Bedrock access filters for airlock's AWS tier: the server's IAM role and the
endpoint policy.

Plain Python (standard library only) so that every check and every policy document can
be unit tested without Ansible. The role ``aws_enclave`` calls
``airlock_bedrock_input_errors`` before its first API call (next to
``airlock_aws_input_errors`` of ``airlock_net.py``) and builds its IAM and VPC endpoint
policies with the other filters here.

Filters
-------
airlock_aws_partition(region)
    The AWS partition of a region (``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``,
    ``aws-iso-b``).
airlock_bedrock_input_errors(inputs)
    Checks of ``aws_enclave_bedrock_models`` (and of the IAM names it leads to); returns
    a list of messages, each starting with the variable's name (empty when valid).
airlock_bedrock_model_arns(models, region)
    The resource ARNs the server may invoke: a model id becomes
    ``arn:<partition>:bedrock:<region>::foundation-model/<id>``, an ARN is kept as it is;
    sorted, without duplicates.
airlock_bedrock_iam_names(inputs)
    ``{"role": ..., "instance_profile": ..., "policy": ..., "path": ...}``: the names of the
    server's IAM role, its instance profile and inline policy, and their IAM path.
airlock_bedrock_invoke_policy(arns)
    The role's inline policy: ``bedrock:InvokeModel`` and
    ``bedrock:InvokeModelWithResponseStream`` on exactly these ARNs, nothing else.
airlock_bedrock_endpoint_policy(arns, account_id)
    The VPC endpoint policy: the same actions on the same ARNs, for principals of this
    account only (``aws:PrincipalAccount``).

``inputs`` is the dict of the role's variables without the ``aws_enclave_`` prefix
(``region``, ``project``, ``environment``, ``llm_endpoints``, ``bedrock_models``), see
the role's ``vars/main.yml``.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[1] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "aws_enclave_"
INVOKE_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")
POLICY_VERSION = "2012-10-17"
REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
# provider.model[-version][:n[:context]], e.g. anthropic.claude-3-5-sonnet-20240620-v1:0
MODEL_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.[a-z0-9](?:[a-z0-9._:-]*[a-z0-9])?$")
# System-defined cross-region inference profiles: <geography>.<provider>.<model>.
PROFILE_GEOGRAPHIES = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")
ARN = re.compile(
    r"^arn:(?P<partition>aws(?:-[a-z]+)*):bedrock:(?P<region>[a-z0-9-]+):(?P<account>[0-9]*):"
    r"(?P<type>[a-z-]+)/(?P<id>[A-Za-z0-9._:/-]+)$"
)
# Resource types InvokeModel accepts, and whether their ARN names an account.
ARN_TYPES = {
    "foundation-model": False,
    "inference-profile": True,
    "application-inference-profile": True,
    "provisioned-model": True,
    "imported-model": True,
}
IAM_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]+$")
IAM_ROLE_NAME_MAX = 64


def airlock_aws_partition(region):
    """The AWS partition of a region: aws, aws-cn, aws-us-gov, aws-iso or aws-iso-b."""
    return checks.aws_partition(region)


def _bedrock_entries(inputs):
    endpoints = inputs.get("llm_endpoints")
    if not isinstance(endpoints, list):
        return []
    return [e for e in endpoints if isinstance(e, dict) and e.get("bedrock")]


def _model_error(where, value, region):
    """One message for a bad model id or ARN, or None."""
    if not isinstance(value, str) or not value:
        return f"{where}: {value!r} is not a Bedrock model id or ARN"
    if "*" in value or "?" in value:
        return f"{where}: {value!r} has a wildcard; list each model the gateway may use"
    if value.startswith("arn:"):
        match = ARN.match(value)
        if not match:
            return (f"{where}: {value!r} is not a Bedrock ARN "
                    "(arn:<partition>:bedrock:<region>:<account>:<type>/<id>)")
        partition = airlock_aws_partition(region)
        if match["partition"] != partition:
            return f"{where}: {value!r} is not in partition {partition!r} of {PREFIX}region {region!r}"
        if not REGION.match(match["region"]):
            return f"{where}: {value!r} names no AWS region"
        kind = match["type"]
        if kind not in ARN_TYPES:
            return (f"{where}: {value!r} is a {kind!r} ARN; the gateway can invoke only "
                    f"{', '.join(ARN_TYPES)} resources")
        if ARN_TYPES[kind] and not re.match(r"^[0-9]{12}$", match["account"]):
            return f"{where}: {value!r} needs the 12-digit account id of the {kind}"
        if not ARN_TYPES[kind] and match["account"]:
            return f"{where}: {value!r}: foundation-model ARNs have an empty account field (::)"
        return None
    if value.startswith("bedrock/"):
        return (f"{where}: {value!r} is a LiteLLM model name; give the Bedrock model id without "
                "the bedrock/ (or bedrock/converse/) prefix")
    if not MODEL_ID.match(value):
        return (f"{where}: {value!r} is not a Bedrock model id (provider.model, like "
                "anthropic.claude-3-5-sonnet-20240620-v1:0) or ARN")
    if value.split(".", 1)[0] in PROFILE_GEOGRAPHIES:
        return (f"{where}: {value!r} is a cross-region inference profile id; give its ARN "
                "(arn:<partition>:bedrock:<region>:<account>:inference-profile/<id>) and the "
                "foundation-model ARN of each region it routes to")
    return None


def airlock_bedrock_iam_names(inputs):
    """Names of the server's IAM role, instance profile and inline policy, and their path.

    IAM names are global to the account while an enclave lives in one region, so the
    region is part of the name: one environment name may be used in two regions.
    """
    base = f"{inputs.get('project')}-{inputs.get('environment')}-{inputs.get('region')}-server"
    return {
        "role": base,
        "instance_profile": base,
        "policy": "bedrock-invoke",
        "path": f"/{inputs.get('project')}/",
    }


def airlock_bedrock_input_errors(inputs):
    """Validate aws_enclave_bedrock_models against aws_enclave_llm_endpoints.

    A Bedrock entry needs at least one model (the IAM policy grants nothing else); models
    without a Bedrock entry are refused as a likely mistake. Each model is a model id
    (provider.model) or the ARN of a foundation model, inference profile, application
    inference profile, provisioned or imported model, in the enclave's partition, with no
    wildcard. With Bedrock, the project and environment must also make a valid IAM role
    name of at most 64 characters.
    """
    errors = []
    name = PREFIX + "bedrock_models"
    models = inputs.get("bedrock_models")
    region = inputs.get("region")
    bedrock = _bedrock_entries(inputs)
    if models is None:
        models = []
    if not isinstance(models, list):
        errors.append(f"{name}: must be a list of Bedrock model ids or ARNs")
        return errors
    if bedrock and not models:
        errors.append(
            f"{name}: is empty, but {PREFIX}llm_endpoints has the Bedrock entry "
            f"{bedrock[0].get('name')!r}; list the model ids (or ARNs) the gateway may invoke"
        )
    if models and not bedrock:
        errors.append(
            f"{name}: is set, but {PREFIX}llm_endpoints has no Bedrock entry (bedrock: true); "
            "add one or leave the list empty"
        )
    for index, model in enumerate(models):
        error = _model_error(f"{name}[{index}]", model, region)
        if error:
            errors.append(error)
    if bedrock:
        project = inputs.get("project")
        if not isinstance(project, str) or not IAM_NAME.match(project):
            errors.append(f"{PREFIX}project: {project!r} must be letters, digits and +=,.@_- to name the IAM role")
        role = airlock_bedrock_iam_names(inputs)["role"]
        if len(role) > IAM_ROLE_NAME_MAX:
            errors.append(
                f"{PREFIX}project/{PREFIX}environment: the server's IAM role name {role!r} is "
                f"{len(role)} characters, more than the IAM limit of {IAM_ROLE_NAME_MAX}; use a shorter name"
            )
    return errors


def airlock_bedrock_model_arns(models, region):
    """Resource ARNs for the models: ids become foundation-model ARNs in the region."""
    partition = airlock_aws_partition(region)
    arns = set()
    for model in models or []:
        model = str(model)
        if model.startswith("arn:"):
            arns.add(model)
        else:
            arns.add(f"arn:{partition}:bedrock:{region}::foundation-model/{model}")
    return sorted(arns)


def _require_arns(arns):
    if not arns:
        raise ValueError("no Bedrock model ARN: a policy must name at least one resource")
    return sorted(set(arns))


def airlock_bedrock_invoke_policy(arns):
    """Inline policy of the server's role: the two invoke actions on these ARNs only."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "InvokeConfiguredModels",
            "Effect": "Allow",
            "Action": list(INVOKE_ACTIONS),
            "Resource": _require_arns(arns),
        }],
    }


def airlock_bedrock_endpoint_policy(arns, account_id):
    """VPC endpoint policy: the two invoke actions on these ARNs, by this account only."""
    account_id = str(account_id)
    if not re.match(r"^[0-9]{12}$", account_id):
        raise ValueError(f"account id {account_id!r} is not 12 digits")
    return {
        "Version": POLICY_VERSION,
        "Statement": [{
            "Sid": "ThisAccountInvokeConfiguredModels",
            "Effect": "Allow",
            "Principal": "*",
            "Action": list(INVOKE_ACTIONS),
            "Resource": _require_arns(arns),
            "Condition": {"StringEquals": {"aws:PrincipalAccount": account_id}},
        }],
    }


class FilterModule:
    """airlock Bedrock access filters (see the module docstring)."""

    def filters(self):
        return {
            "airlock_aws_partition": airlock_aws_partition,
            "airlock_bedrock_input_errors": airlock_bedrock_input_errors,
            "airlock_bedrock_model_arns": airlock_bedrock_model_arns,
            "airlock_bedrock_iam_names": airlock_bedrock_iam_names,
            "airlock_bedrock_invoke_policy": airlock_bedrock_invoke_policy,
            "airlock_bedrock_endpoint_policy": airlock_bedrock_endpoint_policy,
        }
