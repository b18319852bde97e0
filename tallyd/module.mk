# tallyd/module.mk — the tallyd daemon, included by the top Makefile.
#
#   make build/tallyd            the daemon (links libtally.a, libuv, OpenSSL)
#   make install                 tallyd, tally, m_tally.so and the systemd unit
#                                (PREFIX=/usr/local, DESTDIR= for packaging)
#
# tallyd sees only core/include (tally.h, tally/frames.h), like any host: its
# objects build with no private include path. The binary is $(BUILD)/tallyd,
# so its objects live in $(BUILD)/tallyd-obj/.

TALLYD := $(BUILD)/tallyd
TALLYD_SRC := $(sort $(wildcard tallyd/*.c))
TALLYD_OBJ := $(TALLYD_SRC:tallyd/%.c=$(BUILD)/tallyd-obj/%.o)
# expat parses the XEP-0114 component's XML stream (xmpp_stream.c); only tallyd links it.
TALLYD_CFLAGS = $(shell pkg-config --cflags expat 2>/dev/null)
TALLYD_LIBS = $(shell pkg-config --libs expat 2>/dev/null || echo -lexpat)

$(BUILD)/tallyd-obj/%.o: PRIVATE_INC :=
# The Matrix Application Service (tallyd/matrix_*.c): libmicrohttpd serves
# it, jansson reads and writes its JSON (README: "Matrix").
TALLYD_PKGS := libmicrohttpd jansson
$(BUILD)/tallyd-obj/%.o: CFLAGS += $(shell pkg-config --cflags $(TALLYD_PKGS) 2>/dev/null)
$(BUILD)/tallyd-obj/%.o: tallyd/%.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) $(TALLYD_CFLAGS) -c $< -o $@

$(TALLYD): $(TALLYD_OBJ) $(LIBTALLY)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -o $@ $(TALLYD_OBJ) $(LIBTALLY) $(shell pkg-config --libs $(TALLYD_PKGS) 2>/dev/null) $(LDLIBS_ALL) $(TALLYD_LIBS)

all: $(TALLYD)
test-build: $(TALLYD)

# ---- install -------------------------------------------------------------------
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SYSTEMD_UNITDIR ?= $(PREFIX)/lib/systemd/system
INSPIRCD_INSTALL_MODULEDIR ?= $(PREFIX)/lib/inspircd/modules

.PHONY: install
install: $(TALLYD) $(TALLY_CLI) $(INSPIRCD_SO)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSTEMD_UNITDIR) $(DESTDIR)$(INSPIRCD_INSTALL_MODULEDIR)
	install -m 0755 $(TALLYD) $(DESTDIR)$(BINDIR)/tallyd
	install -m 0755 $(TALLY_CLI) $(DESTDIR)$(BINDIR)/tally
	install -m 0644 $(INSPIRCD_SO) $(DESTDIR)$(INSPIRCD_INSTALL_MODULEDIR)/m_tally.so
	sed 's|@BINDIR@|$(BINDIR)|g' tallyd/tallyd.service > $(DESTDIR)$(SYSTEMD_UNITDIR)/tallyd.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNITDIR)/tallyd.service
