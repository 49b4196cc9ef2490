#!/usr/bin/env bash
# The benchmark (docs/performance.md): a thin wrapper around tools/bench/measure.py, which
# measures and writes the JSON result, then renders the report from it (tools/bench/report.py,
# through the template tools/bench/performance.md.j2).
#   tools/bench.sh            full run on a lab of its own; reports/bench.json, rewrites docs/performance.md
#   tools/bench.sh --smoke    one short repetition, reusing a running lab (the test suite runs it)
# Other options: tools/bench.sh --help. Needs root (it enters the lab's network namespaces)
# and wrk, which is installed from the distribution's archive when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_FORCE_COLOR=0 PY_COLORS=0
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing wrk (HTTP load generator) from the distribution's archive"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
  else
    echo "wrk is not installed and cannot be installed here (needs root and apt-get)" >&2
    exit 2
  fi
fi
exec python3 tools/bench/measure.py "$@"
