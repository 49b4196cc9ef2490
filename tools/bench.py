#!/usr/bin/env python3
"""airlock benchmark: every figure of docs/performance.md, measured in ONE run.

The figures are compared as ratios taken within the same run (rerun / first converge,
drift fix / rerun, proxied / direct), so that a busy machine slows both sides of a ratio
alike. Each figure is repeated; the table gives the median and the spread (min-max).

  tools/bench.py                 full run on a lab of its own ("bench"), rewrites docs/performance.md
  tools/bench.py --smoke         one short repetition of everything, reusing a running lab;
                                 writes reports/bench-smoke.{md,json}, never the docs

What is measured, and how:
  converge   site.yml on a freshly created lab (lab_down + lab_up first), wall time;
             then site.yml again (must report changed=0), then drift: a hand edit of the
             proxy's nginx.conf repaired by `site.yml --tags nginx_proxy` (must change it back).
  proxy      wrk (HTTP/1.1 keep-alive) from the proxy host's network namespace: once straight
             to the upstream (the server's port), once through nginx on that host (TLS + Basic
             login on every request) to the same upstream. wrk is one client, which the proxy
             holds to 20 r/s by design: the run lifts that limit in the live nginx.conf and
             restores it with `site.yml --tags nginx_proxy`, so the figure is the proxy's
             processing cost, not the policy cap.
  login      CPU time per password verification with the proxy's own crypt(3) (the libcrypt
             nginx's auth_basic calls), for every scheme nginx_proxy supports, at the role's
             default rounds/cost.
  gateway    chat completions straight to the fake LLM (as the gateway's user, on the server) and the
             same request through the LLM gateway from a sandbox container, in interleaved batches:
             p50/p99 of each, the added latency and the ratio; the gateway's RSS idle and after the load.
  alerts     ban -> alert: `fail2ban-client set <jail> banip <TEST-NET address>` on the proxy
             until the alert is in the log sink; dropped egress -> alert: a connection from the
             server to the lab's decoy until the alert is in the server's log sink.
Traffic goes only to loopback and the lab's own containers.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE_PLAYBOOK = str(ROOT / ".venv" / "bin" / "ansible-playbook")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
PROFILE_LINE = re.compile(r"^(?P<task>.+?)\s-{2,}\s+(?P<secs>[0-9.]+)s$", re.MULTILINE)
# The benchmark's own lab, beside any other (the user's "lab", the end-to-end test's "e2e").
BENCH_LAB = {"AIRLOCK_LAB_NAME": "bench", "AIRLOCK_LAB_NET": "10.217",
             "AIRLOCK_LAB_HTTPS_PORT": "38443", "AIRLOCK_LAB_HTTP_PORT": "38080"}
# Labs a smoke run may reuse, in this order, when one is running.
REUSABLE_LABS = ("bench", "lab")
UPSTREAM_PORT = 3000
LOAD_PATH = "/server_info"
BAN_JAIL = "nginx-http-auth"
ALERT_LOG = "/var/log/airlock/alerts.jsonl"
DRIFT_FILE = "/etc/nginx/nginx.conf"
DRIFT_MARK = "# airlock-bench hand edit"

SCHEMES = {  # nginx_proxy's htpasswd schemes -> crypt(3) setting prefix
    "sha512_crypt": "$6$rounds={rounds}$",
    "sha256_crypt": "$5$rounds={rounds}$",
    "bcrypt": "$2b${cost:02d}$",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], check: bool = True, timeout: int = 600, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {res.returncode}: {(res.stdout + res.stderr)[-2000:]}")
    return res


def docker(*args: str, check: bool = True, input_: str | None = None, timeout: int = 120) -> str:
    return run(["docker", *args], check=check, input=input_, timeout=timeout).stdout


# --------------------------------------------------------------------------- statistics
def summary(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


# --------------------------------------------------------------------------- machine
def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except (OSError, AttributeError):
        pass
    dv = run(["docker", "version", "--format", "{{.Server.Version}}"], check=False).stdout.strip() or "unknown"
    wrk = shutil.which("wrk")
    wrk_v = run([wrk, "--version"], check=False).stdout.splitlines()[0].split(" [")[0] if wrk else "not installed"
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    osr = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            k, _, v = line.partition("=")
            osr[k] = v.strip('"')
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": osr.get("PRETTY_NAME", platform.platform()),
        "docker": dv,
        "python": platform.python_version(),
        "ansible": run([str(ROOT / ".venv" / "bin" / "ansible"), "--version"], check=False).stdout.split("\n")[0],
        "wrk": wrk_v,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_at_start": [round(x, 2) for x in load],
    }


# --------------------------------------------------------------------------- the lab
class Lab:
    def __init__(self, env: dict[str, str], logdir: Path):
        self.env = env
        self.name = env["AIRLOCK_LAB_NAME"]
        self.prefix = f"airlock-{self.name}"
        self.logdir = logdir
        self.net = env["AIRLOCK_LAB_NET"]

    @staticmethod
    def running(name: str) -> bool:
        out = docker("ps", "--filter", f"name=^airlock-{name}-proxy$", "--format", "{{.Names}}", check=False)
        return bool(out.strip())

    @classmethod
    def reuse(cls, name: str, logdir: Path) -> "Lab":
        """A running lab, its addresses and ports read back from Docker."""
        subnet = docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                        f"airlock-{name}-1-public").strip()
        net = ".".join(subnet.split(".")[:2])
        ports = {}
        for line in docker("port", f"airlock-{name}-proxy").splitlines():
            m = re.match(r"(\d+)/tcp -> [0-9.]+:(\d+)", line)
            if m:
                ports[m.group(1)] = m.group(2)
        return cls({"AIRLOCK_LAB_NAME": name, "AIRLOCK_LAB_NET": net,
                    "AIRLOCK_LAB_HTTPS_PORT": ports.get("443", "8443"),
                    "AIRLOCK_LAB_HTTP_PORT": ports.get("80", "8080")}, logdir)

    def container(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def addr(self, what: str) -> str:
        return {"proxy_private": f"{self.net}.11.10", "openhands": f"{self.net}.11.20",
                "decoy": f"{self.net}.12.20"}[what]

    def password(self) -> str:
        return (ROOT / f".{self.name}" / "admin.password").read_text().strip()

    def playbook(self, label: str, *args: str, timeout: int = 1800) -> dict:
        env = {**os.environ, **self.env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
               "ANSIBLE_NOCOLOR": "1", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "25"}
        start = time.monotonic()
        res = subprocess.run([ANSIBLE_PLAYBOOK, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=timeout)
        secs = time.monotonic() - start
        (self.logdir / f"{label}.log").write_text(res.stdout + res.stderr)
        if res.returncode != 0:
            tail = "\n".join((res.stdout + res.stderr).splitlines()[-40:])
            raise RuntimeError(f"ansible-playbook {' '.join(args)} failed (log {label}.log):\n{tail}")
        recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2])} for m in RECAP.findall(res.stdout)}
        tasks = [{"task": m.group("task").strip(), "secs": float(m.group("secs"))}
                 for m in PROFILE_LINE.finditer(res.stdout)]
        return {"secs": secs, "recap": recap, "module_runs": module_runs(res.stdout), "changed": sum(r["changed"] for r in recap.values()),
                "ok": sum(r["ok"] for r in recap.values()), "top_tasks": tasks}

    def pid(self, host: str) -> str:
        return docker("inspect", "-f", "{{.State.Pid}}", self.container(host)).strip()


# --------------------------------------------------------------------------- converge figures
def bench_converge(lab: Lab, reps: int, fresh: bool) -> dict:
    """fresh: each repetition rebuilds the lab and times the first converge."""
    out = {"converge": [], "rerun": [], "drift": [], "rerun_changed": [], "drift_changed": [], "runs": []}
    for i in range(1, reps + 1):
        if fresh:
            log(f"converge {i}/{reps}: rebuilding lab {lab.name}")
            lab.playbook(f"lab_down-{i}", "playbooks/lab_down.yml")
            lab.playbook(f"lab_up-{i}", "playbooks/lab_up.yml")
            r = lab.playbook(f"converge-{i}", "site.yml")
            out["converge"].append(r["secs"])
            out["runs"].append({"phase": "converge", "rep": i, **r})
            log(f"  first converge {r['secs']:.1f} s (changed={r['changed']})")
        r = lab.playbook(f"rerun-{i}", "site.yml")
        out["rerun"].append(r["secs"])
        out["rerun_changed"].append(r["changed"])
        out["runs"].append({"phase": "rerun", "rep": i, **r})
        log(f"  rerun {r['secs']:.1f} s (changed={r['changed']}, {r['ok']} tasks ok)")
        docker("exec", lab.container("proxy"), "sh", "-c", f"echo '{DRIFT_MARK}' >> {DRIFT_FILE}")
        r = lab.playbook(f"drift-{i}", "site.yml", "--tags", "nginx_proxy")
        repaired = DRIFT_MARK not in docker("exec", lab.container("proxy"), "cat", DRIFT_FILE)
        out["drift"].append(r["secs"])
        out["drift_changed"].append(r["changed"] if repaired else -1)
        out["runs"].append({"phase": "drift", "rep": i, "repaired": repaired, **r})
        log(f"  drift fix {r['secs']:.1f} s (changed={r['changed']}, repaired={repaired})")
        if not repaired:
            raise RuntimeError("site.yml --tags nginx_proxy did not repair the hand edit")
    return out


TASK_PLAY = """- name: Per-task cost on one lab host
  hosts: "{{ bench_host }}"
  gather_facts: false
  become: true
  tasks:
    - name: Raw command (one docker exec, no Python module)
      ansible.builtin.raw: "true"
      changed_when: false
      loop: "{{ range(bench_n | int) | list }}"
      when: bench_kind == 'raw'
    - name: Smallest Python module (ping)
      ansible.builtin.ping:
      loop: "{{ range(bench_n | int) | list }}"
      when: bench_kind == 'ping'
