"""alertd delivers real alerts (log sink and webhook) within seconds; backups are scheduled."""
import json
import time

ALERTS = "/var/log/airlock/alerts.jsonl"


def alerts(host):
    f = host.file(ALERTS)
    return [json.loads(ln) for ln in f.content_string.splitlines()] if f.exists else []


def wait_for(host, pred, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [a for a in alerts(host) if pred(a)]
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"no matching alert within {timeout} s; have: {[a['key'] for a in alerts(host)]}")


def test_alertd_running_with_valid_config(host):
    assert host.service("airlock-alertd").is_running
    host.run_expect([0], "python3 /usr/local/lib/airlock/alertd.py --check-config /etc/airlock/alertd.json")
    assert host.file("/etc/airlock/alertd.env").mode == 0o600


def test_fail2ban_ban_alert_latency_dedup_and_webhook(host):
    ip = f"198.51.100.{int(time.time()) % 200 + 1}"
    line = f"2024-05-01 10:00:00,000 fail2ban.actions [1]: NOTICE  [sshd] Ban {ip}"
    t0 = float(host.check_output("date +%s.%N"))
    host.run_expect([0], f"echo '{line}' >> /var/log/test/fail2ban.log; echo '{line}' >> /var/log/test/fail2ban.log")
    found = wait_for(host, lambda a: a["key"] == f"fail2ban:sshd:{ip}")
    latency = found[0]["ts"] - t0
    print(f"\nevent-to-alert latency (fail2ban ban -> log sink): {latency:.3f} s")
    assert latency < 10
    time.sleep(1.5)
    assert len([a for a in alerts(host) if a["key"] == f"fail2ban:sshd:{ip}"]) == 1, "duplicate not suppressed"
    hooks = [json.loads(ln) for ln in host.file("/var/log/test/webhook.jsonl").content_string.splitlines()]
    got = [h for h in hooks if h["alert"]["key"] == f"fail2ban:sshd:{ip}"]
    assert got and got[0]["auth"] == "Bearer molecule-token"


def test_egress_drop_from_journal(host):
    host.run_expect([0], "logger -t airlock-test-kernel 'AIRLOCK-EGRESS-DROP IN= OUT=eth0 SRC=10.9.9.9 "
                         "DST=203.0.113.99 PROTO=TCP SPT=40000 DPT=443'")
    wait_for(host, lambda a: a["key"] == "egress_drop:10.9.9.9:203.0.113.99:TCP:443" and a["severity"] == "critical")


def test_auth_burst(host):
    line = ('2024/05/01 10:00:00 [error] 31#31: *1 user "mallory" was not found in "/etc/nginx/htpasswd", '
            'client: 192.0.2.77, server: airlock')
    host.run_expect([0], f"for i in 1 2 3; do echo '{line}' >> /var/log/test/nginx-error.log; done")
    found = wait_for(host, lambda a: a["key"] == "auth_burst:192.0.2.77")
    assert found[0]["details"]["failures"] == 3


def test_llm_gateway_refusal(host):
    """The gateway's request log: a served request is no alert, a refused one (the line its
    auth hook writes) is, keyed by client and status."""
    served = json.dumps({"time": "t", "status": 200, "key_alias": "openhands", "model": "m", "client": "172.17.0.9"})
    refused = json.dumps({"time": "t", "status": 403, "refused": "route", "path": "/key/generate", "method": "POST",
                          "key_alias": None, "client": "172.17.0.8"})
    host.run_expect([0], f"echo '{served}' >> /var/log/test/llm-requests.jsonl; echo '{refused}' >> /var/log/test/llm-requests.jsonl")
    found = wait_for(host, lambda a: a["key"] == "llm_gateway_refused:172.17.0.8:403")
    assert found[0]["severity"] == "critical" and found[0]["details"]["path"] == "/key/generate"
    assert not [a for a in alerts(host) if a["key"].startswith("llm_gateway_refused:172.17.0.9")], "a served request alerted"


def test_audit_key(host):
    line = ('type=SYSCALL msg=audit(1714557600.123:77): arch=c000003e syscall=257 success=yes auid=1000 uid=0 '
            'comm="visudo" exe="/usr/sbin/visudo" key="sudoers"')
    host.run_expect([0], f"echo '{line}' >> /var/log/test/audit.log")
    wait_for(host, lambda a: a["key"] == "audit:sudoers:1000:/usr/sbin/visudo")


def test_service_failure(host):
    host.run("systemctl reset-failed airlock-failing-probe.service")
    host.run("systemd-run --unit=airlock-failing-probe --service-type=oneshot /bin/false")
    try:
        wait_for(host, lambda a: a["key"] == "service_failure:airlock-failing-probe.service")
    finally:
        host.run("systemctl reset-failed airlock-failing-probe.service")


def test_certificate_expiry(host):
    found = wait_for(host, lambda a: a["key"] == "cert_expiry:/etc/test/expiring.pem")
    assert 3.5 < found[0]["details"]["days_left"] <= 5 and found[0]["severity"] == "critical"


def test_backup_timer_and_retention(host):
    assert host.service("airlock-backup.timer").is_enabled
    for _ in range(4):
        host.run_expect([0], "/usr/local/sbin/airlock-backup backup")
        time.sleep(0.05)
    names = host.check_output("ls /var/backups/airlock").split()
    assert len([n for n in names if n.endswith(".tar.gz")]) == 3, names
    assert host.file("/var/backups/airlock").mode == 0o700
    host.run_expect([0], "/usr/local/sbin/airlock-backup verify")
