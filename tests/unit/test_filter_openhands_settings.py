"""openhands_settings_differ: the store (1.11.0's settings.json, as slurp returns it) decides,
the key included."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

OPENHANDS = load_module(ROOT / "roles/openhands/filter_plugins/openhands.py")
WANTED = {"model": "openai/fake-model", "base_url": "http://host.docker.internal:4000/v1", "api_key": "sk-gateway"}
EXTRA = {"user_consents_to_analytics": False}


def slurped(store) -> dict:
    text = store if isinstance(store, str) else json.dumps(store)
    return {"content": base64.b64encode(text.encode()).decode(), "encoding": "base64"}


def store(**llm) -> dict:
    # The shape 1.11.0 writes: many more LLM fields, the other settings at the top level.
    return {"agent_settings": {"llm": {**WANTED, "num_retries": 5, "timeout": 300, **llm}},
            "user_consents_to_analytics": False, "language": "en", "llm_profiles": {"profiles": {}, "active": None}}


def test_the_same_settings_do_not_differ():
    assert not OPENHANDS.openhands_settings_differ(slurped(store()), WANTED, EXTRA)


@pytest.mark.parametrize("field", ["api_key", "model", "base_url"])
def test_any_llm_field_changed_in_the_store_differs(field):
    assert OPENHANDS.openhands_settings_differ(slurped(store(**{field: "changed"})), WANTED, EXTRA)


def test_a_top_level_setting_changed_or_missing_differs():
    changed = dict(store(), user_consents_to_analytics=True)
    assert OPENHANDS.openhands_settings_differ(slurped(changed), WANTED, EXTRA)
    missing = {k: v for k, v in store().items() if k != "user_consents_to_analytics"}
    assert OPENHANDS.openhands_settings_differ(slurped(missing), WANTED, EXTRA)


@pytest.mark.parametrize("result", [{"failed": True, "msg": "file not found"}, slurped("{not json"), slurped("[]"),
                                    slurped({"agent_settings": None})])
def test_a_missing_or_unreadable_store_differs(result):
    assert OPENHANDS.openhands_settings_differ(result, WANTED, EXTRA)


def test_first_host_of_a_subnet():
    assert OPENHANDS.openhands_first_host("172.30.0.0/24") == "172.30.0.1"
