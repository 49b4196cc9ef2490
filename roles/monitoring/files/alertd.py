#!/usr/bin/env python3
"""airlock alertd: a small host alert pipeline (Python 3 standard library; boto3 optional).

Watches log files (tail -F semantics: follows rotation and truncation), the systemd journal
(`journalctl -f -o json`) and periodic checks, turns matching events into alerts, suppresses
repeats of the same alert key within a window, and delivers alerts to sinks: a JSON-lines
log file, a webhook (JSON POST), e-mail (SMTP) and AWS SNS.

Watchers:  fail2ban (bans), egress_drop (the egress firewall's drop log: its prefix),
           egress_drift (the egress firewall's table was tampered with and repaired:
           AIRLOCK-EGRESS-DRIFT lines of airlock-egress-sets), auth_burst (nginx basic-auth
           failures per client within a window), audit (audit records carrying chosen keys),
           netfilter (NETFILTER_CFG audit records: any change of the kernel's netfilter
           tables, correlated with the SYSCALL record of the same event for exe/auid/key;
           expected keys are quiet, low keys alert at a lower severity, the rest critical),
           audit_tamper (CONFIG_CHANGE audit records that remove rules or turn auditing off),
           service_failure (failed systemd units), cert_expiry (days left on certificate
           files), maintenance_window (the egress firewall's maintenance window is open:
           its nft sets hold addresses; an alert every dedup window while it stays open).

Usage: alertd.py --config FILE            run
       alertd.py --check-config FILE      validate a configuration and exit (0 valid, 2 not)
       alertd.py --config FILE --test-alert   send one test alert to every sink and exit
Secrets are read from the environment (names given in the configuration), never from it.
"""
import argparse
import collections
import datetime
import json
import os
import queue
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from email.message import EmailMessage

SEVERITIES = {"info": 0, "warning": 1, "critical": 2}
WATCHER_TYPES = ("fail2ban", "egress_drop", "egress_drift", "auth_burst", "audit", "netfilter", "audit_tamper",
                 "service_failure", "cert_expiry", "maintenance_window", "llm_gateway_refused")
SINK_TYPES = ("log", "webhook", "email", "sns")
LINE_WATCHERS = ("fail2ban", "egress_drop", "egress_drift", "auth_burst", "audit", "netfilter", "audit_tamper",
                 "llm_gateway_refused")
SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")


def log(msg):
    print(f"alertd: {msg}", file=sys.stderr, flush=True)


class ConfigError(ValueError):
    pass


# --------------------------------------------------------------------------- configuration
def _need(cond, msg):
    if not cond:
        raise ConfigError(msg)


def _check_source(where, src, allow_journal=True):
    _need(isinstance(src, dict) and len(src) == 1 and ("file" in src or "journal" in src),
          f"{where}.source must be {{'file': PATH}} or {{'journal': {{FIELD: VALUE}}}}")
    if "file" in src:
        _need(isinstance(src["file"], str) and src["file"].startswith("/"), f"{where}.source.file must be an absolute path")
    else:
        _need(allow_journal, f"{where}.source.journal is not supported here")
        _need(isinstance(src["journal"], dict), f"{where}.source.journal must be a mapping of journal fields")


