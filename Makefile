# pullsafe. `make help` lists the targets. Tools are pinned in go.mod files and
# built from the Go module proxy; test-bed binaries are cached outside the repo
# (~/.cache/pullsafe-tools) by test/tools/build.sh.
SHELL   := /usr/bin/env bash
GO      ?= go
BIN     ?= $(CURDIR)/bin
IMAGE   ?= ghcr.io/pullsafe/pullsafe
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
OVERLAY ?= warn
KUBECTL ?= kubectl

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/pullsafe.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/pullsafe ./cmd/pullsafe

.PHONY: plugin
plugin: ## Build bin/kubectl-pullsafe: the same binary under kubectl's plugin name (kubectl pullsafe why pod/NAME).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/kubectl-pullsafe ./cmd/pullsafe

.PHONY: test
test: ## Run every test: lint, unit tests with -race, differential and Helm suites, then the end-to-end suite ([n/m] progress per phase).
	./test/run.sh

.PHONY: unit
unit: ## Unit tests only (no test bed).
	PULLSAFE_SKIP_E2E=1 ./test/run.sh

.PHONY: e2e
e2e: ## End-to-end suite only: real kube-apiserver, etcd, registries, kubectl.
	./test/tools/build.sh >/dev/null
	$(GO) test -tags e2e -count=1 -v ./test/e2e/

.PHONY: runtimediff
runtimediff: ## pullsafe's verdicts vs a real containerd's CRI PullImage (as root); prints the confusion matrix.
	./test/runtimediff/run.sh

.PHONY: demo
# The test bed and the demo program build side by side (downloads and links
# leave a core idle), each with its progress; then the demo runs.
demo: ## Show pullsafe refusing bad images at kubectl apply, on a local test bed.
	@echo "== make demo: build the test bed and the demo (first run from source: ~12 min on an idle 2-core machine; then seconds), then run it"
	@. test/tools/progress.sh; \
	  step 1 3 "test-bed binaries (test/tools/build.sh)" ./test/tools/build.sh >/dev/null & tools=$$!; \
	  step 2 3 "compiling the demo (go build ./test/demo)" $(GO) build -o $(BIN)/demo ./test/demo & demo=$$!; \
	  wait $$tools; t=$$?; wait $$demo; d=$$?; [ $$t -eq 0 ] && [ $$d -eq 0 ]
	@echo "[3/3] running the demo (bin/demo; -v shows every process's log)"
	@$(BIN)/demo

.PHONY: tools
tools: ## Build (or find cached) the test-bed binaries (containerd too, as root) and print where they are.
	./test/tools/build.sh bed runtime

STATICCHECK_VERSION ?= v0.8.2

.PHONY: lint
# One pass each with the e2e tag: no file is built only without it, so this
# checks every file once (two passes, one per tag set, analysed the test
# bed's dependencies twice).
lint: $(BIN)/staticcheck-$(STATICCHECK_VERSION) ## gofmt, go vet and staticcheck (pinned, installed into ./bin).
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if git grep -lE '^//go:build.*!e2e' -- '*.go' >/dev/null; then echo "a file builds only without the e2e tag: lint it in a pass of its own"; exit 1; fi
	$(GO) vet -tags e2e ./...
	$(BIN)/staticcheck-$(STATICCHECK_VERSION) -tags e2e ./...

