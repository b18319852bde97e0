/* tally_frames_v1.h — the wire frames between hosts and the engine, v1.
 *
 * This file is the one definition of the frames: core/src/wire/codec.c
 * generates its encoder and decoder from these tables, core/include/tally/
 * frames.h spells out the same structs for hosts (codec.c fails to compile
 * when the two differ), and tools/schema_doc.c generates docs/FRAMES.md from
 * them. A frame is one msgpack array:
 *
 *     [schema_version, frame_type, field_1, field_2, ...]
 *
 * Rules for changing it: a new field may only be appended (decoders of v1
 * accept longer arrays from v1.x and ignore the tail); changing or removing a
 * field means a new schema version file and a new frame_type range. A
 * string's max_bytes may be raised within v1 (1.6 raised the names from 64
 * to the TALLY_*_BYTES_MAX of tally.h, and TALLY_FRAME_BYTES_MAX to match):
 * every frame a v1.0 sender writes still decodes, and a v1.0 receiver that
 * is sent a longer name refuses that one frame as TALLY_EFRAME, as it
 * refuses any string over its limit. Lowering one is a new version.
 *
 * X(kind, name, max_bytes, doc): kind is U64 (unsigned integer), I64 (signed
 * integer) or STR (UTF-8 string of at most max_bytes bytes). Fields documented
 * "0 or 1" are refused as TALLY_EFRAME when larger.
 *
 * Over a socket (tallyd), each frame is sent as a 4-byte big-endian length
 * and then that many bytes of msgpack, the length at least 1 and at most
 * TALLY_FRAME_BYTES_MAX. A zero or larger length, or a frame that does not
 * decode, is a protocol error: the receiver closes the connection (it cannot
 * find the next frame's start). A frame cut by a closed connection is
 * discarded, never applied in part.
 *
 * A connection starts with a handshake, before any other frame:
 *
 *     engine -> host   HELLO_SERVER  wire range, server id, challenge
 *     host -> engine   HELLO         wire range, network, adapter, instance,
 *                                    shard, capabilities, answer
 *     engine -> host   HELLO_SERVER  chosen version and code: 0 = welcome,
 *                                    TALLY_EVERSION or TALLY_EBADSIG = closed
 *
 * The answer is the lowercase hex of HMAC-SHA256(network secret, the 32
 * challenge bytes); the challenge is fresh random bytes for each connection.
 * The chosen version is the highest that both ranges contain
 * (tally_hello_negotiate()). After the welcome, every EFFECT carries the
 * connection's next sequence number (1, 2, ...; 0 in process) and the host
 * sends ACK frames with the highest sequence number it has delivered, so a
 * reconnecting host (same network and instance) is sent only what it has not
 * acknowledged. */
#ifndef TALLY_FRAMES_V1_H
#define TALLY_FRAMES_V1_H

#define TALLY_FRAME_SCHEMA_VERSION 1

#define TALLY_FRAME_TYPE_COMMAND 1 /* host -> engine */
#define TALLY_FRAME_TYPE_EFFECT 2  /* engine -> host */
#define TALLY_FRAME_TYPE_HELLO 3        /* host -> engine, first frame */
#define TALLY_FRAME_TYPE_HELLO_SERVER 4 /* engine -> host: challenge, then verdict */
#define TALLY_FRAME_TYPE_PRESENCE 5     /* host -> engine */
#define TALLY_FRAME_TYPE_ACK 6          /* host -> engine */

#define TALLY_FRAME_COMMAND_FIELDS(X)                                            \
  X(U64, req_id, 0, "host's correlation id, echoed in every effect")             \
  X(U64, roles, 0, "TALLY_ROLE_* bits the host vouches for (host, admin, ...)")  \
  X(STR, origin, TALLY_ORIGIN_BYTES_MAX, "host handle of the sender (IRC UUID, "  \
    "full JID); since 1.6 at most TALLY_ORIGIN_BYTES_MAX, 64 before")             \
  X(STR, account, TALLY_IDENTITY_BYTES_MAX, "authenticated account (bare JID, "   \
    "Matrix user id); empty if none")                                            \
  X(STR, nick, TALLY_NICK_BYTES_MAX, "display name, only for messages")          \
  X(STR, channel, TALLY_ROOM_BYTES_MAX, "room it was said in (IRC channel, MUC "  \
    "bare JID, Matrix room id); empty: private")                                 \
  X(STR, msg_id, TALLY_MSG_ID_BYTES_MAX, "unique message id: the idempotency key")\
  X(STR, text, TALLY_TEXT_BYTES_MAX, "the command line, e.g. \"BUY tee 2\"")    \
  X(STR, network, TALLY_FRAME_NETWORK_BYTES_MAX,                                 \
    "network of account, channel and msg_id (\"matrix\"); empty: the engine's " \
    "configured network; since 1.5")

/* Fields a COMMAND must have: those of v1.0. network, appended since,
 * decodes as "" when a sender of v1.0 leaves it out. */
#define TALLY_FRAME_COMMAND_REQUIRED 8

