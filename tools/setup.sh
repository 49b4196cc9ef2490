#!/usr/bin/env bash
# One idempotent setup step for everything airlock's lab and tests need:
#   checks (root, Python >= 3.11, disk), the Debian packages the tests and the AWS path
#   use (tools/testbed/install-packages.sh), the Docker engine, the Python venv (.venv,
#   reused while requirements.txt is unchanged), the Ansible collections (Galaxy is
#   contacted only when the installed bundle does not satisfy collections/requirements.yml)
#   and the local base images (rebuilt only when their recipe changes).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

die() { echo "ERROR: $*" >&2; exit 1; }

# --- the environment --------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages, starts the Docker engine and builds images): sudo make ..."
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
  die "Python 3.11 or newer is required, $PYTHON is $("$PYTHON" -V 2>&1). Set PYTHON=/path/to/python3.11"
need_gb=${AIRLOCK_MIN_FREE_GB:-8}
free_gb=$(df -Pk "$root" /var/lib | awk 'NR>1 {print int($4/1048576)}' | sort -n | head -n1)
[ "$free_gb" -ge "$need_gb" ] || die "only ${free_gb} GB free on $root or /var/lib; airlock needs ${need_gb} GB (venv, base images, lab)"

# --- Debian packages ----------------------------------------------------------------------
# Everything the test command and the AWS path run outside the venv (the list and who needs
# each package: tools/testbed/install-packages.sh), plus python3.X-venv (for the Python in
# use, e.g. python3.11-venv) when its venv module or ensurepip is missing.
extra=()
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
  extra+=("$("$PYTHON" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')")
tools/testbed/install-packages.sh "${extra[@]}"

# --- Docker engine ----------------------------------------------------------------------
tools/testbed/ensure-docker.sh

# --- Python venv --------------------------------------------------------------------------
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "creating the Python environment in .venv (pinned requirements.txt) ..."
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q -r requirements.txt >.venv/pip-install.log 2>&1 || {
    tail -n 30 .venv/pip-install.log >&2; die "pip could not install requirements.txt (log: .venv/pip-install.log)"; }
  echo "$want" >"$stamp"
fi

# --- Ansible collections ------------------------------------------------------------------
if ! .venv/bin/python tools/check_collections.py collections/requirements.yml; then
  echo "installed collections do not satisfy collections/requirements.yml; fetching from Ansible Galaxy ..."
  .venv/bin/ansible-galaxy collection install -r collections/requirements.yml -p collections
  .venv/bin/python tools/check_collections.py collections/requirements.yml
fi

# --- images ---------------------------------------------------------------------------------
tools/testbed/build-images.sh
# The test stand-in for the OpenHands server and its sandboxes (see tools/standin/README.md).
tools/standin/build.sh
