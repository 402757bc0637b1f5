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

# The end-to-end tests drive the debug binary that nextest builds
# (CARGO_BIN_EXE_berth); decompression crates are optimised even there.
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) nextest run --workspace

demo: deps build
	./scripts/demo.sh

bench: 
	./scripts/install-deps.sh --bench
	$(CARGO) build --release
	./scripts/bench.sh
	./runtime/bench/run-true.sh
	./scripts/bench-run.sh
	./scripts/bench-net.sh

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
