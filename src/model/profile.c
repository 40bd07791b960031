/* profile — per-region time of training steps (profile.h). */
#include "profile.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"

static const char *const region_names[PROFILE_N_REGIONS] = {
    "data", "embedding", "norms", "qkv", "attention", "attention_out", "mlp_in", "mlp_activation", "mlp_out",
    "head", "pipeline", "gradient_sync", "optimizer"};

struct profile {
  const backend *be;
  void **marks;  /* recorded this step, in order */
  int *regions;  /* the region each mark begins: region + backward·PROFILE_N_REGIONS */
  int n_marks, capacity;
  double ms[2 * PROFILE_N_REGIONS]; /* totals over the steps after the first */
  double wall_ms;                   /* their wall time */
  int64_t steps_seen;
};

profile *profile_create(const backend *be) {
  profile *p = xcalloc(1, sizeof *p, "profile");
  p->be = be;
  return p;
}

void profile_free(profile *p) {
  if (!p) return;
  for (int i = 0; i < p->capacity; i++) p->be->mark_destroy(p->marks[i]);
  free(p->marks);
  free(p->regions);
  free(p);
}

void profile_mark(profile *p, profile_region region, bool backward) {
  if (!p) return;
  if (p->n_marks == p->capacity) { /* marks are kept for the run: creating events costs */
    const int grown = p->capacity ? 2 * p->capacity : 256;
    void **marks = xmalloc((size_t)grown * sizeof *marks, "profile marks");
    int *regions = xmalloc((size_t)grown * sizeof *regions, "profile marks");
    if (p->capacity) {
      memcpy(marks, p->marks, (size_t)p->capacity * sizeof *marks);
      memcpy(regions, p->regions, (size_t)p->capacity * sizeof *regions);
    }
    free(p->marks);
    free(p->regions);
    p->marks = marks;
    p->regions = regions;
    for (int i = p->capacity; i < grown; i++) p->marks[i] = p->be->mark_create();
    p->capacity = grown;
  }
  p->regions[p->n_marks] = (int)region + (backward ? PROFILE_N_REGIONS : 0);
  p->be->mark_record(p->marks[p->n_marks++]);
}

void profile_end_step(profile *p, double step_seconds) {
  if (!p) return;
  profile_mark(p, PROFILE_DATA, false); /* the end of the last region */
  if (p->steps_seen++ > 0) { /* the first step warms up; its marks are simply recorded again */
    for (int i = 0; i + 1 < p->n_marks; i++)
      p->ms[p->regions[i]] += p->be->mark_elapsed_ms(p->marks[i], p->marks[i + 1]);
    p->wall_ms += 1e3 * step_seconds;
  }
  p->n_marks = 0;
}

int64_t profile_steps(const profile *p) { return p && p->steps_seen > 1 ? p->steps_seen - 1 : 0; }

double profile_ms_per_step(const profile *p, profile_region r, bool backward) {
  const int64_t n = profile_steps(p);
  return n ? p->ms[(int)r + (backward ? PROFILE_N_REGIONS : 0)] / (double)n : 0.0;
}

double profile_covered_ms_per_step(const profile *p) {
  double total = 0.0;
  for (int r = 0; r < PROFILE_N_REGIONS; r++)
    total += profile_ms_per_step(p, (profile_region)r, false) + profile_ms_per_step(p, (profile_region)r, true);
  return total;
}

double profile_wall_ms_per_step(const profile *p) {
  const int64_t n = profile_steps(p);
  return n ? p->wall_ms / (double)n : 0.0;
}

const char *profile_region_name(profile_region r) { return region_names[r]; }
