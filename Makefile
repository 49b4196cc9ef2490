# airlock task runner. The two commands a new user needs:
#   make lab    bring the whole stack up in the local lab and print where to log in
#   make test   run every test (lint, unit, AWS against an emulator, Molecule, end to end)
#   make lab LAB_SERVER=pypi   the lab with the real OpenHands server built from PyPI
#               (tools/realserver, built once and cached) instead of the stand-in
#   make lab LAB_CONNECTION=ssh   the lab reached over SSH exactly as AWS hosts are
#               (inventories/lab-ssh: login user, key, sudo, ProxyJump to the server)
# Both run as root on Debian/Ubuntu with Python >= 3.11; `make setup` is run by both.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0
# Scenarios that run in parallel (2 cores: two at a time is the sweet spot).
JOBS ?= 2
SCENARIOS ?= $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

.PHONY: help setup lab lab-down test test-full lint unit roles aws aws-full host molecule e2e e2e-real e2e-ssh bench bench-smoke mutants

help:
	@sed -n 's/^#   //p' Makefile

setup:
	@tools/setup.sh

# Which OpenHands server the lab runs: standin (default, small and fast) or pypi.
LAB_SERVER ?= standin
LAB_SITE_ARGS := $(if $(filter pypi,$(LAB_SERVER)),-e @tools/realserver/lab-pypi.yml,)
# How Ansible reaches the lab's two tiers: docker (default, the Docker API) or ssh.
LAB_CONNECTION ?= docker
LAB_INVENTORY := $(if $(filter ssh,$(LAB_CONNECTION)),-i inventories/lab-ssh,)

lab: setup
	@case "$(LAB_SERVER)" in standin|pypi) ;; *) echo "LAB_SERVER must be standin or pypi, not $(LAB_SERVER)" >&2; exit 2 ;; esac
	@case "$(LAB_CONNECTION)" in docker|ssh) ;; *) echo "LAB_CONNECTION must be docker or ssh, not $(LAB_CONNECTION)" >&2; exit 2 ;; esac
	@if [ "$(LAB_SERVER)" = pypi ]; then tools/realserver/build.sh --save .cache/images/openhands-pypi.tar; fi
	@$(BIN)/ansible-playbook $(LAB_INVENTORY) playbooks/lab_up.yml
	@$(BIN)/ansible-playbook $(LAB_INVENTORY) site.yml $(LAB_SITE_ARGS)
	@$(BIN)/ansible-playbook $(LAB_INVENTORY) playbooks/backup.yml
	@$(BIN)/ansible-playbook $(LAB_INVENTORY) playbooks/lab_info.yml

lab-down: setup
	@$(BIN)/ansible-playbook $(LAB_INVENTORY) playbooks/lab_down.yml

test: setup
	@tools/run-tests.sh

# Every stage: the test command plus the lab over SSH, the benchmark's smoke run and the setup
# in a bare container (about 40 min more on 2 cores).
test-full: setup
	@tools/run-tests.sh full

lint: setup
	@tools/run-tests.sh lint

unit: setup
	@tools/run-tests.sh unit

roles: setup
	@tools/run-tests.sh roles

aws: setup
	@tools/run-tests.sh aws

aws-full: setup
	@tools/run-tests.sh aws_full

host: setup
	@tools/run-tests.sh host

molecule: setup
	@tools/run-tests.sh molecule $(SCENARIOS)

e2e: setup
	@tools/run-tests.sh e2e

e2e-real: setup
	@tools/run-tests.sh e2e_real

e2e-ssh: setup
	@tools/run-tests.sh e2e_ssh

bench-smoke: setup
	@tools/run-tests.sh bench

bench: setup
	@tools/bench.sh

# The whole mutation matrix (tools/mutants): every scenario brought up, each control removed
# in turn, its tests must fail; rewrites docs/controls.md (its run time is there).
mutants: setup
	@tools/mutants/run.py --up --down --doc docs/controls.md
