"""Unit tests of the nginx_proxy role's session input check (nginx_proxy_session_input_errors):
a good input gives no message, each bad one a message naming its variable."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from helpers.modules import load_module  # noqa: E402

NGINX = load_module(ROOT / "roles/nginx_proxy/filter_plugins/nginx_proxy.py")

GOOD = {"session_enabled": True, "session_idle_timeout": 28800, "session_absolute_timeout": 86400,
        "session_cookie_name": "__Host-airlock_session", "session_key_generation": 1, "basic_auth_api": False}


@pytest.mark.parametrize("over", [
    {},
    {"session_cookie_name": "airlock-session"},
    {"session_idle_timeout": "600", "session_absolute_timeout": "600"},
    {"basic_auth_api": True},
    {"session_enabled": False},
    {"session_key_generation": 7},
])
def test_good_session_input_has_no_errors(over):
    assert NGINX.session_input_errors({**GOOD, **over}) == []


@pytest.mark.parametrize("over,fragment", [
    ({"session_enabled": "yes"}, "nginx_proxy_session_enabled: 'yes' is not true or false"),
    ({"basic_auth_api": 1}, "nginx_proxy_basic_auth_api"),
    ({"session_idle_timeout": 59}, "nginx_proxy_session_idle_timeout: 59"),
    ({"session_idle_timeout": "soon"}, "nginx_proxy_session_idle_timeout"),
    ({"session_idle_timeout": True}, "nginx_proxy_session_idle_timeout"),
    ({"session_idle_timeout": 90000}, "nginx_proxy_session_idle_timeout: 90000 is longer than"),
    ({"session_absolute_timeout": 30}, "nginx_proxy_session_absolute_timeout: 30"),
    ({"session_absolute_timeout": 31 * 86400}, "nginx_proxy_session_absolute_timeout"),
    ({"session_cookie_name": "airlock session"}, "nginx_proxy_session_cookie_name: 'airlock session'"),
    ({"session_cookie_name": "a=b"}, "nginx_proxy_session_cookie_name"),
    ({"session_cookie_name": "x;Secure"}, "nginx_proxy_session_cookie_name"),
    ({"session_cookie_name": ""}, "nginx_proxy_session_cookie_name"),
    ({"session_key_generation": 0}, "nginx_proxy_session_key_generation: 0"),
    ({"session_key_generation": "next"}, "nginx_proxy_session_key_generation"),
    ({"session_enabled": False, "basic_auth_api": True}, "nginx_proxy_basic_auth_api is true while"),
])
def test_bad_session_input_is_named(over, fragment):
    errors = NGINX.session_input_errors({**GOOD, **over})
    assert any(fragment in e for e in errors), errors
