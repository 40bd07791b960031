/* test_sp_layout — where each sequence-parallel rank's tokens lie, for
 * sp = 1..8 and both placements:
 *  - every position of every sequence is held by exactly one rank, once,
 *    and sp_layout_row_of finds its row there (and -1 elsewhere);
 *  - contiguous: rank r holds [r·T/sp, (r+1)·T/sp); zig-zag: rank r holds
 *    chunks r and 2·sp−1−r of 2·sp, so the chunk owners run up the ranks and
 *    back down (sp_layout_chunk_owner agrees with each rank's pieces);
 *  - sp_layout_take puts position piece_pos0[p] + i of sequence b at row
 *    (p·B + b)·n + i, and sp_layout_positions names the same positions;
 *  - causal balance: the (query, key) pairs with key ≤ query that each
 *    rank's queries see are the same on every rank under zig-zag,
 *    (2·sp−1)·n² + n(n+1), while contiguous ranks range from n(n+1)/2 (the
 *    first) to (sp−1)·n² + n(n+1)/2 (the last);
 *  - a T that the chunks do not divide is refused with a message.
 * Pure integer arithmetic: every comparison is exact. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_layout.h"
#include "testing.h"

int main(void) {
  enum { B = 3 };
  char err[256];
  for (int placement = 0; placement < 2; placement++)
    for (int P = 1; P <= 8; P++) {
      const int chunks = P * (placement == SP_ZIGZAG ? 2 : 1), T = chunks * 5;
      int *holder = calloc((size_t)T, sizeof *holder); /* how many ranks hold each position */
      int32_t *full = malloc((size_t)B * T * sizeof *full), *local = malloc((size_t)B * T * sizeof *local);
      int32_t *positions = malloc((size_t)B * T * sizeof *positions);
      for (int i = 0; i < B * T; i++) full[i] = i; /* token = its index b·T + t */
      long long work_min = -1, work_max = 0;
      for (int r = 0; r < P; r++) {
        sp_layout l;
        CHECK(sp_layout_make(&l, (sp_placement)placement, P, r, T, err, sizeof err) == 0, "make: %s", err);
        const int n = l.piece_len;
        CHECK(n * chunks == T && l.n_chunks == chunks, "P %d: %d pieces of %d", P, l.n_pieces, n);
        for (int p = 0; p < l.n_pieces; p++) {
          const int want = placement == SP_ZIGZAG && p == 1 ? 2 * P - 1 - r : r;
          CHECK(l.piece_chunk[p] == want && l.piece_pos0[p] == want * n, "P %d rank %d piece %d: chunk %d", P, r, p,
                l.piece_chunk[p]);
          int owner, piece;
          sp_layout_chunk_owner(&l, l.piece_chunk[p], &owner, &piece);
          CHECK(owner == r && piece == p, "chunk %d owned by %d/%d, held by %d/%d", l.piece_chunk[p], owner, piece, r, p);
          for (int i = 0; i < n; i++) holder[l.piece_pos0[p] + i]++;
        }
        sp_layout_take(&l, B, full, local);
        sp_layout_positions(&l, B, positions);
        int wrong = 0;
        for (int p = 0; p < l.n_pieces; p++)
          for (int b = 0; b < B; b++)
            for (int i = 0; i < n; i++) {
              const int64_t row = ((int64_t)p * B + b) * n + i;
              const int t = l.piece_pos0[p] + i;
              wrong += local[row] != b * T + t || positions[row] != t || sp_layout_row_of(&l, B, b, t) != row;
            }
        CHECK(wrong == 0, "P %d rank %d: %d rows out of place", P, r, wrong);
        /* causal work of this rank's queries */
        long long work = 0;
        for (int p = 0; p < l.n_pieces; p++)
          for (int i = 0; i < n; i++) work += l.piece_pos0[p] + i + 1;
        if (work_min < 0 || work < work_min) work_min = work;
        if (work > work_max) work_max = work;
        int outside = 0;
        for (int t = 0; t < T; t++) {
          bool mine = false;
          for (int p = 0; p < l.n_pieces; p++) mine |= t >= l.piece_pos0[p] && t < l.piece_pos0[p] + n;
          if (!mine) outside += sp_layout_row_of(&l, B, 0, t) != -1;
        }
        CHECK(outside == 0, "rows found for positions another rank holds");
      }
      int once = 1;
      for (int t = 0; t < T; t++) once &= holder[t] == 1;
      CHECK(once, "%s P %d: every position on exactly one rank", placement ? "zig-zag" : "contiguous", P);
      const long long n = T / chunks;
      const long long triangle = n * (n + 1) / 2; /* a chunk's pairs within itself */
      if (placement == SP_ZIGZAG)
        CHECK(work_min == work_max && work_max == (2 * P - 1) * n * n + 2 * triangle, "zig-zag P %d: work %lld..%lld", P,
              work_min, work_max);
      else
        CHECK(work_min == triangle && work_max == (P - 1) * n * n + triangle, "contiguous P %d: work %lld..%lld", P,
              work_min, work_max);
      if (P == 4) printf("%s, 4 ranks: causal pairs per rank %lld..%lld\n", placement ? "zig-zag" : "contiguous", work_min, work_max);
      free(holder), free(full), free(local), free(positions);
    }
  sp_layout l;
  err[0] = '\0';
  CHECK(sp_layout_make(&l, SP_ZIGZAG, 4, 0, 20, err, sizeof err) != 0 && strstr(err, "not a multiple of 8"),
        "T = 20 over 8 zig-zag chunks refused: '%s'", err);
  return test_summary("test_sp_layout");
}
