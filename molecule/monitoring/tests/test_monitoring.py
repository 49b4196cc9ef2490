"""alertd delivers real alerts (log sink and webhook) within seconds; restic backups are
scheduled, encrypted, checked, pruned and restored (the configured paths only), and a failed
backup fails its unit and alerts."""
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


def test_egress_drop_from_the_drop_loggers_file(host):
    """The role's default egress source: the file the egress firewall's drop logger (ulogd2)
    writes, which appears only once the firewall is deployed (this scenario has none, so the
    watcher must pick the file up when it appears). The line is in ulogd2's LOGEMU format, as
    real drops write it (server_tier's tests/test_drop_alert.py and the lab's
    tests/e2e/test_lab.py make real drops)."""
    source = host.file("/etc/airlock/alertd.json").content_string
    assert '"/var/log/ulog/airlock-egress-drops.log"' in source, "the egress watcher is not on the role's default source"
    line = ("Nov 30 14:00:00 server AIRLOCK-EGRESS-DROP IN=docker0 OUT=eth0 MAC=02:42:ac:11:00:02:02:42:0a:d5:05:0a:08:00 "
            "SRC=10.9.9.9 DST=203.0.113.99 LEN=60 TOS=00 PREC=0x00 TTL=63 ID=4242 DF PROTO=TCP SPT=40000 DPT=443 "
            "SEQ=1 ACK=0 WINDOW=64240 SYN URGP=0 MARK=0")
    host.run_expect([0], f"mkdir -p /var/log/ulog && echo '{line}' >> /var/log/ulog/airlock-egress-drops.log")
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


# Audit records of one netfilter change each (raw kernel lines as auditd writes them, from a
# real kernel): the NETFILTER_CFG record, then the SYSCALL record of the same event.
NFT_EVENT = ('type=NETFILTER_CFG msg=audit(1796064008.195:{serial}): table={table}:2 family=1 entries=1 '
             'op=nft_register_table pid=28730 comm="nft"\n'
             'type=SYSCALL msg=audit(1796064008.195:{serial}): arch=c000003e syscall=46 success=yes exit=84 a0=3 '
             'items=0 ppid=28729 pid=28730 auid={auid} uid=0 gid=0 ses=3 comm="nft" exe="{exe}" key={key}\n')


def test_netfilter_change_alerts_and_the_refresh_key_does_not(host):
    refresh = NFT_EVENT.format(serial=9101, table="refresh_probe", auid=4294967295,
                               exe="/usr/local/lib/airlock/egress-nft", key='"airlock_egress_refresh"')
    intruder = NFT_EVENT.format(serial=9102, table="intruder_probe", auid=1000, exe="/usr/sbin/nft", key='"firewall"')
    host.run_expect([0], f"printf '{refresh}{intruder}' >> /var/log/test/audit.log")
    found = wait_for(host, lambda a: a["key"] == "netfilter:firewall:1000:/usr/sbin/nft")
    assert found[0]["severity"] == "critical" and found[0]["details"]["changes"][0]["table"] == "intruder_probe:2"
    # The refresh's change came first, in the same write: had it alerted, it would be there.
    assert not [a for a in alerts(host) if a["type"] == "netfilter"
                and a["details"]["changes"][0]["table"].startswith("refresh_probe")], "the refresh key alerted"


def test_audit_rules_removed_alerts(host):
    line = ('type=CONFIG_CHANGE msg=audit(1796064016.215:9103): auid=1000 ses=3 op=remove_rule '
            'key="firewall" list=4 res=1')
    host.run_expect([0], f"echo '{line}' >> /var/log/test/audit.log")
    found = wait_for(host, lambda a: a["key"] == "audit_tamper:remove_rule:1000")
    assert found[0]["severity"] == "critical"


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


REPO = "/var/backups/airlock"
BACKUP = "/usr/local/sbin/airlock-backup"
RESTIC = f"restic --repo {REPO} --password-file /etc/airlock/backup-restic.pass --cache-dir /var/cache/airlock-backup"


def snapshot_ids(host):
    return [s["id"] for s in json.loads(host.check_output(f"{BACKUP} list --json"))]


