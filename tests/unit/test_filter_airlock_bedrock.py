"""Unit tests of filter_plugins/airlock_bedrock.py (plain Python, no Ansible run)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
bedrock = load_module(ROOT / "filter_plugins" / "airlock_bedrock.py")

SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PROFILE_ARN = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0"
GOOD = {
    "project": "airlock",
    "environment": "prod",
    "region": "eu-west-1",
    "llm_endpoints": [
        {"name": "openai", "hosts": ["api.openai.com"]},
        {"name": "bedrock", "bedrock": True, "region": "eu-west-1"},
    ],
    "bedrock_models": [SONNET, PROFILE_ARN],
}
ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]


def with_(**changes):
    data = copy.deepcopy(GOOD)
    data.update(changes)
    return data


def test_filters_are_registered_and_documented():
    filters = bedrock.FilterModule().filters()
    assert {"airlock_bedrock_input_errors", "airlock_bedrock_model_arns", "airlock_bedrock_iam_names",
            "airlock_bedrock_invoke_policy", "airlock_bedrock_endpoint_policy", "airlock_aws_partition"} <= set(filters)
    for name, func in filters.items():
        assert func.__doc__, f"{name} is undocumented"


@pytest.mark.parametrize("region,partition", [
    ("us-east-1", "aws"), ("eu-west-1", "aws"), ("cn-north-1", "aws-cn"),
    ("us-gov-west-1", "aws-us-gov"), ("us-iso-east-1", "aws-iso"), ("us-isob-east-1", "aws-iso-b"),
])
def test_partition(region, partition):
    assert bedrock.airlock_aws_partition(region) == partition


def test_valid_input_has_no_errors():
    assert bedrock.airlock_bedrock_input_errors(GOOD) == []


def test_no_bedrock_no_models_is_fine():
    assert bedrock.airlock_bedrock_input_errors(with_(llm_endpoints=[], bedrock_models=[])) == []
    assert bedrock.airlock_bedrock_input_errors(with_(llm_endpoints=[], bedrock_models=None)) == []


@pytest.mark.parametrize("changes,needle", [
    ({"bedrock_models": []}, "aws_enclave_bedrock_models: is empty, but aws_enclave_llm_endpoints has the Bedrock entry 'bedrock'"),
    ({"bedrock_models": "anthropic.claude-v2"}, "aws_enclave_bedrock_models: must be a list"),
    ({"llm_endpoints": [{"name": "x", "cidrs": ["192.0.2.0/24"]}]},
     "aws_enclave_bedrock_models: is set, but aws_enclave_llm_endpoints has no Bedrock entry"),
    ({"bedrock_models": ["bedrock/" + SONNET]}, "is a LiteLLM model name; give the Bedrock model id without"),
    ({"bedrock_models": ["claude"]}, "aws_enclave_bedrock_models[0]: 'claude' is not a Bedrock model id"),
    ({"bedrock_models": [SONNET, ""]}, "aws_enclave_bedrock_models[1]: '' is not a Bedrock model id or ARN"),
    ({"bedrock_models": [42]}, "aws_enclave_bedrock_models[0]: 42 is not a Bedrock model id or ARN"),
    ({"bedrock_models": ["anthropic.*"]}, "aws_enclave_bedrock_models[0]: 'anthropic.*' has a wildcard"),
    ({"bedrock_models": ["arn:aws:bedrock:eu-west-1::foundation-model/*"]}, "has a wildcard"),
    ({"bedrock_models": ["eu.anthropic.claude-3-7-sonnet-20250219-v1:0"]},
     "aws_enclave_bedrock_models[0]: 'eu.anthropic.claude-3-7-sonnet-20250219-v1:0' is a cross-region inference profile id"),
    ({"bedrock_models": ["arn:aws:s3:::bucket/key"]}, "aws_enclave_bedrock_models[0]: 'arn:aws:s3:::bucket/key' is not a Bedrock ARN"),
    ({"bedrock_models": ["arn:aws-cn:bedrock:cn-north-1::foundation-model/" + SONNET]},
     "is not in partition 'aws' of aws_enclave_region 'eu-west-1'"),
    ({"bedrock_models": ["arn:aws:bedrock:nowhere::foundation-model/" + SONNET]}, "names no AWS region"),
    ({"bedrock_models": ["arn:aws:bedrock:eu-west-1:123456789012:knowledge-base/ABC"]},
     "is a 'knowledge-base' ARN; the gateway can invoke only"),
    ({"bedrock_models": ["arn:aws:bedrock:eu-west-1::inference-profile/eu.x.y"]}, "needs the 12-digit account id"),
    ({"bedrock_models": ["arn:aws:bedrock:eu-west-1:123456789012:foundation-model/" + SONNET]},
     "foundation-model ARNs have an empty account field"),
    ({"project": "air lock"}, "aws_enclave_project: 'air lock' must be letters, digits"),
    ({"environment": "e" * 32, "region": "ap-southeast-2", "project": "airlock-platform",
      "llm_endpoints": [{"name": "b", "bedrock": True}], "bedrock_models": [SONNET]},
     "aws_enclave_project/aws_enclave_environment: the server's IAM role name"),
])
def test_bad_input_names_the_variable(changes, needle):
    errors = bedrock.airlock_bedrock_input_errors(with_(**changes))
    assert any(needle in e for e in errors), errors
    assert all(e.startswith("aws_enclave_") for e in errors), errors


@pytest.mark.parametrize("model", [
    SONNET, "amazon.titan-text-express-v1", "meta.llama3-70b-instruct-v1:0", "amazon.nova-pro-v1:0",
    "anthropic.claude-3-sonnet-20240229-v1:0:200k", "mistral.mistral-7b-instruct-v0:2",
    "arn:aws:bedrock:us-east-1::foundation-model/" + SONNET,
    "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
    "arn:aws:bedrock:eu-west-1:123456789012:provisioned-model/abcdef123456",
    "arn:aws:bedrock:eu-west-1:123456789012:imported-model/abcdef123456",
    PROFILE_ARN,
])
def test_accepted_models(model):
    assert bedrock.airlock_bedrock_input_errors(with_(bedrock_models=[model])) == []


def test_model_arns_built_sorted_and_unique():
    arns = bedrock.airlock_bedrock_model_arns([SONNET, PROFILE_ARN, SONNET], "eu-west-1")
    assert arns == sorted([f"arn:aws:bedrock:eu-west-1::foundation-model/{SONNET}", PROFILE_ARN])
    assert bedrock.airlock_bedrock_model_arns([SONNET], "cn-north-1") == [
        f"arn:aws-cn:bedrock:cn-north-1::foundation-model/{SONNET}"]
    assert bedrock.airlock_bedrock_model_arns([], "eu-west-1") == []


def test_iam_names_carry_project_environment_and_region():
    names = bedrock.airlock_bedrock_iam_names(GOOD)
    assert names == {"role": "airlock-prod-eu-west-1-server", "instance_profile": "airlock-prod-eu-west-1-server",
                     "policy": "bedrock-invoke", "path": "/airlock/"}


def test_longest_default_names_fit_the_iam_limit():
    inputs = with_(environment="e" * 32, region="ap-southeast-2")
    assert len(bedrock.airlock_bedrock_iam_names(inputs)["role"]) <= 64
    assert bedrock.airlock_bedrock_input_errors(inputs) == []


def test_invoke_policy_is_exactly_the_two_actions_on_the_arns():
    arns = [PROFILE_ARN, "arn:aws:bedrock:eu-west-1::foundation-model/" + SONNET]
    policy = bedrock.airlock_bedrock_invoke_policy(arns)
    assert policy["Version"] == "2012-10-17"
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ACTIONS
    assert statement["Resource"] == sorted(arns)
    assert set(statement) == {"Sid", "Effect", "Action", "Resource"}


def test_endpoint_policy_limits_to_the_account():
    arns = ["arn:aws:bedrock:eu-west-1::foundation-model/" + SONNET]
    policy = bedrock.airlock_bedrock_endpoint_policy(arns, "123456789012")
    (statement,) = policy["Statement"]
    assert statement["Principal"] == "*"
    assert statement["Action"] == ACTIONS
    assert statement["Resource"] == arns
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": "123456789012"}}


@pytest.mark.parametrize("builder", ["airlock_bedrock_invoke_policy", "airlock_bedrock_endpoint_policy"])
def test_policies_refuse_an_empty_resource_list(builder):
    with pytest.raises(ValueError, match="at least one resource"):
        getattr(bedrock, builder)([], *(["123456789012"] if "endpoint" in builder else []))


def test_endpoint_policy_refuses_a_bad_account_id():
    with pytest.raises(ValueError, match="12 digits"):
        bedrock.airlock_bedrock_endpoint_policy(["arn:aws:bedrock:eu-west-1::foundation-model/x.y"], "")
