"""Unit tests of the monitoring role's alert daemon (roles/monitoring/files/alertd.py)."""
import datetime
import http.server
import json
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers.modules import load_module

ALERTD = Path(__file__).resolve().parents[2] / "roles" / "monitoring" / "files" / "alertd.py"
alertd = load_module(ALERTD)


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def cfg(**kw):
    base = {"host": "h1", "watchers": [], "sinks": [{"type": "log", "path": "/tmp/x.jsonl"}]}
    base.update(kw)
    return alertd.validate_config(base)


# --------------------------------------------------------------------------- dedup
def test_dedup_suppresses_same_key_within_window_and_counts():
    clock = FakeClock()
    d = alertd.Deduper(300, clock)
    a = lambda: alertd.make_alert("h", "t", "k1", "warning", "s")  # noqa: E731
    assert d.admit(a())
    assert not d.admit(a())
    assert not d.admit(a())
    assert d.admit(alertd.make_alert("h", "t", "k2", "warning", "s")), "another key is not suppressed"
    clock.t += 299
    assert not d.admit(a())
    clock.t += 2
    again = a()
    assert d.admit(again)
    assert again["suppressed"] == 3


def test_dedup_window_zero_sends_everything():
    d = alertd.Deduper(0, FakeClock())
    assert all(d.admit(alertd.make_alert("h", "t", "k", "info", "s")) for _ in range(3))


# --------------------------------------------------------------------------- parsers
def watcher(t, **kw):
    spec = {"type": t, "source": {"file": "/x"}}
    spec.update(kw)
    c = cfg(watchers=[spec])
    return alertd.LineWatcher(c["watchers"][0], "h1", FakeClock())


def test_fail2ban_ban_line_file_and_journal():
    w = watcher("fail2ban")
    a = w.handle("2024-05-01 10:00:00,123 fail2ban.actions        [812]: NOTICE  [nginx-http-auth] Ban 203.0.113.7")
    assert a["key"] == "fail2ban:nginx-http-auth:203.0.113.7" and a["severity"] == "warning"
    assert w.handle("[sshd] Ban 2001:db8::1")["details"]["ip"] == "2001:db8::1"
    assert w.handle("2024-05-01 10:10:00,123 fail2ban.actions [812]: NOTICE  [sshd] Unban 203.0.113.7") is None
    assert w.handle("fail2ban.filter [812]: INFO    [sshd] Found 203.0.113.7") is None
    assert w.handle("NOTICE  [sshd] 203.0.113.7 already banned") is None


def test_egress_drop_kernel_line():
    w = watcher("egress_drop", source={"journal": {"_TRANSPORT": "kernel"}})
    line = ("[12345.678] AIRLOCK-EGRESS-DROP IN= OUT=eth0 SRC=10.0.1.5 DST=198.51.100.9 LEN=60 TOS=0x00 "
            "PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=40000 DPT=443 WINDOW=64240 SYN")
    a = w.handle(line)
    assert a["key"] == "egress_drop:10.0.1.5:198.51.100.9:TCP:443" and a["severity"] == "critical"
    assert a["details"]["out"] == "eth0"
    assert w.handle("IN= OUT=eth0 SRC=10.0.1.5 DST=1.1.1.1 PROTO=UDP") is None
    custom = watcher("egress_drop", prefix="X-DROP")
    assert custom.handle("X-DROP SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=53")["details"]["dpt"] == "53"


NGINX_MISS = ('2024/05/01 10:00:0{n} [error] 31#31: *{n} user "mallory" was not found in "/etc/nginx/.htpasswd", '
              'client: 203.0.113.{c}, server: airlock, request: "GET / HTTP/1.1", host: "airlock"')
NGINX_MISMATCH = ('2024/05/01 10:00:00 [error] 31#31: *9 user "admin": password mismatch, client: 203.0.113.{c}, '
                  'server: airlock, request: "GET / HTTP/1.1"')


def test_auth_burst_counts_per_client_within_window():
    w = watcher("auth_burst", window=60, threshold=3)
    assert w.handle(NGINX_MISS.format(n=1, c=1)) is None
    assert w.handle(NGINX_MISMATCH.format(c=1)) is None
    assert w.handle(NGINX_MISS.format(n=2, c=2)) is None, "another client has its own count"
    a = w.handle(NGINX_MISMATCH.format(c=1))
    assert a["key"] == "auth_burst:203.0.113.1" and a["details"]["failures"] == 3
    assert a["details"]["reason"] == "password mismatch"
    assert w.handle('2024/05/01 [error] open() "/x" failed, client: 203.0.113.1') is None


