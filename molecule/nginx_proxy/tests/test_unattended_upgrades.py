"""Unattended upgrades on the proxy install security updates and nothing else, through the
path the daily timer takes (apt-daily-upgrade.service runs /usr/lib/apt/apt.systemd.daily
install) with the role's configuration.

Two local repositories are built here (no network): one whose Release says what Debian's
security archive says (origin Debian, label Debian-Security, codename <release>-security),
one that says what the stable archive's point releases say (origin Debian, label Debian,
codename <release>). Each offers 2.0 of an empty test package installed at 1.0. apt is
pointed at these two only (APT_CONFIG: its own source list, package lists and download
cache), so no other package and no mirror is involved. Positive control: with Debian's own
default origins (the role's file left out) the same updates would both be taken.
"""
from __future__ import annotations

import re

import pytest

testinfra_hosts = ["nginx_proxy-proxy"]

WORKDIR = "/var/tmp/airlock-uu-test"
SECURITY, STABLE = "airlock-uu-security-probe", "airlock-uu-stable-probe"
ROLE_CONFIG = "52airlock-unattended-upgrades"
# What the daily script checks before it runs unattended-upgrade again (once a day).
STAMPS = " ".join(f"/var/lib/apt/periodic/{name}-stamp" for name in ("upgrade", "unattended-upgrades", "autoclean"))


def write(host, path, text):
    host.check_output("printf '%%s' %s > %s", text, path)


def version(host, name):
    return host.check_output("dpkg-query -W -f '${Version}' %s", name)


@pytest.fixture()
def test_repositories(host):
    """APT_CONFIG values: the role's configuration with the test repositories, and the
    same with Debian's default apt.conf.d (the role's file left out)."""
    codename = host.check_output(". /etc/os-release && echo $VERSION_CODENAME")
    host.check_output("rm -rf %s && mkdir -p %s/lists/partial %s/archives/partial %s/sources.list.d %s/debian-default",
                      WORKDIR, WORKDIR, WORKDIR, WORKDIR, WORKDIR)
    for name in (SECURITY, STABLE):
        host.check_output("airlock-test-apt-repo deb %s 1.0 %s/installed", name, WORKDIR)
    host.check_output("dpkg -i %s/installed/*.deb", WORKDIR)
    host.check_output("airlock-test-apt-repo repo %s/security %s 2.0 --origin Debian --label Debian-Security "
                      "--codename %s --suite stable-security", WORKDIR, SECURITY, f"{codename}-security")
    host.check_output("airlock-test-apt-repo repo %s/stable %s 2.0 --origin Debian --label Debian "
                      "--codename %s --suite stable", WORKDIR, STABLE, codename)
    write(host, f"{WORKDIR}/sources.list", f"deb [trusted=yes] file:{WORKDIR}/security {codename}-security main\n"
                                           f"deb [trusted=yes] file:{WORKDIR}/stable {codename} main\n")
    common = (f'Dir::Etc::SourceList "{WORKDIR}/sources.list";\nDir::Etc::SourceParts "{WORKDIR}/sources.list.d/";\n'
              f'Dir::State::Lists "{WORKDIR}/lists/";\nDir::Cache::Archives "{WORKDIR}/archives/";\n'
              'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n')
    write(host, f"{WORKDIR}/apt.conf", common)
    # APT_CONFIG is read before apt.conf.d, so it can point apt at another parts directory.
    host.check_output("cp -a /etc/apt/apt.conf.d/. %s/debian-default/ && rm -f %s/debian-default/%s",
                      WORKDIR, WORKDIR, ROLE_CONFIG)
    write(host, f"{WORKDIR}/debian-default.conf", common + f'Dir::Etc::Parts "{WORKDIR}/debian-default/";\n')
    host.check_output("APT_CONFIG=%s/apt.conf apt-get -q update", WORKDIR)
    host.check_output("rm -f " + STAMPS)
    yield f"{WORKDIR}/apt.conf", f"{WORKDIR}/debian-default.conf"
    host.run("dpkg --purge %s %s", SECURITY, STABLE)
    host.run("rm -rf %s", WORKDIR)
    host.run("rm -f " + STAMPS)


def test_daily_run_installs_the_security_update_only(host, test_repositories):
    role_conf, debian_default_conf = test_repositories
    for name in (SECURITY, STABLE):
        policy = host.check_output("APT_CONFIG=%s apt-cache policy %s", role_conf, name)
        assert re.search(r"Installed: 1\.0\s+Candidate: 2\.0", policy), policy
    # Control: Debian's default origins would take both updates (a dry run installs nothing).
    dry = host.check_output("APT_CONFIG=%s unattended-upgrade --dry-run -d 2>&1", debian_default_conf)
    planned = re.search(r"^.*Packages that will be upgraded: (.*)$", dry, re.M)
    assert planned and {SECURITY, STABLE} <= set(planned.group(1).split()), dry[-1500:]
    # The daily run, with the role's configuration: the security update only.
    host.check_output("APT_CONFIG=%s /usr/lib/apt/apt.systemd.daily install", role_conf)
    log = host.check_output("tail -n 20 /var/log/unattended-upgrades/unattended-upgrades.log")
    assert version(host, SECURITY) == "2.0", log
    assert version(host, STABLE) == "1.0", log
