# mica — build, run, test. Everything here installs what it needs itself.

CARGO    ?= cargo
FIXTURES ?= rootfs-fixtures/build
# Debian packages the fixtures and tests need.
APT_PKGS ?= busybox-static

.PHONY: all build release deps fixtures run test lint clean

all: build

build:
	$(CARGO) build

# The release binary is a static, non-PIE executable: no dynamic loader, no
# relocations to apply at start-up, fewer pages touched (peak RSS of `mica run`
# 5.5 -> 3.9 MiB here). --target keeps the flags off build scripts and proc macros.
# It is built against musl when the toolchain has the target or rustup can add
# it (and musl-gcc, from musl-tools, for zstd's C code): glibc's start-up probes
# the CPU caches with cpuid, which traps in a VM like this one (an empty static
# C program: 1.0 ms with glibc, 0.05 ms with musl, measured here). Otherwise,
# or with RELEASE_LIBC=glibc, it is built against glibc.
RELEASE_LIBC  ?= musl
HOST_TARGET   := $(shell rustc -vV | sed -n 's/^host: //p')
MUSL_TARGET   := $(subst -gnu,-musl,$(HOST_TARGET))
RELEASE_FLAGS ?= -C target-feature=+crt-static -C relocation-model=static
release:
	@target=$(HOST_TARGET); \
	if [ "$(RELEASE_LIBC)" = musl ]; then \
		if { rustup target list --installed 2>/dev/null | grep -qx $(MUSL_TARGET) \
			|| timeout 120 rustup target add $(MUSL_TARGET) >/dev/null 2>&1; } \
		   && { command -v musl-gcc >/dev/null \
			|| $(MAKE) --no-print-directory deps APT_PKGS=musl-tools >/dev/null 2>&1; } \
		   && command -v musl-gcc >/dev/null; then \
			target=$(MUSL_TARGET); \
		else \
			echo "release: no musl target or musl-gcc here: building against glibc"; \
		fi; \
	fi; \
	echo "release: $$target"; \
	RUSTFLAGS="$(RELEASE_FLAGS)" CC_$(subst -,_,$(MUSL_TARGET))=musl-gcc \
		$(CARGO) build --release --target $$target && \
	mkdir -p target/release && \
	install -m 755 target/$$target/release/mica target/release/mica

# Install missing Debian packages (runs apt-get only when something is missing).
deps:
	@missing=""; for p in $(APT_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

fixtures: deps
	sh rootfs-fixtures/build.sh $(FIXTURES)

# Run a bundled micro-container: a shell-less rootfs holding only our probe,
# packed as an OCI image, imported into mica's store (/var/lib/mica) and
# launched with a read-only root; it prints what it sees.
run: release fixtures
	sh rootfs-fixtures/demo.sh target/release/mica $(FIXTURES)/probe-only

# Every test: unit tests and integration tests that launch real containers (as root).
test: deps fixtures
	@$(MAKE) --no-print-directory deps APT_PKGS="$(ENGINE_PKGS)"
	MICA_FIXTURES=$(CURDIR)/$(FIXTURES) $(CARGO) test --all-targets
	$(MAKE) --no-print-directory test-release
	$(MAKE) --no-print-directory test-cgroup2

# The integration tests again, against the static release binary users run
# (musl where available, see `release`).
.PHONY: test-release
test-release: release fixtures
	@$(MAKE) --no-print-directory deps APT_PKGS="$(ENGINE_PKGS)"
	MICA_BIN=$(CURDIR)/target/release/mica MICA_FIXTURES=$(CURDIR)/$(FIXTURES) \
		$(CARGO) test --test inside --test lifecycle --test launch --test image \
		--test cgroups --test engines --test security

# tests/cgroups.rs on a pure cgroup v2 kernel, booted under qemu (vm/run.sh).
.PHONY: test-cgroup2
test-cgroup2: fixtures
	FIXTURES=$(FIXTURES) CARGO=$(CARGO) sh vm/run.sh

# mica bench against its peers (as root): installs them, boots the microVM,
# writes bench/RESULTS.md, bench/startup.svg and bench/results.json.
# youki is measured when it is installed; BENCH_YOUKI=1 installs it
# (cargo install youki --features v1: about 6 minutes on 2 cores, longer than
# the bench itself, so not by default).
BENCH_PKGS  ?= runc crun bubblewrap hyperfine qemu-system-x86 busybox-static
# 1200 containers per throughput level, in 12 rounds the contenders take turns in
# (the default 100 take ~0.3 s per contender, short enough for the machine's noise
# to move the ratios by 10-20%).
BENCH_FLAGS ?= --vm --throughput 1200
BENCH_YOUKI ?=
.PHONY: bench
bench: release fixtures
	@missing=""; for p in $(BENCH_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@if [ -n "$(BENCH_YOUKI)" ] && ! command -v youki >/dev/null && [ ! -x "$$HOME/.cargo/bin/youki" ]; then \
		$(CARGO) install youki --features v1 --locked; \
	fi
	mkdir -p bench
	MICA_FIXTURES=$(CURDIR)/$(FIXTURES) target/release/mica bench $(BENCH_FLAGS) \
		--json bench/results.json --svg bench/startup.svg --markdown bench/RESULTS.md

# mica driven by podman (conmon), containerd (ctr, runc v2 shim) and containerd's CRI,
# each check also run with runc (tests/engines.rs). Installs the engines if missing.
ENGINE_PKGS ?= podman conmon containerd runc python3-grpcio bsdutils
.PHONY: test-engines
test-engines: fixtures
	@$(MAKE) --no-print-directory deps APT_PKGS="$(ENGINE_PKGS)"
	MICA_FIXTURES=$(CURDIR)/$(FIXTURES) $(CARGO) test --test engines -- --nocapture --test-threads 6

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf $(FIXTURES)
