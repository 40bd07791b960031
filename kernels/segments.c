/* segments — what every backend's multi-tensor ops (kernels/backend_ops.h)
 * share. segments_check: the check segments_create runs on a segment list
 * before copying it: groups inside [0, SEGMENT_MAX_GROUPS), no two segments sharing an
 * element (adamw_multi would update such an element twice, and on a GPU in
 * no fixed order), offsets that do not wrap around. A bad list is a bug in
 * the caller, not a user error: it fails as an internal error. Costs one
 * sort of the list, once per table. segments_sums_start: the check and the
 * zeroing that start sum_squares_multi.
 */
#include <stdint.h>
#include <stdlib.h>

#include "backend.h"
#include "fail.h"

static int by_offset(const void *a, const void *b) {
  const tensor_segment *x = *(const tensor_segment *const *)a, *y = *(const tensor_segment *const *)b;
  return (x->offset > y->offset) - (x->offset < y->offset);
}

void segments_check(const tensor_segment *segments, int n_segments, size_t *total_elems, int *n_groups) {
  if (n_segments < 0) fail_local(EXIT_INTERNAL_ERROR, "a segment list of %d segments", n_segments);
  size_t total = 0;
  int groups = 0;
  for (int s = 0; s < n_segments; s++) {
    const tensor_segment *seg = &segments[s];
    if (seg->group < 0 || seg->group >= SEGMENT_MAX_GROUPS)
      fail_local(EXIT_INTERNAL_ERROR, "segment %d: group %d outside [0, %d)", s, seg->group, SEGMENT_MAX_GROUPS);
    if (seg->n_elems > SIZE_MAX - seg->offset || seg->n_elems > SIZE_MAX - total)
      fail_local(EXIT_INTERNAL_ERROR, "segment %d: %zu elements at %zu overflow", s, seg->n_elems, seg->offset);
    total += seg->n_elems;
    if (seg->group + 1 > groups) groups = seg->group + 1;
  }
  /* the overlap check on the list sorted by offset; the sorted copy is freed
   * before a refusal too (no failure path leaves memory behind) */
  const tensor_segment **sorted = xmalloc((size_t)(n_segments ? n_segments : 1) * sizeof *sorted, "segment list");
  for (int s = 0; s < n_segments; s++) sorted[s] = &segments[s];
  qsort(sorted, (size_t)n_segments, sizeof *sorted, by_offset);
  size_t covered_end = 0; /* end of the non-empty segments so far, in offset order */
  for (int s = 0; s < n_segments; s++) {
    const tensor_segment seg = *sorted[s];
    if (!seg.n_elems) continue;
    if (seg.offset < covered_end) {
      free(sorted);
      fail_local(EXIT_INTERNAL_ERROR, "segment [%zu, +%zu) overlaps an earlier one (up to %zu)", seg.offset,
                 seg.n_elems, covered_end);
    }
    covered_end = seg.offset + seg.n_elems;
  }
  free(sorted);
  *total_elems = total;
  *n_groups = groups;
}

void segments_sums_start(int table_groups, double *sums_by_group, int n_groups) {
  if (table_groups > n_groups)
    fail_local(EXIT_INTERNAL_ERROR, "sum_squares_multi: a segment of group %d, %d groups asked for", table_groups - 1,
               n_groups);
  for (int g = 0; g < n_groups; g++) sums_by_group[g] = 0;
}
