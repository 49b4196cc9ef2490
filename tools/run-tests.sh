#!/usr/bin/env bash
# The whole test suite, or some stages of it:
#   tools/run-tests.sh                 the test command: every stage but aws_full, e2e, e2e_ssh, bench, fresh
#   tools/run-tests.sh full            every stage (make test-full)
#   tools/run-tests.sh lint unit aws   just those
#   tools/run-tests.sh molecule NAME.. only those Molecule scenarios
# Stages: lint (ruff on the Python, configured in pyproject.toml; yamllint; ansible-lint production profile), unit (pytest tests/unit),
# roles (bad role input refused before any change: tests/roles), aws (amazon.aws playbooks
# against a moto server on loopback: tests/aws but the two files of aws_full), aws_full (the
# evidence set's enclave and the ACME dns-01 lab: full only), host (audit rules in this machine's real
# kernel: tests/host), molecule (every scenario: converge, idempotence, testinfra verify),
# e2e (the lab end to end with the OpenHands stand-in: tests/e2e/test_lab.py), e2e_real
# (the real OpenHands server built from PyPI in a lab of its own, a conversation through
# the proxy: tests/e2e/test_real_openhands.py; then tools/realserver/test_realserver.py), e2e_ssh
# (the lab reached over SSH as AWS hosts are, converged twice: tests/e2e/test_lab_ssh.py), bench (the benchmark's smoke mode, so it
# cannot rot: tests/bench), fresh (tools/setup.sh then the unit stage in a bare Debian 12
# container, from a clone under /root: tools/testbed/fresh-machine.sh), mutants_fast (the
# fast subset of the mutation matrix, tools/mutants: run on the nginx_proxy scenario right
# after its verify, before its destroy; alone, it brings the scenario up and down itself).
# A whole run: lint, unit, roles and host one after another beside the Molecule scenarios
# (JOBS at a time, default 2) and the real server's image (realserver_image, cached by recipe,
# at low priority); once the last scenario has started and a slot is free, the lab stages one
# after another in that slot, beside the last scenario, what is left of the checks, which
# then run at priority 19, and the AWS checks (aws), started then at priority 19. reports/cpu.log samples the machine's
# CPU use over the run.
# Logs go to reports/<stage>.log; a summary table ends the run.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" PY_COLORS=0 ANSIBLE_FORCE_COLOR=0
JOBS=${JOBS:-2}
mkdir -p reports
declare -A RESULT DURATION

run_stage() { # name command...
  local name=$1; shift
  local start=$SECONDS rc
  echo "[$(date +%T)] start $name"
  "$@" >"reports/$name.log" 2>&1
  rc=$?
  echo "$rc $((SECONDS - start))" >"reports/$name.rc"
  if [ $rc -eq 0 ]; then echo "[$(date +%T)] pass  $name ($((SECONDS - start)) s)";
  else echo "[$(date +%T)] FAIL  $name ($((SECONDS - start)) s), last lines of reports/$name.log:"; tail -n 40 "reports/$name.log" | sed 's/^/    /'; fi
  return $rc
}

# A pytest stage passes only when some test passed: a run where everything skipped (say,
# the host stage on a kernel that refuses audit) proved nothing and fails the stage.
must_pass() { # pytest arguments...
  local out rc
  out=$(mktemp)
  pytest "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ] && ! tail -n 5 "$out" | grep -Eq '[0-9]+ passed'; then
    echo "no test passed (every test skipped or none collected): the stage proves nothing"; rc=5
  fi
  rm -f "$out"
  return "$rc"
}

