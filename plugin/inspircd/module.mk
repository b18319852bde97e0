# plugin/inspircd/module.mk — the InspIRCd 3 adapter, included by the top Makefile.
#
#   make build/m_tally.so     the module (links libtally.a into it)
#   make install-inspircd     copies it into /usr/lib/inspircd/modules/ (as root)
#
# -fno-rtti because Debian's InspIRCd exports no typeinfo for its classes, and
# MODNAME because the headers do not define it (see /work/shared/HOSTS.md).
# The module must be built with the same g++ and inspircd-dev as the server.

INSPIRCD_INCLUDE ?= /usr/include/inspircd
INSPIRCD_MODULEDIR ?= /usr/lib/inspircd/modules
INSPIRCD_SO := $(BUILD)/m_tally.so
INSPIRCD_SRC := plugin/inspircd/m_tally.cpp plugin/inspircd/settings.cpp plugin/inspircd/text.cpp
INSPIRCD_OBJ := $(INSPIRCD_SRC:plugin/inspircd/%.cpp=$(BUILD)/plugin/inspircd/%.o)
INSPIRCD_CXXFLAGS := -std=c++17 -O2 -g -fPIC -fno-rtti -fvisibility=hidden \
  -Wall -Wextra -Werror -Wno-unused-parameter -DMODNAME='"m_tally"' \
  -I$(INSPIRCD_INCLUDE) -Icore/include -MMD -MP

PLUGINS += $(INSPIRCD_SO)

$(BUILD)/plugin/inspircd/%.o: plugin/inspircd/%.cpp
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CXX     $<")
	$(Q)$(CXX) $(INSPIRCD_CXXFLAGS) -c $< -o $@

$(INSPIRCD_SO): $(INSPIRCD_OBJ) $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CXX) -shared -o $@ $(INSPIRCD_OBJ) $(LIBTALLY) $(LDLIBS_ALL)
	@# InspIRCd's own symbols resolve only at load time, so -z defs is not an
	@# option; catch an incomplete libtally here instead of at LOADMODULE.
	$(Q)if nm -u $@ | grep -q ' tally_'; then \
	  echo "$@: libtally symbols left undefined:" >&2; nm -u $@ | grep ' tally_' >&2; \
	  rm -f $@; exit 1; fi

.PHONY: install-inspircd
install-inspircd: $(INSPIRCD_SO)
	install -m 0644 $(INSPIRCD_SO) $(INSPIRCD_MODULEDIR)/m_tally.so
