/* machine_profile — reading a machine's rates from JSON (machine_profile.h). */
#include "machine_profile.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fail.h"

#define PROFILE_FORMAT "tessera machine profile 1"

typedef struct reader {
  const char *path;
  char *err;
  size_t err_bytes;
} reader;

static int refuse(const reader *r, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(r->err, r->err_bytes, "machine profile %s: %s", r->path, what);
  return -1;
}

/* A rate: {"value": V, "source": S} or {"peak": P, "fraction": f, "source": S}.
 * The source is required: a number nobody can trace is refused. */
static int quantity(const reader *r, json_t *parent, const char *where, const char *key, double *out) {
  json_t *q = json_object_get(parent, key);
  if (!q) return refuse(r, "'%s%s' is missing", where, key);
  if (!json_is_object(q))
    return refuse(r, "'%s%s' must be an object {\"value\": ..., \"source\": ...} or {\"peak\": ..., "
                     "\"fraction\": ..., \"source\": ...}", where, key);
  json_t *source = json_object_get(q, "source");
  if (!json_is_string(source) || json_string_length(source) == 0)
    return refuse(r, "'%s%s' names no source (a \"source\" string: datasheet, paper or measurement)", where, key);
  json_t *value = json_object_get(q, "value"), *peak = json_object_get(q, "peak"),
         *fraction = json_object_get(q, "fraction");
  double v;
  if (value) {
    if (!json_is_number(value)) return refuse(r, "'%s%s.value' must be a number", where, key);
    v = json_number_value(value);
  } else if (peak && fraction) {
    if (!json_is_number(peak) || !json_is_number(fraction))
      return refuse(r, "'%s%s' peak and fraction must be numbers", where, key);
    const double f = json_number_value(fraction);
    if (!(f > 0 && f <= 1)) return refuse(r, "'%s%s.fraction' = %g is not in (0, 1]", where, key, f);
    v = json_number_value(peak) * f;
  } else {
    return refuse(r, "'%s%s' has neither \"value\" nor \"peak\" and \"fraction\"", where, key);
  }
  if (!(isfinite(v) && v > 0)) return refuse(r, "'%s%s' = %g must be a positive number", where, key, v);
  *out = v;
  return 0;
}

static int whole_number(const reader *r, json_t *parent, const char *key, int min, int *out) {
  json_t *v = json_object_get(parent, key);
  if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > 1000000)
    return refuse(r, "'%s' must be a whole number >= %d", key, min);
  *out = (int)json_integer_value(v);
  return 0;
}

static int read_gemm(const reader *r, json_t *root, machine_profile *p) {
  json_t *gemm = json_object_get(root, "gemm");
  if (!json_is_array(gemm) || json_array_size(gemm) == 0)
    return refuse(r, "'gemm' must be a non-empty array of {\"min_dim\": N, \"flops\": ...}");
  if (json_array_size(gemm) > PROFILE_MAX_GEMM_POINTS)
    return refuse(r, "'gemm' has %zu points; at most %d", json_array_size(gemm), PROFILE_MAX_GEMM_POINTS);
  size_t i;
  json_t *point;
  json_array_foreach(gemm, i, point) {
    json_t *dim = json_object_get(point, "min_dim");
    if (!json_is_object(point) || !json_is_integer(dim) || json_integer_value(dim) < 1)
      return refuse(r, "'gemm[%zu].min_dim' must be a whole number >= 1", i);
    p->gemm_min_dim[i] = (double)json_integer_value(dim);
    if (i > 0 && p->gemm_min_dim[i] <= p->gemm_min_dim[i - 1])
      return refuse(r, "'gemm' points must be sorted by min_dim, increasing (point %zu)", i);
    char where[32];
    snprintf(where, sizeof where, "gemm[%zu].", i);
    if (quantity(r, point, where, "flops", &p->gemm_flops[i])) return -1;
  }
  p->n_gemm = (int)json_array_size(gemm);
  return 0;
}

static int read_link(const reader *r, json_t *links, const char *name, profile_link *out, int *nics) {
  json_t *link = json_object_get(links, name);
  if (!json_is_object(link)) return refuse(r, "'links.%s' is missing", name);
  char where[48];
  snprintf(where, sizeof where, "links.%s.", name);
  if (quantity(r, link, where, "alpha_s", &out->alpha_s) || quantity(r, link, where, "bandwidth", &out->bandwidth))
    return -1;
  if (nics) {
    json_t *n = json_object_get(link, "nics");
    if (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > 1024)
      return refuse(r, "'links.%s.nics' must be a whole number >= 1", name);
    *nics = (int)json_integer_value(n);
  }
  return 0;
}

