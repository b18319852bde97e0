/* test_state.c — the in-memory model without I/O: the idempotency-key store
 * (generations, forgetting), purchases found by id, and the hold / commit /
 * release rules with their money invariants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "decide.h"

static tally_config cfg;
static tally__state st;
static uint32_t fees, ext, alice, bob, tee;

static int setup(void **state) {
  (void)state;
  tally_config_init(&cfg);
  cfg.keys_max = 1024;
  cfg.purchases_max = 1024;
  cfg.fee_bps = 250;
  assert_int_equal(tally__state_init(&st, &cfg), TALLY_OK);
  tally__account_get(&st, "sys:fees", TALLY__ACCOUNT_FEES, &fees);
  tally__account_get(&st, "sys:external", TALLY__ACCOUNT_EXTERNAL, &ext);
  tally__account_get(&st, "user:alice", TALLY__ACCOUNT_USER, &alice);
  tally__account_get(&st, "user:bob", TALLY__ACCOUNT_USER, &bob);
  st.fees = fees;
  st.external = ext;
  tally__item_add(&st, "tee", &tee);
  st.items[tee].creator = alice;
  st.items[tee].price = 1000;
  st.items[tee].stock = 3;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tally__state_free(&st);
  return 0;
}

static void test_keys_window(void **state) {
  (void)state;
  char key[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(tally__key_find(&st, key), TALLY__NONE);
    tally__key_add(&st, key, (uint64_t)i, (uint64_t)i + 1, TALLY__KEY_DONE, 0);
  }
  /* The newest keys_max/2 are always remembered, with their values. */
  for (int i = 5000 - 512; i < 5000; i++) {
    snprintf(key, sizeof key, "k%d", i);
    uint32_t slot = tally__key_find(&st, key);
    assert_int_not_equal(slot, TALLY__NONE);
    assert_int_equal(st.keys[slot].transfer_id, (uint64_t)i + 1);
  }
  /* Anything older than keys_max is forgotten. */
  for (int i = 0; i < 5000 - 1024; i++) {
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(tally__key_find(&st, key), TALLY__NONE);
  }
  uint32_t slot = tally__key_find(&st, "k4999");
  tally__key_forget(&st, slot);
  assert_int_equal(tally__key_find(&st, "k4999"), TALLY__NONE);
}

/* Keys past the inline bytes of a slot live in keys_long: at the boundary,
 * at the longest, long and short keys sharing a prefix, a long key whose
 * slot is reused by a short one, and forgetting, all keep their text. */
static void test_keys_long(void **state) {
  (void)state;
  enum { N = 600 };
  static char keys[N][TALLY__KEY_BYTES_MAX + 1];
  for (int i = 0; i < N; i++) {
    size_t len = (size_t[]){8, TALLY__KEY_INLINE_BYTES, TALLY__KEY_INLINE_BYTES + 1,
                            TALLY__KEY_BYTES_MAX}[i % 4];
    memset(keys[i], 'a' + i % 26, len);
    keys[i][len] = 0;
    int n = snprintf(keys[i], len + 1, "%d/", i); /* distinct, the tail the same */
    if ((size_t)n < len) keys[i][n] = 'x';
    assert_int_equal(tally__key_find(&st, keys[i]), TALLY__NONE);
    uint32_t slot = tally__key_add(&st, keys[i], (uint64_t)i, (uint64_t)i + 1, TALLY__KEY_DONE, 0);
    assert_string_equal(tally__key_text(&st, slot), keys[i]);
    assert_int_equal(st.keys[slot].is_long, strlen(keys[i]) > TALLY__KEY_INLINE_BYTES);
  }
  for (int i = N - 512; i < N; i++) {
    uint32_t slot = tally__key_find(&st, keys[i]);
    assert_int_not_equal(slot, TALLY__NONE);
    assert_int_equal(st.keys[slot].transfer_id, (uint64_t)i + 1);
    assert_string_equal(tally__key_text(&st, slot), keys[i]);
  }
  /* One byte less or more than a long key is another key. */
  char near[TALLY__KEY_BYTES_MAX + 1];
  snprintf(near, sizeof near, "%s", keys[N - 1]);
  near[strlen(near) - 1] = 0;
  assert_int_equal(tally__key_find(&st, near), TALLY__NONE);
  /* The ring wraps: a short key in a slot that held a long one. */
  for (int i = 0; i < 1024; i++) {
    char k[16];
    snprintf(k, sizeof k, "s%d", i);
    tally__key_add(&st, k, 0, 1, TALLY__KEY_DONE, 0);
  }
  uint32_t s = tally__key_find(&st, "s1023");
  assert_int_not_equal(s, TALLY__NONE);
  assert_false(st.keys[s].is_long);
  assert_int_equal(tally__key_find(&st, keys[N - 1]), TALLY__NONE);
  uint32_t slot = tally__key_add(&st, keys[N - 2], 7, 8, TALLY__KEY_DONE, 0);
  assert_int_equal(tally__key_find(&st, keys[N - 2]), slot);
  tally__key_forget(&st, slot);
  assert_int_equal(tally__key_find(&st, keys[N - 2]), TALLY__NONE);
  assert_string_equal(tally__key_text(&st, slot), "");
}

