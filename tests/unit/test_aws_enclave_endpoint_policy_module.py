"""Unit test of the policy comparison in roles/aws_enclave/library/aws_enclave_vpc_endpoint_policy.py:
a policy AWS hands back reordered, or with one-element lists as strings, is not a change."""
from __future__ import annotations

from pathlib import Path

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
module = load_module(ROOT / "roles" / "aws_enclave" / "library" / "aws_enclave_vpc_endpoint_policy.py")

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow", "Principal": "*",
        "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
        "Resource": ["arn:aws:bedrock:us-east-1::foundation-model/a.b", "arn:aws:bedrock:us-east-1::foundation-model/c.d"],
        "Condition": {"StringEquals": {"aws:PrincipalAccount": "123456789012"}},
    }],
}


def test_reordered_lists_and_scalars_are_equal():
    other = {
        "Statement": {
            "Condition": {"StringEquals": {"aws:PrincipalAccount": ["123456789012"]}},
            "Resource": list(reversed(POLICY["Statement"][0]["Resource"])),
            "Action": list(reversed(POLICY["Statement"][0]["Action"])),
            "Principal": "*", "Effect": "Allow",
        },
        "Version": "2012-10-17",
    }
    assert module.canonical(other) == module.canonical(POLICY)


def test_other_grants_differ():
    default = {"Statement": [{"Action": "*", "Effect": "Allow", "Principal": "*", "Resource": "*"}]}
    assert module.canonical(default) != module.canonical(POLICY)
    fewer = {**POLICY, "Statement": [{**POLICY["Statement"][0], "Resource": POLICY["Statement"][0]["Resource"][:1]}]}
    assert module.canonical(fewer) != module.canonical(POLICY)