"""


def bench_task_cost(lab: Lab, reps: int, n: int) -> dict:
    """Seconds per task invocation on a lab host: the docker exec alone (raw) and a module (ping)."""
    fd, play = tempfile.mkstemp(prefix="airlock-bench-", suffix=".yml")
    with os.fdopen(fd, "w") as f:
        f.write(TASK_PLAY)
    out = {"raw": [], "ping": [], "n": n}
    try:
        for i in range(reps):
            for kind in ("raw", "ping"):
                t = {}
                for count in (0, n):
                    r = lab.playbook(f"task-cost-{kind}-{count}-{i + 1}", play, "-e", "bench_host=proxy",
                                     "-e", f"bench_kind={kind}", "-e", f"bench_n={count}")
                    t[count] = r["secs"]
                out[kind].append((t[n] - t[0]) / n * 1000)
            log(f"  per task: raw {out['raw'][-1]:.0f} ms, module {out['ping'][-1]:.0f} ms")
    finally:
        os.unlink(play)
    return out


TASK_HEADER = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.+?)\] \*+\n.*?\((?P<h>\d+):(?P<m>\d+):(?P<s>[0-9.]+)\)",
                         re.MULTILINE)
PLAY_HEADER = re.compile(r"^PLAY \[(?P<name>.+?)\] \*+$", re.MULTILINE)


def profile_log(text: str) -> dict:
    """Seconds per role and per play of a playbook log (profile_tasks prints, before each task,
    how long the previous one took)."""
    events = sorted([(m.start(), "task", m) for m in TASK_HEADER.finditer(text)] +
                    [(m.start(), "play", m) for m in PLAY_HEADER.finditer(text)], key=lambda e: e[0])
    roles: dict[str, list] = {}
    plays: dict[str, float] = {}
    prev_task, play = None, None
    for _, kind, m in events:
        if kind == "play":
            play = m.group("name")
            plays.setdefault(play, 0.0)
            continue
        secs = int(m.group("h")) * 3600 + int(m.group("m")) * 60 + float(m.group("s"))
        if prev_task is not None:
            role = prev_task[0].split(" : ")[0] if " : " in prev_task[0] else "(play level)"
            roles.setdefault(role, [0.0, 0])
            roles[role][0] += secs
            roles[role][1] += 1
            plays[prev_task[1]] = plays.get(prev_task[1], 0.0) + secs
        prev_task = (m.group("name"), play)
    return {"roles": roles, "plays": plays}


def module_runs(log_text: str) -> int:
    """Module invocations of a run: one result line per task and host, or per loop item."""
    return len(re.findall(r"^(?:ok|changed): \[", log_text, re.MULTILINE))


# --------------------------------------------------------------------------- proxy overhead
WRK_LINE = re.compile(r"^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(text: str) -> dict:
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if not rps or not total:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    lat = {p: float(v) * UNIT[u] for p, v, u in WRK_LINE.findall(text)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {"rps": float(rps.group(1)), "requests": int(total.group(1)), "p50_ms": lat.get("50"),
            "p99_ms": lat.get("99"), "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


def wrk(pid: str, url: str, seconds: int, conns: int, script: str | None) -> dict:
    cmd = ["nsenter", "-t", pid, "-n", "wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    res = run(cmd + [url], timeout=seconds + 60)
    r = parse_wrk(res.stdout)
    if r["non_2xx"] or r["requests"] == 0:
        raise RuntimeError(f"wrk {url}: {r['non_2xx']} non-2xx answers of {r['requests']}:\n{res.stdout}")
    return r


RATE = re.compile(r"(zone=airlock_requests:\S+ rate=)([0-9]+r/[sm])")


def cpu_ticks(container: str, pattern: str) -> int:
    """utime + stime (clock ticks) of the container's processes whose command line matches."""
    out = docker("exec", container, "sh", "-c",
                 f"for p in $(pgrep -f '{pattern}'); do cat /proc/$p/stat 2>/dev/null; echo; done", check=False)
    total = 0
    for line in out.splitlines():
        fields = line.rsplit(")", 1)[-1].split()
        if len(fields) > 12:
            total += int(fields[11]) + int(fields[12])  # stat fields 14 and 15
    return total


def bench_proxy(lab: Lab, reps: int, seconds: int, conns: int) -> dict:
    """wrk from the proxy host: straight to the upstream, and through nginx on the same host."""
    if not shutil.which("wrk") or not shutil.which("nsenter"):
        return {"skipped": "wrk or nsenter is not installed (tools/bench.sh installs wrk from the Debian archive)"}
    proxy = lab.container("proxy")
    pid = lab.pid("proxy")
    direct = f"http://{lab.addr('openhands')}:{UPSTREAM_PORT}{LOAD_PATH}"
    proxied = f"https://127.0.0.1{LOAD_PATH}"
    import base64
    token = base64.b64encode(f"admin:{lab.password()}".encode()).decode()
    conf = docker("exec", proxy, "cat", DRIFT_FILE)
    m = RATE.search(conf)
    if not m:
        return {"skipped": f"no airlock_requests limit_req_zone in the proxy's {DRIFT_FILE}"}
    hz = os.sysconf("SC_CLK_TCK")
    fd, script = tempfile.mkstemp(prefix="airlock-bench-", suffix=".lua")
    out = {"direct": [], "proxied": [], "url_direct": direct, "url_proxied": proxied,
           "seconds": seconds, "connections": conns, "threads": 2, "policy_rate": m.group(2)}
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp: 0600, so the login is not on a command line
            f.write(f'wrk.headers["Authorization"] = "Basic {token}"\n')
        # Lift the per-client rate limit for the measurement (one client, wrk, would get 429
        # after the burst); the role puts it back below, and the check after proves it did.
        docker("exec", proxy, "sed", "-E", "-i", r"s#(zone=airlock_requests:\S+ rate=)[0-9]+r/[sm]#\11000000r/s#",
               DRIFT_FILE)
        docker("exec", proxy, "sh", "-c", "nginx -t -q && systemctl reload nginx")
        time.sleep(1)
        wrk(pid, direct, 1, conns, None)  # warm-up: connections, upstream keep-alive, caches
        wrk(pid, proxied, 1, conns, script)
        for i in range(reps):
            order = [("direct", direct, None), ("proxied", proxied, script)]
            if i % 2:
                order.reverse()  # alternate, so that neither side always runs first
            for name, url, scr in order:
                before = cpu_ticks(proxy, "^nginx: ")
                r = wrk(pid, url, seconds, conns, scr)
                r["nginx_cpu_ms_per_req"] = (cpu_ticks(proxy, "^nginx: ") - before) * 1000 / hz / r["requests"]
                out[name].append(r)
                log(f"  wrk {name} {i + 1}/{reps}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms")
        return out
    finally:
        os.unlink(script)
        r = lab.playbook("proxy-restore", "site.yml", "--tags", "nginx_proxy")
        m2 = RATE.search(docker("exec", proxy, "cat", DRIFT_FILE))
        if not m2 or m2.group(2) != m.group(2) or r["changed"] == 0:
            raise RuntimeError("site.yml --tags nginx_proxy did not restore the proxy's rate limit")
        log(f"  rate limit restored to {m2.group(2)} by site.yml --tags nginx_proxy")


