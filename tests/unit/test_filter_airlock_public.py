"""filter_plugins/airlock_public.py: the server's way to the proxy, from the public URL."""
from __future__ import annotations

from pathlib import Path

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]

PUB = load_module(ROOT / "filter_plugins" / "airlock_public.py")


def test_endpoint_of_names_addresses_and_ports():
    assert PUB.airlock_public_endpoint("https://openhands.example.org") == {"host": "openhands.example.org", "port": 443, "is_ip": False}
    assert PUB.airlock_public_endpoint("https://airlock.localhost:8443") == {"host": "airlock.localhost", "port": 8443, "is_ip": False}
    assert PUB.airlock_public_endpoint(" https://198.51.100.7 ") == {"host": "198.51.100.7", "port": 443, "is_ip": True}
    assert PUB.airlock_public_endpoint("https://[2001:db8::7]:8443")["is_ip"] is True
    assert PUB.airlock_public_endpoint("")["host"] == ""


def test_a_public_name_is_mapped_to_the_proxy_and_routed_with_the_urls_port():
    paths = PUB.airlock_app_proxy_paths("https://airlock.localhost:8443", "10.213.11.10")
    assert paths == {"extra_hosts": [{"name": "airlock.localhost", "address": "10.213.11.10"}],
                     "routes": [{"address": "10.213.11.10", "port": 8443}]}


def test_a_public_address_is_dialled_as_it_is_and_routed():
    assert PUB.airlock_app_proxy_paths("https://198.51.100.7", "10.0.0.10") == {
        "extra_hosts": [], "routes": [{"address": "198.51.100.7", "port": 443}]}


def test_nothing_without_the_proxys_address_or_a_host():
    assert PUB.airlock_app_proxy_paths("https://openhands.example.org", "") == {"extra_hosts": [], "routes": []}
    assert PUB.airlock_app_proxy_paths("", "10.0.0.10") == {"extra_hosts": [], "routes": []}
