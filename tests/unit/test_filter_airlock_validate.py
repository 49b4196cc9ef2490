"""Unit tests of filter_plugins/airlock_validate.py (validate.yml's plan and report)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
av = load_module(ROOT / "filter_plugins" / "airlock_validate.py")


def test_plan_wants_the_llm_and_blocks_every_canary_and_foreign_dns():
    plan = av.airlock_probe_plan(
        "http://llm.test:8000/v1/models",
        [{"host": "decoy.test", "port": 80}, {"host": "10.0.0.9", "port": 123, "proto": "udp"}],
        {"name": "llm.test", "canary_resolver": "10.0.0.9"},
    )
    assert [(p["args"], p["want"]) for p in plan] == [
        (["http", "http://llm.test:8000/v1/models"], True),
        (["tcp", "decoy.test", "80"], False),
        (["udp", "10.0.0.9", "123"], False),
        (["dns", "10.0.0.9", "llm.test"], False),
    ]


def test_plan_rejects_an_unknown_protocol():
    with pytest.raises(ValueError, match="validate_canaries"):
        av.airlock_probe_plan("http://x/", [{"host": "a", "port": 1, "proto": "icmp"}], None)


def _result(name, want, rc, detail="d"):
    return {"item": {"name": name, "want": want}, "rc": rc,
            "stdout": json.dumps({"reached": rc == 0, "detail": detail})}


def test_rows_pass_only_when_reachability_matches_the_wish():
    rows = av.airlock_probe_rows({"results": [
        _result("llm", True, 0), _result("llm-down", True, 1),
        _result("canary", False, 1, "timed out"), _result("canary-open", False, 0),
    ]}, "server host")
    assert [r["ok"] for r in rows] == [True, False, True, False]
    assert rows[2] == {"check": "canary", "where": "server host", "ok": True, "detail": "timed out"}


def test_rows_survive_a_probe_that_printed_nothing():
    rows = av.airlock_probe_rows({"results": [{"item": {"name": "x", "want": True}, "rc": 127,
                                               "stdout": "", "stderr": "python3: not found"}]}, "sandbox")
    assert rows[0]["ok"] is False and "not found" in rows[0]["detail"]


@pytest.mark.parametrize("rc, stdout, stderr", [
    (3, json.dumps({"reached": None, "detail": "the probe failed: AttributeError: x"}), ""),  # reach.py's own failure
    (1, "", "Traceback (most recent call last): ... ImportError: no module named dns"),  # died before its verdict
    (1, "", "runuser: user unbound does not exist"),
    (1, json.dumps({"reached": True, "detail": "connected"}), ""),  # verdict and exit status disagree
    (125, "", "docker: Error response from daemon: No such image"),
])
def test_a_probe_that_gave_no_verdict_fails_its_row_whatever_it_wanted(rc, stdout, stderr):
    """A block check (want False) must not pass on a probe that never ran: only exit 0 or 1
    with the matching JSON verdict counts."""
    for want in (False, True):
        rows = av.airlock_probe_rows({"results": [{"item": {"name": "x", "want": want}, "rc": rc,
                                                   "stdout": stdout, "stderr": stderr}]}, "server host")
        assert rows[0]["ok"] is False, (want, rows[0])


def test_port_plan_and_its_rows():
    plan = av.airlock_port_plan("10.0.1.5", [3000, 40000], False, "the router")
    assert plan[0] == {"name": "10.0.1.5:3000 is closed to the router", "args": ["tcp", "10.0.1.5", "3000"], "want": False}
    results = {"results": [{"item": plan[0], "rc": 0, "stdout": json.dumps({"reached": True, "detail": "connected"})},
                           {"item": plan[1], "rc": 1, "stdout": json.dumps({"reached": False, "detail": "timed out"})}]}
    assert [r["ok"] for r in av.airlock_probe_rows(results, "router")] == [False, True]


def test_markdown_report_counts_and_marks_failures():
    md = av.airlock_report_markdown([
        {"check": "a", "where": "x", "ok": True, "detail": "fine"},
        {"check": "b", "where": "y", "ok": False, "detail": "a|b"},
        {"check": "c", "where": "z", "ok": None, "detail": "container"},
    ], "t")
    assert "**FAILED**: 1 passed, 1 failed, 1 not applicable." in md
    assert "| **FAIL** | b | y | a\\|b |" in md and "| n/a | c |" in md


def test_host_plan_with_a_gateway_user_pairs_the_llm_probe_with_its_control():
    plan = av.airlock_probe_plan("http://llm.test:8000/v1/models", [], {"name": "llm.test", "canary_resolver": "10.0.0.9",
                                                                        "resolver": "10.0.0.53"},
                                 "host", None, "airlock-llm")
    assert [(p["args"], p["want"], p.get("user")) for p in plan] == [
        (["http", "http://llm.test:8000/v1/models"], True, "airlock-llm"),
        (["http", "http://llm.test:8000/v1/models"], False, None),
        (["dns", "10.0.0.9", "llm.test"], False, None),
        (["dns", "10.0.0.53", "llm.test"], True, None),
    ]
    assert "reaches the approved LLM endpoint" in plan[0]["name"]


def test_host_plan_with_a_resolver_user_pairs_the_dns_probe_with_its_control():
    """With a local resolver, only its user may query the configured resolver: the same
    query as root must be refused."""
    plan = av.airlock_probe_plan("http://llm.test:8000/v1/models", [], {"name": "llm.test", "canary_resolver": "10.0.0.9",
                                                                        "resolver": "10.0.0.53", "user": "unbound"},
                                 "host", None, "airlock-llm")
    assert [(p["args"], p["want"], p.get("user")) for p in plan][2:] == [
        (["dns", "10.0.0.9", "llm.test"], False, None),
        (["dns", "10.0.0.53", "llm.test"], True, "unbound"),
        (["dns", "10.0.0.53", "llm.test"], False, None),
    ]
    sandbox = av.airlock_probe_plan("http://llm.test:8000/v1/models", [], {"name": "llm.test", "canary_resolver": "10.0.0.9",
                                                                           "resolver": "10.0.0.53", "user": "unbound"},
                                    "sandbox", "http://host.docker.internal:4000/health/liveliness")
    assert not any("user" in p for p in sandbox)


def test_sandbox_plan_reaches_the_gateway_and_nothing_else():
    plan = av.airlock_probe_plan("http://llm.test:8000/v1/models", [{"host": "decoy.test", "port": 80}],
                                 {"name": "llm.test", "canary_resolver": "10.0.0.9", "resolver": "10.0.0.53"},
                                 "sandbox", "http://host.docker.internal:4000/health/liveliness", "airlock-llm")
    assert [(p["args"], p["want"]) for p in plan] == [
        (["http", "http://host.docker.internal:4000/health/liveliness"], True),
        (["http", "http://llm.test:8000/v1/models"], False),
        (["tcp", "decoy.test", "80"], False),
        (["dns", "10.0.0.9", "llm.test"], False),
        (["dns", "10.0.0.53", "llm.test"], False),
    ]
    assert not any("user" in p for p in plan)


def test_sandbox_plan_needs_the_gateway_url():
    with pytest.raises(ValueError, match="validate_gateway_url"):
        av.airlock_probe_plan("http://x/", [], None, "sandbox")


def test_control_plan_probes_every_canary_and_the_foreign_resolver_as_must_reach():
    canaries = [{"host": "decoy.lab", "port": 80}, {"host": "10.0.0.9", "port": 123, "proto": "udp"}]
    plan = av.airlock_control_plan(canaries, {"name": "llm.lab", "canary_resolver": "10.0.0.9"}, "the router")
    assert [p["args"] for p in plan] == [["tcp", "decoy.lab", "80"], ["udp", "10.0.0.9", "123"], ["dns", "10.0.0.9", "llm.lab"]]
    # With the configured resolver known, names are looked up there.
    looked_up = av.airlock_control_plan(canaries, {"name": "llm.lab", "canary_resolver": "10.0.0.9", "resolver": "10.0.1.2"}, "r")
    assert looked_up[0]["args"] == ["tcp", "decoy.lab", "80", "10.0.1.2"]
    assert all(p["want"] is True and p["name"].startswith("positive control") and "the router" in p["name"] for p in plan)
    # The blocks of the same canaries, from the server: the same probes, wanted unreachable.
    blocks = [p for p in av.airlock_probe_plan("http://llm/models", canaries, None) if p["name"].startswith("canary")]
    assert [p["args"][:3] for p in blocks] == [p["args"][:3] for p in plan[:2]] and not any(p["want"] for p in blocks)
    assert av.airlock_control_plan([], None, "x") == []
    with pytest.raises(ValueError):
        av.airlock_control_plan([{"host": "h", "port": 1, "proto": "icmp"}], None, "x")