def test_auth_burst_forgets_failures_outside_window():
    w = watcher("auth_burst", window=60, threshold=3)
    w.handle(NGINX_MISS.format(n=1, c=1))
    w.handle(NGINX_MISS.format(n=2, c=1))
    w.clock.t += 61
    assert w.handle(NGINX_MISS.format(n=3, c=1)) is None


AUDIT_RAW = ('type=SYSCALL msg=audit(1714557600.123:77): arch=c000003e syscall=257 success=yes exit=3 '
             'auid=1000 uid=0 gid=0 ses=3 comm="vim" exe="/usr/bin/vim.basic" key="sudoers"')
AUDIT_ENRICHED = AUDIT_RAW.replace('key="sudoers"', 'key="identity"') + '\x1dARCH=x86_64 SYSCALL=openat AUID="alice" UID="root"'


def test_audit_key_filter_raw_and_enriched():
    w = watcher("audit", keys=["sudoers", "identity"])
    a = w.handle(AUDIT_RAW)
    assert a["key"] == "audit:sudoers:1000:/usr/bin/vim.basic" and a["details"]["record"] == "SYSCALL"
    b = w.handle(AUDIT_ENRICHED)
    assert b["details"]["key"] == "identity" and b["details"]["auid"] == "alice"
    assert w.handle(AUDIT_RAW.replace('key="sudoers"', 'key="user_cmd"')) is None
    assert w.handle(AUDIT_RAW.replace('key="sudoers"', "key=(null)")) is None
    hexkeys = (b"modules\x01sudoers").hex().upper()
    assert w.handle(AUDIT_RAW.replace('key="sudoers"', f"key={hexkeys}"))["details"]["key"] == "sudoers"


def test_service_failure_from_systemctl_output():
    out = ("\u25cf nginx.service loaded failed failed A high performance web server\n"
           "fail2ban.service       loaded failed failed Fail2Ban Service\n")
    spec = cfg(watchers=[{"type": "service_failure"}])["watchers"][0]
    alerts = alertd.check_services(spec, "h1", runner=lambda argv: out)
    assert [a["key"] for a in alerts] == ["service_failure:nginx.service", "service_failure:fail2ban.service"]
    spec["units"] = ["fail2ban.service"]
    assert [a["details"]["unit"] for a in alertd.check_services(spec, "h1", runner=lambda argv: out)] == ["fail2ban.service"]


