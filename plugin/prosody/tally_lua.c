/* tally_lua.c — the Lua 5.4 binding of libtally's public API, for Prosody's
 * mod_tally (plugin/prosody/mod_tally.lua), loaded with `require "tally"`.
 *
 *   local tally = require "tally"
 *   local e = assert(tally.new{ dsn = "...", network = "xmpp", ... })  -- config keys as text
 *   e:start()
 *   local ok, code, why = e:submit{ req_id = 1, origin = full_jid, account = bare_jid,
 *                                   nick = "Al", channel = room_jid, msg_id = stanza_id,
 *                                   text = "BUY tee", roles = tally.ROLE_HOST }
 *   e:presence{ account = bare_jid, channel = room_jid, present = true }
 *   require "net.server".watchfd(e:fd(), function() e:drain(on_effect, 512) end)
 *   e:stop()                                                   -- also on collection
 *   tally.describe(), tally.config_describe(), tally.text_check(s), tally.strerror(code)
 *
 * Contract: every call returns at once (libtally's submit copies into a
 * lock-free queue; drain hands out what is waiting). Errors are return
 * values (nil, code, message), never Lua errors, except for calling a
 * method with the wrong types. An effect callback that raises is caught
 * (the engine's drain holds a lock that a longjmp would leave held): drain
 * returns how many it delivered and the first error message. Built against
 * liblua5.4-dev without linking liblua: Prosody's interpreter provides it
 * (HOSTS.md). Both modes (local engine, remote tallyd) are the same calls:
 * the `mode` config key chooses. */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "tally.h"
#include "tally/frames.h"

#define ENGINE_MT "tally.engine"

typedef struct lua_engine {
  tally_engine *e;
  int stopped;
} lua_engine;

static int fail(lua_State *L, int code, const char *why) {
  lua_pushnil(L);
  lua_pushinteger(L, code);
  lua_pushstring(L, why && why[0] ? why : tally_strerror(code));
  return 3;
}

/* ---- tally.new(config) ------------------------------------------------------- */
static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_newtable(L); /* 2: texts of non-string values, alive until the engine exists */
  tally_config cfg;
  tally_config_init(&cfg);
  char err[TALLY_ERRBUF_BYTES] = "";
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) { /* key -2, value -1 */
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      return fail(L, TALLY_ECONFIG, "config keys are strings");
    }
    if (lua_type(L, -1) != LUA_TSTRING) { /* 3, true: their text */
      luaL_tolstring(L, -1, NULL);
      lua_pushvalue(L, -1);
      lua_rawseti(L, 2, (lua_Integer)lua_rawlen(L, 2) + 1);
      lua_replace(L, -2);
    }
    /* A string held by table 1 or 2: valid until they go. */
    int rc = tally_config_set(&cfg, lua_tostring(L, -2), lua_tostring(L, -1), err, sizeof err);
    lua_pop(L, 1);
    if (rc != TALLY_OK) {
      lua_pop(L, 1);
      return fail(L, rc, err);
    }
  }
  lua_engine *le = lua_newuserdatauv(L, sizeof *le, 0);
  le->e = NULL;
  le->stopped = 0;
  luaL_setmetatable(L, ENGINE_MT);
  int rc = tally_engine_new(&cfg, &le->e, err, sizeof err);
  if (rc != TALLY_OK) return fail(L, rc, err);
  return 1;
}

static lua_engine *check_engine(lua_State *L) {
  lua_engine *le = luaL_checkudata(L, 1, ENGINE_MT);
  luaL_argcheck(L, le->e != NULL, 1, "engine already freed");
  return le;
}