# --------------------------------------------------------------------------- login check cost
CRYPT_SCRIPT = r"""
import ctypes, json, sys, time
lib = ctypes.CDLL("libcrypt.so.1")
lib.crypt.restype = ctypes.c_char_p
lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
cfg = json.loads(sys.argv[1])
pw = b"airlock-bench-not-a-real-password"
salt = {"$2": "abcdefghijklmnopqrstuu"}
out = {}
for name, prefix, n, batches in cfg:
    setting = prefix + salt.get(prefix[:2], "abcdefghijklmnop")
    h = lib.crypt(pw, setting.encode())
    if not h or not h.startswith(prefix.encode()):
        out[name] = {"error": "crypt(3) does not support " + prefix}
        continue
    assert lib.crypt(b"wrong", h) != h
    per = []
    for _ in range(batches):
        t = time.process_time()
        for _ in range(n):
            ok = lib.crypt(pw, h) == h
        per.append((time.process_time() - t) / n * 1000)
        assert ok
    out[name] = {"ms": per, "n": n}
print(json.dumps(out))
"""


def role_defaults() -> dict:
    import yaml
    d = yaml.safe_load((ROOT / "roles" / "nginx_proxy" / "defaults" / "main.yml").read_text())
    return {"scheme": d["nginx_proxy_htpasswd_hash_scheme"], "rounds": int(d["nginx_proxy_htpasswd_sha_rounds"]),
            "cost": int(d["nginx_proxy_htpasswd_bcrypt_cost"])}


def bench_login(lab: Lab, batches: int, smoke: bool) -> dict:
    d = role_defaults()
    cfg = []
    for name, fmt in SCHEMES.items():
        prefix = fmt.format(rounds=d["rounds"], cost=d["cost"])
        n = (2 if smoke else 10) if name == "bcrypt" else (10 if smoke else 100)
        cfg.append([name, prefix, n, batches])
    res = json.loads(docker("exec", "-i", lab.container("proxy"), "python3", "-", json.dumps(cfg),
                            input_=CRYPT_SCRIPT, timeout=900))
    deployed = docker("exec", lab.container("proxy"), "sh", "-c",
                      "cut -d: -f2 /etc/nginx/airlock.htpasswd | head -n1 | cut -c1-16", check=False).strip()
    ident = {"6": "sha512_crypt", "5": "sha256_crypt", "2b": "bcrypt", "2y": "bcrypt", "2a": "bcrypt"}
    m = re.match(r"\$(\w+)\$(rounds=\d+\$|\d\d\$)?", deployed)
    kind = ident.get(m.group(1), "unknown") if m else "unknown"
    return {"defaults": d, "schemes": res, "deployed_prefix": m.group(0) if m else "?", "deployed": kind,
            "settings": {c[0]: c[1] for c in cfg}}


# --------------------------------------------------------------------------- LLM gateway overhead
GATEWAY_UNIT = "airlock-llm-gateway.service"
GATEWAY_USER = "airlock-llm"
GATEWAY_PORT = 4000
FAKE_LLM_PORT = 8000
OPENHANDS_ENV = "/etc/openhands/openhands.env"
MODES = ("plain", "stream")

# One batch of chat completions from one client, timed request by request. Run by python3
# reading this program on stdin, with the configuration (URL, key, counts) appended as a
# literal: the key is never on a command line (those of docker exec and runuser are logged).
LLM_SCRIPT = r"""
import http.client, json, socket, time
from urllib.parse import urlsplit

# The fake LLM writes an answer's headers and body separately: on a keep-alive connection
# Nagle's algorithm then holds the body until the client's delayed ACK. A quick ACK keeps
# that stand-in artifact out of the client's own timings.
QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def main(cfg):
    u = urlsplit(cfg["url"])
    path = u.path.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + cfg["key"]}
    body = {"model": cfg["model"], "max_tokens": 16,
            "messages": [{"role": "user", "content": "airlock benchmark: say hello."}]}
    out = {"plain": [], "stream": [], "stream_first": [], "errors": [], "stopped_early": False}
    state = {"conn": None}

    def one(stream):
        data = json.dumps(dict(body, stream=stream)).encode()
        for attempt in (0, 1):  # a keep-alive connection the server closed is opened again, once
            if state["conn"] is None:
                state["conn"] = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=cfg["timeout"])
            conn = state["conn"]
            t0 = time.perf_counter()
            first = None
            try:
                conn.request("POST", path, data, headers)
                if QUICKACK is not None and conn.sock is not None:
                    conn.sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
                r = conn.getresponse()
                if stream and r.status == 200:
                    chunks = []
                    while True:
                        line = r.readline()
                        if not line:
                            break
                        if first is None and line.startswith(b"data:"):
                            first = time.perf_counter()
                        chunks.append(line)
                    payload = b"".join(chunks)
                else:
                    payload = r.read()
                t1 = time.perf_counter()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                state["conn"] = None
                if attempt:
                    return None, None, "%s: %s" % (type(e).__name__, e)
                continue
            if r.will_close:
                conn.close()
                state["conn"] = None
            if r.status != 200:
                return None, None, "HTTP %d: %s" % (r.status, payload[:200].decode(errors="replace"))
            if stream:
                ok = b"data: [DONE]" in payload
            else:
                try:
                    ok = bool(json.loads(payload)["choices"][0]["message"]["content"])
                except (ValueError, KeyError, IndexError, TypeError):
                    ok = False
            if not ok:
                return None, None, "incomplete answer: %s" % payload[:200].decode(errors="replace")
            return (t1 - t0) * 1000, (first - t0) * 1000 if first else None, None
        return None, None, "unreachable"

    for i in range(cfg["warmup"]):
        for mode in ("plain", "stream"):
            one(mode == "stream")
    deadline = time.monotonic() + cfg["max_seconds"]
    for i in range(cfg["n"]):
        if time.monotonic() > deadline:
            out["stopped_early"] = True
            break
        for mode in (("plain", "stream") if i % 2 == 0 else ("stream", "plain")):
            ms, first, err = one(mode == "stream")
            if err:
                out["errors"].append(mode + ": " + err)
            else:
                out[mode].append(ms)
                if mode == "stream" and first is not None:
                    out["stream_first"].append(first)
    print(json.dumps(out))
"""

