# tests/daemon/daemon.mk — tallyd's tests: each starts build/san/tallyd and
# talks to it with the frame client of tests/lib/frame_client.c.
DAEMON_TEST_SRC := $(sort $(wildcard tests/daemon/test_*.c))
DAEMON_TEST_BINS := $(DAEMON_TEST_SRC:tests/daemon/%.c=$(BUILD)/tests/daemon/%)

$(BUILD)/tests/daemon/%: $(BUILD)/tests/daemon/%.o $(TEST_LIB_OBJ) $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(TEST_LIB_OBJ) $(LIBTALLY) $(LDLIBS_ALL) -lcmocka

# test_tallyd_tables: tallyd's presence and pending tables alone, against models.
$(BUILD)/tests/daemon/test_tallyd_tables: $(BUILD)/tests/daemon/test_tallyd_tables.o \
    $(BUILD)/tallyd-obj/presence.o $(BUILD)/tallyd-obj/pending.o $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $^ $(LDLIBS_ALL) -lcmocka
