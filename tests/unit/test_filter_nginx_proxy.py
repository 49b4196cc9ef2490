"""Unit tests of the nginx_proxy role's input checks: the session settings' part
(nginx_proxy_session_input_errors) and all of them (nginx_proxy_input_errors, as
tasks/assert.yml calls it, with the redact filters): a good input gives no message, each
bad one a message naming its variable."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

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


# --- All the role's input checks (nginx_proxy_input_errors) ---------------------------------

DEFAULTS = yaml.safe_load((ROOT / "roles/nginx_proxy/defaults/main.yml").read_text())
INPUT_NAMES = ("auth_backend", "users", "password_min_length", "pam_group", "pam_service", "htpasswd_bcrypt_cost",
               "htpasswd_sha_rounds", "tls_mode", "selfsigned_acknowledged", "tls_certificate", "tls_private_key",
               "tls_chain", "acme_email", "acme_terms_agreed", "acme_directory", "acme_renew_days", "acme_challenge",
               "acme_route53_zone", "acme_route53_endpoint_url", "server_name", "http_port", "https_port", "upstream_host",
               "sandbox_routing_enabled", "sandbox_path", "sandbox_port_range", "internal_callers", "resolvers", "rate",
               "login_fail_rate", "client_max_body_size", *GOOD)
PASSWORD = "never-shown-password-123"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcfake\n-----END EC PRIVATE KEY-----\n"
# The role's defaults with what the inventory always sets (a user, the upstream, the server
# name; nginx_proxy_server_name defaults to the inventory host name).
BASE = {**{name: DEFAULTS[f"nginx_proxy_{name}"] for name in INPUT_NAMES},
        "users": [{"name": "alice", "password": PASSWORD}], "upstream_host": "10.0.1.10", "server_name": "proxy.example.org"}
# A valid ACME dns-01-route53 setting (tests/roles/test_proxy_tier_bad_input.py's).
ACME = {"tls_mode": "acme", "acme_email": "ops@example.org", "acme_terms_agreed": True,
        "acme_challenge": "dns-01-route53", "acme_route53_zone": "example.org"}
PROVIDED = {"tls_mode": "provided", "tls_certificate": CERT, "tls_private_key": KEY}


def input_errors(**over):
    """The filter as tasks/assert.yml calls it: users and private key redacted first."""
    inputs = {**BASE, **over}
    inputs["users"] = NGINX.redact_users(inputs["users"])
    inputs["tls_private_key"] = NGINX.redact_secret(inputs["tls_private_key"])
    return NGINX.input_errors(inputs)


def test_every_input_assert_yml_passes_is_checked_here():
    text = (ROOT / "roles/nginx_proxy/tasks/assert.yml").read_text()
    for name in INPUT_NAMES:
        assert f"      {name}: \"{{{{ nginx_proxy_{name}" in text, name
    assert "nginx_proxy_users | nginx_proxy_redact_users" in text
    assert "nginx_proxy_tls_private_key | nginx_proxy_redact_secret" in text


@pytest.mark.parametrize("over", [
    {},
    # Values as Ansible may pass them: strings of digits where the checks read numbers.
    {"password_min_length": "12", "htpasswd_bcrypt_cost": "4", "htpasswd_sha_rounds": "999999999", "acme_renew_days": "60"},
    {"sandbox_port_range": {"start": "1024", "end": "65535"}},
    {"sandbox_port_range": {"start": 40000, "end": 40000}},
    {"selfsigned_acknowledged": "yes"},
    {"users": [{"name": "alice", "password": PASSWORD}, {"name": "bob.smith_2-x", "password": "x" * 12}]},
    {"auth_backend": "pam", "users": []},
    {"auth_backend": "pam", "users": [], "pam_group": "_web-users", "pam_service": "nginx.airlock"},
    {**PROVIDED},
    {**PROVIDED, "tls_chain": CERT, "tls_private_key": KEY.replace(" EC", "")},
    {**ACME},
    {**ACME, "acme_route53_zone": "Z0123456789ABC"},
    {**ACME, "acme_route53_zone": "/hostedzone/Z0123456789ABC"},
    {**ACME, "acme_route53_zone": "example.org."},
    {**ACME, "acme_route53_endpoint_url": "http://127.0.0.1:5000"},
    {**ACME, "acme_challenge": "http-01"},
    {**ACME, "acme_challenge": "http-01", "http_port": "80"},
    {"upstream_host": "fd00::10"},
    {"upstream_host": "openhands.internal", "resolvers": ["10.0.0.2"]},
    {"upstream_host": "openhands.internal", "sandbox_routing_enabled": False},
    {"internal_callers": ["10.0.1.10", "10.0.1.0/24", "fd00::/64"], "resolvers": ["10.0.0.2", "fd00::2"]},
    {"server_name": "203.0.113.10"},
    {"rate": "5r/m", "login_fail_rate": "1r/s", "client_max_body_size": 50},
    {"client_max_body_size": "1G"},
    {"http_port": 8080, "https_port": 8443},
])
def test_good_input_has_no_errors(over):
    assert input_errors(**over) == []


@pytest.mark.parametrize("over,prefix", [
    # Login
    ({"users": []}, "nginx_proxy_users is empty: the htpasswd backend needs at least one user."),
    ({"users": "alice"}, "nginx_proxy_users must be a list"),
    ({"users": [{"name": "al ice", "password": PASSWORD}]}, "nginx_proxy_users: invalid or missing name/password for: al ice"),
    ({"users": [{"name": "alice"}]}, "nginx_proxy_users: invalid or missing name/password for: alice"),
    ({"users": [{"name": "alice", "password": 1234567890123}]}, "nginx_proxy_users: invalid or missing name/password for: alice"),
    ({"users": [{"password": PASSWORD}]}, "nginx_proxy_users: invalid or missing name/password for: entry 1"),
    ({"users": [{"name": "alice", "password": PASSWORD}, "bob"]}, "nginx_proxy_users: invalid or missing name/password for: entry 2"),
    ({"users": [{"name": "alice", "password": "short-pw"}]},
     "nginx_proxy_users: the password of alice is shorter than nginx_proxy_password_min_length (12)."),
    ({"users": [{"name": "alice", "password": PASSWORD}, {"name": "alice", "password": PASSWORD}]},
     "nginx_proxy_users: duplicate user name alice"),
    ({"password_min_length": 7}, "nginx_proxy_password_min_length must be at least 8"),
    ({"password_min_length": "seven"}, "nginx_proxy_password_min_length must be at least 8"),
    ({"auth_backend": "pam", "users": [], "pam_group": "Web"}, "nginx_proxy_pam_group: invalid value 'Web'"),
    ({"auth_backend": "pam", "users": [], "pam_service": "-pam"}, "nginx_proxy_pam_service: invalid value '-pam'"),
    ({"htpasswd_bcrypt_cost": 3}, "nginx_proxy_htpasswd_bcrypt_cost: invalid value 3 (bcrypt cost 4-31)."),
    ({"htpasswd_bcrypt_cost": "32"}, "nginx_proxy_htpasswd_bcrypt_cost: invalid value"),
    ({"htpasswd_sha_rounds": 999}, "nginx_proxy_htpasswd_sha_rounds: invalid value 999 (sha rounds 1000-999999999)."),
    # TLS
    ({"selfsigned_acknowledged": False},
     "nginx_proxy_tls_mode is selfsigned and nginx_proxy_selfsigned_acknowledged is false: browsers warn"),
    ({"selfsigned_acknowledged": "no"}, "nginx_proxy_tls_mode is selfsigned and nginx_proxy_selfsigned_acknowledged is false"),
    ({"tls_mode": "provided"}, "nginx_proxy_tls_certificate is empty: nginx_proxy_tls_mode provided needs a certificate"),
    ({"tls_certificate": CERT}, "nginx_proxy_tls_private_key is empty: nginx_proxy_tls_certificate was given without its key."),
    ({**PROVIDED, "tls_certificate": "MIIBfake"}, "nginx_proxy_tls_certificate is not a PEM certificate."),
    ({**PROVIDED, "tls_private_key": "MHcfake"}, "nginx_proxy_tls_private_key is not a PEM private key."),
    ({**PROVIDED, "tls_private_key": None}, "nginx_proxy_tls_private_key is not a PEM private key."),
    ({**PROVIDED, "tls_chain": KEY}, "nginx_proxy_tls_chain is not PEM."),
    ({"acme_renew_days": 0}, "nginx_proxy_acme_renew_days must be between 1 and 60"),
    ({"acme_renew_days": 61}, "nginx_proxy_acme_renew_days must be between 1 and 60"),
    ({"acme_route53_endpoint_url": "127.0.0.1:5000"}, "nginx_proxy_acme_route53_endpoint_url '127.0.0.1:5000' is not an http(s) URL."),
    ({**ACME, "acme_email": ""}, "nginx_proxy_acme_email '' is not an e-mail address: ACME"),
    ({**ACME, "acme_email": "ops@localhost"}, "nginx_proxy_acme_email 'ops@localhost' is not an e-mail address"),
    ({**ACME, "acme_terms_agreed": False}, "nginx_proxy_acme_terms_agreed is false: the CA issues only to accounts"),
    ({**ACME, "acme_directory": "http://acme.example.org/directory"},
     "nginx_proxy_acme_directory 'http://acme.example.org/directory' is not an https URL."),
    ({**ACME, "server_name": "203.0.113.10"}, "nginx_proxy_server_name '203.0.113.10' is an address: ACME certificates"),
    ({**ACME, "acme_challenge": "http-01", "http_port": 8080}, "nginx_proxy_http_port is 8080: the CA checks http-01 on port 80"),
    ({**ACME, "acme_route53_zone": ""}, "nginx_proxy_acme_route53_zone is empty: nginx_proxy_acme_challenge dns-01-route53"),
    ({**ACME, "acme_route53_zone": "example org"}, "nginx_proxy_acme_route53_zone 'example org' is neither a hosted zone id"),
    ({**ACME, "acme_route53_zone": "example_org"}, "nginx_proxy_acme_route53_zone 'example_org' is neither"),
    # Upstream and sandbox routing
    ({"upstream_host": "10.0.1.10:3000"}, "nginx_proxy_upstream_host '10.0.1.10:3000' is malformed: give an IPv4/IPv6"),
    ({"upstream_host": "http://openhands"}, "nginx_proxy_upstream_host 'http://openhands' is malformed"),
    ({"upstream_host": "10.0.1.300"}, "nginx_proxy_upstream_host '10.0.1.300' is malformed"),
    ({"server_name": "proxy example org"}, "nginx_proxy_server_name 'proxy example org' is not a DNS name or address."),
    ({"sandbox_port_range": {"start": 1023, "end": 60999}}, "nginx_proxy_sandbox_port_range must satisfy 1024 <= start <= end <= 65535"),
    ({"sandbox_port_range": {"start": 5000, "end": 4000}}, "nginx_proxy_sandbox_port_range must satisfy"),
    ({"sandbox_port_range": {"start": 32768, "end": 65536}}, "nginx_proxy_sandbox_port_range must satisfy"),
    ({"sandbox_port_range": {"start": 32768}}, "nginx_proxy_sandbox_port_range must satisfy"),
    ({"sandbox_path": "runtime"}, "nginx_proxy_sandbox_path must look like /runtime"),
    ({"sandbox_path": "/run/time"}, "nginx_proxy_sandbox_path must look like /runtime"),
    ({"internal_callers": ["10.0.1.10/24"]}, "nginx_proxy_internal_callers[0]: not an address or CIDR: 10.0.1.10/24"),
    ({"internal_callers": "10.0.1.10"}, "nginx_proxy_internal_callers must be a list"),
    ({"resolvers": ["10.0.0.2", "resolver.internal"]}, "nginx_proxy_resolvers[1]: not an address: resolver.internal"),
    ({"upstream_host": "openhands.internal"}, "nginx_proxy_resolvers is empty: sandbox routing to a DNS-named"),
    ({"rate": "20/s"}, "nginx_proxy_rate must look like 20r/s or 10r/m"),
    ({"login_fail_rate": "10r/h"}, "nginx_proxy_login_fail_rate must look like 20r/s or 10r/m"),
    ({"client_max_body_size": "50mb"}, "nginx_proxy_client_max_body_size must look like 50m"),
    ({"http_port": 443}, "nginx_proxy_http_port and nginx_proxy_https_port must differ"),
    # Sessions (the same checks as session_input_errors above)
    ({"session_idle_timeout": 59}, "nginx_proxy_session_idle_timeout: 59"),
    ({"session_cookie_name": "a=b"}, "nginx_proxy_session_cookie_name: 'a=b'"),
])
def test_each_bad_input_gives_one_message_naming_its_variable(over, prefix):
    found = input_errors(**over)
    assert len(found) == 1, found
    assert found[0].startswith(prefix), found


def test_every_problem_is_reported():
    found = input_errors(users=[], selfsigned_acknowledged=False, upstream_host="10.0.1.10:3000", session_key_generation=0)
    assert [e.split(" ")[0].rstrip(":") for e in found] == [
        "nginx_proxy_users", "nginx_proxy_tls_mode", "nginx_proxy_upstream_host", "nginx_proxy_session_key_generation"]


def test_no_secret_reaches_the_inputs_or_a_message():
    users = [{"name": "al ice", "password": "short-pw"}, {"name": "bob", "password": PASSWORD}]
    redacted = NGINX.redact_users(users)
    assert "short-pw" not in repr(redacted) and PASSWORD not in repr(redacted)
    assert redacted[0]["password"] == {"redacted": True, "string": True, "length": 8, "pem_private_key": False}
    assert users[0]["password"] == "short-pw", "the role's own variable is left as it was"
    key = NGINX.redact_secret(KEY)
    assert key["pem_private_key"] and "MHcfake" not in repr(key)
    found = input_errors(users=users, **{k: v for k, v in PROVIDED.items() if k != "tls_certificate"}, tls_certificate="x")
    assert found and not any("short-pw" in e or PASSWORD in e or "MHcfake" in e for e in found), found
    # One user without the list's dash: refused, the password shown nowhere.
    single = NGINX.redact_users({"name": "alice", "password": PASSWORD})
    assert PASSWORD not in repr(single)
    found = input_errors(users={"name": "alice", "password": PASSWORD})
    assert found == ["nginx_proxy_users must be a list of {name, password}"], found
    # Called without the redact filters, the checks see the same.
    assert NGINX.input_errors({**BASE, "users": users}) == input_errors(users=users)
