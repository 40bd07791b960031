/* progress — see progress.h. */
#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"

void progress_format_duration(double seconds, char *out, int out_bytes) {
  if (seconds < 0) seconds = 0;
  long s = (long)(seconds + 0.5);
  if (s >= 3600) snprintf(out, (size_t)out_bytes, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60) snprintf(out, (size_t)out_bytes, "%ldm%02lds", s / 60, s % 60);
  else snprintf(out, (size_t)out_bytes, "%lds", s);
}

void progress_start(progress *pg, bool is_rank0, int mode, int64_t first_step, int64_t last_step) {
  pg->enabled = is_rank0;
  /* The status line shares stdout with the step lines: two streams reach a
   * terminal through mpirun by separate forwarding, and a \r on one of them
   * lands in the middle of a line of the other ("ETA 2m12sstep 26/300"). */
  pg->live = is_rank0 && (mode == PROGRESS_ON || (mode == PROGRESS_AUTO && isatty(STDOUT_FILENO)));
  pg->first_step = first_step;
  pg->last_step = last_step;
  pg->start_seconds = now_seconds();
  pg->line_shown = false;
}

static void clear_status(progress *pg) {
  if (pg->line_shown) {
    fputs("\r\033[K", stdout);
    pg->line_shown = false;
  }
}

void progress_print(progress *pg, const char *fmt, ...) {
  if (!pg->enabled) return;
  clear_status(pg);
  va_list args;
  va_start(args, fmt);
  vprintf(fmt, args);
  va_end(args);
  fflush(stdout);
}

void progress_update(progress *pg, int64_t step, double loss, double tokens_per_s) {
  if (!pg->live) return;
  int64_t done = step - pg->first_step + 1, total = pg->last_step - pg->first_step + 1;
  double elapsed = now_seconds() - pg->start_seconds;
  double eta = done > 0 ? elapsed * (double)(total - done) / (double)done : 0;
  char eta_text[32], bar[21];
  progress_format_duration(eta, eta_text, sizeof eta_text);
  int filled = total > 0 ? (int)(20 * done / total) : 20;
  for (int i = 0; i < 20; i++) bar[i] = i < filled ? '#' : '.';
  bar[20] = '\0';
  printf("\r\033[K[%s] step %lld/%lld  loss %.4f  %.0f tok/s  ETA %s", bar,
          (long long)step, (long long)pg->last_step, loss, tokens_per_s, eta_text);
  fflush(stdout);
  pg->line_shown = true;
}

void progress_finish(progress *pg) {
  if (pg->live && pg->line_shown) fputc('\n', stdout), fflush(stdout);
  pg->line_shown = false;
}
