# tests/conformance/conformance.mk — the adapter conformance suite
# (tests/conformance/README.md): one set of network-neutral scenarios, one
# driver per host. Builds the frame driver (the engine itself as a host, on
# the public API only: no core/src include path) for `make test`, and adds
#   make conformance        every driver (frame, irc, xmpp, component, matrix) over every scenario
#   make conformance DRIVER=frame [ONLY=regex]

FRAME_DRIVER := $(BUILD)/tests/conformance/frame_driver
$(BUILD)/tests/conformance/%.o: PRIVATE_INC :=

$(FRAME_DRIVER): $(BUILD)/tests/conformance/frame_driver.o $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $< $(LIBTALLY) $(LDLIBS_ALL)

.PHONY: conformance
