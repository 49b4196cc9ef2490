#!/bin/sh
# Build the STAND-IN amazon-cloudwatch-agent package (README.md) with dpkg-deb:
#   tools/standin/cloudwatch-agent/build.sh OUT.deb
# The same name, paths, ctl and unit as AWS's package; version 0.0.0+airlock.standin.
set -eu
out=${1:?usage: build.sh OUT.deb}
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
h=$root/opt/aws/amazon-cloudwatch-agent
install -d "$root/DEBIAN" "$h/bin" "$h/etc" "$h/logs" "$root/lib/systemd/system" "$root/usr/share/doc/amazon-cloudwatch-agent"
install -m 0755 "$here/agent.py" "$h/bin/amazon-cloudwatch-agent"
install -m 0755 "$here/amazon-cloudwatch-agent-ctl" "$h/bin/amazon-cloudwatch-agent-ctl"
install -m 0644 "$here/amazon-cloudwatch-agent.service" "$root/lib/systemd/system/amazon-cloudwatch-agent.service"
install -m 0644 "$here/README.md" "$root/usr/share/doc/amazon-cloudwatch-agent/README.stand-in.md"
cat > "$root/DEBIAN/control" <<CONTROL
Package: amazon-cloudwatch-agent
Version: 0.0.0+airlock.standin
Architecture: all
Maintainer: airlock tests <root@localhost>
Depends: python3, python3-boto3, systemd
Section: admin
Priority: optional
Description: STAND-IN for AWS's CloudWatch agent (airlock tests only)
 Not AWS's agent: ships files to CloudWatch Logs with boto3 from the same
 configuration subset (collect_list, endpoint_override, region).
CONTROL
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
[ -d /run/systemd/system ] && systemctl daemon-reload || true
POSTINST
chmod 0755 "$root/DEBIAN/postinst"
# Reproducible: fixed owner and file times.
find "$root" -exec touch -h -d @0 {} +
dpkg-deb --root-owner-group -Zgzip --build "$root" "$out" >/dev/null
echo "$out"