def check_webhook_url(url):
    """True if url is an absolute http(s) URL with a host and no whitespace."""
    if not isinstance(url, str) or re.search(r"\s", url):
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def validate_config(cfg):
    """Raise ConfigError naming the offending setting; return cfg with defaults filled in."""
    _need(isinstance(cfg, dict), "configuration must be a JSON object")
    cfg.setdefault("host", socket.gethostname())
    cfg.setdefault("dedup_window", 300)
    cfg.setdefault("poll_interval", 0.5)
    _need(isinstance(cfg["dedup_window"], (int, float)) and cfg["dedup_window"] >= 0, "dedup_window must be a number >= 0")
    _need(isinstance(cfg["poll_interval"], (int, float)) and 0 < cfg["poll_interval"] <= 10, "poll_interval must be in (0, 10]")
    watchers = cfg.setdefault("watchers", [])
    sinks = cfg.setdefault("sinks", [])
    _need(isinstance(watchers, list), "watchers must be a list")
    _need(isinstance(sinks, list) and sinks, "sinks must be a non-empty list")
    for i, w in enumerate(watchers):
        where = f"watchers[{i}]"
        _need(isinstance(w, dict), f"{where} must be an object")
        t = w.get("type")
        _need(t in WATCHER_TYPES, f"{where}.type: unknown watcher type {t!r} (known: {', '.join(WATCHER_TYPES)})")
        sev = w.setdefault("severity", {"fail2ban": "warning", "auth_burst": "warning", "cert_expiry": "warning",
                                        "maintenance_window": "warning"}.get(t, "critical"))
        _need(sev in SEVERITIES, f"{where}.severity must be one of {', '.join(SEVERITIES)}")
        if t in LINE_WATCHERS:
            _check_source(where, w.get("source"))
        if t == "egress_drop":
            w.setdefault("prefix", "AIRLOCK-EGRESS-DROP")
            _need(isinstance(w["prefix"], str) and w["prefix"].strip(), f"{where}.prefix must be a non-empty string")
        if t == "egress_drift":
            w.setdefault("prefix", "AIRLOCK-EGRESS-DRIFT")
            _need(isinstance(w["prefix"], str) and w["prefix"].strip(), f"{where}.prefix must be a non-empty string")
        if t == "maintenance_window":
            w.setdefault("interval", 60)
            w.setdefault("table", "inet airlock")
            w.setdefault("sets", ["maintenance_v4", "maintenance_v6"])
            w.setdefault("state_file", "/run/airlock-egress/maintenance-open.json")
            _need(isinstance(w["interval"], (int, float)) and w["interval"] > 0, f"{where}.interval must be > 0")
            _need(isinstance(w["table"], str) and re.match(r"^(inet|ip|ip6) [A-Za-z0-9_-]+$", w["table"]),
                  f"{where}.table must be 'FAMILY NAME' such as 'inet airlock'")
            _need(isinstance(w["sets"], list) and w["sets"] and all(isinstance(s, str) and re.match(r"^[A-Za-z0-9_-]+$", s) for s in w["sets"]),
                  f"{where}.sets must be a non-empty list of nft set names")
            _need(isinstance(w["state_file"], str) and w["state_file"].startswith("/"), f"{where}.state_file must be an absolute path")
        if t == "auth_burst":
            w.setdefault("window", 60)
            w.setdefault("threshold", 5)
            _need(isinstance(w["window"], (int, float)) and w["window"] > 0, f"{where}.window must be > 0 seconds")
            _need(isinstance(w["threshold"], int) and w["threshold"] >= 1, f"{where}.threshold must be an integer >= 1")
        if t == "audit":
            _need(isinstance(w.get("keys"), list) and w["keys"] and all(isinstance(k, str) and k for k in w["keys"]),
                  f"{where}.keys must be a non-empty list of audit keys")
        if t == "netfilter":
            w.setdefault("expected_keys", ["airlock_egress_refresh"])
            w.setdefault("low_keys", [])
            w.setdefault("low_severity", "warning")
            w.setdefault("settle", 2)
            for opt in ("expected_keys", "low_keys"):
                _need(isinstance(w[opt], list) and all(isinstance(k, str) and re.match(r"^[A-Za-z0-9_-]+$", k) for k in w[opt]),
                      f"{where}.{opt} must be a list of audit keys (letters, digits, _ and -)")
            _need(not set(w["expected_keys"]) & set(w["low_keys"]), f"{where}: a key is in both expected_keys and low_keys")
            _need(w["low_severity"] in SEVERITIES, f"{where}.low_severity must be one of {', '.join(SEVERITIES)}")
            _need(isinstance(w["settle"], (int, float)) and 0 < w["settle"] <= 60, f"{where}.settle must be in (0, 60] seconds")
        if t == "service_failure":
            w.setdefault("interval", 5)
            w.setdefault("units", [])
            _need(isinstance(w["interval"], (int, float)) and w["interval"] > 0, f"{where}.interval must be > 0")
            _need(isinstance(w["units"], list), f"{where}.units must be a list (empty: every unit)")
        if t == "cert_expiry":
            w.setdefault("interval", 3600)
            w.setdefault("days", 21)
            w.setdefault("critical_days", 7)
            _need(isinstance(w.get("paths"), list) and w["paths"], f"{where}.paths must be a non-empty list of PEM files")
            _need(isinstance(w["days"], int) and w["days"] >= 1, f"{where}.days must be an integer >= 1")
            _need(isinstance(w["interval"], (int, float)) and w["interval"] > 0, f"{where}.interval must be > 0")
    for i, s in enumerate(sinks):
        where = f"sinks[{i}]"
        _need(isinstance(s, dict), f"{where} must be an object")
        t = s.get("type")
        _need(t in SINK_TYPES, f"{where}.type: unknown sink type {t!r} (known: {', '.join(SINK_TYPES)})")
        s.setdefault("min_severity", "info")
        _need(s["min_severity"] in SEVERITIES, f"{where}.min_severity must be one of {', '.join(SEVERITIES)}")
        s.setdefault("timeout", 10)
        s.setdefault("retries", 3)
        if t == "log":
            _need(isinstance(s.get("path"), str) and s["path"].startswith("/"), f"{where}.path must be an absolute path")
        elif t == "webhook":
            _need(check_webhook_url(s.get("url")), f"{where}.url: malformed webhook URL {s.get('url')!r} (need http(s)://host/...)")
            _need(isinstance(s.setdefault("headers", {}), dict), f"{where}.headers must be a mapping")
        elif t == "email":
            _need(isinstance(s.get("host"), str) and s["host"], f"{where}.host (SMTP server) is required")
            s.setdefault("port", 587)
            s.setdefault("starttls", True)
            s.setdefault("ssl", False)
            _need(isinstance(s.get("from"), str) and "@" in s["from"], f"{where}.from must be an e-mail address")
            _need(isinstance(s.get("to"), list) and s["to"] and all("@" in a for a in s["to"]),
                  f"{where}.to must be a non-empty list of e-mail addresses")
        elif t == "sns":
            _need(isinstance(s.get("topic_arn"), str) and SNS_ARN.match(s["topic_arn"]),
                  f"{where}.topic_arn: malformed SNS topic ARN {s.get('topic_arn')!r}")
            s.setdefault("region", s["topic_arn"].split(":")[3])
    return cfg


