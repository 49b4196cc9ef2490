"""airlock_monthly_cost: the monthly AWS cost of one airlock environment, line by line.

    {{ airlock_cost_inputs | airlock_monthly_cost(airlock_cost_prices) }}

inputs: ``{"instances": [{"name", "type", "volume_gb"}], "nat_gateway": bool,
"public_ipv4": int, "nat_gb": float, "egress_gb": float, "snapshot_gb": float,
"interface_endpoints": int, "evidence": {...}}``. prices: ``{"hours_per_month",
"instance_hour": {type: $}, "gp3_gb_month", "snapshot_gb_month", "nat_hour", "nat_gb",
"public_ipv4_hour", "egress_gb", "interface_endpoint_hour"}`` and, with evidence,
``"interface_endpoint_gb", "logs_ingest_gb", "logs_vended_ingest_gb", "logs_stored_gb_month",
"s3_gb_month"``. ``evidence`` (optional): ``{"enabled", "log_gb", "flow_log_gb",
"stored_gb", "cloudtrail": bool, "trail_gb"}``: the logs interface endpoint (its hours,
and the hosts' logs as its data), CloudWatch Logs ingestion of the hosts' logs and of the
flow logs (vended-log price), storage, and the trail's S3 bucket (the first trail of
management events is free). ``backup`` (optional): ``{"enabled", "stored_gb", "put_requests",
"get_requests"}``: the S3 backup bucket (storage, with the noncurrent versions it keeps, and
requests, prices ``"s3_gb_month", "s3_put_per_1000", "s3_get_per_1000"``) and its gateway
endpoint (free, and no NAT data charge for what goes through it). Returns ``{"lines": [{"item", "quantity", "unit_price",
"monthly", "evidence", "backup"}], "total": float, "evidence_total": float,
"backup_total": float}``; monthly figures
rounded to cents. An instance type missing from the price table is an error naming it (a
silent $0 would lie).

Used by playbooks/cost.yml, which renders docs/cost.md; unit tested in
tests/unit/test_filter_airlock_cost.py.
"""
from __future__ import annotations


def airlock_monthly_cost(inputs, prices):
    hours = float(prices["hours_per_month"])
    lines = []

    def add(item, quantity, unit_price, monthly, evidence=False, backup=False):
        lines.append({"item": item, "quantity": quantity, "unit_price": unit_price, "monthly": round(monthly, 2),
                      "evidence": evidence, "backup": backup})

    for inst in inputs.get("instances", []):
        try:
            hourly = float(prices["instance_hour"][inst["type"]])
        except KeyError as err:
            raise ValueError(f"airlock_cost_prices.instance_hour has no price for {inst['type']!r}") from err
        add(f"EC2 {inst['name']} ({inst['type']})", f"{hours:g} h", f"${hourly}/h", hourly * hours)
        gb = float(inst.get("volume_gb", 0))
        add(f"EBS gp3 root volume, {inst['name']}", f"{gb:g} GB", f"${prices['gp3_gb_month']}/GB-month",
            gb * float(prices["gp3_gb_month"]))
    if inputs.get("nat_gateway"):
        add("NAT gateway", f"{hours:g} h", f"${prices['nat_hour']}/h", float(prices["nat_hour"]) * hours)
        gb = float(inputs.get("nat_gb", 0))
        add("NAT gateway data processed", f"{gb:g} GB", f"${prices['nat_gb']}/GB", gb * float(prices["nat_gb"]))
    ips = int(inputs.get("public_ipv4", 0))
    add("Public IPv4 addresses (Elastic IP, NAT)", f"{ips} x {hours:g} h", f"${prices['public_ipv4_hour']}/h",
        ips * hours * float(prices["public_ipv4_hour"]))
    endpoints = int(inputs.get("interface_endpoints", 0))
    if endpoints:
        add("VPC interface endpoints (per AZ)", f"{endpoints} x {hours:g} h", f"${prices['interface_endpoint_hour']}/h",
            endpoints * hours * float(prices["interface_endpoint_hour"]))
    gb = float(inputs.get("egress_gb", 0))
    add("Data transfer out to the internet", f"{gb:g} GB", f"${prices['egress_gb']}/GB", gb * float(prices["egress_gb"]))
    gb = float(inputs.get("snapshot_gb", 0))
    add("EBS snapshots (backups)", f"{gb:g} GB", f"${prices['snapshot_gb_month']}/GB-month",
        gb * float(prices["snapshot_gb_month"]))
    evidence = inputs.get("evidence") or {}
    if evidence.get("enabled"):
        _evidence_lines(evidence, prices, hours, add)
    backup = inputs.get("backup") or {}
    if backup.get("enabled"):
        _backup_lines(backup, prices, add)
    return {"lines": lines, "total": round(sum(line["monthly"] for line in lines), 2),
            "evidence_total": round(sum(line["monthly"] for line in lines if line["evidence"]), 2),
            "backup_total": round(sum(line["monthly"] for line in lines if line["backup"]), 2)}