$(BIN)/staticcheck-$(STATICCHECK_VERSION):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BIN)/staticcheck $@

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s).
	@for t in registry:FuzzKeychain registry:FuzzRegistryHost registry:FuzzClassify registry:FuzzSanitize registry:FuzzDecodeManifest registry:FuzzChallenge registry:FuzzHostsTOML registry:FuzzProviderResponse registry:FuzzProviderConfig registry:FuzzRegistriesConfResolve registry:FuzzLoadRegistriesConf policy:FuzzExtractWorkload policy:FuzzExtractWorkloadMatchesTyped policy:FuzzReadManifests policy:FuzzSplitYAML pinning:FuzzPinFile diagnose:FuzzWhyKubeletText webhook:FuzzAdmissionReview webhook:FuzzReviewsMatchControllerRuntime webhook:FuzzAppendReviewMatchesEncodingJSON webhook:FuzzConfigReload; do \
	  pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$pkg $$fn"; \
	  $(GO) test -run XXX -fuzz "^$$fn$$" -fuzztime $${FUZZTIME:-30s} ./$$pkg || exit 1; done
	@for fn in FuzzSecretParsingMatchesKubelet FuzzReferenceMatchesKubelet; do echo "== test/kubeletdiff $$fn"; \
	  (cd test/kubeletdiff && $(GO) test -run XXX -fuzz "^$$fn$$" -fuzztime $${FUZZTIME:-30s} .) || exit 1; done
	@echo "== test/hostsdiff FuzzHostsMatchContainerd"; \
	  (cd test/hostsdiff && $(GO) test -run XXX -fuzz "^FuzzHostsMatchContainerd$$" -fuzztime $${FUZZTIME:-30s} .)

# benchstat has no tagged release: pinned to a pseudo-version the module proxy serves.
BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da
BENCHSTAT         := $(BIN)/benchstat-$(BENCHSTAT_VERSION)
BASE ?= main
# make bench BASE=<ref>: BASE named on the command line adds the comparison.
bench_base := $(filter command line,$(origin BASE))

.PHONY: bench
bench: $(if $(bench_base),$(BENCHSTAT)) ## Measure everything (micro-benchmarks, HTTPS load, rollout storm, API server overhead, memory) into docs/benchmarks.md (~5 min); BASE=<git ref> adds benchstat of BASE vs the working tree (-count 8).
	$(if $(bench_base),BASE=$(BASE) BENCHSTAT=$(BENCHSTAT) GO=$(GO) ./test/benchcompare.sh &&) $(GO) run ./test/bench $(if $(bench_base),-benchstat _output/bench/benchstat.txt)

.PHONY: bench-micro
bench-micro: ## Micro-benchmarks only (cached lookup, keychain, reviews, policy), for benchstat.
	$(GO) test -run XXX -bench . -benchmem -count 8 ./registry ./webhook ./policy

.PHONY: bench-compare
bench-compare: $(BENCHSTAT) ## Micro-benchmarks of BASE (git ref, default main) vs the working tree, alternating, -count 8; prints benchstat (BENCH=pattern PKGS=... COUNT=...).
	BASE=$(BASE) BENCHSTAT=$(BENCHSTAT) GO=$(GO) ./test/benchcompare.sh

$(BENCHSTAT):
	GOBIN=$(BIN) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
	mv $(BIN)/benchstat $@

.PHONY: manifests
manifests: ## Regenerate manifests/base/webhookconfigurations.yaml from the code and render every overlay into _output/.
	PULLSAFE_UPDATE_GOLDEN=1 $(GO) test -count=1 -run TestManifestWebhookConfigurationsAreGenerated ./webhook
	@mkdir -p _output
	@for o in warn enforce cert-manager; do $(KUBECTL) kustomize manifests/overlays/$$o > _output/pullsafe-$$o.yaml && echo "_output/pullsafe-$$o.yaml"; done

.PHONY: deploy
deploy: ## Install into the current kubectl context (OVERLAY=warn|enforce|cert-manager, default warn).
	$(KUBECTL) apply -k manifests/overlays/$(OVERLAY)

.PHONY: undeploy
undeploy: ## Remove pullsafe: the webhook configurations first, so no request goes to a dying Service.
	$(KUBECTL) delete validatingwebhookconfiguration,mutatingwebhookconfiguration pullsafe --ignore-not-found
	$(KUBECTL) delete -k manifests/overlays/$(OVERLAY) --ignore-not-found

.PHONY: docker-build
docker-build: ## Build the image for this machine's platform (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

.PHONY: docker-buildx
docker-buildx: ## Build and push the multi-arch image (linux/amd64, linux/arm64).
	docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) --push .
