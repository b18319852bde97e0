# tally — build, test, run and benchmark.
#
#   make            build libtally, the tally CLI and the InspIRCd module
#   make run        private PostgreSQL + InspIRCd with tally + a demo event
#   make test       unit, integration, end-to-end tests (ASan+UBSan), own PostgreSQL
#   make bench      benchmark the hot buy path against its baselines
#   make fuzz       run each libFuzzer target for FUZZ_SECONDS
#   make deps       install missing Debian packages (as root) or print the line
#   make sim SEED=S STEPS=N   replay one simulation seed (SEEDS=A..B for many)
#   make soak (= soak-sim)    simulation seeds 1..2000 (10,000 steps each)
#   make soak-daemon          30 min through tallyd from two linked InspIRCd (SOAK_MINUTES=)
#   make adversary ADV_SEEDS=S   replay adversarial seeds (ADV_STEPS=N, ADV_SKIP=w,w)
#   make soak-adversary       adversarial seeds 1..200 (ADV_SEEDS=, ADV_STEPS=)
#   make conformance          the adapter conformance suite on every driver (frame, irc, xmpp, component, matrix)
#
# V=1 shows full commands. SANITIZE=address,undefined builds with sanitizers.

# `make` alone builds everything (the included .mk files define rules first).
.DEFAULT_GOAL := all

DEBIAN_PACKAGES := build-essential pkg-config libuv1-dev libmsgpack-dev libpq-dev \
  libssl-dev libcmocka-dev postgresql-15 postgresql-client-15 inspircd inspircd-dev \
  anope ii irssi weechat-curses tmux clang-14 libfuzzer-14-dev libclang-rt-14-dev python3 iproute2 \
  procps faketime prosody lua5.4 liblua5.4-dev python3-slixmpp profanity systemd \
  ejabberd libexpat1-dev \
  libmicrohttpd-dev libjansson-dev \
  libutf8proc-dev \
  nodejs npm
PKGS := libuv msgpack libpq openssl libutf8proc

CC ?= gcc
CXX ?= g++
BUILD ?= build
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lmsgpackc

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
  -Wno-unused-parameter -Wvla -Wformat=2
