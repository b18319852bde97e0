/* abi.h — the `size, version` promise of tally.h's structs, in one place.
 *
 * A host may be built against an older tally.h (shorter structs) or a newer
 * one (longer structs) than the library it runs with. Every struct crossing
 * the boundary starts with `uint32_t size`: for a struct the host fills (an
 * input), the host's sizeof; for one the library fills (an output), what the
 * library wrote. The library reads an input only up to its size, with the
 * fields past it taken from a defaults struct (tally__abi_import), and writes
 * an output only up to the size the host said it has (tally__abi_export).
 * Appending a field to a struct needs no code here: give it a default in
 * that struct's defaults and the copy does the rest. */
#ifndef TALLY_BASE_ABI_H
#define TALLY_BASE_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tally.h"

/* The size field of any boundary struct (its first member). */
static inline uint32_t tally__abi_size(const void *host) {
  uint32_t size;
  memcpy(&size, host, sizeof size);
  return size;
}

/* out (full bytes, the library's struct) = defaults, then the first
 * min(host size, full) bytes of host; out's size becomes full. A host
 * struct shorter than min_size (its version-1 prefix) is TALLY_EINVAL. */
static inline int tally__abi_import(void *out, const void *defaults, size_t full, const void *host,
                                    size_t min_size) {
  uint32_t have = tally__abi_size(host);
  if (have < min_size) return TALLY_EINVAL;
  memcpy(out, defaults, full);
  memcpy(out, host, have < full ? have : full);
  uint32_t size = (uint32_t)full;
  memcpy(out, &size, sizeof size);
  return TALLY_OK;
}

/* Writes the library's struct src (full bytes) into the host's dst of
 * host_size bytes: the common prefix is copied, bytes of a longer host
 * struct are zeroed, and dst's size says how many bytes are valid. */
static inline void tally__abi_export(void *dst, size_t host_size, const void *src, size_t full) {
  size_t n = host_size < full ? host_size : full;
  memcpy(dst, src, n);
  if (host_size > n) memset((char *)dst + n, 0, host_size - n);
  uint32_t size = (uint32_t)n;
  memcpy(dst, &size, sizeof size);
}

#endif
