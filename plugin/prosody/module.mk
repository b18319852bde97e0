# plugin/prosody/module.mk — the Prosody 0.12 adapter, included by the top Makefile.
#
#   make build/prosody/tally.so   the Lua 5.4 C module (libtally linked in), `require "tally"`
#   make install-prosody          copies it and mod_tally.lua into Prosody's folders (as root)
#
# Prosody's interpreter provides Lua's symbols: the module is built against
# liblua5.4-dev's headers and never linked with -llua5.4 (HOSTS.md).

LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null)
PROSODY_LUA_SO := $(BUILD)/prosody/tally.so
PROSODY_OBJ := $(BUILD)/plugin/prosody/tally_lua.o
PROSODY_PLUGIN_DIR ?= /usr/lib/prosody/modules
PROSODY_CPATH_DIR ?= /usr/local/lib/lua/5.4

PLUGINS += $(PROSODY_LUA_SO)

$(PROSODY_OBJ): plugin/prosody/tally_lua.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_BASE) $(LUA_CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(PROSODY_LUA_SO): $(PROSODY_OBJ) $(LIBTALLY)
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -shared -o $@ $(PROSODY_OBJ) $(LIBTALLY) $(LDLIBS_ALL)
	$(Q)if nm -u $@ | grep -q ' tally_'; then \
	  echo "$@: libtally symbols left undefined:" >&2; nm -u $@ | grep ' tally_' >&2; \
	  rm -f $@; exit 1; fi

.PHONY: install-prosody
install-prosody: $(PROSODY_LUA_SO)
	install -d $(DESTDIR)$(PROSODY_CPATH_DIR) $(DESTDIR)$(PROSODY_PLUGIN_DIR)
	install -m 0644 $(PROSODY_LUA_SO) $(DESTDIR)$(PROSODY_CPATH_DIR)/tally.so
	install -m 0644 plugin/prosody/mod_tally.lua $(DESTDIR)$(PROSODY_PLUGIN_DIR)/mod_tally.lua
