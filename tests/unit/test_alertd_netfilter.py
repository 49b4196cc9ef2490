"""alertd's netfilter and audit_tamper watchers on real audit log lines.

tests/unit/data/audit-netfilter.log holds lines captured from a Debian 12 host's audit log
(auditd log_format ENRICHED, so each line carries the 0x1d-separated interpretation) with
netfilter rules like the auditd role's loaded:
  serial 5949: `nft add table inet intruder` run as /usr/sbin/nft (key firewall)
  serial 5952: the same from a private nft copy without a login session (airlock_egress_refresh)
  serial 6236: dockerd running iptables (xtables-nft-multi) on a container start (no key:
               the daemon rule was not loaded at capture time)
  CONFIG_CHANGE: a rule added, the same rule removed by auditctl -D, auditctl -e 0.
"""
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
alertd = load_module(ROOT / "roles" / "monitoring" / "files" / "alertd.py")

# split("\n"), not splitlines(): the 0x1d separator counts as a line break for str.splitlines
LINES = [ln for ln in (Path(__file__).parent / "data" / "audit-netfilter.log").read_text(encoding="utf-8").split("\n") if ln]


def event(serial):
    return [ln for ln in LINES if f":{serial}):" in ln]


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def watcher(t, **kw):
    w = {"type": t, "source": {"file": "/var/log/audit/audit.log"}, **kw}
    cfg = alertd.validate_config({"host": "h1", "watchers": [w], "sinks": [{"type": "log", "path": "/tmp/x"}]})
    return alertd.LineWatcher(cfg["watchers"][0], "h1", Clock())


def feed(w, lines):
    return [a for a in (w.handle(ln) for ln in lines) if a]


def test_the_captured_lines_are_enriched_raw_records():
    assert any("\x1d" in ln for ln in LINES), "the fixture lost its ENRICHED part"
    assert len(event(5949)) == 4 and event(5949)[0].startswith("type=NETFILTER_CFG")


def test_intruder_nft_alerts_critical_with_the_syscall_records_exe_auid_and_key():
    w = watcher("netfilter")
    alerts = feed(w, event(5949))
    assert len(alerts) == 1
    a = alerts[0]
    assert a["severity"] == "critical" and a["type"] == "netfilter"
    assert a["key"] == "netfilter:firewall:unset:/usr/sbin/nft"
    d = a["details"]
    assert d["correlated"] and d["event"] == "1796064008.195:5949" and d["keys"] == ["firewall"]
    assert d["changes"] == [{"table": "intruder:2", "family": "1", "entries": "1", "op": "nft_register_table"}]
    assert "intruder (nft_register_table)" in a["summary"]


def test_the_alert_waits_for_the_syscall_record():
    w = watcher("netfilter")
    cfg_line, syscall = event(5949)[:2]
    assert w.handle(cfg_line) is None  # NETFILTER_CFG first: held until its SYSCALL record
    assert w.flush() == []  # within the settle time
    assert w.handle(syscall)["details"]["correlated"]
    assert w.pending == {}


def test_refresh_key_is_quiet_beside_the_same_change_without_it():
    # Positive control: the very same records with the key replaced alert.
    w = watcher("netfilter")
    assert feed(w, event(5952)) == []
    assert w.pending == {}
    swapped = [ln.replace('key="airlock_egress_refresh"', 'key="firewall"') for ln in event(5952)]
    assert swapped != event(5952)
    assert [a["severity"] for a in feed(watcher("netfilter"), swapped)] == ["critical"]


def test_expected_keys_are_configurable():
    w = watcher("netfilter", expected_keys=["firewall"])
    assert feed(w, event(5949)) == []
    assert [a["severity"] for a in feed(w, event(5952))] == ["critical"]


def test_docker_iptables_without_key_is_critical_and_with_the_daemon_key_low():
    docker = event(6236)
    plain = feed(watcher("netfilter", low_keys=["netfilter_daemon"]), docker)
    assert [a["severity"] for a in plain] == ["critical"]
    assert plain[0]["details"]["exe"] == "/usr/sbin/xtables-nft-multi" and plain[0]["details"]["keys"] == []
    keyed = [ln.replace("key=(null)", 'key="netfilter_daemon"') for ln in docker]
    assert keyed != docker
    low = feed(watcher("netfilter", low_keys=["netfilter_daemon"]), keyed)
    assert [a["severity"] for a in low] == ["warning"]
    assert low[0]["key"] == "netfilter:netfilter_daemon:unset:/usr/sbin/xtables-nft-multi"


def test_repeated_docker_runs_share_one_dedup_key():
    keyed = [ln.replace("key=(null)", 'key="netfilter_daemon"') for ln in event(6236)]
    w = watcher("netfilter", low_keys=["netfilter_daemon"])
    second = [ln.replace(":6236)", ":6240)").replace("table=nat:59", "table=filter:60") for ln in keyed]
    a, b = feed(w, keyed) + feed(w, second)
    assert a["key"] == b["key"]
    d = alertd.Deduper(300, Clock())
    assert d.admit(a) and not d.admit(b)


def test_netfilter_change_without_syscall_record_alerts_after_settle():
    w = watcher("netfilter", settle=2)
    assert w.handle(event(5952)[0]) is None  # the refresh's NETFILTER_CFG, its SYSCALL never comes
    assert w.flush() == []
    w.clock.t += 2
    (a,) = w.flush()
    assert a["severity"] == "critical" and not a["details"]["correlated"] and a["details"]["exe"] == "anf-test-nft"
    assert w.pending == {}


def test_several_changes_of_one_event_make_one_alert():
    cfg_line, *rest = event(5949)
    second = cfg_line.replace("op=nft_register_table", "op=nft_register_chain")
    (a,) = feed(watcher("netfilter"), [cfg_line, second, *rest])
    assert [c["op"] for c in a["details"]["changes"]] == ["nft_register_table", "nft_register_chain"]


def test_other_records_are_ignored():
    w = watcher("netfilter")
    assert feed(w, [ln for ln in LINES if "NETFILTER_CFG" not in ln]) == []
    assert w.pending == {}


def test_audit_tamper_rule_removal_and_audit_off_alert_rule_addition_does_not():
    w = watcher("audit_tamper")
    add, remove, off = (ln for ln in LINES if ln.startswith("type=CONFIG_CHANGE"))
    assert w.handle(add) is None  # positive control below: the same record type alerts on remove
    r = w.handle(remove)
    assert r["severity"] == "critical" and r["key"] == "audit_tamper:remove_rule:unset"
    assert "rule removed (key firewall)" in r["summary"]
    e = w.handle(off)
    assert e["key"] == "audit_tamper:set:unset" and "auditing turned off" in e["summary"]
    assert w.handle(off.replace("audit_enabled=0 old=1", "audit_enabled=1 old=0")) is None
    refused = w.handle(off.replace(" res=1", " res=0"))
    assert "refused by the kernel" in refused["summary"]
    assert w.handle(event(5949)[0]) is None


@pytest.mark.parametrize("bad, where", [
    ({"expected_keys": "airlock_egress_refresh"}, "watchers[0].expected_keys"),
    ({"low_keys": ["a b"]}, "watchers[0].low_keys"),
    ({"low_keys": ["airlock_egress_refresh"]}, "in both expected_keys and low_keys"),
    ({"low_severity": "loud"}, "watchers[0].low_severity"),
    ({"settle": 0}, "watchers[0].settle"),
])
def test_netfilter_config_refused(bad, where):
    with pytest.raises(alertd.ConfigError, match=where.replace("[", r"\[").replace("]", r"\]")):
        watcher("netfilter", **bad)