def load_config(path):
    with open(path, encoding="utf-8") as f:
        try:
            cfg = json.load(f)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON: {e}") from e
    return validate_config(cfg)


# --------------------------------------------------------------------------- alerts
def make_alert(host, atype, key, severity, summary, details=None, event_time=None):
    now = time.time()
    return {
        "id": str(uuid.uuid4()),
        "time": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "ts": now,
        "event_ts": event_time if event_time is not None else now,
        "host": host,
        "type": atype,
        "key": key,
        "severity": severity,
        "summary": summary,
        "details": details or {},
        "suppressed": 0,
    }


class Deduper:
    """Suppresses an alert whose key was sent less than `window` seconds ago."""

    def __init__(self, window, clock=time.monotonic):
        self.window = window
        self.clock = clock
        self.last = {}
        self.suppressed = collections.Counter()
        self.lock = threading.Lock()

    def admit(self, alert):
        key = alert["key"]
        with self.lock:
            now = self.clock()
            last = self.last.get(key)
            if last is not None and now - last < self.window:
                self.suppressed[key] += 1
                return False
            self.last[key] = now
            alert["suppressed"] = self.suppressed.pop(key, 0)
            if len(self.last) > 10000:  # forget keys older than the window
                self.last = {k: t for k, t in self.last.items() if now - t < self.window}
            return True


# --------------------------------------------------------------------------- parsers
F2B_BAN = re.compile(r"\[(?P<jail>[^\]]+)\]\s+Ban\s+(?P<ip>[0-9A-Fa-f:.]+)")
KV = re.compile(r"\b(SRC|DST|PROTO|SPT|DPT|OUT|IN)=(\S*)")
NGINX_AUTH = re.compile(
    r'user "(?P<user>[^"]*)"(?::\s*password mismatch| was not found in "[^"]*")'
    r'.*?client: (?P<client>[0-9A-Fa-f:.]+)')
AUDIT_KEY = re.compile(r'\bkey=(?:"(?P<q>[^"]*)"|(?P<h>[0-9A-Fa-f]+)\b)')
AUDIT_TYPE = re.compile(r"\btype=(?P<type>[A-Z_]+)")
AUDIT_FIELD = re.compile(r'\b(auid|uid|exe|comm|AUID|UID)=("[^"]*"|\S+)')
AUDIT_SERIAL = re.compile(r"\bmsg=audit\((?P<time>[0-9.]+):(?P<serial>[0-9]+)\)")
AUDIT_KV = re.compile(r'\b([a-z_]+)=("[^"]*"|[^\s\x1d]+)')


def parse_fail2ban(text):
    m = F2B_BAN.search(text)
    if not m or " Unban " in text or "already banned" in text:
        return None
    return {"jail": m.group("jail"), "ip": m.group("ip")}


def parse_egress(text, prefix):
    if prefix not in text:
        return None
    fields = dict(KV.findall(text.split(prefix, 1)[1]))
    return {k.lower(): v for k, v in fields.items()}


DRIFT_KV = re.compile(r"\b(by|chains)=(\S+?):?(?=\s|$)")


def parse_egress_drift(text, prefix):
    """airlock-egress-sets' repair line: 'PREFIX repaired by=timer chains=forward: ...; details'."""
    if prefix not in text:
        return None
    rest = text.split(prefix, 1)[1].strip()
    fields = dict(DRIFT_KV.findall(rest))
    return {"by": fields.get("by", "?"), "chains": fields.get("chains", "-"), "message": rest[:1000]}