static int l_start(lua_State *L) {
  lua_engine *le = check_engine(L);
  int rc = tally_engine_start(le->e);
  if (rc != TALLY_OK) return fail(L, rc, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* A string field of the table at index t, "" when absent. */
static const char *field_str(lua_State *L, int t, const char *name) {
  lua_getfield(L, t, name);
  /* Only a real string: the table holds it, so it outlives the pop (a
   * number's text would live on the stack alone). */
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return s;
}

static lua_Integer field_int(lua_State *L, int t, const char *name) {
  lua_getfield(L, t, name);
  lua_Integer v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (lua_toboolean(L, -1) ? 1 : 0);
  lua_pop(L, 1);
  return v;
}

static int l_submit(lua_State *L) {
  lua_engine *le = check_engine(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  tally_command c;
  memset(&c, 0, sizeof c);
  c.size = sizeof c;
  c.version = TALLY_COMMAND_VERSION;
  c.req_id = (uint64_t)field_int(L, 2, "req_id");
  c.origin = field_str(L, 2, "origin");
  c.account = field_str(L, 2, "account");
  c.nick = field_str(L, 2, "nick");
  c.channel = field_str(L, 2, "channel");
  c.msg_id = field_str(L, 2, "msg_id");
  c.text = field_str(L, 2, "text");
  c.roles = (uint32_t)field_int(L, 2, "roles");
  c.network = field_str(L, 2, "network");
  int rc = tally_engine_submit_command(le->e, &c);
  if (rc != TALLY_OK) return fail(L, rc, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_presence(lua_State *L) {
  lua_engine *le = check_engine(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  tally_presence p;
  memset(&p, 0, sizeof p);
  p.size = sizeof p;
  p.version = TALLY_PRESENCE_VERSION;
  p.account = field_str(L, 2, "account");
  p.channel = field_str(L, 2, "channel");
  p.present = field_int(L, 2, "present") ? 1 : 0;
  p.network = field_str(L, 2, "network");
  int rc = tally_engine_submit_presence(le->e, &p);
  if (rc != TALLY_OK) return fail(L, rc, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_fd(lua_State *L) {
  lua_engine *le = check_engine(L);
  lua_pushinteger(L, tally_engine_fd(le->e));
  return 1;
}

/* ---- drain ---------------------------------------------------------------------- */
typedef struct drain_ctx {
  lua_State *L;
  int fn; /* stack index of the callback */
  int errors;
} drain_ctx;

static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v ? v : "");
  lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void on_effect(void *ud, const tally_effect *eff) {
  drain_ctx *d = ud;
  lua_State *L = d->L;
  lua_pushvalue(L, d->fn);
  lua_createtable(L, 0, 14);
  set_int(L, "kind", eff->kind);
  set_int(L, "code", eff->code);
  set_int(L, "req_id", (lua_Integer)eff->req_id);
  set_int(L, "receipt_id", (lua_Integer)eff->receipt_id);
  set_str(L, "origin", eff->origin);
  set_str(L, "channel", eff->channel);
  set_str(L, "text", eff->text);
  if (TALLY_HAS_FIELD(eff, tally_effect, hint)) set_int(L, "hint", eff->hint);
  if (TALLY_HAS_FIELD(eff, tally_effect, args)) {
    set_str(L, "network", eff->network);
    set_int(L, "conn", (lua_Integer)eff->conn);
    set_int(L, "msg", eff->msg);
    set_str(L, "args", eff->args);
  }
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    /* The first error message stays on the stack for drain's caller. */
    if (d->errors++ == 0) lua_insert(L, d->fn + 1);
    else lua_pop(L, 1);
  }
}

static int l_drain(lua_State *L) {
  lua_engine *le = check_engine(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_Integer max = luaL_optinteger(L, 3, 512);
  luaL_argcheck(L, max > 0, 3, "max must be positive");
  lua_settop(L, 2);
  drain_ctx d = {.L = L, .fn = 2, .errors = 0};
  int n = tally_engine_drain(le->e, on_effect, &d, (size_t)max);
  lua_pushinteger(L, n);
  if (d.errors) {
    lua_pushvalue(L, 3); /* the first error */
    return 2;
  }
  return 1;
}

static int l_stop(lua_State *L) {
  lua_engine *le = luaL_checkudata(L, 1, ENGINE_MT);
  if (le->e && !le->stopped) {
    tally_engine_stop(le->e);
    le->stopped = 1;
  }
  return 0;
}

/* Frees (e:free(), collection): stops without waiting for batches in
 * flight, within TALLY_ENGINE_STOP_FAST_MS. */
static int l_gc(lua_State *L) {
  lua_engine *le = luaL_checkudata(L, 1, ENGINE_MT);
  if (le->e) {
    /* Module unload must not hold Prosody's loop: batches in flight are
     * left to PostgreSQL (their buyers were told "pending"; the next start
     * rebuilds from the ledger). */
    (void)tally_engine_stop_within(le->e, TALLY_ENGINE_STOP_FAST_MS);
    tally_engine_free(le->e);
    le->e = NULL;
  }
  return 0;
}

static int l_stats(lua_State *L) {
  lua_engine *le = check_engine(L);
  tally_stats s;
  tally_engine_stats(le->e, &s);
  lua_createtable(L, 0, 9);
  set_int(L, "events_in", (lua_Integer)s.events_in);
  set_int(L, "effects_out", (lua_Integer)s.effects_out);
  set_int(L, "busy_rejects", (lua_Integer)s.busy_rejects);
  set_int(L, "buys_committed", (lua_Integer)s.buys_committed);
  set_int(L, "buys_refused", (lua_Integer)s.buys_refused);
  set_int(L, "queue_depth_now", (lua_Integer)s.queue_depth_now);
  return 1;
}

/* ---- module functions -------------------------------------------------------------- */
static void describe_one(void *ud, const tally_command_doc *doc) {
  lua_State *L = ud;
  lua_createtable(L, 0, 7);
  set_str(L, "word", doc->word);
  set_str(L, "usage", doc->usage);
  set_str(L, "help", doc->help);
  set_str(L, "operator_usage", doc->operator_usage ? doc->operator_usage : "");
  set_int(L, "flags", doc->flags);
  set_int(L, "group", doc->group);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

static int l_describe(lua_State *L) {
  lua_newtable(L);
  tally_commands_describe(describe_one, L);
  return 1;
}

static void config_one(void *ud, const char *key, const char *def, const char *help) {
  lua_State *L = ud;
  lua_createtable(L, 0, 3);
  set_str(L, "key", key);
  set_str(L, "default", def);
  set_str(L, "help", help);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

static int l_config_describe(lua_State *L) {
  lua_newtable(L);
  tally_config_describe(config_one, L);
  return 1;
}

static int l_text_check(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int rc = tally_text_check(s, len);
  if (rc != TALLY_OK) return fail(L, rc, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* tally.args_parse(text, args) -> { {kind=, start=, len=, value=, decimals=}, ... }
 * (start is 1-based, for string.sub), or nil, code. */
static int l_args_parse(lua_State *L) {
  const char *text = luaL_checkstring(L, 1);
  const char *args = luaL_checkstring(L, 2);
  enum { ARGS_MAX = 64 };
  tally_effect_arg out[ARGS_MAX];
  size_t n = 0;
  int rc = tally_effect_args_parse(text, args, out, ARGS_MAX, &n);
  if (rc != TALLY_OK) return fail(L, rc, NULL);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 5);
    set_int(L, "kind", out[i].kind);
    set_int(L, "start", (lua_Integer)out[i].start + 1);
    set_int(L, "len", out[i].len);
    set_int(L, "value", out[i].value);
    set_int(L, "decimals", out[i].decimals);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int l_strerror(lua_State *L) {
  lua_pushstring(L, tally_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int l_err_name(lua_State *L) {
  lua_pushstring(L, tally_err_name((int)luaL_checkinteger(L, 1)));
  return 1;
}

static const luaL_Reg engine_methods[] = {
    {"start", l_start}, {"submit", l_submit}, {"presence", l_presence}, {"fd", l_fd}, {"drain", l_drain},
    {"stop", l_stop},   {"free", l_gc},       {"stats", l_stats},       {NULL, NULL}};

static const luaL_Reg module_functions[] = {
    {"new", l_new},           {"describe", l_describe}, {"config_describe", l_config_describe},
    {"text_check", l_text_check}, {"strerror", l_strerror}, {"err_name", l_err_name},
    {"args_parse", l_args_parse}, {NULL, NULL}};

#define CONST(name, value) (lua_pushinteger(L, (value)), lua_setfield(L, -2, (name)))

__attribute__((visibility("default"))) int luaopen_tally(lua_State *L);
int luaopen_tally(lua_State *L) {
  if ((tally_version() >> 16) != TALLY_VERSION_MAJOR) return luaL_error(L, "libtally major version differs");
  luaL_newmetatable(L, ENGINE_MT);
  lua_newtable(L);
  luaL_setfuncs(L, engine_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, module_functions);
  CONST("EFFECT_REPLY", TALLY_EFFECT_REPLY);
  CONST("EFFECT_ANNOUNCE", TALLY_EFFECT_ANNOUNCE);
  CONST("EFFECT_STATUS", TALLY_EFFECT_STATUS);
  CONST("EFFECT_ROSTER", TALLY_EFFECT_ROSTER);
  CONST("EFFECT_TOPIC", TALLY_EFFECT_TOPIC);
  CONST("EFFECT_MODERATORS", TALLY_EFFECT_MODERATORS);
  CONST("ROLE_HOST", TALLY_ROLE_HOST);
  CONST("ROLE_ADMIN", TALLY_ROLE_ADMIN);
  CONST("ROLE_GRANT", TALLY_ROLE_GRANT);
  CONST("ROLE_MODERATOR", TALLY_ROLE_MODERATOR);
  CONST("COMMAND_NEEDS_ACCOUNT", TALLY_COMMAND_NEEDS_ACCOUNT);
  CONST("COMMAND_PRIVATE_ONLY", TALLY_COMMAND_PRIVATE_ONLY);
  CONST("COMMAND_IN_EVENT", TALLY_COMMAND_IN_EVENT);
  CONST("HINT_LOG_IN", TALLY_HINT_LOG_IN);
  CONST("HINT_SEND_PRIVATELY", TALLY_HINT_SEND_PRIVATELY);
  CONST("HINT_ADMIN_ROLE", TALLY_HINT_ADMIN_ROLE);
  CONST("HINT_HOST_ROLE", TALLY_HINT_HOST_ROLE);
  CONST("HINT_GRANT_PRIVILEGE", TALLY_HINT_GRANT_PRIVILEGE);
  CONST("HINT_ALREADY_SAID", TALLY_HINT_ALREADY_SAID);
  CONST("CAP_INTERCEPT_COMMANDS", TALLY_CAP_INTERCEPT_COMMANDS);
  CONST("CAP_PIN_TOPIC", TALLY_CAP_PIN_TOPIC);
  CONST("CAP_HOLD_FOR_MODERATORS", TALLY_CAP_HOLD_FOR_MODERATORS);
  CONST("ARG_ACCOUNT", TALLY_ARG_ACCOUNT);
  CONST("ARG_TEXT", TALLY_ARG_TEXT);
  CONST("ARG_COMMAND", TALLY_ARG_COMMAND);
  CONST("OK", TALLY_OK);
  CONST("EBUSY", TALLY_EBUSY);
  CONST("EUNAVAILABLE", TALLY_EUNAVAILABLE);
  CONST("EPENDING", TALLY_EPENDING);
  CONST("TEXT_BYTES_MAX", TALLY_TEXT_BYTES_MAX);
  lua_pushinteger(L, (lua_Integer)tally_version());
  lua_setfield(L, -2, "version");
  return 1;
}
