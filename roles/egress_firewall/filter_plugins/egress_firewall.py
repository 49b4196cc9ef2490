"""Filters of the egress_firewall role: input validation and ruleset building.

Plain Python (``ipaddress`` for all address arithmetic) so the checks can be unit tested
without Ansible.

egress_firewall_input_errors(inputs)
    Every check argument specs cannot express; a list of messages, each starting with
    the name of the offending variable (empty when the input is valid).
egress_firewall_static_destinations(endpoints)
    Fixed-address destinations of the LLM endpoint list:
    ``[{"name", "family": "ip"|"ip6", "cidr", "port"}]``.
egress_firewall_host_destinations(endpoints)
    Name-based destinations (resolved into sets by the refresh job):
    ``[{"name", "hosts", "ports"}]``; a ``bedrock: true`` entry becomes the regional
    ``bedrock-runtime`` name, which resolves to the interface endpoint in the VPC.
egress_firewall_by_family(addresses)
    ``{"ip": [...], "ip6": [...]}`` of normalised addresses/networks.
egress_firewall_address_in(address, networks)
    True when the address lies in one of the networks (the SSH lockout guard).
egress_firewall_package_relay_rules(relays)
    The package relays the host may reach: ``[{"family": "ip"|"ip6", "address", "port"}]``.
egress_firewall_host_service_rules(services)
    Fixed-address host services (egress_firewall_host_services' cidrs), one rule per entry
    and family: ``[{"name", "family", "cidrs", "ports"}]``.
egress_firewall_host_service_destinations(services)
    Host services given by name (resolved into host_services_v4/v6 by the refresh job):
    ``[{"name", "hosts", "ports"}]``.
egress_firewall_app_proxy_paths(routes, proxy_addresses, https_port)
    The app's way to the proxy: ``{"accept": {"ip": [...], "ip6": [...]}, "nat": [{"family",
    "address", "port", "to"}]}``, the proxy addresses the app's network may reach on the
    HTTPS port, and the address/port pairs it dials that are translated to them.

``inputs`` is a dict of the role's variables without the ``egress_firewall_`` prefix.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import ipaddress
import re
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)

PREFIX = "egress_firewall_"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
IFACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}\*?$")


def _destination_errors(var, entries, errors, allow_bedrock):
    names = set()
    for i, entry in enumerate(entries or []):
        where = f"{PREFIX}{var}[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{where} must be a mapping with name and hosts/cidrs")
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append(f"{where}.name must match [a-z0-9-] (got {name!r})")
        elif name in names:
            errors.append(f"{where}.name {name!r} is used twice")
        names.add(name)
        hosts, cidrs = entry.get("hosts") or [], entry.get("cidrs") or []
        bedrock = bool(entry.get("bedrock")) if allow_bedrock else False
        if not hosts and not cidrs and not bedrock:
            errors.append(f"{where} ({name}) needs hosts or cidrs" + (" (or bedrock: true)" if allow_bedrock else ""))
        for host in hosts:
            if not isinstance(host, str) or not checks.DNS_NAME.match(host) or checks.is_address(host):
                errors.append(f"{where}.hosts: {host!r} is not a DNS name (put addresses in cidrs)")
        for cidr in cidrs:
            if not checks.is_network(cidr):
                errors.append(f"{where}.cidrs: {cidr!r} is not an address or a CIDR network without host bits")
            elif ipaddress.ip_network(str(cidr)).prefixlen == 0:
                errors.append(f"{where}.cidrs: {cidr!r} would allow everything")
        if bedrock and not checks.AWS_REGION.match(str(entry.get("region", ""))):
            errors.append(f"{where}.region must be an AWS region such as us-east-1 when bedrock is true")
        if var == "host_services":
            if "port" in entry and "ports" in entry:
                errors.append(f"{where} ({name}) has both port and ports: give one")
            ports = entry.get("ports", [entry.get("port", 443)])
            if not isinstance(ports, list) or not ports:
                errors.append(f"{where}.ports must be a non-empty list of TCP ports (got {ports!r})")
                ports = []
            plural = "s" if "ports" in entry else ""
        elif var == "maintenance_destinations":
            ports, plural = entry.get("ports", [entry.get("port", 443)]), "s"
        else:
            ports, plural = [entry.get("port", 443)], ""
        for port in ports:
            if not checks.is_port(port):
                errors.append(f"{where}.port{plural}: {port!r} is not a TCP port")
    return names


USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _host_service_errors(inputs, errors):
    services = inputs.get("host_services") or []
    if not isinstance(services, list):
        errors.append(f"{PREFIX}host_services must be a list of {{name, hosts and/or cidrs, port or ports}}")
        return
    _destination_errors("host_services", services, errors, allow_bedrock=False)
    if any(isinstance(e, dict) and e.get("hosts") for e in services) and not inputs.get("dns_servers"):
        errors.append(f"{PREFIX}dns_servers is empty but host services are given by name: name the resolver")
    users = inputs.get("host_service_users", ["root"])
    if not isinstance(users, list):
        errors.append(f"{PREFIX}host_service_users must be a list of system user names")
        return
    for user in users:
        if not isinstance(user, str) or not USER_RE.match(user):
            errors.append(f"{PREFIX}host_service_users: {user!r} is not a system user name")
    if services and not users:
        errors.append(f"{PREFIX}host_service_users is empty but {PREFIX}host_services are set: name the users "
                      "that may reach them (root for the backups and the log shipper)")


def egress_firewall_input_errors(inputs):
    errors = []
    endpoints = inputs.get("llm_endpoints") or []
    if not endpoints:
        errors.append(f"{PREFIX}llm_endpoints is empty: list at least one approved LLM endpoint")
    _destination_errors("llm_endpoints", endpoints, errors, allow_bedrock=True)
    needs_dns = any(e.get("hosts") or e.get("bedrock") for e in endpoints if isinstance(e, dict))
    dns = inputs.get("dns_servers") or []
    if needs_dns and not dns:
        errors.append(f"{PREFIX}dns_servers is empty but endpoints are given by name: name the resolver")
    for var in ("dns_servers", "ntp_servers"):
        for value in inputs.get(var) or []:
            if not checks.is_address(value):
                errors.append(f"{PREFIX}{var}: {value!r} is not an IP address")
    for var in ("proxy_addresses", "ssh_sources"):
        for value in inputs.get(var) or []:
            if not checks.is_network(value):
                errors.append(f"{PREFIX}{var}: {value!r} is not an address or a CIDR network without host bits")
    if not inputs.get("proxy_addresses"):
        errors.append(f"{PREFIX}proxy_addresses is empty: the proxy is the only way in")
    rng = inputs.get("sandbox_port_range") or {}
    start, end = rng.get("start"), rng.get("end")
    if not (checks.is_port(start) and checks.is_port(end) and start <= end):
        errors.append(f"{PREFIX}sandbox_port_range must be {{start, end}} TCP ports with start <= end (got {rng!r})")
    for var in ("ssh_port", "openhands_port"):
        if not checks.is_port(inputs.get(var)):
            errors.append(f"{PREFIX}{var}: {inputs.get(var)!r} is not a TCP port")
    for var in ("proxy_callback_ports", "container_callback_ports"):
        for port in inputs.get(var) or []:
            if not checks.is_port(port):
                errors.append(f"{PREFIX}{var}: {port!r} is not a TCP port")
    for var in ("llm_users", "dns_users"):
        for user in inputs.get(var) or []:
            if not isinstance(user, str) or not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", user) or user == "root":
                errors.append(f"{PREFIX}{var}: {user!r} is not an unprivileged system user name")
    if inputs.get("dns_users") and not dns:
        errors.append(f"{PREFIX}dns_users is set but {PREFIX}dns_servers is empty: name the resolvers they may reach")
    local = inputs.get("dns_local_resolver")
    if local and not (checks.is_address(local) and ipaddress.ip_address(str(local)).is_loopback):
        errors.append(f"{PREFIX}dns_local_resolver: {local!r} is not a loopback address (the host's own resolver, e.g. 127.0.0.1)")
    command = inputs.get("dns_allow_command")
    if command and not (isinstance(command, str) and re.match(r"^/[A-Za-z0-9._/-]+$", command)):
        errors.append(f"{PREFIX}dns_allow_command: {command!r} is not an absolute path of a command")
    for iface in inputs.get("container_interfaces") or []:
        if not isinstance(iface, str) or not IFACE_RE.match(iface):
            errors.append(f"{PREFIX}container_interfaces: {iface!r} is not an interface name (a trailing * is allowed)")
    patterns = [i for i in inputs.get("container_interfaces") or [] if isinstance(i, str)]
    for iface in inputs.get("app_interfaces") or []:
        if not isinstance(iface, str) or not IFACE_RE.match(iface) or iface.endswith("*"):
            errors.append(f"{PREFIX}app_interfaces: {iface!r} is not an interface name (no wildcard: the app's own bridge)")
        elif iface == "docker0":
            errors.append(f"{PREFIX}app_interfaces: docker0 is where the sandboxes run; "
                          "the app needs a network of its own (openhands_network_interface)")
        elif not any(fnmatch.fnmatchcase(iface, p) for p in patterns):
            errors.append(f"{PREFIX}app_interfaces: {iface!r} is not matched by {PREFIX}container_interfaces, "
                          "so its forwarded traffic would not be dropped")
    _app_proxy_route_errors(inputs, errors)
    _package_relay_errors(inputs, errors)
    _host_service_errors(inputs, errors)
    known = _destination_errors("maintenance_destinations", inputs.get("maintenance_destinations"), errors, allow_bedrock=False)
    for name in inputs.get("maintenance_open") or []:
        if name not in known:
            errors.append(f"{PREFIX}maintenance_open: {name!r} is not a name in {PREFIX}maintenance_destinations")
    for var in ("log_prefix", "ingress_log_prefix"):
        if not re.match(r"^[A-Za-z0-9_-]{1,24}$", str(inputs.get(var, ""))):
            errors.append(f"{PREFIX}{var} must be 1-24 characters [A-Za-z0-9_-]")
    if not re.match(r"^\d+/(second|minute|hour)$", str(inputs.get("log_rate", ""))):
        errors.append(f"{PREFIX}log_rate must look like 10/minute")
    group = inputs.get("log_group", 2)
    if isinstance(group, str) and group.strip().isdigit():
        group = int(group)
    if not isinstance(group, int) or isinstance(group, bool) or not 0 <= group <= 65535:
        errors.append(f"{PREFIX}log_group must be an NFLOG group number from 0 to 65535 (got {inputs.get('log_group')!r})")
    return errors


def _proxy_targets(proxy_addresses):
    """The first single proxy address of each family: where the app's routes lead."""
    out = {}
    for value in proxy_addresses or []:
        try:
            net = ipaddress.ip_network(str(value), strict=True)
        except ValueError:
            continue
        if net.prefixlen == net.max_prefixlen:
            out.setdefault(net.version, str(net.network_address))
    return out