stage_lint() { ruff check . && yamllint -s . && ansible-lint --offline; }
# unit runs on two workers. roles stays on one: on two it took the CPU the Molecule scenarios
# beside it need (measured in a whole run: roles 1938 s, and the Molecule scenarios, whose
# longest, server_tier, starts last, fell behind the checks chain).
stage_unit() { must_pass -q -rfE -p no:cacheprovider -n 2 tests/unit; }
stage_roles() { must_pass -q -rfE -p no:cacheprovider --durations=15 tests/roles; }
# The AWS stage's two costliest enclave variants run in `full` only (aws_full): the evidence set
# (test_evidence.py: an enclave with CloudWatch Logs, flow logs, a trail and the backup bucket,
# provisioned, rerun, drifted, repaired and torn down twice: six playbook runs of about a hundred
# amazon.aws module calls, each about 1.3 s of CPU) and the ACME dns-01 lab (pebble and a
# proxy container). The test command keeps the base enclave (test_enclave.py), the snapshots,
# the bad input and the lookups.
AWS_FULL_ONLY=(tests/aws/test_evidence.py tests/aws/test_acme_dns01.py)
stage_aws() {
  local skip=() f
  for f in "${AWS_FULL_ONLY[@]}"; do skip+=("--ignore=$f"); done
  must_pass -q -rfE -p no:cacheprovider --durations=15 -n 2 --dist loadfile "${skip[@]}" tests/aws
}
stage_aws_full() { must_pass -q -rfE -p no:cacheprovider --durations=15 -n 2 --dist loadfile "${AWS_FULL_ONLY[@]}"; }
stage_host() { AIRLOCK_HOST_KERNEL_REQUIRED=1 must_pass -q -p no:cacheprovider -rfEs tests/host; }
stage_e2e() { locked e2e must_pass -q -p no:cacheprovider -rfEs tests/e2e/test_lab.py; }
# The lab over SSH, as AWS hosts are reached (inventories/lab-ssh): two converges, no lockout.
stage_e2e_ssh() { locked e2e_ssh must_pass -q -p no:cacheprovider -rfEs tests/e2e/test_lab_ssh.py; }
# The real OpenHands server built from PyPI (tools/realserver, docs/real-openhands.md).
stage_realserver_image() { nice -n 10 tools/realserver/build.sh --save .cache/images/openhands-pypi.tar; }
# Then the image's own proof on this machine's engine (tools/realserver/test_realserver.py: the
# server behind a stand-in of the proxy's route, and the role's env file read by its loader).
stage_e2e_real() {
  image_built || return 1
  locked e2e_real must_pass -q -p no:cacheprovider -rfEs tests/e2e/test_real_openhands.py tools/realserver/test_realserver.py
}
# In a whole run the image was built before the labs: e2e_real stops at once if it failed.
# Alone (tools/run-tests.sh e2e_real), the test builds or reuses the image itself.
image_built() {
  local rc
  [ -n "${IMAGE_BUILD_PID:-}" ] || return 0
  read -r rc _ <reports/realserver_image.rc
  [ "$rc" = 0 ] || { echo "the real server's image did not build (reports/realserver_image.log)"; return 1; }
}
stage_bench() { locked bench must_pass -q -p no:cacheprovider -rfEs tests/bench; }
stage_fresh() { nice -n 10 tools/testbed/fresh-machine.sh; }
stage_mutants_fast() { tools/mutants/run.py --fast --up --down --report reports/mutants-fast.json; }
MUTANTS_FAST_SCENARIO=nginx_proxy
# A scenario's containers and networks have the same names in every checkout: each runs under
# the lock a developer's own run takes too (flock /tmp/airlock-<scenario>.lock, docs/contributing.md),
# so a run of the suite never destroys a scenario someone else is testing, nor the reverse.
scenario() { locked "$1" scenario_locked "$1"; }
scenario_locked() {
  local rc
  [ "$1" = "$MUTANTS_FAST_SCENARIO" ] || { molecule test -s "$1"; return; }
  # `--destroy never` skips the sequence's first destroy too: without this one, the state an
  # interrupted run left behind ("instances already created", no container) fails the converge.
  molecule destroy -s "$1" >/dev/null
  molecule test -s "$1" --destroy never; rc=$?
  [ $rc -ne 0 ] || run_stage mutants_fast stage_mutants_fast
  molecule destroy -s "$1"
  return $rc
}
# The lab stages' labs are named by the tests (e2e, realoh, sshlab, bench): the same lock rule.
locked() { # name command...
  local name=$1; shift
  ( flock 9 || exit 1; "$@" ) 9>"/tmp/airlock-$name.lock"
}

