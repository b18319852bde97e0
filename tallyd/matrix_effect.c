/* matrix_effect.c — engine effects as Matrix messages.
 *
 * A reply goes to the room and event its origin names ("<room> <event id>
 * <sender>[ <thread root>]", matrix_txn.c): in the room, as a threaded
 * reply, or in the asker's DM (ROOM SET reply=, matrix_rooms.c). Its
 * outgoing txnId derives from the event id and the answer (SHA-256 of the
 * receipt id when there is one, else of the code and text): a replayed
 * command's answer, posted again, carries the same txnId and the
 * homeserver keeps one. Text is rendered twice, plain `body` and HTML
 * `formatted_body`: commands the engine names as typed here ("!confirm
 * k3x", <code> in HTML), people by display name, never by MXID (bridged
 * MXIDs carry phone numbers). Held tip messages go to each moderator's DM
 * (matrix_outbox.c), highlights are pinned (matrix_rooms.c), announcements
 * are posted in the room; matrix_send.c posts everything. */
#include "matrix.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <string.h>

enum { HTML_BYTES_MAX = 6 * (TALLY_TEXT_BYTES_MAX + 512) + 512 }; /* escaped text, <code> tags */

static void hex40(const uint8_t *h, char *out) {
  static const char x[] = "0123456789abcdef";
  for (int i = 0; i < 20; i++) {
    out[2 * i] = x[h[i] >> 4];
    out[2 * i + 1] = x[h[i] & 15];
  }
  out[40] = 0;
}

/* txnId of an answer to event_id: the same answer to the same event is the
 * same txnId, in this process and the next. */
void td_mx_derived_txn(const char *event_id, const char *salt, const char *text, char out[48]) {
  char in[TD_MX_ID_BYTES_MAX + 64 + 4 * TALLY_TEXT_BYTES_MAX];
  int n = snprintf(in, sizeof in, "%s%c%s%c%s", event_id, 0, salt, 0, text);
  uint8_t h[32];
  SHA256((const uint8_t *)in, n > 0 && (size_t)n < sizeof in ? (size_t)n : sizeof in - 1, h);
  memcpy(out, "tly", 3);
  hex40(h, out + 3);
}

static void html_escape(const char *in, char *out, size_t cap) {
  size_t o = 0;
  for (; *in && o + 7 < cap; in++) {
    const char *rep = *in == '<' ? "&lt;" : *in == '>' ? "&gt;" : *in == '&' ? "&amp;" : *in == '"' ? "&quot;" : NULL;
    if (rep) {
      memcpy(out + o, rep, strlen(rep));
      o += strlen(rep);
    } else {
      out[o++] = *in;
    }
  }
  out[o] = 0;
}

/* Posts text in room as a reply to event_id; the txnId derives from
 * (event_id, salt, key_text). */
void td_mx_reply_keyed(td_mx *m, const char *room, const char *event_id, const char *salt, const char *key_text,
                       const char *text, const char *html) {
  char txn[48], escaped[HTML_BYTES_MAX];
  td_mx_derived_txn(event_id, salt, key_text, txn);
  if (!html) {
    html_escape(text, escaped, sizeof escaped);
    html = escaped;
  }
  td_mx_send(m, room, txn, text, html, event_id);
}

/* Appends src[0..n) to out (cap), HTML-escaped when html. */
static void put(char *out, size_t cap, size_t *at, const char *src, size_t n, int html) {
  char piece[HTML_BYTES_MAX];
  char raw[TALLY_TEXT_BYTES_MAX + 512];
  if (n >= sizeof raw) n = sizeof raw - 1;
  memcpy(raw, src, n);
  raw[n] = 0;
  if (html) html_escape(raw, piece, sizeof piece);
  const char *p = html ? piece : raw;
  size_t len = strlen(p);
  if (*at + len >= cap) len = cap - *at - 1;
  memcpy(out + *at, p, len);
  *at += len;
  out[*at] = 0;
}

/* The effect's text as Matrix users read it: each command the engine names
 * (TALLY_ARG_COMMAND, "CONFIRM k3x") as it is typed here ("!confirm k3x";
 * <code> in HTML), then the hint's phrase. Text only, an older effect, or
 * arguments that do not parse: the text as it is. */