static void test_purchases_found_by_id(void **state) {
  (void)state;
  for (uint64_t id = 10; id < 4000; id += 3) {
    tally__purchase p = {.transfer_id = id, .buyer = bob, .item = tee, .amount = 5, .committed = true};
    tally__purchase_add(&st, &p);
  }
  uint32_t slot = tally__purchase_find(&st, 2998);
  assert_int_not_equal(slot, TALLY__NONE);
  assert_int_equal(st.purchases[slot].transfer_id, 2998);
  assert_int_equal(tally__purchase_find(&st, 2997), TALLY__NONE); /* never added */
  assert_int_equal(tally__purchase_find(&st, 13), TALLY__NONE);   /* forgotten: ring of 1024 */
  tally__purchase_forget(&st, slot);
  assert_int_equal(tally__purchase_find(&st, 2998), TALLY__NONE);
}

static tally__decide_ctx ctx(const char *key) {
  return (tally__decide_ctx){.wall_ms = 86400000, .mono_ms = 1, .origin = "o", .channel = "", .key = key};
}

static void test_hold_commit_release(void **state) {
  (void)state;
  tally__op grant, a, b, c;
  tally__decide_ctx g = ctx("g");
  assert_int_equal(tally__decide_grant(&st, &g, bob, 2500, &grant), TALLY_OK);
  /* Credits count only once committed. */
  tally__decide_ctx k1 = ctx("b1");
  assert_int_equal(tally__decide_buy(&st, &k1, bob, tee, 1, &a), TALLY_ENO_FUNDS);
  tally__op_commit(&st, &grant);
  assert_int_equal(tally__decide_buy(&st, &k1, bob, tee, 1, &a), TALLY_OK);
  tally__decide_ctx k2 = ctx("b2");
  assert_int_equal(tally__decide_buy(&st, &k2, bob, tee, 1, &b), TALLY_OK);
  /* 2 units held, 500 available: the third is refused for funds. */
  tally__decide_ctx k3 = ctx("b3");
  assert_int_equal(tally__decide_buy(&st, &k3, bob, tee, 1, &c), TALLY_ENO_FUNDS);
  assert_int_equal(st.accounts[bob].held, 2000);
  assert_int_equal(st.items[tee].held, 2);
  /* Same key, same parameters: the first answer; other parameters: refused. */
  uint64_t existing = 99;
  tally__decide_ctx again = ctx("b1");
  again.existing_transfer = &existing;
  assert_int_equal(tally__decide_buy(&st, &again, bob, tee, 1, &c), TALLY_EEXISTS);
  assert_int_equal(existing, 0); /* still in flight */
  assert_int_equal(tally__decide_buy(&st, &again, bob, tee, 2, &c), TALLY_EKEY_MISMATCH);
  tally__op_commit(&st, &a);
  tally__op_release(&st, &b);
  assert_int_equal(st.accounts[bob].held, 0);
  assert_int_equal(st.accounts[bob].balance, 1500);
  assert_int_equal(st.accounts[alice].balance, 975); /* 1000 - 2.5% fee */
  assert_int_equal(st.accounts[fees].balance, 25);
  assert_int_equal(st.accounts[ext].balance, -2500);
  assert_int_equal(st.items[tee].sold, 1);
  assert_int_equal(st.items[tee].held, 0);
  /* A refund in two parts returns the fee exactly. */
  tally__op r1, r2;
  tally__decide_ctx rk1 = ctx("r1"), rk2 = ctx("r2");
  assert_int_equal(tally__decide_refund(&st, &rk1, bob, a.transfer_id, 333, &r1), TALLY_OK);
  tally__op_commit(&st, &r1);
  assert_int_equal(tally__decide_refund(&st, &rk2, bob, a.transfer_id, 0, &r2), TALLY_OK);
  tally__op_commit(&st, &r2);
  assert_int_equal(st.accounts[fees].balance, 0);
  assert_int_equal(st.accounts[alice].balance, 0);
  assert_int_equal(st.accounts[bob].balance, 2500);
  tally__decide_ctx rk3 = ctx("r3");
  assert_int_equal(tally__decide_refund(&st, &rk3, bob, a.transfer_id, 0, &r2), TALLY_EREFUND_EXCEEDS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_keys_window, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keys_long, setup, teardown),
      cmocka_unit_test_setup_teardown(test_purchases_found_by_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hold_commit_release, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
