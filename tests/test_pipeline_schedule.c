/* test_pipeline_schedule — the schedule generators against the properties
 * the runtime relies on, for every (stages, micro-batches, virtual chunks)
 * with stages 1..8, micro-batches 1..16, chunks 1..4:
 *  - a request each generator cannot serve is refused with a message
 *    (1F1B with m < p, interleaved with m not a multiple of p or V < 2,
 *    V > 1 without interleaving), and every other one builds;
 *  - each built schedule plays out: every backward after its forward,
 *    every send received once, no deadlock (pipe_schedule_check);
 *  - micro-batches in flight: GPipe holds all m on every stage, 1F1B at
 *    most p − s on stage s (so at most p on stage 0), interleaved at most
 *    its warm-up plus one;
 *  - with forward 1 and backward 2 per chunk, GPipe and 1F1B idle exactly
 *    (p−1)/(m+p−1) of the time and interleaving exactly (p−1)/(V·m+p−1),
 *    less than 1F1B;
 *  - broken schedules are caught: a backward moved before its forward
 *    (deadlock) and a duplicated op.
 * Bubble comparisons are exact up to 1e-12: the play-out adds small
 * integers. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "pipeline_schedule.h"
#include "testing.h"

static int built, refused;

static void one(pipe_schedule_kind kind, int p, int m, int V) {
  pipe_schedule s;
  char err[512];
  const bool valid = kind == PIPE_GPIPE ? V == 1
                     : kind == PIPE_1F1B ? V == 1 && m >= p
                                          : V >= 2 && m % p == 0;
  const int status = pipe_schedule_build(&s, kind, p, m, V, err, sizeof err);
  CHECK((status == 0) == valid, "%s p %d m %d V %d: build %s (%s)", pipe_schedule_name(kind), p, m, V,
        status ? "refused" : "accepted", status ? err : "");
  if (status) {
    refused++;
    CHECK(strlen(err) > 20, "a refusal explains itself: '%s'", err);
    return;
  }
  built++;
  pipe_schedule_report r;
  if (pipe_schedule_check(&s, &r, err, sizeof err) != 0) {
    CHECK(0, "%s p %d m %d V %d: %s", pipe_schedule_name(kind), p, m, V, err);
    pipe_schedule_free(&s);
    return;
  }
  for (int st = 0; st < p; st++) {
    const int held = r.max_in_flight[st];
    if (kind == PIPE_GPIPE) CHECK(held == m, "gpipe p %d m %d: stage %d holds %d, not m", p, m, st, held);
    if (kind == PIPE_1F1B)
      CHECK(held == (p - st < m ? p - st : m), "1f1b p %d m %d: stage %d holds %d, not min(p - s, m)", p, m, st, held);
    if (kind == PIPE_INTERLEAVED) {
      int warmup = (p - st - 1) * 2 + (V - 1) * p;
      if (warmup > m * V) warmup = m * V;
      CHECK(held <= warmup + 1, "interleaved p %d m %d V %d: stage %d holds %d > warm-up + 1", p, m, V, st, held);
    }
  }
  const double formula = pipe_schedule_bubble_formula(p, m, 1);
  if (kind != PIPE_INTERLEAVED)
    CHECK(fabs(r.bubble - formula) < 1e-12, "%s p %d m %d: bubble %.6f, formula %.6f", pipe_schedule_name(kind), p, m,
          r.bubble, formula);
  else {
    const double interleaved = pipe_schedule_bubble_formula(p, m, V);
    CHECK(fabs(r.bubble - interleaved) < 1e-12, "interleaved p %d m %d V %d: bubble %.6f, formula %.6f", p, m, V,
          r.bubble, interleaved);
    if (p > 1)
      CHECK(r.bubble < formula - 1e-12, "interleaved p %d m %d V %d: bubble %.4f not below 1F1B's %.4f", p, m, V,
            r.bubble, formula);
  }
  pipe_schedule_free(&s);
}

static void broken_schedules(void) {
  pipe_schedule s;
  pipe_schedule_report r;
  char err[512];
  CHECK(pipe_schedule_build(&s, PIPE_1F1B, 4, 8, 1, err, sizeof err) == 0, "build: %s", err);
  /* stage 3 (the last) runs F0 B0 F1 B1 ...: move B0 before F0 */
  pipe_op first = s.ops[3][0];
  s.ops[3][0] = s.ops[3][1];
  s.ops[3][1] = first;
  CHECK(pipe_schedule_check(&s, &r, err, sizeof err) != 0 && strstr(err, "deadlock"),
        "a backward before its forward deadlocks: '%s'", err);
  s.ops[3][1] = s.ops[3][0]; /* now B0 twice, F0 never */
  CHECK(pipe_schedule_check(&s, &r, err, sizeof err) != 0, "a duplicated op is caught: '%s'", err);
  pipe_schedule_free(&s);
}

int main(void) {
  for (int kind = PIPE_GPIPE; kind <= PIPE_INTERLEAVED; kind++)
    for (int p = 1; p <= 8; p++)
      for (int m = 1; m <= 16; m++)
        for (int V = 1; V <= 4; V++) one((pipe_schedule_kind)kind, p, m, V);
  broken_schedules();
  /* what the runtime will report for a typical case */
  pipe_schedule s;
  pipe_schedule_report r;
  char err[256];
  pipe_schedule_build(&s, PIPE_INTERLEAVED, 4, 8, 2, err, sizeof err);
  pipe_schedule_check(&s, &r, err, sizeof err);
  printf("interleaved p 4 m 8 V 2: bubble %.4f (formula %.4f), 1f1b formula %.4f\n", r.bubble,
         pipe_schedule_bubble_formula(4, 8, 2), pipe_schedule_bubble_formula(4, 8, 1));
  pipe_schedule_free(&s);
  printf("%d schedules built and checked, %d refused\n", built, refused);
  return test_summary("test_pipeline_schedule");
}
