"""Run moto's server with its EC2 tag resource types corrected.

Usage: python moto_launcher.py -H 127.0.0.1 -p PORT

Why the patch: moto 5.2 answers DescribeTags with the resource types "vpc-elastic-ip"
and "nat-gateway" for Elastic IPs and NAT gateways, where AWS says "elastic-ip" and
"natgateway". amazon.aws compares those types when it reconciles tags, so against an
unpatched moto it re-tags both resources on every run and a correct, idempotent
playbook would report changed=1 forever. Real AWS is not affected, so the fix belongs
in the emulator, not in the playbooks.
"""
from __future__ import annotations

import sys

from moto.ec2 import utils as ec2_utils

ec2_utils.EC2_PREFIX_TO_RESOURCE["eipalloc"] = "elastic-ip"
ec2_utils.EC2_PREFIX_TO_RESOURCE["nat"] = "natgateway"

from moto.server import main  # noqa: E402  (after the patch, on purpose)

if __name__ == "__main__":
    main(sys.argv[1:])
