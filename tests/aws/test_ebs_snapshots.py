"""playbooks/ebs_snapshots.yml against moto: snapshots, tags, retention, foreign snapshots.

The enclave "snap" is provisioned with aws_provision.yml and gets a second, data volume
on its server (every attached volume is snapshotted, a loose volume is not). A second
enclave "snapother" (instances made with boto3, tagged like the provisioning play tags
them) and three foreign snapshots on snap's own volumes (untagged; snap's tags without
the managed-by tag; another enclave's managed tags) prove that retention deletes only
snap's own managed snapshots. snap is provisioned without the evidence set and the backup
bucket (log groups, endpoints, roles), which snapshots do not touch and test_evidence.py
covers: each costs module calls here and proves nothing more. Everything is read back with
boto3. Both names are used by no other test file, so this module shares the worker's moto
server without a reset.
"""
from __future__ import annotations

import re

import pytest

ENV, OTHER = "snap", "snapother"
SNAP = {"airlock_aws_evidence_enabled": False, "airlock_aws_backup_s3_enabled": False}
RETENTION = 2
RUNS = RETENTION + 2
MANAGED = "airlock-ebs-snapshots"
SET = re.compile(r"^\d{8}T\d{6}Z$")
CREATED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def env_tags(env, **extra):
    return [{"Key": k, "Value": v} for k, v in {"project": "airlock", "environment": env, **extra}.items()]


def instances(ec2, env):
    found = ec2.describe_instances(Filters=[{"Name": "tag:environment", "Values": [env]},
                                            {"Name": "instance-state-name", "Values": ["running"]}])
    return {tags(i)["Name"]: i for r in found["Reservations"] for i in r["Instances"]}


def attached(instance):
    return {m["Ebs"]["VolumeId"]: m["DeviceName"] for m in instance["BlockDeviceMappings"]}


def all_snapshots(ec2):
    return {s["SnapshotId"]: s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def managed(ec2, env=ENV):
    return {i: s for i, s in all_snapshots(ec2).items()
            if tags(s).get("airlock:managed-by") == MANAGED and tags(s).get("environment") == env}


def snapshot(ec2, volume_id, tag_list=None):
    spec = [{"ResourceType": "snapshot", "Tags": tag_list}] if tag_list else []
    return ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec)["SnapshotId"]


