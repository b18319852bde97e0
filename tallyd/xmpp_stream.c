/* xmpp_stream.c — the component's XML stream, read with expat: the
 * server's stream header and the handshake answer (XEP-0114:
 * hex(SHA-1(stream id + secret))), one small tree per stanza in a fixed
 * arena, and the bounds that keep a hostile or broken server from making
 * tallyd grow (TD_XMPP_STANZA_BYTES_*, TD_XMPP_DEPTH_*,
 * TD_XMPP_BUFFERED_BYTES_MAX, no DTD). A stanza passed the soft bounds is
 * skipped and answered with an error; past the hard ones the link closes.
 * Complete stanzas go to td_xmpp__on_stanza (xmpp_stanza.c). */
#include "xmpp.h"

#include <assert.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static void *arena_alloc(td_xmpp *x, size_t n) {
  assert(x->arena_used <= TD_XMPP_ARENA_BYTES);
  size_t at = (x->arena_used + 7) & ~(size_t)7;
  if (at + n > TD_XMPP_ARENA_BYTES) return NULL;
  x->arena_used = at + n;
  return x->arena + at;
}

static char *arena_str(td_xmpp *x, const char *s, size_t n) {
  char *p = arena_alloc(x, n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

const char *td_xmpp__attr(const xnode *n, const char *name) {
  for (const char **a = n ? n->attrs : NULL; a && *a; a += 2)
    if (!strcmp(a[0], name)) return a[1];
  return NULL;
}

const xnode *td_xmpp__child(const xnode *n, const char *ns, const char *name) {
  for (const xnode *c = n ? n->child : NULL; c; c = c->next)
    if (!strcmp(c->name, name) && (!ns || !strcmp(c->ns, ns))) return c;
  return NULL;
}

/* ---- expat handlers ------------------------------------------------------------------ */
static void mark_event(td_xmpp *x) {
  x->event_end = (uint64_t)XML_GetCurrentByteIndex(x->parser) + (uint64_t)XML_GetCurrentByteCount(x->parser);
}

static void fatal(td_xmpp *x, const char *why) {
  XML_StopParser(x->parser, XML_FALSE);
  td_xmpp__link_close(x, why);
}

/* Skips the rest of the stanza, remembering enough to answer its sender. */
static void refuse(td_xmpp *x, const char *why) {
  if (x->refused) return;
  x->refused = why;
  x->root = x->cur = NULL;
}

static void split_name(const char *full, const char **ns, size_t *ns_len, const char **local) {
  const char *sp = strchr(full, ' ');
  if (sp) {
    *ns = full;
    *ns_len = (size_t)(sp - full);
    *local = sp + 1;
  } else {
    *ns = "";
    *ns_len = 0;
    *local = full;
  }
}

static void on_start_stream(td_xmpp *x, const char *name, const char **atts) {
  const char *ns, *local;
  size_t ns_len;
  split_name(name, &ns, &ns_len, &local);
  if (ns_len != strlen(TD_XMPP_NS_STREAM) || memcmp(ns, TD_XMPP_NS_STREAM, ns_len) || strcmp(local, "stream")) {
    fatal(x, "the server did not open an XMPP stream");
    return;
  }
  const char *id = NULL;
  for (const char **a = atts; *a; a += 2)
    if (!strcmp(a[0], "id")) id = a[1];
  if (!id || !id[0] || strlen(id) > 1024) {
    fatal(x, "the server's stream has no usable id");
    return;
  }
  /* XEP-0114: hex(SHA-1(stream id + secret)). */
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!md || !EVP_DigestInit_ex(md, EVP_sha1(), NULL) || !EVP_DigestUpdate(md, id, strlen(id)) ||
      !EVP_DigestUpdate(md, x->d->cfg.xmpp_secret.bytes, x->d->cfg.xmpp_secret.len) ||
      !EVP_DigestFinal_ex(md, digest, &len)) {
    EVP_MD_CTX_free(md);
    fatal(x, "SHA-1 failed");
    return;
  }
  EVP_MD_CTX_free(md);
  char hs[64 + 2 * EVP_MAX_MD_SIZE];
  int n = snprintf(hs, sizeof hs, "<handshake>");
  for (unsigned i = 0; i < len; i++) n += snprintf(hs + n, sizeof hs - (size_t)n, "%02x", digest[i]);
  n += snprintf(hs + n, sizeof hs - (size_t)n, "</handshake>");
  x->state = LINK_HANDSHAKE;
  td_xmpp__say(x, hs, (size_t)n, 1);
}

static void XMLCALL on_start(void *ud, const char *name, const char **atts) {
  td_xmpp *x = ud;
  mark_event(x);
  x->depth++;
  if (x->depth == 1) {
    on_start_stream(x, name, atts);
    return;
  }
  if (x->depth == 2) {
    x->arena_used = 0;
    x->root = x->cur = NULL;
    x->refused = NULL;
    x->stanza_start = (uint64_t)XML_GetCurrentByteIndex(x->parser);
    /* Who to answer if it is refused later: taken now, while it is small. */
    const char *ns, *local;
    size_t ns_len;
    split_name(name, &ns, &ns_len, &local);
    snprintf(x->refused_kind, sizeof x->refused_kind, "%s", local);
    x->refused_from[0] = x->refused_id[0] = x->refused_type[0] = 0;
    for (const char **a = atts; *a; a += 2) {
      if (!strcmp(a[0], "from") && strlen(a[1]) < sizeof x->refused_from) strcpy(x->refused_from, a[1]);
      if (!strcmp(a[0], "id") && strlen(a[1]) < sizeof x->refused_id) strcpy(x->refused_id, a[1]);
      if (!strcmp(a[0], "type") && strlen(a[1]) < sizeof x->refused_type) strcpy(x->refused_type, a[1]);
    }
  }
  if (x->depth > TD_XMPP_DEPTH_HARD) {
    fatal(x, "elements nested deeper than TD_XMPP_DEPTH_HARD");
    return;
  }
  if (x->refused) return;
  if (x->depth - 1 > TD_XMPP_DEPTH_MAX) {
    refuse(x, "elements nested too deep");
    return;
  }
  xnode *n = arena_alloc(x, sizeof *n);
  size_t count = 0;
  while (atts[count]) count += 2;
  const char **av = n ? arena_alloc(x, (count + 1) * sizeof *av) : NULL;
  const char *ns, *local;
  size_t ns_len;
  split_name(name, &ns, &ns_len, &local);
  if (!av || !(n->ns = arena_str(x, ns, ns_len)) || !(n->name = arena_str(x, local, strlen(local)))) {
    refuse(x, "stanza too big");
    return;
  }
  for (size_t i = 0; i < count; i++) {
    const char *ans, *alocal;
    size_t ans_len;
    split_name(atts[i], &ans, &ans_len, &alocal);
    if (!(av[i] = arena_str(x, (i % 2) ? atts[i] : alocal, strlen((i % 2) ? atts[i] : alocal)))) {
      refuse(x, "stanza too big");
      return;
    }
  }
  av[count] = NULL;
  n->attrs = av;
  n->text = NULL;
  n->text_len = 0;
  n->child = n->last = n->next = NULL;
  n->parent = x->cur;
  if (x->cur) {
    if (x->cur->last) x->cur->last->next = n;
    else x->cur->child = n;
    x->cur->last = n;
  } else x->root = n;
  x->cur = n;
}

static void check_size(td_xmpp *x) {
  if (x->depth < 2) return;
  uint64_t size = x->event_end - x->stanza_start;
  if (size > TD_XMPP_STANZA_BYTES_HARD) fatal(x, "a stanza over TD_XMPP_STANZA_BYTES_HARD bytes");
  else if (size > TD_XMPP_STANZA_BYTES_MAX) refuse(x, "stanza too big");
}

static void XMLCALL on_text(void *ud, const char *s, int len) {
  td_xmpp *x = ud;
  mark_event(x);
  check_size(x);
  if (x->depth < 2 || x->refused || !x->cur || len <= 0) return;
  xnode *n = x->cur;
  size_t add = (size_t)len;
  if (n->text && (uint8_t *)n->text + n->text_len + 1 == x->arena + x->arena_used &&
      x->arena_used + add <= TD_XMPP_ARENA_BYTES) { /* the newest allocation: grow in place */
    memcpy(n->text + n->text_len, s, add);
    n->text_len += add;
    n->text[n->text_len] = 0;
    x->arena_used += add;
    return;
  }
  char *t = arena_alloc(x, n->text_len + add + 1);
  if (!t) {
    refuse(x, "stanza too big");
    return;
  }
  if (n->text) memcpy(t, n->text, n->text_len);
  memcpy(t + n->text_len, s, add);
  n->text_len += add;
  t[n->text_len] = 0;
  n->text = t;
}

static void XMLCALL on_end(void *ud, const char *name) {
  (void)name;
  td_xmpp *x = ud;
  mark_event(x);
  check_size(x);
  if (x->state == LINK_IDLE) return;
  if (x->depth == 1) {
    x->depth = 0;
    td_xmpp__link_close(x, "the server closed the stream");
    return;
  }
  if (x->cur && !x->refused) x->cur = x->cur->parent;
  assert(x->depth >= 2);
  if (--x->depth != 1) return;
  assert(x->refused || !x->cur); /* back at the stanza's end: its tree is closed */
  if (x->refused) {
    td_log(TD_WARN, "xmpp: refused a %s from %s (id \"%s\"): %s (at most %d bytes, %d levels deep)",
           x->refused_kind, x->refused_from[0] ? x->refused_from : "?", x->refused_id, x->refused,
           TD_XMPP_STANZA_BYTES_MAX, TD_XMPP_DEPTH_MAX);
    if (strcmp(x->refused_type, "error") && strcmp(x->refused_type, "result") &&
        (!strcmp(x->refused_kind, "message") || !strcmp(x->refused_kind, "iq"))) {
      char text[160];
      snprintf(text, sizeof text, "tally refused this %s: %s (at most %d bytes, %d levels deep); nothing was done",
               x->refused_kind, x->refused, TD_XMPP_STANZA_BYTES_MAX, TD_XMPP_DEPTH_MAX);
      td_xmpp__send_error(x, x->refused_kind, x->refused_from, x->refused_id, "modify", "policy-violation", text);
    }
  } else if (x->root) td_xmpp__on_stanza(x, x->root);
  x->root = x->cur = NULL;
  x->refused = NULL;
}

static void XMLCALL on_doctype(void *ud, const char *name, const char *sysid, const char *pubid, int internal) {
  (void)name;
  (void)sysid;
  (void)pubid;
  (void)internal;
  fatal(ud, "a DTD in the stream (XMPP forbids them)");
}

/* ---- the parser's life ------------------------------------------------------------ */
int td_xmpp__stream_open(td_xmpp *x) {
  if (x->parser) XML_ParserFree(x->parser);
  x->parser = XML_ParserCreateNS("UTF-8", ' ');
  if (!x->parser) return -1;
  XML_SetUserData(x->parser, x);
  XML_SetElementHandler(x->parser, on_start, on_end);
  XML_SetCharacterDataHandler(x->parser, on_text);
  XML_SetStartDoctypeDeclHandler(x->parser, on_doctype);
  x->fed = x->event_end = 0;
  x->depth = 0;
  return 0;
}

/* Small pieces, so the buffered-bytes bound is checked often (a server
 * sending one endless tag is caught within TD_XMPP_FEED_BYTES of it). */
void td_xmpp__stream_feed(td_xmpp *x, const char *bytes, size_t len) {
  assert(x->parser && bytes);
  for (size_t at = 0; at < len && x->state != LINK_IDLE;) {
    int n = len - at > TD_XMPP_FEED_BYTES ? TD_XMPP_FEED_BYTES : (int)(len - at);
    enum XML_Status st = XML_Parse(x->parser, bytes + at, n, XML_FALSE);
    at += (size_t)n;
    if (x->state == LINK_IDLE) return; /* a handler closed the link */
    x->fed += (uint64_t)n;
    if (st == XML_STATUS_ERROR) {
      char why[200];
      snprintf(why, sizeof why, "XML error at byte %llu: %s", (unsigned long long)XML_GetCurrentByteIndex(x->parser),
               XML_ErrorString(XML_GetErrorCode(x->parser)));
      static const char err[] = "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                                "</stream:error>";
      td_xmpp__say(x, err, sizeof err - 1, 1);
      td_xmpp__link_close(x, why);
      return;
    }
    if (x->fed - x->event_end > TD_XMPP_BUFFERED_BYTES_MAX) {
      static const char err[] = "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                                "</stream:error>";
      td_xmpp__say(x, err, sizeof err - 1, 1);
      td_xmpp__link_close(x, "more than TD_XMPP_BUFFERED_BYTES_MAX bytes without a complete tag");
      return;
    }
  }
}
