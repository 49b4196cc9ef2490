"""The benchmark's report (tools/bench/report.py and its template performance.md.j2), rendered
from a small sample result (tests/unit/data/bench-sample.json: the raw results
tools/bench/measure.py writes first, with its own figures() and report_facts() applied as a
run applies them). The report states no figure of its own: each number in it comes from the
result, and the template's static text holds no digit but those of names."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tools" / "bench"
SAMPLE = Path(__file__).resolve().parent / "data" / "bench-sample.json"

# Registered: measure.py imports report by name, as it does when run.
report = load_module(BENCH / "report.py", register=True)
measure = load_module(BENCH / "measure.py", register=True)

# Names in the templates' static text that carry digits and are not figures: percentiles, a man
# page section, a protocol, programs, a file, and the recap a no-change rerun must print.
NAMES = ("p50", "p99", "crypt(3)", "HTTP/1.1", "fail2ban", "ulogd2", "performance.md.j2", "changed=0")
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")


def result(mutate=None) -> dict:
    res = json.loads(SAMPLE.read_text())
    if mutate:
        mutate(res)
    res["figures"] = measure.figures(res)
    res["report"] = measure.report_facts(res)
    return json.loads(json.dumps(res))  # what the report reads: the JSON, not Python objects


def rows(res: dict) -> dict:
    return {r["figure"]: r for r in res["figures"]}


def test_a_measured_figure_is_its_row():
    res = result()
    r = rows(res)[measure.EGRESS_FIGURE]
    assert (r["n"], r["median"], r["min"], r["max"], r["met"]) == (2, pytest.approx(1.295), 1.17, 1.42, True)
    assert f"| {measure.EGRESS_FIGURE} | 1.29 s | 1.17-1.42 s | 2 | <= 10 | yes |" in report.render(res)


def test_every_figure_has_a_row_with_its_median_and_spread():
    res = result()
    md = report.render(res)
    assert report.table(res["figures"]) in md
    for r in res["figures"]:
        d, u = r["digits"], r["unit"]
        line = next(x for x in md.splitlines() if x.startswith(f"| {r['figure'].replace('|', '/')} |"))
        assert f"| {r['median']:.{d}f} {u} | {r['min']:.{d}f}-{r['max']:.{d}f} {u} | {r['n']} | {r['target']} |" in line


def test_a_missed_target_says_no_and_why():
    res = result()
    assert rows(res)["proxied / direct throughput"]["met"] is False
    md = report.render(res)
    assert "| proxied / direct throughput | 0.799 x | 0.782-0.816 x | 2 | >= 0.80 | **no** |" in md
    assert "**Proxied / direct throughput (0.799x, target >= 0.80).**" in md
    text = " ".join(md.split())
    assert "About 99% of the proxy's CPU per request is the password check" in text  # 4.067 of 4.112 ms


def test_a_figure_not_measured_shows_its_reason():
    why = "positive control failed: the router does not reach the decoy's listener on 10.217.12.20:24300"

    def no_decoy(res):
        res["alerts"]["egress"] = []
        res["alerts"]["egress_skipped"] = why

    res = result(no_decoy)
    r = rows(res)[measure.EGRESS_FIGURE]
    assert r["n"] == 0 and r["median"] is None and r["met"] is None and r["not_measured"] == why
    assert measure.EGRESS_LOG_FIGURE not in rows(res)
    md = report.render(res)
    assert f"| {measure.EGRESS_FIGURE} | not measured | - | 0 | <= 10 | not measured: {why} |" in md
    assert f"**{measure.EGRESS_FIGURE}: not measured in this run.** {why}." in md


def test_a_smoke_run_on_a_reused_lab():
    def smoke(res):
        res.update(smoke=True, fresh=False)
        res["converge"]["converge"] = []
        res["converge"]["runs"] = [x for x in res["converge"]["runs"] if x["phase"] != "converge"]

    res = result(smoke)
    md = report.render(res)
    assert "Run: smoke (one short repetition; not for publication)" in md and "(reused)" in md
    assert ("| first converge of site.yml (fresh lab) | not measured | - | 0 | - | not measured: smoke run on a "
            "running lab: no fresh lab was built |") in md
    line = next(x for x in md.splitlines() if "module invocations" in x)
    assert "(tasks x hosts, loop items counted one by one)." in line, line


def test_the_templates_static_text_states_no_figure():
    """Outside its Jinja expressions and tags, no template holds a number: a word with a digit
    is one of a few names (percentiles, a protocol, a man page section)."""
    for template in sorted(BENCH.glob("*.j2")):
        static = JINJA.sub(" ", template.read_text())
        for name in NAMES:
            static = static.replace(name, " ")
        words = sorted({w for w in static.split() if re.search(r"\d", w)})
        assert not words, f"{template.name}: figures in the static text: {words}"


def _numbers(value, out: set) -> set:
    """Every way the report may print the numbers of a JSON value: fixed digits (0-3, signed
    too) for numbers, and the numbers inside strings (names, URLs, versions, dates)."""
    if isinstance(value, dict):
        for v in value.values():
            _numbers(v, out)
    elif isinstance(value, list):
        for v in value:
            _numbers(v, out)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, (int, float)):
        out.add(str(value))
        for d in range(4):
            out.update({f"{value:.{d}f}", f"{value:+.{d}f}"})
        if isinstance(value, float) and value < 1:  # a fraction of a second printed in ms
            out.add(f"{value * 1000:.0f}")
    elif isinstance(value, str):
        out.update(NUMBER.findall(value))
    return out


SESSIONS_OFF = ("the proxy's sessions are off: its /etc/nginx/nginx.conf has no location /airlock/session "
                "(nginx_proxy_session_enabled)")


def sessions_off(res):
    """A proxy without sessions: bench_proxy records why, and no session or login run."""
    p = res["proxy"]
    for key in ("session", "logins", "session_cookie_name", "session_cookie_attributes", "session_logged_out"):
        p.pop(key)
    p.update(session=[], logins=[], session_skipped=SESSIONS_OFF)


VARIANTS = {"full": None, "not measured": lambda r: r["alerts"].update(egress=[], egress_skipped="no alert"),
            "sessions off": sessions_off}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_number_in_the_report_comes_from_the_result(variant):
    res = result(VARIANTS[variant])
    md = report.render(res)
    for name in NAMES:
        md = md.replace(name, " ")
    allowed = _numbers(res, set())
    stray = sorted({n for n in NUMBER.findall(md) if n not in allowed})
    assert not stray, f"numbers in the report that are not in the result: {stray}"


# --------------------------------------------------------------------------- sessions
def test_the_session_figures_against_direct_and_their_goals():
    """Session throughput is each session run against the direct run of its repetition; the
    nginx CPU per request with a session is compared with the goal of the session check,
    and the report says it is an upper bound of it."""
    res = result()
    r = rows(res)
    p = res["proxy"]
    ratio = r[measure.SESSION_RATIO]
    assert ratio["values"] == pytest.approx([s["rps"] / d["rps"] for d, s in zip(p["direct"], p["session"])])
    assert (ratio["median"], ratio["met"]) == (pytest.approx(0.9629, abs=1e-4), True)
    cpu = r[measure.SESSION_CPU]
    assert (cpu["median"], cpu["min"], cpu["max"], cpu["met"]) == (pytest.approx(0.728), 0.712, 0.744, False)
    md = report.render(res)
    assert f"| {measure.SESSION_RATIO} | 0.963 x | 0.962-0.964 x | 2 | >= 0.95 | yes |" in md
    assert f"| {measure.SESSION_THROUGHPUT} | 331 req/s | 331-332 req/s | 2 | - | - |" in md
    assert "| proxied latency p50 with a session | 45.22 ms | 45.12-45.31 ms | 2 | - | - |" in md
    assert f"| {measure.SESSION_CPU} | 0.728 ms | 0.712-0.744 ms | 2 | <= 0.2 | **no** |" in md
    text = " ".join(md.split())
    assert "**nginx CPU per request with a session (0.728 ms, target <= 0.2).**" in text
    assert "so a miss here does not show that the check alone misses the goal" in text
    assert "the session check's own cost is at most that figure" in text
    assert ("With a session, nginx spent 0.728 ms of CPU per request against 4.112 ms with the Basic login (18% of it), "
            "and the proxied route reached 0.963x of the direct throughput against 0.799x with the Basic login.") in text
    assert "with which the same route reached 0.963x of the direct throughput in this run." in text
    assert "cookie `__Host-airlock_session` (Path=/; Secure; HttpOnly; SameSite=Strict)" in text
    assert "The session is logged out afterwards." in text
    assert "Proxied with a session / direct throughput (" not in text  # met: no paragraph of its own


def test_a_missed_session_throughput_says_what_a_request_still_costs():
    def slower(res):
        for run, rps in zip(res["proxy"]["session"], (300.0, 303.5)):
            run["rps"] = rps

    res = result(slower)
    assert rows(res)[measure.SESSION_RATIO]["met"] is False
    md = report.render(res)
    assert f"| {measure.SESSION_RATIO} | 0.878 x | 0.871-0.884 x | 2 | >= 0.95 | **no** |" in md
    text = " ".join(md.split())
    assert ("**Proxied with a session / direct throughput (0.878x, target >= 0.95).** No password is hashed per "
            "request any more; what a proxied request still costs is nginx's other work (0.728 ms of CPU per request") in text


def test_the_login_figures():
    """Logins per second and nginx CPU per login, no goal; and what a login costs against the
    password check and the requests it replaces."""
    res = result()
    r = rows(res)
    assert r[measure.LOGIN_RATE]["values"] == [421.6, 415.2]
    assert r[measure.LOGIN_CPU]["median"] == pytest.approx(4.4415)
    md = report.render(res)
    assert f"| {measure.LOGIN_RATE} | 418 logins/s | 415-422 logins/s | 2 | - | - |" in md
    assert f"| {measure.LOGIN_CPU} | 4.44 ms | 4.41-4.47 ms | 2 | - | - |" in md
    text = " ".join(md.split())
    assert ("A login cost 4.44 ms of nginx CPU (418 logins per second), of which the password check (sha512_crypt, "
            "measured above) is about 4.07 ms: as much as 6 requests with the session, or 1.1 with the Basic login.") in text
    assert "`wrk -t2 -c4 -d5s` POSTs the Basic header to `https://127.0.0.1/airlock/session`" in text


def test_sessions_off_are_not_measured_with_the_reason():
    res = result(sessions_off)
    r = rows(res)
    for name in (measure.SESSION_THROUGHPUT, measure.SESSION_RATIO, measure.SESSION_CPU, measure.LOGIN_RATE,
                 measure.LOGIN_CPU):
        assert r[name]["not_measured"] == SESSIONS_OFF and r[name]["n"] == 0, name
    assert res["report"]["session"] is None
    md = report.render(res)
    assert f"| {measure.SESSION_RATIO} | not measured | - | 0 | >= 0.95 | not measured: {SESSIONS_OFF} |" in md
    assert f"| {measure.LOGIN_CPU} | not measured | - | 0 | - | not measured: {SESSIONS_OFF} |" in md
    assert f"**{measure.SESSION_CPU}: not measured in this run.** {SESSIONS_OFF}." in md
    assert f"Sessions: not measured in this run ({SESSIONS_OFF})." in md
    assert "## Sessions:" not in md
    # The rest of the proxy's figures stand.
    assert r["proxied / direct throughput"]["n"] == 2


def test_a_failed_session_run_leaves_the_logins_measured():
    why = "the session run 2/2 failed: wrk https://127.0.0.1/server_info: 12 error answers of 4100"

    def failed(res):
        res["proxy"]["session"] = res["proxy"]["session"][:1]
        res["proxy"]["session_failed"] = why

    res = result(failed)
    r = rows(res)
    assert r[measure.SESSION_RATIO]["not_measured"] == why and r[measure.SESSION_CPU]["not_measured"] == why
    assert r[measure.LOGIN_RATE]["n"] == 2 and not r[measure.LOGIN_RATE]["not_measured"]
    md = report.render(res)
    assert f"**{measure.SESSION_RATIO}: not measured in this run.** {why}." in md


def test_a_result_from_before_the_session_figures_still_renders():
    """A result measured before sessions: its figures say so; and one whose report was derived
    then (no session facts) renders again as it is."""
    def before(res):
        sessions_off(res)
        for key in ("session", "logins", "session_skipped", "session_login_url", "login_seconds",
                    "login_connections"):
            res["proxy"].pop(key)

    res = result(before)
    assert rows(res)[measure.SESSION_RATIO]["not_measured"] == "no session run in this result"
    assert rows(res)[measure.LOGIN_RATE]["not_measured"] == "no login run in this result"
    for key in ("session",):
        res["report"].pop(key)
    for key in ("session", "session_cpu"):
        res["report"]["missed"].pop(key)
    res["report"]["missed"]["proxy"].pop("session_ratio")
    md = report.render(res)
    assert "Sessions:" not in md and "(`nginx_proxy_session_enabled`: the hash once per login)." in " ".join(md.split())


def test_login_answer_takes_the_cookie_and_keeps_its_value_out_of_the_facts():
    value = "v1|admin|c2Vzc2lvbg|1764366000|1764366000|c2lnbmF0dXJl"
    cookie, facts = measure.login_answer({"status": 200, "set_cookie": [
        f"__Host-airlock_session={value}; Max-Age=86400; Path=/; Secure; HttpOnly; SameSite=Strict"]})
    assert cookie == f"__Host-airlock_session={value}"
    assert facts == {"cookie_name": "__Host-airlock_session",
                     "cookie_attributes": "Path=/; Secure; HttpOnly; SameSite=Strict"}
    for answer in ({"status": 404, "set_cookie": []}, {"status": 200, "set_cookie": []},
                   {"status": 401, "set_cookie": ["x=y"]}, {"status": 200, "set_cookie": ["novalue"]},
                   {"status": 200, "set_cookie": ["x=a\tb; Path=/"]},
                   {"error": "POST /airlock/session failed: connection refused"}):
        cookie, facts = measure.login_answer(answer)
        assert cookie is None and len(facts["reason"]) > 10 and set(facts) == {"reason"}, answer


def test_the_wrk_scripts():
    """The login script POSTs with Content-Length 0 (an empty body) and counts the answers
    other than 200, which parse_wrk reads; Lua literals are escaped."""
    assert measure.lua_string('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError):
        measure.lua_string("a\nb")
    lua = measure.LOGIN_LUA % measure.lua_string("Basic YWRtaW46eA==")
    assert 'wrk.method = "POST"' in lua and 'wrk.body = ""' in lua
    assert 'wrk.headers["Authorization"] = "Basic YWRtaW46eA=="' in lua
    assert 'string.format("airlock-bench answers other than 200: %d\\n", n)' in lua
    out = """Running 5s test @ https://127.0.0.1/airlock/session
  Latency Distribution
     50%    8.93ms
     99%   21.40ms
  2112 requests in 5.01s, 1.10MB read
