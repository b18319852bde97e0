# tests/sim/sim.mk — the deterministic simulation of the real engine
# (docs/SIMULATION.md).
#
# Included by the top Makefile after LIBTALLY, CFLAGS_ALL, LDLIBS_ALL and
# the $(BUILD)/%.o rule; adds SIM_BINS to what `make test` builds:
#   $(BUILD)/tests/sim/tally_sim          the simulator (replay, many seeds)
#   $(BUILD)/tests/integration/test_sim   TAP runner that tests/run.sh runs
# Targets:
#   make sim SEED=7 STEPS=5000         replay one seed (SEEDS=1..500 for many)
#   make soak [SEEDS=1..2000]          many seeds, plain -O2 build
# SIM_FLAGS passes extra options (--trace, --keep-going, --inject-bug NAME).
# Planted bugs exist only in a test build (core/src/base/test_fault.h):
#   make sim BUILD=build/san SANITIZE=address,undefined SEED=1 SIM_FLAGS='--inject-bug commit-twice' 

SIM_TOOL := $(BUILD)/tests/sim/tally_sim
SIM_TEST := $(BUILD)/tests/integration/test_sim
SIM_BINS := $(SIM_TOOL) $(SIM_TEST)
SIM_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tests/sim/sim*.c)))

$(SIM_TOOL): $(BUILD)/tests/sim/tally_sim.o $(SIM_OBJ) $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(SIM_OBJ) $(LIBTALLY) $(LDLIBS_ALL)

# An explicit rule: tests/integration/%'s pattern rule would look for
# tests/integration/test_sim.c.
$(SIM_TEST): $(BUILD)/tests/sim/test_sim.o $(SIM_OBJ) $(LIBTALLY)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(SIM_OBJ) $(LIBTALLY) $(LDLIBS_ALL)

.PHONY: sim soak
sim: $(SIM_TOOL)
	$(Q)$(SIM_TOOL) $(if $(SEEDS),--seeds $(SEEDS),--seed $(or $(SEED),1)) \
	  --steps $(or $(STEPS),3000) $(SIM_FLAGS)

soak: $(SIM_TOOL)
	$(Q)$(SIM_TOOL) --seeds $(or $(SEEDS),1..2000) --steps $(or $(STEPS),10000) $(SIM_FLAGS)
