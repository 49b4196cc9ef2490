"""alertd's llm_gateway_refused watcher (roles/monitoring/files/alertd.py): the lines the LLM
gateway's auth hook writes for refused requests alert; the request log's other lines (every
request it served or that failed upstream) do not."""
import json
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
alertd = load_module(ROOT / "roles" / "monitoring" / "files" / "alertd.py")

REFUSED = {"time": "2026-11-30T08:00:00.000+00:00", "status": 401, "refused": "key", "path": "/v1/chat/completions",
           "method": "POST", "key_alias": None, "client": "172.17.0.3"}
SERVED = {"time": "2026-11-30T08:00:01.000+00:00", "status": 200, "key_alias": "openhands", "model": "fake-model",
          "prompt_tokens": 10, "completion_tokens": 5, "latency_ms": 12.5, "client": "172.17.0.3", "call_type": "acompletion"}


def watcher():
    cfg = alertd.validate_config({"host": "srv", "sinks": [{"type": "log", "path": "/tmp/a.jsonl"}],
                                  "watchers": [{"type": "llm_gateway_refused",
                                                "source": {"file": "/var/log/airlock-llm-gateway/requests.jsonl"}}]})
    spec = cfg["watchers"][0]
    assert spec["severity"] == "critical"
    return alertd.LineWatcher(spec, "srv")


def test_a_refused_request_alerts_with_client_status_and_reason():
    alert = watcher().handle(json.dumps(REFUSED), 1.0)
    assert alert["type"] == "llm_gateway_refused" and alert["severity"] == "critical"
    assert alert["key"] == "llm_gateway_refused:172.17.0.3:401"
    assert "172.17.0.3" in alert["summary"] and "401" in alert["summary"] and "key" in alert["summary"]
    assert alert["details"]["path"] == "/v1/chat/completions"


@pytest.mark.parametrize("line", [json.dumps(SERVED), json.dumps(dict(SERVED, status=500)),
                                  json.dumps(dict(REFUSED, refused="")), "not json", "[]", ""])
def test_served_failed_and_foreign_lines_do_not_alert(line):
    assert watcher().handle(line, 1.0) is None


def test_the_watcher_needs_a_source():
    with pytest.raises(alertd.ConfigError):
        alertd.validate_config({"host": "srv", "sinks": [{"type": "log", "path": "/tmp/a.jsonl"}],
                                "watchers": [{"type": "llm_gateway_refused"}]})
