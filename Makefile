# Septum: all set-up is done by these targets on a fresh machine.
#   make demo   create .venv if needed, install, run the reference device story end to end
#   make test   install what the tests need (Debian packages too when root) and run the whole suite

# The runtime drops each partition to its own uid, so the interpreter must be readable by other users:
# prefer Debian's system Python over a root-only pyenv build.
PYTHON ?= $(shell for p in /usr/bin/python3.12 /usr/bin/python3.11 /usr/bin/python3; do \
            [ -x $$p ] && $$p -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null \
            && echo $$p && break; done)
ifeq ($(strip $(PYTHON)),)
PYTHON := python3
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.septum-installed
SYSSTAMP := $(VENV)/.septum-system-deps
# Debian packages used by the tests (browser tests need chromium, the FDA views graphviz); installed only when root.
# The seL4 target needs the aarch64 cross compiler, QEMU, dtc, xmllint, cmake and ninja.
DEBIAN_PACKAGES := chromium chromium-driver graphviz e2fsprogs \
  gcc-aarch64-linux-gnu qemu-system-arm device-tree-compiler libxml2-utils cmake ninja-build

.PHONY: demo test lint docs bench venv system-deps clean sel4

venv: $(STAMP)

# The reference pump and the demo hospital client are packages of their own (docs/pump.md), installed editable.
$(STAMP): pyproject.toml examples/infusion_pump/pyproject.toml examples/hospital_client/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[test,compliance,hospital,sel4]' -e examples/hospital_client \
	  -e examples/infusion_pump
	@touch $(STAMP)

system-deps: $(SYSSTAMP)

# Re-checked when the Makefile changes, so a package added to DEBIAN_PACKAGES is installed on existing machines too.
$(SYSSTAMP): Makefile | $(STAMP)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "WARNING: could not install$$missing; tests that need them will skip with a reason"; fi; \
	else echo "not root: skipping Debian packages ($(DEBIAN_PACKAGES)); tests that need them skip with a reason"; fi
	@touch $(SYSSTAMP)

demo: $(STAMP)
	@$(BIN)/python -m septum.demo

test: $(STAMP) $(SYSSTAMP)
	@$(BIN)/ruff check septum tests benchmarks examples
	@$(BIN)/mypy
	@$(BIN)/python -m pytest -q

# A Microkit 1.2.6 SDK (qemu_virt_aarch64, debug+release) from SEL4_SRC/MICROKIT_SRC (archive or folder), the
# archives in SEPTUM_VENDOR (default ../shared/vendor), or MICROKIT_SDK as given; cached in build/sel4/.
sel4: $(STAMP) $(SYSSTAMP)
	@SEL4_SRC="$(SEL4_SRC)" MICROKIT_SRC="$(MICROKIT_SRC)" MICROKIT_SDK="$(MICROKIT_SDK)" \
	  nice -n 10 $(BIN)/python -m septum.sel4.sdk

lint: $(STAMP)
	@$(BIN)/ruff check septum tests benchmarks examples
	@$(BIN)/mypy

docs: $(STAMP)
	@$(BIN)/python -m septum.docs_gen

# Every benchmark runs (a crash does not hide the others' figures); the exit is non-zero at the end if any failed.
# The bench extra brings what the comparisons need (pytm). Modules without a __main__ (genmodel.py) are helpers.
bench: $(STAMP)
	@$(BIN)/python -m pip install -q -e '.[bench]'
	@failed=""; for b in benchmarks/*.py; do grep -q '__name__ == "__main__"' $$b || continue; \
	  echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; done; \
	  if [ -n "$$failed" ]; then echo "FAILED benchmarks:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
