"""Filters of the llm_gateway role (plain Python, unit-testable).

llm_gateway_input_errors(inputs)
    Every check argument specs cannot express; a list of messages, each starting with the
    name of the offending variable (empty when valid). ``inputs`` holds the role's
    variables without the ``llm_gateway_`` prefix, with models and keys passed through
    the redact filters first (no secret in an error message).
llm_gateway_redact_models(models) / llm_gateway_redact_keys(keys)
    The same entries with each key replaced by a description of it (set, length, one line).
llm_gateway_key_digests(keys)
    What the gateway's hooks need: alias, SHA-256 of the key, optional limits.
llm_gateway_pins(lock_text, python_full_version, machine)
    The exact `name==version` lines of the universal lock (files/requirements.lock, with
    environment markers) that apply to the host: its Python version and machine, Linux,
    CPython. Evaluated here, on the controller, with `packaging` (pip would evaluate the
    markers for the controller's own interpreter, not the host's).
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from urllib.parse import urlsplit

PREFIX = "llm_gateway_"
ALIAS_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(\.post\d+)?$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
LIMITS = ("rpm_limit", "tpm_limit", "max_parallel_requests")
MODEL_KEYS = {"name", "model", "api_base", "api_key", "aws_region_name", "rpm", "tpm"}
KEY_KEYS = {"alias", "key"} | set(LIMITS)
MIN_KEY_LENGTH = 32


def _describe(secret) -> dict:
    text = "" if secret is None else str(secret)
    return {"set": bool(text), "length": len(text), "one_line": not re.search(r"[\r\n]", text),
            "printable": all(32 < ord(c) < 127 for c in text)}


def llm_gateway_redact_models(models):
    if not isinstance(models, list):
        return models
    out = []
    for m in models:
        if isinstance(m, dict):
            m = dict(m)
            if "api_key" in m:
                m["api_key"] = _describe(m["api_key"])
        out.append(m)
    return out


def llm_gateway_redact_keys(keys):
    if not isinstance(keys, list):
        return keys
    out = []
    for k in keys:
        if isinstance(k, dict):
            k = dict(k)
            k["key"] = _describe(k.get("key"))
        out.append(k)
    return out


def llm_gateway_key_digests(keys):
    out = []
    for k in keys:
        entry = {"alias": k["alias"], "sha256": hashlib.sha256(str(k["key"]).encode()).hexdigest()}
        entry.update({name: int(k[name]) for name in LIMITS if k.get(name)})
        out.append(entry)
    return out


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _entries(var, entries, allowed, ident, ident_re, ident_hint, what):
    """The checks every list of entries shares: a non-empty list of dicts with known keys,
    whose identifying field (`ident`) is well formed and unique. Returns those errors, and
    (where, entry) of each dict for the checks of its own kind."""
    errors, seen, valid = [], set(), []
    if not isinstance(entries, list) or not entries:
        return [f"{var} must list at least one {what}"], valid
    for i, entry in enumerate(entries):
        where = f"{var}[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{where} must be a dict ({what})")
            continue
        unknown = sorted(set(entry) - allowed)
        if unknown:
            errors.append(f"{where} has unknown keys {unknown} (allowed: {sorted(allowed)})")
        value = entry.get(ident)
        if not isinstance(value, str) or not ident_re.match(value):
            errors.append(f"{where}.{ident} must be {ident_hint} (got {value!r})")
        elif value in seen:
            errors.append(f"{where}.{ident} {value!r} is listed twice")
        else:
            seen.add(value)
        valid.append((where, entry))
    return errors, valid


def _model_errors(models, allow_http) -> list:
    errors, entries = _entries(f"{PREFIX}models", models, MODEL_KEYS, "name", NAME_RE,
                               "a model name clients ask for, such as gpt-4o", "model (name, model, api_base, api_key)")
    for where, m in entries:
        model = m.get("model")
        if not isinstance(model, str) or "/" not in model or not NAME_RE.match(model):
            errors.append(f"{where}.model must be a LiteLLM model with its provider, such as openai/gpt-4o (got {model!r})")
        bedrock = isinstance(model, str) and model.startswith("bedrock/")
        base = m.get("api_base")
        if base:
            try:
                parts = urlsplit(str(base))
                _ = parts.port
                ok = parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in str(base))
            except ValueError:
                ok = False
            if not ok:
                errors.append(f"{where}.api_base is not an http(s) URL (got {base!r})")
            elif parts.scheme == "http" and not allow_http:
                errors.append(f"{where}.api_base {base!r} is plain http: the provider's TLS cannot be verified "
                              f"(use https, or set {PREFIX}allow_http_upstream for a test stand-in)")
            elif parts.username or parts.password:
                errors.append(f"{where}.api_base must not carry credentials")
        elif not bedrock:
            errors.append(f"{where}.api_base is required (the provider's URL) for {model!r}")
        key = m.get("api_key")
        if isinstance(key, dict):
            if key.get("set") and not (key.get("one_line") and key.get("printable")):
                errors.append(f"{where}.api_key must be one line of printable characters")
            if not key.get("set") and not bedrock:
                errors.append(f"{where}.api_key is empty: set the provider key from vault (Bedrock alone signs with the instance profile)")
        elif not bedrock:
            errors.append(f"{where}.api_key is required for {model!r}: set the provider key from vault")
        if bedrock and not m.get("aws_region_name"):
            errors.append(f"{where}.aws_region_name is required for a Bedrock model")
        for limit in ("rpm", "tpm"):
            if limit in m and not _positive_int(m[limit]):
                errors.append(f"{where}.{limit} must be a positive integer (got {m[limit]!r})")
    return errors


def _key_errors(keys) -> list:
    errors, entries = _entries(f"{PREFIX}keys", keys, KEY_KEYS, "alias", ALIAS_RE,
                               "[a-z0-9][a-z0-9_-]*", "gateway key (alias, key from vault)")
    for where, k in entries:
        key = k.get("key") or {}
        if not key.get("set"):
            errors.append(f"{where}.key is empty: set it from vault")
        elif key.get("length", 0) < MIN_KEY_LENGTH or not key.get("printable") or not key.get("one_line"):
            errors.append(f"{where}.key must be at least {MIN_KEY_LENGTH} printable characters on one line")
        for limit in LIMITS:
            if limit in k and not _positive_int(k[limit]):
                errors.append(f"{where}.{limit} must be a positive integer (got {k[limit]!r})")
    return errors


def llm_gateway_input_errors(inputs):
    errors = []
    version = str(inputs.get("litellm_version", ""))
    if not VERSION_RE.match(version):
        errors.append(f"{PREFIX}litellm_version must be an exact release such as 1.105.7 (got {version!r})")
    elif inputs.get("lock_version") != version:
        errors.append(f"{PREFIX}litellm_version {version}: the role's requirements.lock pins litellm "
                      f"{inputs.get('lock_version')}; regenerate it with tools/llm-gateway-lock.sh {version}")
    errors += _model_errors(inputs.get("models"), str(inputs.get("allow_http_upstream")).lower() in ("true", "1"))
    errors += _key_errors(inputs.get("keys"))
    routes = inputs.get("routes")
    if not isinstance(routes, list) or not routes or not all(isinstance(r, str) and r.startswith("/") for r in routes):
        errors.append(f"{PREFIX}routes must be a non-empty list of paths starting with / (got {routes!r})")
    try:
        ipaddress.ip_address(str(inputs.get("bind_address")))
    except ValueError:
        errors.append(f"{PREFIX}bind_address is not an IP address (got {inputs.get('bind_address')!r})")
    for var, low, high in (("port", 1, 65535), ("workers", 1, 64), ("request_timeout", 1, 86400),
                           ("log_retention_days", 1, 3650)):
        try:
            value = int(inputs.get(var))
            ok = low <= value <= high and str(inputs.get(var)).strip().lstrip("-").isdigit()
        except (TypeError, ValueError):
            ok = False
        if not ok:
            errors.append(f"{PREFIX}{var} must be an integer from {low} to {high} (got {inputs.get(var)!r})")
    if not USER_RE.match(str(inputs.get("user", ""))) or inputs.get("user") == "root":
        errors.append(f"{PREFIX}user must be an unprivileged system user name, not {inputs.get('user')!r}")
    return errors


def llm_gateway_pins(lock_text, python_full_version, machine):
    from packaging.requirements import Requirement

    env = {
        "python_version": ".".join(str(python_full_version).split(".")[:2]),
        "python_full_version": str(python_full_version),
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
        "platform_machine": str(machine), "extra": "",
    }
    pins = []
    for line in str(lock_text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        spec = list(req.specifier)
        if len(spec) != 1 or spec[0].operator != "==":
            raise ValueError(f"requirements.lock: {line!r} is not pinned with ==")
        pins.append(f"{req.name}=={spec[0].version}")
    return pins


def llm_gateway_lock_version(lock_text):
    """The litellm version the lock pins (None when it pins none)."""
    for line in str(lock_text).splitlines():
        if line.startswith("litellm=="):
            return line.split("==", 1)[1].split(";")[0].strip()
    return None


class FilterModule:
    def filters(self):
        return {
            "llm_gateway_input_errors": llm_gateway_input_errors,
            "llm_gateway_redact_models": llm_gateway_redact_models,
            "llm_gateway_redact_keys": llm_gateway_redact_keys,
            "llm_gateway_key_digests": llm_gateway_key_digests,
            "llm_gateway_pins": llm_gateway_pins,
            "llm_gateway_lock_version": llm_gateway_lock_version,
        }
