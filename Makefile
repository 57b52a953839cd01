# mica — build, run, test. Everything here installs what it needs itself.

CARGO    ?= cargo
FIXTURES ?= rootfs-fixtures/build
# Debian packages the fixtures and tests need.
APT_PKGS ?= busybox-static

.PHONY: all build release deps fixtures run test lint clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

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
	MICA_FIXTURES=$(CURDIR)/$(FIXTURES) $(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf $(FIXTURES)
