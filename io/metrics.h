/* metrics — the machine-readable record of a run: one JSON object per line.
 *
 * Only rank 0 writes (the numbers it writes are already reduced over ranks).
 * A line is built field by field and written whole with a flush, so a job
 * killed mid-run leaves a file whose every line parses. The keys a training
 * step carries are fixed by DESIGN.md: step, loss, lr, grad_norm,
 * tokens_per_s, mfu (then whatever else the trainer adds).
 */
#ifndef TESSERA_METRICS_H
#define TESSERA_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct metrics {
  FILE *file;  /* NULL: this rank does not write */
  char line[8192];
  size_t used;
} metrics;

/* Opens (truncating, or appending when `append`) path. Returns 0, or -1 with
 * a message in err. A NULL or empty path makes a metrics object that writes nothing. */
int metrics_open(metrics *mx, const char *path, int append, char *err, size_t err_bytes);
void metrics_close(metrics *mx);

void metrics_begin(metrics *mx);
void metrics_int(metrics *mx, const char *key, int64_t value);
void metrics_num(metrics *mx, const char *key, double value);
void metrics_str(metrics *mx, const char *key, const char *value);
/* "key":[v0,v1,...] from values[0], values[stride], ... (n of them) */
void metrics_int_array(metrics *mx, const char *key, const int64_t *values, size_t n, size_t stride);
/* Writes the line and flushes. */
void metrics_end(metrics *mx);

#endif
