"""Filters of the log_shipper role (plain Python, unit tested in tests/unit).

log_shipper_input_errors(inputs)
    Every check argument specs cannot express: a list of messages, each starting with the
    name of the offending variable (empty when the input is valid, and when the role is off).
    ``inputs`` holds the role's variables without the ``log_shipper_`` prefix.
log_shipper_agent_config(inputs)
    The CloudWatch agent's JSON configuration (a dict) for those inputs: agent.region,
    agent.run_as_user root, one logs.logs_collected.files.collect_list entry per stream,
    logs.force_flush_interval and, when set, logs.endpoint_override.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "log_shipper_"
MODES = ("ec2", "onPremise")
# CloudWatch Logs' own rules: group names [.-_/#A-Za-z0-9]{1,512}; stream names 1-512
# characters without ':' or '*'.
LOG_GROUP = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")
STREAM_LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+~-]{0,99}$")
PLACEHOLDERS = ("{instance_id}", "{hostname}", "{local_hostname}", "{ip_address}")


def _bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1"):
        return True
    return False


def _absolute_path(value) -> bool:
    return (isinstance(value, str) and value.startswith("/") and not any(c.isspace() for c in value)
            and ".." not in value.split("/") and "\x00" not in value)


def _package_url_error(value):
    parts = checks.split_url(value)
    if parts is None or parts.scheme not in ("https", "file"):
        return "is not an https:// or file:// URL"
    if parts.scheme == "https" and not (parts.hostname and checks.is_fqdn(parts.hostname)):
        return "has no host name"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "carries credentials, a query or a fragment"
    if parts.scheme == "file" and (parts.netloc or not _absolute_path(parts.path)):
        return "is not a file:// URL of an absolute path (file:///path/to/amazon-cloudwatch-agent.deb)"
    if not parts.path.endswith(".deb"):
        return "does not name a .deb package"
    return None


def log_shipper_input_errors(inputs):
    if not _bool(inputs.get("enabled")):
        return []
    errors = []
    region = inputs.get("region")
    if not (isinstance(region, str) and checks.AWS_REGION.match(region)):
        errors.append(f"{PREFIX}region: {region!r} is not an AWS region (e.g. us-east-1)")
    endpoint = inputs.get("endpoint_url")
    if endpoint not in ("", None) and not checks.is_endpoint_url(endpoint):
        errors.append(f"{PREFIX}endpoint_url: {endpoint!r} is not an http(s)://host[:port] endpoint URL "
                      "(empty on AWS: the VPC's private DNS answers the region's name)")
    streams = inputs.get("streams")
    if not isinstance(streams, list) or not streams:
        errors.append(f"{PREFIX}streams must list at least one {{name, file, group}} when {PREFIX}enabled is true")
        streams = []
    names, files = set(), set()
    for index, stream in enumerate(streams):
        where = f"{PREFIX}streams[{index}]"
        if not isinstance(stream, dict):
            errors.append(f"{where} is not a mapping {{name, file, group}}")
            continue
        extra = sorted(set(stream) - {"name", "file", "group"})
        if extra:
            errors.append(f"{where} has unknown keys {extra} (name, file, group)")
        name, path, group = stream.get("name"), stream.get("file"), stream.get("group")
        if not (isinstance(name, str) and STREAM_LABEL.match(name)):
            errors.append(f"{where}.name: {name!r} is not a stream label ([a-z0-9_-], e.g. audit)")
        elif name in names:
            errors.append(f"{where}.name: {name!r} is listed twice")
        names.add(name if isinstance(name, str) else None)
        if not _absolute_path(path):
            errors.append(f"{where}.file: {path!r} is not an absolute path without spaces or '..'")
        elif path in files:
            errors.append(f"{where}.file: {path!r} is shipped twice (one group per file)")
        files.add(path if isinstance(path, str) else None)
        if not (isinstance(group, str) and LOG_GROUP.match(group)):
            errors.append(f"{where}.group: {group!r} is not a CloudWatch Logs group name "
                          "(1-512 of A-Z a-z 0-9 . - _ / #)")
    stream_name = inputs.get("stream_name")
    if not isinstance(stream_name, str) or not 1 <= len(stream_name) <= 512 or ":" in stream_name \
            or "*" in stream_name or any(c.isspace() for c in stream_name):
        errors.append(f"{PREFIX}stream_name: {stream_name!r} is not a log stream name "
                      "(1-512 characters, no ':', '*' or spaces)")
    elif "{" in re.sub("|".join(re.escape(p) for p in PLACEHOLDERS), "", stream_name):
        errors.append(f"{PREFIX}stream_name: {stream_name!r} has a placeholder the agent does not fill "
                      f"(only {', '.join(PLACEHOLDERS)})")
    if inputs.get("mode") not in MODES:
        errors.append(f"{PREFIX}mode: {inputs.get('mode')!r} is not one of {', '.join(MODES)}")
    flush = checks.strict_int(inputs.get("force_flush_interval"))
    if flush is None or not 1 <= flush <= 3600:
        errors.append(f"{PREFIX}force_flush_interval: {inputs.get('force_flush_interval')!r} is not a number "
                      "of seconds from 1 to 3600")
    version = inputs.get("package_version")
    if not (isinstance(version, str) and VERSION.match(version)):
        errors.append(f"{PREFIX}package_version: {version!r} is not a package version (e.g. 1.300072.0b1766)")
    url = inputs.get("package_url")
    url_error = _package_url_error(url)
    if url_error:
        errors.append(f"{PREFIX}package_url: {url!r} {url_error}")
    sha = inputs.get("package_sha256")
    if sha in ("", None):
        errors.append(f"{PREFIX}package_sha256 is empty: give the SHA-256 of the pinned package "
                      "(docs/aws.md: how to obtain and verify it)")
    elif not (isinstance(sha, str) and SHA256.match(sha)):
        errors.append(f"{PREFIX}package_sha256: {sha!r} is not a SHA-256 (64 lower-case hex digits)")
    cache = inputs.get("controller_cache_dir")
    if not _absolute_path(cache):
        errors.append(f"{PREFIX}controller_cache_dir: {cache!r} is not an absolute path on the controller")
    return errors


def log_shipper_agent_config(inputs):
    collect = [{"file_path": s["file"], "log_group_name": s["group"], "log_stream_name": inputs["stream_name"],
                "timezone": "UTC"} for s in inputs.get("streams") or []]
    logs = {"logs_collected": {"files": {"collect_list": collect}},
            "force_flush_interval": int(inputs["force_flush_interval"])}
    if inputs.get("endpoint_url"):
        logs["endpoint_override"] = inputs["endpoint_url"]
    return {"agent": {"region": inputs["region"], "run_as_user": "root"}, "logs": logs}


class FilterModule:
    def filters(self):
        return {
            "log_shipper_input_errors": log_shipper_input_errors,
            "log_shipper_agent_config": log_shipper_agent_config,
        }
