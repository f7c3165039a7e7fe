/* libFuzzer target for the UTF-8 validator: its verdict must match a plain
 * code-point decoder, and feeding the same bytes in two pieces (split where
 * the first input byte says) must give the same verdict, with the failure
 * reported in the piece that holds the first bad byte or earlier never.
 * Long non-ASCII inputs take the vector path, short ones the automaton. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "duplex/error.h"
#include "duplex/utf8.h"
#include "utf8_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t cut = data[0];
  data++, size--;
  if (cut > size) cut = size;
  bool want = ref_valid(data, size);
  if (dx_utf8_valid(data, size) != want) abort();
  dx_utf8 v;
  dx_utf8_init(&v);
  int a = dx_utf8_feed(&v, data, cut);
  int b = a ? a : dx_utf8_feed(&v, data + cut, size - cut);
  bool split_ok = a == 0 && b == 0 && dx_utf8_complete(&v);
  if (split_ok != want) abort();
  /* A failing first piece must hold a byte that no valid text can follow. */
  if (a != 0) {
    bool prefix_extendable = false;
    /* Try every completion of up to 3 continuation-free tails: if the first
     * piece plus some valid ending is valid, it was rejected too early. */
    static const uint8_t ends[][4] = {{0},
                                      {0x80},
                                      {0x80, 0x80},
                                      {0x80, 0x80, 0x80},
                                      {0x90, 0x80, 0x80},
                                      {0xA0, 0x80},
                                      {0x8F, 0x80, 0x80},
                                      {0x9F, 0x80},
                                      {0xBF},
                                      {0xBF, 0xBF},
                                      {0xBF, 0xBF, 0xBF}};
    static const size_t nends[] = {0, 1, 2, 3, 3, 2, 3, 2, 1, 2, 3};
    for (size_t e = 0; e < sizeof nends / sizeof nends[0] && !prefix_extendable; e++) {
      uint8_t *tmp = malloc(cut + 4);
      for (size_t k = 0; k < cut; k++) tmp[k] = data[k];
      for (size_t k = 0; k < nends[e]; k++) tmp[cut + k] = ends[e][k];
      prefix_extendable = ref_valid(tmp, cut + nends[e]);
      free(tmp);
    }
    if (prefix_extendable) abort();
  }
  return 0;
}
