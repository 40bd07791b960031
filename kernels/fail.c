/* fail — see fail.h. Printing and exiting only; the job-wide abort comes from
 * the hooks that parallel/ installs. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fail.h"

static fail_hooks installed_hooks;

void fail_install_hooks(const fail_hooks *hooks) { installed_hooks = *hooks; }

static int current_rank(void) { return installed_hooks.rank ? installed_hooks.rank() : -1; }

/* the rest of an error line after its prefix: the message, a newline, flushed */
static void print_message(const char *fmt, va_list args) {
  vfprintf(stderr, fmt, args);
  fputc('\n', stderr);
  fflush(stderr);
}

/* stdout flushed, then the installed hook (NULL: none) ends the job, or exit */
static _Noreturn void leave(int exit_status, void (*end_job)(int exit_status)) {
  fflush(stdout);
  if (end_job) end_job(exit_status);
  exit(exit_status);
}

_Noreturn void fail_collective(int exit_status, const char *fmt, ...) {
  if (current_rank() <= 0) {
    va_list args;
    va_start(args, fmt);
    fputs("tessera: error: ", stderr);
    print_message(fmt, args);
    va_end(args);
  }
  leave(exit_status, installed_hooks.exit_collectively);
}

_Noreturn void fail_local_at(int exit_status, const char *file, int line, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  int rank = current_rank();
  if (rank >= 0)
    fprintf(stderr, "tessera: rank %d: %s:%d: ", rank, file, line);
  else
    fprintf(stderr, "tessera: %s:%d: ", file, line);
  print_message(fmt, args);
  va_end(args);
  leave(exit_status, installed_hooks.abort_job);
}

void *xmalloc_at(size_t n_bytes, const char *what, const char *file, int line) {
  void *p = malloc(n_bytes ? n_bytes : 1);
  if (!p)
    fail_local_at(EXIT_USER_ERROR, file, line, "out of memory allocating %.1f MiB for %s",
                  (double)n_bytes / (1 << 20), what);
  return p;
}

void *xcalloc_at(size_t n_elems, size_t elem_bytes, const char *what, const char *file, int line) {
  void *p = calloc(n_elems ? n_elems : 1, elem_bytes ? elem_bytes : 1);
  if (!p)
    fail_local_at(EXIT_USER_ERROR, file, line, "out of memory allocating %.1f MiB for %s",
                  (double)n_elems * (double)elem_bytes / (1 << 20), what);
  return p;
}
