"""airlock_monthly_cost: the monthly AWS cost of one airlock environment, line by line.

    {{ airlock_cost_inputs | airlock_monthly_cost(airlock_cost_prices) }}

inputs: ``{"instances": [{"name", "type", "volume_gb"}], "nat_gateway": bool,
"public_ipv4": int, "nat_gb": float, "egress_gb": float, "snapshot_gb": float,
"interface_endpoints": int}``. prices: ``{"hours_per_month", "instance_hour": {type: $},
"gp3_gb_month", "snapshot_gb_month", "nat_hour", "nat_gb", "public_ipv4_hour",
"egress_gb", "interface_endpoint_hour"}``. Returns ``{"lines": [{"item", "quantity",
"unit_price", "monthly"}], "total": float}``; monthly figures rounded to cents. An
instance type missing from the price table is an error naming it (a silent $0 would lie).

Used by playbooks/cost.yml, which renders docs/cost.md; unit tested in
tests/unit/test_filter_airlock_cost.py.
"""
from __future__ import annotations


def airlock_monthly_cost(inputs, prices):
    hours = float(prices["hours_per_month"])
    lines = []

    def add(item, quantity, unit_price, monthly):
        lines.append({"item": item, "quantity": quantity, "unit_price": unit_price, "monthly": round(monthly, 2)})

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
    return {"lines": lines, "total": round(sum(line["monthly"] for line in lines), 2)}


class FilterModule:
    def filters(self):
        return {"airlock_monthly_cost": airlock_monthly_cost}