def _backup_lines(backup, prices, add):
    """The S3 backup bucket's lines (aws_enclave_backup_bucket_enabled)."""
    add("Backups: S3 gateway endpoint (no hourly or data charge)", "1 endpoint", "$0", 0.0, backup=True)
    stored = float(backup.get("stored_gb", 0))
    add("Backups: S3 Standard storage (restic repositories, noncurrent versions)", f"{stored:g} GB",
        f"${prices['s3_gb_month']}/GB-month", stored * float(prices["s3_gb_month"]), backup=True)
    puts = float(backup.get("put_requests", 0))
    add("Backups: S3 PUT/LIST requests", f"{puts:g}", f"${prices['s3_put_per_1000']}/1000",
        puts / 1000 * float(prices["s3_put_per_1000"]), backup=True)
    gets = float(backup.get("get_requests", 0))
    add("Backups: S3 GET requests (checks)", f"{gets:g}", f"${prices['s3_get_per_1000']}/1000",
        gets / 1000 * float(prices["s3_get_per_1000"]), backup=True)


def _evidence_lines(evidence, prices, hours, add):
    """The evidence set's lines (aws_enclave_evidence_enabled)."""
    hourly = float(prices["interface_endpoint_hour"])
    add("Evidence: CloudWatch Logs interface endpoint (1 AZ)", f"{hours:g} h", f"${hourly}/h", hours * hourly, True)
    log_gb = float(evidence.get("log_gb", 0))
    add("Evidence: endpoint data processed (hosts' logs)", f"{log_gb:g} GB", f"${prices['interface_endpoint_gb']}/GB",
        log_gb * float(prices["interface_endpoint_gb"]), True)
    add("Evidence: CloudWatch Logs ingestion (hosts' logs)", f"{log_gb:g} GB", f"${prices['logs_ingest_gb']}/GB",
        log_gb * float(prices["logs_ingest_gb"]), True)
    flow_gb = float(evidence.get("flow_log_gb", 0))
    add("Evidence: VPC Flow Logs ingestion (vended logs)", f"{flow_gb:g} GB", f"${prices['logs_vended_ingest_gb']}/GB",
        flow_gb * float(prices["logs_vended_ingest_gb"]), True)
    stored = float(evidence.get("stored_gb", 0))
    add("Evidence: CloudWatch Logs storage", f"{stored:g} GB", f"${prices['logs_stored_gb_month']}/GB-month",
        stored * float(prices["logs_stored_gb_month"]), True)
    if evidence.get("cloudtrail"):
        trail_gb = float(evidence.get("trail_gb", 0))
        add("Evidence: CloudTrail trail (first copy of management events: free)", "1 trail", "$0", 0.0, True)
        add("Evidence: CloudTrail log files in S3", f"{trail_gb:g} GB", f"${prices['s3_gb_month']}/GB-month",
            trail_gb * float(prices["s3_gb_month"]), True)


class FilterModule:
    def filters(self):
        return {"airlock_monthly_cost": airlock_monthly_cost}
