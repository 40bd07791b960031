/* metrics — see metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "fail.h"

/* Creates the folders above `path` that are missing (the default file is
 * runs/metrics.jsonl, and runs/ need not exist yet). */
static int make_parent_folders(const char *path, char *err, size_t err_bytes) {
  char folder[4096];
  if (snprintf(folder, sizeof folder, "%s", path) >= (int)sizeof folder) {
    snprintf(err, err_bytes, "metrics file path too long: '%s'", path);
    return -1;
  }
  for (char *slash = strchr(folder + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    if (mkdir(folder, 0755) != 0 && errno != EEXIST) {
      snprintf(err, err_bytes, "cannot create the folder '%s' of the metrics file '%s': %s", folder, path,
               strerror(errno));
      return -1;
    }
    *slash = '/';
  }
  return 0;
}

int metrics_open(metrics *mx, const char *path, int append, char *err, size_t err_bytes) {
  memset(mx, 0, sizeof *mx);
  if (!path || !path[0]) return 0;
  if (make_parent_folders(path, err, err_bytes) != 0) return -1;
  mx->file = fopen(path, append ? "a" : "w");
  if (!mx->file) {
    snprintf(err, err_bytes, "cannot open metrics file '%s': %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

void metrics_close(metrics *mx) {
  if (mx->file && fclose(mx->file) != 0)
    fail_local(EXIT_IO_ERROR, "closing the metrics file failed: %s", strerror(errno));
  mx->file = NULL;
}

static void append(metrics *mx, const char *fmt, const char *key, const char *text) {
  if (!mx->file) return;
  int n = snprintf(mx->line + mx->used, sizeof mx->line - mx->used, fmt,
                   mx->used > 1 ? "," : "", key, text);
  ENSURE(n > 0 && (size_t)n < sizeof mx->line - mx->used, "metrics line too long at key %s", key);
  mx->used += (size_t)n;
}

void metrics_begin(metrics *mx) {
  mx->line[0] = '{';
  mx->line[1] = '\0';
  mx->used = 1;
}

void metrics_int(metrics *mx, const char *key, int64_t value) {
  char text[32];
  snprintf(text, sizeof text, "%lld", (long long)value);
  append(mx, "%s\"%s\":%s", key, text);
}

void metrics_num(metrics *mx, const char *key, double value) {
  char text[40];
  if (isfinite(value)) snprintf(text, sizeof text, "%.9g", value);
  else snprintf(text, sizeof text, "null"); /* JSON has no NaN */
  append(mx, "%s\"%s\":%s", key, text);
}

void metrics_str(metrics *mx, const char *key, const char *value) {
  char escaped[1024];
  size_t out = 0;
  for (const char *c = value; *c && out + 7 < sizeof escaped; c++) {
    unsigned char ch = (unsigned char)*c;
    if (ch == '"' || ch == '\\') escaped[out++] = '\\', escaped[out++] = (char)ch;
    else if (ch < 0x20) out += (size_t)snprintf(escaped + out, sizeof escaped - out, "\\u%04x", ch);
    else escaped[out++] = (char)ch;
  }
  escaped[out] = '\0';
  append(mx, "%s\"%s\":\"%s\"", key, escaped);
}

void metrics_int_array(metrics *mx, const char *key, const int64_t *values, size_t n, size_t stride) {
  char text[PATH_BYTES];
  size_t used = 0;
  text[used++] = '[';
  for (size_t i = 0; i < n; i++) {
    const int written = snprintf(text + used, sizeof text - used, "%s%lld", i ? "," : "", (long long)values[i * stride]);
    ENSURE(written > 0 && (size_t)written < sizeof text - used - 1, "metrics array too long at key %s", key);
    used += (size_t)written;
  }
  text[used++] = ']';
  text[used] = '\0';
  append(mx, "%s\"%s\":%s", key, text);
}

void metrics_end(metrics *mx) {
  if (!mx->file) return;
  if (fprintf(mx->file, "%s}\n", mx->line) < 0 || fflush(mx->file) != 0)
    fail_local(EXIT_IO_ERROR, "writing the metrics file failed: %s", strerror(errno));
}
