# tests/adversary/adversary.mk — the adversarial layer (tests/adversary/adv.h).
#
# Included by the top Makefile; adds ADV_BINS to what `make test` builds:
#   $(BUILD)/tests/integration/test_adversary   run by tests/run.sh (bounded seeds)
# Targets:
#   make adversary ADV_SEEDS=17 ADV_STEPS=300   replay one seed (needs TALLY_TEST_DSN)
#   make soak-adversary [ADV_SEEDS=1..200]      many seeds, own PostgreSQL

ADV_TEST := $(BUILD)/tests/integration/test_adversary
ADV_BINS := $(ADV_TEST)
ADV_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tests/adversary/adv_*.c)))

$(ADV_TEST): $(ADV_OBJ) $(TEST_LIB_OBJ) $(LIBTALLY)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $(ADV_OBJ) $(TEST_LIB_OBJ) $(LIBTALLY) $(LDLIBS_ALL)

.PHONY: soak-adversary
soak-adversary: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SANITIZE=address,undefined test-build all $(ADV_TEST)
	$(Q)TALLY_TEST_ONLY=test_adversary ADV_SEEDS=$(or $(ADV_SEEDS),1..200) ADV_STEPS=$(or $(ADV_STEPS),150) \
	  TALLY_ADV_TIMEOUT=14400 tests/run.sh build/san build
