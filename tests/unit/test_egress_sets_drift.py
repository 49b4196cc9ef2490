"""Unit tests of the egress firewall's sets tool (roles/egress_firewall/files/airlock-egress-sets)
without a kernel: how `nft -j` listings are normalized and compared, the window's state,
and the validation of egress_firewall_maintenance_timeout. The kernel side is proven in
tests/host/test_egress_firewall_netns.py."""
from __future__ import annotations

import copy
import fcntl
import json
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
tool = load_module(ROOT / "roles" / "egress_firewall" / "files" / "airlock-egress-sets", "airlock_egress_sets")
filters = load_module(ROOT / "roles" / "egress_firewall" / "filter_plugins" / "egress_firewall.py", "egress_firewall_filters")

ACCEPT = {"accept": None}


def listing(**over):
    """A small `nft -j list table inet airlock` document."""
    doc = [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "airlock", "handle": 7}},
        {"set": {"family": "inet", "name": "llm_hosts_v4", "table": "airlock", "type": ["ipv4_addr", "inet_service"],
                 "handle": 1, "flags": ["interval"],
                 "elem": [{"concat": [{"prefix": {"addr": "10.0.0.0", "len": 24}}, 443]}]}},
        {"set": {"family": "inet", "name": "static_ok", "table": "airlock", "type": "ipv4_addr", "handle": 2,
                 "elem": ["192.0.2.2", "192.0.2.1"]}},
        {"chain": {"family": "inet", "table": "airlock", "name": "output", "handle": 3, "type": "filter",
                   "hook": "output", "prio": 0, "policy": "drop"}},
        {"rule": {"family": "inet", "table": "airlock", "chain": "output", "handle": 9,
                  "expr": [{"counter": {"packets": 12, "bytes": 3400}}, {"log": {"prefix": "X "}}, {"drop": None}]}},
    ]
    for index, item in over.items():
        doc[int(index[1:])] = item
    return {"nftables": doc}


def test_identical_listings_are_equal_whatever_counters_handles_and_dynamic_elements():
    live = listing()
    live["nftables"][5]["rule"]["expr"][0]["counter"] = {"packets": 99999, "bytes": 1}
    live["nftables"][5]["rule"]["handle"] = 77
    live["nftables"][2]["set"]["elem"] = []  # the sets the tool fills are not compared
    live["nftables"][3]["set"]["elem"] = ["192.0.2.1", "192.0.2.2"]  # same static elements, other order
    assert tool.differences(tool.normalize(live), tool.normalize(listing())) == []


def test_inserted_accept_is_named_with_its_chain_and_position():
    live = listing()
    live["nftables"].insert(5, {"rule": {"family": "inet", "table": "airlock", "chain": "output", "handle": 20, "expr": [ACCEPT]}})
    diffs = tool.differences(tool.normalize(live), tool.normalize(listing()))
    assert diffs == ['chain output: 2 rules live, 1 in the file; first difference at rule 1: live {"expr":[{"accept":null}]}']


@pytest.mark.parametrize("change,expect", [
    (lambda d: d["nftables"][4]["chain"].update(policy="accept"), "chain output: policy differ"),
    (lambda d: d["nftables"][1]["table"].update(flags="ipv4_addr"), "table flags"),  # nft 1.0.x prints a stray word
    (lambda d: d["nftables"][1]["table"].update(flags=["dormant"]), "table flags: live ['dormant']"),
    (lambda d: d["nftables"][3]["set"]["elem"].append("0.0.0.0/0"), "set static_ok: elem differ"),
    (lambda d: d["nftables"].append({"chain": {"family": "inet", "table": "airlock", "name": "extra", "handle": 30}}),
     "chain extra: not in the ruleset file"),
    (lambda d: d["nftables"].pop(5), "chain output: 0 rules live, 1 in the file; first difference at rule 1: missing"),
    (lambda d: d["nftables"].append({"counter": {"family": "inet", "table": "airlock", "name": "c", "packets": 1, "bytes": 2}}),
     "counter c: not in the ruleset file"),
])
def test_each_kind_of_tampering_is_a_difference(change, expect):
    live = copy.deepcopy(listing())
    change(live)
    diffs = tool.differences(tool.normalize(live), tool.normalize(listing()))
    assert any(d.startswith(expect) for d in diffs), diffs


