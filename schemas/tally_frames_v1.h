/* tally_frames_v1.h — the wire frames between hosts and the engine, v1.
 *
 * This file is the one definition of the frames: core/src/codec.c generates
 * its encoder and decoder from these tables, and tools/schema_doc.c generates
 * docs/FRAMES.md from them. A frame is one msgpack array:
 *
 *     [schema_version, frame_type, field_1, field_2, ...]
 *
 * Rules for changing it: a new field may only be appended (decoders of v1
 * accept longer arrays from v1.x and ignore the tail); changing or removing a
 * field means a new schema version file and a new frame_type range.
 *
 * X(kind, name, max_bytes, doc): kind is U64 (unsigned integer), I64 (signed
 * integer) or STR (UTF-8 string of at most max_bytes bytes). */
#ifndef TALLY_FRAMES_V1_H
#define TALLY_FRAMES_V1_H

#define TALLY_FRAME_SCHEMA_VERSION 1

#define TALLY_FRAME_TYPE_COMMAND 1 /* host -> engine */
#define TALLY_FRAME_TYPE_EFFECT 2  /* engine -> host */

#define TALLY_FRAME_COMMAND_FIELDS(X)                                            \
  X(U64, req_id, 0, "host's correlation id, echoed in every effect")             \
  X(U64, roles, 0, "TALLY_ROLE_* bits the host vouches for (chanop, oper)")      \
  X(STR, origin, TALLY_NAME_BYTES_MAX, "host handle of the sender (IRC UUID)")   \
  X(STR, account, TALLY_NAME_BYTES_MAX, "authenticated account; empty if none")  \
  X(STR, nick, TALLY_NAME_BYTES_MAX, "display name, only for messages")          \
  X(STR, channel, TALLY_NAME_BYTES_MAX, "channel it was said in; empty: private")\
  X(STR, msg_id, TALLY_NAME_BYTES_MAX, "unique message id: the idempotency key") \
  X(STR, text, TALLY_TEXT_BYTES_MAX, "the command line, e.g. \"BUY tee 2\"")

#define TALLY_FRAME_EFFECT_FIELDS(X)                                             \
  X(U64, kind, 0, "enum tally_effect_kind: 1 reply to origin, 2 announce in "   \
                  "channel, 3 engine status, 4 roster request, 5 set topic, "   \
                  "6 say to the channel's moderators only")                     \
  X(I64, code, 0, "0 ok, or a negative TALLY_E* refusal code")                   \
  X(U64, req_id, 0, "the command's req_id; 0 when not a reply")                  \
  X(U64, receipt_id, 0, "committed transfer id when this is a receipt")          \
  X(STR, origin, TALLY_NAME_BYTES_MAX, "who to tell (reply)")                    \
  X(STR, channel, TALLY_NAME_BYTES_MAX, "where to say it (announce)")            \
  X(STR, text, TALLY_TEXT_BYTES_MAX, "UTF-8 text to show, no CR or LF")        \
  X(U64, hint, 0, "enum tally_hint: 0 none, or what the adapter explains in "   \
                  "its network's words after text (1 log in, 2 send privately, "\
                  "3 admin role, 4 host role, 5 grant privilege, 6 already "    \
                  "said); since 1.4")

#endif