def _address_port_entries(name, entries, errors):
    """(where, address, port) of each entry of the list variable `name` that is a mapping of
    address and port alone; any other entry gets its error and is skipped."""
    for i, entry in enumerate(entries):
        where = f"{PREFIX}{name}[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"address", "port"}:
            errors.append(f"{where} must be {{address, port}}")
            continue
        yield where, entry.get("address"), entry.get("port")


def _app_proxy_route_errors(inputs, errors):
    routes = inputs.get("app_proxy_routes") or []
    if not isinstance(routes, list):
        errors.append(f"{PREFIX}app_proxy_routes must be a list of {{address, port}}")
        return
    if not checks.is_port(inputs.get("proxy_https_port", 443)):
        errors.append(f"{PREFIX}proxy_https_port: {inputs.get('proxy_https_port')!r} is not a TCP port")
    if routes and not inputs.get("app_interfaces"):
        errors.append(f"{PREFIX}app_proxy_routes needs {PREFIX}app_interfaces: only the app's own network may reach the proxy")
    targets = _proxy_targets(inputs.get("proxy_addresses"))
    for where, address, port in _address_port_entries("app_proxy_routes", routes, errors):
        if not checks.is_address(address):
            errors.append(f"{where}.address: {address!r} is not an IP address (the address the app dials for the "
                          "proxy's public URL: its public address, or where openhands_extra_hosts maps its name)")
            continue
        if not checks.is_port(port):
            errors.append(f"{where}.port: {port!r} is not a TCP port")
        version = ipaddress.ip_address(str(address)).version
        if version not in targets:
            errors.append(f"{where}: {PREFIX}proxy_addresses has no single IPv{version} address to send it to")


