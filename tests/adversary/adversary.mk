# tests/adversary/adversary.mk — the adversarial layer (tests/adversary/adv.h).
#
# Included by the top Makefile; adds ADV_BINS to what `make test` builds:
#   $(BUILD)/tests/integration/test_adversary   run by tests/run.sh (seeds 1..6, 80 steps)
# Targets (each with its own throwaway PostgreSQL, like make test):
#   make adversary ADV_SEEDS=17 ADV_STEPS=300   replay one seed (or ADV_SEEDS=A..B)
#   make soak-adversary [ADV_SEEDS=1..200]      many seeds (150 steps each by default)
# ADV_SKIP=word,word leaves out the actions whose names contain a word;
# TALLY_TEST_VERBOSE=1 prints every command and answer.

ADV_TEST := $(BUILD)/tests/integration/test_adversary
ADV_BINS := $(ADV_TEST)
ADV_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tests/adversary/adv_*.c)))

$(ADV_TEST): $(ADV_OBJ) $(TEST_LIB_OBJ) $(LIBTALLY)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $(ADV_OBJ) $(TEST_LIB_OBJ) $(LIBTALLY) $(LDLIBS_ALL)

.PHONY: adversary soak-adversary
adversary soak-adversary: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SANITIZE=address,undefined build/san/tests/integration/test_adversary
	$(Q)$(MAKE) --no-print-directory all
	$(Q)TALLY_TEST_ONLY=test_adversary TALLY_ADV_TIMEOUT=14400 \
	  ADV_SEEDS=$(or $(ADV_SEEDS),$(if $(filter soak-adversary,$@),1..200,1)) \
	  ADV_STEPS=$(or $(ADV_STEPS),$(if $(filter soak-adversary,$@),150,80)) \
	  tests/run.sh build/san build