# RSS of the gateway's processes: the unit's MainPID and all its descendants (and, where
# the cgroup has it, the unit's memory.current). Run by root on the host.
RSS_SCRIPT = r"""
import json, os, subprocess
main = int(subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", "%s"], capture_output=True,
                          text=True).stdout.strip() or 0)
current = subprocess.run(["systemctl", "show", "-p", "MemoryCurrent", "--value", "%s"], capture_output=True,
                         text=True).stdout.strip()
children = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            with open("/proc/%%s/stat" %% p) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(p))
pids, todo = [], [main] if main else []
while todo:
    p = todo.pop()
    pids.append(p)
    todo += children.get(p, [])
rss = pss = 0
for p in pids:
    try:
        with open("/proc/%%d/status" %% p) as f:
            rss += int(next(x for x in f if x.startswith("VmRSS:")).split()[1])
        with open("/proc/%%d/smaps_rollup" %% p) as f:
            pss += int(next(x for x in f if x.startswith("Pss:")).split()[1])
    except (OSError, StopIteration, ValueError):
        pass
print(json.dumps({"main_pid": main, "pids": len(pids), "rss_kib": rss, "pss_kib": pss,
                  "memory_current": int(current) if current.isdigit() else None}))
""" % (GATEWAY_UNIT, GATEWAY_UNIT)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def gateway_rss(lab: Lab) -> dict:
    return json.loads(docker("exec", "-i", lab.container("openhands"), "python3", "-", input_=RSS_SCRIPT))


def llm_batch(argv: list[str], cfg: dict, secrets: list[str]) -> dict:
    """One timed batch: LLM_SCRIPT on stdin, with its configuration (and key) appended."""
    program = LLM_SCRIPT + f"\nmain(json.loads({json.dumps(cfg)!r}))\n"
    limit = int(cfg["max_seconds"] + cfg["timeout"] * 4 + 120)  # the client stops itself long before
    try:
        res = run(argv, check=False, input=program, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"plain": [], "stream": [], "stream_first": [], "errors": [f"client still running after {limit} s"],
                "stopped_early": True}
    text = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    for s in secrets:  # whatever a server or the client printed, never a key in the results
        text = text.replace(s, "<key>")
    if res.returncode != 0 or not text.startswith("{"):
        err = (res.stdout + res.stderr)[-600:]
        for s in secrets:
            err = err.replace(s, "<key>")
        return {"plain": [], "stream": [], "stream_first": [], "errors": [f"client exited {res.returncode}: {err}"],
                "stopped_early": True}
    return json.loads(text)


def bench_gateway(lab: Lab, rounds: int, n: int, warmup: int) -> dict:
    """Chat completions straight to the fake LLM (as the gateway's user, on the host) against
    the same request through the gateway (from a sandbox container), in interleaved batches;
    and the gateway's memory, idle and after each round of load."""
    host = lab.container("openhands")
    if docker("exec", host, "systemctl", "is-active", GATEWAY_UNIT, check=False).strip() != "active":
        return {"skipped": f"{GATEWAY_UNIT} is not active on the server (llm_gateway role not applied)"}
    secrets_dir = ROOT / f".{lab.name}"
    try:
        provider_key = (secrets_dir / "llm-api-key").read_text().strip()
        gateway_key = (secrets_dir / "llm-gateway-key").read_text().strip()
    except OSError as e:
        return {"skipped": f"the lab's LLM keys are not readable ({e.strerror}: {e.filename})"}
    import yaml
    lab_vars = yaml.safe_load((ROOT / "inventories" / "lab" / "group_vars" / "all" / "lab.yml").read_text())
    airlock_vars = yaml.safe_load((ROOT / "inventories" / "lab" / "group_vars" / "all" / "airlock.yml").read_text())
    model = airlock_vars["airlock_llm_model"].split("/", 1)[-1]  # the name the gateway serves it under
    direct_url = f"http://llm.{lab_vars['lab_domain']}:{FAKE_LLM_PORT}/v1"
    gateway_url = f"http://host.docker.internal:{GATEWAY_PORT}/v1"
    env = docker("exec", host, "sh", "-c", f"grep -E '^AGENT_SERVER_IMAGE_(REPOSITORY|TAG)=' {OPENHANDS_ENV}")
    image = dict(line.split("=", 1) for line in env.split())
    sandbox_image = f"{image['AGENT_SERVER_IMAGE_REPOSITORY']}:{image['AGENT_SERVER_IMAGE_TAG']}"
    max_seconds = 60.0
    sides = {
        # The gateway's user is the only one the firewall lets reach the LLM endpoint.
        "direct": (["docker", "exec", "-i", "-w", "/tmp", host, "runuser", "-u", GATEWAY_USER, "--", "python3", "-"],
                   {"url": direct_url, "key": provider_key}),
        # A sandbox, started as OpenHands starts them: the agent's own path to the gateway.
        "gateway": (["docker", "exec", "-i", host, "docker", "run", "--rm", "-i", "--add-host",
                     "host.docker.internal:host-gateway", sandbox_image, "python3", "-"],
                    {"url": gateway_url, "key": gateway_key}),
    }
    out: dict = {"rounds": [], "n": n, "warmup": warmup, "direct_url": direct_url, "gateway_url": gateway_url,
                 "client_direct": f"runuser -u {GATEWAY_USER} on the server",
                 "client_gateway": f"sandbox container ({sandbox_image})",
                 "model": model, "max_seconds_per_batch": max_seconds}
    time.sleep(2)
    out["rss_idle"] = gateway_rss(lab)
    log(f"  gateway idle: {out['rss_idle']['rss_kib'] / 1024:.0f} MiB RSS in {out['rss_idle']['pids']} process(es)")
    for i in range(rounds):
        order = ["direct", "gateway"] if i % 2 == 0 else ["gateway", "direct"]
        rnd = {}
        for side in order:
            argv, extra = sides[side]
            cfg = {**extra, "model": model, "n": n, "warmup": warmup if i == 0 else 0, "timeout": 30,
                   "max_seconds": max_seconds}
            rnd[side] = llm_batch(argv, cfg, [provider_key, gateway_key])
        rnd["rss_after"] = gateway_rss(lab)
        out["rounds"].append(rnd)
        msg = ", ".join(f"{side} {mode} p50 {fmt(percentile(rnd[side][mode], 50))} ms"
                        for side in ("direct", "gateway") for mode in MODES)
        errs = sum(len(rnd[s]["errors"]) for s in sides)
        log(f"  LLM round {i + 1}/{rounds}: {msg}; gateway {rnd['rss_after']['rss_kib'] / 1024:.0f} MiB RSS"
            + (f"; {errs} failed request(s)" if errs else ""))
    errors = [e for r in out["rounds"] for s in sides for e in r[s]["errors"]]
    if errors:
        out["failed"] = f"{len(errors)} request(s) failed, first: {errors[0][:300]}"
    return out


GATEWAY_MODES = {"plain": "non-streaming", "stream": "streaming, to [DONE]"}
GATEWAY_MEMORY = ("gateway memory idle (RSS, MainPID + children)",
                  "gateway memory after the load (RSS, MainPID + children)")


def gateway_figure_names() -> list[str]:
    names = []
    for label in GATEWAY_MODES.values():
        for pct in ("p50", "p99"):
            names += [f"LLM call {pct}, direct (gateway's user -> fake LLM), {label}",
                      f"LLM call {pct}, through the gateway (sandbox -> gateway), {label}",
                      f"gateway added latency {pct}, {label}",
                      f"gateway / direct latency {pct}, {label}"]
    return names + list(GATEWAY_MEMORY)