def parse_gateway_refusal(text):
    """A line of the LLM gateway's request log that its auth hook wrote for a refused request
    ({"refused": reason, "status", "path", "client", ...}); None for any other line."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not record.get("refused"):
        return None
    return {k: record.get(k) for k in ("refused", "status", "path", "method", "client", "key_alias", "time")}


def parse_nginx_auth(text):
    m = NGINX_AUTH.search(text)
    if not m:
        return None
    reason = "password mismatch" if "password mismatch" in text else "unknown user"
    return {"user": m.group("user"), "client": m.group("client"), "reason": reason}


def parse_audit(text, keys):
    m = AUDIT_KEY.search(text)
    if not m:
        return None
    if m.group("q") is not None:
        found = [m.group("q")]
    else:  # several keys are hex encoded, separated by 0x01
        try:
            found = bytes.fromhex(m.group("h")).decode().split("\x01")
        except ValueError:
            return None
    hit = [k for k in found if k in keys]
    if not hit:
        return None
    t = AUDIT_TYPE.search(text)
    fields = {k: v.strip('"') for k, v in AUDIT_FIELD.findall(text.replace("\x1d", " "))}
    return {"key": hit[0], "record": t.group("type") if t else "", "auid": fields.get("AUID", fields.get("auid", "")),
            "uid": fields.get("UID", fields.get("uid", "")), "exe": fields.get("exe", ""), "comm": fields.get("comm", "")}


def audit_record(text):
    """(type, 'TIME:SERIAL', {field: value}) of one raw audit log line (the kernel's fields,
    before the ENRICHED part that follows a 0x1d byte), or None."""
    t = AUDIT_TYPE.search(text)
    m = AUDIT_SERIAL.search(text)
    if not t or not m:
        return None
    raw = text.split("\x1d", 1)[0][m.end():]
    fields = {k: v.strip('"') for k, v in AUDIT_KV.findall(raw)}
    return t.group("type"), f"{m.group('time')}:{m.group('serial')}", fields


def audit_keys(fields):
    """The keys of a SYSCALL record's key= field: [] for (null), several when hex encoded."""
    key = fields.get("key", "(null)")
    if key == "(null)":
        return []
    if re.fullmatch(r"[0-9A-Fa-f]+", key) and len(key) % 2 == 0:
        try:
            return bytes.fromhex(key).decode().split("\x01")
        except ValueError:
            pass
    return [key]


def parse_audit_tamper(text):
    """A CONFIG_CHANGE record that weakens auditing: rules removed (auditctl -D / -d / -W),
    auditing turned off (-e 0), or the failure mode set to silent (-f 0); else None."""
    rec = audit_record(text)
    if not rec or rec[0] != "CONFIG_CHANGE":
        return None
    _, event, f = rec
    op = f.get("op", "")
    if op in ("remove_rule", "remove"):
        what = f"audit rule removed (key {f.get('key', '(null)')})"
    elif op == "set" and f.get("audit_enabled") == "0":
        what = "auditing turned off (audit_enabled=0)"
    elif op == "set" and f.get("audit_failure") == "0":
        what = "audit failure mode set to silent (audit_failure=0)"
    else:
        return None
    return {"event": event, "op": op, "what": what, "auid": f.get("auid", ""), "key": f.get("key", ""),
            "res": f.get("res", "")}


def cert_not_after(path):
    """Expiry of the first certificate in a PEM file, as a UNIX time."""
    try:
        info = ssl._ssl._test_decode_cert(path)  # pylint: disable=protected-access
        return ssl.cert_time_to_seconds(info["notAfter"])
    except (AttributeError, ValueError, KeyError, ssl.SSLError):
        out = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", path],
                             capture_output=True, text=True, check=True).stdout
        return ssl.cert_time_to_seconds(out.strip().split("=", 1)[1])


