#!/usr/bin/env bash
# Regenerate roles/llm_gateway/files/requirements.lock: litellm[proxy]==VERSION and every
# dependency, pinned for CPython 3.10 and newer on Linux (wheels only), as one universal lock
# whose environment markers the role evaluates for each host's Python (llm_gateway_pins).
# Uses uv's resolver (pip cannot resolve for interpreters other than its own), installed in
# a throwaway virtualenv. Then set llm_gateway_litellm_version to VERSION.
#   tools/llm-gateway-lock.sh 1.105.7
set -euo pipefail
version=${1:?usage: $0 LITELLM_VERSION}
cd "$(dirname "$0")/.."
lock=roles/llm_gateway/files/requirements.lock
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q uv
echo "litellm[proxy]==$version" >"$tmp/requirements.in"
"$tmp/venv/bin/uv" pip compile --quiet --universal --python-version 3.10 --only-binary :all: \
  --no-header --no-annotate "$tmp/requirements.in" -o "$tmp/requirements.lock"
{
  echo "# litellm[proxy]==$version and every dependency, pinned for CPython 3.10-3.13 on Linux (wheels only)."
  echo "# Universal lock: the markers are evaluated for the host's Python by the llm_gateway_pins filter."
  echo "# Regenerate with tools/llm-gateway-lock.sh when llm_gateway_litellm_version changes."
  cat "$tmp/requirements.lock"
} >"$lock"
echo "wrote $lock ($(grep -c '==' "$lock") pins)"