Requests/sec:    421.60
Transfer/sec:    224.00KB
airlock-bench answers other than 200: 3
"""
    r = measure.parse_wrk(out)
    assert (r["rps"], r["requests"], r["p50_ms"], r["non_2xx"], r["non_200"]) == (421.6, 2112, 8.93, 0, 3)
    assert "non_200" not in measure.parse_wrk(out.replace("airlock-bench answers other than 200: 3\n", ""))


def test_the_refusal_figure_needs_each_run_refused_as_required():
    """Bad input refused within 10 s is met only when every run also refused it as required
    (naming the variable, before the tier plays, changed=0): a fast run that changed
    something is no refusal."""
    ok = rows(result())[measure.REFUSAL_FIGURE]
    assert (ok["median"], ok["n"], ok["target"], ok["met"]) == (9.0, 2, "<= 10", True)

    def changed_something(res):
        res["converge"]["refused_as_required"] = [True, False]

    assert rows(result(changed_something))[measure.REFUSAL_FIGURE]["met"] is False

    def slow(res):
        res["converge"]["refused"] = [8.0, 10.5]

    assert rows(result(slow))[measure.REFUSAL_FIGURE]["met"] is False


def test_the_machine_section_names_the_engines_container_runtime():
    """Every docker exec's cost depends on the runtime (crun or runc): a figure read without it
    could not be compared with a run on another engine. A result from before it was recorded
    says so instead of guessing."""
    text = report.render(result())
    assert "(container runtime crun)" in text
    older = result(lambda r: r["machine"].pop("docker_runtime"))
    assert "(container runtime not recorded)" in report.render(older)


def test_a_plays_time_is_read_off_the_runs_clock_under_any_strategy():
    """profile_log's per-play seconds: the free strategy (site.yml's preflight) prints a task's
    header after profile_tasks' line, so summing the lines under headers would leave that
    play near 0 s; the run's clock gives each play its whole span, the last one to the end."""
    last = [0.0]

    def clock(s: float) -> str:  # profile_tasks' line: the previous task's length, the clock
        delta, last[0] = s - last[0], s
        return f"Wednesday 02 December 2026  19:23:00 +0000 (0:00:{delta:06.3f})       0:00:{s:06.3f} **** \n"

    log = ("PLAY [Preflight] ****\n" + clock(0.5) + clock(0.6)
           + "\nTASK [Gathering Facts] ****\nok: [a]\n" + clock(2.0)
           + "\nTASK [x : Check] ****\nok: [b]\n" + clock(5.5)
           + "\nPLAY [Proxy tier] ****\n" + clock(5.6) + "\nTASK [nginx_proxy : Render] ****\n" + clock(6.0)
           + "ok: [a]\n\nTASK [nginx_proxy : Reload] ****\n" + clock(9.0)
           + "ok: [a]\n\nPLAY RECAP ****\n\nTASKS RECAP ****\n" + clock(10.0))
    prof = measure.profile_log(log)
    assert prof["plays"] == pytest.approx({"Preflight": 5.1, "Proxy tier": 4.4})
    # Roles from the headers the linear strategy prints first: nginx_proxy's Render took 3 s.
    assert prof["roles"]["nginx_proxy"][0] == pytest.approx(3.0)