def test_missing_table():
    assert tool.differences(tool.normalize({"nftables": []}), tool.normalize(listing())) == ["table inet airlock is not loaded"]


def test_set_elements_with_timeouts_are_read_with_their_expiry():
    body = {"elem": [{"elem": {"val": {"concat": [{"prefix": {"addr": "10.1.0.0", "len": 16}}, 80]}, "timeout": 30, "expires": 12}},
                     {"concat": [{"range": ["10.2.0.0", "10.2.0.3"]}, {"range": [80, 81]}]}]}
    assert tool._set_elems(body) == {("10.1.0.0/16", 80): 12, ("10.2.0.0/30", 80): None, ("10.2.0.0/30", 81): None}


def test_window_state(tmp_path):
    window = tool.Window(str(tmp_path))
    assert window.names == [] and window.remaining() == 0
    window.save(["mirror"], [{"name": "mirror", "cidrs": ["192.0.2.0/24"]}], 60, now=1000.0)
    again = tool.Window(str(tmp_path))
    assert again.names == ["mirror"] and again.remaining(now=1030.0) == 30 and again.remaining(now=1061.0) == 0
    assert again.destinations() == [{"name": "mirror", "cidrs": ["192.0.2.0/24"]}]
    (tmp_path / "maintenance-open.json").write_text(json.dumps(["mirror"]))  # an older tool's state: no deadline
    assert tool.Window(str(tmp_path)).remaining() == 0


@pytest.mark.parametrize("before,after", [([], ["mirror"]), (["mirror"], [])], ids=["opened", "closed"])
def test_a_timer_run_waiting_for_the_lock_sees_the_window_as_the_holder_left_it(tmp_path, monkeypatch, before, after):
    """The timer starts while an --open (or --close) holds the lock. When it gets the lock it
    must act on the window as that run left it: with the state read before waiting, it
    closed the window just opened (seen in a Molecule run: the mirror refused right after
    the window opened), or opened again the one just closed."""
    state = tmp_path / "state"
    config = tmp_path / "egress.json"
    config.write_text(json.dumps({"ruleset": str(tmp_path / "egress.nft")}))
    destinations = [{"name": "mirror", "cidrs": ["192.0.2.0/24"]}]
    if before:
        tool.Window(str(state)).save(before, destinations, 600, now=time.time())
    state.mkdir(exist_ok=True)
    waiting, seen = threading.Event(), {}

    def flock(fh, op):  # the real lock, after telling the test the run is about to wait for it
        waiting.set()
        return fcntl.flock(fh, op)

    monkeypatch.setattr(tool, "fcntl", types.SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX))
    monkeypatch.setattr(tool, "run", lambda args, config, window, ruleset: seen.setdefault("names", window.names) and 0)
    monkeypatch.setattr(sys, "argv", ["airlock-egress-sets", "--config", str(config), "--state-dir", str(state)])
    with open(state / "lock", "w", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the --open or --close run
        timer = threading.Thread(target=tool.main)
        timer.start()
        assert waiting.wait(10)
        if after:
            tool.Window(str(state)).save(after, destinations, 600, now=time.time())
        else:
            tool.Window(str(state)).clear()
        fcntl.flock(held, fcntl.LOCK_UN)
    timer.join(10)
    assert seen["names"] == after


@pytest.mark.parametrize("value,ok", [(1800, True), (60, True), (86400, True), ("900", True),
                                      (59, False), (86401, False), (0, False), (-5, False), (True, False), ("30m", False), (None, False)])
def test_maintenance_timeout_validation(value, ok):
    errors = filters.egress_firewall_maintenance_timeout_errors(value)
    assert (errors == []) == ok, errors
    if not ok:
        assert errors[0].startswith("egress_firewall_maintenance_timeout must be whole seconds from 60 to 86400")
    assert "egress_firewall_maintenance_timeout_errors" in filters.FilterModule().filters()