#define TALLY_FRAME_EFFECT_FIELDS(X)                                             \
  X(U64, kind, 0, "enum tally_effect_kind: 1 reply to origin, 2 announce in "   \
                  "channel, 3 engine status, 4 roster request, 5 set topic, "   \
                  "6 say to the channel's moderators only, 7 the channel's "      \
                  "settings (ROOM SET)")                     \
  X(I64, code, 0, "0 ok, or a negative TALLY_E* refusal code")                   \
  X(U64, req_id, 0, "the command's req_id; 0 when not a reply")                  \
  X(U64, receipt_id, 0, "committed transfer id when this is a receipt")          \
  X(STR, origin, TALLY_ORIGIN_BYTES_MAX, "who to tell (reply)")                  \
  X(STR, channel, TALLY_ROOM_BYTES_MAX, "where to say it (announce)")            \
  X(STR, text, TALLY_TEXT_BYTES_MAX, "UTF-8 text to show, no CR or LF")        \
  X(U64, seq, 0, "per-connection sequence number, 1, 2, ... (0 in process); "  \
                 "acknowledged by ACK")                                        \
  X(U64, hint, 0, "enum tally_hint: 0 none, or what the adapter explains in "   \
                  "its network's words after text (1 log in, 2 send privately, "\
                  "3 admin role, 4 host role, 5 grant privilege, 6 already "    \
                  "said); since 1.4")                                          \
  X(STR, network, TALLY_FRAME_NETWORK_BYTES_MAX,                                 \
    "network origin and channel belong to; since 1.5")                          \
  X(U64, conn, 0, "host connection the effect is for (0 in process); since 1.5") \
  X(U64, msg, 0, "enum tally_msg: which sentence text is, for adapters that "  \
                 "render it themselves; 0 text only; since 1.5")               \
  X(STR, args, TALLY_EFFECT_ARGS_BYTES_MAX,                                    \
    "the sentence's arguments, comma-separated kind:start+len[=value[/"      \
    "decimals]] (enum tally_arg_kind; a byte span of text, a number), in "   \
    "text order; a span may hold others (kind 8, a command: its sku); "     \
    "empty when msg is 0; since 1.5")

/* Fields an EFFECT must have: those of v1.0. seq, hint, network, conn, msg and args,
 * appended since, decode as 0 or "" when an older sender leaves them out. */
#define TALLY_FRAME_EFFECT_REQUIRED 7

#define TALLY_FRAME_HELLO_FIELDS(X)                                              \
  X(U64, wire_min, 0, "lowest wire version the host speaks")                     \
  X(U64, wire_max, 0, "highest wire version the host speaks")                    \
  X(STR, network, TALLY_FRAME_NETWORK_BYTES_MAX,                                 \
    "network id, as configured for its secret (e.g. \"libera\")")                \
  X(STR, adapter, TALLY_FRAME_ADAPTER_BYTES_MAX,                                 \
    "adapter name and version, for logs (e.g. \"m_tally/1.3 inspircd/3\")")      \
  X(STR, instance, TALLY_FRAME_INSTANCE_BYTES_MAX,                               \
    "stable id of this chat server within the network (e.g. its server name): " \
    "a reconnect with the same id resumes its sequence numbers")                \
  X(U64, shard, 0, "shard the host expects to talk to; 0: the only one")         \
  X(U64, caps, 0, "TALLY_CAP_* bits: 1 intercepts command lines, 2 can pin a "  \
                  "topic, 4 can hold a message for moderators; unknown bits "   \
                  "are ignored")                                                \
  X(STR, answer, TALLY_FRAME_HELLO_HEX_BYTES,                                    \
    "lowercase hex HMAC-SHA256(network secret, challenge bytes)")               \
  X(U64, acked, 0, "highest effect seq this instance delivered before; 0 "     \
                   "when new")

#define TALLY_FRAME_HELLO_SERVER_FIELDS(X)                                       \
  X(U64, wire_min, 0, "lowest wire version the engine speaks")                   \
  X(U64, wire_max, 0, "highest wire version the engine speaks")                  \
  X(U64, wire_chosen, 0, "0 in the challenge; in the verdict the version both " \
                         "speak from now on (0 when refused)")                  \
  X(I64, code, 0, "0 in the challenge and in a welcome; else why the "         \
                  "connection is closed (TALLY_EVERSION, TALLY_EBADSIG, ...)")    \
  X(STR, server, TALLY_FRAME_INSTANCE_BYTES_MAX,                                 \
    "stable id of the engine (tallyd instance), for logs")                      \
  X(U64, shard, 0, "shard this engine is the writer of; 0: the only one")        \
  X(STR, challenge, TALLY_FRAME_HELLO_HEX_BYTES,                                 \
    "lowercase hex of 32 fresh random bytes; empty in the verdict")             \
  X(STR, text, TALLY_TEXT_BYTES_MAX, "the reason in words when refused")

#define TALLY_FRAME_PRESENCE_FIELDS(X)                                           \
  X(STR, network, TALLY_FRAME_NETWORK_BYTES_MAX,                                 \
    "the connection's network (anything else is refused)")                      \
  X(STR, account, TALLY_IDENTITY_BYTES_MAX, "authenticated account of the user") \
  X(STR, room, TALLY_ROOM_BYTES_MAX, "room (channel) joined or left")            \
  X(U64, present, 0, "0 or 1: 1 joined (or was there when the host started), "  \
                     "0 left")                                                  \
  X(U64, local, 0, "0 or 1: 1 the user is connected to this chat server; a "    \
                   "host reports only its local users, and the engine merges "  \
                   "the servers of one network")

#define TALLY_FRAME_ACK_FIELDS(X)                                                \
  X(U64, seq, 0, "every effect with a seq up to this one was delivered")

#endif