# --------------------------------------------------------------------------- watchers
class LineWatcher:
    """Turns one line (or journal MESSAGE) into zero or one alert."""

    def __init__(self, spec, host, clock=time.monotonic):
        self.spec = spec
        self.type = spec["type"]
        self.host = host
        self.clock = clock
        self.hits = collections.defaultdict(collections.deque)  # auth_burst: client -> times
        self.pending = {}  # netfilter: 'TIME:SERIAL' -> (arrival, [NETFILTER_CFG fields])

    def _netfilter_alert(self, event, changes, syscall, event_time=None):
        """The alert for one audit event with NETFILTER_CFG records, or None when its SYSCALL
        record carries an expected key. No SYSCALL record at all (no audit context) alerts."""
        s = self.spec
        keys = audit_keys(syscall) if syscall else []
        if set(keys) & set(s["expected_keys"]):
            return None
        low = bool(keys) and set(keys) <= set(s["low_keys"])
        sc = syscall or {}
        exe = sc.get("exe") or changes[0].get("comm", "?")
        d = {"event": event, "keys": keys, "exe": exe, "auid": sc.get("auid", ""), "uid": sc.get("uid", ""),
             "pid": sc.get("pid", changes[0].get("pid", "")), "ppid": sc.get("ppid", ""), "comm": sc.get("comm", changes[0].get("comm", "")),
             "changes": [{k: c.get(k, "") for k in ("table", "family", "entries", "op")} for c in changes],
             "correlated": syscall is not None}
        tables = ", ".join(sorted({c.get("table", "?").rsplit(":", 1)[0] + f" ({c.get('op', '?')})" for c in changes}))
        auid = "unset" if d["auid"] in ("4294967295", "-1") else d["auid"] or "?"
        return make_alert(self.host, "netfilter", f"netfilter:{','.join(keys) or '-'}:{auid}:{exe}",
                          s["low_severity"] if low else s["severity"],
                          f"netfilter tables changed by {exe} (auid {auid}, key {','.join(keys) or 'none'}): {tables}",
                          d, event_time)

    def flush(self, force=False):
        """Alerts for NETFILTER_CFG events whose SYSCALL record did not arrive within `settle`."""
        if self.type != "netfilter" or not self.pending:
            return []
        now = self.clock()
        out = []
        for event, (arrived, changes) in list(self.pending.items()):
            if force or now - arrived >= self.spec["settle"]:
                del self.pending[event]
                alert = self._netfilter_alert(event, changes, None)
                if alert:
                    out.append(alert)
        return out

    def _handle_netfilter(self, text, event_time):
        rec = audit_record(text)
        if not rec:
            return None
        rtype, event, fields = rec
        if rtype == "NETFILTER_CFG":
            if event not in self.pending and len(self.pending) > 10000:
                self.pending.clear()  # never grows without bound
            self.pending.setdefault(event, (self.clock(), []))[1].append(fields)
        elif rtype == "SYSCALL" and event in self.pending:
            _, changes = self.pending.pop(event)
            return self._netfilter_alert(event, changes, fields, event_time)
        return None

    def handle(self, text, event_time=None):
        s, t = self.spec, self.type
        if t == "fail2ban":
            d = parse_fail2ban(text)
            if d:
                return make_alert(self.host, t, f"fail2ban:{d['jail']}:{d['ip']}", s["severity"],
                                  f"fail2ban banned {d['ip']} in jail {d['jail']}", d, event_time)
        elif t == "egress_drop":
            d = parse_egress(text, s["prefix"])
            if d is not None:
                return make_alert(self.host, t, f"egress_drop:{d.get('src', '?')}:{d.get('dst', '?')}:{d.get('proto', '?')}:{d.get('dpt', '')}",
                                  s["severity"], f"egress blocked: {d.get('src', '?')} -> {d.get('dst', '?')} {d.get('proto', '')}/{d.get('dpt', '')}",
                                  d, event_time)
        elif t == "egress_drift":
            d = parse_egress_drift(text, s["prefix"])
            if d is not None:
                return make_alert(self.host, t, f"egress_drift:{d['chains']}", s["severity"],
                                  f"egress firewall tampered with: the live ruleset differed (chains {d['chains']}) and was "
                                  f"reloaded by the {d['by']}", d, event_time)
        elif t == "auth_burst":
            d = parse_nginx_auth(text)
            if d:
                now = self.clock()
                hits = self.hits[d["client"]]
                hits.append(now)
                while hits and now - hits[0] > s["window"]:
                    hits.popleft()
                if len(hits) >= s["threshold"]:
                    d["failures"] = len(hits)
                    d["window"] = s["window"]
                    hits.clear()
                    return make_alert(self.host, t, f"auth_burst:{d['client']}", s["severity"],
                                      f"{d['failures']} failed proxy logins from {d['client']} within {s['window']} s (last user {d['user']!r})",
                                      d, event_time)
                if len(self.hits) > 10000:
                    self.hits = collections.defaultdict(collections.deque, {c: q for c, q in self.hits.items() if q and now - q[-1] <= s["window"]})
        elif t == "llm_gateway_refused":
            d = parse_gateway_refusal(text)
            if d:
                return make_alert(self.host, t, f"llm_gateway_refused:{d['client']}:{d['status']}", s["severity"],
                                  f"the LLM gateway refused a request from {d['client'] or '?'}: {d['status']} ({d['refused']}) "
                                  f"{d['method'] or ''} {d['path'] or ''}".rstrip(), d, event_time)
        elif t == "netfilter":
            return self._handle_netfilter(text, event_time)
        elif t == "audit_tamper":
            d = parse_audit_tamper(text)
            if d:
                auid = "unset" if d["auid"] in ("4294967295", "-1") else d["auid"] or "?"
                return make_alert(self.host, t, f"audit_tamper:{d['op']}:{auid}", s["severity"],
                                  f"audit weakened: {d['what']} by auid {auid}"
                                  + ("" if d["res"] in ("1", "yes", "success") else " (refused by the kernel)"),
                                  d, event_time)
        elif t == "audit":
            d = parse_audit(text, s["keys"])
            if d:
                return make_alert(self.host, t, f"audit:{d['key']}:{d['auid']}:{d['exe']}", s["severity"],
                                  f"audit event {d['key']} by auid {d['auid'] or '?'} ({d['exe'] or d['comm'] or d['record']})",
                                  d, event_time)
        return None


def failed_units(runner=None):
    runner = runner or (lambda argv: subprocess.run(argv, capture_output=True, text=True, check=False).stdout)
    out = runner(["systemctl", "list-units", "--state=failed", "--plain", "--no-legend", "--no-pager", "--full"])
    units = []
    for line in out.splitlines():
        parts = line.replace("\u25cf", " ").split()
        if parts:
            units.append(parts[0])
    return units


