/* test_rooms.c — a room's settings (ROOM, ROOM SET) and room moves (ROOM
 * MOVE) against the real PostgreSQL (issue 13): hosts only, values checked,
 * stored in room_settings and answered once committed, the adapter told
 * with a TALLY_EFFECT_ROOM effect after each change and at start-up for
 * every stored room; a move carries the settings and the running event,
 * also across a restart (room_moves). `tally check` after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define CH "#live"
#define HOST TALLY_ROLE_CHANOP

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

static void test_settings_hosts_values_storage(void **state) {
  (void)state;
  th_fresh_db("roomset", dsn, sizeof dsn);
  th_config(&cfg, dsn);
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "bob", CH, "ROOM", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "reply=room redact=off host_level=0 (the defaults)"));
  assert_int_equal(th_cmd_in(eng, "bob", CH, "ROOM SET reply=thread", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd_in(eng, "host", CH, "ROOM SET reply=fast", HOST, &r), TALLY_EROOM_SETTING);
  assert_non_null(strstr(r.text, "reply=fast"));
  assert_int_equal(th_cmd_in(eng, "host", CH, "ROOM SET host_level=-1", HOST, &r), TALLY_EROOM_SETTING);
  assert_int_equal(th_cmd_in(eng, "host", CH, "ROOM SET color=red", HOST, &r), TALLY_EROOM_SETTING);
  assert_int_equal(th_cmd_in(eng, "host", CH, "ROOM SET", HOST, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd(eng, "host", "ROOM SET reply=dm", HOST, &r), TALLY_ENOT_IN_CHANNEL);
  assert_int_equal(sql("SELECT count(*) FROM room_settings"), 0);

  assert_int_equal(th_cmd_in(eng, "host", CH, "ROOM SET reply=thread redact=on host_level=75", HOST, &r), TALLY_OK);
  assert_string_equal(r.text, "Room settings saved: reply=thread redact=on host_level=75.");
  assert_true(th_announced("=" CH ": reply=thread redact=on host_level=75"));
  assert_int_equal(sql("SELECT count(*) FROM room_settings WHERE room = '%s' AND reply = 1 AND redact"
                       " AND host_level = 75", CH), 1);
  /* A partial change keeps the rest; "dm" and 0 (the network's rule) are values. */
  assert_int_equal(th_cmd_in(eng, "host", CH, "ROOM SET reply=dm host_level=0", HOST, &r), TALLY_OK);
  assert_true(th_announced("=" CH ": reply=dm redact=on host_level=0"));
  assert_int_equal(th_cmd_in(eng, "bob", CH, "ROOM", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "reply=dm redact=on host_level=0."));
  /* Rooms are (network, name): the same name elsewhere is untouched. */
  assert_int_equal(th_cmd_in(eng, "bob", "#other", "ROOM", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "(the defaults)"));
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_move_and_restart(void **state) {
  (void)state;
  th_fresh_db("roommove", dsn, sizeof dsn);
  th_config(&cfg, dsn);
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE host creator", TALLY_ROLE_OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "ROOM SET reply=thread", HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "EVENT START 30 Upgrade night", HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "DROP CREATE mv1 5 1 start=+5m", HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", "#elsewhere", "DROP CREATE mv2 5 1 start=+5m", HOST, &r), TALLY_OK);
  /* A quiz and a goal run in the room: they move with it (room_moved). */
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 120 One? | 1 min-players=1", HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "GOAL START 50 for=30m", HOST, &r), TALLY_OK);
  th_settle(eng, 300);
  assert_int_equal(th_cmd(eng, "bob", "GOAL #new", 0, &r), TALLY_ENO_GOAL);
  assert_int_equal(th_cmd_in(eng, "bob", CH, "ROOM MOVE #new", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd_in(eng, "host", CH, "ROOM MOVE " CH, HOST, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd_in(eng, "host", CH, "ROOM MOVE #new", HOST, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "moved to #new"));
  assert_true(th_announced("=#new: reply=thread redact=off host_level=0"));
  assert_int_equal(sql("SELECT count(*) FROM room_moves WHERE from_room = '%s' AND to_room = '#new'", CH), 1);
  /* The room's drop moved with it (its item row), another room's did not. */
  th_settle(eng, 300);
  assert_int_equal(sql("SELECT count(*) FROM items WHERE sku = 'mv1' AND drop_channel = '#new'"), 1);
  assert_int_equal(sql("SELECT count(*) FROM items WHERE sku = 'mv2' AND drop_channel = '#elsewhere'"), 1);
  /* The running event is in #new now: a second one cannot start there. */
  assert_int_equal(th_cmd_in(eng, "host", "#new", "EVENT START 5 Again", HOST, &r), TALLY_EEXISTS);
  assert_int_equal(th_cmd(eng, "bob", "ANSWER #new 1", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Right!"));
  assert_int_equal(th_cmd(eng, "bob", "GOAL #new", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "of 50.00 credits"));
  assert_int_equal(th_cmd(eng, "bob", "GOAL " CH, 0, &r), TALLY_ENO_GOAL);
  th_engine_free(eng);

  /* A room stored while the engine was down: told at start-up. */
  assert_int_equal(sql("WITH i AS (INSERT INTO room_settings (id, network_id, room, reply, redact, host_level, set_by,"
                       " created_ms, batch_id) VALUES (999999999, (SELECT id FROM networks WHERE name = 'irc'),"
                       " '#stored', 2, true, 40, 0, 0, 0) RETURNING 1) SELECT count(*) FROM i"), 1);
  eng = th_engine(&cfg);
  assert_true(th_announced("=#stored: reply=dm redact=on host_level=40"));
  assert_int_equal(th_cmd_in(eng, "bob", "#new", "ROOM", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "reply=thread redact=off host_level=0."));
  /* After the restart the event still runs in #new (room_moves), not in #live;
   * so do the quiz and the goal. */
  assert_int_equal(th_cmd_in(eng, "host", "#new", "EVENT START 5 Again", HOST, &r), TALLY_EEXISTS);
  assert_int_equal(th_cmd(eng, "bob", "GOAL #new", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", "GOAL " CH, 0, &r), TALLY_ENO_GOAL);
  assert_int_not_equal(th_cmd(eng, "host", "QUIZ STOP " CH, HOST, &r), TALLY_OK); /* nothing runs there now */
  assert_int_equal(th_cmd(eng, "host", "QUIZ STOP #new", HOST, &r), TALLY_OK);
  for (int waited = 0; waited < 5000 && !th_announced("#new: Quiz over: the answer was 1."); waited += 100)
    th_settle(eng, 100);
  assert_true(th_announced("#new: Quiz over: the answer was 1."));
  assert_int_equal(th_cmd_in(eng, "host", "#new", "EVENT STOP", HOST, &r), TALLY_OK);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_settings_hosts_values_storage),
      cmocka_unit_test(test_move_and_restart),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
