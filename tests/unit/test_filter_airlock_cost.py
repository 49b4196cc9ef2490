"""Unit tests of filter_plugins/airlock_cost.py."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("airlock_cost", ROOT / "filter_plugins" / "airlock_cost.py")
cost = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cost)

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