def gateway_rows(g: dict) -> list[dict]:
    why = g.get("skipped") or g.get("failed") or ("not run" if not g.get("rounds") else None)
    if why:
        units = ["ms", "ms", "ms", "x"] * 4 + ["MiB", "MiB"]
        return [not_measured(n, u, "-", why) for n, u in zip(gateway_figure_names(), units)]
    rows = []
    rounds = g["rounds"]
    for mode, label in GATEWAY_MODES.items():
        for pct, q in (("p50", 50), ("p99", 99)):
            d = [percentile(r["direct"][mode], q) for r in rounds]
            w = [percentile(r["gateway"][mode], q) for r in rounds]
            count = f"{sum(len(r['direct'][mode]) for r in rounds)} direct and " \
                    f"{sum(len(r['gateway'][mode]) for r in rounds)} gateway requests in {len(rounds)} rounds"
            rows.append(row(f"LLM call {pct}, direct (gateway's user -> fake LLM), {label}", summary(d), "ms", "-",
                            None, 2, count))
            rows.append(row(f"LLM call {pct}, through the gateway (sandbox -> gateway), {label}", summary(w), "ms",
                            "-", None, 2, count))
            rows.append(row(f"gateway added latency {pct}, {label}", summary([b - a for a, b in zip(d, w)]), "ms",
                            "-", None, 2, "gateway minus direct, per round"))
            rows.append(row(f"gateway / direct latency {pct}, {label}", summary([b / a for a, b in zip(d, w)]), "x",
                            "-", None, 2, "per round"))
    idle = g["rss_idle"]["rss_kib"] / 1024
    rows.append(row(GATEWAY_MEMORY[0], summary([idle]), "MiB", "-", None, 0,
                    f"{g['rss_idle']['pids']} process(es), before this run's requests"))
    after = [r["rss_after"]["rss_kib"] / 1024 for r in rounds]
    rows.append(row(GATEWAY_MEMORY[1], summary(after), "MiB", "-", None, 0, "after each round"))
    return rows


# --------------------------------------------------------------------------- alert latency
ALERT_SCRIPT = r"""
import json, os, subprocess, sys, time
path, key, timeout, trigger = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
size = os.path.getsize(path) if os.path.exists(path) else 0
t0 = time.time()
subprocess.run(trigger, capture_output=True, timeout=30)
found = None
while time.time() - t0 < timeout and found is None:
    if os.path.exists(path):
        with open(path) as f:
            f.seek(size)
            for line in f:
                try:
                    a = json.loads(line)
                except ValueError:
                    continue
                if a.get("key") == key:
                    found = a
                    break
    if found is None:
        time.sleep(0.05)
seen = time.time()
print(json.dumps({"found": found is not None, "seen_s": seen - t0,
                  "alert_s": (found["ts"] - t0) if found else None}))
"""


# The egress firewall's drop log (ulogd2 from the drop rules' NFLOG group), which alertd follows.
DROP_LOG = "/var/log/ulog/airlock-egress-drops.log"


def alert_probe(lab: Lab, host: str, key: str, trigger: list[str], timeout: float) -> dict:
    out = docker("exec", "-i", lab.container(host), "python3", "-", ALERT_LOG, key, str(timeout),
                 json.dumps(trigger), input_=ALERT_SCRIPT, timeout=int(timeout) + 60)
    return json.loads(out)


def alertd_active(lab: Lab, host: str) -> bool:
    return docker("exec", lab.container(host), "systemctl", "is-active", "airlock-alertd",
                  check=False).strip() == "active"


def bench_alerts(lab: Lab, reps: int, timeout: float) -> dict:
    out = {"ban": [], "egress": []}
    rnd = random.Random()
    if not alertd_active(lab, "proxy"):
        out["ban_skipped"] = "airlock-alertd is not active on the proxy (monitoring role not applied)"
    else:
        # Addresses from TEST-NET-1 (RFC 5737), fresh each time: alertd suppresses a repeated key.
        used = set()
        for i in range(reps):
            ip = f"192.0.2.{rnd.randint(1, 254)}"
            while ip in used:
                ip = f"192.0.2.{rnd.randint(1, 254)}"
            used.add(ip)
            try:
                r = alert_probe(lab, "proxy", f"fail2ban:{BAN_JAIL}:{ip}",
                                ["fail2ban-client", "set", BAN_JAIL, "banip", ip], timeout)
            finally:
                docker("exec", lab.container("proxy"), "fail2ban-client", "set", BAN_JAIL, "unbanip", ip, check=False)
            out["ban"].append(r)
            log(f"  ban -> alert {i + 1}/{reps}: {r['seen_s']:.2f} s (found={r['found']})")
            if not r["found"]:
                out["ban_skipped"] = f"no alert for the ban of {ip} within {timeout:.0f} s"
                break
    if not alertd_active(lab, "openhands"):
        out["egress_skipped"] = "airlock-alertd is not active on the server (monitoring role not applied)"
        return out
    src = lab.addr("openhands")
    for i in range(reps):
        port = rnd.randint(20000, 29999)
        trigger = ["python3", "-c", "import socket,sys; s=socket.socket(); s.settimeout(1)\n"
                   "try: s.connect((sys.argv[1], int(sys.argv[2])))\nexcept OSError: pass",
                   lab.addr("decoy"), str(port)]
        r = alert_probe(lab, "openhands", f"egress_drop:{src}:{lab.addr('decoy')}:TCP:{port}", trigger, timeout)
        out["egress"].append(r)
        log(f"  dropped egress -> alert {i + 1}/{reps}: found={r['found']} after {r['seen_s']:.2f} s")
        if not r["found"]:
            out["egress_skipped"] = egress_diagnosis(lab, timeout)
            break
    return out


def egress_diagnosis(lab: Lab, timeout: float) -> str:
    """Why a dropped packet raised no alert: name the missing link of the chain (drop rule
    with its NFLOG group -> ulogd2 -> the drop log -> alertd's egress watcher)."""
    why = [f"no alert within {timeout:.0f} s of a blocked connection"]
    server = lab.container("openhands")
    rules = docker("exec", server, "nft", "list", "chain", "inet", "airlock", "egress_drop", check=False)
    if "AIRLOCK-EGRESS-DROP" not in rules:
        why.append("the egress firewall has no drop logging rule")
    elif " group " not in rules:
        why.append("the drop rule logs to the kernel log, not to an NFLOG group: the kernel writes nft `log` "
                   "lines only from the machine's initial network namespace, which a lab host is not")
    if docker("exec", server, "systemctl", "is-active", "ulogd2", check=False).strip() != "active":
        why.append("the drop logger (ulogd2.service) is not active")
    elif f"DST={lab.addr('decoy')} " not in docker("exec", server, "tail", "-n", "200", DROP_LOG, check=False):
        why.append(f"{DROP_LOG} has no line for the decoy (rate limit of the drop rule?)")
    else:
        why.append(f"{DROP_LOG} has the drop: alertd's egress watcher did not raise it (monitoring_egress_source?)")
    return "; ".join(why)


# --------------------------------------------------------------------------- report
def fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def row(name: str, s: dict, unit: str, target: str, met: bool | None, digits: int = 2, note: str = "") -> dict:
    return {"figure": name, "unit": unit, "target": target, "met": met, "note": note, "digits": digits,
            **{k: s.get(k) for k in ("n", "median", "min", "max", "values")}}


def not_measured(name: str, unit: str, target: str, why: str) -> dict:
    return {"figure": name, "unit": unit, "target": target, "met": None, "n": 0, "not_measured": why}


