"""Every host in these tests is this machine (connection local), under a few names, so its
facts cannot go stale during a run of the suite: the runs share one fact cache of their own
(ansible.cfg keeps none between runs, see tests/unit/test_ansible_cfg.py), and each of the
hundreds of ansible-playbook runs here gathers nothing it gathered before."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def shared_local_fact_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANSIBLE_CACHE_PLUGIN", "ansible.builtin.jsonfile")
        patch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path_factory.mktemp("facts")))
        patch.setenv("ANSIBLE_CACHE_PLUGIN_TIMEOUT", "7200")
        yield
