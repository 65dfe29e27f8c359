# lockscope — `make help` lists the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/lockscope/lockscope/capture/recording.Version=$(VERSION)
BIN      := bin
PKGS     := ./...
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
UNITDIR  ?= $(PREFIX)/lib/systemd/system

.DEFAULT_GOAL := help
.PHONY: help build install test test-short test-versions demo demo-live fixtures bench faults overhead soak fuzz lint ci postgres

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/lockscope, its renderer bin/lockscope-render and the lean recorder bin/lockscope-capture
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/lockscope ./cmd/lockscope
	$(GO) build -o $(BIN)/lockscope-render ./cmd/lockscope-render
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/lockscope-capture ./cmd/lockscope-capture

install: build ## install both binaries into $(DESTDIR)$(BINDIR), the systemd unit into $(DESTDIR)$(UNITDIR) (PREFIX=/usr/local)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/lockscope
	install -m 0755 $(BIN)/lockscope $(BIN)/lockscope-capture $(DESTDIR)$(BINDIR)/
	sed 's|/usr/local/bin/lockscope-capture|$(BINDIR)/lockscope-capture|' cmd/lockscope-capture/lockscope-capture@.service > $(DESTDIR)$(UNITDIR)/lockscope-capture@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/lockscope-capture@.service
	install -m 0644 cmd/lockscope-capture/lockscope.env.example $(DESTDIR)/etc/lockscope/lockscope.env.example

postgres: ## install PostgreSQL and PgBouncer for the tests if they are missing
	@./fixtures/ensure-postgres.sh

test: postgres ## run every test, against throwaway PostgreSQL servers
	$(GO) test -count=1 -timeout 9m $(PKGS)

test-versions: postgres ## run the database tests on PostgreSQL 13-18 (binaries from npm, cached outside the repo)
	./fixtures/test-versions.sh

test-short: ## run the tests that need no database
	$(GO) test -short -count=1 $(PKGS)

demo: build ## analyse the bundled recorded incident (no database needed): demo/postmortem.md
	$(BIN)/lockscope analyze fixtures/cron-vs-alter/recording -o demo

demo-live: build ## stage an incident on a throwaway PostgreSQL, record and analyse it
	$(BIN)/lockscope demo

fixtures: postgres ## re-record every incident under fixtures/ (real servers, about a minute)
	$(GO) run ./fixtures/record

bench: postgres ## run the benchmarks (figures in the README)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m $(PKGS)

faults: postgres ## faults under a pgbench workload of 300 clients; prints the README's table
	LOCKSCOPE_FAULT_CLIENTS=300 LOCKSCOPE_FAULT_TABLE=$(CURDIR)/faults.md $(GO) test -count=1 -timeout 20m -run TestFault ./fixtures/reliability/
	@cat faults.md && rm -f faults.md

overhead: postgres ## pgbench TPS and p99 with and without the recorder, and with the runbook's queries (about 10 minutes)
	$(GO) run ./fixtures/reliability/overhead

soak: postgres ## the recorder for 30 minutes with small rotation and retention, through staged incidents
	$(GO) run ./fixtures/reliability/soak

FUZZTIME ?= 60s
fuzz: ## run every fuzz target for FUZZTIME each (default 60s); crashers land in testdata/fuzz
	$(GO) test -run '^$$' -fuzz '^FuzzRecoverJournal$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./capture/recording
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSample$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./capture/recording
	$(GO) test -run '^$$' -fuzz '^FuzzReadTableFile$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./capture/recording
	$(GO) test -run '^$$' -fuzz '^FuzzReadTable$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 100x ./analyze

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)

ci: lint test ## what CI runs: lint and every test