@pytest.fixture(scope="module")
def world(moto, playbook):
    """snap provisioned, its extra volumes, the other enclave and the foreign snapshots."""
    run = playbook("aws_provision.yml", ENV, SNAP)
    assert run.rc == 0, run.output[-4000:]
    ec2 = moto.client()
    hosts = instances(ec2, ENV)
    assert set(hosts) == {"airlock-snap-proxy", "airlock-snap-openhands"}
    server = hosts["airlock-snap-openhands"]
    zone = server["Placement"]["AvailabilityZone"]
    data = ec2.create_volume(AvailabilityZone=zone, Size=8, VolumeType="gp3", TagSpecifications=[
        {"ResourceType": "volume", "Tags": env_tags(ENV, Name="airlock-snap-data", tier="openhands")}])["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=server["InstanceId"], Device="/dev/sdf")
    loose = ec2.create_volume(AvailabilityZone=zone, Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": env_tags(ENV, Name="airlock-snap-loose")}])["VolumeId"]

    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": env_tags(OTHER, Name="airlock-snapother-proxy", tier="proxy")}])

    hosts = instances(ec2, ENV)
    volumes = {v: (name, dev) for name, inst in hosts.items() for v, dev in attached(inst).items()}
    assert len(volumes) == 3, volumes
    proxy_root = next(v for v, (n, _) in volumes.items() if n == "airlock-snap-proxy")
    server_root = next(v for v, (n, d) in volumes.items() if n == "airlock-snap-openhands" and d != "/dev/sdf")
    old_set = {"airlock:snapshot-set": "20000101T000000Z"}
    foreign = {
        "untagged": snapshot(ec2, proxy_root),
        "no managed-by tag": snapshot(ec2, server_root, env_tags(ENV, **{"airlock:enclave": "airlock-snap", **old_set})),
        "other enclave": snapshot(ec2, server_root, env_tags(OTHER, **{
            "airlock:enclave": "airlock-snapother", "airlock:managed-by": MANAGED, **old_set})),
        "other managed-by": snapshot(ec2, data, env_tags(ENV, **{
            "airlock:enclave": "airlock-snap", "airlock:managed-by": "someone-else", **old_set})),
    }
    return {"ec2": ec2, "hosts": hosts, "volumes": volumes, "data": data, "loose": loose, "foreign": foreign}


# --- Bad input: refused before any API call -------------------------------------------

BAD = [
    ("retention 0", {"airlock_ebs_snapshot_retention": 0}, "airlock_ebs_snapshot_retention: 0 must be >= 1"),
    ("retention abc", {"airlock_ebs_snapshot_retention": "abc"}, "airlock_ebs_snapshot_retention: 'abc' is not an integer"),
    ("negative age", {"airlock_ebs_snapshot_retention_days": -1}, "airlock_ebs_snapshot_retention_days: -1 must be >= 0"),
    ("empty enclave name", {"aws_enclave_environment": ""}, "aws_enclave_environment: is empty"),
]


@pytest.mark.parametrize("bad,needle", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_fails_before_any_api_call(world, moto, playbook, bad, needle):
    before = set(all_snapshots(world["ec2"]))
    moto.start_recording()
    run = playbook("ebs_snapshots.yml", ENV, bad)
    requests = moto.recorded_requests()
    assert run.rc != 0, run.output[-3000:]
    assert needle in run.output, run.output[-3000:]
    assert "Check the snapshot inputs before any API call" in run.output
    assert requests == [], f"API calls were made: {[r.get('url') for r in requests]}"
    assert set(all_snapshots(world["ec2"])) == before


# --- Snapshots and retention --------------------------------------------------------------


@pytest.fixture(scope="module")
def rotated(world, playbook):
    """The other enclave snapshotted once, then snap RUNS times with retention RETENTION
    (the last run waits for completion); snap's managed snapshots read after every run."""
    ec2 = world["ec2"]
    other = playbook("ebs_snapshots.yml", OTHER, {"airlock_ebs_snapshot_retention": 1})
    assert other.rc == 0, other.output[-4000:]
    other_snaps = set(managed(ec2, OTHER))
    runs, after = [], []
    for i in range(RUNS):
        extra = {"airlock_ebs_snapshot_retention": RETENTION}
        if i == RUNS - 1:
            extra["airlock_ebs_snapshot_wait"] = True
        run = playbook("ebs_snapshots.yml", ENV, extra)
        assert run.rc == 0, run.output[-4000:]
        runs.append(run)
        after.append(managed(ec2))
    return {"runs": runs, "after": after, "other": other, "other_snaps": other_snaps}


def test_first_run_snapshots_every_attached_volume_with_tags(world, rotated):
    first = rotated["after"][0]
    assert sorted(s["VolumeId"] for s in first.values()) == sorted(world["volumes"])
    sets = {tags(s)["airlock:snapshot-set"] for s in first.values()}
    assert len(sets) == 1 and SET.match(sets.pop())
    for snap in first.values():
        t = tags(snap)
        name, device = world["volumes"][snap["VolumeId"]]
        instance = world["hosts"][name]
        assert t == {
            "Name": f"{name}-{device.rsplit('/', 1)[-1]}-{t['airlock:snapshot-set']}",
            "project": "airlock",
            "environment": ENV,
            "tier": tags(instance)["tier"],
            "airlock:enclave": "airlock-snap",
            "airlock:managed-by": MANAGED,
            "airlock:instance": name,
            "airlock:instance-id": instance["InstanceId"],
            "airlock:volume-id": snap["VolumeId"],
            "airlock:device": device,
            "airlock:snapshot-set": t["airlock:snapshot-set"],
            "airlock:created": t["airlock:created"],
        }
        assert CREATED.match(t["airlock:created"])
        assert t["airlock:snapshot-set"] == t["airlock:created"].replace("-", "").replace(":", "")
        assert snap["Description"].startswith(f"airlock-snap {name} {device} set ")


def test_a_loose_volume_is_not_snapshotted(world, rotated):
    ec2 = world["ec2"]
    assert not ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [world["loose"]]}])["Snapshots"]


