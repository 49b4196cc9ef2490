"""Run moto's server with its EC2 tag resource types and CloudTrail's DeleteTrail corrected.

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

# Second patch: DeleteTrail takes "the name or the CloudTrail ARN of the trail" (AWS API
# reference), and amazon.aws.cloudtrail passes the ARN; moto 5.2 looks the value up as a
# name only and silently keeps the trail, so the teardown would leave it and report a
# change on every run. The patch resolves an ARN to its name first.
from moto.cloudtrail import models as cloudtrail_models  # noqa: E402

_delete_trail = cloudtrail_models.CloudTrailBackend.delete_trail


def _delete_trail_by_name_or_arn(self, name):
    if name.startswith("arn:") and ":trail/" in name:
        name = name.split(":trail/", 1)[1]
    return _delete_trail(self, name)


cloudtrail_models.CloudTrailBackend.delete_trail = _delete_trail_by_name_or_arn

from moto.server import main  # noqa: E402  (after the patches, on purpose)

if __name__ == "__main__":
    main(sys.argv[1:])
