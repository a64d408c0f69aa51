# pullsafe: `make help` lists the targets.
SHELL := /usr/bin/env bash
GO    ?= go

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: test
test: ## Run every test: gofmt, go vet, unit tests with -race, end-to-end tests.
	./test/run.sh
