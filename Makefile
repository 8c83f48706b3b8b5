# Recur build and test targets. The fast math path uses OpenBLAS through cgo
# (build tag "openblas", Debian's libopenblas-dev); a plain `go build` stays
# pure Go and works anywhere.
GO       ?= go
TAGS     ?= openblas
GOFLAGS_TAGS := -tags '$(TAGS)'
RACE_PKGS := ./pkg/allreduce/... ./pkg/shard/... ./pkg/checkpoint/... ./pkg/schedule/... ./internal/cluster/... ./internal/coordinator/... ./internal/dashboard/... ./internal/worker/... ./internal/planner/... ./internal/cli/...
BENCH    ?= .
# recur version reports these; without them it reads the go command's
# build information (vcs.revision), which a plain `go build` records in a
# git checkout.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X github.com/recur-ml/recur/internal/cli.version=$(VERSION) -X github.com/recur-ml/recur/internal/cli.commit=$(COMMIT)
BENCHTIME ?= 3x

.PHONY: setup build test test-race test-stress test-purego test-cluster bench bench-netns bench-scaling bench-compare fuzz lint proto proto-check quickstart readme-check test-netns

## setup: install system packages and Go tools (Debian; run as root)
setup:
	bash scripts/setup.sh

## build: build the binaries into ./bin
build:
	$(GO) build $(GOFLAGS_TAGS) -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

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

## test-stress: the ring's concurrency tests repeated under the race detector (CI runs it),
## so that a test that fails now and then shows up before it lands. The flood, hello-deadline
## and TLS tests mostly wait on deadlines (about a minute a run); make test runs them under
## -race once, and STRESS_SKIP= includes them here too.
STRESS_COUNT ?= 20
STRESS_SKIP ?= FloodOfStrangers|StrangersClosedAtHelloDeadline|TestRingOverTLS
test-stress:
	$(GO) test $(GOFLAGS_TAGS) -race -count=$(STRESS_COUNT) -timeout 40m $(if $(STRESS_SKIP),-skip '$(STRESS_SKIP)') ./pkg/allreduce/...

## test-cluster: multi-process kill -9 tests and the soak test (10 random kills of workers
## and the coordinator per run, SOAK_RUNS runs with fresh random seeds)
SOAK_RUNS ?= 3
test-cluster: build
	RECUR_SOAK=1 $(GO) test $(GOFLAGS_TAGS) -count=$(SOAK_RUNS) -timeout 30m -run 'TestProcesses|TestSoak' -v ./internal/cli/

## test-netns: a multi-host cluster on one machine (root): the coordinator and NETNS_WORKERS workers
## each in a network namespace, every link shaped to NETNS_RATE with tc tbf; kills workers and the
## coordinator, cuts links and slows one while training, checks the soak's invariants, and prints
## each recovery time and every worker's step time and neighbour waits (from their /metrics)
NETNS_WORKERS ?= 8
NETNS_RATE ?= 1gbit
test-netns: build
	RECUR_NETNS=1 RECUR_BIN=$(CURDIR)/bin/recur RECUR_NETNS_WORKERS=$(NETNS_WORKERS) RECUR_NETNS_RATE=$(NETNS_RATE) \
		$(GO) test $(GOFLAGS_TAGS) -count=1 -timeout 15m -run 'TestNetnsCluster' -v ./internal/netns/

## bench: the speed benchmarks (set RECUR_DATA for data-backed ones); PKG=./pkg/rnn builds one
## package's tests instead of all of them
PKG ?= ./...
bench:
	$(GO) test $(GOFLAGS_TAGS) -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) $(PKG)

## proto: regenerate the gRPC code with the pinned generators
proto:
	bash scripts/genproto.sh

## proto-check: fail if the committed generated code is stale
proto-check:
	bash scripts/verify_genproto.sh

## lint: gofmt, go vet, generated code up to date
lint: proto-check
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(GOFLAGS_TAGS) ./...

