# berth: see README.md. Every target installs what it needs first.
CARGO ?= cargo
RELEASE_BIN := target/release/berth
STATIC_TARGET := x86_64-unknown-linux-gnu

.PHONY: all build deps test demo bench static fmt lint clean

all: build

build:
	$(CARGO) build --release

deps:
	./scripts/install-deps.sh

test: deps
	$(CARGO) build --release
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	BERTH_BIN=$(CURDIR)/$(RELEASE_BIN) $(CARGO) nextest run --workspace --no-fail-fast --cargo-profile release

demo: deps build
	./scripts/demo.sh

bench: 
	./scripts/install-deps.sh --bench
	$(CARGO) build --release
	./scripts/bench.sh

static:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(STATIC_TARGET)
	file target/$(STATIC_TARGET)/release/berth
	! ldd target/$(STATIC_TARGET)/release/berth 2>/dev/null | grep -q '=>'

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
