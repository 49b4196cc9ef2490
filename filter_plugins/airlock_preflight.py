"""Filters of the tiers' preflight (roles/<tier>_tier/tasks/preflight.yml).

airlock_mapped_from(msg, mapping_file)
    A role's refusal names the role's own variable (``egress_firewall_ntp_servers: ...``),
    but the inventory usually set an ``airlock_*`` value that the shared mapping
    (inventories/common/group_vars/<group>.yml) turns into it. This appends, for each role
    variable the message names and the mapping sets, the ``airlock_*`` values its mapping
    reads: ``egress_firewall_ntp_servers is set from airlock_ntp_servers``. The message
    itself is kept as it is. A variable the mapping does not set (the inventory set the
    role's variable itself) gets no line; nor does anything when the file is missing.
"""
from __future__ import annotations

import json
import os
import re

import yaml

AIRLOCK_NAME = re.compile(r"\bairlock_[a-z0-9_]+\b")


def _mapping(path):
    if not path or not os.path.isfile(str(path)):
        return {}
    with open(str(path), encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        return {}
    return {str(var): sorted(set(AIRLOCK_NAME.findall(json.dumps(raw)))) for var, raw in data.items()}


def airlock_mapped_from(msg, mapping_file):
    text = str(msg if msg is not None else "")
    sources = []
    for var, names in _mapping(mapping_file).items():
        if names and re.search(rf"(?<![A-Za-z0-9_]){re.escape(var)}(?![A-Za-z0-9_])", text):
            sources.append(f"{var} is set from {', '.join(names)}")
    if not sources:
        return text
    return f"{text}\nThe inventory's shared mapping ({os.path.basename(str(mapping_file))}): {'; '.join(sources)}."


class FilterModule:
    def filters(self):
        return {"airlock_mapped_from": airlock_mapped_from}
