"""The stand-in's DNS probe (tools/standin/openhands-standin/standin.py, dns_query and
run_probe's "dns" kind) is fake-dns/dns_query.py's query() under the probe API's JSON shape
that the server tier's tests read: {"ok", "rcode", "answers"} or {"ok": False, "error"}.
Against a resolver on loopback; dns_query.py is loaded as the module standin imports, as it
sits beside standin.py in the image and on the Molecule hosts."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.fake_resolver import FakeResolver
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tools" / "standin"
DNS_QUERY = STANDIN / "fake-dns" / "dns_query.py"


@pytest.fixture(scope="module")
def standin():
    load_module(DNS_QUERY, "dns_query", register=True)
    return load_module(STANDIN / "openhands-standin" / "standin.py", "standin_under_test")


@pytest.fixture()
def resolver():
    fake = FakeResolver({"llm.airlock.test": ["127.0.0.1", "fd00::20"], "empty.test": [], "silent.test": None})
    yield fake
    fake.close()


def test_the_standin_has_no_dns_query_code_of_its_own():
    source = (STANDIN / "openhands-standin" / "standin.py").read_text()
    assert "dns.query" not in source and "make_query" not in source and "from dns_query import query" in source


def test_an_answer_in_the_probe_shape(standin, resolver):
    assert standin.run_probe({"kind": "dns", "server": resolver.address, "name": "llm.airlock.test"}) == \
        {"ok": True, "rcode": 0, "answers": ["127.0.0.1"]}
    assert standin.run_probe({"kind": "dns", "server": resolver.address, "name": "llm.airlock.test", "type": "AAAA"}) == \
        {"ok": True, "rcode": 0, "answers": ["fd00::20"]}
    assert standin.dns_query(resolver.address, "empty.test") == {"ok": True, "rcode": 0, "answers": []}


def test_a_refusal_is_an_answer_that_is_not_ok(standin, resolver):
    assert standin.dns_query(resolver.address, "other.test") == {"ok": False, "rcode": 3, "answers": []}


def test_no_answer_is_an_error(standin, resolver):
    result = standin.dns_query(resolver.address, "silent.test", timeout=0.5)
    assert result["ok"] is False and set(result) == {"ok", "error"} and "Timeout" in result["error"], result
