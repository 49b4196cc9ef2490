"""alertd's egress firewall watchers (roles/monitoring/files/alertd.py): egress_drift (the
repair lines of airlock-egress-sets) and maintenance_window (an alert while the window's
nft sets hold addresses). Plain Python: nft is replaced by canned `nft -j` output."""
import json
import subprocess
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
alertd = load_module(ROOT / "roles" / "monitoring" / "files" / "alertd.py")

REPAIR_LINE = ("AIRLOCK-EGRESS-DRIFT repaired by=timer chains=forward,input: the live table differed from "
               "/etc/airlock/egress.nft and was reloaded; chain forward: 8 rules live, 7 in the file; first "
               'difference at rule 1: live {"expr":[{"accept":null}]}')


def cfg(watchers):
    return alertd.validate_config({"host": "srv", "watchers": watchers, "sinks": [{"type": "log", "path": "/tmp/a.jsonl"}]})


def test_drift_watcher_defaults_and_alert():
    spec = cfg([{"type": "egress_drift", "source": {"journal": {"SYSLOG_IDENTIFIER": "airlock-egress-sets"}}}])["watchers"][0]
    assert spec["prefix"] == "AIRLOCK-EGRESS-DRIFT" and spec["severity"] == "critical"
    watcher = alertd.LineWatcher(spec, "srv")
    alert = watcher.handle(REPAIR_LINE, 1234.5)
    assert alert["type"] == "egress_drift" and alert["severity"] == "critical"
    assert alert["key"] == "egress_drift:forward,input"
    assert alert["details"]["by"] == "timer" and "rule 1" in alert["details"]["message"]
    assert "tampered" in alert["summary"] and "forward,input" in alert["summary"] and alert["event_ts"] == 1234.5


@pytest.mark.parametrize("line", [
    "maintenance window: closed",
    "AIRLOCK-EGRESS-RELOAD reloaded by=timer: the ruleset file changed since the table was verified; ...",
    "AIRLOCK-MAINTENANCE window opened until 2026-01-01T00:00:00+00:00 (1800 s): mirror",
])
def test_drift_watcher_ignores_other_lines(line):
    spec = cfg([{"type": "egress_drift", "source": {"file": "/var/log/x"}}])["watchers"][0]
    assert alertd.LineWatcher(spec, "srv").handle(line) is None


def test_drift_watcher_needs_a_source_and_prefix():
    with pytest.raises(alertd.ConfigError, match=r"watchers\[0\].source"):
        cfg([{"type": "egress_drift"}])
    with pytest.raises(alertd.ConfigError, match=r"watchers\[0\].prefix"):
        cfg([{"type": "egress_drift", "source": {"file": "/x"}, "prefix": " "}])


def nft_runner(sets: dict, rc: int = 0):
    """A stand-in for `nft -j list set inet airlock NAME`: sets maps NAME to its elem list."""
    calls = []

    def runner(argv):
        calls.append(argv)
        name = argv[-1]
        if rc or name not in sets:
            return subprocess.CompletedProcess(argv, 1, "", "Error: No such file or directory")
        body = {"family": "inet", "name": name, "table": "airlock", "type": ["ipv4_addr", "inet_service"],
                "flags": ["interval", "timeout"]}
        if sets[name]:
            body["elem"] = sets[name]
        return subprocess.CompletedProcess(argv, 0, json.dumps({"nftables": [{"metainfo": {}}, {"set": body}]}), "")
    runner.calls = calls
    return runner


def window_spec(tmp_path, **kw):
    return cfg([{"type": "maintenance_window", "state_file": str(tmp_path / "state.json"), **kw}])["watchers"][0]


def timed(addr, port, expires):
    return {"elem": {"val": {"concat": [addr, port]}, "timeout": 1800, "expires": expires}}


def test_window_watcher_alerts_while_open_with_the_deadline(tmp_path):
    spec = window_spec(tmp_path)
    assert spec["interval"] == 60 and spec["severity"] == "warning" and spec["table"] == "inet airlock"
    (tmp_path / "state.json").write_text(json.dumps({"names": ["debian-mirror"], "deadline": 1000.0 + 600}))
    runner = nft_runner({"maintenance_v4": [timed("192.0.2.1", 443, 600), timed("192.0.2.2", 80, 590)], "maintenance_v6": []})
    alerts = alertd.check_maintenance(spec, "srv", runner, now=1000.0)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["key"] == "maintenance_window:open" and alert["type"] == "maintenance_window"
    assert alert["details"] == {"names": ["debian-mirror"], "entries": 2, "until": 1600}
    assert "debian-mirror" in alert["summary"] and "until 1970-01-01T00:26:40+00:00" in alert["summary"]
    assert [c[-1] for c in runner.calls] == ["maintenance_v4", "maintenance_v6"]


