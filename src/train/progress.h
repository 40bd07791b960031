/* progress — what a person watching the run sees.
 *
 * Rank 0 prints one plain line per logged step to stdout (greppable, fine in
 * a Slurm log), every log_every steps. When stdout is a terminal (or
 * progress=on), it also keeps a live status line at the bottom — a bar,
 * step, loss, tokens/s and ETA — redrawn in place with \r on the same
 * stream, so step lines are printed above it and never interleave with it.
 */
#ifndef TESSERA_PROGRESS_H
#define TESSERA_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"

typedef struct progress {
  bool enabled;  /* this rank prints at all */
  bool live;     /* keep a redrawn status line */
  int64_t first_step, last_step;
  double start_seconds;
  bool line_shown;
} progress;

void progress_start(progress *pg, bool is_rank0, int mode /* progress_choice */, int64_t first_step,
                    int64_t last_step);
/* Prints a finished line (step report, validation, sample) above the status line. */
void progress_print(progress *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Redraws the status line after `step` finished. */
void progress_update(progress *pg, int64_t step, double loss, double tokens_per_s);
void progress_finish(progress *pg);

/* "1h02m", "3m05s", "12s" */
void progress_format_duration(double seconds, char *out, int out_bytes);

#endif
