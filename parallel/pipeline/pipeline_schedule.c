/* pipeline_schedule — see pipeline_schedule.h. */
#include "pipeline_schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"

const char *pipe_schedule_name(pipe_schedule_kind kind) {
  return kind == PIPE_GPIPE ? "gpipe" : kind == PIPE_1F1B ? "1f1b" : "interleaved";
}

double pipe_schedule_bubble_formula(int stages, int micro_batches, int virtual_chunks) {
  return (double)(stages - 1) / ((double)virtual_chunks * micro_batches + stages - 1);
}

static void emit(pipe_schedule *s, int stage, int backward, int micro, int chunk) {
  s->ops[stage][s->n_ops[stage]++] = (pipe_op){backward, micro, chunk};
}

/* the k-th forward (or backward) of a stage under interleaving: groups of
 * p micro-batches go through chunk 0, then chunk 1, ... (backwards through
 * the chunks in reverse) */
static pipe_op interleaved_op(const pipe_schedule *s, int k, int backward) {
  const int p = s->stages, V = s->virtual_chunks;
  const int group = k / (p * V), within = k % (p * V);
  const int chunk = backward ? V - 1 - within / p : within / p;
  return (pipe_op){backward, group * p + within % p, chunk};
}

int pipe_schedule_build(pipe_schedule *s, pipe_schedule_kind kind, int stages, int micro_batches,
                        int virtual_chunks, char *err, size_t err_bytes) {
  memset(s, 0, sizeof *s);
  const int p = stages, m = micro_batches, V = virtual_chunks;
  if (p < 1 || m < 1 || V < 1) {
    snprintf(err, err_bytes, "pipeline: stages (%d), micro-batches (%d) and virtual chunks (%d) must be >= 1", p, m, V);
    return -1;
  }
  if (kind != PIPE_INTERLEAVED && V != 1) {
    snprintf(err, err_bytes, "--pp-virtual %d needs --pp-schedule interleaved (%s runs one chunk per stage)", V,
             pipe_schedule_name(kind));
    return -1;
  }
  if (kind == PIPE_INTERLEAVED && V < 2) {
    snprintf(err, err_bytes, "--pp-schedule interleaved needs --pp-virtual 2 or more (chunks per stage)");
    return -1;
  }
  if (kind == PIPE_INTERLEAVED && m % p != 0) {
    snprintf(err, err_bytes,
             "--pp-schedule interleaved needs the micro-batches per step (%d) to be a multiple of --pp (%d): "
             "it sends them through each chunk in groups of %d",
             m, p, p);
    return -1;
  }
  if (kind == PIPE_1F1B && m < p) {
    snprintf(err, err_bytes,
             "--pp-schedule 1f1b needs at least as many micro-batches per step (%d) as stages (%d), or the "
             "pipeline never fills; raise batch_size or lower micro_batch_size, or use --pp-schedule gpipe",
             m, p);
    return -1;
  }
  s->kind = kind, s->stages = p, s->micro_batches = m, s->virtual_chunks = V;
  s->ops = xcalloc((size_t)p, sizeof *s->ops, "pipeline schedule");
  s->n_ops = xcalloc((size_t)p, sizeof *s->n_ops, "pipeline schedule");
  const int total = m * V; /* forwards (and backwards) per stage */
  for (int st = 0; st < p; st++) {
    s->ops[st] = xcalloc(2 * (size_t)total, sizeof **s->ops, "pipeline schedule");
    if (kind == PIPE_GPIPE) {
      for (int i = 0; i < m; i++) emit(s, st, 0, i, 0);
      for (int i = 0; i < m; i++) emit(s, st, 1, i, 0);
      continue;
    }
    /* 1F1B, plain or interleaved: warm-up forwards, then one forward and one
     * backward in turn, then the backwards left */
    int warmup = kind == PIPE_1F1B ? p - st - 1 : (p - st - 1) * 2 + (V - 1) * p;
    if (warmup > total) warmup = total;
    for (int k = 0; k < total + total; k++) {
      int backward, index;
      if (k < warmup) backward = 0, index = k;
      else if (k < warmup + 2 * (total - warmup)) {
        const int step = k - warmup; /* steady state: forward, backward, ... */
        backward = step % 2, index = backward ? step / 2 : warmup + step / 2;
      } else {
        backward = 1, index = k - total; /* cool-down */
      }
      const pipe_op op = kind == PIPE_1F1B ? (pipe_op){backward, index, 0} : interleaved_op(s, index, backward);
      emit(s, st, op.backward, op.micro, op.chunk);
    }
  }
  return 0;
}

