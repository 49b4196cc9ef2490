"""Filters of the nginx_proxy role.

nginx_proxy_port_range_regex(start, end)
    A regular expression (no anchors, no capture groups) that matches exactly the
    decimal numbers from ``start`` to ``end`` inclusive, without leading zeros. The
    sandbox location uses it so that only ports inside the configured range are routed
    (nginx has no numeric comparison; a regex keeps the check in the location match).
nginx_proxy_address_kind(value)
    ``ipv4``, ``ipv6``, ``hostname`` or ``invalid``: the upstream address check.
nginx_proxy_input_errors(inputs)
    Every check argument specs cannot express (login, TLS, upstream and sandbox routing,
    sessions): a list of messages, each starting with the variable at fault (empty when
    valid). ``inputs`` holds the role's variables without the ``nginx_proxy_`` prefix,
    with the users and the private key passed through the redact filters first (no
    secret in the inputs, nor in a message).
nginx_proxy_session_input_errors(inputs)
    The session settings' part of it (session_enabled, session_idle_timeout,
    session_absolute_timeout, session_cookie_name, session_key_generation,
    basic_auth_api).
nginx_proxy_redact_users(users) / nginx_proxy_redact_secret(secret)
    The users with each password replaced by a description of it (whether it is a
    string, its length), and the same description of one secret (the private key: with
    whether it holds a PEM private key).
"""
from __future__ import annotations

import importlib.util
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path