def test_backup_timer_password_and_sandbox(host):
    assert host.service("airlock-backup.timer").is_enabled
    assert host.package("restic").is_installed
    pw = host.file("/etc/airlock/backup-restic.pass")
    assert (pw.user, pw.group, pw.mode) == ("root", "root", 0o600)
    assert host.file(REPO).mode == 0o700
    config = host.file("/etc/airlock/backup.json")
    assert config.mode == 0o600 and "molecule-restic-password" not in config.content_string
    assert host.file(f"{REPO}/config").exists, "the repository was initialised by the role"
    props = host.check_output("systemctl show airlock-backup.service -p ProtectSystem -p NoNewPrivileges -p User "
                              "-p CapabilityBoundingSet -p ReadWritePaths")
    assert "ProtectSystem=strict" in props and "NoNewPrivileges=yes" in props and "User=\n" in props + "\n"
    assert "cap_dac_read_search" in props and "cap_sys_admin" not in props


def test_backup_service_snapshots_and_checks(host):
    before = snapshot_ids(host)
    host.run_expect([0], "systemctl start airlock-backup.service")
    after = snapshot_ids(host)
    assert len(after) >= 1 and after[-1] not in before
    log = host.check_output("journalctl -u airlock-backup.service -o cat --no-pager -n 20")
    assert '"check": "ok"' in log and '"/etc/nonexistent-airlock": "absent"' in log
    host.run_expect([0], f"{RESTIC} check --read-data")


def test_backup_repository_is_encrypted(host):
    canary = f"sk-molecule-canary-{int(time.time())}"
    host.run_expect([0], f"echo 'LLM_API_KEY={canary}' > /etc/openhands/canary.env && chmod 600 /etc/openhands/canary.env")
    try:
        host.run_expect([0], f"{BACKUP} backup")
        assert host.run(f"grep -rlF {canary} /etc/openhands").rc == 0, "positive control: grep finds the key"
        found = host.run(f"grep -rlF -e {canary} -e LLM_API_KEY -e canary.env {REPO}")
        assert found.rc == 1 and found.stdout == "", f"secret in clear in the repository: {found.stdout}"
        assert canary in host.check_output(f"{RESTIC} dump latest /etc/openhands/canary.env")
    finally:
        host.run("rm -f /etc/openhands/canary.env")


def test_backup_retention_keeps_the_newest(host):
    made = []
    for _ in range(4):
        out = json.loads(host.check_output(f"{BACKUP} backup"))
        made.append(out["repositories"]["local"]["snapshot"])
    assert snapshot_ids(host) == made[-3:]


def test_restore_brings_a_deleted_file_back_and_writes_only_configured_paths(host):
    host.run_expect([0], "echo drill-marker > /etc/openhands/marker && mkdir -p /etc/outside-probe && echo x > /etc/outside-probe/f")
    # A snapshot that also holds a path outside backup_paths (made by restic directly).
    host.run_expect([0], f"{RESTIC} backup --host airlock-monitoring --tag airlock /var/lib/openhands /etc/openhands /etc/outside-probe")
    host.run_expect([0], "rm -rf /etc/outside-probe /etc/openhands/marker")
    out = json.loads(host.check_output(f"{BACKUP} restore"))
    assert out["restored"] == ["/var/lib/openhands", "/etc/openhands"]
    assert host.file("/etc/openhands/marker").content_string == "drill-marker\n"
    assert not host.file("/etc/outside-probe").exists, "restore wrote a path outside backup_paths"
    host.run("rm -f /etc/openhands/marker")


def test_wrong_password_fails_the_backup_service_and_alerts(host):
    denied = host.run(f"RESTIC_PASSWORD=wrong-password-0123 restic --repo {REPO} --cache-dir /tmp/c snapshots")
    assert denied.rc != 0 and "wrong password" in denied.stderr
    host.run_expect([0], "cp -p /etc/airlock/backup-restic.pass /root/restic.pass.keep && "
                         "printf wrong-password-0123 > /etc/airlock/backup-restic.pass")
    try:
        host.run("systemctl reset-failed airlock-backup.service")
        res = host.run("systemctl start airlock-backup.service")
        assert res.rc != 0
        assert host.check_output("systemctl is-failed airlock-backup.service || true") == "failed"
        assert "wrong password" in host.check_output("journalctl -u airlock-backup.service -o cat --no-pager -n 5")
        wait_for(host, lambda a: a["key"] == "service_failure:airlock-backup.service")
    finally:
        host.run("cp -p /root/restic.pass.keep /etc/airlock/backup-restic.pass && rm -f /root/restic.pass.keep")
        host.run("systemctl reset-failed airlock-backup.service")
    host.run_expect([0], "systemctl start airlock-backup.service")
