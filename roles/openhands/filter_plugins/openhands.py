"""Filters of the openhands role: input validation (plain Python, unit-testable).

openhands_input_errors(inputs)
    Every check argument specs cannot express; a list of messages, each starting with the
    name of the offending variable (empty when valid). ``inputs`` is a dict of the role's
    variables without the ``openhands_`` prefix.

openhands_settings_differ(slurped, llm, extra)
    Whether the settings store, read with ``slurp``, differs from the wanted LLM settings
    (the key included) or top-level settings: the store decides, not a record of what the
    role last sent.

openhands_first_host(subnet)
    The first host address of an IPv4 subnet (Docker's gateway when none is given).
"""
from __future__ import annotations

import base64
import importlib.util
import ipaddress
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "openhands_"
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?$|^sha256:[0-9a-f]{64}$")
REPO_RE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
_MISSING = object()


def _url_ok(value, schemes=("http", "https")) -> bool:
    parts = checks.split_url(value)
    return parts is not None and parts.scheme in schemes and bool(parts.hostname)


def _loopback_host(host) -> bool:
    """localhost, or a loopback address: what the server sends to host.docker.internal."""
    if host == "localhost":
        return True
    return checks.is_address(host) and ipaddress.ip_address(str(host)).is_loopback


def openhands_input_errors(inputs):
    errors = []
    # The key itself is never passed in: only whether it is set and whether it is one line.
    if not inputs.get("llm_api_key_set"):
        errors.append(f"{PREFIX}llm_api_key is empty: set it from vault (it is never logged)")
    elif inputs.get("llm_api_key_multiline"):
        errors.append(f"{PREFIX}llm_api_key must be one line")
    if not inputs.get("llm_model") or any(c.isspace() for c in str(inputs.get("llm_model"))):
        errors.append(f"{PREFIX}llm_model must be a model name such as openai/gpt-4o (got {inputs.get('llm_model')!r})")
    if not _url_ok(inputs.get("llm_base_url")):
        errors.append(f"{PREFIX}llm_base_url is not an http(s) URL (got {inputs.get('llm_base_url')!r})")
    bind = inputs.get("bind_address")
    try:
        addr = ipaddress.ip_address(str(bind))
        if addr.is_unspecified:
            errors.append(f"{PREFIX}bind_address must be the private address, not {bind} (every interface)")
    except ValueError:
        errors.append(f"{PREFIX}bind_address is not an IP address (got {bind!r})")
    gateway = inputs.get("bridge_gateway")
    if gateway:
        try:
            gw = ipaddress.ip_address(str(gateway))
            if gw.is_unspecified or gw.is_loopback:
                errors.append(f"{PREFIX}bridge_gateway must be the Docker bridge's gateway address, not {gateway}")
        except ValueError:
            errors.append(f"{PREFIX}bridge_gateway is not an IP address (got {gateway!r})")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", str(inputs.get("network_name", ""))) \
            or inputs.get("network_name") in ("bridge", "host", "none", "default"):
        errors.append(f"{PREFIX}network_name must name a Docker network of the app's own, not "
                      f"{inputs.get('network_name')!r} (the sandboxes run on the default bridge)")
    iface = str(inputs.get("network_interface", ""))
    if not re.match(r"^[A-Za-z0-9_.-]{1,15}$", iface) or iface in ("docker0", "lo"):
        errors.append(f"{PREFIX}network_interface must be a bridge name of at most 15 characters of its own, not {iface!r}")
    subnet = inputs.get("network_subnet")
    if subnet:
        try:
            net = ipaddress.IPv4Network(str(subnet), strict=True)
            if net.prefixlen > 29:
                errors.append(f"{PREFIX}network_subnet {subnet} is too small (at most /29)")
        except ValueError:
            errors.append(f"{PREFIX}network_subnet is not an IPv4 network such as 172.30.0.0/24 (got {subnet!r})")
    pattern = inputs.get("sandbox_url_pattern")
    if pattern and (not _url_ok(pattern.replace("{port}", "1")) or "{port}" not in pattern):
        errors.append(f"{PREFIX}sandbox_url_pattern must be an http(s) URL containing {{port}} (got {pattern!r})")
    elif pattern and _loopback_host(urlsplit(pattern.replace("{port}", "1")).hostname):
        errors.append(f"{PREFIX}sandbox_url_pattern must not name localhost (got {pattern!r}): OpenHands calls its "
                      "sandboxes through these URLs and turns localhost into host.docker.internal, this host, so "
                      "its calls never reach the proxy; use the proxy's public name (a *.localhost name in a lab)")
    hosts = inputs.get("extra_hosts", [])
    if not isinstance(hosts, list):
        errors.append(f"{PREFIX}extra_hosts must be a list of {{name, address}} (got {hosts!r})")
        hosts = []
    for i, entry in enumerate(hosts):
        if not isinstance(entry, dict) or set(entry) != {"name", "address"} \
                or not HOST_RE.match(str(entry.get("name"))) or not checks.is_address(entry.get("address")):
            errors.append(f"{PREFIX}extra_hosts[{i}] must be {{name: <host name>, address: <IP address>}} (got {entry!r})")
    certs = inputs.get("trusted_ca_certificates", [])
    if not isinstance(certs, list) or not all(isinstance(c, str) and PEM_RE.search(c) for c in certs):
        errors.append(f"{PREFIX}trusted_ca_certificates must be a list of PEM certificates "
                      "(-----BEGIN CERTIFICATE----- ...)")
    for var in ("image_repository", "agent_server_image_repository"):
        if not REPO_RE.match(str(inputs.get(var, ""))):
            errors.append(f"{PREFIX}{var} is not an image repository (got {inputs.get(var)!r})")
    for var in ("image_tag", "agent_server_image_tag"):
        if not TAG_RE.match(str(inputs.get(var, ""))) or str(inputs.get(var)) == "latest":
            errors.append(f"{PREFIX}{var} must be a pinned tag or digest, not {inputs.get(var)!r}")
    if inputs.get("image_source") == "archive":
        for var in ("image_archive", "agent_server_image_archive"):
            if not inputs.get(var):
                errors.append(f"{PREFIX}{var} is empty but {PREFIX}image_source is archive")
    if inputs.get("image_source") == "controller":
        # An archive holds a name:tag; a digest cannot name the image it loads.
        for var in ("image_tag", "agent_server_image_tag"):
            if str(inputs.get(var, "")).startswith("sha256:"):
                errors.append(f"{PREFIX}{var}: a digest cannot be fetched into an archive ({PREFIX}image_source "
                              "controller): give the pinned tag")
        if not str(inputs.get("image_fetch_dir", "")).startswith("/"):
            errors.append(f"{PREFIX}image_fetch_dir must be an absolute path on the controller "
                          f"(got {inputs.get('image_fetch_dir')!r})")
        args = inputs.get("image_fetch_args")
        if not isinstance(args, list) or not all(isinstance(a, str) and a.startswith("--") for a in args):
            errors.append(f"{PREFIX}image_fetch_args must be a list of skopeo copy options such as "
                          f"--src-tls-verify=false (got {args!r})")
    paths = inputs.get("app_shield_paths")
    if isinstance(paths, list) and "/" in paths:
        errors.append(f"{PREFIX}app_shield_paths must not contain /: that would open the whole API to containers")
    elif not isinstance(paths, list) or not all(isinstance(p, str) and re.match(r"^/[A-Za-z0-9_-][A-Za-z0-9/_-]*/$", p) for p in paths):
        errors.append(f"{PREFIX}app_shield_paths must be a list of path prefixes such as /api/v1/webhooks/ (got {paths!r})")
    for var in ("extra_env", "agent_server_env"):
        for name, value in (inputs.get(var) or {}).items():
            if not ENV_RE.match(str(name)) or any(c in str(value) for c in "\r\n"):
                errors.append(f"{PREFIX}{var}: {name!r} must be a variable name with a one-line value")
    return errors


def openhands_settings_differ(slurped, llm, extra) -> bool:
    """Whether the settings store (a ``slurp`` result of 1.11.0's settings.json) differs from
    the wanted LLM settings (model, base_url, api_key under agent_settings.llm) or the wanted
    top-level ``extra`` settings. A missing or unreadable store differs."""
    if not isinstance(slurped, dict) or "content" not in slurped:
        return True
    try:
        stored = json.loads(base64.b64decode(slurped["content"]).decode("utf-8"))
    except ValueError:
        return True
    if not isinstance(stored, dict):
        return True
    stored_llm = (stored.get("agent_settings") or {}).get("llm") or {}
    if any(stored_llm.get(field) != value for field, value in (llm or {}).items()):
        return True
    return any(stored.get(name, _MISSING) != value for name, value in (extra or {}).items())


def openhands_first_host(subnet: str) -> str:
    """The first host address of an IPv4 subnet: Docker's gateway when none is given."""
    return str(next(ipaddress.IPv4Network(str(subnet), strict=False).hosts()))


class FilterModule:
    def filters(self):
        return {"openhands_input_errors": openhands_input_errors, "openhands_first_host": openhands_first_host,
                "openhands_settings_differ": openhands_settings_differ}