# The checks every role shares: plugin_utils/airlock_checks.py, loaded by path (plugins of a
# project that is not a collection have no import path for shared code).
_spec = importlib.util.spec_from_file_location(
    "airlock_checks", Path(__file__).resolve().parents[3] / "plugin_utils" / "airlock_checks.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)


def _nines(value: int, count: int) -> int:
    text = str(value)
    if count >= len(text):
        return int("9" * count)
    return int(text[:-count] + "9" * count)


def _zeros(value: int, count: int) -> int:
    return value - value % (10 ** count)


def _stops(start: int, end: int) -> list[int]:
    stops = {end}
    count = 1
    stop = _nines(start, count)
    while start <= stop <= end:
        stops.add(stop)
        count += 1
        stop = _nines(start, count)
    count = 1
    stop = _zeros(end + 1, count) - 1
    while start < stop <= end:
        stops.add(stop)
        count += 1
        stop = _zeros(end + 1, count) - 1
    return sorted(stops)


def _pattern(low: int, high: int) -> str:
    out = []
    for a, b in zip(str(low), str(high)):
        if a == b:
            out.append(a)
        elif a == "0" and b == "9":
            out.append("[0-9]")
        else:
            out.append(f"[{a}-{b}]")
    return "".join(out)


def port_range_regex(start, end) -> str:
    start, end = int(start), int(end)
    if not 0 <= start <= end <= 65535:
        raise ValueError(f"invalid port range {start}-{end}")
    parts = []
    low = start
    for stop in _stops(start, end):
        parts.append(_pattern(low, stop))
        low = stop + 1
    return "(?:" + "|".join(parts) + ")"


def address_kind(value) -> str:
    """'ipv4', 'ipv6', 'hostname' or 'invalid' for an upstream address (no port, no scheme)."""
    text = str(value).strip()
    if not text or text != str(value):
        return "invalid"
    try:
        return "ipv%d" % ipaddress.ip_address(text).version
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or all(label.isdigit() for label in labels):
        return "invalid"  # 10.0.0.300 is a broken IPv4 address, not a name
    if all(checks.HOST_LABEL.match(label) for label in labels):
        return "hostname"
    return "invalid"


PREFIX = "nginx_proxy_"
# A cookie name nginx's map regex and the njs handler take as it is: letters, digits, _ and -,
# optionally after the __Host- prefix (Secure, Path=/, no Domain: browsers enforce it).
COOKIE_NAME = re.compile(r"^(?:__Host-)?[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
MAX_ABSOLUTE = 30 * 86400


def session_input_errors(inputs) -> list[str]:
    errors = []
    for name in ("session_enabled", "basic_auth_api"):
        if not isinstance(inputs.get(name), bool):
            errors.append(f"{PREFIX}{name}: {inputs.get(name)!r} is not true or false")
    idle, absolute = checks.strict_int(inputs.get("session_idle_timeout")), checks.strict_int(inputs.get("session_absolute_timeout"))
    if absolute is None or not 60 <= absolute <= MAX_ABSOLUTE:
        errors.append(f"{PREFIX}session_absolute_timeout: {inputs.get('session_absolute_timeout')!r} is not a number "
                      f"of seconds from 60 to {MAX_ABSOLUTE} (30 days)")
    if idle is None or idle < 60:
        errors.append(f"{PREFIX}session_idle_timeout: {inputs.get('session_idle_timeout')!r} is not a number of "
                      "seconds of at least 60")
    elif absolute is not None and idle > absolute:
        errors.append(f"{PREFIX}session_idle_timeout: {idle} is longer than {PREFIX}session_absolute_timeout "
                      f"({absolute}): a session would never end for being idle")
    name = inputs.get("session_cookie_name")
    if not isinstance(name, str) or not COOKIE_NAME.match(name):
        errors.append(f"{PREFIX}session_cookie_name: {name!r} is not a cookie name of letters, digits, _ and - "
                      "(optionally after __Host-)")
    generation = checks.strict_int(inputs.get("session_key_generation"))
    if generation is None or generation < 1:
        errors.append(f"{PREFIX}session_key_generation: {inputs.get('session_key_generation')!r} is not a "
                      "positive whole number")
    if inputs.get("basic_auth_api") is True and inputs.get("session_enabled") is False:
        errors.append(f"{PREFIX}basic_auth_api is true while {PREFIX}session_enabled is false: without sessions "
                      "every request already uses HTTP Basic; set it false (or turn sessions on)")
    return errors


# The login, TLS and routing checks: each pattern as the role has always checked it.
USER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PAM_GROUP = re.compile(r"^[a-z_][a-z0-9_-]*$")
PAM_SERVICE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
CERTIFICATE_PEM = re.compile(r"-----BEGIN CERTIFICATE-----")
PRIVATE_KEY_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HTTP_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
ROUTE53_ZONE_ID = re.compile(r"^(/hostedzone/)?[A-Za-z0-9]{1,32}$")
RATE = re.compile(r"^[0-9]+r/[sm]$")
BODY_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
SANDBOX_PATH = re.compile(r"^/[A-Za-z0-9_-]+$")
MIN_PASSWORD_LENGTH = 8
BCRYPT_COST = (4, 31)
SHA_ROUNDS = (1000, 999999999)
ACME_RENEW_DAYS = (1, 60)
MIN_SANDBOX_PORT = 1024
_TRUE = {"yes", "on", "true", "1"}


def _text(value) -> str:
    """The text Ansible's match and search tests read a value as."""
    return value if isinstance(value, str) else str(value)


def _length(value):
    """Jinja's `| length`, or None for a value that has none (None, a number)."""
    try:
        return len(value)
    except TypeError:
        return None


def _ansible_bool(value) -> bool:
    """Ansible's `| bool`: true, yes, on, 1 (any case), True and 1 are true."""
    if isinstance(value, str):
        return value.lower() in _TRUE
    if isinstance(value, int):
        return str(value).lower() in ("true", "1")
    try:
        return value == 1
    except TypeError:
        return False


def _describe(secret) -> dict:
    return {"redacted": True, "string": isinstance(secret, str), "length": _length(secret),
            "pem_private_key": bool(PRIVATE_KEY_PEM.search(_text(secret)))}


def _secret(value) -> dict:
    """The description of a secret, whether it came through the redact filters or not."""
    if isinstance(value, Mapping) and value.get("redacted") is True:
        return value
    return _describe(value)


def redact_secret(secret) -> dict:
    return _describe(secret)


def _redact_user(user):
    return {**user, "password": _describe(user["password"])} if isinstance(user, Mapping) and "password" in user else user


def redact_users(users):
    # A mapping where the list belongs (one user without the list's dash) is redacted too.
    return [_redact_user(u) for u in users] if isinstance(users, list) else _redact_user(users)


def _as_list(var, value, what, errors, show=True) -> list:
    """A list variable's entries; an empty value of another kind is an empty list (as a
    Jinja loop over it is), anything else gets its message (with the value if `show`)."""
    if isinstance(value, list):
        return value
    if isinstance(value, (Mapping, str)) and len(value) == 0:
        return []
    errors.append(f"{PREFIX}{var} must be a list of {what}" + (f" (got {value!r})" if show else ""))
    return []


def _login_errors(inputs, errors) -> None:
    backend = inputs.get("auth_backend")
    users = _as_list("users", inputs.get("users"), "{name, password}", errors, show=False)
    if backend == "htpasswd" and _length(inputs.get("users")) == 0:
        errors.append(f"{PREFIX}users is empty: the htpasswd backend needs at least one user.")
    min_length = inputs.get("password_min_length")
    names, duplicates = [], []
    for i, user in enumerate(users, start=1):
        if not isinstance(user, Mapping):
            errors.append(f"{PREFIX}users: invalid or missing name/password for: entry {i} (names: letters, digits, . _ -).")
            continue
        label, name = user.get("name", f"entry {i}"), user.get("name")
        password = _secret(user["password"]) if "password" in user else None
        name_ok = isinstance(name, str) and bool(USER_NAME.match(name))
        if not name_ok or password is None or not password["string"]:
            errors.append(f"{PREFIX}users: invalid or missing name/password for: {label} (names: letters, digits, . _ -).")
        if name_ok and name in names and name not in duplicates:
            duplicates.append(name)
        names.append(name)
        if password is not None and password["string"] and password["length"] < checks.jinja_int(min_length):
            errors.append(f"{PREFIX}users: the password of {label} is shorter than {PREFIX}password_min_length ({min_length}).")
    for name in duplicates:
        errors.append(f"{PREFIX}users: duplicate user name {name} (each user once).")
    if checks.jinja_int(min_length) < MIN_PASSWORD_LENGTH:
        errors.append(f"{PREFIX}password_min_length must be at least {MIN_PASSWORD_LENGTH} (got {min_length}).")
    if backend == "pam":
        for var, pattern in (("pam_group", PAM_GROUP), ("pam_service", PAM_SERVICE)):
            if not pattern.match(_text(inputs.get(var))):
                errors.append(f"{PREFIX}{var}: invalid value {inputs.get(var)!r} (group and service: lower-case names).")
    for var, (low, high), what in (("htpasswd_bcrypt_cost", BCRYPT_COST, "bcrypt cost"),
                                   ("htpasswd_sha_rounds", SHA_ROUNDS, "sha rounds")):
        if not low <= checks.jinja_int(inputs.get(var)) <= high:
            errors.append(f"{PREFIX}{var}: invalid value {inputs.get(var)!r} ({what} {low}-{high}).")


def _route53_zone_ok(zone) -> bool:
    text = _text(zone)
    return bool(ROUTE53_ZONE_ID.match(text)) or (
        bool(re.search(r"[.].", text)) and address_kind(re.sub(r"\.$", "", text)) == "hostname")


def _tls_errors(inputs, errors) -> None:
    mode = inputs.get("tls_mode")
    if mode == "selfsigned" and not _ansible_bool(inputs.get("selfsigned_acknowledged")):
        errors.append(
            f"{PREFIX}tls_mode is selfsigned and {PREFIX}selfsigned_acknowledged is false: browsers warn about a self-signed "
            "certificate on every visit, and users who learn to click through warnings on a password site are easy to "
            f"phish. Set {PREFIX}tls_mode to provided (your certificate) or acme, or, knowingly, "
            f"{PREFIX}selfsigned_acknowledged: true.")
    certificate, key = inputs.get("tls_certificate"), _secret(inputs.get("tls_private_key"))
    cert_length = _length(certificate)
    if cert_length is None or (cert_length > 0 and not CERTIFICATE_PEM.search(_text(certificate))):
        errors.append(f"{PREFIX}tls_certificate is not a PEM certificate.")
    elif cert_length == 0 and mode == "provided":
        errors.append(f"{PREFIX}tls_certificate is empty: {PREFIX}tls_mode provided needs a certificate and its key.")
    if key["length"] is None or (key["length"] > 0 and not key["pem_private_key"]):
        errors.append(f"{PREFIX}tls_private_key is not a PEM private key.")
    elif key["length"] == 0 and cert_length:
        errors.append(f"{PREFIX}tls_private_key is empty: {PREFIX}tls_certificate was given without its key.")
    chain = inputs.get("tls_chain")
    chain_length = _length(chain)
    if chain_length is None or (chain_length > 0 and not CERTIFICATE_PEM.search(_text(chain))):
        errors.append(f"{PREFIX}tls_chain is not PEM.")
    if not ACME_RENEW_DAYS[0] <= checks.jinja_int(inputs.get("acme_renew_days")) <= ACME_RENEW_DAYS[1]:
        errors.append(f"{PREFIX}acme_renew_days must be between {ACME_RENEW_DAYS[0]} and {ACME_RENEW_DAYS[1]} "
                      f"(got {inputs.get('acme_renew_days')}).")
    endpoint = inputs.get("acme_route53_endpoint_url")
    endpoint_length = _length(endpoint)
    if endpoint_length is None or (endpoint_length > 0 and not HTTP_URL.match(_text(endpoint))):
        errors.append(f"{PREFIX}acme_route53_endpoint_url '{endpoint}' is not an http(s) URL.")
    if mode == "acme":
        _acme_errors(inputs, errors)


def _acme_errors(inputs, errors) -> None:
    email, directory = inputs.get("acme_email"), inputs.get("acme_directory")
    if not EMAIL.match(_text(email)):
        errors.append(f"{PREFIX}acme_email '{email}' is not an e-mail address: ACME ({PREFIX}tls_mode acme) needs a contact "
                      "address for expiry and revocation notices.")
    if not _ansible_bool(inputs.get("acme_terms_agreed")):
        errors.append(f"{PREFIX}acme_terms_agreed is false: the CA issues only to accounts that agree to its terms of service "
                      f"({directory}); read them and set it to true.")
    if not re.match(r"^https://", _text(directory)):
        errors.append(f"{PREFIX}acme_directory '{directory}' is not an https URL.")
    server_name = inputs.get("server_name")
    # A server name that is neither a name nor an address has its own message (_routing_errors).
    if address_kind(server_name) in ("ipv4", "ipv6"):
        errors.append(f"{PREFIX}server_name '{server_name}' is an address: ACME certificates are issued for DNS names only.")
    challenge = inputs.get("acme_challenge")
    if challenge == "http-01" and checks.jinja_int(inputs.get("http_port")) != 80:
        errors.append(f"{PREFIX}http_port is {inputs.get('http_port')}: the CA checks http-01 on port 80 "
                      f"(or set {PREFIX}acme_challenge: dns-01-route53).")
    zone = inputs.get("acme_route53_zone")
    if challenge == "dns-01-route53" and not _route53_zone_ok(zone):
        if _length(zone) == 0:
            errors.append(f"{PREFIX}acme_route53_zone is empty: {PREFIX}acme_challenge dns-01-route53 needs the public hosted "
                          f"zone (id or name) that holds {PREFIX}server_name.")
        else:
            errors.append(f"{PREFIX}acme_route53_zone '{zone}' is neither a hosted zone id (Z0123456789ABC) nor a DNS name.")


def _routing_errors(inputs, errors) -> None:
    upstream, server_name = inputs.get("upstream_host"), inputs.get("server_name")
    if address_kind(upstream) == "invalid":
        errors.append(f"{PREFIX}upstream_host '{upstream}' is malformed: give an IPv4/IPv6 address or a DNS name, without "
                      f"scheme or port (the port is {PREFIX}upstream_port).")
    if address_kind(server_name) == "invalid":
        errors.append(f"{PREFIX}server_name '{server_name}' is not a DNS name or address.")
    rng = inputs.get("sandbox_port_range")
    ports = ({key: checks.jinja_int(rng[key]) for key in ("start", "end")}
             if isinstance(rng, Mapping) and "start" in rng and "end" in rng else None)
    if ports is None or ports["start"] < MIN_SANDBOX_PORT or not checks.is_port_range(ports):
        errors.append(f"{PREFIX}sandbox_port_range must satisfy {MIN_SANDBOX_PORT} <= start <= end <= 65535 (got {rng!r}).")
    if not SANDBOX_PATH.match(_text(inputs.get("sandbox_path"))):
        errors.append(f"{PREFIX}sandbox_path must look like /runtime (got {inputs.get('sandbox_path')!r}).")
    for var, what in (("internal_callers", "an address or CIDR"), ("resolvers", "an address")):
        for i, value in enumerate(_as_list(var, inputs.get(var), "addresses", errors)):
            if not checks.is_network(value):
                errors.append(f"{PREFIX}{var}[{i}]: not {what}: {value}.")
    resolvers = inputs.get("resolvers")
    if inputs.get("sandbox_routing_enabled") and address_kind(upstream) == "hostname" and _length(resolvers) == 0:
        errors.append(f"{PREFIX}resolvers is empty: sandbox routing to a DNS-named {PREFIX}upstream_host needs a resolver "
                      "(or give the upstream's IP address).")
    for var in ("rate", "login_fail_rate"):
        if not RATE.match(_text(inputs.get(var))):
            errors.append(f"{PREFIX}{var} must look like 20r/s or 10r/m (got {inputs.get(var)!r}).")
    if not BODY_SIZE.match(_text(inputs.get("client_max_body_size"))):
        errors.append(f"{PREFIX}client_max_body_size must look like 50m (got {inputs.get('client_max_body_size')!r}).")
    if inputs.get("http_port") == inputs.get("https_port"):
        errors.append(f"{PREFIX}http_port and {PREFIX}https_port must differ (both {inputs.get('http_port')}).")


def input_errors(inputs) -> list[str]:
    errors = []
    _login_errors(inputs, errors)
    _tls_errors(inputs, errors)
    _routing_errors(inputs, errors)
    errors.extend(session_input_errors(inputs))
    return errors


class FilterModule:
    def filters(self):
        return {
            "nginx_proxy_port_range_regex": port_range_regex,
            "nginx_proxy_address_kind": address_kind,
            "nginx_proxy_input_errors": input_errors,
            "nginx_proxy_session_input_errors": session_input_errors,
            "nginx_proxy_redact_users": redact_users,
            "nginx_proxy_redact_secret": redact_secret,
        }