static void render(td_mx *m, const char *room, const tally_effect *e, const char *hint, char *plain, size_t pcap,
                   char *html, size_t hcap) {
  const char *text = e->text ? e->text : "";
  size_t pa = 0, ha = 0, at = 0, n = 0;
  plain[0] = html[0] = 0;
  tally_effect_arg args[TALLY_EFFECT_ARGS_MAX];
  int spans = TALLY_HAS_FIELD(e, tally_effect, args) && e->version >= 3 && e->msg && e->args && e->args[0] &&
              tally_effect_args_parse(text, e->args, args, TALLY_EFFECT_ARGS_MAX, &n) == TALLY_OK;
  for (size_t i = 0; spans && i < n; i++) {
    if ((args[i].kind != TALLY_ARG_COMMAND && args[i].kind != TALLY_ARG_ACCOUNT) || args[i].start < at) continue;
    put(plain, pcap, &pa, text + at, args[i].start - at, 0);
    put(html, hcap, &ha, text + at, args[i].start - at, 1);
    if (args[i].kind == TALLY_ARG_ACCOUNT) {
      /* A Matrix account is named by display name, never by MXID (as
       * xmpp.c names occupants by nick); other networks' names as they are. */
      const char *a = text + args[i].start;
      size_t len = args[i].len;
      if (len > 7 && !strncmp(a, "matrix:", 7)) a += 7, len -= 7;
      char name[TD_MX_NAME_BYTES_MAX + 1];
      if (len && a[0] == '@') td_mx_rs_name(m, room, a, len, name, sizeof name);
      else snprintf(name, sizeof name, "%.*s", (int)len, a);
      put(plain, pcap, &pa, name, strlen(name), 0);
      put(html, hcap, &ha, name, strlen(name), 1);
      at = args[i].start + args[i].len;
      continue;
    }
    char cmd[TALLY_TEXT_BYTES_MAX + 2] = "!";
    size_t len = args[i].len < TALLY_TEXT_BYTES_MAX ? args[i].len : TALLY_TEXT_BYTES_MAX;
    memcpy(cmd + 1, text + args[i].start, len);
    cmd[len + 1] = 0;
    for (char *c = cmd + 1; *c && *c != ' '; c++) *c = (char)tolower((unsigned char)*c);
    put(plain, pcap, &pa, cmd, strlen(cmd), 0);
    put(html, hcap, &ha, "<code>", 6, 0);
    put(html, hcap, &ha, cmd, strlen(cmd), 1);
    put(html, hcap, &ha, "</code>", 7, 0);
    at = args[i].start + args[i].len;
  }
  put(plain, pcap, &pa, text + at, strlen(text + at), 0);
  put(html, hcap, &ha, text + at, strlen(text + at), 1);
  put(plain, pcap, &pa, hint, strlen(hint), 0);
  put(html, hcap, &ha, hint, strlen(hint), 1);
}

/* Matrix's words for what a refusal's hint asks to explain (enum tally_hint). */
static const char *hint_phrase(td_mx *m, const tally_effect *e, const char *sender, char *buf, size_t cap) {
  if (!TALLY_HAS_FIELD(e, tally_effect, hint)) return "";
  switch (e->hint) {
  case TALLY_HINT_SEND_PRIVATELY: {
    /* The DM is named: the one the bot has with the sender, or the one it
     * makes now (createRoom; the sender gets an invite). */
    const char *dm = sender ? td_mx_dm_of(m, sender) : NULL;
    if (dm) snprintf(buf, cap, " (send it in your direct message with %s, room %s: this room is public)", m->bot_id, dm);
    else if (sender && (td_mx_dm_open(m, sender), json_object_get(m->dm_making, sender)))
      snprintf(buf, cap, " (send it in a direct message with %s: it has invited you to one; this room is public)",
               m->bot_id);
    else snprintf(buf, cap, " (send it to %s in a direct message: this room is public)", m->bot_id);
    return buf;
  }
  case TALLY_HINT_ADMIN_ROLE: return "; tally's admins on Matrix are set by tallyd's matrix_admins";
  case TALLY_HINT_HOST_ROLE:
    return " (on Matrix: members whose power level is at least the room's state_default, or the host_level a "
           "host set with !room set)";
  case TALLY_HINT_GRANT_PRIVILEGE: return " (the grant privilege is given with `tally grant`)";
  case TALLY_HINT_ALREADY_SAID: return " (an AS cannot take a message back; a moderator can redact it)";
  default: return "";
  }
}

/* A line for a room (not a DM) names people by display name, never by
 * MXID (bridged MXIDs carry phone numbers; the engine's text-only answers
 * name the account: "Wallet @bob:server: ..."): each user id in s (cap),
 * "@localpart:server" with the server's characters of a hostname and port,
 * becomes td_mx_rs_name's; the bot's own id stays (it is no person's).
 * escape: s is HTML (the name is escaped). */
static int server_char(char c) { return isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']'; }