# Longest first (durations of a whole CI run: nginx_proxy with the mutants after it, then
# server_tier), the others alphabetically: two slots then end closer together than in
# alphabetical order, where the longest started last.
LONGEST_SCENARIOS=(nginx_proxy server_tier package_relay)
all_scenarios() {
  local f s
  for s in "${LONGEST_SCENARIOS[@]}"; do [ -f "molecule/$s/molecule.yml" ] && echo "$s"; done
  for f in molecule/*/molecule.yml; do
    s=$(basename "$(dirname "$f")")
    [[ " ${LONGEST_SCENARIOS[*]} " == *" $s "* ]] || echo "$s"
  done
}

# At most $JOBS scenarios at once. The slots count this function's own jobs only: a bare
# `wait -n` also returns when another background stage of the caller ends (the real
# server's image), which let a third scenario start. MOLECULE_EARLY=1: return as soon as
# the last scenario has started and a slot is free again, the scenarios still running left
# in MOLECULE_PIDS for the caller to wait for (a whole run starts the labs in that slot).
MOLECULE_PIDS=()
run_molecule() { # scenarios...
  local s
  [ $# -gt 0 ] || set -- $(all_scenarios)
  for s in "$@"; do
    wait_for_slot
    run_stage "molecule-$s" scenario "$s" &
    MOLECULE_PIDS+=($!)
  done
  if [ "${MOLECULE_EARLY:-0}" = 1 ]; then wait_for_slot; return 0; fi
  [ ${#MOLECULE_PIDS[@]} -eq 0 ] || wait "${MOLECULE_PIDS[@]}" || true
}
# Until fewer than $JOBS of MOLECULE_PIDS run; MOLECULE_PIDS keeps the running ones.
wait_for_slot() {
  local p live
  while :; do
    live=(); for p in "${MOLECULE_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && live+=("$p"); done
    MOLECULE_PIDS=("${live[@]}")
    [ ${#live[@]} -lt "$JOBS" ] && return 0
    wait -n "${live[@]}" || true
  done
}

# Lower a process and its descendants to priority 19 (what they start later inherits it).
# The tree is read from /proc (no procps needed).
yield_cpu() { # pid
  local f line pid ppid rest queue=("$1") i=0
  local -A kids=()
  for f in /proc/[0-9]*/stat; do
    line=$(<"$f") 2>/dev/null || continue
    pid=${line%% *}; rest=${line##*) }; rest=${rest#* }; ppid=${rest%% *}
    kids[$ppid]+="$pid "
  done
  while [ $i -lt ${#queue[@]} ]; do
    pid=${queue[$i]}; i=$((i + 1))
    renice --priority 19 -p "$pid" >/dev/null 2>&1
    # shellcheck disable=SC2206
    queue+=(${kids[$pid]:-})
  done
  echo "[$(date +%T)] the checks still running yield the CPU to the labs (${#queue[@]} processes at priority 19)"
}

# The machine's CPU use every 10 s (time, busy %, load average), to read a run's contention by.
sample_cpu() {
  local prev cur idle total i
  read -ra prev < <(head -n 1 /proc/stat)
  while sleep 10; do
    read -ra cur < <(head -n 1 /proc/stat)
    idle=$(( cur[4] + cur[5] - prev[4] - prev[5] )); total=0
    for i in 1 2 3 4 5 6 7 8; do total=$(( total + cur[i] - prev[i] )); done
    [ "$total" -gt 0 ] && echo "$(date +%T) $(( 100 * (total - idle) / total ))% $(cut -d' ' -f1 /proc/loadavg)"
    prev=("${cur[@]}")
  done
}

# After the table (what a CI page shows of a run is its end): for each failed stage, the
# lines that say what failed (Ansible's failed tasks, Molecule's errors, such as an
# idempotence failure and its tasks, pytest's failed tests and assertion lines), then the
# log's last lines. Ansible's "FAILED - RETRYING" lines are left out: a retried task that
# then passed is not a failure, and those lines hid the one that was.
failure_excerpts() {
  local f name log rc
  for f in reports/*.rc; do
    name=$(basename "$f" .rc); log="reports/$name.log"
    read -r rc _ <"$f"; [ "$rc" = 0 ] && continue
    echo; echo "--- $name failed; from $log:"
    [ -f "$log" ] || { echo "(no log)"; continue; }
    grep -v -e 'FAILED - RETRYING' -e 'glob failed' "$log" \
      | grep -E -A4 '^INTERNALERROR>|^Traceback |fatal: \[|^failed: \[|\[ERROR\]|FAILED! =>|^(ERROR|CRITICAL) |^\* \[|^(FAILED|ERROR) tests|^E  ' \
      | grep -v '^--$' | head -n 40 | cut -c1-400
    echo "... last lines:"
    tail -n 12 "$log" | cut -c1-300
  done
}

summary() {
  local f name rc secs failed=0
  echo; printf '%-32s %-6s %8s\n' STAGE RESULT SECONDS
  for f in reports/*.rc; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .rc); read -r rc secs <"$f"
    printf '%-32s %-6s %8s\n' "$name" "$([ "$rc" = 0 ] && echo pass || echo FAIL)" "$secs"
    [ "$rc" = 0 ] || failed=1
  done
  [ $failed -eq 0 ] || failure_excerpts
  echo; [ $failed -eq 0 ] && echo "ALL TESTS PASSED" || echo "SOME TESTS FAILED (logs in reports/)"
  return $failed
}

rm -f reports/*.rc
start=$SECONDS
full=0
[ "${1:-}" = full ] && { full=1; shift; }
if [ $# -eq 0 ]; then
  sample_cpu >reports/cpu.log 2>&1 &
  sampler=$!
  # Priorities between the stages (below: the checks yield to the labs) need the kernel's
  # autogroups off for the run: ansible-core starts each task's worker in a session of its
  # own (os.setsid), and with autogroups on, every session is scheduled as one entity
  # whatever its processes' nice values, so a niced check's modules still took an equal
  # share. Switched off for the run and back on at its end; where that is not allowed, the
  # labs wait for the checks, as before.
  overlap=0
  autogroup=/proc/sys/kernel/sched_autogroup_enabled
  if [ ! -e "$autogroup" ] || [ "$(cat "$autogroup")" = 0 ]; then
    overlap=1
  elif echo 0 2>/dev/null >"$autogroup"; then
    overlap=1
    trap 'echo 1 >"$autogroup"' EXIT
  fi
  # The checks one after another, beside the Molecule scenarios (JOBS at a time) and the real
  # server's image (at low priority); then the labs one after another, beside what is left of
  # the checks at priority 19 (below). A lab converge is a chain of short processes that waits
  # for the CPU at every step: beside three other stages at the same priority it ran five to
  # six times slower than alone (a pool of every stage measured it), while the other stages
  # barely gained.
  checks=(lint unit roles host)
  # The AWS checks start with the labs instead, at priority 19: a lab keeps one core of the two
  # busy, and the checks that ran before it left the other core idle at the end of a run (the
  # last CI: e2e_real alone for its last minutes), while they took CPU from the Molecule
  # scenarios the labs wait for.
  late=(aws)
  labs=(e2e_real)
  # The test command runs the lab matrix's fast subset: the real server's lab (e2e_real), where
  # a real OpenHands starts the sandboxes the isolation proofs run in. `full` adds its other
  # cells, the stand-in lab (e2e), the lab over SSH (e2e_ssh) and the benchmark's lab (bench),
  # and the setup on a bare machine (fresh), which a CI run's own setup on its fresh machine
  # already is. The whole suite is about 80 minutes of both cores' time: it does not fit CI's
  # 90 minutes with room to spare.
  [ "$full" = 1 ] && { checks+=(fresh); late+=(aws_full); labs=(e2e e2e_real e2e_ssh bench); }
  # Without priorities (autogroups on, below) they stay in the checks' chain, before the labs.
  [ "$overlap" = 1 ] || { checks+=("${late[@]}"); late=(); }
  { for s in "${checks[@]}"; do run_stage "$s" "stage_$s"; done; } &
  checks_pid=$!
  run_stage realserver_image stage_realserver_image &
  IMAGE_BUILD_PID=$!
  # Until the last scenario has started and a slot is free: the labs take that slot (the
  # last scenarios ran with one slot idle for up to their whole length).
  MOLECULE_EARLY=1 run_molecule
  # The last scenario has started and a slot is free: the labs start now, beside it and the
  # rest of the checks, which yield the CPU to them. A lab stage alone keeps one core of the two busy (reports/cpu.log of
  # a whole run: about 52% through e2e_real; its converge is a chain of short processes, its
  # tests mostly wait on containers), so run after the checks it left the other core idle.
  # nice reaches what competes here, with the autogroups off (above): the checks are host
  # processes beside the lab's controller (children inherit the priority); the lab's
  # containers are in Docker's cgroup, with the last scenario's (at the lab's priority).
  late_pid=""
  if [ "$overlap" = 1 ]; then
    yield_cpu "$checks_pid"
    wait "$IMAGE_BUILD_PID"
    if [ ${#late[@]} -gt 0 ]; then
      echo "[$(date +%T)] the AWS checks start beside the labs, at priority 19: ${late[*]}"
      { renice --priority 19 -p "$BASHPID" >/dev/null 2>&1; for s in "${late[@]}"; do run_stage "$s" "stage_$s"; done; } &
      late_pid=$!
    fi
  else
    echo "[$(date +%T)] the kernel's autogroups are on and cannot be switched off here: the labs wait for the checks"
    wait "$checks_pid" "$IMAGE_BUILD_PID"
  fi
  for s in "${labs[@]}"; do run_stage "$s" "stage_$s"; done
  [ ${#MOLECULE_PIDS[@]} -eq 0 ] || wait "${MOLECULE_PIDS[@]}" || true
  [ "$overlap" = 0 ] || wait "$checks_pid"
  [ -z "$late_pid" ] || wait "$late_pid"
  kill "$sampler" 2>/dev/null
else
  stage=$1; shift
  case $stage in
    molecule) run_molecule "$@" ;;
    lint|unit|roles|aws|aws_full|host|fresh|e2e|e2e_real|e2e_ssh|realserver_image|bench|mutants_fast) run_stage "$stage" "stage_$stage"; for s in "$@"; do run_stage "$s" "stage_$s"; done ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
fi
echo "total: $((SECONDS - start)) s"
summary