def _package_relay_errors(inputs, errors):
    relays = inputs.get("package_relays") or []
    if not isinstance(relays, list):
        errors.append(f"{PREFIX}package_relays must be a list of {{address, port}}")
        return
    for where, address, given in _address_port_entries("package_relays", relays, errors):
        port = int(given) if isinstance(given, str) and given.strip().isdigit() else given
        if not checks.is_address(address) or ipaddress.ip_address(str(address)).is_unspecified:
            errors.append(f"{where}.address: {address!r} is not a single IP address (the relay's private address)")
        elif ipaddress.ip_address(str(address)).is_loopback:
            errors.append(f"{where}.address: {address!r} is a loopback address; the relay runs on the proxy")
        if not checks.is_port(port):
            errors.append(f"{where}.port: {given!r} is not a TCP port")


def egress_firewall_package_relay_rules(relays):
    out = []
    for relay in relays or []:
        addr = ipaddress.ip_address(str(relay["address"]))
        out.append({"family": "ip" if addr.version == 4 else "ip6", "address": str(addr), "port": int(relay["port"])})
    return out


def egress_firewall_app_proxy_paths(routes, proxy_addresses, https_port=443):
    """See the module docstring. A route that already names a proxy address and its HTTPS
    port needs no translation; the others are DNAT'ed to the proxy of their family."""
    targets = _proxy_targets(proxy_addresses)
    accept = {"ip": [], "ip6": []}
    nat = []
    for route in routes or []:
        addr = ipaddress.ip_address(str(route["address"]))
        family = "ip" if addr.version == 4 else "ip6"
        target = targets[addr.version]
        if target not in accept[family]:
            accept[family].append(target)
        if str(addr) != target or int(route["port"]) != int(https_port):
            to = f"{target}:{int(https_port)}" if family == "ip" else f"[{target}]:{int(https_port)}"
            nat.append({"family": family, "address": str(addr), "port": int(route["port"]), "to": to})
    return {"accept": accept, "nat": nat}


