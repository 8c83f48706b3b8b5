# Recur build and test targets. The fast math path uses OpenBLAS through cgo
# (build tag "openblas", Debian's libopenblas-dev); a plain `go build` stays
# pure Go and works anywhere.
GO       ?= go
TAGS     ?= openblas
GOFLAGS_TAGS := -tags '$(TAGS)'
RACE_PKGS := ./pkg/allreduce/... ./pkg/shard/... ./pkg/checkpoint/... ./pkg/schedule/...
BENCH    ?= .
BENCHTIME ?= 3x

.PHONY: setup build test test-race test-purego test-cluster bench lint proto proto-check quickstart

## setup: install system packages and Go tools (Debian; run as root)
setup:
	bash scripts/setup.sh

## build: build the binaries into ./bin
build:
	$(GO) build $(GOFLAGS_TAGS) -o bin/ ./cmd/...

## test: the default suite (what CI and the README run)
test: lint
	$(GO) test $(GOFLAGS_TAGS) -count=1 -timeout 20m ./...
	$(MAKE) test-purego
	$(MAKE) test-race

## test-purego: the suite without cgo/OpenBLAS (the fallback path)
test-purego:
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m ./pkg/rnn/...

## test-race: race detector on the concurrent packages
test-race:
	$(GO) test $(GOFLAGS_TAGS) -race -count=1 -timeout 20m $(RACE_PKGS)

## test-cluster: multi-process kill -9 tests and the soak test (random kills)
test-cluster: build
	RECUR_SOAK=1 $(GO) test $(GOFLAGS_TAGS) -count=1 -timeout 30m -run 'TestProcesses|TestSoak' -v ./internal/cli/

## bench: the speed benchmarks (set RECUR_DATA for data-backed ones)
bench:
	$(GO) test $(GOFLAGS_TAGS) -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) ./...

## lint: gofmt and go vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(GOFLAGS_TAGS) ./...

## quickstart: set up, build, and train a char-LM on Debian's fortunes corpus (local mode, 2 workers, 3 minutes)
quickstart: setup build
	mkdir -p runs
	find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' | sort | xargs cat > runs/fortunes.txt
	./bin/recur train --text runs/fortunes.txt --workers 2 --minutes 3 --dir runs/fortunes --fresh
