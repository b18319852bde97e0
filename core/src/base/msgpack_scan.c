/* msgpack_scan.c — see msgpack_scan.h. Shared by the frame codec and the
 * receipt token decoder: both take bytes from anyone. */
#include "msgpack_scan.h"

#include "tally.h"

static uint32_t scan_get_be(const uint8_t *p, size_t bytes) {
  uint32_t v = 0;
  for (size_t i = 0; i < bytes; i++) v = v << 8 | p[i];
  return v;
}

/* One pass over the msgpack bytes without recursion: exactly one object,
 * built only of integers, str, bin and arrays, whose declared lengths and
 * element counts fit in the bytes that remain. */
int tally__msgpack_scan(const uint8_t *b, size_t len) {
  size_t off = 0, pending = 1;
  while (pending > 0) {
    if (off >= len) return TALLY_EFRAME;
    uint8_t t = b[off++];
    pending--;
    size_t skip = 0, len_bytes = 0, items = 0;
    int is_array = 0;
    if (t <= 0x7f || t >= 0xe0) {
      /* fixint */
    } else if (t >= 0x90 && t <= 0x9f) {
      items = t & 0x0f;
    } else if (t >= 0xa0 && t <= 0xbf) {
      skip = t & 0x1f;
    } else {
      switch (t) {
      case 0xcc: case 0xd0: skip = 1; break;
      case 0xcd: case 0xd1: skip = 2; break;
      case 0xce: case 0xd2: skip = 4; break;
      case 0xcf: case 0xd3: skip = 8; break;
      case 0xc4: case 0xd9: len_bytes = 1; break;
      case 0xc5: case 0xda: len_bytes = 2; break;
      case 0xc6: case 0xdb: len_bytes = 4; break;
      case 0xdc: len_bytes = 2; is_array = 1; break;
      case 0xdd: len_bytes = 4; is_array = 1; break;
      default: return TALLY_EFRAME; /* nil, bool, float, map, ext */
      }
    }
    if (len_bytes) {
      if (len - off < len_bytes) return TALLY_EFRAME;
      uint32_t v = scan_get_be(b + off, len_bytes);
      off += len_bytes;
      if (is_array) items = v; else skip = v;
    }
    /* Every element takes at least one byte. */
    if (skip > len - off || items > len - off) return TALLY_EFRAME;
    off += skip;
    pending += items;
  }
  return off == len ? TALLY_OK : TALLY_EFRAME;
}