def test_the_task_times_callback_times_each_result_on_its_own_host(tmp_path):
    """Under the free strategy (site.yml's tiers, side by side) task headers interleave, so the
    benchmark times each result on its host (tools/bench/callback_plugins). Two hosts run the
    same role, one of them a longer sleep: each record carries its host, role and own length,
    and task_times sums them per role. (Loose bounds: the check is which host was slow, never
    how fast anything is.)"""
    role = tmp_path / "roles" / "sleeper" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text("- name: Sleep\n  ansible.builtin.command: sleep {{ nap }}\n  changed_when: false\n"
                                   "- name: Skip\n  ansible.builtin.debug: {msg: x}\n  when: false\n")
    (tmp_path / "inv.ini").write_text("slow nap=1.5 ansible_connection=local\nfast nap=0.1 ansible_connection=local\n")
    (tmp_path / "play.yml").write_text("- hosts: all\n  gather_facts: false\n  strategy: ansible.builtin.free\n"
                                       "  roles: [sleeper]\n")
    out = tmp_path / "times.jsonl"
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(tmp_path / "roles"), "AIRLOCK_TASK_TIMES": str(out),
           "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tools" / "bench" / "callback_plugins"),
           "ANSIBLE_CALLBACKS_ENABLED": measure.TASK_TIMES_CALLBACK, "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    env.pop("ANSIBLE_CONFIG", None)
    res = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(tmp_path / "inv.ini"),
                          str(tmp_path / "play.yml")], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    sleeps = {r["host"]: r["end"] - r["start"] for r in rows if r["task"].endswith("Sleep")}
    assert sleeps["slow"] >= 1.4 and sleeps["fast"] < sleeps["slow"] - 0.8, rows
    assert {(r["host"], r["role"], r["status"]) for r in rows} == {
        (h, "sleeper", s) for h in ("slow", "fast") for s in ("ok", "skipped")}, rows
    times = measure.task_times(out)
    assert times["roles"]["sleeper"][1] == 2  # two results, the skipped ones not counted
    assert times["roles"]["sleeper"][0] >= sleeps["slow"] + sleeps["fast"] - 0.01
    assert times["top_tasks"][0]["task"] == "sleeper : Sleep (slow)", times["top_tasks"]
