"""Unit tests of the llm_gateway role's filters and of the site.yml model-name mapping."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

GW = load_module(ROOT / "roles/llm_gateway/filter_plugins/llm_gateway.py")
MAP = load_module(ROOT / "filter_plugins/airlock_gateway.py")
LOCK = (ROOT / "roles/llm_gateway/files/requirements.lock").read_text()
DEFAULT_VERSION = (ROOT / "roles/llm_gateway/defaults/main.yml").read_text().split('llm_gateway_litellm_version: "')[1].split('"')[0]


def _inputs(**over):
    base = {
        "litellm_version": DEFAULT_VERSION, "lock_version": GW.llm_gateway_lock_version(LOCK),
        "models": GW.llm_gateway_redact_models([{"name": "gpt-4o", "model": "openai/gpt-4o",
                                                  "api_base": "https://api.example.org/v1", "api_key": "sk-x" * 10}]),
        "keys": GW.llm_gateway_redact_keys([{"alias": "openhands", "key": "k" * 40, "rpm_limit": 60}]),
        "routes": ["/v1/chat/completions"], "bind_address": "0.0.0.0", "port": 4000, "workers": 1,
        "request_timeout": 600, "allow_http_upstream": False, "user": "airlock-llm", "log_retention_days": 90,
    }
    base.update(over)
    return base


def test_the_defaults_and_the_lock_agree():
    assert GW.llm_gateway_input_errors(_inputs()) == []


def test_redaction_keeps_no_secret():
    redacted = GW.llm_gateway_redact_models([{"name": "m", "model": "openai/m", "api_key": "sk-secret-value"}])
    assert "sk-secret-value" not in repr(redacted) and redacted[0]["api_key"]["length"] == 15
    assert "sk-secret-value" not in repr(GW.llm_gateway_redact_keys([{"alias": "a", "key": "sk-secret-value"}]))


def test_bedrock_needs_a_region_and_no_key():
    bedrock = [{"name": "claude", "model": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0"}]
    errors = GW.llm_gateway_input_errors(_inputs(models=GW.llm_gateway_redact_models(bedrock)))
    assert errors == ["llm_gateway_models[0].aws_region_name is required for a Bedrock model"]
    bedrock[0]["aws_region_name"] = "us-east-1"
    assert GW.llm_gateway_input_errors(_inputs(models=GW.llm_gateway_redact_models(bedrock))) == []


def test_key_digests_hold_no_key():
    digests = GW.llm_gateway_key_digests([{"alias": "a", "key": "sk-" + "z" * 40, "tpm_limit": 1000}])
    assert digests == [{"alias": "a", "sha256": __import__("hashlib").sha256(("sk-" + "z" * 40).encode()).hexdigest(),
                        "tpm_limit": 1000}]


@pytest.mark.parametrize("python,present,absent", [
    ("3.11.2", "async-timeout==5.0.1", None),        # Debian 12: redis needs it below 3.11.3
    ("3.11.7", None, "async-timeout==5.0.1"),
    ("3.10.12", "exceptiongroup==1.3.2", None),      # Ubuntu 22.04
    ("3.12.3", None, "exceptiongroup==1.3.2"),       # Ubuntu 24.04
])
def test_pins_follow_the_hosts_python(python, present, absent):
    pins = GW.llm_gateway_pins(LOCK, python, "x86_64")
    assert f"litellm=={DEFAULT_VERSION}" in pins and all("==" in p and ";" not in p for p in pins)
    assert not any(p.startswith("colorama==") for p in pins), "a Windows-only pin was kept"
    if present:
        assert present in pins
    if absent:
        assert absent not in pins


def test_an_unpinned_lock_line_is_refused():
    with pytest.raises(ValueError, match="not pinned"):
        GW.llm_gateway_pins("litellm>=1.0\n", "3.11.2", "x86_64")


@pytest.mark.parametrize("model,name", [
    ("openai/gpt-4o", "gpt-4o"), ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
    ("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("openai/airlock-lab-model", "airlock-lab-model"), ("plain", "plain"),
])
def test_gateway_model_name(model, name):
    assert MAP.airlock_gateway_model_name(model) == name
