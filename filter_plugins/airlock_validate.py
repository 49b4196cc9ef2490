"""Filters that turn validate.yml's probes into a plan and its results into report rows.

Plain Python, unit tested in tests/unit/test_filter_airlock_validate.py.

airlock_probe_plan(llm_url, canaries, dns, vantage="host", gateway_url=None, gateway_user=None)
    The reachability probes to run from one vantage point (``host``: the server host, or
    ``sandbox``: a sandbox container), each ``{"name", "args", "want"}`` (and ``user``,
    the user to probe as): ``args`` is the command line of tools/probes/reach.py (shipped
    as the zipapp reach.pyz: tools/probes/build_reach.py), ``want``
    whether the destination must be reached. On the host, with ``gateway_user``, the LLM
    endpoint must answer that user and no other; a sandbox must reach the gateway
    (``gateway_url``) and not the endpoint, nor DNS, even the configured resolver
    (``dns["resolver"]``), which the host must reach (with ``dns["user"]``, the local
    resolver's user, as that user only: root is refused).
    ``canaries`` is a list of ``{"host", "port", "proto": tcp|udp}`` that must be blocked;
    ``dns`` is ``{"name": <a name the resolver knows>, "canary_resolver": <address>,
    "resolver": <address>, "user": <optional>}``.

airlock_probe_rows(results, where)
    Report rows ``{"check", "where", "ok", "detail"}`` from a looped ``command`` result
    whose loop items came from airlock_probe_plan (reach.py exits 0 when it reached, 1 when
    not, and prints its verdict; any other outcome fails the row, whatever it wanted).

airlock_control_plan(canaries, dns, where)
    The positive controls of the canary blocks: each canary (and the foreign resolver) must
    answer ``where``, a vantage point outside the server (validate_outsiders); without them
    a dead decoy would pass every block check.

airlock_port_plan(address, ports, want_open, where)
    TCP probes of ``address`` on each port, in the same form as airlock_probe_plan:
    "answers <where>" when ``want_open``, "is closed to <where>" otherwise.

airlock_report_markdown(rows, title)
    The Markdown report: a summary line and one table row per check.
"""
from __future__ import annotations

import json


def airlock_probe_plan(llm_url, canaries, dns, vantage="host", gateway_url=None, gateway_user=None):
    if vantage not in ("host", "sandbox"):
        raise ValueError(f"vantage must be host or sandbox, got {vantage!r}")
    if vantage == "host" and gateway_user:
        # Only the LLM gateway's user reaches the endpoint: its probe is the positive
        # control of root's, the same request from the same host.
        plan = [{"name": f"reaches the approved LLM endpoint (as {gateway_user}, the LLM gateway)",
                 "args": ["http", llm_url], "want": True, "user": gateway_user},
                {"name": "the approved LLM endpoint is closed to other users of the host (root)",
                 "args": ["http", llm_url], "want": False}]
    elif vantage == "host":
        plan = [{"name": "reaches the approved LLM endpoint", "args": ["http", llm_url], "want": True}]
    else:
        if not gateway_url:
            raise ValueError("a sandbox plan needs the LLM gateway's URL (validate_gateway_url)")
        plan = [{"name": "reaches the LLM gateway", "args": ["http", gateway_url], "want": True},
                {"name": "the approved LLM endpoint is blocked (only the gateway calls it)",
                 "args": ["http", llm_url], "want": False}]
    for canary in canaries or []:
        proto = canary.get("proto", "tcp")
        if proto not in ("tcp", "udp"):
            raise ValueError(f"validate_canaries: proto must be tcp or udp, got {proto!r}")
        plan.append({
            "name": f"canary {canary['host']}:{canary['port']}/{proto} is blocked",
            "args": [proto, str(canary["host"]), str(canary["port"])],
            "want": False,
        })
    if dns:
        plan.append({"name": f"DNS via a foreign resolver ({dns['canary_resolver']}) is blocked",
                     "args": ["dns", str(dns["canary_resolver"]), dns["name"]], "want": False})
        if vantage == "sandbox" and dns.get("resolver"):
            plan.append({"name": f"DNS via the configured resolver ({dns['resolver']}) is blocked (no DNS leaves a sandbox)",
                         "args": ["dns", str(dns["resolver"]), dns["name"]], "want": False})
        elif dns.get("resolver") and dns.get("user"):
            # Only the local resolver's user reaches the configured resolver: its probe is
            # the positive control of root's, the same query from the same host.
            plan.append({"name": f"resolves through the configured resolver ({dns['resolver']}) as {dns['user']}, the local resolver",
                         "args": ["dns", str(dns["resolver"]), dns["name"]], "want": True, "user": dns["user"]})
            plan.append({"name": f"the configured resolver ({dns['resolver']}) is closed to other users of the host (root)",
                         "args": ["dns", str(dns["resolver"]), dns["name"]], "want": False})
        elif dns.get("resolver"):
            plan.append({"name": f"resolves through the configured resolver ({dns['resolver']})",
                         "args": ["dns", str(dns["resolver"]), dns["name"]], "want": True})
    return plan