## quickstart: set up, build, and train a char-LM on Debian's fortunes corpus (local mode, 2 workers,
## QUICKSTART_MINUTES minutes)
QUICKSTART_MINUTES ?= 3
quickstart: setup build
	mkdir -p runs
	find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' | sort | xargs cat > runs/fortunes.txt
	./bin/recur train --text runs/fortunes.txt --workers 2 --minutes $(QUICKSTART_MINUTES) --dir runs/fortunes --fresh

## readme-check: every shell command of README.md, verbatim in a fresh clone (long ones with a
## short budget, a few skipped: the list and the reasons are in the script)
readme-check:
	bash scripts/readme_check.sh

# ---- deployment: container image, compose cluster test, Kubernetes manifests ----
IMAGE     ?= recur:latest
IMAGE_CTX ?= bin/image
# Static link with OpenBLAS: libopenblas.a needs libgfortran (and its
# libquadmath), libm and libpthread; netgo/osusergo keep glibc's resolver
# and NSS (which need shared libraries at run time) out of the binary.
STATIC_CGO_LDFLAGS ?= -lgfortran -lquadmath -lm -lpthread
STATIC_LDFLAGS     ?= -s -w -linkmode external -extldflags -static

.PHONY: image compose-test deploy-check

## image: static binaries (OpenBLAS linked in) in a FROM-scratch image $(IMAGE), non-root
image:
	rm -rf $(IMAGE_CTX)
	mkdir -p $(IMAGE_CTX)/rootfs $(IMAGE_CTX)/data
	mkdir -m 1777 $(IMAGE_CTX)/rootfs/tmp
	CGO_ENABLED=1 CGO_LDFLAGS='$(STATIC_CGO_LDFLAGS)' $(GO) build -tags '$(TAGS) netgo osusergo' -trimpath \
		-ldflags '$(STATIC_LDFLAGS) $(LDFLAGS)' -o $(IMAGE_CTX)/recur ./cmd/recur
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(IMAGE_CTX)/probe ./deploy/image/probe
	@file $(IMAGE_CTX)/recur | grep -q 'statically linked' || { echo "$(IMAGE_CTX)/recur is not static"; file $(IMAGE_CTX)/recur; exit 1; }
	cp deploy/image/Dockerfile deploy/image/passwd deploy/image/group $(IMAGE_CTX)/
	docker build -t $(IMAGE) $(IMAGE_CTX)
	docker run --rm $(IMAGE) --help >/dev/null
	@docker image ls $(IMAGE) --format '{{.Repository}}:{{.Tag}} {{.Size}}'

## compose-test: the compose cluster test (kill a worker, add one, restart the coordinator, partition a worker)
compose-test: image
	SKIP_IMAGE=1 IMAGE=$(IMAGE) bash scripts/cluster_test.sh

## deploy-check: parse deploy/k8s and deploy/compose and check them against the binaries' flags
deploy-check:
	$(GO) test -count=1 ./deploy/...

## bench-netns: ring busbw over 1 Gbit/s tbf-shaped veths in network namespaces (root);
## MATRIX=1 [REPS=3]: {gRPC,TCP} x {TLS,plaintext} x {fp32,fp16} and gloo as one markdown table
bench-netns:
	bash scripts/netns_bench.sh 4 10000000 5 1gbit

## fuzz: run every fuzz target briefly
fuzz:
	for p in $$(go list ./...); do for f in $$(go test -list 'Fuzz.*' $$p | grep ^Fuzz); do $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 10s $$p || exit 1; done; done

## bench-scaling: 1 vs 2 worker processes in local mode, alternately (ROUNDS, STEPS)
ROUNDS ?= 3
STEPS ?= 200
bench-scaling: build
	bash scripts/bench_scaling.sh $(ROUNDS) $(STEPS)

## bench-compare: side-by-side benchmarks against the PyTorch references (needs python3-torch)
bench-compare:
	bash scripts/bench_compare.sh all
