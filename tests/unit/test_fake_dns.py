"""tools/standin/fake-dns/fake_dns.py: the test resolver's answers, message by message."""
from __future__ import annotations

import json
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
FAKE = load_module(ROOT / "tools" / "standin" / "fake-dns" / "fake_dns.py")


@pytest.fixture()
def records(tmp_path):
    path = tmp_path / "records.json"
    path.write_text(json.dumps({"LLM.airlock.test.": ["10.213.5.20", "fd00::20"], "empty.test": []}))
    return str(path)


def ask(name: str, rdtype: str, records: str, rd: bool = True) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if not rd:
        query.flags &= ~dns.flags.RD
    response = dns.message.from_wire(FAKE.answer(query.to_wire(), records))
    assert response.id == query.id and response.question == query.question
    assert response.flags & dns.flags.QR and response.flags & dns.flags.AA
    assert bool(response.flags & dns.flags.RD) == rd, "the RD bit is the query's"
    return response


@pytest.mark.parametrize("rdtype,address", [("A", "10.213.5.20"), ("AAAA", "fd00::20")])
def test_a_known_name_gets_its_addresses_of_the_asked_family(records, rdtype, address):
    response = ask("llm.airlock.test", rdtype, records)
    assert response.rcode() == dns.rcode.NOERROR
    assert [rd.address for rrset in response.answer for rd in rrset] == [address]


def test_names_are_matched_whatever_their_case_and_final_dot(records):
    assert ask("LLM.Airlock.Test.", "A", records, rd=False).answer


@pytest.mark.parametrize("name,rdtype,rcode", [
    ("other.test", "A", dns.rcode.NXDOMAIN),       # never forwarded
    ("empty.test", "A", dns.rcode.NOERROR),        # known, no address
    ("llm.airlock.test", "MX", dns.rcode.NOERROR),  # known, not an address type
])
def test_no_address_otherwise(records, name, rdtype, rcode):
    response = ask(name, rdtype, records)
    assert response.rcode() == rcode and not response.answer


def test_a_missing_records_file_answers_nxdomain(tmp_path):
    assert ask("llm.airlock.test", "A", str(tmp_path / "none.json")).rcode() == dns.rcode.NXDOMAIN
