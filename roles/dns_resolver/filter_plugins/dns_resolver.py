"""Filters of the dns_resolver role (plain Python, unit-testable).

dns_resolver_input_errors(inputs)
    Every check argument specs cannot express; a list of messages, each starting with the
    name of the offending variable (empty when valid). ``inputs`` holds the role's
    variables without the ``dns_resolver_`` prefix.
dns_resolver_endpoint_names(endpoints)
    The DNS names of an LLM endpoint list in the egress firewall's format: every entry's
    ``hosts``, and ``bedrock-runtime.<region>.amazonaws.com`` for a ``bedrock: true``
    entry (the name the egress firewall resolves for it), lower case, each once. The host
    services (egress_firewall_host_services' format) go through it too: their ``hosts``.
"""
from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "dns_resolver_"


def dns_resolver_endpoint_names(endpoints):
    names = []
    for entry in endpoints or []:
        if not isinstance(entry, dict):
            continue
        hosts = [str(h).lower().rstrip(".") for h in entry.get("hosts") or []]
        if entry.get("bedrock") and entry.get("region"):
            hosts.append(f"bedrock-runtime.{entry['region']}.amazonaws.com")
        for host in hosts:
            if host not in names:
                names.append(host)
    return names


def _name_errors(var, values, errors) -> None:
    if not isinstance(values, list):
        errors.append(f"{PREFIX}{var} must be a list of DNS names")
        return
    for i, value in enumerate(values):
        if not isinstance(value, str) or not checks.DNS_NAME.match(value.rstrip(".")):
            errors.append(f"{PREFIX}{var}[{i}]: {value!r} is not a DNS name (at least two labels of [a-z0-9-])")


def _entry_errors(var, entries, fmt, errors) -> None:
    """Entries in the egress firewall's format (`fmt`): their hosts must be DNS names, and a
    bedrock entry needs its region."""
    if not isinstance(entries, list):
        errors.append(f"{PREFIX}{var} must be a list of {fmt} entries")
        return
    for i, entry in enumerate(entries):
        where = f"{var}[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{PREFIX}{where} must be a dict ({fmt} format)")
            continue
        _name_errors(f"{where}.hosts", entry.get("hosts") or [], errors)
        if entry.get("bedrock") and not checks.AWS_REGION.match(str(entry.get("region") or "")):
            errors.append(f"{PREFIX}{where}.region: {entry.get('region')!r} is not an AWS region (bedrock: true needs one)")


def dns_resolver_input_errors(inputs):
    errors = []
    upstreams = inputs.get("upstreams")
    if not isinstance(upstreams, list) or not upstreams:
        errors.append(f"{PREFIX}upstreams must list at least one resolver address (on AWS the VPC resolver)")
    else:
        for i, value in enumerate(upstreams):
            try:
                address = ipaddress.ip_address(str(value))
            except ValueError:
                errors.append(f"{PREFIX}upstreams[{i}]: {value!r} is not an IP address")
                continue
            if address.is_loopback or address.is_unspecified:
                errors.append(f"{PREFIX}upstreams[{i}]: {value} is a loopback or unspecified address; the local resolver "
                              "listens on loopback itself and must forward to the network's resolver")
    _entry_errors("llm_endpoints", inputs.get("llm_endpoints"), "egress_firewall_llm_endpoints", errors)
    _entry_errors("host_services", inputs.get("host_services", []), "egress_firewall_host_services", errors)
    _name_errors("allowed_names", inputs.get("allowed_names"), errors)
    if not isinstance(inputs.get("manage_resolv_conf"), bool):
        errors.append(f"{PREFIX}manage_resolv_conf must be true or false")
    return errors


class FilterModule:
    def filters(self):
        return {
            "dns_resolver_input_errors": dns_resolver_input_errors,
            "dns_resolver_endpoint_names": dns_resolver_endpoint_names,
        }