def figures(res: dict) -> list[dict]:
    rows = []
    c = res.get("converge", {})
    conv, rerun, drift = c.get("converge", []), c.get("rerun", []), c.get("drift", [])
    if conv:
        rows.append(row("first converge of site.yml (fresh lab)", summary(conv), "s", "-", None, 1))
    else:
        rows.append(not_measured("first converge of site.yml (fresh lab)", "s", "-",
                                 c.get("skipped", "smoke run on a running lab: no fresh lab was built")))
    rows.append(row("idempotent rerun of site.yml", summary(rerun), "s", "changed=0",
                    bool(rerun) and all(x == 0 for x in c.get("rerun_changed", [1])), 1,
                    f"changed per run: {c.get('rerun_changed')}"))
    if conv:
        ratios = [r / f for r, f in zip(rerun, conv)]
        s = summary(ratios)
        rows.append(row("rerun / first converge", s, "x", "<= 0.25", s["median"] <= 0.25, 3))
    else:
        rows.append(not_measured("rerun / first converge", "x", "<= 0.25", "no first converge in this run"))
    s = summary(drift)
    rows.append(row("single-role drift fix (--tags nginx_proxy)", s, "s", "repairs the edit",
                    bool(drift) and all(x > 0 for x in c.get("drift_changed", [0])), 1,
                    f"changed per run: {c.get('drift_changed')}"))
    s = summary([d / r for d, r in zip(drift, rerun)])
    rows.append(row("drift fix / full rerun", s, "x", "<= 0.10", s["n"] > 0 and s["median"] <= 0.10, 3))

    tc = res.get("task_cost", {})
    if tc.get("raw"):
        rows.append(row("Ansible task on a lab host: docker exec only (raw)", summary(tc["raw"]), "ms", "-", None, 0))
        rows.append(row("Ansible task on a lab host: Python module (ping)", summary(tc["ping"]), "ms", "-", None, 0))
    p = res.get("proxy", {})
    if p.get("skipped") or not p.get("direct"):
        for n in ("proxied / direct throughput",):
            rows.append(not_measured(n, "x", ">= 0.80", p.get("skipped", "not run")))
    else:
        d, q = p["direct"], p["proxied"]
        rows.append(row("direct upstream throughput", summary([x["rps"] for x in d]), "req/s", "-", None, 0))
        rows.append(row("proxied throughput (TLS keep-alive + login)", summary([x["rps"] for x in q]), "req/s",
                        "-", None, 0))
        s = summary([b["rps"] / a["rps"] for a, b in zip(d, q)])
        rows.append(row("proxied / direct throughput", s, "x", ">= 0.80", s["median"] >= 0.80, 3))
        for pct in ("p50", "p99"):
            rows.append(row(f"direct latency {pct}", summary([x[f"{pct}_ms"] for x in d]), "ms", "-", None, 2))
            rows.append(row(f"proxied latency {pct}", summary([x[f"{pct}_ms"] for x in q]), "ms", "-", None, 2))
        rows.append(row("nginx CPU per proxied request", summary([x["nginx_cpu_ms_per_req"] for x in q]), "ms",
                        "-", None, 3))

    lg = res.get("login", {})
    for name, r in lg.get("schemes", {}).items():
        setting = lg["settings"][name]
        label = f"login check CPU, {name} ({setting})" + (" [role default]" if name == lg["defaults"]["scheme"] else "")
        if "error" in r:
            rows.append(not_measured(label, "ms", "-", r["error"]))
        else:
            rows.append(row(label, summary(r["ms"]), "ms", "-", None, 3, f"{r['n']} verifications per batch"))

    rows += gateway_rows(res.get("gateway", {}))

    a = res.get("alerts", {})
    for kind, label in (("ban", "ban -> alert (fail2ban banip -> log sink)"),
                        ("egress", "dropped egress -> alert (blocked connect -> log sink)")):
        got = [x["seen_s"] for x in a.get(kind, []) if x["found"]]
        if a.get(f"{kind}_skipped") or not got:
            rows.append(not_measured(label, "s", "<= 10", a.get(f"{kind}_skipped", "not run")))
        else:
            s = summary(got)
            rows.append(row(label, s, "s", "<= 10", s["max"] <= 10, 2))
    return rows