static void names_for_room(td_mx *m, const char *room, char *s, size_t cap, int escape) {
  for (char *p = strchr(s, '@'); p; p = strchr(p, '@')) {
    char *q = p + 1;
    while (*q && !isspace((unsigned char)*q) && *q != ':' && *q != '@' && *q != '<' && *q != '&') q++;
    char *colon = q;
    if (*colon != ':' || colon == p + 1) {
      p = q;
      continue;
    }
    q = colon + 1;
    while (server_char(*q)) q++;
    while (q > colon + 1 && (q[-1] == ':' || q[-1] == '.')) q--; /* "Wallet @bob:server: ..." */
    size_t idl = (size_t)(q - p);
    if (q == colon + 1 || idl > TD_MX_ID_BYTES_MAX || (strlen(m->bot_id) == idl && !strncmp(p, m->bot_id, idl))) {
      p = q;
      continue;
    }
    char name[TD_MX_NAME_BYTES_MAX + 1], hname[6 * TD_MX_NAME_BYTES_MAX + 1];
    td_mx_rs_name(m, room, p, idl, name, sizeof name);
    const char *put_name = name;
    if (escape) {
      html_escape(name, hname, sizeof hname);
      put_name = hname;
    }
    size_t nl = strlen(put_name), tail = strlen(q);
    if ((size_t)(p - s) + nl + tail + 1 > cap) return;
    memmove(p + nl, q, tail + 1);
    memcpy(p, put_name, nl);
    p += nl;
  }
}

int td_mx_owns(const td_daemon *d, const char *network) {
  return d->mx && d->cfg.matrix_listen[0] && network && !strcmp(network, d->cfg.matrix_network);
}

/* MODERATORS (a held tip message): each moderator of the room (power
 * level >= its redact level) gets the line in their DM; never the room. */
typedef struct mod_line {
  const char *room, *key, *plain, *html;
  uint32_t told;
} mod_line;

static void tell_moderator(td_mx *m, const char *mxid, void *ud) {
  mod_line *l = ud;
  char txn[48];
  td_mx_derived_txn(mxid, "moderators", l->key, txn); /* once per moderator and line, in any process */
  td_mx_send_private(m, mxid, txn, l->plain, l->html);
  l->told++;
}

static void moderators_effect(td_mx *m, const tally_effect *e, char *plain, size_t pcap, char *html, size_t hcap) {
  const char *room = e->channel ? e->channel : "";
  td_mx_rs *rs = room[0] ? td_mx_rs_get(m, room, 0) : NULL;
  render(m, room, e, "", plain, pcap, html, hcap);
  names_for_room(m, room, plain, pcap, 0);
  names_for_room(m, room, html, hcap, 1);
  /* Where it is from, and where HIDE is said: the room's id (names of
   * rooms are not kept). */
  size_t pl = strlen(plain), hl = strlen(html);
  char esc[6 * TD_MX_ID_BYTES_MAX + 1];
  html_escape(room, esc, sizeof esc);
  snprintf(plain + pl, pcap - pl, " (in room %s: say !hide there)", room);
  snprintf(html + hl, hcap - hl, " (in room %s: say <code>!hide</code> there)", esc);
  char key[TALLY_TEXT_BYTES_MAX + 64];
  snprintf(key, sizeof key, "%s %llu %s", room, (unsigned long long)e->receipt_id, e->text ? e->text : "");
  mod_line l = {room, key, plain, html, 0};
  td_mx_rs_each_moderator(m, rs, tell_moderator, &l);
  if (!l.told)
    td_log(TD_WARN, "matrix: a line for the moderators of %s dropped: none known (never said in the room)", room);
}

