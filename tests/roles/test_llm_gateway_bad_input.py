"""Bad input to the llm_gateway role is refused before anything changes, naming the variable,
and no key (provider or gateway) ever appears in the message. The filters are unit tested in
tests/unit/test_filter_llm_gateway.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
PROVIDER_KEY = "sk-provider-never-shown-0123456789"
GATEWAY_KEY = "sk-gateway-never-shown-0123456789abcdef"
GATEWAY_OK = {
    "llm_gateway_models": [{"name": "gpt-4o", "model": "openai/gpt-4o", "api_base": "https://api.example.org/v1",
                            "api_key": PROVIDER_KEY}],
    "llm_gateway_keys": [{"alias": "openhands", "key": GATEWAY_KEY}],
}
MODEL = GATEWAY_OK["llm_gateway_models"][0]
CASES = [
    ({"llm_gateway_models": []}, "llm_gateway_models must list at least one model"),
    ({"llm_gateway_models": [{**MODEL, "api_key": ""}]}, "llm_gateway_models[0].api_key is empty"),
    ({"llm_gateway_models": [{**MODEL, "api_base": "http://api.example.org/v1"}]}, "llm_gateway_allow_http_upstream"),
    ({"llm_gateway_models": [{**MODEL, "api_base": "api.example.org"}]}, "llm_gateway_models[0].api_base"),
    ({"llm_gateway_models": [{**MODEL, "model": "gpt-4o"}]}, "llm_gateway_models[0].model"),
    ({"llm_gateway_models": [MODEL, MODEL]}, "llm_gateway_models[1].name 'gpt-4o' is listed twice"),
    ({"llm_gateway_models": [{**MODEL, "api_key": PROVIDER_KEY + "\nX"}]}, "llm_gateway_models[0].api_key must be one line"),
    ({"llm_gateway_keys": []}, "llm_gateway_keys must list at least one gateway key"),
    ({"llm_gateway_keys": [{"alias": "openhands", "key": "short"}]}, "llm_gateway_keys[0].key must be at least 32"),
    ({"llm_gateway_keys": [{"alias": "Bad Alias", "key": GATEWAY_KEY}]}, "llm_gateway_keys[0].alias"),
    ({"llm_gateway_keys": [{"alias": "a", "key": GATEWAY_KEY, "rpm_limit": -1}]}, "llm_gateway_keys[0].rpm_limit"),
    ({"llm_gateway_litellm_version": "1.0.0"}, "llm_gateway_litellm_version 1.0.0: the role's requirements.lock pins"),
    ({"llm_gateway_port": 70000}, "llm_gateway_port"),
    ({"llm_gateway_user": "root"}, "llm_gateway_user"),
    ({"llm_gateway_bind_address": "everywhere"}, "llm_gateway_bind_address"),
    ({"llm_gateway_routes": ["v1/chat/completions"]}, "llm_gateway_routes"),
]


def run_role(tmp_path: Path, extra: dict) -> subprocess.CompletedProcess:
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles: [llm_gateway]\n")
    variables = {**GATEWAY_OK, **extra, "ansible_python_interpreter": sys.executable,
                 # Everything the role would write goes under tmp_path ("nothing changed" is checkable).
                 "llm_gateway_install_dir": str(tmp_path / "opt"), "llm_gateway_config_dir": str(tmp_path / "etc"),
                 "llm_gateway_log_dir": str(tmp_path / "log"), "llm_gateway_wheelhouse_cache": str(tmp_path / "cache")}
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FACT_CACHING": "memory"}
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook), "-e", json.dumps(variables)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180, check=False)


@pytest.mark.parametrize("extra,message", CASES, ids=[f"{next(iter(c[0]))}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_rejected_before_any_change(tmp_path, extra, message):
    result = run_role(tmp_path, extra)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert message in out, out
    assert "changed=0" in out, out
    assert PROVIDER_KEY not in out and GATEWAY_KEY not in out, "a key was shown"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["play.yml"], "something was written"
