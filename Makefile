# Entry points; see README.md. Everything that installs runs as root.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export DEBIAN_FRONTEND := noninteractive

GO ?= go
# Time per fuzz target for `make fuzz`, and the execution count per target for
# the smoke run in `make test` (a count, not a time: see scripts/fuzz.sh).
FUZZTIME ?= 30s
SMOKE_FUZZTIME ?= 50000x

.PHONY: all setup build demo test lint fuzz clean

all: build

# Installs QEMU 10, busybox-static and cpio, and unpacks the guest kernel and
# the reference virtiofsd under /opt/virtiofsd-test ($VIRTIOFSD_TEST_DEPS).
setup:
	bash scripts/setup.sh

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/virtiofsd ./cmd/virtiofsd

demo: setup
	bash scripts/demo.sh

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The fuzz smoke runs first so that the test summary comes last.
test: setup lint
	bash scripts/fuzz.sh $(SMOKE_FUZZTIME)
	# The allocation budgets are meaningless under the race detector, so
	# they get a run of their own without it.
	$(GO) test -count=1 -run 'Allocs' ./internal/...
	$(GO) test -race -count=1 -timeout 30m ./...

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
