"""The benchmark cannot rot: its smoke mode runs end to end and produces a well-formed result,
and the report is the JSON result rendered (tools/bench/report.py), nothing else.

This checks the SHAPE of the result (every figure present, measured or explicitly marked
"not measured" with a reason, medians inside their spread, the rerun unchanged, the drift
repaired), never the timings: performance is measured by the benchmark (docs/performance.md),
not by timed tests. The smoke mode reuses a running lab (bench or lab) or builds and removes
one of its own.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIGURES = [
    "first converge of site.yml (fresh lab)",
    "idempotent rerun of site.yml",
    "rerun / first converge",
    "single-role drift fix (--tags nginx_proxy)",
    "drift fix / full rerun",
    "proxied / direct throughput",
    "ban -> alert (fail2ban banip -> log sink)",
    "dropped egress -> alert (blocked connect -> log sink)",
]
SESSION_FIGURES = [
    "proxied with a session / direct throughput",
    "nginx CPU per request with a session (TLS + session check + proxying)",
    "session logins per second (POST /airlock/session)",
    "nginx CPU per session login (TLS + password check + signed cookie)",
]
GATEWAY_MODES = ["non-streaming", "streaming, to [DONE]"]
GATEWAY_FIGURES = [name for label in GATEWAY_MODES for pct in ("p50", "p99") for name in (
    f"LLM call {pct}, direct (gateway's user -> fake LLM), {label}",
    f"LLM call {pct}, through the gateway (sandbox -> gateway), {label}",
    f"gateway added latency {pct}, {label}",
    f"gateway / direct latency {pct}, {label}",
)] + ["gateway CPU per call (MainPID + children, user + system)",
     "gateway memory idle (RSS, MainPID + children)", "gateway memory after the load (RSS, MainPID + children)"]
SCHEMES = ["sha512_crypt", "sha256_crypt", "bcrypt"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("docker") is None,
                                reason="the benchmark needs root and a Docker engine")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    md, js = out / "bench.md", out / "bench.json"
    # Never the user's lab ("lab"): the benchmark's own, built and removed unless already up.
    env = {**os.environ, "AIRLOCK_LAB_NAME": "bench"}
    res = subprocess.run([str(ROOT / "tools" / "bench.sh"), "--smoke", "--out", str(md), "--json", str(js)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=2700)
    assert res.returncode == 0, f"bench smoke failed:\n{(res.stdout + res.stderr)[-4000:]}"
    return json.loads(js.read_text()), md.read_text()


@pytest.fixture(scope="module")
def json_path(smoke, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench-json") / "result.json"
    path.write_text(json.dumps(smoke[0]))
    return path


def test_every_figure_is_reported(smoke):
    result, _ = smoke
    names = [r["figure"] for r in result["figures"]]
    for figure in FIGURES + SESSION_FIGURES + GATEWAY_FIGURES:
        assert figure in names, f"figure missing: {figure}"
    for scheme in SCHEMES:
        assert any(n.startswith(f"login check CPU, {scheme} ") for n in names), f"no login check cost for {scheme}"
    assert sum("[role default]" in n for n in names) == 1, "the role's default scheme is not marked exactly once"


def test_figures_are_well_formed(smoke):
    result, _ = smoke
    for r in result["figures"]:
        assert {"figure", "median", "min", "max", "n", "unit", "target", "met", "not_measured"} <= set(r), r
        if r.get("not_measured"):
            assert r["n"] == 0 and len(r["not_measured"]) > 10, r
            continue
        assert r["n"] >= 1, r
        assert r["min"] <= r["median"] <= r["max"], r
        if not r["figure"].startswith("gateway added latency"):  # a difference: may be below zero
            assert r["min"] >= 0, r
        assert r["met"] in (True, False, None), r
        if r["target"] not in ("-", "changed=0", "repairs the edit"):
            assert r["met"] is not None, f"a figure with a target must say whether it is met: {r}"


def test_rerun_unchanged_and_drift_repaired(smoke):
    result, _ = smoke
    c = result["converge"]
    assert c["rerun"] and c["rerun_changed"] == [0] * len(c["rerun"]), f"rerun changed something: {c['rerun_changed']}"
    assert c["drift"] and all(x > 0 for x in c["drift_changed"]), "the single-role rerun did not repair the drift"
    assert c["refused"] and all(c["refused_as_required"]), "the bad input was not refused before any change"


def test_proxy_and_login_measured(smoke):
    result, _ = smoke
    p = result["proxy"]
    assert not p.get("skipped"), p.get("skipped")
    for side in ("direct", "proxied"):
        assert p[side] and all(x["requests"] > 0 and x["non_2xx"] == 0 for x in p[side]), side
    login = result["login"]
    assert login["deployed"] == login["defaults"]["scheme"], "the lab's htpasswd does not use the role's default"
    for scheme in SCHEMES:
        assert "ms" in login["schemes"][scheme], login["schemes"][scheme]


def test_session_and_logins_measured(smoke):
    """The lab has sessions: one login gave the cookie, every session run and every login run
    answered without an error (the logins: every answer 200), the session was logged out, and
    neither the password nor the cookie is in the result or the report."""
    result, md = smoke
    p = result["proxy"]
    assert not p.get("session_skipped") and not p.get("session_failed") and not p.get("logins_failed"), p
    assert len(p["session"]) == len(p["direct"]) == result["reps"], p["session"]
    for x in p["session"] + p["logins"]:
        assert x["requests"] > 0 and x["non_2xx"] == 0 and x["nginx_cpu_ms_per_req"] > 0, x
    assert p["logins"] and all(x["non_200"] == 0 for x in p["logins"]), p["logins"]
    assert p["session_cookie_name"] and p["session_logged_out"] is True, p
    rows = {r["figure"]: r for r in result["figures"]}
    for name in SESSION_FIGURES:
        assert not rows[name]["not_measured"] and rows[name]["n"] >= 1, rows[name]
    text = json.dumps(result) + md
    assert p["session_cookie_name"] + "=" not in text, "the session cookie's value leaked into the output"
    password = ROOT / f".{result['lab']}" / "admin.password"
    assert not password.exists() or password.read_text().strip() not in text, "the password leaked"


def test_gateway_measured(smoke):
    """Both sides answered every request, in every round, and the figures agree with the raw data."""
    result, md = smoke
    g = result["gateway"]
    assert not g.get("skipped") and not g.get("failed"), g.get("skipped") or g.get("failed")
    assert len(g["rounds"]) >= 2, "the two sides must alternate over at least two rounds"
    for r in g["rounds"]:
        for side in ("direct", "gateway"):
            assert not r[side]["errors"] and not r[side]["stopped_early"], r[side]
            for mode in ("plain", "stream"):
                assert len(r[side][mode]) == g["n"] and all(x > 0 for x in r[side][mode]), (side, mode)
        assert r["rss_after"]["pids"] >= 1 and r["rss_after"]["rss_kib"] > 0, r["rss_after"]
        assert r["gateway_cpu_ms_per_call"] > 0, r
    assert g["rss_idle"]["pids"] >= 1 and g["rss_idle"]["rss_kib"] > 0, g["rss_idle"]
    rows = {r["figure"]: r for r in result["figures"]}
    for name in GATEWAY_FIGURES:
        assert not rows[name].get("not_measured") and rows[name]["n"] == (
            1 if "idle" in name else len(g["rounds"])), rows[name]
    for label in GATEWAY_MODES:
        for pct in ("p50", "p99"):
            d = rows[f"LLM call {pct}, direct (gateway's user -> fake LLM), {label}"]["values"]
            w = rows[f"LLM call {pct}, through the gateway (sandbox -> gateway), {label}"]["values"]
            added = rows[f"gateway added latency {pct}, {label}"]["values"]
            ratio = rows[f"gateway / direct latency {pct}, {label}"]["values"]
            assert added == pytest.approx([b - a for a, b in zip(d, w)]), (pct, label)
            assert ratio == pytest.approx([b / a for a, b in zip(d, w)]), (pct, label)
    assert "## The LLM gateway's cost" in md and "**LLM gateway**" in md
    # The keys went to the clients on stdin: neither is anywhere in the result or the report.
    lab_dir = ROOT / f".{result['lab']}"
    text = json.dumps(result) + md
    for name in ("llm-api-key", "llm-gateway-key"):
        key = (lab_dir / name).read_text().strip() if (lab_dir / name).exists() else ""
        assert not key or key not in text, f"{name} leaked into the benchmark's output"


def test_report_has_table_and_machine(smoke):
    result, md = smoke
    assert "| figure | median | spread (min-max) | n | target | met? |" in md
    for key in ("cpu_model", "cores", "ram_gib", "kernel", "docker", "date"):
        assert result["machine"].get(key) not in (None, "", "unknown"), key
    for label in ("CPU:", "RAM:", "OS / kernel:", "Docker:", "Date:"):
        assert label in md


def test_the_report_is_the_result_rendered(smoke, json_path, tmp_path):
    """The Markdown the run wrote is exactly what the renderer makes of the JSON result alone."""
    _, md = smoke
    out = tmp_path / "again.md"
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "tools" / "bench" / "report.py"),
                    str(json_path), "--out", str(out)], check=True, timeout=60)
    assert out.read_text() == md


def test_dropped_egress_alert_measured(smoke):
    """A real connection from the server host to the decoy, dropped by the egress firewall,
    logged by ulogd2 and alerted by alertd: every repetition found its drop log line and its
    alert, each on a port of its own, after the router reached the decoy there."""
    result, md = smoke
    a = result["alerts"]
    assert not a.get("egress_skipped"), a.get("egress_skipped")
    rows = {r["figure"]: r for r in result["figures"]}
    r = rows["dropped egress -> alert (blocked connect -> log sink)"]
    assert not r["not_measured"] and r["n"] == len(a["egress"]) >= 1 and r["met"] in (True, False), r
    for x in a["egress"]:
        assert x["found"] and x["logged"] and 0 <= x["logged_s"] <= x["seen_s"], x
    ports = [x["port"] for x in a["egress"]] + a["egress_unlogged"]
    assert len(set(ports)) == len(ports), f"a port used twice: {ports}"
    assert f"| {r['figure']} | {r['median']:.2f} s | " in md
    assert rows["dropped egress -> drop log line (ulogd2)"]["n"] == r["n"]