def check_services(spec, host, runner=None):
    alerts = []
    for unit in failed_units(runner):
        if spec["units"] and unit not in spec["units"]:
            continue
        alerts.append(make_alert(host, "service_failure", f"service_failure:{unit}", spec["severity"],
                                 f"systemd unit {unit} has failed", {"unit": unit}))
    return alerts


def check_certs(spec, host, now=None):
    now = now or time.time()
    alerts = []
    for path in spec["paths"]:
        try:
            days = (cert_not_after(path) - now) / 86400
        except (OSError, subprocess.CalledProcessError, ValueError, IndexError) as e:
            alerts.append(make_alert(host, "cert_expiry", f"cert_unreadable:{path}", "critical",
                                     f"certificate {path} cannot be read: {e}", {"path": path}))
            continue
        if days < spec["days"]:
            sev = "critical" if days < spec["critical_days"] else spec["severity"]
            alerts.append(make_alert(host, "cert_expiry", f"cert_expiry:{path}", sev,
                                     f"certificate {path} expires in {days:.1f} days" if days >= 0 else f"certificate {path} expired {-days:.1f} days ago",
                                     {"path": path, "days_left": round(days, 2)}))
    return alerts


def _nft_elements(set_obj):
    """(count, seconds until the last element expires or None) of one `nft -j list set` set."""
    expires = [e["elem"].get("expires") if isinstance(e, dict) and isinstance(e.get("elem"), dict) else None
               for e in set_obj.get("elem", []) or []]
    if not expires:
        return 0, None
    return len(expires), (None if None in expires else max(expires))


def check_maintenance(spec, host, runner=None, now=None):
    """An alert while the egress firewall's maintenance window is open (its sets hold
    addresses); none when the table or nft is absent (a host without the firewall)."""
    runner = runner or (lambda argv: subprocess.run(argv, capture_output=True, text=True, check=False))
    now = now or time.time()
    total, until, no_expiry = 0, [], False
    for name in spec["sets"]:
        try:
            proc = runner(["nft", "-j", "list", "set", *spec["table"].split(), name])
        except OSError:
            return []
        if proc.returncode != 0:
            continue
        for item in json.loads(proc.stdout).get("nftables", []):
            if "set" in item:
                count, expires = _nft_elements(item["set"])
                total += count
                if count and expires is None:
                    no_expiry = True
                elif count:
                    until.append(now + expires)
    if not total:
        return []
    names = []
    try:
        with open(spec["state_file"], encoding="utf-8") as f:
            state = json.load(f)
        names = state.get("names", []) if isinstance(state, dict) else list(state)
    except (OSError, ValueError):
        pass
    deadline = None if no_expiry or not until else max(until)
    when = ("without an expiry (closes only when closed or at the next refresh after its deadline)" if deadline is None else
            "until " + datetime.datetime.fromtimestamp(deadline, datetime.timezone.utc).isoformat(timespec="seconds"))
    return [make_alert(host, "maintenance_window", "maintenance_window:open", spec["severity"],
                       f"egress maintenance window open ({', '.join(names) or 'unnamed'}; {total} address/port entries) {when}",
                       {"names": names, "entries": total,
                        "until": None if deadline is None else round(deadline)})]


POLL_CHECKS = {"service_failure": check_services, "cert_expiry": check_certs, "maintenance_window": check_maintenance}


# --------------------------------------------------------------------------- inputs
class FileTail(threading.Thread):
    """tail -F: starts at the end, follows the name across rotation, rereads after truncation."""

    def __init__(self, path, emit, interval, stop, from_start=False):
        super().__init__(daemon=True, name=f"tail:{path}")
        self.path, self.emit, self.interval, self.stop = path, emit, interval, stop
        self.from_start = from_start

    def _open(self, at_end):
        f = open(self.path, "rb")  # noqa: SIM115 (kept open across iterations)
        if at_end:
            f.seek(0, os.SEEK_END)
        return f

    def run(self):
        f, buf, first = None, b"", True
        while not self.stop.is_set():
            if f is None:
                try:
                    f = self._open(at_end=first and not self.from_start)
                except OSError:
                    first = False  # a file that appears later is read from its start
                    self.stop.wait(self.interval)
                    continue
                first = False
            chunk = f.read(65536)
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self.emit(line.decode("utf-8", "replace"))
                continue
            try:
                st = os.stat(self.path)
                fst = os.fstat(f.fileno())
                if (st.st_ino, st.st_dev) != (fst.st_ino, fst.st_dev):
                    f.close()
                    f, buf = self._open(at_end=False), b""  # rotated: read the new file from its start
                    continue
                if st.st_size < f.tell():
                    f.seek(0)  # truncated
                    buf = b""
                    continue
            except OSError:
                pass  # renamed away, not yet recreated: keep the old handle, retry
            self.stop.wait(self.interval)
        if f:
            f.close()