def make_cert(path, days):
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airlock.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_cert_expiry_thresholds(tmp_path):
    make_cert(tmp_path / "soon.pem", 10)
    make_cert(tmp_path / "later.pem", 200)
    make_cert(tmp_path / "urgent.pem", 3)
    spec = cfg(watchers=[{"type": "cert_expiry", "days": 21, "critical_days": 7,
                          "paths": [str(tmp_path / n) for n in ("soon.pem", "later.pem", "urgent.pem", "missing.pem")]}])["watchers"][0]
    alerts = {a["key"]: a for a in alertd.check_certs(spec, "h1")}
    assert set(alerts) == {f"cert_expiry:{tmp_path}/soon.pem", f"cert_expiry:{tmp_path}/urgent.pem", f"cert_unreadable:{tmp_path}/missing.pem"}
    assert 9 < alerts[f"cert_expiry:{tmp_path}/soon.pem"]["details"]["days_left"] < 10.1
    assert alerts[f"cert_expiry:{tmp_path}/soon.pem"]["severity"] == "warning"
    assert alerts[f"cert_expiry:{tmp_path}/urgent.pem"]["severity"] == "critical"


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("bad, message", [
    ({"sinks": [{"type": "pager"}]}, "sinks[0].type: unknown sink type 'pager'"),
    ({"sinks": [{"type": "webhook", "url": "hooks.example.com/x"}]}, "sinks[0].url: malformed webhook URL"),
    ({"sinks": [{"type": "webhook", "url": "ftp://example.com/x"}]}, "sinks[0].url: malformed webhook URL"),
    ({"sinks": [{"type": "webhook", "url": "https:// bad"}]}, "sinks[0].url: malformed webhook URL"),
    ({"sinks": [{"type": "sns", "topic_arn": "arn:aws:sns:us-east-1:12:t"}]}, "sinks[0].topic_arn"),
    ({"sinks": [{"type": "email", "host": "smtp", "from": "a@b", "to": []}]}, "sinks[0].to"),
    ({"watchers": [{"type": "syslog", "source": {"file": "/x"}}]}, "watchers[0].type: unknown watcher type 'syslog'"),
    ({"watchers": [{"type": "auth_burst", "source": {"file": "/x"}, "threshold": 0}]}, "watchers[0].threshold"),
    ({"watchers": [{"type": "audit", "source": {"file": "/x"}, "keys": []}]}, "watchers[0].keys"),
    ({"watchers": [{"type": "fail2ban", "source": {"file": "relative.log"}}]}, "watchers[0].source.file"),
    ({"sinks": []}, "sinks must be a non-empty list"),
])
def test_bad_config_rejected_naming_the_setting(bad, message):
    base = {"host": "h", "watchers": [], "sinks": [{"type": "log", "path": "/tmp/a"}]}
    base.update(bad)
    with pytest.raises(alertd.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        alertd.validate_config(base)


def test_check_config_cli_exit_codes(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"sinks": [{"type": "log", "path": str(tmp_path / "a.jsonl")}]}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sinks": [{"type": "carrier-pigeon"}]}))
    ok = subprocess.run([sys.executable, str(ALERTD), "--check-config", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    no = subprocess.run([sys.executable, str(ALERTD), "--check-config", str(bad)], capture_output=True, text=True)
    assert no.returncode == 2 and "unknown sink type 'carrier-pigeon'" in no.stderr


# --------------------------------------------------------------------------- sinks
class Hook(http.server.BaseHTTPRequestHandler):
    received = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((dict(self.headers), json.loads(body)))
        self.send_response(Hook.status)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def webhook():
    Hook.received, Hook.status = [], 200
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook"
    srv.shutdown()


def test_webhook_sink_posts_json_with_token(webhook, monkeypatch):
    monkeypatch.setenv("TEST_HOOK_TOKEN", "s3cret")
    c = cfg(sinks=[{"type": "webhook", "url": webhook, "token_env": "TEST_HOOK_TOKEN"}])
    w = alertd.SinkWorker(alertd.WebhookSink(c["sinks"][0]))
    alert = alertd.make_alert("h1", "fail2ban", "fail2ban:sshd:1.2.3.4", "warning", "ban")
    assert w.deliver_with_retries(alert)
    headers, body = Hook.received[0]
    assert body["key"] == "fail2ban:sshd:1.2.3.4" and body["host"] == "h1"
    assert headers["Authorization"] == "Bearer s3cret" and headers["Content-Type"] == "application/json"


def test_webhook_failure_is_retried_then_reported(webhook):
    Hook.status = 500
    c = cfg(sinks=[{"type": "webhook", "url": webhook, "retries": 2}])
    w = alertd.SinkWorker(alertd.WebhookSink(c["sinks"][0]), sleep=lambda s: None)
    assert not w.deliver_with_retries(alertd.make_alert("h", "t", "k", "critical", "s"))
    assert len(Hook.received) == 3 and w.failed == 1


class SMTPHandler(socketserver.StreamRequestHandler):
    messages = []

    def handle(self):
        w = lambda s: self.wfile.write((s + "\r\n").encode())  # noqa: E731
        w("220 test ESMTP")
        data, in_data, env = [], False, {}
        for raw in self.rfile:
            line = raw.decode().rstrip("\r\n")
            if in_data:
                if line == ".":
                    in_data = False
                    SMTPHandler.messages.append((env, "\n".join(data)))
                    w("250 queued")
                else:
                    data.append(line)
                continue
            cmd = line.split(" ")[0].upper()
            if cmd == "EHLO":
                w("250-test")
                w("250 8BITMIME")
            elif cmd == "MAIL":
                env["from"] = line
                w("250 ok")
            elif cmd == "RCPT":
                env.setdefault("to", []).append(line)
                w("250 ok")
            elif cmd == "DATA":
                in_data = True
                w("354 go")
            elif cmd == "QUIT":
                w("221 bye")
                return
            else:
                w("250 ok")


def test_email_sink_sends_one_message():
    SMTPHandler.messages = []
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        c = cfg(sinks=[{"type": "email", "host": "127.0.0.1", "port": srv.server_address[1], "starttls": False,
                        "from": "alertd@airlock.test", "to": ["sec@airlock.test", "ops@airlock.test"]}])
        assert alertd.SinkWorker(alertd.EmailSink(c["sinks"][0])).deliver_with_retries(
            alertd.make_alert("h1", "audit", "audit:sudoers:1000:/usr/bin/vim", "critical", "sudoers changed"))
    finally:
        srv.shutdown()
    env, body = SMTPHandler.messages[0]
    assert len(env["to"]) == 2
    assert "Subject: [airlock][critical] h1: sudoers changed" in body
    assert '"key": "audit:sudoers:1000:/usr/bin/vim"' in body


def test_sns_sink_publishes_with_boto3():
    moto = pytest.importorskip("moto")
    import boto3
    with moto.mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        arn = sns.create_topic(Name="airlock-alerts")["TopicArn"]
        sqs = boto3.client("sqs", region_name="us-east-1")
        qurl = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=qurl, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
        c = cfg(sinks=[{"type": "sns", "topic_arn": arn}])
        assert alertd.SinkWorker(alertd.SnsSink(c["sinks"][0])).deliver_with_retries(
            alertd.make_alert("h1", "egress_drop", "egress_drop:a:b:TCP:443", "critical", "egress blocked"))
        msgs = sqs.receive_message(QueueUrl=qurl, MaxNumberOfMessages=10)["Messages"]
        envelope = json.loads(msgs[0]["Body"])
        assert json.loads(envelope["Message"])["key"] == "egress_drop:a:b:TCP:443"
        assert envelope["Subject"].startswith("[airlock][critical] h1")


def test_min_severity_filters_per_sink(tmp_path):
    c = cfg(sinks=[{"type": "log", "path": str(tmp_path / "a.jsonl"), "min_severity": "critical"}])
    w = alertd.SinkWorker(alertd.LogSink(c["sinks"][0]))
    w.submit(alertd.make_alert("h", "t", "k", "warning", "s"))
    assert w.q.empty()
    w.submit(alertd.make_alert("h", "t", "k", "critical", "s"))
    assert w.q.qsize() == 1


# --------------------------------------------------------------------------- tail -F
def test_file_tail_follows_rotation_and_truncation(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("old line before start\n")
    got, stop = [], threading.Event()
    t = alertd.FileTail(str(path), got.append, 0.05, stop)
    t.start()
    time.sleep(0.2)

    def wait_for(n):
        deadline = time.time() + 5
        while len(got) < n and time.time() < deadline:
            time.sleep(0.02)

    with open(path, "a") as f:
        f.write("one\ntw")
        f.flush()
        time.sleep(0.2)
        f.write("o\n")
    wait_for(2)
    path.rename(tmp_path / "app.log.1")  # rotation: a new file with the same name
    path.write_text("three\n")
    wait_for(3)
    path.write_text("")  # truncation in place (copytruncate)
    time.sleep(0.2)
    with open(path, "a") as f:
        f.write("four\n")
    wait_for(4)
    stop.set()
    t.join(2)
    assert got == ["one", "two", "three", "four"]


# --------------------------------------------------------------------------- end to end
def test_daemon_end_to_end_dedup_and_latency(tmp_path, webhook):
    f2b = tmp_path / "fail2ban.log"
    f2b.write_text("")
    out = tmp_path / "alerts.jsonl"
    conf = tmp_path / "alertd.json"
    conf.write_text(json.dumps({
        "host": "e2e", "dedup_window": 60, "poll_interval": 0.2,
        "watchers": [{"type": "fail2ban", "source": {"file": str(f2b)}}],
        "sinks": [{"type": "log", "path": str(out)}, {"type": "webhook", "url": webhook}],
    }))
    proc = subprocess.Popen([sys.executable, str(ALERTD), "--config", str(conf)], stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        with open(f2b, "a") as f:
            for _ in range(3):  # the same ban three times: one alert
                f.write("2024-05-01 10:00:00,123 fail2ban.actions [1]: NOTICE  [sshd] Ban 198.51.100.23\n")
            f.write("2024-05-01 10:00:01,123 fail2ban.actions [1]: NOTICE  [sshd] Ban 198.51.100.24\n")
        written = time.time()
        deadline = written + 20
        lines = []
        while time.time() < deadline:
            lines = out.read_text().splitlines() if out.exists() else []
            if len(lines) >= 2 and len(Hook.received) >= 2:
                break
            time.sleep(0.05)
        latency = json.loads(lines[0])["ts"] - written
        time.sleep(1.0)
        lines = out.read_text().splitlines()
    finally:
        proc.terminate()
        proc.wait(10)
    keys = [json.loads(ln)["key"] for ln in lines]
    assert keys == ["fail2ban:sshd:198.51.100.23", "fail2ban:sshd:198.51.100.24"]
    assert [b["key"] for _, b in Hook.received] == keys
    print(f"\nalertd event-to-alert latency: {latency:.3f} s")
    assert latency < 5