def egress_firewall_static_destinations(endpoints):
    out = []
    for entry in endpoints or []:
        for cidr in entry.get("cidrs") or []:
            net = ipaddress.ip_network(str(cidr), strict=True)
            out.append({
                "name": entry["name"],
                "family": "ip" if net.version == 4 else "ip6",
                "cidr": str(net),
                "port": entry.get("port", 443),
                "ports": entry.get("ports", [entry.get("port", 443)]),
            })
    return out


def egress_firewall_host_destinations(endpoints):
    out = []
    for entry in endpoints or []:
        hosts = [h.lower() for h in entry.get("hosts") or []]
        if entry.get("bedrock"):
            hosts.append(f"bedrock-runtime.{entry['region']}.amazonaws.com")
        if hosts:
            out.append({"name": entry["name"], "hosts": hosts, "ports": [entry.get("port", 443)]})
    return out


def _service_ports(entry):
    return [int(p) for p in entry.get("ports", [entry.get("port", 443)])]


def egress_firewall_host_service_rules(services):
    """The fixed-address host services, one rule per entry and family:
    ``[{"name", "family": "ip"|"ip6", "cidrs": [...], "ports": [...]}]``."""
    out = []
    for entry in services or []:
        nets = [ipaddress.ip_network(str(c), strict=True) for c in entry.get("cidrs") or []]
        for version, family in ((4, "ip"), (6, "ip6")):
            cidrs = [str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in nets if n.version == version]
            if cidrs:
                out.append({"name": entry["name"], "family": family, "cidrs": cidrs, "ports": _service_ports(entry)})
    return out


def egress_firewall_host_service_destinations(services):
    """The host services given by name, for the sets tool: ``[{"name", "hosts", "ports"}]``."""
    return [{"name": e["name"], "hosts": [h.lower() for h in e["hosts"]], "ports": _service_ports(e)}
            for e in services or [] if e.get("hosts")]


def egress_firewall_by_family(addresses):
    out = {"ip": [], "ip6": []}
    for value in addresses or []:
        net = ipaddress.ip_network(str(value), strict=False)
        text = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        out["ip" if net.version == 4 else "ip6"].append(text)
    return out


def egress_firewall_address_in(address, networks):
    """True when ``address`` lies in one of ``networks``."""
    try:
        addr = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(str(n), strict=False) for n in networks or [])


class FilterModule:
    def filters(self):
        return {
            "egress_firewall_input_errors": egress_firewall_input_errors,
            "egress_firewall_static_destinations": egress_firewall_static_destinations,
            "egress_firewall_host_destinations": egress_firewall_host_destinations,
            "egress_firewall_by_family": egress_firewall_by_family,
            "egress_firewall_address_in": egress_firewall_address_in,
            "egress_firewall_app_proxy_paths": egress_firewall_app_proxy_paths,
            "egress_firewall_package_relay_rules": egress_firewall_package_relay_rules,
            "egress_firewall_host_service_rules": egress_firewall_host_service_rules,
            "egress_firewall_host_service_destinations": egress_firewall_host_service_destinations,
        }


# Maintenance window length (egress_firewall_maintenance_timeout): the window's addresses get
# an nft element timeout of this many seconds, so an aborted run's window closes by itself.
MAINTENANCE_TIMEOUT_MIN, MAINTENANCE_TIMEOUT_MAX = 60, 86400


def egress_firewall_maintenance_timeout_errors(value):
    """Messages (empty when valid) for egress_firewall_maintenance_timeout: whole seconds
    from 60 (a run needs time) to 86400 (a window left open for days is not maintenance)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not MAINTENANCE_TIMEOUT_MIN <= value <= MAINTENANCE_TIMEOUT_MAX:
        return [f"{PREFIX}maintenance_timeout must be whole seconds from {MAINTENANCE_TIMEOUT_MIN} to "
                f"{MAINTENANCE_TIMEOUT_MAX} (got {value!r})"]
    return []


_BaseFilterModule = FilterModule


class FilterModule(_BaseFilterModule):  # noqa: F811 (the filters above, and this one)
    def filters(self):
        return {**super().filters(), "egress_firewall_maintenance_timeout_errors": egress_firewall_maintenance_timeout_errors}
