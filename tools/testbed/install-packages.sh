#!/usr/bin/env bash
# Install from the distribution archive every Debian package that setup, the test command
# (`make test`) and the AWS path run on this machine, when what it provides is missing.
# Idempotent: nothing is installed (and the archive is not contacted) when all is there.
#
#   tools/testbed/install-packages.sh [EXTRA_PACKAGE...]   also install these (setup passes
#                                                          python3-venv when venv is missing)
#
# The list below is the audit of what the suite assumes outside the venv; a fresh Debian
# machine with it installed passes `tools/run-tests.sh fresh` (tools/testbed/fresh-machine.sh).
# Commands inside lab or Molecule containers (curl, nc, ...) come from the base images, not
# from here. Present on every Debian/Ubuntu (Essential or required, so not listed): bash,
# coreutils, tar, gzip, util-linux (setpriv, nsenter), apt.
set -euo pipefail

# what must exist (a command, or a file when it starts with /)   package   who needs it
NEEDS='
dockerd                                 docker.io             the lab, Molecule, e2e, the stand-in and real-server images
crun                                    crun                  the container runtime of the test engine (tools/testbed/ensure-docker.sh)
debootstrap                             debootstrap           tools/testbed/build-images.sh (base images, no registry)
/usr/share/keyrings/debian-archive-keyring.gpg debian-archive-keyring debootstrap of Debian (else it switches to an https mirror)
/etc/ssl/certs/ca-certificates.crt      ca-certificates       tools/realserver/build.sh (pip inside the image build)
auditctl                                auditd                tests/host (audit rules in the real kernel)
ausearch                                auditd                tests/host
ip                                      iproute2              tests/host (network namespaces and veth pairs for the egress firewall test)
nft                                     nftables              tests/host (the egress firewall ruleset in a real kernel)
/usr/sbin/ulogd                         ulogd2                tests/host (the egress firewall drop logger: a real drop to an alert)
ssh-keygen                              openssh-client        tests/unit, tests/aws (key pairs), the AWS key pair
ssh                                     openssh-client        the AWS path (Ansible over SSH, ProxyJump through the proxy)
openssl                                 openssl               tests/unit (test certificates, alertd certificate checks)
curl                                    curl                  the login check make lab prints (curl against the proxy)
wrk                                     wrk                   tests/bench (tools/bench.sh, the benchmark load generator)
restic                                  restic                tests/unit (the backup command with restic: local and S3 repositories)
skopeo                                  skopeo                the AWS path (the controller fetches the OpenHands images), tests/roles
docker-registry                         docker-registry       tests/roles (a local registry the image fetch test pulls from)
pebble                                  pebble                tests/aws (a real ACME server on loopback: the proxy dns-01 certificate through Route 53)
'

missing=("$@")
while read -r what package _; do
  [ -n "$what" ] || continue
  case $what in
    /*) [ -e "$what" ] && continue ;;
    *) command -v "$what" >/dev/null 2>&1 && continue ;;
  esac
  case " ${missing[*]} " in *" $package "*) ;; *) missing+=("$package") ;; esac
done <<<"$NEEDS"

[ ${#missing[@]} -gt 0 ] || exit 0
echo "installing ${missing[*]} from the distribution archive ..."
export DEBIAN_FRONTEND=noninteractive
# A fresh machine (or a container image) may have no package lists at all: always update.
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
