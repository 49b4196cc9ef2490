"""tools/probes/reach.py's name lookup at a given resolver (used by validate.yml's positive
controls): the first A record of the answer, CNAMEs skipped, addresses passed through."""
from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rrset
import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
reach = load_module(ROOT / "tools" / "probes" / "reach.py")


def answer(name: str, *records: tuple[str, str, str]) -> bytes:
    query = dns.message.make_query(name, "A")
    response = dns.message.make_response(query)
    for owner, rtype, value in records:
        response.answer.append(dns.rrset.from_text(owner, 60, "IN", rtype, value))
    return response.to_wire()


def test_an_address_is_used_as_given(monkeypatch):
    monkeypatch.setattr(reach, "_query", lambda *a: pytest.fail("no lookup for an address"))
    assert reach.lookup("10.0.0.5", "10.0.0.2") == "10.0.0.5"


def test_a_name_without_resolver_is_left_to_the_system():
    assert reach.lookup("decoy.lab", None) == "decoy.lab"


def test_the_first_a_record_after_a_cname(monkeypatch):
    wire = answer("decoy.lab", ("decoy.lab.", "CNAME", "edge.cdn.lab."), ("edge.cdn.lab.", "A", "10.9.8.7"))
    monkeypatch.setattr(reach, "_query", lambda resolver, name: wire)
    assert reach.lookup("decoy.lab", "10.0.0.2") == "10.9.8.7"


def test_no_address_is_an_error(monkeypatch):
    monkeypatch.setattr(reach, "_query", lambda resolver, name: answer("decoy.lab"))
    with pytest.raises(OSError):
        reach.lookup("decoy.lab", "10.0.0.2")