def table(rows: list[dict]) -> str:
    out = ["| figure | median | spread (min-max) | n | target | met? |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("not_measured"):
            out.append(f"| {r['figure']} | not measured | - | 0 | {r['target']} | not measured: {r['not_measured']} |")
            continue
        if not r.get("n"):
            out.append(f"| {r['figure']} | - | - | 0 | {r['target']} | - |")
            continue
        d, u = r["digits"], r["unit"]
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        out.append(f"| {r['figure']} | {fmt(r['median'], d)} {u} | {fmt(r['min'], d)}-{fmt(r['max'], d)} {u} "
                   f"| {r['n']} | {r['target']} | {met} |")
    return "\n".join(out)


def top_tasks(res: dict, phase: str, n: int = 12) -> list[dict]:
    runs = [r for r in res.get("converge", {}).get("runs", []) if r["phase"] == phase]
    if not runs:
        return []
    runs.sort(key=lambda r: r["secs"])
    return runs[len(runs) // 2]["top_tasks"][:n]


def render(res: dict, rows: list[dict], analysis: str) -> str:
    m = res["machine"]
    mode = "smoke (one short repetition; not for publication)" if res["smoke"] else "full"
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`tools/bench.sh`, which runs `tools/bench.py`); do not edit by hand.",
        "Every figure comes from the same run, so ratios compare like with like on a shared machine.",
        "Median and spread (min-max) over the repetitions (n).",
        "",
        f"Run: {mode}, {res['date']}, {res['elapsed_s'] / 60:.1f} min, lab `{res['lab']}`"
        f"{' (fresh lab per converge repetition)' if res.get('fresh') else ' (reused)'}.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['cores']} cores (shared with other work; load average at start "
        f"{' / '.join(str(x) for x in m['load_at_start'])})",
        f"- RAM: {m['ram_gib']} GiB",
        f"- OS / kernel: {m['os']} / {m['kernel']}",
        f"- Docker: {m['docker']}; {m['ansible']}; Python {m['python']}; {m['wrk']}",
        f"- Date: {m['date']}",
        "",
        "## Figures",
        "",
        table(rows),
        "",
    ]
    tt = top_tasks(res, "rerun")
    if tt:
        lines += ["## Where the idempotent rerun spends its time", "",
                  "Slowest tasks of the median rerun (profile_tasks):", "", "| task | s |", "|---|---|"]
        lines += [f"| {t['task'].replace('|', '/')} | {t['secs']:.2f} |" for t in tt]
        lines.append("")
    reruns = [r for r in res.get("converge", {}).get("runs", []) if r["phase"] == "rerun"]
    logdir = Path(res.get("logdir", ""))
    if reruns and (logdir / f"rerun-{sorted(reruns, key=lambda r: r['secs'])[len(reruns) // 2]['rep']}.log").exists():
        med = sorted(reruns, key=lambda r: r["secs"])[len(reruns) // 2]
        prof = profile_log((logdir / f"rerun-{med['rep']}.log").read_text())
        lines += ["Time of the median rerun by role (sum of its tasks, both tiers) and by play:", "",
                  "| role | tasks | s |", "|---|---|---|"]
        lines += [f"| {r} | {n} | {t:.1f} |" for r, (t, n) in sorted(prof["roles"].items(), key=lambda x: -x[1][0])]
        lines += ["", "| play | s |", "|---|---|"]
        lines += [f"| {name} | {t:.1f} |" for name, t in prof["plays"].items()]
        lines.append("")
    convs = [r for r in res.get("converge", {}).get("runs", []) if r["phase"] == "converge"]
    ping = res.get("task_cost", {}).get("ping")
    if reruns and ping:
        runs = statistics.median([r["module_runs"] for r in reruns])
        secs = statistics.median([r["secs"] for r in reruns])
        per = statistics.median(ping) / 1000
        first = (f"; the first converge {statistics.median([r['module_runs'] for r in convs]):.0f}" if convs else "")
        lines += [f"The rerun ran {runs:.0f} module invocations (tasks x hosts, loop items counted one by one{first}). "
                  f"At the measured floor of {per * 1000:.0f} ms per module invocation on a lab host (ping), they cost at "
                  f"least {runs * per:.0f} s of the rerun's {secs:.0f} s; the rest is the modules' own checks "
                  "(apt cache reads, ufw and systemctl queries, checksums of rendered files, each a few hundred ms "
                  "on this machine), which a no-change rerun pays in full.", ""]
    lines += [analysis.strip(), ""]
    return "\n".join(lines)


def analysis_text(res: dict) -> str:
    lg = res.get("login", {})
    d = lg.get("defaults", {})
    ms = {n: statistics.median(r["ms"]) for n, r in lg.get("schemes", {}).items() if "ms" in r}
    parts = ["## How each figure is measured", "",
             "- **Converge**: each repetition removes the lab, creates it again (`playbooks/lab_up.yml`, not "
             "timed) and times `ansible-playbook site.yml` (wall clock), then the rerun (must report "
             "`changed=0`), then a hand edit of the proxy's `nginx.conf` repaired by "
             "`site.yml --tags nginx_proxy` (must change it back). Packages come from the lab's apt cache "
             "volume, as on any rerun of `make lab`.",
             "- **Proxy**: `wrk -t2 -c{c} -d{s}s --latency` run in the proxy host's network namespace, "
             "alternately straight to the upstream (`{ud}`) and through nginx on the same host (`{up}`: "
             "TLS 1.3, HTTP/1.1 keep-alive, the Basic login checked on every request, then the upstream "
             "keep-alive pool). One wrk is one client, which the proxy holds to `nginx_proxy_rate` "
             "({rate}, burst 200) by design; for the measurement the run lifts that limit in the live "
             "nginx.conf and puts it back with `site.yml --tags nginx_proxy` (checked), so the figure is "
             "the proxy's processing cost, not the policy cap."
             .format(c=res.get("proxy", {}).get("connections", "?"), s=res.get("proxy", {}).get("seconds", "?"),
                     ud=res.get("proxy", {}).get("url_direct", "?"), up=res.get("proxy", {}).get("url_proxied", "?"),
                     rate=res.get("proxy", {}).get("policy_rate", "?")),
             "- **Login check**: CPU time (`process_time`) of `crypt(3)` verifications with the proxy's "
             "own libcrypt, which is what nginx's `auth_basic` calls for `$6$`, `$5$` and `$2b$` "
             "hashes, at the role's default rounds/cost.",
             "- **Alerts**: time from the trigger to the alert line in the host's log sink "
             "(`/var/log/airlock/alerts.jsonl`), polled every 50 ms on the host itself.",
             gateway_method(res.get("gateway", {})),
             ""]
    nginx = res.get("proxy", {}).get("proxied", [])
    nginx_ms = statistics.median([x["nginx_cpu_ms_per_req"] for x in nginx]) if nginx else None
    if ms and d:
        default = d["scheme"]
        share = (f" nginx spent {nginx_ms:.2f} ms of CPU per proxied request in the throughput runs, so the "
                 f"login check is about {min(100, 100 * ms[default] / nginx_ms):.0f}% of the proxy's work per "
                 "request." if nginx_ms and default in ms else "")
        parts += ["## The default login hash", "",
                  f"The role defaults to **{default}** at {d['rounds']} rounds (bcrypt: cost {d['cost']}); "
                  f"the lab's deployed htpasswd starts `{lg.get('deployed_prefix', '?')}`. HTTP Basic login "
                  "has no session: nginx calls `crypt(3)` on every request, and one page of the app makes "
                  "dozens of requests. Measured CPU per check: " +
                  ", ".join(f"{n} {v:.2f} ms ({1000 / v:.0f} checks/s per core)" for n, v in ms.items()) + "." +
                  share + " bcrypt would multiply that per-request cost about "
                  f"{ms.get('bcrypt', 0) / ms.get(default, 1):.0f}-fold and cap the proxy at the rate above "
                  "per core. Its extra resistance only matters once the htpasswd file has leaked (0640, "
                  "root and the nginx group, on the proxy); online guessing is held back by the failed-login "
                  "rate limit (10 per minute) and fail2ban, not by the hash. sha512_crypt is therefore the "
                  "default: the strongest of the glibc schemes every supported distribution verifies, at a "
                  "cost per request the proxy can afford. sha256_crypt saves little; choose bcrypt only for "
                  "human-chosen passwords on a proxy with a low request rate, and rerun this benchmark.",
                  ""]
    parts += gateway_text(res.get("gateway", {}))
    parts += missed_text(res)
    return "\n".join(parts)


def gateway_method(g: dict) -> str:
    return ("- **LLM gateway**: the same chat completion (model `{model}`, non-streaming and streaming, "
            "timed to the last byte of the answer, `data: [DONE]` for a stream) sent by one small Python "
            "client (`http.client`, keep-alive where the server keeps the connection) straight to the fake "
            "LLM (`{du}`) as the gateway's user on the server (`runuser -u airlock-llm`; the firewall refuses "
            "every other user), and through the gateway (`{gu}`) from a sandbox container started as "
            "OpenHands starts them (`docker run --add-host host.docker.internal:host-gateway`, the sandbox "
            "image): the path every LLM call of the agent takes, so the added latency is what the agent pays "
            "(the gateway's processing, its second HTTP hop and the Docker bridge). Keys go to the client on "
            "stdin, never on a command line. The stand-in writes an answer's headers and body in two "
            "writes, so on a keep-alive connection Nagle's algorithm holds the body until the client's "
            "delayed ACK; the benchmark's client asks for quick ACKs (`TCP_QUICKACK`) to keep that artifact out "
            "of its timings, but the gateway's own connection to the stand-in may still meet it (in its p99). "
            "{rounds} rounds of {n} requests per mode and side (after {w} "
            "warm-up requests per mode and side), the two sides alternating which runs first; p50 and p99 are "
            "taken per round and the table gives their median and spread over the rounds, with the added "
            "latency (gateway minus direct) and the ratio per round. Memory: the RSS of the gateway unit's "
            "MainPID and all its descendants, before the first request of the run and after each round."
            .format(model=g.get("model", "?"), du=g.get("direct_url", "?"), gu=g.get("gateway_url", "?"),
                    rounds=len(g.get("rounds", [])) or "?", n=g.get("n", "?"), w=g.get("warmup", "?")))


def gateway_text(g: dict) -> list[str]:
    """The gateway's cost in one paragraph, from this run's figures only."""
    rows = {r["figure"]: r for r in gateway_rows(g)}
    if any(r.get("not_measured") for r in rows.values()):
        return []
    parts = []
    for label in GATEWAY_MODES.values():
        add50 = rows[f"gateway added latency p50, {label}"]["median"]
        add99 = rows[f"gateway added latency p99, {label}"]["median"]
        d50 = rows[f"LLM call p50, direct (gateway's user -> fake LLM), {label}"]["median"]
        w50 = rows[f"LLM call p50, through the gateway (sandbox -> gateway), {label}"]["median"]
        parts.append(f"{label}: {d50:.1f} ms direct and {w50:.1f} ms through the gateway at p50, "
                     f"{add50:+.1f} ms at p50 and {add99:+.1f} ms at p99")
    idle = rows[GATEWAY_MEMORY[0]]["median"]
    after = rows[GATEWAY_MEMORY[1]]["max"]
    return ["## The LLM gateway's cost", "",
            "Per call (" + "; ".join(parts) + "). The fake LLM answers at once, so the added latency is the "
            "cost of the gateway path itself, paid on top of whatever the provider takes. Memory: "
            f"{idle:.0f} MiB RSS idle ({g['rss_idle']['pids']} process(es)), at most {after:.0f} MiB after the "
            "load; the host must leave that much to the gateway beside OpenHands and its sandboxes.", ""]


def missed_text(res: dict) -> list[str]:
    """Why a target is missed, from this run's own profile, and what was changed or is left."""
    rows = {r["figure"]: r for r in res.get("figures", [])}
    tc = res.get("task_cost", {})
    raw = statistics.median(tc["raw"]) if tc.get("raw") else None
    ping = statistics.median(tc["ping"]) if tc.get("ping") else None
    reruns = [r for r in res.get("converge", {}).get("runs", []) if r["phase"] == "rerun"]
    tasks = sorted(r.get("ok", 0) for r in reruns)[len(reruns) // 2] if reruns else None
    out = []
    r = rows.get("rerun / first converge")
    if r and r.get("met") is False:
        cost = (f"One `docker exec` costs {raw:.0f} ms here and the smallest Python module {ping:.0f} ms: "
                f"{ping - raw:.0f} ms of every task is the module's Python start-up on the host (AnsiballZ "
                "unpacking and imports), which an SSH connection pays as well. " if raw and ping else "")
        out += ["## Targets missed: the cause, what was changed, what is left", "",
                f"**Rerun / first converge ({r['median']:.2f}x, target 0.25x).** The profile (tables above) has "
                "no dominant task: a no-change rerun repeats every check of the first converge"
                + (f" ({tasks} task results per run)" if tasks else "") + ", and each costs a module "
                "invocation. " + cost +
                "Fact gathering is not the cause (`gathering = smart` with the JSON fact cache: the rerun "
                "gathers nothing), nor handlers (none run), nor the connection set-up (pipelining is on). "
                "The ratio is high mostly because the lab's first converge is cheap: packages come from the "
                "lab's warm apt cache volume and the OpenHands image from a local archive, so it does little "
                "more than the rerun; on AWS the first converge downloads every package and image and the "
                "rerun stays the same.",
                "",
                "Left, in the order we would try them: (1) a persistent interpreter per host (Mitogen "
                "0.3.x installs on ansible-core 2.19 and has a Docker connection; not adopted until the "
                "whole suite passes with it); (2) configuring the two tiers at the same time (one play, "
                "`strategy: free`), which halves the wall time of both runs but not their ratio; (3) folding "
                "small loops (ufw rules, unit files) into one module call each.",
                ""]
    r = rows.get("drift fix / full rerun")
    if r and r.get("met") is False:
        out += [f"**Drift fix / full rerun ({r['median']:.2f}x, target 0.10x).** Changed: a run limited to "
                "the proxy tier's tags used to open and close the server's maintenance window too (about "
                "5 s of 25-31 s); site.yml now opens it only for a server-tier tag. What is left is the "
                "nginx_proxy role itself, the largest role of the proxy tier (about 37 of the rerun's task "
                "results), plus the argument checks of the other roles, which are tagged `always` so that "
                "bad input fails early in every run.", ""]
    r = rows.get("proxied / direct throughput")
    if r and r.get("met") is False:
        out += [f"**Proxied / direct throughput ({r['median']:.2f}x, target 0.80x).** The proxy's CPU per "
                "request is mostly the password check (see the login section): Basic auth verifies the hash "
                "on every request. The knobs: `nginx_proxy_htpasswd_sha_rounds` (fewer rounds, a cheaper "
                "check, weaker against offline cracking), or a session in front of Basic auth.", ""]
    for r in res.get("figures", []):
        if r.get("not_measured") and r["figure"].startswith("dropped egress"):
            out += [f"**{r['figure']}: not measured in the lab.** {r['not_measured']}. The kernel writes nft "
                    "log lines only from the initial network namespace unless `net.netfilter.nf_log_all_netns` "
                    "is set host-wide, and the lab's hosts have no `/dev/kmsg`. On EC2 the log line reaches "
                    "the journal; the pipeline from that journal line to the alert is covered by the "
                    "monitoring Molecule scenario.", ""]
    return out


# --------------------------------------------------------------------------- main
def pick_lab(args, logdir: Path) -> tuple[Lab, bool]:
    """(lab, created): smoke reuses a running lab; full runs use the bench lab."""
    if os.environ.get("AIRLOCK_LAB_NAME"):
        name = os.environ["AIRLOCK_LAB_NAME"]
        if args.smoke and Lab.running(name):
            return Lab.reuse(name, logdir), False
        env = {k: os.environ.get(k, BENCH_LAB[k]) for k in BENCH_LAB}
        return Lab(env, logdir), True
    if args.smoke:
        for name in REUSABLE_LABS:
            if Lab.running(name):
                return Lab.reuse(name, logdir), False
    return Lab(dict(BENCH_LAB), logdir), True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="one short repetition, reusing a running lab")
    ap.add_argument("--reps", type=int, help="repetitions of each figure (full: 3, smoke: 1)")
    ap.add_argument("--converge-reps", type=int,
                    help="fresh-lab converges in a full run (default: --reps); each rebuilds the lab")
    ap.add_argument("--wrk-seconds", type=int, help="seconds per wrk run (full: 15, smoke: 3)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    ap.add_argument("--llm-rounds", type=int, help="interleaved rounds of LLM calls (full: 5, smoke: 2)")
    ap.add_argument("--llm-requests", type=int,
                    help="requests per mode (plain, streaming), side and round (full: 40, smoke: 10)")
    ap.add_argument("--keep-lab", action="store_true", help="leave a lab this run created in place")
    ap.add_argument("--out", help="Markdown output (full: docs/performance.md, smoke: reports/bench-smoke.md)")
    ap.add_argument("--json", help="JSON output (full: reports/bench.json, smoke: reports/bench-smoke.json)")
    ap.add_argument("--from-json", help="only re-render the Markdown from a saved JSON result")
    args = ap.parse_args()
    if args.from_json:
        res = json.loads(Path(args.from_json).read_text())
        res.setdefault("logdir", str(ROOT / "reports" / "bench"))
        rows = figures(res)
        res["figures"] = rows
        out_md = Path(args.out) if args.out else ROOT / "docs" / "performance.md"
        out_md.write_text(render(res, rows, analysis_text(res)))
        print(table(rows))
        return 0
    reps = args.reps or (1 if args.smoke else 3)
    secs = args.wrk_seconds or (3 if args.smoke else 15)
    tag = "bench-smoke" if args.smoke else "bench"
    out_md = Path(args.out) if args.out else (ROOT / "reports" / f"{tag}.md" if args.smoke else ROOT / "docs" / "performance.md")
    out_json = Path(args.json) if args.json else ROOT / "reports" / f"{tag}.json"
    logdir = ROOT / "reports" / tag
    logdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        print("tools/bench.py needs root (nsenter into the lab's network namespaces)", file=sys.stderr)
        return 2

    start = time.monotonic()
    res: dict = {"smoke": args.smoke, "reps": reps, "machine": machine(),
                 "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    lab, created = pick_lab(args, logdir)
    res["lab"], res["fresh"], res["logdir"] = lab.name, created, str(logdir)
    log(f"lab {lab.name} ({'created by this run' if created else 'reused'}), {reps} repetition(s)")
    try:
        if created and args.smoke:
            res["converge"] = bench_converge(lab, 1, fresh=True)
        elif created:
            res["converge"] = bench_converge(lab, args.converge_reps or reps, fresh=True)
        else:
            res["converge"] = bench_converge(lab, reps, fresh=False)
        log("per-task cost on the lab (docker connection)")
        res["task_cost"] = bench_task_cost(lab, reps, 10 if args.smoke else 20)
        log("proxy overhead (wrk)")
        res["proxy"] = bench_proxy(lab, reps, secs, args.connections)
        log("login check cost per hash scheme")
        res["login"] = bench_login(lab, 3 if args.smoke else 5, args.smoke)
        log("LLM gateway overhead (chat completions, direct and through the gateway) and memory")
        res["gateway"] = bench_gateway(lab, args.llm_rounds or (2 if args.smoke else 5),
                                       args.llm_requests or (10 if args.smoke else 40), 2 if args.smoke else 5)
        log("event-to-alert latency")
        res["alerts"] = bench_alerts(lab, reps if args.smoke else max(reps, 5), 12.0)
    finally:
        if created and not args.keep_lab:
            log(f"removing lab {lab.name}")
            lab.playbook("lab_down-final", "playbooks/lab_down.yml")
    res["elapsed_s"] = time.monotonic() - start
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1, default=str))  # first: the raw results survive a report bug
    rows = figures(res)
    res["figures"] = rows
    out_json.write_text(json.dumps(res, indent=1, default=str))
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(render(res, rows, analysis_text(res)))
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1, default=str))
    print(table(rows))
    log(f"wrote {out_md.relative_to(ROOT) if out_md.is_relative_to(ROOT) else out_md} and "
        f"{out_json.relative_to(ROOT) if out_json.is_relative_to(ROOT) else out_json} in {res['elapsed_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