void pipe_schedule_free(pipe_schedule *s) {
  for (int st = 0; s->ops && st < s->stages; st++) free(s->ops[st]);
  free(s->ops);
  free(s->n_ops);
  memset(s, 0, sizeof *s);
}

int pipe_schedule_check(const pipe_schedule *s, pipe_schedule_report *report, char *err, size_t err_bytes) {
  const int p = s->stages, m = s->micro_batches, V = s->virtual_chunks, G = p * V;
  memset(report, 0, sizeof *report);
  /* finish times of F(m, g) and B(m, g), −1 while not run */
  double *f_done = xmalloc((size_t)m * G * sizeof *f_done, "schedule check");
  double *b_done = xmalloc((size_t)m * G * sizeof *b_done, "schedule check");
  double *free_at = xcalloc((size_t)p, sizeof *free_at, "schedule check");
  double busy = 0;
  int *next = xcalloc((size_t)p, sizeof *next, "schedule check"), *held = xcalloc((size_t)p, sizeof *held, "schedule check");
  for (int i = 0; i < m * G; i++) f_done[i] = b_done[i] = -1;
  int status = 0;
  err[0] = '\0';
  for (int st = 0; st < p && !status; st++)
    if (s->n_ops[st] != 2 * m * V) {
      snprintf(err, err_bytes, "stage %d has %d ops, not 2·m·V = %d", st, s->n_ops[st], 2 * m * V);
      status = -1;
    }
  for (int progress = 1; progress && !status;) {
    progress = 0;
    for (int st = 0; st < p && !status; st++) {
      if (next[st] == s->n_ops[st]) continue;
      const pipe_op op = s->ops[st][next[st]];
      if (op.micro < 0 || op.micro >= m || op.chunk < 0 || op.chunk >= V) {
        snprintf(err, err_bytes, "stage %d op %d: micro-batch %d or chunk %d out of range", st, next[st], op.micro, op.chunk);
        status = -1;
        break;
      }
      const int g = op.chunk * p + st; /* the global chunk */
      const size_t at = (size_t)op.micro * G + g;
      double ready = 0;
      int can_run;
      if (!op.backward) {
        can_run = g == 0 || f_done[at - 1] >= 0; /* the activation from the chunk before */
        if (g > 0 && can_run) ready = f_done[at - 1];
        if (f_done[at] >= 0) {
          snprintf(err, err_bytes, "stage %d: forward of micro-batch %d chunk %d appears twice", st, op.micro, op.chunk);
          status = -1;
          break;
        }
      } else {
        can_run = f_done[at] >= 0 && (g == G - 1 || b_done[at + 1] >= 0);
        if (can_run) ready = g == G - 1 || f_done[at] > b_done[at + 1] ? f_done[at] : b_done[at + 1];
        if (b_done[at] >= 0) {
          snprintf(err, err_bytes, "stage %d: backward of micro-batch %d chunk %d appears twice", st, op.micro, op.chunk);
          status = -1;
          break;
        }
      }
      if (!can_run) continue;
      const double cost = op.backward ? 2 : 1, start = free_at[st] > ready ? free_at[st] : ready;
      free_at[st] = start + cost;
      busy += cost;
      (op.backward ? b_done : f_done)[at] = free_at[st];
      held[st] += op.backward ? -1 : 1;
      if (st < 64 && held[st] > report->max_in_flight[st]) report->max_in_flight[st] = held[st];
      next[st]++;
      progress = 1;
    }
  }
  for (int st = 0; st < p && !status; st++)
    if (next[st] != s->n_ops[st]) {
      const pipe_op op = s->ops[st][next[st]];
      snprintf(err, err_bytes, "deadlock: stage %d waits at op %d (%s of micro-batch %d, chunk %d) forever", st,
               next[st], op.backward ? "backward" : "forward", op.micro, op.chunk);
      status = -1;
    }
  if (!status) {
    for (int st = 0; st < p; st++)
      if (free_at[st] > report->makespan) report->makespan = free_at[st];
    report->bubble = 1.0 - busy / (p * report->makespan);
  }
  free(f_done), free(b_done), free(free_at), free(next), free(held);
  return status;
}
