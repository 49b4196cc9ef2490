"""The proxy's Route 53 grant for ACME dns-01 (roles/aws_enclave/filter_plugins/aws_enclave.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
aws = load_module(ROOT / "roles" / "aws_enclave" / "filter_plugins" / "aws_enclave.py")


def test_the_grant_names_the_challenge_records_of_one_zone_only():
    policy = aws.airlock_acme_route53_policy("Z0123456789ABC", ["Openhands.Example.org.", "alt.example.org"])
    (change,) = [s for s in policy["Statement"] if s["Action"] == "route53:ChangeResourceRecordSets"]
    assert change["Resource"] == "arn:aws:route53:::hostedzone/Z0123456789ABC"
    condition = change["Condition"]["ForAllValues:StringEquals"]
    assert condition["route53:ChangeResourceRecordSetsNormalizedRecordNames"] == [
        "_acme-challenge.alt.example.org", "_acme-challenge.openhands.example.org"]
    assert condition["route53:ChangeResourceRecordSetsRecordTypes"] == ["TXT"]
    assert condition["route53:ChangeResourceRecordSetsActions"] == ["UPSERT", "DELETE"]
    wildcard = [s for s in policy["Statement"] if s["Resource"] == "*"]
    assert [s["Action"] for s in wildcard] == ["route53:ListHostedZonesByName"], "only the zone lookup is unscoped"


@pytest.mark.parametrize("inputs,message", [
    ({"acme_route53_zone_id": "example.org", "acme_names": ["openhands.example.org"]}, "aws_enclave_acme_route53_zone_id: 'example.org'"),
    ({"acme_route53_zone_id": "Z0123456789ABC", "acme_names": []}, "aws_enclave_acme_names: empty"),
    ({"acme_route53_zone_id": "", "acme_names": ["openhands.example.org"]}, "aws_enclave_acme_route53_zone_id: empty"),
    ({"acme_route53_zone_id": "Z0123456789ABC", "acme_names": ["localhost"]}, "aws_enclave_acme_names: 'localhost'"),
    ({"acme_route53_zone_id": "Z0123456789ABC", "acme_names": "openhands.example.org"}, "aws_enclave_acme_names: must be a list"),
])
def test_bad_grant_input_is_refused_naming_the_variable(inputs, message):
    errors = aws.airlock_acme_input_errors(inputs)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("inputs", [
    {"acme_route53_zone_id": "", "acme_names": []},
    {"acme_route53_zone_id": "Z0123456789ABC", "acme_names": ["openhands.example.org"]},
])
def test_no_grant_or_a_whole_one_passes(inputs):
    assert aws.airlock_acme_input_errors(inputs) == []
