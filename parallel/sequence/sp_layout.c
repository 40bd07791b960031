/* sp_layout — see sp_layout.h. */
#include "sp_layout.h"

#include <stdio.h>
#include <string.h>

int sp_layout_make(sp_layout *l, sp_placement placement, int sp_size, int sp_rank, int T, char *err,
                   size_t err_bytes) {
  memset(l, 0, sizeof *l);
  l->placement = placement;
  l->sp_size = sp_size;
  l->sp_rank = sp_rank;
  l->T = T;
  l->n_pieces = sp_placement_pieces(placement);
  l->n_chunks = sp_size * l->n_pieces;
  if (sp_size < 1 || sp_rank < 0 || sp_rank >= sp_size || T % l->n_chunks != 0) {
    snprintf(err, err_bytes,
             "sequence parallelism cuts each sequence into %d %s chunks, but seq_len = %d is not a "
             "multiple of %d; choose a seq_len that is",
             l->n_chunks, placement == SP_ZIGZAG ? "zig-zag" : "contiguous", T, l->n_chunks);
    return -1;
  }
  l->piece_len = T / l->n_chunks;
  l->piece_chunk[0] = sp_rank;
  l->piece_chunk[1] = placement == SP_ZIGZAG ? 2 * sp_size - 1 - sp_rank : -1;
  for (int p = 0; p < l->n_pieces; p++) l->piece_pos0[p] = l->piece_chunk[p] * l->piece_len;
  return 0;
}

void sp_layout_chunk_owner(const sp_layout *l, int c, int *rank, int *piece) {
  if (c < l->sp_size) *rank = c, *piece = 0;
  else *rank = l->n_chunks - 1 - c, *piece = 1; /* zig-zag: the second half comes back */
}

void sp_layout_take(const sp_layout *l, int B, const int32_t *full, int32_t *local) {
  const int n = l->piece_len;
  for (int p = 0; p < l->n_pieces; p++)
    for (int b = 0; b < B; b++)
      memcpy(local + ((size_t)p * B + b) * n, full + (size_t)b * l->T + l->piece_pos0[p], (size_t)n * sizeof *local);
}

void sp_layout_positions(const sp_layout *l, int B, int32_t *positions) {
  const int n = l->piece_len;
  for (int p = 0; p < l->n_pieces; p++)
    for (int b = 0; b < B; b++)
      for (int i = 0; i < n; i++) positions[((size_t)p * B + b) * n + i] = l->piece_pos0[p] + i;
}

int64_t sp_layout_row_of(const sp_layout *l, int B, int b, int t) {
  for (int p = 0; p < l->n_pieces; p++)
    if (t >= l->piece_pos0[p] && t < l->piece_pos0[p] + l->piece_len)
      return ((int64_t)p * B + b) * l->piece_len + (t - l->piece_pos0[p]);
  return -1;
}
