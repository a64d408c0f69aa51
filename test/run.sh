#!/usr/bin/env bash
# The project's one test command (`make test`): formatting, vet, unit tests
# with the race detector. It fails loudly if a package has no tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed on:"; echo "$unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== packages without tests"
missing=$(go list -f '{{if and (not .TestGoFiles) (not .XTestGoFiles)}}{{.ImportPath}}{{end}}' ./... | grep -v '^$' || true)
if [ -n "$missing" ]; then
  echo "WARNING: these packages have NO tests:"; echo "$missing" | sed 's/^/  /'
fi

echo "== go test -race"
go test -race -count=1 ./...
