"""Filters that map the public URL onto the server's way to the proxy (site.yml).

OpenHands 1.11.0 calls its sandboxes at the URLs it hands out, the public URL plus
/runtime/<port>, so the app container on the server must reach the proxy there.

airlock_public_endpoint(url)
    ``{"host", "port", "is_ip"}`` of the public URL (``https://name[:port]``): the name or
    address the app dials, its port (443 unless given), and whether it is an IP address.
airlock_app_proxy_paths(url, proxy_address)
    What the server tier needs for that path: ``{"extra_hosts": [...], "routes": [...]}``.
    A public name is mapped to the proxy's private address in the app container
    (openhands_extra_hosts); the address the app then dials, with the URL's port, is the
    egress firewall's route to the proxy (egress_firewall_app_proxy_routes). A public IP
    address (an Elastic IP) is dialled as it is and translated by the firewall. Nothing
    when the proxy's address is unknown.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def airlock_public_endpoint(url):
    parts = urlsplit(str(url or "").strip())
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    return {"host": host, "port": port, "is_ip": is_ip}


def airlock_app_proxy_paths(url, proxy_address):
    endpoint = airlock_public_endpoint(url)
    proxy = str(proxy_address or "").strip()
    if not endpoint["host"] or not endpoint["port"] or not proxy:
        return {"extra_hosts": [], "routes": []}
    if endpoint["is_ip"]:
        return {"extra_hosts": [], "routes": [{"address": endpoint["host"], "port": endpoint["port"]}]}
    return {"extra_hosts": [{"name": endpoint["host"], "address": proxy}],
            "routes": [{"address": proxy, "port": endpoint["port"]}]}


class FilterModule:
    def filters(self):
        return {"airlock_public_endpoint": airlock_public_endpoint, "airlock_app_proxy_paths": airlock_app_proxy_paths}
