"""airlock's hooks into the LiteLLM proxy (loaded by its config, see config.yaml).

Two documented LiteLLM extension points, nothing else:

``user_api_key_auth`` (``general_settings.custom_auth``)
    Answers 403 for every route outside the configured inference routes, and 401 for any
    key that is not one of the gateway keys. Keys are compared as SHA-256 digests (the
    configuration holds no key in clear). The returned object carries the key's alias and
    its optional rate limits, which LiteLLM enforces without a database.

``request_log`` (``litellm_settings.callbacks``)
    One JSON line per request, success or failure, in the request log: time, key alias,
    model, status, tokens, latency, client address. The provider key is never written.

The configuration is the JSON file named by AIRLOCK_GATEWAY_CONFIG:
    {"routes": [...], "request_log": PATH,
     "keys": [{"alias": A, "sha256": HEX, "rpm_limit": N, "tpm_limit": N, "max_parallel_requests": N}]}
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import threading

from fastapi import Request
from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy._types import ProxyException, UserAPIKeyAuth

with open(os.environ["AIRLOCK_GATEWAY_CONFIG"], encoding="utf-8") as _fh:
    CONFIG = json.load(_fh)
ROUTES = frozenset(CONFIG["routes"])
KEYS = [(k["alias"], k["sha256"], k) for k in CONFIG["keys"]]
LIMITS = ("rpm_limit", "tpm_limit", "max_parallel_requests")


def _deny(message: str, code: int) -> ProxyException:
    return ProxyException(message=message, type="auth_error", param=None, code=code)


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    path = request.url.path
    if path not in ROUTES:
        raise _deny(f"route not served by this gateway: {path}", 403)
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()
    match = None
    for alias, want, entry in KEYS:  # compare with every key: no timing hint of which one
        if hmac.compare_digest(digest, want):
            match = (alias, entry)
    if match is None:
        raise _deny("invalid gateway key", 401)
    alias, entry = match
    limits = {name: entry[name] for name in LIMITS if entry.get(name)}
    return UserAPIKeyAuth(api_key=api_key, key_alias=alias, key_name=alias, **limits)


class RequestLog(CustomLogger):
    """Appends one JSON line per request to the request log (a plain file, logrotate'd)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.lock = threading.Lock()

    def _write(self, kwargs, start_time, end_time, status) -> None:
        slo = kwargs.get("standard_logging_object") or {}
        meta = slo.get("metadata") or {}
        try:
            latency = round((end_time - start_time).total_seconds() * 1000, 1)
        except (TypeError, AttributeError):
            latency = None
        record = {
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "key_alias": meta.get("user_api_key_alias"),
            "model": slo.get("model_group") or kwargs.get("model"),
            "status": status,
            "prompt_tokens": slo.get("prompt_tokens"),
            "completion_tokens": slo.get("completion_tokens"),
            "latency_ms": latency,
            "client": slo.get("requester_ip_address") or None,
            "call_type": slo.get("call_type") or kwargs.get("call_type"),
        }
        line = json.dumps(record, sort_keys=True) + "\n"
        with self.lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._write(kwargs, start_time, end_time, 200)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        exc = kwargs.get("exception")
        code = getattr(exc, "status_code", None) or getattr(exc, "code", None) or 500
        try:
            code = int(code)
        except (TypeError, ValueError):
            code = 500
        self._write(kwargs, start_time, end_time, code)


request_log = RequestLog(CONFIG["request_log"])
