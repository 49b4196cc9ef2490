"""Each role's README variable table is the one tools/role_docs.py renders from its argument
specs, and each role's defaults/main.yml agrees with its specs (plain Python, no Ansible run)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers.modules import load_module

ROOT = Path(__file__).resolve().parents[2]
role_docs = load_module(ROOT / "tools" / "role_docs.py", "role_docs")
ROLES = sorted(p.parents[1] for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def test_every_role_has_specs_and_a_table():
    assert len(ROLES) == len(list((ROOT / "roles").glob("*/tasks/main.yml")))
    for role in ROLES:
        assert role_docs.BEGIN in (role / "README.md").read_text(), role.name


def test_no_readme_table_is_stale(capsys):
    assert role_docs.main(["--check"]) == 0, capsys.readouterr().out


def test_a_stale_table_fails_the_check_and_is_rewritten(tmp_path, capsys):
    # Positive control: the same check on a copy whose spec gained an option fails, naming the README.
    role = tmp_path / "roles" / "dns_resolver"
    shutil.copytree(ROOT / "roles" / "dns_resolver", role)
    spec = role / "meta" / "argument_specs.yml"
    spec.write_text(re.sub(r"^(    options:.*\n)", r"\1      dns_resolver_new_option:\n        type: int\n        default: 7\n"
                           r"        description: A new option.\n", spec.read_text(), count=1, flags=re.M))
    args = ["--roles-dir", str(tmp_path / "roles"), "dns_resolver"]
    assert role_docs.main(["--check", *args]) == 1
    assert "dns_resolver/README.md: variable table is stale" in capsys.readouterr().out
    assert role_docs.main(args) == 0
    # Once: the entry point assert has main's options (an alias), named below main's table.
    assert (role / "README.md").read_text().count("| `dns_resolver_new_option` | int | `7` | A new option. |") == 1
    assert role_docs.main(["--check", *args]) == 0


def test_an_entry_point_with_another_ones_options_names_it():
    """An entry point whose options are main's (a YAML alias: egress_firewall's maintenance
    window) names main's table instead of repeating it; an entry point with options of its
    own (host_baseline's apt_proxy, the control) has its table."""
    text = role_docs.render(ROOT / "roles" / "egress_firewall")
    assert text.count("| `egress_firewall_ssh_port` |") == 1
    assert "Entry point `maintenance_open`: Open the maintenance window for named destinations\n\nThe options of `main`, above." in text
    text = role_docs.render(ROOT / "roles" / "host_baseline")
    assert text.count("| `host_baseline_apt_proxy` | str |") == 2


def test_a_new_sub_tag_makes_the_table_stale(tmp_path, capsys):
    """The tags table follows tasks/main.yml: a concern given a sub-tag and a switch shows up."""
    role = tmp_path / "roles" / "host_baseline"
    shutil.copytree(ROOT / "roles" / "host_baseline", role)
    main = role / "tasks" / "main.yml"
    main.write_text(main.read_text().replace(
        "  tags: [host_baseline, host_baseline_apt_proxy]\n",
        "  when: host_baseline_apt_proxy_enabled\n  tags: [host_baseline, host_baseline_apt_proxy, host_baseline_apt]\n", 1))
    args = ["--roles-dir", str(tmp_path / "roles"), "host_baseline"]
    assert role_docs.main(["--check", *args]) == 1
    assert role_docs.main(args) == 0
    text = (role / "README.md").read_text()
    assert "| `host_baseline_apt` | Apt proxy | `host_baseline_apt_proxy_enabled` |" in text
    assert "| `host_baseline_apt_proxy` | Apt proxy | `host_baseline_apt_proxy_enabled` |" in text


def test_a_readme_without_markers_is_refused(tmp_path):
    role = tmp_path / "roles" / "auditd"
    shutil.copytree(ROOT / "roles" / "auditd", role)
    (role / "README.md").write_text("# auditd\n")
    with pytest.raises(SystemExit, match="markers"):
        role_docs.main(["--check", "--roles-dir", str(tmp_path / "roles"), "auditd"])


def test_cells_escape_pipes_and_backticks():
    assert role_docs._code("a|b") == "`a\\|b`"
    assert role_docs._code("`x`") == "`` `x` ``"
    assert role_docs._code("") == "`''`"


def _options(role):
    options = {}
    for spec in role_docs.role_specs(role).values():
        options.update(spec.get("options") or {})
    return options


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_defaults_match_the_argument_specs(role):
    defaults, options = role_docs.role_defaults(role), _options(role)
    public = [name for name in defaults if not name.startswith("__")]
    assert not [n for n in public if n not in options], "defaults/main.yml sets variables the specs do not name"
    optional = [n for n, o in options.items() if not o.get("required")]
    assert not [n for n in optional if n not in defaults], "optional spec options without a value in defaults/main.yml"
    assert not [n for n, o in options.items() if o.get("required") and n in defaults], \
        "a required option has a default (required, or a default: not both)"
    for name, option in options.items():
        if name not in defaults or "default" not in option:
            continue
        value = defaults[name]
        assert option["default"] == value, f"{name}: spec default {option['default']!r} != defaults/main.yml {value!r}"


def _shared_descriptions(role):
    """{entry point: [[option, ...], ...]}: the options of one entry point whose descriptions
    are the same text once whitespace is normalised."""
    shared = {}
    for entry, spec in role_docs.role_specs(role).items():
        by_text = {}
        for name, option in (spec.get("options") or {}).items():
            text = option.get("description", "")
            text = " ".join(text) if isinstance(text, list) else str(text)
            by_text.setdefault(" ".join(text.split()), []).append(name)
        groups = [names for names in by_text.values() if len(names) > 1]
        if groups:
            shared[entry] = groups
    return shared


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_no_two_options_share_a_description(role):
    """Each option says what it alone does: a description copied onto a neighbour (one text for a
    size and a count, or for a switch and its source) tells the reader nothing about either.
    Within one entry point only; an entry point with main's options (a YAML alias) is compared
    with itself, not with main."""
    shared = _shared_descriptions(role)
    assert not shared, f"options with the same description (copied from a neighbour), per entry point: {shared}"
