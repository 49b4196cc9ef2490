#!/usr/bin/env python3
"""Build throwaway Debian packages and one-package apt repositories for the
unattended-upgrades test (standard library and dpkg-deb only; not a real archive).

    airlock-test-apt-repo deb NAME VERSION OUT_DIR
        OUT_DIR/NAME_VERSION_all.deb, an empty package (control file only)
    airlock-test-apt-repo repo DIR NAME VERSION --origin O --label L --codename C [--suite S]
        DIR/dists/C/{Release, main/binary-ARCH/Packages} and DIR/pool/NAME_VERSION_all.deb:
        a repository whose Release says what unattended-upgrades matches its origin
        patterns against (origin, label, codename, suite), to be listed as
        `deb [trusted=yes] file:DIR C main`.
"""
import argparse
import email.utils
import hashlib
import os
import subprocess
import sys
import tempfile


def build_deb(name, version, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}_{version}_all.deb")
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "DEBIAN"))
        with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="ascii") as control:
            control.write(
                f"Package: {name}\nVersion: {version}\nArchitecture: all\nSection: misc\nPriority: optional\n"
                "Maintainer: airlock tests <tests@airlock.invalid>\n"
                "Description: airlock unattended-upgrades test package (empty)\n")
        subprocess.run(["dpkg-deb", "--root-owner-group", "--build", root, path],
                       check=True, stdout=subprocess.DEVNULL)
    return path


def digest(path, algorithm):
    with open(path, "rb") as handle:
        return hashlib.new(algorithm, handle.read()).hexdigest()


def build_repo(args):
    arch = subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True, text=True).stdout.strip()
    deb = build_deb(args.name, args.version, os.path.join(args.dir, "pool"))
    control = subprocess.run(["dpkg-deb", "--field", deb], check=True, capture_output=True, text=True).stdout
    dist = os.path.join(args.dir, "dists", args.codename)
    index_rel = f"main/binary-{arch}/Packages"
    os.makedirs(os.path.dirname(os.path.join(dist, index_rel)), exist_ok=True)
    with open(os.path.join(dist, index_rel), "w", encoding="ascii") as index:
        index.write(control.rstrip("\n") + "\n"
                    f"Filename: pool/{os.path.basename(deb)}\nSize: {os.path.getsize(deb)}\n"
                    f"MD5sum: {digest(deb, 'md5')}\nSHA256: {digest(deb, 'sha256')}\n\n")
    index_path = os.path.join(dist, index_rel)
    with open(os.path.join(dist, "Release"), "w", encoding="ascii") as release:
        release.write(
            f"Origin: {args.origin}\nLabel: {args.label}\nSuite: {args.suite or args.codename}\n"
            f"Codename: {args.codename}\nDate: {email.utils.formatdate(usegmt=True)}\n"
            f"Architectures: {arch}\nComponents: main\nDescription: airlock test repository\n"
            f"SHA256:\n {digest(index_path, 'sha256')} {os.path.getsize(index_path)} {index_rel}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    deb = sub.add_parser("deb")
    deb.add_argument("name")
    deb.add_argument("version")
    deb.add_argument("out_dir")
    repo = sub.add_parser("repo")
    repo.add_argument("dir")
    repo.add_argument("name")
    repo.add_argument("version")
    repo.add_argument("--origin", required=True)
    repo.add_argument("--label", required=True)
    repo.add_argument("--codename", required=True)
    repo.add_argument("--suite")
    args = parser.parse_args()
    if args.command == "deb":
        print(build_deb(args.name, args.version, args.out_dir))
    else:
        build_repo(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