def test_window_watcher_silent_when_closed_or_no_firewall(tmp_path):
    spec = window_spec(tmp_path)
    assert alertd.check_maintenance(spec, "srv", nft_runner({"maintenance_v4": [], "maintenance_v6": []})) == []
    assert alertd.check_maintenance(spec, "srv", nft_runner({}, rc=1)) == []  # the proxy: no table

    def no_nft(argv):
        raise FileNotFoundError("nft")
    assert alertd.check_maintenance(spec, "srv", no_nft) == []


def test_window_watcher_open_without_expiry(tmp_path):
    spec = window_spec(tmp_path)
    (tmp_path / "state.json").write_text(json.dumps(["old-format"]))
    alerts = alertd.check_maintenance(spec, "srv", nft_runner({"maintenance_v4": [{"concat": ["192.0.2.1", 443]}]}))
    assert alerts and alerts[0]["details"]["until"] is None and "without an expiry" in alerts[0]["summary"]
    assert alerts[0]["details"]["names"] == ["old-format"]


def test_window_alert_repeats_every_dedup_window_while_open(tmp_path):
    spec = window_spec(tmp_path)
    runner = nft_runner({"maintenance_v4": [timed("192.0.2.1", 443, 900)]})
    clock = type("Clock", (), {"t": 0.0, "__call__": lambda self: self.t})()
    dedup = alertd.Deduper(300, clock)
    sent = []
    for minute in range(11):  # the poller every 60 s for 10 minutes
        clock.t = minute * 60.0
        sent += [a for a in alertd.check_maintenance(spec, "srv", runner) if dedup.admit(a)]
    assert len(sent) == 3  # at 0, 5 and 10 minutes


@pytest.mark.parametrize("bad,match", [
    ({"interval": 0}, r"interval"),
    ({"table": "airlock"}, r"table"),
    ({"sets": []}, r"sets"),
    ({"sets": ["x; rm"]}, r"sets"),
    ({"state_file": "run/x"}, r"state_file"),
])
def test_window_watcher_config_errors(bad, match):
    with pytest.raises(alertd.ConfigError, match=match):
        cfg([{"type": "maintenance_window", **bad}])


# ----------------------------------------------------------------------------- dropped egress
# A line of the egress firewall's drop log as ulogd2's LOGEMU writes it (captured from ulogd
# 2.0.8 reading the drop rules' NFLOG group): the nft prefix, then the packet's fields.
ULOGD_LINE = ("Nov 30 12:04:42 server AIRLOCK-EGRESS-DROP  IN= OUT=eth0 MAC= SRC=10.213.5.10 DST=10.213.5.30 LEN=60 "
              "TOS=00 PREC=0x00 TTL=64 ID=33777 DF PROTO=TCP SPT=44680 DPT=9000 SEQ=3271230031 ACK=0 WINDOW=64240 "
              "SYN URGP=0 UID=0 GID=0 MARK=0x0 ")


def test_egress_drop_watcher_reads_the_drop_logs_lines():
    spec = cfg([{"type": "egress_drop", "source": {"file": "/var/log/ulog/airlock-egress-drops.log"}}])["watchers"][0]
    alert = alertd.LineWatcher(spec, "srv").handle(ULOGD_LINE)
    assert alert["key"] == "egress_drop:10.213.5.10:10.213.5.30:TCP:9000" and alert["severity"] == "critical"
    assert "10.213.5.30" in alert["summary"] and alert["details"]["out"] == "eth0"
    ingress = ULOGD_LINE.replace("AIRLOCK-EGRESS-DROP", "AIRLOCK-INGRESS-DROP")
    assert alertd.LineWatcher(spec, "srv").handle(ingress) is None, "an inbound drop is not an egress alert"


def test_monitoring_follows_the_file_the_drop_logger_writes():
    """monitoring's default egress source is the egress_firewall role's drop log, which its
    ulogd2 configuration writes from the NFLOG group the drop rules log to."""
    import yaml  # noqa: PLC0415

    monitoring = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text())
    firewall = yaml.safe_load((ROOT / "roles/egress_firewall/vars/main.yml").read_text())
    defaults = yaml.safe_load((ROOT / "roles/egress_firewall/defaults/main.yml").read_text())
    assert monitoring["monitoring_egress_source"] == {"file": firewall["__egress_firewall_drop_log"]}
    assert monitoring["monitoring_egress_prefix"] == defaults["egress_firewall_log_prefix"]
    ulogd = (ROOT / "roles/egress_firewall/templates/ulogd.conf.j2").read_text()
    assert 'file="{{ __egress_firewall_drop_log }}"' in ulogd and "group={{ egress_firewall_log_group }}" in ulogd
    nft = (ROOT / "roles/egress_firewall/templates/egress.nft.j2").read_text()
    assert nft.count("log group {{ egress_firewall_log_group }} prefix") == 2