# core/src is layered, bottom to top (docs/ARCHITECTURE.md, checked by
# tools/layers.sh in `make test`); each layer is a folder on the include path,
# so includes name headers without their folder.
CORE_LAYERS := base wire receipts model ledger kernel features commands runtime
# A feature may have a folder of its own (core/src/features/<name>/, still
# layer `features`); each is on the include path too.
FEATURE_DIRS := $(sort $(dir $(wildcard core/src/features/*/*.c)))
CORE_INC := -Icore/src $(addprefix -Icore/src/,$(CORE_LAYERS)) $(addprefix -I,$(FEATURE_DIRS))
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g -fPIC -pthread $(WARN) \
  -Icore/include -Ischemas -fvisibility=hidden -MMD -MP
# core's private headers, for core itself and the tests only. The CLI, the
# bench and tools/ see the public headers alone (core/include: tally.h,
# tally/admin.h, tally/bench.h), so an internal include there fails to
# compile; the InspIRCd module has its own flags (plugin/inspircd/module.mk).
PRIVATE_INC := $(CORE_INC) -Itests/lib
$(BUILD)/cli/%.o $(BUILD)/bench/%.o $(BUILD)/tools/%.o: PRIVATE_INC :=
ifneq ($(SANITIZE),)
# A sanitizer build is a test build: it has the planted bugs of
# core/src/base/test_fault.h (off unless TALLY_TEST_FAULT names one); the
# plain build never does (tests/docs/no_test_faults.sh).
CFLAGS_BASE += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1 -DTALLY_TEST_FAULTS
LDFLAGS_SAN := -fsanitize=$(SANITIZE)
endif
CFLAGS_ALL = $(CFLAGS_BASE) $(PRIVATE_INC) $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lpthread -lm $(LDFLAGS_SAN) $(LDLIBS)

CORE_SRC := $(sort $(wildcard core/src/*.c $(CORE_LAYERS:%=core/src/%/*.c) core/src/features/*/*.c))
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations.o
SQL_FILES := $(sort $(wildcard sql/*.sql))
LIBTALLY := $(BUILD)/libtally.a

CLI_SRC := $(sort $(wildcard cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TALLY_CLI := $(BUILD)/tally

TEST_LIB_SRC := $(sort $(wildcard tests/lib/*.c))
TEST_LIB_OBJ := $(TEST_LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
INTEG_SRC := $(sort $(wildcard tests/integration/test_*.c))
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
TEST_BINS := $(UNIT_BIN) $(INTEG_BIN)

# Deterministic simulation (tests/sim): tally_sim, and test_sim run by make test.
include tests/sim/sim.mk
TEST_BINS += $(SIM_BINS)
# The adversarial layer: hostile users against the real engine and PostgreSQL.
include tests/adversary/adversary.mk
TEST_BINS += $(ADV_BINS)
# Fuzz targets' corpora and saved crashes, replayed with gcc + sanitizers.
include tests/fuzz/fuzz.mk
TEST_BINS += $(FUZZ_REPLAY_BINS)
# The adapter conformance suite's frame driver (tests/conformance).
include tests/conformance/conformance.mk
TEST_BINS += $(FRAME_DRIVER)

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
BENCH_LIB_OBJ := $(BUILD)/bench/common/bench_util.o

.PHONY: all deps run test test-build bench fuzz clean install check-deps docs
all: $(LIBTALLY) $(TALLY_CLI) plugins

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -DTALLY_BUILDING -c $< -o $@

# sql/ itself too: its mtime changes when a migration is added, removed or
# renamed, which the file list alone would not notice for a removed one.
$(BUILD)/gen/migrations.c: $(SQL_FILES) sql tools/embed_sql.sh
	@mkdir -p $(dir $@)
	$(Q)tools/embed_sql.sh $@ $(SQL_FILES)

$(BUILD)/gen/migrations.o: $(BUILD)/gen/migrations.c
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(LIBTALLY): $(CORE_OBJ)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(TALLY_CLI): $(CLI_OBJ) $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $(CLI_OBJ) $(LIBTALLY) $(LDLIBS_ALL)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(TEST_LIB_OBJ) $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(TEST_LIB_OBJ) $(LIBTALLY) $(LDLIBS_ALL) -lcmocka

$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(TEST_LIB_OBJ) $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(TEST_LIB_OBJ) $(LIBTALLY) $(LDLIBS_ALL) -lcmocka

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BENCH_LIB_OBJ) $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(BENCH_LIB_OBJ) $(LIBTALLY) $(LDLIBS_ALL)

# docs/FRAMES.md is generated from the schema header (one source); `make docs`
# rewrites it and tests/docs/frames_doc.sh (run by make test) fails when the
# committed file differs from what the tool prints.
SCHEMA_DOC := $(BUILD)/tools/schema_doc
$(SCHEMA_DOC): $(BUILD)/tools/schema_doc.o
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(LDFLAGS_SAN)

# Always rewritten (a hand edit newer than the tool must not survive `make docs`).
docs: $(SCHEMA_DOC)
	$(Q)$(SCHEMA_DOC) schemas/tally_frames_v1.h > docs/FRAMES.md.tmp && mv docs/FRAMES.md.tmp docs/FRAMES.md

# Host adapters add themselves here (each plugin/<host>/module.mk appends to PLUGINS).
PLUGINS :=
-include $(wildcard plugin/*/module.mk)
plugins: $(PLUGINS)

# The daemon (tallyd/module.mk): build/tallyd, `make install`.
include tallyd/module.mk
# Its tests (tests/daemon): a frame client against a running tallyd.
include tests/daemon/daemon.mk
TEST_BINS += $(DAEMON_TEST_BINS)

# ---- set-up ------------------------------------------------------------------
deps:
	@tools/deps.sh $(DEBIAN_PACKAGES)

# ---- tests -------------------------------------------------------------------
# Tests build into build/san with ASan+UBSan and run against a throwaway
# PostgreSQL that tests/run.sh starts and removes.
test: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SANITIZE=address,undefined test-build
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/run.sh build/san build

test-build: $(LIBTALLY) $(TALLY_CLI) $(TEST_BINS) $(SCHEMA_DOC)

# The conformance suite alone (tests/conformance): the frame driver with
# sanitizers (and tallyd, for the component and matrix drivers), the InspIRCd module plain,
# the scenarios through each driver.
conformance: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SANITIZE=address,undefined \
	  build/san/tests/conformance/frame_driver build/san/tally build/san/tallyd
	$(Q)$(MAKE) --no-print-directory all
	$(Q)TALLY_TEST_ONLY='tests/conformance/' tests/run.sh build/san build

# ---- benchmark ---------------------------------------------------------------
bench: deps
	$(Q)$(MAKE) --no-print-directory all $(BENCH_BIN)
	$(Q)bench/run.sh $(BUILD)

# ---- run ---------------------------------------------------------------------
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tools/run.sh $(BUILD)

fuzz: deps
	$(Q)tests/fuzz/run.sh $(or $(FUZZ_SECONDS),60)

# Not in `make test`: memory and p99 over SOAK_MINUTES (default 30) of steady
# buying through tallyd from two servers; its own PostgreSQL.
.PHONY: soak-daemon soak-sim
soak-daemon: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)TALLY_BUILD=$(CURDIR)/$(BUILD) TALLY_CLI=$(CURDIR)/$(BUILD)/tally /usr/bin/python3 tests/soak/soak_daemon.py
soak-sim: soak

clean:
	rm -rf build bench/out/*.tmp

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