static int read_profile(const reader *r, json_t *root, machine_profile *p) {
  json_t *format = json_object_get(root, "format"), *name = json_object_get(root, "name"),
         *dtype = json_object_get(root, "dtype");
  if (!json_is_string(format) || strcmp(json_string_value(format), PROFILE_FORMAT) != 0)
    return refuse(r, "'format' must be \"%s\"", PROFILE_FORMAT);
  if (!json_is_string(name)) return refuse(r, "'name' must be a string");
  if (!json_is_string(dtype) || (strcmp(json_string_value(dtype), "bf16") && strcmp(json_string_value(dtype), "fp32")))
    return refuse(r, "'dtype' must be \"bf16\" or \"fp32\"");
  snprintf(p->name, sizeof p->name, "%s", json_string_value(name));
  snprintf(p->dtype, sizeof p->dtype, "%s", json_string_value(dtype));
  if (whole_number(r, root, "gpus_per_node", 1, &p->gpus_per_node)) return -1;
  p->cores_per_node = 0;
  if (json_object_get(root, "cores_per_node") && whole_number(r, root, "cores_per_node", 1, &p->cores_per_node))
    return -1;
  if (quantity(r, root, "", "peak_flops", &p->peak_flops) || quantity(r, root, "", "memory_bytes", &p->memory_bytes))
    return -1;
  if (read_gemm(r, root, p)) return -1;
  json_t *kernels = json_object_get(root, "kernels");
  if (!json_is_object(kernels)) return refuse(r, "'kernels' is missing");
  if (quantity(r, kernels, "kernels.", "attention_flops", &p->attention_flops) ||
      quantity(r, kernels, "kernels.", "linear_attention_flops", &p->linear_attention_flops) ||
      quantity(r, kernels, "kernels.", "elementwise_bandwidth", &p->elementwise_bandwidth))
    return -1;
  json_t *links = json_object_get(root, "links");
  if (!json_is_object(links)) return refuse(r, "'links' is missing");
  if (json_object_get(links, "host_staging") && read_link(r, links, "host_staging", &p->host_staging, NULL)) return -1;
  return read_link(r, links, "intra_node", &p->intra_node, NULL) ||
                 read_link(r, links, "inter_node", &p->inter_node, &p->nics_per_node)
             ? -1
             : 0;
}

machine_profile *machine_profile_load(const char *path, char *err, size_t err_bytes) {
  reader r = {path, err, err_bytes};
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    if (jerr.line < 1) /* jansson: the file could not be opened or read */
      refuse(&r, "cannot read it (%s); give a profile file or a shipped name such as a100-80gb", jerr.text);
    else
      refuse(&r, "not JSON: %s at line %d", jerr.text, jerr.line);
    return NULL;
  }
  machine_profile *p = xcalloc(1, sizeof *p, "machine profile");
  int bad = json_is_object(root) ? read_profile(&r, root, p) : refuse(&r, "the top level must be an object");
  json_decref(root);
  if (bad) {
    free(p);
    return NULL;
  }
  return p;
}

void machine_profile_free(machine_profile *p) { free(p); }

double machine_profile_gemm_rate(const machine_profile *p, double min_dim) {
  if (min_dim <= p->gemm_min_dim[0]) return p->gemm_flops[0];
  for (int i = 1; i < p->n_gemm; i++)
    if (min_dim <= p->gemm_min_dim[i]) { /* between two measured shapes: log-linear in the dimension */
      const double t = log(min_dim / p->gemm_min_dim[i - 1]) / log(p->gemm_min_dim[i] / p->gemm_min_dim[i - 1]);
      return p->gemm_flops[i - 1] * pow(p->gemm_flops[i] / p->gemm_flops[i - 1], t);
    }
  return p->gemm_flops[p->n_gemm - 1];
}

double machine_profile_inter_bandwidth_per_rank(const machine_profile *p) {
  return p->inter_node.bandwidth * p->nics_per_node / p->gpus_per_node;
}

/* A shipped profile beside the running binary: tessera run from its build
 * folder (not installed) finds the tree's profiles/ there. */
static bool profile_beside_binary(const char *name, char *out, size_t out_bytes) {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return false;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return false;
  *slash = '\0';
  const int written = snprintf(out, out_bytes, "%s/profiles/%s.json", exe, name);
  return written > 0 && (size_t)written < out_bytes && access(out, R_OK) == 0;
}

void machine_profile_resolve(const char *name, char *out, size_t out_bytes) {
  const size_t n = strlen(name);
  if (strchr(name, '/') || (n > 5 && strcmp(name + n - 5, ".json") == 0))
    snprintf(out, out_bytes, "%s", name);
  else if (!profile_beside_binary(name, out, out_bytes))
    snprintf(out, out_bytes, "%s/profiles/%s.json", TESSERA_DATADIR, name);
}