def test_runs_without_pruning_change_only_the_new_snapshots(world, rotated):
    volumes = len(world["volumes"])
    for i in range(RETENTION):
        run = rotated["runs"][i]
        # the recap counts tasks: only "Snapshot every attached volume" changed (once per volume)
        assert run.recap["changed"] == 1 and run.recap["failed"] == 0, run.output[-3000:]
        create = run.output.split("TASK [Snapshot every attached volume]")[1].split("TASK [")[0]
        assert create.count("changed: [localhost]") == volumes, create
        assert f"created {volumes}, kept {volumes * (i + 1)}, pruned 0" in run.output
        prune = run.output.split("TASK [Delete the managed snapshots beyond retention]")[1].split("TASK [")[0]
        assert "changed:" not in prune and "skipping: [localhost]" in prune, prune


def test_pruning_runs_delete_the_oldest_sets(world, rotated):
    volumes = len(world["volumes"])
    for run in rotated["runs"][RETENTION:]:
        assert run.recap["changed"] == 2, run.output[-3000:]  # the snapshot task and the prune task
        prune = run.output.split("TASK [Delete the managed snapshots beyond retention]")[1].split("TASK [")[0]
        assert prune.count("changed: [localhost]") == volumes and "beyond the newest 2 sets" in prune, prune
        assert f"created {volumes}, kept {volumes * RETENTION}, pruned {volumes}" in run.output


def test_exactly_retention_sets_per_volume_remain_the_newest(world, rotated):
    after = rotated["after"]
    final = after[-1]
    per_volume = {}
    for snap in final.values():
        per_volume.setdefault(snap["VolumeId"], []).append(tags(snap)["airlock:snapshot-set"])
    assert set(per_volume) == set(world["volumes"])
    run_sets = [{tags(s)["airlock:snapshot-set"] for s in a.values()} - set().union(
        *({tags(s)["airlock:snapshot-set"] for s in b.values()} for b in after[:i])) for i, a in enumerate(after)]
    assert all(len(s) == 1 for s in run_sets), run_sets
    run_sets = [s.pop() for s in run_sets]
    assert len(set(run_sets)) == RUNS
    for volume, sets in per_volume.items():
        assert sorted(sets) == sorted(run_sets[-RETENTION:]), (volume, sets, run_sets)
    # the snapshots of the oldest runs are gone from the API, not just untagged
    gone = set(after[0]) | set(after[1])
    assert not gone & set(all_snapshots(world["ec2"]))
    assert all(s["State"] == "completed" for s in final.values())


def test_foreign_snapshots_survive(world, rotated):
    alive = all_snapshots(world["ec2"])
    for what, snapshot_id in world["foreign"].items():
        assert snapshot_id in alive, f"the {what} snapshot was deleted"


def test_other_enclave_is_snapshotted_on_its_own_and_untouched(world, rotated):
    ec2 = world["ec2"]
    planted = world["foreign"]["other enclave"]
    made = rotated["other_snaps"] - {planted}
    assert planted in rotated["other_snaps"] and len(made) == 1
    (other_host,) = instances(ec2, OTHER).values()
    snap = all_snapshots(ec2)[made.pop()]
    assert snap["VolumeId"] in attached(other_host)
    assert tags(snap)["airlock:enclave"] == "airlock-snapother"
    assert rotated["other_snaps"] <= set(all_snapshots(ec2)), "snap's runs deleted the other enclave's snapshots"
    assert "created 1, kept 2, pruned 0" in rotated["other"].output  # its own + the planted older one


# --- Last: runs that must not delete (they add to snap's snapshots) -------------------------


def test_check_mode_creates_and_deletes_nothing(world, rotated, playbook):
    before = set(all_snapshots(world["ec2"]))
    run = playbook("ebs_snapshots.yml", ENV, {"airlock_ebs_snapshot_retention": 1}, args=("--check",))
    assert run.rc == 0, run.output[-4000:]
    volumes = len(world["volumes"])
    assert f"created {volumes}, kept {volumes}, pruned {volumes}" in run.output  # what it would do
    assert set(all_snapshots(world["ec2"])) == before


def test_pruning_off_only_adds(world, rotated, playbook):
    before = managed(world["ec2"])
    volumes = len(world["volumes"])
    run = playbook("ebs_snapshots.yml", ENV, {"airlock_ebs_snapshot_retention": 1, "airlock_ebs_snapshot_prune": False})
    assert run.rc == 0, run.output[-4000:]
    after = managed(world["ec2"])
    assert set(before) < set(after) and len(after) == len(before) + volumes
    assert f"pruning off, would prune {len(before)}" in run.output
    assert run.recap["changed"] == 1