def airlock_probe_rows(results, where):
    rows = []
    for res in results.get("results", []):
        item = res["item"]
        try:
            verdict = json.loads(res.get("stdout", "").strip().splitlines()[-1])
            detail = verdict["detail"]
        except (IndexError, ValueError, KeyError, TypeError):
            verdict, detail = {}, (res.get("stderr") or res.get("msg") or "no output").strip()[:300]
        reached = res.get("rc") == 0
        # Only a probe that ran and gave its verdict proves anything: one that could not run
        # (no python3, the probe's own failure: exit 3, reached null) fails whatever it wanted.
        ran = res.get("rc") in (0, 1) and verdict.get("reached") is reached
        rows.append({"check": item["name"], "where": where, "ok": ran and reached == item["want"], "detail": detail})
    return rows


def airlock_control_plan(canaries, dns, where):
    """The positive controls of the blocks: every canary (and the foreign resolver) probed
    from ``where``, a vantage point outside the server that must reach them. A block proven
    beside its control cannot be a dead decoy."""
    plan = []
    # A canary given by name is looked up at the configured resolver (the vantage point's
    # own resolv.conf may not know the enclave's names).
    resolver = [str(dns["resolver"])] if dns and dns.get("resolver") else []
    for canary in canaries or []:
        proto = canary.get("proto", "tcp")
        if proto not in ("tcp", "udp"):
            raise ValueError(f"validate_canaries: proto must be tcp or udp, got {proto!r}")
        plan.append({"name": f"positive control: canary {canary['host']}:{canary['port']}/{proto} answers {where}",
                     "args": [proto, str(canary["host"]), str(canary["port"])] + resolver, "want": True})
    if dns:
        plan.append({"name": f"positive control: the foreign resolver ({dns['canary_resolver']}) answers {where}",
                     "args": ["dns", str(dns["canary_resolver"]), dns["name"]], "want": True})
    return plan


def airlock_port_plan(address, ports, want_open, where):
    return [{
        "name": f"{address}:{port} {'answers' if want_open else 'is closed to'} {where}",
        "args": ["tcp", str(address), str(port)],
        "want": bool(want_open),
    } for port in ports]


def airlock_report_markdown(rows, title):
    failed = [r for r in rows if r["ok"] is False]
    skipped = [r for r in rows if r["ok"] is None]
    lines = [
        f"# {title}", "",
        f"**{'FAILED' if failed else 'PASSED'}**: {len(rows) - len(failed) - len(skipped)} passed, "
        f"{len(failed)} failed, {len(skipped)} not applicable.", "",
        "| result | check | where | detail |", "|---|---|---|---|",
    ]
    for r in rows:
        mark = {True: "pass", False: "**FAIL**", None: "n/a"}[r["ok"]]
        detail = str(r["detail"]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {mark} | {r['check']} | {r['where']} | {detail} |")
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {
            "airlock_control_plan": airlock_control_plan,
            "airlock_probe_plan": airlock_probe_plan,
            "airlock_probe_rows": airlock_probe_rows,
            "airlock_port_plan": airlock_port_plan,
            "airlock_report_markdown": airlock_report_markdown,
        }
