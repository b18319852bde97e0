# fuzz.mk — replays of the fuzz targets, included by the top Makefile.
#
# Each tests/fuzz/<target>/fuzz_<target>.c is also built with the normal
# compiler and sanitizer flags as $(BUILD)/tests/fuzz/replay_<target>: the
# target's LLVMFuzzerTestOneInput plus tests/fuzz/replay_main.c, which runs
# it on every committed corpus and regression file. tests/run.sh runs these
# in `make test`. The libFuzzer builds themselves are tests/fuzz/run.sh's
# (`make fuzz`), with clang. Uses CC, CFLAGS_ALL, LIBTALLY and LDLIBS_ALL
# from the top Makefile.

FUZZ_TARGETS := $(sort $(patsubst tests/fuzz/%/,%,$(dir $(wildcard tests/fuzz/*/fuzz_*.c))))
FUZZ_REPLAY_BINS := $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/replay_%)

$(BUILD)/tests/fuzz/%.replay.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -Itests/fuzz -DTALLY_FUZZ_REPLAY -c $< -o $@

# replay_main.c once per target, with the target's name compiled in.
define FUZZ_REPLAY_RULES
$(BUILD)/tests/fuzz/replay_main.$(1).o: tests/fuzz/replay_main.c
	@mkdir -p $$(dir $$@)
	$$(if $$(Q),@echo "  CC      $$< ($(1))")
	$$(Q)$$(CC) $$(CFLAGS_ALL) -DTALLY_FUZZ_TARGET='"$(1)"' -c $$< -o $$@

$(BUILD)/tests/fuzz/replay_$(1): $(BUILD)/tests/fuzz/$(1)/fuzz_$(1).replay.o \
    $(BUILD)/tests/fuzz/replay_main.$(1).o $$(LIBTALLY)
	$$(if $$(Q),@echo "  LD      $$@")
	$$(Q)$$(CC) -o $$@ $$(filter %.o,$$^) $$(LIBTALLY) $$(LDLIBS_ALL)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_REPLAY_RULES,$(t))))
