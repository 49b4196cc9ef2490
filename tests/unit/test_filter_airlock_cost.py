"""Unit tests of filter_plugins/airlock_cost.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
cost = load_module(ROOT / "filter_plugins" / "airlock_cost.py")

PRICES = {"hours_per_month": 730, "instance_hour": {"t3.small": 0.0208, "t3.large": 0.0832},
          "gp3_gb_month": 0.08, "snapshot_gb_month": 0.05, "nat_hour": 0.045, "nat_gb": 0.045,
          "public_ipv4_hour": 0.005, "egress_gb": 0.09, "interface_endpoint_hour": 0.01}
INPUTS = {"instances": [{"name": "proxy", "type": "t3.small", "volume_gb": 20},
                        {"name": "openhands", "type": "t3.large", "volume_gb": 100}],
          "nat_gateway": True, "public_ipv4": 2, "nat_gb": 10, "egress_gb": 10, "snapshot_gb": 50}


def test_every_line_and_the_total():
    out = cost.airlock_monthly_cost(INPUTS, PRICES)
    monthly = {line["item"]: line["monthly"] for line in out["lines"]}
    assert monthly["EC2 proxy (t3.small)"] == 15.18
    assert monthly["EC2 openhands (t3.large)"] == 60.74
    assert monthly["EBS gp3 root volume, openhands"] == 8.0
    assert monthly["NAT gateway"] == 32.85
    assert monthly["Public IPv4 addresses (Elastic IP, NAT)"] == 7.3
    assert out["total"] == round(sum(monthly.values()), 2) == 129.52


def test_without_nat_and_with_endpoints():
    out = cost.airlock_monthly_cost({**INPUTS, "nat_gateway": False, "interface_endpoints": 2}, PRICES)
    items = [line["item"] for line in out["lines"]]
    assert "NAT gateway" not in items and "VPC interface endpoints (per AZ)" in items


def test_unknown_instance_type_is_an_error_not_zero():
    with pytest.raises(ValueError, match="m7i.large"):
        cost.airlock_monthly_cost({"instances": [{"name": "x", "type": "m7i.large"}]}, PRICES)


EVIDENCE_PRICES = {**PRICES, "interface_endpoint_gb": 0.01, "logs_ingest_gb": 0.5, "logs_vended_ingest_gb": 0.5,
                   "logs_stored_gb_month": 0.03, "s3_gb_month": 0.023}


def test_evidence_lines_and_their_subtotal():
    evidence = {"enabled": True, "log_gb": 5, "flow_log_gb": 3, "stored_gb": 20, "cloudtrail": False, "trail_gb": 1}
    out = cost.airlock_monthly_cost({**INPUTS, "evidence": evidence}, EVIDENCE_PRICES)
    monthly = {line["item"]: line["monthly"] for line in out["lines"] if line["evidence"]}
    assert monthly == {
        "Evidence: CloudWatch Logs interface endpoint (1 AZ)": 7.3,
        "Evidence: endpoint data processed (hosts' logs)": 0.05,
        "Evidence: CloudWatch Logs ingestion (hosts' logs)": 2.5,
        "Evidence: VPC Flow Logs ingestion (vended logs)": 1.5,
        "Evidence: CloudWatch Logs storage": 0.6,
    }
    assert out["evidence_total"] == 11.95
    assert out["total"] == round(129.52 + 11.95, 2)
    with_trail = cost.airlock_monthly_cost({**INPUTS, "evidence": {**evidence, "cloudtrail": True}}, EVIDENCE_PRICES)
    assert with_trail["evidence_total"] == 11.97


def test_evidence_off_adds_nothing():
    out = cost.airlock_monthly_cost({**INPUTS, "evidence": {"enabled": False, "log_gb": 5}}, PRICES)
    assert out["evidence_total"] == 0 and out["total"] == 129.52


BACKUP_PRICES = {**PRICES, "s3_gb_month": 0.023, "s3_put_per_1000": 0.005, "s3_get_per_1000": 0.0004}


def test_backup_bucket_lines_and_their_subtotal():
    backup = {"enabled": True, "stored_gb": 10, "put_requests": 20000, "get_requests": 20000}
    out = cost.airlock_monthly_cost({**INPUTS, "backup": backup}, BACKUP_PRICES)
    monthly = {line["item"]: line["monthly"] for line in out["lines"] if line["backup"]}
    assert monthly == {
        "Backups: S3 gateway endpoint (no hourly or data charge)": 0.0,
        "Backups: S3 Standard storage (restic repositories, noncurrent versions)": 0.23,
        "Backups: S3 PUT/LIST requests": 0.1,
        "Backups: S3 GET requests (checks)": 0.01,
    }
    assert out["backup_total"] == 0.34 and out["evidence_total"] == 0
    assert out["total"] == round(129.52 + 0.34, 2)


def test_backup_bucket_off_adds_nothing():
    out = cost.airlock_monthly_cost({**INPUTS, "backup": {"enabled": False, "stored_gb": 10}}, PRICES)
    assert out["backup_total"] == 0 and out["total"] == 129.52