class JournalFollow(threading.Thread):
    """journalctl -f -o json with field matches; restarts journalctl if it exits."""

    def __init__(self, match, emit, stop):
        super().__init__(daemon=True, name="journal")
        self.match, self.emit, self.stop = match, emit, stop
        self.proc = None

    def run(self):
        argv = ["journalctl", "-f", "-o", "json", "-n", "0", "--no-pager"] + [f"{k}={v}" for k, v in self.match.items()]
        while not self.stop.is_set():
            try:
                self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            except OSError as e:
                log(f"cannot start journalctl: {e}")
                self.stop.wait(10)
                continue
            for raw in self.proc.stdout:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                msg = entry.get("MESSAGE", "")
                if isinstance(msg, list):  # binary message: byte values
                    msg = bytes(msg).decode("utf-8", "replace")
                ts = entry.get("__REALTIME_TIMESTAMP")
                self.emit(msg, int(ts) / 1e6 if ts else None)
            self.proc.wait()
            self.stop.wait(2)

    def terminate(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()


# --------------------------------------------------------------------------- sinks
class Sink:
    def __init__(self, spec):
        self.spec = spec
        self.min = SEVERITIES[spec["min_severity"]]

    def wants(self, alert):
        return SEVERITIES[alert["severity"]] >= self.min

    def deliver(self, alert):
        raise NotImplementedError


class LogSink(Sink):
    def __init__(self, spec):
        super().__init__(spec)
        os.makedirs(os.path.dirname(spec["path"]), exist_ok=True)

    def deliver(self, alert):
        fd = os.open(self.spec["path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(alert, sort_keys=True) + "\n")


class WebhookSink(Sink):
    def deliver(self, alert):
        headers = {"Content-Type": "application/json", "User-Agent": "airlock-alertd"}
        headers.update(self.spec.get("headers", {}))
        token_env = self.spec.get("token_env")
        if token_env and os.environ.get(token_env):
            headers["Authorization"] = f"Bearer {os.environ[token_env]}"
        req = urllib.request.Request(self.spec["url"], data=json.dumps(alert).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.spec["timeout"]) as resp:  # noqa: S310 (http(s) only, validated)
            if resp.status >= 300:
                raise RuntimeError(f"webhook answered HTTP {resp.status}")


class EmailSink(Sink):
    def deliver(self, alert):
        s = self.spec
        msg = EmailMessage()
        msg["Subject"] = f"[airlock][{alert['severity']}] {alert['host']}: {alert['summary']}"[:200]
        msg["From"] = s["from"]
        msg["To"] = ", ".join(s["to"])
        msg.set_content(json.dumps(alert, indent=2, sort_keys=True))
        ctx = ssl.create_default_context()
        cls = smtplib.SMTP_SSL if s["ssl"] else smtplib.SMTP
        kwargs = {"context": ctx} if s["ssl"] else {}
        with cls(s["host"], s["port"], timeout=s["timeout"], **kwargs) as smtp:
            if s["starttls"] and not s["ssl"]:
                smtp.starttls(context=ctx)
            if s.get("username"):
                smtp.login(s["username"], os.environ.get(s.get("password_env", ""), ""))
            smtp.send_message(msg)


class SnsSink(Sink):
    def __init__(self, spec):
        super().__init__(spec)
        try:
            import boto3  # pylint: disable=import-outside-toplevel
            kwargs = {"region_name": spec["region"]}
            if spec.get("endpoint_url"):
                kwargs["endpoint_url"] = spec["endpoint_url"]
            self.client = boto3.client("sns", **kwargs)
        except ImportError:
            self.client = None
            if not shutil.which("aws"):
                raise ConfigError("sns sink needs boto3 (python3-boto3) or the aws CLI on the host") from None

    def deliver(self, alert):
        s = self.spec
        subject = re.sub(r"[^\x20-\x7e]", "?", f"[airlock][{alert['severity']}] {alert['host']}: {alert['summary']}")[:100]
        message = json.dumps(alert, sort_keys=True)
        if self.client is not None:
            self.client.publish(TopicArn=s["topic_arn"], Subject=subject, Message=message)
            return
        argv = ["aws", "sns", "publish", "--region", s["region"], "--topic-arn", s["topic_arn"],
                "--subject", subject, "--message", message]
        if s.get("endpoint_url"):
            argv += ["--endpoint-url", s["endpoint_url"]]
        subprocess.run(argv, capture_output=True, check=True, timeout=s["timeout"])


SINK_CLASSES = {"log": LogSink, "webhook": WebhookSink, "email": EmailSink, "sns": SnsSink}


class SinkWorker(threading.Thread):
    """One queue and thread per sink, so a slow or failing sink never delays the others."""

    def __init__(self, sink, sleep=time.sleep):
        super().__init__(daemon=True, name=f"sink:{sink.spec['type']}")
        self.sink, self.sleep = sink, sleep
        self.q = queue.Queue(maxsize=10000)
        self.delivered = 0
        self.failed = 0

    def submit(self, alert):
        if self.sink.wants(alert):
            try:
                self.q.put_nowait(alert)
            except queue.Full:
                self.failed += 1
                log(f"{self.sink.spec['type']} sink queue full; alert {alert['key']} dropped")

    def deliver_with_retries(self, alert):
        attempts = 1 + max(0, int(self.sink.spec["retries"]))
        for n in range(attempts):
            try:
                self.sink.deliver(alert)
                self.delivered += 1
                return True
            except Exception as e:  # noqa: BLE001 (any sink failure is retried, then logged)
                err = e
                if n + 1 < attempts:
                    self.sleep(min(2 ** n, 30))
        self.failed += 1
        log(f"{self.sink.spec['type']} sink failed for {alert['key']}: {err}")
        return False

    def run(self):
        while True:
            alert = self.q.get()
            if alert is None:
                return
            self.deliver_with_retries(alert)
            self.q.task_done()


# --------------------------------------------------------------------------- the daemon
class Alertd:
    def __init__(self, cfg, clock=time.monotonic):
        self.cfg = cfg
        self.host = cfg["host"]
        self.dedup = Deduper(cfg["dedup_window"], clock)
        self.workers = [SinkWorker(SINK_CLASSES[s["type"]](s)) for s in cfg["sinks"]]
        self.stop = threading.Event()
        self.events = queue.Queue()
        self.threads = []
        self.line_watchers = []

    def dispatch(self, alert):
        if alert is None or not self.dedup.admit(alert):
            return False
        for w in self.workers:
            w.submit(alert)
        return True

    def _line_input(self, watcher):
        src = watcher.spec["source"]
        if "file" in src:
            return FileTail(src["file"], lambda line: self.events.put((watcher, line, None)), self.cfg["poll_interval"], self.stop)
        return JournalFollow(src["journal"], lambda msg, ts: self.events.put((watcher, msg, ts)), self.stop)

    def _poller(self, spec):
        def loop():
            while not self.stop.is_set():
                try:
                    alerts = POLL_CHECKS[spec["type"]](spec, self.host)
                    for a in alerts:
                        self.events.put((None, a, None))
                except Exception as e:  # noqa: BLE001 (a failing check must not stop the daemon)
                    log(f"{spec['type']} check failed: {e}")
                self.stop.wait(spec["interval"])
        return threading.Thread(target=loop, daemon=True, name=f"poll:{spec['type']}")

    def start(self):
        for w in self.workers:
            w.start()
        for spec in self.cfg["watchers"]:
            if spec["type"] in LINE_WATCHERS:
                watcher = LineWatcher(spec, self.host)
                self.line_watchers.append(watcher)
                t = self._line_input(watcher)
            else:
                t = self._poller(spec)
            t.start()
            self.threads.append(t)
        log(f"watching {len(self.cfg['watchers'])} sources, {len(self.workers)} sinks")

    def run_forever(self):
        self.start()
        while not self.stop.is_set():
            for watcher in self.line_watchers:  # events whose last record never came (netfilter)
                for alert in watcher.flush():
                    self.dispatch(alert)
            try:
                watcher, item, ts = self.events.get(timeout=1)
            except queue.Empty:
                continue
            try:
                alert = item if watcher is None else watcher.handle(item, ts)
                self.dispatch(alert)
            except Exception as e:  # noqa: BLE001 (one bad line must not stop the daemon)
                log(f"error handling event: {e}")
        self.shutdown()

    def shutdown(self, timeout=10):
        self.stop.set()
        for t in self.threads:
            if isinstance(t, JournalFollow):
                t.terminate()
        for w in self.workers:
            w.q.put(None)
        for w in self.workers:
            w.join(timeout)


def main(argv=None):
    p = argparse.ArgumentParser(description="airlock alert pipeline")
    p.add_argument("--config", default="/etc/airlock/alertd.json")
    p.add_argument("--check-config", metavar="FILE", help="validate FILE and exit")
    p.add_argument("--test-alert", action="store_true", help="send one test alert to every sink and exit")
    a = p.parse_args(argv)
    try:
        if a.check_config:
            cfg = load_config(a.check_config)
            print(f"{a.check_config}: valid ({len(cfg['watchers'])} watchers, {len(cfg['sinks'])} sinks)")
            return 0
        cfg = load_config(a.config)
        daemon = Alertd(cfg)
    except (ConfigError, OSError) as e:
        print(f"alertd: invalid configuration: {e}", file=sys.stderr)
        return 2
    if a.test_alert:
        ok = True
        alert = make_alert(cfg["host"], "test", f"test:{uuid.uuid4()}", "critical", "airlock alert pipeline test")
        for w in daemon.workers:
            ok = w.deliver_with_retries(alert) and ok
        print("test alert delivered to every sink" if ok else "test alert FAILED on at least one sink")
        return 0 if ok else 1
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop.set())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop.set())
    daemon.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
