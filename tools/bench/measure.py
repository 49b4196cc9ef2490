#!/usr/bin/env python3
"""airlock benchmark, the measuring half: every figure of docs/performance.md, measured in ONE run.

This program measures and writes a JSON result: every figure with its median, spread (min-max),
n, unit, target and whether it is met (or "not measured" and why), the machine it ran on, the
raw data, and under "report" the derived numbers the report's sentences state. The report
itself is rendered from that JSON alone by tools/bench/report.py through the template
tools/bench/performance.md.j2, so the document states no figure this program did not measure.

The figures are compared as ratios taken within the same run (rerun / first converge,
drift fix / rerun, proxied / direct), so that a busy machine slows both sides of a ratio
alike. Each figure is repeated; the table gives the median and the spread (min-max).

  tools/bench.sh                 full run on a lab of its own ("bench"): reports/bench.json,
                                 rendered to docs/performance.md
  tools/bench.sh --smoke         one short repetition of everything, reusing a running lab;
                                 writes reports/bench-smoke.{json,md}, never the docs
  tools/bench/report.py RESULT.json --out FILE   render a saved result again

What is measured, and how:
  converge   site.yml on a freshly created lab (lab_down + lab_up first), wall time;
             then site.yml again (must report changed=0), then drift: a hand edit of the
             proxy's nginx.conf repaired by `site.yml --tags nginx_proxy` (must change it back);
             then refusal: site.yml with one bad server-tier value (airlock_ntp_servers, which
             only the server's checks read, so the proxy's preflight passes first: the slowest
             refusal), start to exit; it must fail naming airlock_ntp_servers, before the tier
             plays, with changed=0 on every host.
  proxy      wrk (HTTP/1.1 keep-alive) from the proxy host's network namespace: once straight
             to the upstream (the server's port), once through nginx on that host (TLS + Basic
             login on every request) to the same upstream. wrk is one client, which the proxy
             holds to its per-client rate by design: the run lifts that limit in the live
             nginx.conf and restores it with `site.yml --tags nginx_proxy`, so the figure is the
             proxy's processing cost, not the policy cap. Then, when the proxy has sessions, one
             login (POST /airlock/session, the password once as a Basic header) for a session
             cookie, and a third variant alternating with the two others: the same proxied route
             with only that cookie (the njs check, no password hash). Then wrk POSTs the Basic
             login to /airlock/session for a few seconds on a few connections: logins per second
             and nginx CPU per login, every answer 200. The session is logged out at the end.
  login      CPU time per password verification with the proxy's own crypt(3) (the libcrypt
             nginx's auth_basic calls), for every scheme nginx_proxy supports, at the role's
             default rounds/cost.
  gateway    chat completions straight to the fake LLM (as the gateway's user, on the server) and the
             same request through the LLM gateway from a sandbox container, in interleaved batches:
             p50/p99 of each, the added latency and the ratio; the gateway's RSS idle and after the load.
  alerts     ban -> alert: `fail2ban-client set <jail> banip <TEST-NET address>` on the proxy
             until the alert is in the log sink; dropped egress -> alert: a real connection from
             the server host to a listener of the run's own on the lab's decoy (a fresh port each
             time, answered from the router first), dropped by the egress firewall, logged by
             ulogd2 from the drop rules' NFLOG group, until alertd's alert is in the server's sink.
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

import report

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(ROOT / ".venv" / "bin" / "ansible-playbook")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
PROFILE_LINE = re.compile(r"^(?P<task>.+?)\s-{2,}\s+(?P<secs>[0-9.]+)s$", re.MULTILINE)
TASK_TIMES_CALLBACK = "airlock_task_times"
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
# A bad server-tier value: only the server's checks read it, so the proxy's preflight runs
# whole before the refusal (the slowest case).
BAD_NAME = "airlock_ntp_servers"
BAD_INPUT = {BAD_NAME: ["time.example.org"]}
REFUSAL_FIGURE = "bad input refused (a server-tier value, site.yml start to exit)"

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


def fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


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
    # The engine's default container runtime (crun or runc): every docker exec's cost depends on it.
    runtime = run(["docker", "info", "--format", "{{.DefaultRuntime}}"], check=False).stdout.strip() or "unknown"
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
        "docker_runtime": runtime,
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

    def playbook(self, label: str, *args: str, timeout: int = 1800, must_fail: bool = False) -> dict:
        times = self.logdir / f"{label}.tasks.jsonl"
        times.unlink(missing_ok=True)
        env = {**os.environ, **self.env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
               "ANSIBLE_NOCOLOR": "1", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "25",
               # Each result's own time per host (tools/bench/callback_plugins): the tiers run side by side.
               "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tools" / "bench" / "callback_plugins"),
               "ANSIBLE_CALLBACKS_ENABLED": f"{TASK_TIMES_CALLBACK},ansible.posix.profile_tasks,ansible.posix.timer",
               "AIRLOCK_TASK_TIMES": str(times)}
        start = time.monotonic()
        res = subprocess.run([ANSIBLE_PLAYBOOK, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=timeout)
        secs = time.monotonic() - start
        (self.logdir / f"{label}.log").write_text(res.stdout + res.stderr)
        if must_fail and res.returncode == 0:
            raise RuntimeError(f"ansible-playbook {' '.join(args)} passed; it must fail (log {label}.log)")
        if res.returncode != 0 and not must_fail:
            tail = "\n".join((res.stdout + res.stderr).splitlines()[-40:])
            raise RuntimeError(f"ansible-playbook {' '.join(args)} failed (log {label}.log):\n{tail}")
        recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2])} for m in RECAP.findall(res.stdout)}
        tasks = task_times(times)["top_tasks"] if times.exists() else \
            [{"task": m.group("task").strip(), "secs": float(m.group("secs"))} for m in PROFILE_LINE.finditer(res.stdout)]
        return {"secs": secs, "recap": recap, "module_runs": module_runs(res.stdout), "changed": sum(r["changed"] for r in recap.values()),
                "ok": sum(r["ok"] for r in recap.values()), "top_tasks": tasks,
                **({"output": res.stdout + res.stderr} if must_fail else {})}

    def pid(self, host: str) -> str:
        return docker("inspect", "-f", "{{.State.Pid}}", self.container(host)).strip()


# --------------------------------------------------------------------------- converge figures
def bench_converge(lab: Lab, reps: int, fresh: bool) -> dict:
    """fresh: each repetition rebuilds the lab and times the first converge."""
    out = {"converge": [], "rerun": [], "drift": [], "rerun_changed": [], "drift_changed": [], "runs": [],
           "refused": [], "refused_as_required": []}
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
        r = lab.playbook(f"refused-{i}", "site.yml", "-e", json.dumps(BAD_INPUT), must_fail=True)
        text = r.pop("output")
        as_required = (BAD_NAME in text and "PLAY [Proxy tier" not in text and r["changed"] == 0
                       and len(r["recap"]) >= 2)
        out["refused"].append(r["secs"])
        out["refused_as_required"].append(as_required)
        out["runs"].append({"phase": "refused", "rep": i, **r})
        log(f"  bad input refused in {r['secs']:.1f} s (as required: {as_required})")
        if not as_required:
            raise RuntimeError(f"the bad input was not refused as required: naming {BAD_NAME}, before the "
                               f"tier plays, changed=0 (log refused-{i}.log)")
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
# profile_tasks' line at each task start: the previous task's length, then the run's clock.
CLOCK = re.compile(r"\(\d+:\d+:[0-9.]+\)\s+(?P<h>\d+):(?P<m>\d+):(?P<s>[0-9.]+) \*+ *$", re.MULTILINE)


def _secs(m: re.Match) -> float:
    return int(m.group("h")) * 3600 + int(m.group("m")) * 60 + float(m.group("s"))


def profile_log(text: str) -> dict:
    """Seconds per role and per play of a playbook log. profile_tasks prints, at each task
    start, how long the previous one took and the run's clock. A role's share is the length
    of each task under its header (the header comes first under the linear strategy; under
    the free strategy it may come after the line, so those tasks are not counted). A play's
    share is read off the run's clock, from its first line to the next play's (or the run's
    last), which holds under any strategy."""
    events = sorted([(m.start(), "task", m) for m in TASK_HEADER.finditer(text)] +
                    [(m.start(), "play", m) for m in PLAY_HEADER.finditer(text)], key=lambda e: e[0])
    roles: dict[str, list] = {}
    prev_task = None
    for _, kind, m in events:
        if kind == "play":
            continue
        if prev_task is not None:
            role = prev_task.split(" : ")[0] if " : " in prev_task else "(play level)"
            roles.setdefault(role, [0.0, 0])
            roles[role][0] += _secs(m)
            roles[role][1] += 1
        prev_task = m.group("name")
    clocks = [(m.start(), _secs(m)) for m in CLOCK.finditer(text)]
    starts = []  # (play, its clock at its first line)
    for m in PLAY_HEADER.finditer(text):
        first = next((c for at, c in clocks if at > m.start()), None)
        if first is not None:
            starts.append((m.group("name"), first))
    plays: dict[str, float] = {}
    for i, (play, begin) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else clocks[-1][1]
        plays[play] = plays.get(play, 0.0) + max(end - begin, 0.0)
    return {"roles": roles, "plays": plays}


def host_spans(path: Path) -> list[dict]:
    """Per host of a run: from its first task result's start to its last one's end (its part
    of the run's wall time), the sum of its results' own times, and of its skipped ones."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = []
    for host in sorted({r["host"] for r in rows}):
        mine = [r for r in rows if r["host"] == host]
        out.append({"host": host, "span": max(r["end"] for r in mine) - min(r["start"] for r in mine),
                    "busy": sum(r["end"] - r["start"] for r in mine),
                    "skipped": sum(r["end"] - r["start"] for r in mine if r["status"] == "skipped"),
                    "skipped_n": sum(r["status"] == "skipped" for r in mine)})
    return out


def task_times(path: Path, top: int = 25) -> dict:
    """Each task result's own time on its host (the airlock_task_times callback's JSON lines):
    seconds and results (not counting skipped ones) per role, summed over the hosts, which
    run side by side, so the sum may exceed the run's wall time; and the slowest results,
    each named with its host."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    roles: dict[str, list] = {}
    for r in rows:
        acc = roles.setdefault(r["role"] or "(play level)", [0.0, 0])
        acc[0] += r["end"] - r["start"]
        acc[1] += r["status"] != "skipped"
    slow = sorted(rows, key=lambda r: r["start"] - r["end"])[:top]
    return {"roles": roles,
            "top_tasks": [{"task": f"{r['task']} ({r['host']})", "secs": round(r["end"] - r["start"], 2)} for r in slow]}


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
    out = {"rps": float(rps.group(1)), "requests": int(total.group(1)), "p50_ms": lat.get("50"),
           "p99_ms": lat.get("99"), "non_2xx": int(bad.group(1)) if bad else 0,
           "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}
    counted = NON_200.search(text)  # printed by a script that counts its answers (LOGIN_LUA)
    if counted:
        out["non_200"] = int(counted.group(1))
    return out


def wrk(pid: str, url: str, seconds: int, conns: int, script: str | None) -> dict:
    cmd = ["nsenter", "-t", pid, "-n", "wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    res = run(cmd + [url], timeout=seconds + 60)
    r = parse_wrk(res.stdout)
    # wrk's own count ("Non-2xx or 3xx responses") is of statuses above 399 only.
    if r["non_2xx"] or r["requests"] == 0 or r.get("non_200"):
        bad = f"{r['non_2xx']} error answers" + (f", {r['non_200']} other than 200" if r.get("non_200") else "")
        raise RuntimeError(f"wrk {url}: {bad} of {r['requests']}:\n{res.stdout}")
    return r


def one_line(e: Exception, limit: int = 600) -> str:
    """An error as one line of a table cell or a sentence (wrk's output has many)."""
    return " ".join(str(e).split())[:limit]


def lua_string(value: str) -> str:
    """A Lua string literal of printable ASCII (a Basic token, a session cookie)."""
    if not all(" " <= ch <= "~" for ch in value):
        raise ValueError("not printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The Basic login POSTed to the login endpoint, as the login page's fetch() sends it (no body:
# Content-Length 0). Each thread counts its answers other than 200 (wrk's own count is of
# statuses above 399 only); done() prints the sum, which parse_wrk reads.
LOGIN_LUA = """wrk.method = "POST"
wrk.body = ""
wrk.headers["Authorization"] = %s
non200 = 0
local threads = {}
function setup(thread)
   table.insert(threads, thread)
end
function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
   end
end
function done(summary, latency, requests)
   local n = 0
   for _, t in ipairs(threads) do
      n = n + t:get("non200")
   end
   io.write(string.format("airlock-bench answers other than 200: %%d\\n", n))
end
"""
NON_200 = re.compile(r"^airlock-bench answers other than 200: (\d+)$", re.MULTILINE)


def wrk_script(text: str, scripts: list[str]) -> str:
    """A wrk script in a file of mode 0600 (mkstemp), so that the secret it holds is on no
    command line; its path is added to `scripts`, which the caller removes."""
    fd, path = tempfile.mkstemp(prefix="airlock-bench-", suffix=".lua")
    scripts.append(path)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


RATE = re.compile(r"(zone=airlock_requests:\S+ rate=)([0-9]+r/[sm])")
BURST = re.compile(r"limit_req zone=airlock_requests burst=(\d+)")
LOGIN_FAIL_RATE = re.compile(r"zone=airlock_login_fail:\S+ rate=([0-9]+r/[sm])")
TLS_SCRIPT = r"""
import socket, ssl
c = ssl.create_default_context()
c.check_hostname, c.verify_mode = False, ssl.CERT_NONE
with c.wrap_socket(socket.create_connection(("127.0.0.1", 443), timeout=10)) as s:
    print(s.version())
"""


# nginx_proxy's login endpoint (the login page POSTs the password there once, as a Basic
# header) and its logout (POST with the cookie: the session is revoked).
SESSION_LOGIN_PATH = "/airlock/session"
SESSION_LOGOUT_PATH = "/airlock/logout"
# The login run: a few seconds on a few connections (each login costs a password hash).
LOGIN_SECONDS = 5
LOGIN_CONNECTIONS = 4
# One POST to the proxy on the proxy host (where wrk runs), its secret on stdin, never on a
# command line (docker exec's are logged): the Basic token (login) or the cookie (logout).
SESSION_POST_SCRIPT = r"""
import http.client, json, ssl, sys
path, header = sys.argv[1], sys.argv[2]
secret = sys.stdin.read().strip()
c = ssl.create_default_context()
c.check_hostname, c.verify_mode = False, ssl.CERT_NONE
conn = http.client.HTTPSConnection("127.0.0.1", 443, timeout=10, context=c)
conn.request("POST", path, headers={header: ("Basic " + secret) if header == "Authorization" else secret,
                                    "Content-Length": "0"})
r = conn.getresponse()
r.read()
print(json.dumps({"status": r.status, "set_cookie": [v for k, v in r.getheaders() if k.lower() == "set-cookie"]}))
"""


def session_post(proxy: str, path: str, header: str, secret: str) -> dict:
    """{"status", "set_cookie"} of one POST to the proxy, or {"error"}; the secret is in neither."""
    try:
        res = run(["docker", "exec", "-i", proxy, "python3", "-c", SESSION_POST_SCRIPT, path, header], check=False,
                  input=secret, timeout=60)
    except subprocess.TimeoutExpired:
        return {"error": f"POST {path}: no answer within 60 s"}
    text = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    if res.returncode != 0 or not text.startswith("{"):
        return {"error": f"POST {path} failed: " + (res.stdout + res.stderr)[-400:].replace(secret, "<secret>")}
    return json.loads(text)


def login_answer(answer: dict) -> tuple[str | None, dict]:
    """(cookie "NAME=VALUE", facts) from the login endpoint's answer: 200 and a cookie; else
    (None, {"reason"}). The facts hold the cookie's name and attributes, never its value."""
    if "error" in answer:
        return None, {"reason": answer["error"]}
    cookies = answer.get("set_cookie") or []
    if answer.get("status") != 200 or not cookies:
        return None, {"reason": f"POST {SESSION_LOGIN_PATH} with the Basic login answered HTTP {answer.get('status')} "
                                f"{'with' if cookies else 'without'} a cookie, where a proxy with sessions answers "
                                f"200 with its session cookie"}
    pair, _, attrs = cookies[0].partition(";")
    name, sep, value = pair.strip().partition("=")
    if not sep or not name or not value or not all(" " < ch <= "~" for ch in pair.strip()):
        return None, {"reason": f"POST {SESSION_LOGIN_PATH} answered 200 with a Set-Cookie that is not NAME=VALUE "
                                "in printable ASCII"}
    kept = [a.strip() for a in attrs.split(";") if a.strip() and not a.strip().lower().startswith("max-age")]
    return pair.strip(), {"cookie_name": name, "cookie_attributes": "; ".join(kept)}


def session_login(proxy: str, conf: str, token: str) -> tuple[str | None, dict]:
    """Log in once as the login page does: the session cookie, or None and why."""
    if f"location = {SESSION_LOGIN_PATH} " not in conf:
        return None, {"reason": f"the proxy's sessions are off: its {DRIFT_FILE} has no location {SESSION_LOGIN_PATH} "
                                "(nginx_proxy_session_enabled)"}
    return login_answer(session_post(proxy, SESSION_LOGIN_PATH, "Authorization", token))


def session_logout(proxy: str, cookie: str) -> bool:
    """Revoke the benchmark's session (best effort: True when the proxy confirmed it)."""
    try:
        return session_post(proxy, SESSION_LOGOUT_PATH, "Cookie", cookie).get("status") == 204
    except (OSError, ValueError, subprocess.SubprocessError):
        return False


def tls_version(proxy: str) -> str | None:
    """The TLS version the proxy negotiates with a default client (the one wrk's requests use)."""
    return docker("exec", proxy, "python3", "-c", TLS_SCRIPT, check=False).strip() or None


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


def bench_proxy(lab: Lab, reps: int, seconds: int, conns: int, login_seconds: int) -> dict:
    """wrk from the proxy host: straight to the upstream, through nginx on the same host with
    the Basic login on every request, and (when the proxy has sessions) with a session cookie;
    then logins at the login endpoint."""
    if not shutil.which("wrk") or not shutil.which("nsenter"):
        return {"skipped": "wrk or nsenter is not installed (tools/bench.sh installs wrk from the Debian archive)"}
    proxy = lab.container("proxy")
    pid = lab.pid("proxy")
    direct = f"http://{lab.addr('openhands')}:{UPSTREAM_PORT}{LOAD_PATH}"
    proxied = f"https://127.0.0.1{LOAD_PATH}"
    login_url = f"https://127.0.0.1{SESSION_LOGIN_PATH}"
    import base64
    token = base64.b64encode(f"admin:{lab.password()}".encode()).decode()
    conf = docker("exec", proxy, "cat", DRIFT_FILE)
    m = RATE.search(conf)
    if not m:
        return {"skipped": f"no airlock_requests limit_req_zone in the proxy's {DRIFT_FILE}"}
    hz = os.sysconf("SC_CLK_TCK")
    scripts: list[str] = []
    cookie = None
    out = {"direct": [], "proxied": [], "session": [], "logins": [], "url_direct": direct, "url_proxied": proxied,
           "seconds": seconds, "connections": conns, "threads": 2, "policy_rate": m.group(2),
           "policy_burst": int(b.group(1)) if (b := BURST.search(conf)) else None,
           "tls_version": tls_version(proxy), "session_login_url": login_url,
           "login_seconds": login_seconds, "login_connections": LOGIN_CONNECTIONS}
    try:
        # Files of mode 0600 (mkstemp), so that the login is not on a command line.
        script = wrk_script(f'wrk.headers["Authorization"] = "Basic {token}"\n', scripts)
        # Lift the per-client rate limit for the measurement (one client, wrk, would get 429
        # after the burst); the role puts it back below, and the check after proves it did.
        docker("exec", proxy, "sed", "-E", "-i", r"s#(zone=airlock_requests:\S+ rate=)[0-9]+r/[sm]#\11000000r/s#",
               DRIFT_FILE)
        docker("exec", proxy, "sh", "-c", "nginx -t -q && systemctl reload nginx")
        time.sleep(1)
        variants = [("direct", direct, None), ("proxied", proxied, script)]
        # One login, as the login page does it: the cookie is all the session variant sends.
        cookie, facts = session_login(proxy, conf, token)
        if cookie:
            out["session_cookie_name"] = facts["cookie_name"]
            out["session_cookie_attributes"] = facts["cookie_attributes"]
            session_script = wrk_script(f'wrk.headers["Cookie"] = {lua_string(cookie)}\n', scripts)
            variants.append(("session", proxied, session_script))
            log(f"  logged in at {SESSION_LOGIN_PATH}: session cookie {facts['cookie_name']}")
        else:
            out["session_skipped"] = facts["reason"]
            log(f"  no session variant: {facts['reason']}")
        def without_session(why: str) -> list:
            """The session figures become "not measured", with the reason; the rest goes on."""
            out["session_failed"] = why
            log(f"  {why}")
            return [v for v in variants if v[0] != "session"]

        for name, url, scr in list(variants):  # warm-up: connections, upstream keep-alive, caches
            try:
                wrk(pid, url, 1, conns, scr)
            except RuntimeError as e:
                if name != "session":
                    raise
                variants = without_session(f"the session warm-up failed: {one_line(e)}")
        for i in range(reps):
            order = list(variants)
            if i % 2:
                order.reverse()  # alternate, so that no variant always runs first or last
            for name, url, scr in order:
                before = cpu_ticks(proxy, "^nginx: ")
                try:
                    r = wrk(pid, url, seconds, conns, scr)
                except RuntimeError as e:
                    if name != "session":
                        raise
                    variants = without_session(f"the session run {i + 1}/{reps} failed: {one_line(e)}")
                    continue
                r["nginx_cpu_ms_per_req"] = (cpu_ticks(proxy, "^nginx: ") - before) * 1000 / hz / r["requests"]
                out[name].append(r)
                log(f"  wrk {name} {i + 1}/{reps}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms"
                    f", nginx {r['nginx_cpu_ms_per_req']:.3f} ms CPU per request")
        if cookie:
            # Successful logins only (the password was just proven): the failed-login zone and
            # fail2ban see none of them; the request zone the login passes is lifted above.
            login_script = wrk_script(LOGIN_LUA % lua_string(f"Basic {token}"), scripts)
            for i in range(reps):
                before = cpu_ticks(proxy, "^nginx: ")
                try:
                    r = wrk(pid, login_url, login_seconds, LOGIN_CONNECTIONS, login_script)
                except RuntimeError as e:
                    out["logins_failed"] = f"the login run {i + 1}/{reps} failed: {one_line(e)}"
                    log(f"  {out['logins_failed']}")
                    break
                r["nginx_cpu_ms_per_req"] = (cpu_ticks(proxy, "^nginx: ") - before) * 1000 / hz / r["requests"]
                out["logins"].append(r)
                log(f"  wrk logins {i + 1}/{reps}: {r['rps']:.0f} logins/s, nginx {r['nginx_cpu_ms_per_req']:.2f} ms "
                    "CPU per login")
        return out
    finally:
        try:
            if cookie:
                out["session_logged_out"] = session_logout(proxy, cookie)
        finally:  # whatever the logout did, the scripts go and the rate limit comes back
            for path in scripts:
                os.unlink(path)
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
    mode = docker("exec", lab.container("proxy"), "stat", "-c", "%a %U %G", "/etc/nginx/airlock.htpasswd",
                  check=False).split()
    fail = LOGIN_FAIL_RATE.search(docker("exec", lab.container("proxy"), "cat", DRIFT_FILE, check=False))
    return {"defaults": d, "schemes": res, "deployed_prefix": m.group(0) if m else "?", "deployed": kind,
            "settings": {c[0]: c[1] for c in cfg},
            "htpasswd": dict(zip(("mode", "owner", "group"), mode)) if len(mode) == 3 else {},
            "login_fail_rate": fail.group(1) if fail else None}


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

# RSS and CPU time of the gateway's processes: the unit's MainPID and all its descendants
# (CPU: user and system time, with that of children they waited for; and, where the cgroup
# has it, the unit's memory.current). Run by root on the host.
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
rss = pss = ticks = 0
for p in pids:
    try:
        with open("/proc/%%d/stat" %% p) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        with open("/proc/%%d/status" %% p) as f:
            rss += int(next(x for x in f if x.startswith("VmRSS:")).split()[1])
        with open("/proc/%%d/smaps_rollup" %% p) as f:
            pss += int(next(x for x in f if x.startswith("Pss:")).split()[1])
    except (OSError, StopIteration, ValueError):
        pass
print(json.dumps({"main_pid": main, "pids": len(pids), "rss_kib": rss, "pss_kib": pss,
                  "cpu_ms": ticks * 1000 / os.sysconf("SC_CLK_TCK"),
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
            before = gateway_rss(lab) if side == "gateway" else None
            rnd[side] = llm_batch(argv, cfg, [provider_key, gateway_key])
            if before:
                # The gateway's CPU over the batch, per call (warm-up calls included in the count).
                calls = len(rnd[side]["plain"]) + len(rnd[side]["stream"]) + 2 * cfg["warmup"]
                spent = gateway_rss(lab)["cpu_ms"] - before["cpu_ms"]
                rnd["gateway_cpu_ms_per_call"] = spent / calls if calls else None
        rnd["rss_after"] = gateway_rss(lab)
        out["rounds"].append(rnd)
        msg = ", ".join(f"{side} {mode} p50 {fmt(percentile(rnd[side][mode], 50))} ms"
                        for side in ("direct", "gateway") for mode in MODES)
        msg += f"; gateway CPU {fmt(rnd.get('gateway_cpu_ms_per_call'))} ms per call"
        errs = sum(len(rnd[s]["errors"]) for s in sides)
        log(f"  LLM round {i + 1}/{rounds}: {msg}; gateway {rnd['rss_after']['rss_kib'] / 1024:.0f} MiB RSS"
            + (f"; {errs} failed request(s)" if errs else ""))
    errors = [e for r in out["rounds"] for s in sides for e in r[s]["errors"]]
    if errors:
        out["failed"] = f"{len(errors)} request(s) failed, first: {errors[0][:300]}"
    return out


GATEWAY_MODES = {"plain": "non-streaming", "stream": "streaming, to [DONE]"}
GATEWAY_CPU = "gateway CPU per call (MainPID + children, user + system)"
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
    return names + [GATEWAY_CPU] + list(GATEWAY_MEMORY)


def gateway_rows(g: dict) -> list[dict]:
    why = g.get("skipped") or g.get("failed") or ("not run" if not g.get("rounds") else None)
    if why:
        units = ["ms", "ms", "ms", "x"] * 4 + ["ms", "MiB", "MiB"]
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
    cpu = [r.get("gateway_cpu_ms_per_call") for r in rounds]
    if None in cpu:
        rows.append(not_measured(GATEWAY_CPU, "ms", "-", "the gateway's CPU time was not read in every round"))
    else:
        rows.append(row(GATEWAY_CPU, summary(cpu), "ms", "-", None, 2,
                        "the gateway's processes' CPU time over each round's gateway batch, per call"))
    idle = g["rss_idle"]["rss_kib"] / 1024
    rows.append(row(GATEWAY_MEMORY[0], summary([idle]), "MiB", "-", None, 0,
                    f"{g['rss_idle']['pids']} process(es), before this run's requests"))
    after = [r["rss_after"]["rss_kib"] / 1024 for r in rounds]
    rows.append(row(GATEWAY_MEMORY[1], summary(after), "MiB", "-", None, 0, "after each round"))
    return rows


# --------------------------------------------------------------------------- alert latency
# Run on the host where the alert is raised: note the sink's (and a watched log's) size, run
# the trigger, then poll both files until the alert with `key` is in the sink. A watched log
# (the drop log) tells a drop that was never logged (the drop rules' rate limit) from one
# that was logged but raised no alert: with no matching line within `grace` s it stops early.
ALERT_SCRIPT = r"""
import json, os, subprocess, sys, time
path, key, timeout, trigger = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
watch, needles, grace = (sys.argv[5], json.loads(sys.argv[6]), float(sys.argv[7])) if len(sys.argv) > 7 else (None, [], 0)
size = lambda p: os.path.getsize(p) if os.path.exists(p) else 0
start, wstart = size(path), size(watch) if watch else 0
t0 = time.time()
subprocess.run(trigger, capture_output=True, timeout=30)
found = logged = None
while time.time() - t0 < timeout and found is None:
    if watch and logged is None and os.path.exists(watch):
        with open(watch, errors="replace") as f:
            f.seek(wstart)
            if any(all(n in line for n in needles) for line in f):
                logged = time.time() - t0
    if watch and logged is None and time.time() - t0 > grace:
        break
    if os.path.exists(path):
        with open(path) as f:
            f.seek(start)
            for line in f:
                try:
                    a = json.loads(line)
                except ValueError:
                    continue
                if a.get("key") == key:
                    found = a
                    break
    if found is None:
        time.sleep(%(poll)s)
seen = time.time()
print(json.dumps({"found": found is not None, "seen_s": seen - t0, "logged": logged is not None,
                  "logged_s": logged, "alert_s": (found["ts"] - t0) if found else None}))
"""
ALERT_POLL_S = 0.05
ALERT_SCRIPT = ALERT_SCRIPT % {"poll": ALERT_POLL_S}

# The egress firewall's drop log (ulogd2 from the drop rules' NFLOG group), which alertd follows.
DROP_LOG = "/var/log/ulog/airlock-egress-drops.log"
# A listener of the benchmark's own on the decoy (the lab's decoy program, on fresh ports):
# alertd de-duplicates on source, destination, protocol and port, so each repetition needs
# a port of its own, and the listener lets a positive control prove the decoy answers there.
DECOY_PIDFILE = "/var/tmp/airlock-bench-decoy.pid"
CONNECT_SCRIPT = r"""
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        print("answered" if b"decoy" in c.recv(256) else "no reply")
except OSError as exc:
    print("failed", type(exc).__name__)
"""
# One SYN and no retransmission: each attempt takes one token of the drop log's rate limit.
DROP_CONNECT_TIMEOUT = 0.5
# Seconds a drop may take to reach the drop log before the attempt counts as not logged.
DROP_LOG_GRACE = 3.0
# The drop rules log at most egress_firewall_log_rate (10/minute): a token every 6 s.
DROP_RETRY_WAIT = 7.0


def alert_probe(lab: Lab, host: str, key: str, trigger: list[str], timeout: float,
                watch: tuple[str, list[str], float] | None = None) -> dict:
    extra = [watch[0], json.dumps(watch[1]), str(watch[2])] if watch else []
    out = docker("exec", "-i", lab.container(host), "python3", "-", ALERT_LOG, key, str(timeout),
                 json.dumps(trigger), *extra, input_=ALERT_SCRIPT, timeout=int(timeout) + 60)
    return json.loads(out)


def alertd_active(lab: Lab, host: str) -> bool:
    return docker("exec", lab.container(host), "systemctl", "is-active", "airlock-alertd",
                  check=False).strip() == "active"


def connect_argv(ip: str, port: int, timeout: float) -> list[str]:
    return ["python3", "-c", CONNECT_SCRIPT, ip, str(port), str(timeout)]


def bench_alerts(lab: Lab, reps: int, timeout: float) -> dict:
    out = {"ban": [], "egress": [], "egress_unlogged": [], "poll_s": ALERT_POLL_S, "log": ALERT_LOG,
           "drop_log": DROP_LOG, "timeout_s": timeout}
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
    bench_egress_alerts(lab, reps, timeout, rnd, out)
    return out


def bench_egress_alerts(lab: Lab, reps: int, timeout: float, rnd: random.Random, out: dict) -> None:
    """A real blocked connection from the server host to the decoy, on a fresh port each time,
    until its alert is in the server's log sink. The router (the NAT gateway the server's
    traffic leaves through, no egress firewall) reaches the decoy on that port first."""
    src, decoy = lab.addr("openhands"), lab.addr("decoy")
    attempts = reps + 6  # room for drops the rate limit keeps out of the drop log
    base = rnd.randrange(20000, 29000, 100)
    ports = list(range(base, base + attempts))
    out.update({"egress_src": src, "egress_dst": decoy, "egress_ports": [ports[0], ports[-1]],
                "egress_control_from": "router", "egress_connect_timeout_s": DROP_CONNECT_TIMEOUT,
                "egress_log_grace_s": DROP_LOG_GRACE})
    decoy_c = lab.container("decoy")
    listen = " ".join(f"--tcp {p}" for p in ports)
    docker("exec", "-d", decoy_c, "sh", "-c", f"echo $$ > {DECOY_PIDFILE}; exec python3 /opt/decoy.py {listen}")
    try:
        deadline = time.monotonic() + 20
        while connect_once(lab, "router", decoy, ports[0]) != "answered":
            if time.monotonic() > deadline:
                out["egress_skipped"] = (f"positive control failed: the router does not reach the decoy's "
                                         f"listener on {decoy}:{ports[0]}")
                return
            time.sleep(0.5)
        for port in ports:
            if len(out["egress"]) >= reps:
                break
            control = connect_once(lab, "router", decoy, port)
            if control != "answered":
                out["egress_skipped"] = f"positive control failed: the router got {control!r} from {decoy}:{port}"
                return
            r = alert_probe(lab, "openhands", f"egress_drop:{src}:{decoy}:TCP:{port}",
                            connect_argv(decoy, port, DROP_CONNECT_TIMEOUT), timeout,
                            (DROP_LOG, [f"SRC={src} ", f"DST={decoy} ", f"DPT={port} "], DROP_LOG_GRACE))
            r["port"] = port
            if r["found"]:
                out["egress"].append(r)
                log(f"  dropped egress -> alert {len(out['egress'])}/{reps} (port {port}): {r['seen_s']:.2f} s, "
                    f"drop log line after {r['logged_s']:.2f} s")
            elif not r["logged"]:
                # The drop rules' rate limit kept this drop out of the drop log: a fresh port, later.
                out["egress_unlogged"].append(port)
                log(f"  dropped egress (port {port}): not in the drop log within {DROP_LOG_GRACE:.0f} s "
                    f"(rate limit); next port in {DROP_RETRY_WAIT:.0f} s")
                time.sleep(DROP_RETRY_WAIT)
            else:
                out["egress"].append(r)
                out["egress_skipped"] = egress_diagnosis(lab, timeout)
                log(f"  dropped egress (port {port}): logged, but no alert: {out['egress_skipped']}")
                return
        if len(out["egress"]) < reps:
            out["egress_skipped"] = (f"only {len(out['egress'])} of {reps} drops reached the drop log in "
                                     f"{len(ports)} attempts (rate limit of the drop rules)")
    finally:
        docker("exec", decoy_c, "sh", "-c", f"kill $(cat {DECOY_PIDFILE}) && rm -f {DECOY_PIDFILE}", check=False)


def connect_once(lab: Lab, host: str, ip: str, port: int) -> str:
    return docker("exec", lab.container(host), *connect_argv(ip, port, 3), check=False).strip()


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



# --------------------------------------------------------------------------- results
def row(name: str, s: dict, unit: str, target: str, met: bool | None, digits: int = 2, note: str = "") -> dict:
    """One figure of the result: median, spread (min-max), n, unit, target and met (True, False,
    or None where it has no target); "not_measured" is None for a measured figure."""
    return {"figure": name, "unit": unit, "target": target, "met": met, "note": note, "digits": digits,
            "not_measured": None, **{k: s.get(k) for k in ("n", "median", "min", "max", "values")}}


def not_measured(name: str, unit: str, target: str, why: str) -> dict:
    """A figure this run could not measure, with the reason (the report prints it in its row)."""
    return {"figure": name, "unit": unit, "target": target, "met": None, "note": "", "digits": 0,
            "not_measured": why, "n": 0, "median": None, "min": None, "max": None, "values": []}


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
        rows.append(row("rerun / first converge", s, "x", "<= 0.35", s["median"] <= 0.35, 3))
    else:
        rows.append(not_measured("rerun / first converge", "x", "<= 0.35", "no first converge in this run"))
    s = summary(drift)
    rows.append(row("single-role drift fix (--tags nginx_proxy)", s, "s", "repairs the edit",
                    bool(drift) and all(x > 0 for x in c.get("drift_changed", [0])), 1,
                    f"changed per run: {c.get('drift_changed')}"))
    s = summary([d / r for d, r in zip(drift, rerun)])
    rows.append(row("drift fix / full rerun", s, "x", "<= 0.10", s["n"] > 0 and s["median"] <= 0.10, 3))
    refused = c.get("refused", [])
    if refused:
        s = summary(refused)
        rows.append(row(REFUSAL_FIGURE, s, "s", "<= 10", s["max"] <= 10 and all(c["refused_as_required"]), 1,
                        f"each run named {BAD_NAME}, stopped before the tier plays, changed=0 on every host"))
    else:
        rows.append(not_measured(REFUSAL_FIGURE, "s", "<= 10", "no converge phase in this run"))

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
    rows += session_rows(p)

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
    for kind, label in (("ban", BAN_FIGURE), ("egress", EGRESS_FIGURE)):
        got = [x["seen_s"] for x in a.get(kind, []) if x["found"]]
        if a.get(f"{kind}_skipped") or not got:
            rows.append(not_measured(label, "s", "<= 10", a.get(f"{kind}_skipped", "not run")))
            continue
        s = summary(got)
        note = ""
        if kind == "egress":
            unlogged = a.get("egress_unlogged", [])
            note = (f"from the server host, a fresh port each; {len(unlogged)} attempt(s) kept out of the drop log "
                    "by its rate limit, each repeated on the next port")
        rows.append(row(label, s, "s", "<= 10", s["max"] <= 10, 2, note))
        if kind == "egress":
            rows.append(row(EGRESS_LOG_FIGURE, summary([x["logged_s"] for x in a["egress"] if x["found"]]), "s",
                            "-", None, 2, "the first stage of the figure above"))
    return rows


SESSION_THROUGHPUT = "proxied throughput with a session (TLS keep-alive + cookie)"
SESSION_RATIO = "proxied with a session / direct throughput"
SESSION_RATIO_TARGET = 0.95
SESSION_CPU = "nginx CPU per request with a session (TLS + session check + proxying)"
SESSION_CPU_TARGET = 0.2
LOGIN_RATE = "session logins per second (POST /airlock/session)"
LOGIN_CPU = "nginx CPU per session login (TLS + password check + signed cookie)"


def session_rows(p: dict) -> list[dict]:
    """The session variant against the direct runs of the same repetitions, and the logins."""
    rows = []
    why = (p.get("skipped") or p.get("session_skipped") or p.get("session_failed")
           or (None if p.get("session") else "no session run in this result"))
    if why:
        rows += [not_measured(SESSION_THROUGHPUT, "req/s", "-", why),
                 not_measured(SESSION_RATIO, "x", f">= {SESSION_RATIO_TARGET:.2f}", why),
                 not_measured(SESSION_CPU, "ms", f"<= {SESSION_CPU_TARGET}", why)]
    else:
        d, s = p["direct"], p["session"]
        rows.append(row(SESSION_THROUGHPUT, summary([x["rps"] for x in s]), "req/s", "-", None, 0))
        ratio = summary([b["rps"] / a["rps"] for a, b in zip(d, s)])
        rows.append(row(SESSION_RATIO, ratio, "x", f">= {SESSION_RATIO_TARGET:.2f}",
                        ratio["median"] >= SESSION_RATIO_TARGET, 3, "each session run against the direct run of its "
                                                                    "repetition"))
        for pct in ("p50", "p99"):
            rows.append(row(f"proxied latency {pct} with a session", summary([x[f"{pct}_ms"] for x in s]), "ms", "-", None, 2))
        cpu = summary([x["nginx_cpu_ms_per_req"] for x in s])
        rows.append(row(SESSION_CPU, cpu, "ms", f"<= {SESSION_CPU_TARGET}", cpu["median"] <= SESSION_CPU_TARGET, 3,
                        "all of nginx's work for the request, of which the session check is a part: an upper bound "
                        "of the check's own cost"))
    why = (p.get("skipped") or p.get("session_skipped") or p.get("logins_failed")
           or (None if p.get("logins") else "no login run in this result"))
    if why:
        rows += [not_measured(LOGIN_RATE, "logins/s", "-", why), not_measured(LOGIN_CPU, "ms", "-", why)]
    else:
        lg = p["logins"]
        note = f"wrk, {p['login_connections']} connections, {p['login_seconds']} s per run, every answer 200"
        rows.append(row(LOGIN_RATE, summary([x["rps"] for x in lg]), "logins/s", "-", None, 0, note))
        rows.append(row(LOGIN_CPU, summary([x["nginx_cpu_ms_per_req"] for x in lg]), "ms", "-", None, 2,
                        "nginx's CPU time over each login run, per login"))
    return rows


BAN_FIGURE = "ban -> alert (fail2ban banip -> log sink)"
EGRESS_FIGURE = "dropped egress -> alert (blocked connect -> log sink)"
EGRESS_LOG_FIGURE = "dropped egress -> drop log line (ulogd2)"


def median_run(runs: list[dict]) -> dict | None:
    return sorted(runs, key=lambda r: r["secs"])[len(runs) // 2] if runs else None


def rerun_facts(res: dict) -> dict | None:
    """Where the median rerun spent its time: slowest tasks, time per role and per play, and
    its module invocations against the measured floor of one."""
    runs = res.get("converge", {}).get("runs", [])
    reruns = [r for r in runs if r["phase"] == "rerun"]
    med = median_run(reruns)
    if not med:
        return None
    convs = [r for r in runs if r["phase"] == "converge"]
    out = {"rep": med["rep"], "secs": statistics.median([r["secs"] for r in reruns]),
           "task_results": med.get("ok"), "top_tasks": med["top_tasks"][:12], "roles": [], "plays": [],
           "module_runs": statistics.median([r["module_runs"] for r in reruns]),
           "converge_module_runs": statistics.median([r["module_runs"] for r in convs]) if convs else None,
           "floor_ms": None, "floor_s": None, "per_host": False, "hosts": []}
    logf = Path(res.get("logdir", "")) / f"rerun-{med['rep']}.log"
    timesf = logf.with_suffix(".tasks.jsonl")
    if logf.exists():
        prof = profile_log(logf.read_text())
        roles = task_times(timesf)["roles"] if timesf.exists() else prof["roles"]
        out["per_host"] = timesf.exists()
        out["hosts"] = host_spans(timesf) if timesf.exists() else []
        out["roles"] = [{"role": r, "tasks": n, "secs": t}
                        for r, (t, n) in sorted(roles.items(), key=lambda x: -x[1][0])]
        out["plays"] = [{"play": name, "secs": t} for name, t in prof["plays"].items()]
    ping = res.get("task_cost", {}).get("ping")
    if ping:
        out["floor_ms"] = statistics.median(ping)
        out["floor_s"] = out["module_runs"] * out["floor_ms"] / 1000
    return out


def login_facts(res: dict) -> dict | None:
    """The login hash's cost per scheme, and its share of nginx's work per proxied request."""
    lg = res.get("login", {})
    ms = {n: statistics.median(r["ms"]) for n, r in lg.get("schemes", {}).items() if "ms" in r}
    d = lg.get("defaults")
    if not ms or not d or d["scheme"] not in ms:
        return None
    default = d["scheme"]
    nginx = res.get("proxy", {}).get("proxied", [])
    nginx_ms = statistics.median([x["nginx_cpu_ms_per_req"] for x in nginx]) if nginx else None
    return {"default": default, "rounds": d["rounds"], "cost": d["cost"], "deployed": lg.get("deployed"),
            "deployed_prefix": lg.get("deployed_prefix"), "htpasswd": lg.get("htpasswd", {}),
            "login_fail_rate": lg.get("login_fail_rate"),
            "schemes": [{"name": n, "setting": lg["settings"][n], "ms": v, "per_core_s": 1000 / v,
                         "vs_default": v / ms[default]} for n, v in ms.items()],
            "nginx_ms": nginx_ms, "share_pct": min(100.0, 100 * ms[default] / nginx_ms) if nginx_ms else None}


def session_facts(res: dict, login: dict | None) -> dict | None:
    """The session variant against the Basic one, and what a login costs against both."""
    rows = {r["figure"]: r for r in res["figures"]}
    ratio, cpu = rows.get(SESSION_RATIO), rows.get(SESSION_CPU)
    if not ratio or ratio["not_measured"]:
        return None
    basic = rows.get("nginx CPU per proxied request", {}).get("median")
    basic_ratio = rows.get("proxied / direct throughput", {}).get("median")
    logins = rows.get(LOGIN_CPU, {})
    login_ms = None if logins.get("not_measured") else logins.get("median")
    deployed = (login or {}).get("deployed")
    hash_ms = next((x["ms"] for x in (login or {}).get("schemes", []) if x["name"] == deployed), None)
    return {"ratio": ratio["median"], "cpu_ms": cpu["median"], "basic_ratio": basic_ratio, "basic_cpu_ms": basic,
            "cpu_vs_basic_pct": 100 * cpu["median"] / basic if basic else None,
            "login_rps": rows[LOGIN_RATE]["median"] if login_ms is not None else None, "login_cpu_ms": login_ms,
            "hash_scheme": deployed if hash_ms is not None else None, "hash_ms": hash_ms,
            "requests_per_login": login_ms / cpu["median"] if login_ms is not None and cpu["median"] else None,
            "basic_requests_per_login": login_ms / basic if login_ms is not None and basic else None}


def gateway_facts(g: dict) -> dict | None:
    rows = {r["figure"]: r for r in gateway_rows(g)}
    if any(r.get("not_measured") for r in rows.values()):
        return None
    modes = []
    for label in GATEWAY_MODES.values():
        modes.append({"label": label,
                      "direct_p50": rows[f"LLM call p50, direct (gateway's user -> fake LLM), {label}"]["median"],
                      "gateway_p50": rows[f"LLM call p50, through the gateway (sandbox -> gateway), {label}"]["median"],
                      "added_p50": rows[f"gateway added latency p50, {label}"]["median"],
                      "added_p99": rows[f"gateway added latency p99, {label}"]["median"]})
    return {"modes": modes, "cpu_ms": rows[GATEWAY_CPU]["median"],
            "idle_mib": rows[GATEWAY_MEMORY[0]]["median"], "idle_pids": g["rss_idle"]["pids"],
            "after_max_mib": rows[GATEWAY_MEMORY[1]]["max"]}


def report_facts(res: dict) -> dict:
    """Every figure the report's sentences state, computed from this run's results, so that the
    template (tools/bench/performance.md.j2) only formats numbers it finds here."""
    rows = {r["figure"]: r for r in res["figures"]}
    tc = res.get("task_cost", {})
    raw = statistics.median(tc["raw"]) if tc.get("raw") else None
    ping = statistics.median(tc["ping"]) if tc.get("ping") else None
    rerun = rerun_facts(res)
    login = login_facts(res)
    nginx_role = next((r for r in (rerun or {}).get("roles", []) if r["role"] == "nginx_proxy"), None)
    g = res.get("gateway", {})
    missed = {"rerun": None, "drift": None, "proxy": None, "session": None, "session_cpu": None,
              "not_measured": [r for r in res["figures"] if r.get("not_measured") and r["target"] != "-"]}
    if rows.get("rerun / first converge", {}).get("met") is False:
        missed["rerun"] = {"row": rows["rerun / first converge"], "raw_ms": raw, "ping_ms": ping,
                           "startup_ms": ping - raw if raw is not None and ping is not None else None,
                           "task_results": (rerun or {}).get("task_results")}
    if rows.get("drift fix / full rerun", {}).get("met") is False:
        spans = (rerun or {}).get("hosts") or []
        drift = res.get("converge", {}).get("drift") or []
        missed["drift"] = {"row": rows["drift fix / full rerun"], "nginx_proxy": nginx_role, "hosts": spans,
                           "spans_sum": sum(h["span"] for h in spans) if spans else None,
                           "vs_sum": statistics.median(drift) / sum(h["span"] for h in spans) if spans and drift else None}
    if missed["rerun"] is not None:
        missed["rerun"]["hosts"] = (rerun or {}).get("hosts") or []
    session = session_facts(res, login)
    if rows.get("proxied / direct throughput", {}).get("met") is False:
        missed["proxy"] = {"row": rows["proxied / direct throughput"],
                           "login_share_pct": (login or {}).get("share_pct"),
                           "session_ratio": (session or {}).get("ratio")}
    if rows.get(SESSION_RATIO, {}).get("met") is False:
        missed["session"] = {"row": rows[SESSION_RATIO], "cpu_ms": session["cpu_ms"]}
    if rows.get(SESSION_CPU, {}).get("met") is False:
        missed["session_cpu"] = {"row": rows[SESSION_CPU]}
    return {
        "run": {"mode": "smoke" if res.get("smoke") else "full", "date": res["date"],
                "minutes": res["elapsed_s"] / 60, "lab": res["lab"], "fresh": res.get("fresh", False),
                "reps": res.get("reps")},
        "converge": {"reps": len(res.get("converge", {}).get("rerun", []))},
        "proxy": {k: v for k, v in res.get("proxy", {}).items() if k not in ("direct", "proxied", "session", "logins")},
        "alerts": {k: v for k, v in res.get("alerts", {}).items() if k not in ("ban", "egress")},
        "gateway_method": {"model": g.get("model"), "direct_url": g.get("direct_url"),
                           "gateway_url": g.get("gateway_url"), "rounds": len(g.get("rounds", [])),
                           "n": g.get("n"), "warmup": g.get("warmup")} if g.get("rounds") else None,
        "gateway": gateway_facts(g),
        "rerun": rerun,
        "login": login,
        "session": session,
        "missed": missed,
    }



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
    ap.add_argument("--out", help="the report, rendered from the JSON result by tools/bench/report.py "
                                  "(full: docs/performance.md, smoke: reports/bench-smoke.md)")
    ap.add_argument("--json", help="the result (full: reports/bench.json, smoke: reports/bench-smoke.json)")
    args = ap.parse_args()
    reps = args.reps or (1 if args.smoke else 3)
    secs = args.wrk_seconds or (3 if args.smoke else 15)
    tag = "bench-smoke" if args.smoke else "bench"
    out_md = Path(args.out) if args.out else (ROOT / "reports" / f"{tag}.md" if args.smoke else ROOT / "docs" / "performance.md")
    out_json = Path(args.json) if args.json else ROOT / "reports" / f"{tag}.json"
    logdir = ROOT / "reports" / tag
    logdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        print("tools/bench/measure.py needs root (nsenter into the lab's network namespaces)", file=sys.stderr)
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
        log("proxy overhead (wrk): direct, Basic login, session; logins")
        res["proxy"] = bench_proxy(lab, reps, secs, args.connections, min(secs, LOGIN_SECONDS))
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
    out_json.write_text(json.dumps(res, indent=1, default=str))  # first: the raw results survive a bug below
    res["figures"] = figures(res)
    res["report"] = report_facts(res)
    out_json.write_text(json.dumps(res, indent=1, default=str))
    report.write(out_json, out_md)
    print(report.table(res["figures"]))
    log(f"wrote {shown(out_json)} and {shown(out_md)} in {res['elapsed_s'] / 60:.1f} min")
    return 0


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    sys.exit(main())
