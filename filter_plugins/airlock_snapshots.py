"""EBS snapshot filters for playbooks/ebs_snapshots.yml: input checks, volumes, retention.

Plain Python (standard library only) so that every rule can be unit tested without
Ansible or AWS. The playbook fails with the messages of ``airlock_ebs_snapshot_input_errors``
before its first API call, lists the volumes with ``airlock_ebs_attached_volumes`` and
deletes exactly the snapshots that ``airlock_ebs_snapshot_plan`` puts on its delete list.

Filters
-------
airlock_ebs_snapshot_input_errors(inputs)
    Every check of the playbook's input; a list of messages, each starting with the
    name of the offending variable (empty when the input is valid).
airlock_ebs_attached_volumes(instances, project, environment)
    One entry per EBS volume attached to the given instances (``amazon.aws.ec2_instance_info``
    results), only for instances tagged with this project and environment.
airlock_ebs_snapshot_plan(snapshots, match_tags, retention, retention_days, now, protect_set, owner_id)
    Which snapshots (``amazon.aws.ec2_snapshot_info`` results) retention keeps and which
    it deletes. Only snapshots carrying every tag of ``match_tags`` and a snapshot-set tag
    (and owned by ``owner_id`` when given) are ever considered; everything else is left
    alone, whatever the API returned.
"""
from __future__ import annotations

import datetime
import importlib.util
import re
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[1] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

# Tag keys written on every snapshot and read back by the retention plan.
SET_TAG = "airlock:snapshot-set"
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def _is_bool(value):
    if isinstance(value, bool):
        return True
    return isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS


def airlock_ebs_snapshot_input_errors(inputs):
    """Messages for every invalid input of playbooks/ebs_snapshots.yml (empty: valid).

    ``inputs`` maps project, environment, region, endpoint_url, retention,
    retention_days, wait, wait_timeout and prune to the values of the variables named
    in the messages.
    """
    errors = []
    for key, var in (("environment", "aws_enclave_environment"), ("project", "aws_enclave_project")):
        value = inputs.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            hint = " (set AIRLOCK_ENVIRONMENT or -e aws_enclave_environment=NAME)" if key == "environment" else ""
            errors.append(f"{var}: is empty; the enclave to snapshot must be named{hint}")
        elif not isinstance(value, str) or not NAME_PATTERN.match(value):
            errors.append(f"{var}: {value!r} is not a valid name (lower-case letters, digits and '-', at most 32)")
    region = inputs.get("region")
    if not isinstance(region, str) or not REGION_PATTERN.match(region):
        errors.append(f"aws_enclave_region: {region!r} is not an AWS region name such as eu-west-1")
    endpoint = inputs.get("endpoint_url")
    if endpoint not in (None, "") and not (isinstance(endpoint, str) and checks.endpoint_url_parts(endpoint) is not None):
        errors.append(f"aws_enclave_endpoint_url: {endpoint!r} is not an http(s)://host[:port] URL")

    retention = checks.strict_int(inputs.get("retention"))
    if retention is None:
        errors.append(f"airlock_ebs_snapshot_retention: {inputs.get('retention')!r} is not an integer "
                      "(the number of snapshot sets kept per volume, >= 1)")
    elif retention < 1:
        errors.append(f"airlock_ebs_snapshot_retention: {retention} must be >= 1 "
                      "(the number of snapshot sets kept per volume; the newest is always kept)")
    days = checks.strict_int(inputs.get("retention_days"))
    if days is None:
        errors.append(f"airlock_ebs_snapshot_retention_days: {inputs.get('retention_days')!r} is not an integer "
                      "(0: no age limit)")
    elif days < 0:
        errors.append(f"airlock_ebs_snapshot_retention_days: {days} must be >= 0 (0: no age limit)")
    for key in ("wait", "prune"):
        if not _is_bool(inputs.get(key, True)):
            errors.append(f"airlock_ebs_snapshot_{key}: {inputs.get(key)!r} is not a boolean")
    timeout = checks.strict_int(inputs.get("wait_timeout"))
    if timeout is None or timeout < 1:
        errors.append(f"airlock_ebs_snapshot_wait_timeout: {inputs.get('wait_timeout')!r} must be an integer >= 1 (seconds)")
    return errors


def _tags(resource):
    tags = resource.get("tags", resource.get("Tags")) or {}
    if isinstance(tags, list):
        return {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags if isinstance(t, dict)}
    return tags if isinstance(tags, dict) else {}


