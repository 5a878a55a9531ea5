# SPDX-License-Identifier: GPL-2.0
#
# Project tooling (not the kernel's Makefile). See README.md.
#
#   make demo    install, fetch, build, boot, show /sys/kernel/multikernel
#   make check   the same build, then every test; prints "N passed, N failed"
#   make bench   benchmarks in the VM, printed as ratios to a same-run baseline
#   make build   just install + fetch + build the kernel (and mkctl)
#   make install-tools   copy the built mkctl to $(PREFIX)/bin (/usr/local/bin)
#   make shell   boot the built kernel in a VM with a pool and mkctl, to try by hand
#   make clean   remove the build directory (kernel source cache stays)
#
# KSRC=/path/to/linux-7.3 uses that tree instead of Debian's linux-source-7.3.
# MK_BUILD=/path moves the build directory (default ~/.cache/multikernel/build).

.PHONY: all build check demo bench install install-tools shell clean modules

PREFIX ?= /usr/local

all: build

install:
	@scripts/install-deps.sh

build: install
	@scripts/build.sh

check:
	@scripts/check.sh

bench:
	@scripts/bench.sh

demo:
	@scripts/demo.sh

shell:
	@scripts/shell.sh

install-tools: build
	@bash -c '. scripts/lib.sh && install -D -m 0755 "$$MK_BUILD/bin/mkctl" "$(DESTDIR)$(PREFIX)/bin/mkctl" && echo "installed $(DESTDIR)$(PREFIX)/bin/mkctl"'

# Loadable parts (see Kbuild) built as external modules against the built tree.
modules: build
	@scripts/modules.sh

clean:
	@bash -c '. scripts/lib.sh && rm -rf "$$MK_BUILD"' 
