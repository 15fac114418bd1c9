# kubeft developer entry points. `make demo` and `make test` are the two commands in the README.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export KUBEFT_CACHE ?= $(HOME)/.cache/kubeft
export K8S_VERSION ?= 1.35.4
export VENV ?= $(KUBEFT_CACHE)/venv-py3.11
export KUBEFT_CLUSTER_DIR ?= $(KUBEFT_CACHE)/cluster
export KUBECONFIG ?= $(KUBEFT_CLUSTER_DIR)/admin.kubeconfig
export PATH := $(VENV)/bin:$(KUBEFT_CACHE)/bin:$(KUBEFT_CACHE)/k8s-v$(K8S_VERSION)/bin:$(PATH)
PY := $(VENV)/bin/python

.PHONY: help setup images demo test test-unit lint crds cluster-up cluster-down kubeconfig bench bench-quick gpu-check

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## install everything into $(KUBEFT_CACHE) (idempotent; fast once cached)
	@hack/install.sh

images: setup ## build the operator, trainer and local base images (buildah, offline, incremental)
	@hack/images.sh build

demo: images ## local cluster with a real node, S3, kubeft from its Helm chart, then train the example job
	@hack/demo.sh

test: images ## lint, then unit, integration and e2e tests on a fresh local cluster with a real node
	@hack/test.sh

test-unit: setup ## unit tests only (no cluster)
	@$(PY) -m pytest tests/unit -q

lint: setup ## ruff, mypy, import contracts, CRD drift, hadolint
	@hack/lint.sh

crds: ## regenerate crds/ and the chart's copy from the API models
	@$(PY) -m kubeft_operator.api.crd

cluster-up: images ## start etcd, apiserver, controller-manager, scheduler and a real node (kubelet, containerd)
	@hack/cluster.sh up

cluster-down: ## stop the local cluster and remove its state
	@hack/cluster.sh down

kubeconfig: ## print the admin kubeconfig path
	@echo $(KUBECONFIG)

bench: setup ## benchmarks: trainer throughput, operator scale, artifact size
	@$(PY) -m benchmarks.run

bench-quick: setup ## the benchmarks in quick mode (< 15 min on 2 cores)
	@$(PY) -m benchmarks.run --quick

# No `setup` prerequisite: the GPU machine may have no network; the script says what its Python lacks.
gpu-check: ## offline GPU check, 8-min budget on one H100/H200 (GPU_CHECK_ARGS=--cpu-smoke: tiny, on CPU)
	@hack/gpu-check.sh $(GPU_CHECK_ARGS)