def airlock_ebs_attached_volumes(instances, project, environment):
    """Every EBS volume attached to the instances of this project and environment.

    Instances whose tags do not say this project and environment are skipped (a second
    check after the API's tag filter). Each entry: instance_id, instance_name (its Name
    tag), tier, volume_id, device. A volume attached to two instances is listed once.
    """
    if not project or not environment:
        return []
    out, seen = [], set()
    for inst in instances or []:
        tags = _tags(inst)
        if tags.get("project") != project or tags.get("environment") != environment:
            continue
        for mapping in inst.get("block_device_mappings") or []:
            volume_id = (mapping.get("ebs") or {}).get("volume_id")
            if not volume_id or volume_id in seen:
                continue
            seen.add(volume_id)
            out.append({
                "instance_id": inst.get("instance_id", ""),
                "instance_name": tags.get("Name") or inst.get("instance_id", ""),
                "tier": tags.get("tier", ""),
                "volume_id": volume_id,
                "device": mapping.get("device_name", ""),
            })
    return sorted(out, key=lambda v: (v["instance_name"], v["device"], v["volume_id"]))


def _parse_time(value):
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def airlock_ebs_snapshot_plan(snapshots, match_tags, retention, retention_days=0, now=None, protect_set="",
                              owner_id=""):
    """Split the managed snapshots into those retention keeps and those it deletes.

    Considered ("managed"): snapshots carrying every key/value of ``match_tags`` and a
    non-empty ``airlock:snapshot-set`` tag, owned by ``owner_id`` when one is given.
    Anything else is never on the delete list.

    Per volume, newest first (by snapshot set, then start time):
      * snapshots in state ``error`` count for nothing and are deleted;
      * the first ``retention`` usable snapshots are kept, the rest deleted;
      * with ``retention_days`` > 0, usable snapshots that started more than that many
        days before ``now`` are deleted too, except the newest usable one;
      * snapshots of ``protect_set`` (the set this run created) are always kept.

    Returns {"managed": int, "keep": [ids], "delete": [{snapshot_id, volume_id, set,
    reason}], "volumes": {volume_id: [kept set ids, newest first]}}.
    """
    retention = int(retention)
    retention_days = int(retention_days or 0)
    if retention < 1:
        raise ValueError("retention must be >= 1")
    now_dt = _parse_time(now) or datetime.datetime.now(datetime.timezone.utc)
    cutoff = now_dt - datetime.timedelta(days=retention_days) if retention_days > 0 else None
    match = {str(k): str(v) for k, v in (match_tags or {}).items()}
    if not match:
        raise ValueError("match_tags must not be empty: it is what marks a snapshot as managed")

    by_volume = {}
    for snap in snapshots or []:
        tags = _tags(snap)
        if any(tags.get(k) != v for k, v in match.items()) or not tags.get(SET_TAG):
            continue
        if owner_id and str(snap.get("owner_id", "")) != str(owner_id):
            continue
        volume = snap.get("volume_id") or tags.get("airlock:volume-id") or ""
        by_volume.setdefault(volume, []).append(snap)

    keep, delete, volumes = [], [], {}
    managed = 0
    for volume in sorted(by_volume):
        items = sorted(by_volume[volume], key=lambda s: (_tags(s)[SET_TAG], str(s.get("start_time", ""))),
                       reverse=True)
        managed += len(items)
        rank = 0
        kept_sets = []
        for snap in items:
            snap_set = _tags(snap)[SET_TAG]
            reason = None
            if snap.get("state") == "error":
                reason = "in state error"
            else:
                rank += 1
                started = _parse_time(snap.get("start_time"))
                if rank > retention:
                    reason = f"beyond the newest {retention} sets"
                elif cutoff is not None and rank > 1 and started is not None and started < cutoff:
                    reason = f"older than {retention_days} days"
            if reason and protect_set and snap_set == protect_set:
                reason = None
            if reason:
                delete.append({"snapshot_id": snap.get("snapshot_id"), "volume_id": volume, "set": snap_set,
                               "reason": reason})
            else:
                keep.append(snap.get("snapshot_id"))
                kept_sets.append(snap_set)
        volumes[volume] = kept_sets
    return {"managed": managed, "keep": keep, "delete": delete, "volumes": volumes}


class FilterModule:
    """airlock EBS snapshot filters (see the module docstring)."""

    def filters(self):
        return {
            "airlock_ebs_snapshot_input_errors": airlock_ebs_snapshot_input_errors,
            "airlock_ebs_attached_volumes": airlock_ebs_attached_volumes,
            "airlock_ebs_snapshot_plan": airlock_ebs_snapshot_plan,
        }