void td_mx_effect(td_daemon *d, const tally_effect *e) {
  td_mx *m = d->mx;
  char hb[2 * TD_MX_ID_BYTES_MAX + 160];
  char text[TALLY_TEXT_BYTES_MAX + 512], plain[TALLY_TEXT_BYTES_MAX + 512], html[HTML_BYTES_MAX];
  if (e->kind == TALLY_EFFECT_REPLY) {
    char room[TD_MX_ID_BYTES_MAX + 1] = "", event[TD_MX_ID_BYTES_MAX + 1] = "", sender[TD_MX_ID_BYTES_MAX + 1] = "";
    const char *o = e->origin ? e->origin : "";
    size_t a = strcspn(o, " ");
    const char *ev = o[a] ? o + a + 1 : "";
    size_t b = strcspn(ev, " ");
    const char *snd = ev[b] ? ev + b + 1 : "";
    size_t c = strcspn(snd, " ");
    const char *root = snd[c] ? snd + c + 1 : ""; /* the thread the command was said in */
    if (!a || a > TD_MX_ID_BYTES_MAX || !b || b > TD_MX_ID_BYTES_MAX || c > TD_MX_ID_BYTES_MAX ||
        strlen(root) > TD_MX_ID_BYTES_MAX) {
      td_log(TD_WARN, "matrix: reply to an origin that is not ours (\"%.80s\"); dropped", o);
      return;
    }
    memcpy(room, o, a);
    memcpy(event, ev, b);
    memcpy(sender, snd, c);
    const char *hint = hint_phrase(m, e, sender[0] ? sender : NULL, hb, sizeof hb);
    /* The txnId derives from the engine's text and the hint without the DM's
     * room id: the same answer after a restart is the same txnId. */
    snprintf(text, sizeof text, "%s%s", e->text ? e->text : "",
             e->hint == TALLY_HINT_SEND_PRIVATELY && TALLY_HAS_FIELD(e, tally_effect, hint) ? " (dm)" : hint);
    render(m, room, e, hint, plain, sizeof plain, html, sizeof html);
    /* A receipt's answer is keyed by its receipt alone: the engine's answer
     * to the same event submitted again ("Already done: receipt N", after a
     * restart) gets the first answer's txnId, so the homeserver keeps one. */
    char salt[48], txn[48];
    if (e->receipt_id) snprintf(salt, sizeof salt, "receipt %llu", (unsigned long long)e->receipt_id);
    else snprintf(salt, sizeof salt, "r%d", e->code);
    td_mx_derived_txn(event, salt, e->receipt_id ? "" : text, txn);
    td_mx_rs *rs = td_mx_rs_get(m, room, 0);
    int in_dm = td_mx_rs_is_dm(m, rs), mode = in_dm ? TD_MX_REPLY_ROOM : td_mx_rs_reply(rs);
    if (mode == TD_MX_REPLY_DM && sender[0]) {
      /* ROOM SET reply=dm: the asker reads it in their DM, as the engine
       * wrote it (the reader owns the account). */
      td_mx_send_private(m, sender, txn, plain, html);
      return;
    }
    if (!in_dm) {
      names_for_room(m, room, plain, sizeof plain, 0);
      names_for_room(m, room, html, sizeof html, 1);
    }
    if (mode == TD_MX_REPLY_THREAD) td_mx_send_thread(m, room, txn, plain, html, event, root[0] ? root : event);
    else td_mx_send(m, room, txn, plain, html, event);
    return;
  }
  if (e->kind == TALLY_EFFECT_ROOM) { /* ROOM SET: this room's settings */
    if (e->channel && e->channel[0]) td_mx_rs_settings(m, e->channel, e->text ? e->text : "");
    return;
  }
  if (e->kind == TALLY_EFFECT_MODERATORS) {
    moderators_effect(m, e, plain, sizeof plain, html, sizeof html);
    return;
  }
  const char *hint = hint_phrase(m, e, NULL, hb, sizeof hb);
  render(m, e->channel, e, hint, plain, sizeof plain, html, sizeof html);
  if (e->kind == TALLY_EFFECT_TOPIC && e->channel && e->channel[0]) {
    /* A paid highlight shown as a topic (highlight_topic=1; TD_MX_CAPS has
     * TALLY_CAP_PIN_TOPIC): Matrix pins it instead of replacing the room's
     * topic. The line is posted, then its event id is added to the room's
     * m.room.pinned_events (matrix_rooms.c) when the bot's power level
     * allows that state event; else it is posted plainly and the log says
     * why. TOPIC "": our pin comes out, the room's own pins stay. */
    if (!e->text || !e->text[0]) {
      td_mx_rs_unpin(m, e->channel);
      return;
    }
    names_for_room(m, e->channel, plain, sizeof plain, 0);
    names_for_room(m, e->channel, html, sizeof html, 1);
    char txn[48], why[256];
    snprintf(txn, sizeof txn, "tlp%s.%llu", m->boot, (unsigned long long)++m->anon_seq);
    int pin = td_mx_rs_pin_begin(m, e->channel, why, sizeof why);
    if (!pin) td_log(TD_INFO, "matrix: a highlight in %s posted plainly, not pinned: %s", e->channel, why);
    td_mx_send_done(m, e->channel, txn, plain, html, NULL, pin ? td_mx_rs_pin_posted : NULL);
    return;
  }
  if (e->kind == TALLY_EFFECT_ANNOUNCE && e->channel && e->channel[0]) {
    names_for_room(m, e->channel, plain, sizeof plain, 0);
    names_for_room(m, e->channel, html, sizeof html, 1);
    /* No event to derive from: a per-process id (see the plan: the outbox). */
    char txn[48];
    snprintf(txn, sizeof txn, "tla%s.%llu", m->boot, (unsigned long long)++m->anon_seq);
    td_mx_send(m, e->channel, txn, plain, html, NULL);
    return;
  }
  if (e->kind == TALLY_EFFECT_ROSTER) {
    /* An event starts in a room: who is there now (membership events and
     * joined_members were reported to tallyd's presence merge). */
    td_presence_replay(d->presence, d->cfg.matrix_network, e->channel ? e->channel : "", td_presence_submit, d);
    return;
  }
  td_log(TD_DEBUG, "matrix: effect kind %u for %s not rendered on Matrix yet", e->kind, e->channel ? e->channel : "");
}
