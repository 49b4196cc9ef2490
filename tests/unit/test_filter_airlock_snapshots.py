"""Unit tests of filter_plugins/airlock_snapshots.py (plain Python, no Ansible run)."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
snaps = load_module(ROOT / "filter_plugins" / "airlock_snapshots.py")

GOOD = {"project": "airlock", "environment": "prod", "region": "eu-west-1", "endpoint_url": "",
        "retention": 7, "retention_days": 0, "wait": False, "wait_timeout": 1800, "prune": True}
MATCH = {"project": "airlock", "environment": "prod", "airlock:enclave": "airlock-prod",
         "airlock:managed-by": "airlock-ebs-snapshots"}
NOW = "2025-06-30T12:00:00Z"


def errors(**changes):
    return snaps.airlock_ebs_snapshot_input_errors({**GOOD, **changes})


# --------------------------------------------------------------------------- input
def test_good_input_has_no_errors():
    assert errors() == []
    assert errors(retention="3", retention_days="10", wait="true", wait_timeout="60",
                  endpoint_url="http://127.0.0.1:5000") == []


@pytest.mark.parametrize("changes,needle", [
    ({"retention": 0}, "airlock_ebs_snapshot_retention: 0 must be >= 1"),
    ({"retention": -3}, "airlock_ebs_snapshot_retention: -3 must be >= 1"),
    ({"retention": "abc"}, "airlock_ebs_snapshot_retention: 'abc' is not an integer"),
    ({"retention": 2.5}, "airlock_ebs_snapshot_retention: 2.5 is not an integer"),
    ({"retention": True}, "airlock_ebs_snapshot_retention: True is not an integer"),
    ({"retention": None}, "airlock_ebs_snapshot_retention: None is not an integer"),
    ({"retention_days": -1}, "airlock_ebs_snapshot_retention_days: -1 must be >= 0"),
    ({"retention_days": "x"}, "airlock_ebs_snapshot_retention_days: 'x' is not an integer"),
    ({"wait": "maybe"}, "airlock_ebs_snapshot_wait: 'maybe' is not a boolean"),
    ({"prune": "later"}, "airlock_ebs_snapshot_prune: 'later' is not a boolean"),
    ({"wait_timeout": 0}, "airlock_ebs_snapshot_wait_timeout: 0 must be an integer >= 1"),
    ({"environment": ""}, "aws_enclave_environment: is empty"),
    ({"environment": "  "}, "aws_enclave_environment: is empty"),
    ({"environment": None}, "aws_enclave_environment: is empty"),
    ({"environment": "Prod_1"}, "aws_enclave_environment: 'Prod_1' is not a valid name"),
    ({"project": ""}, "aws_enclave_project: is empty"),
    ({"region": "Europe"}, "aws_enclave_region: 'Europe' is not an AWS region name"),
    ({"endpoint_url": "ftp://127.0.0.1:1"}, "aws_enclave_endpoint_url: 'ftp://127.0.0.1:1'"),
    ({"endpoint_url": "http://user:pw@127.0.0.1"}, "aws_enclave_endpoint_url:"),
])
def test_bad_input_is_named(changes, needle):
    found = errors(**changes)
    assert len(found) == 1 and found[0].startswith(needle), found


def test_all_errors_are_reported_at_once():
    assert len(errors(retention=0, environment="", wait_timeout="x")) == 3


# --------------------------------------------------------------------------- volumes
def instance(env, name, tier, *mappings, instance_id="i-1"):
    return {"instance_id": instance_id, "tags": {"project": "airlock", "environment": env, "Name": name, "tier": tier},
            "block_device_mappings": [{"device_name": d, "ebs": {"volume_id": v}} for d, v in mappings]}


def test_attached_volumes_of_the_enclave_only():
    found = snaps.airlock_ebs_attached_volumes([
        instance("prod", "airlock-prod-proxy", "proxy", ("/dev/sda1", "vol-p"), instance_id="i-p"),
        instance("prod", "airlock-prod-openhands", "openhands", ("/dev/sda1", "vol-s"), ("/dev/sdf", "vol-d"),
                 instance_id="i-s"),
        instance("dev", "airlock-dev-proxy", "proxy", ("/dev/sda1", "vol-x")),  # another environment
        {"instance_id": "i-u", "tags": {}, "block_device_mappings": [{"device_name": "/dev/sda1",
                                                                      "ebs": {"volume_id": "vol-u"}}]},
    ], "airlock", "prod")
    assert found == [
        {"instance_id": "i-s", "instance_name": "airlock-prod-openhands", "tier": "openhands", "volume_id": "vol-s",
         "device": "/dev/sda1"},
        {"instance_id": "i-s", "instance_name": "airlock-prod-openhands", "tier": "openhands", "volume_id": "vol-d",
         "device": "/dev/sdf"},
        {"instance_id": "i-p", "instance_name": "airlock-prod-proxy", "tier": "proxy", "volume_id": "vol-p",
         "device": "/dev/sda1"},
    ]


def test_attached_volumes_need_a_name():
    assert snaps.airlock_ebs_attached_volumes([instance("prod", "n", "proxy", ("/dev/sda1", "v"))], "airlock", "") == []


def test_a_volume_attached_twice_is_listed_once():
    found = snaps.airlock_ebs_attached_volumes([
        instance("prod", "a", "proxy", ("/dev/sdf", "vol-m"), instance_id="i-a"),
        instance("prod", "b", "proxy", ("/dev/sdf", "vol-m"), instance_id="i-b"),
    ], "airlock", "prod")
    assert [v["volume_id"] for v in found] == ["vol-m"]


# --------------------------------------------------------------------------- plan
def snap(sid, volume, set_id, start=None, state="completed", owner="111", **tag_changes):
    tags = {**MATCH, "airlock:snapshot-set": set_id, **tag_changes}
    tags = {k: v for k, v in tags.items() if v is not None}
    return {"snapshot_id": sid, "volume_id": volume, "state": state, "owner_id": owner, "tags": tags,
            "start_time": start or f"{set_id[:4]}-{set_id[4:6]}-{set_id[6:8]}T{set_id[9:11]}:00:00+00:00"}


def plan(snapshots, retention=2, days=0, protect="", owner="111"):
    return snaps.airlock_ebs_snapshot_plan(snapshots, MATCH, retention, days, NOW, protect, owner)


def deleted(result):
    return sorted(d["snapshot_id"] for d in result["delete"])


def test_count_retention_per_volume_deletes_the_oldest():
    result = plan([
        snap("a1", "vol-a", "20250601T020000Z"), snap("a2", "vol-a", "20250602T020000Z"),
        snap("a3", "vol-a", "20250603T020000Z"), snap("a4", "vol-a", "20250604T020000Z"),
        snap("b1", "vol-b", "20250603T020000Z"), snap("b2", "vol-b", "20250604T020000Z"),
    ])
    assert deleted(result) == ["a1", "a2"]
    assert sorted(result["keep"]) == ["a3", "a4", "b1", "b2"]
    assert result["volumes"] == {"vol-a": ["20250604T020000Z", "20250603T020000Z"],
                                 "vol-b": ["20250604T020000Z", "20250603T020000Z"]}
    assert result["managed"] == 6
    assert all(d["reason"] == "beyond the newest 2 sets" for d in result["delete"])


def test_set_tag_orders_before_start_time():
    # the start times disagree with the sets (clock skew): the set decides
    result = plan([snap("old", "v", "20250601T020000Z", start="2025-06-09T00:00:00Z"),
                   snap("mid", "v", "20250602T020000Z", start="2025-06-01T00:00:00Z"),
                   snap("new", "v", "20250603T020000Z", start="2025-06-01T00:00:00Z")])
    assert deleted(result) == ["old"]


def test_age_limit_keeps_the_newest_usable_snapshot():
    result = plan([snap("x1", "v", "20250101T020000Z"), snap("x2", "v", "20250201T020000Z"),
                   snap("y1", "w", "20250629T020000Z"), snap("y2", "w", "20250501T020000Z")],
                  retention=5, days=30)
    assert deleted(result) == ["x1", "y2"]  # x2 is too old too but the newest of its volume
    assert {d["reason"] for d in result["delete"]} == {"older than 30 days"}


def test_error_snapshots_count_for_nothing_and_are_deleted():
    result = plan([snap("e", "v", "20250604T020000Z", state="error"), snap("a", "v", "20250603T020000Z"),
                   snap("b", "v", "20250602T020000Z"), snap("c", "v", "20250601T020000Z")])
    assert deleted(result) == ["c", "e"]
    assert result["volumes"]["v"] == ["20250603T020000Z", "20250602T020000Z"]


def test_the_current_set_is_never_deleted():
    result = plan([snap("now", "v", "20250630T120000Z", state="error"), snap("a", "v", "20250601T020000Z")],
                  retention=1, protect="20250630T120000Z")
    assert deleted(result) == []


@pytest.mark.parametrize("foreign", [
    {"airlock:managed-by": None},
    {"airlock:managed-by": "someone-else"},
    {"environment": "dev", "airlock:enclave": "airlock-dev"},
    {"airlock:enclave": "airlock-other"},
    {"project": None},
    {"airlock:snapshot-set": ""},
], ids=["no managed-by", "other managed-by", "other environment", "other enclave", "no project", "no set"])
def test_foreign_snapshots_are_never_deleted(foreign):
    old = snap("foreign", "v", "20200101T000000Z", **foreign)
    result = plan([old] + [snap(f"s{i}", "v", f"2025060{i}T020000Z") for i in range(1, 4)], retention=1, days=1)
    assert "foreign" not in deleted(result) and "foreign" not in result["keep"]
    assert deleted(result) == ["s1", "s2"]


def test_untagged_and_other_owner_snapshots_are_ignored():
    untagged = {"snapshot_id": "u", "volume_id": "v", "state": "completed", "owner_id": "111", "tags": {},
                "start_time": "2020-01-01T00:00:00Z"}
    shared = snap("shared", "v", "20200101T000000Z", owner="999")
    result = plan([untagged, shared, snap("mine", "v", "20250601T020000Z")], retention=1, days=1)
    assert result == {"managed": 1, "keep": ["mine"], "delete": [], "volumes": {"v": ["20250601T020000Z"]}}


def test_boto3_style_tags_and_start_times_are_read():
    s = {"snapshot_id": "a", "volume_id": "v", "state": "completed", "owner_id": "111",
         "Tags": [{"Key": k, "Value": v} for k, v in {**MATCH, "airlock:snapshot-set": "20250101T000000Z"}.items()],
         "start_time": "2025-01-01T00:00:00.123000Z"}
    newer = snap("b", "v", "20250601T020000Z")
    assert deleted(plan([s, newer], retention=3, days=30)) == ["a"]


def test_plan_refuses_what_would_delete_too_much():
    with pytest.raises(ValueError):
        snaps.airlock_ebs_snapshot_plan([], MATCH, 0)
    with pytest.raises(ValueError):
        snaps.airlock_ebs_snapshot_plan([], {}, 1)
