# tryon-operator developer entry points. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATE_DIR ?= .cluster
# 1: `make cluster-up` also starts real-node-1 (kubelet + containerd; root, one per host)
REAL_NODE ?= 1
PYTEST_ARGS ?=

.PHONY: test-rules help doctor host-packages demo demo-down bench-operator bench-renderer bench-autoscale e2e-autoscale chaos venv tools cluster-up cluster-down cluster-status test test-unit test-integration lint typecheck clean images e2e e2e-node e2e-flows

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

doctor: ## preflight in seconds: versions, registries, disk, kernel, packages, what a run will build
	$(PYTHON) -m hack.doctor

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: doctor host-packages venv tools images ## the main job on real pods: train, deploy, flip blue/green, roll back a broken model (root; DEMO_ARGS=--keep)
	$(PY) -m hack.demo $(DEMO_ARGS)

demo-down: ## stop what `make demo DEMO_ARGS=--keep` left running
	$(PY) -c 'import pathlib; from hack import demo; demo.stop_leftovers(pathlib.Path(".demo").resolve())'

venv: $(VENV)/.installed ## create .venv with the operator, renderer and dev dependencies

tools: ## build (or reuse) etcd, Kubernetes, kwok, helm and the real node's programs into ~/.cache/tryon-operator
	bash hack/build-tools.sh

host-packages: ## install the Debian packages the cluster, real node and images need (root; no-op when present)
	bash hack/host-packages.sh

images: host-packages ## build the operator and renderer images with buildah, no registry (root; IMAGE_TAG=dev)
	bash hack/images/build.sh

cluster-up: tools ## start the control plane, kwok nodes and real-node-1 (REAL_NODE=0: kwok only); kubeconfig in .cluster/kubeconfig
	$(PYTHON) -m hack.localcluster.cluster up --state-dir $(STATE_DIR) $(if $(filter 1,$(REAL_NODE)),--real-node)

cluster-down: ## stop the local control plane and the real node; also cleans up after a crash
	$(PYTHON) -m hack.localcluster.cluster down --state-dir $(STATE_DIR)

cluster-status: ## show whether it runs and how much memory it takes
	$(PYTHON) -m hack.localcluster.cluster status --state-dir $(STATE_DIR)

lint: venv ## ruff; promtool check of the chart's alerting rules
	$(VENV)/bin/ruff check operator renderer training tests hack bench
	bash hack/promtool.sh check rules charts/tryon-operator/rules/tryon-alerts.yaml

test-rules: ## promtool's unit tests of the chart's alerting rules (tests/rules/)
	bash hack/promtool.sh test rules tests/rules/*.test.yaml

typecheck: venv ## mypy (strict) on the packages
	$(VENV)/bin/mypy operator/tryon_operator renderer/tryon_renderer training/tryon_model

test: doctor host-packages venv tools lint typecheck test-rules ## everything: unit, integration (starts its own control plane and servers), chart, alert rules
	$(PY) -m pytest $(PYTEST_ARGS)

e2e: e2e-node e2e-flows e2e-autoscale ## end-to-end on real pods (real-node-1): node lifecycle, the product's flows, autoscaling under load

e2e-node: host-packages venv tools images ## the real node's lifecycle: start, run a pod, stop or crash, host left as it was
	TRYON_E2E=1 $(PY) -m pytest tests/e2e/node -s $(PYTEST_ARGS)

e2e-flows: host-packages venv tools images ## the product on real pods: probes, ClusterIP, DNS, blue/green, gates, failures
	TRYON_E2E=1 $(PY) -m pytest tests/e2e --ignore=tests/e2e/node -s $(PYTEST_ARGS)

e2e-autoscale: host-packages venv tools images ## bench/autoscale.py --short: scale-out under load, a flip, scale-in, on real pods with a real Prometheus
	$(PY) bench/autoscale.py --short

bench-autoscale: host-packages venv tools images ## autoscaling on requests in flight, on real pods (about 6 min)
	$(PY) bench/autoscale.py $(BENCH_ARGS)

test-unit: venv ## fast tests that start no server
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: venv tools ## tests against the local control plane, MLflow and S3
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

CHAOS_ITERATIONS ?= 50
CHAOS_SEED ?= $(shell date +%Y%m%d)
CHAOS_HA ?= 1

chaos: venv tools ## nightly-size chaos run: 50 rollouts with faults, two replicas under leader election (CHAOS_ITERATIONS=, CHAOS_SEED=, CHAOS_HA=0 for one)
	TRYON_CHAOS_ITERATIONS=$(CHAOS_ITERATIONS) TRYON_CHAOS_SEED=$(CHAOS_SEED) TRYON_CHAOS_HA=$(CHAOS_HA) \
	  TRYON_CHAOS_REPORT=$${TRYON_CHAOS_REPORT:-build/chaos-summary.txt} \
	  $(PY) -m pytest tests/integration/chaos -s $(PYTEST_ARGS)

bench-operator: venv tools ## operator vs Argo Rollouts: promotion, rollback, scale (BENCH_ARGS=--full)
	$(PY) bench/operator_bench.py $(BENCH_ARGS)

bench-renderer: venv ## renderer vs naive server vs raw forward pass
	$(PY) bench/renderer_bench.py $(BENCH_ARGS)

clean: cluster-down ## remove local state (not the tool cache)
	rm -rf $(STATE_DIR) .pytest_cache .mypy_cache .ruff_cache
