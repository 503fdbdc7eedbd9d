# qsurgeon — see README.md. Every target works from a clean checkout.
GO      ?= go
BIN     := bin/qsurgeon
PKGS    := ./...
FUZZTIME ?= 20s

.PHONY: all build test test-ansible test-clock-ahead test-faults test-hostile vet fmt-check demo fuzz bench bench-maillog bench-quick docs accept clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.buildDate=$$(date -u +%Y-%m-%dT%H:%M:%SZ) -X main.commit=$$(git rev-parse HEAD 2>/dev/null)" -o $(BIN) ./cmd/qsurgeon

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi

# The whole test suite: unit tests over the real-MTA fixtures, fuzz seeds,
# the CLI as the user runs it, real-Postfix integration tests, and the
# acceptance scripts of ../shared/checks when they are there.
test: fmt-check vet build
	$(GO) test -count=1 -timeout 15m $(PKGS)
	@# The reader benchmarks run once each: a compile-and-run check, never a timed assertion.
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./postfixq ./qmailq ./filter ./maillog
	@$(MAKE) --no-print-directory test-clock-ahead
	@if [ -d ../shared/checks ]; then $(MAKE) --no-print-directory accept; fi
	@$(MAKE) --no-print-directory test-ansible
	@# The README's demo must work as written.
	@$(MAKE) --no-print-directory demo > /dev/null

# The whole suite again with qsurgeon's clock (internal/clock) a year ahead,
# binaries included: no test may pass or fail by the date it runs on.
test-clock-ahead:
	QSURGEON_CLOCK_SHIFT=8760h $(GO) test -count=1 -timeout 15m -tags qsurgeon_clockshift $(PKGS)

# contrib/ansible for real with Debian's ansible-core: one playbook run over
# three local inventory hosts (a Postfix queue, a qmail queue, a missing one).
test-ansible: build
	bash scripts/test-ansible.sh $(BIN)

# Every attack of issue 16 planted in one Postfix and one qmail queue (FIFOs,
# stray hash directories, control characters, sparse 10 GB files, hard and
# symbolic links), every read-only command run on them under a timeout with
# peak RSS bounded, plus one regression test per finding. Needs root (tmpfs
# mounts for the full-disk cases). Part of make test too: it takes a minute.
test-hostile:
	$(GO) test -count=1 -timeout 10m -v -run 'TestAllAttacksAtOnce|TestFIFOInQueueDoesNotHang|TestEmptyHoldSubdirDoesNotHideHeldMail|TestJournalOnFullDiskStopsAction|TestControlCharsFromQueueAreEscaped|TestRequeueIntoRerunAfterENOSPCInjectsNoDuplicate|TestSparseDeferLogsDoNotAmplifyMemory|TestHardLinkedQueueFileIsNotActedOn|TestQuarantineManifestCutLineIsNotJoined|TestQmailDeleteRerunFinishesKilledRun|TestApplyOverlongPlanLineNamesFileAndLine|TestExportOnFullDiskLeavesNoPartialFile|TestHostile' ./cmd/qsurgeon

# Fault injection at EVERY step of repair, rebuild and carry, instead of the
# sample make test runs (several minutes).
test-faults:
	QSURGEON_ALL_FAULTS=1 $(GO) test -count=1 -timeout 60m ./rebuild

# Figures side by side with the tools admins use today, on generated
# 100k/1M Postfix and 450k qmail queues (bench/run.sh says how; needs root,
# Debian's postfix, ~10 GB of disk and time). Not part of make test.
bench: build
	bash bench/run.sh

# Log reading beside grep -c and pflogsumm on a 1 GB log (MAILLOG_MB), cold
# (drop_caches, needs root) and warm, wall and CPU; docs/benchmarks-maillog.md.
bench-maillog: build
	bash bench/maillog.sh

# The same on 20k-message queues, to try it out; writes to /var/tmp.
bench-quick: build
	QUICK=1 bash bench/run.sh

# The acceptance scripts (the CLI contract) against the bundled fixtures.
accept: build
	bash scripts/accept.sh $(BIN)

# Runs qsurgeon on the bundled Postfix incident queue: a summary, then the
# stolen account's mail from one client network.
demo: build
	@d=$$(mktemp -d "$${TMPDIR:-/tmp}/qsurgeon-demo.XXXXXX") && trap 'rm -rf "$$d"' EXIT && \
	tar --numeric-owner -xpzf testdata/queues/postfix-incident/queue.tar.gz -C $$d 2>/dev/null && \
	echo "== qsurgeon summary   (the bundled incident queue, extracted to $$d/postfix-incident-a, removed afterwards)" && \
	$(BIN) --queue $$d/postfix-incident-a summary && echo && \
	echo "== qsurgeon list --sasl-user hello@example.com --client 100.0.0.0/8" && \
	$(BIN) --queue $$d/postfix-incident-a list --sasl-user hello@example.com --client 100.0.0.0/8

fuzz:
	$(GO) test ./postfixq -run '^$$' -fuzz FuzzReader -fuzztime $(FUZZTIME)
	$(GO) test ./postfixq -run '^$$' -fuzz FuzzParseID -fuzztime $(FUZZTIME)
	$(GO) test ./qmailq -run '^$$' -fuzz FuzzEnvelope -fuzztime $(FUZZTIME)
	$(GO) test ./qmailq -run '^$$' -fuzz FuzzParseTrace -fuzztime $(FUZZTIME)
	$(GO) test ./qmailq -run '^$$' -fuzz FuzzInfoFile -fuzztime $(FUZZTIME)
	$(GO) test ./qmailq -run '^$$' -fuzz FuzzChannelFile -fuzztime $(FUZZTIME)
	$(GO) test ./postfixq -run '^$$' -fuzz FuzzLog -fuzztime $(FUZZTIME)
	$(GO) test ./internal/termsafe -run '^$$' -fuzz FuzzString -fuzztime $(FUZZTIME)
	$(GO) test ./filter -run '^$$' -fuzz FuzzCompileMatch -fuzztime $(FUZZTIME)

docs: build
	$(BIN) gen-docs --man docs/qsurgeon.1 --bash docs/qsurgeon.bash --zsh docs/qsurgeon.zsh --markdown docs/commands.md

clean:
	rm -rf bin
