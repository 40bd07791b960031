/* task_file — see task_file.h. */
#include "task_file.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"

static char *copy_text(const char *text) {
  const size_t n = strlen(text) + 1;
  char *copy = xmalloc(n, "task text");
  memcpy(copy, text, n);
  return copy;
}

static void example_free(task_example *e) {
  free(e->ctx);
  for (int k = 0; k < e->n_endings; k++) free(e->endings[k]);
  free(e->endings);
  memset(e, 0, sizeof *e);
}

/* The example of one JSON object, or 1 with what is wrong in err. */
static int example_from_json(const json_t *object, task_example *e, char *err, size_t err_bytes) {
  if (!json_is_object(object)) return snprintf(err, err_bytes, "not a JSON object"), 1;
  const json_t *ctx = json_object_get(object, "ctx"), *endings = json_object_get(object, "endings"),
               *label = json_object_get(object, "label");
  if (!json_is_string(ctx)) return snprintf(err, err_bytes, "no \"ctx\" string"), 1;
  if (json_string_length(ctx) == 0)
    return snprintf(err, err_bytes, "\"ctx\" is empty: the first ending token would have nothing to follow"), 1;
  if (!json_is_array(endings)) return snprintf(err, err_bytes, "no \"endings\" array"), 1;
  const size_t n = json_array_size(endings);
  if (n == 0) return snprintf(err, err_bytes, "\"endings\" is empty: nothing to choose from"), 1;
  if (n > 1000000) return snprintf(err, err_bytes, "\"endings\" has %zu entries, more than 1000000", n), 1;
  for (size_t k = 0; k < n; k++)
    if (!json_is_string(json_array_get(endings, k)))
      return snprintf(err, err_bytes, "\"endings\"[%zu] is not a string", k), 1;
  if (!json_is_integer(label)) return snprintf(err, err_bytes, "no integer \"label\""), 1;
  const json_int_t right = json_integer_value(label);
  if (right < 0 || right >= (json_int_t)n)
    return snprintf(err, err_bytes, "\"label\" %lld is out of range: %zu endings, so 0..%zu", (long long)right, n,
                    n - 1),
           1;
  e->ctx = copy_text(json_string_value(ctx));
  e->n_endings = (int)n;
  e->endings = xmalloc(n * sizeof *e->endings, "task endings");
  for (size_t k = 0; k < n; k++) e->endings[k] = copy_text(json_string_value(json_array_get(endings, k)));
  e->label = (int)right;
  return 0;
}

static bool blank(const char *text, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n') return false;
  return true;
}

/* One line into the next example of set (grown as needed); 0 or 1 with err. */
static int add_line(task_set *set, int64_t *capacity, const char *text, size_t n, int64_t line, char *err,
                    size_t err_bytes) {
  json_error_t error;
  json_t *object = json_loadb(text, n, JSON_REJECT_DUPLICATES, &error);
  if (!object) return snprintf(err, err_bytes, "not JSON: %s", error.text), 1;
  if (set->n_examples == *capacity) {
    *capacity = *capacity ? 2 * *capacity : 1024;
    task_example *grown = realloc(set->examples, (size_t)*capacity * sizeof *grown);
    if (!grown) fail_local(EXIT_USER_ERROR, "out of memory reading a task file (%lld examples)", (long long)*capacity);
    set->examples = grown;
  }
  task_example *e = &set->examples[set->n_examples];
  memset(e, 0, sizeof *e);
  const int bad = example_from_json(object, e, err, err_bytes);
  json_decref(object);
  if (bad) return 1;
  e->line = line;
  set->n_examples++;
  set->n_candidates += e->n_endings;
  return 0;
}

int task_file_read(const char *path, task_set *set, char *err, size_t err_bytes) {
  memset(set, 0, sizeof *set);
  FILE *file = fopen(path, "r");
  if (!file) {
    const int status = errno == ENOENT ? EXIT_USER_ERROR : EXIT_IO_ERROR;
    snprintf(err, err_bytes, "task file '%s': %s", path, strerror(errno));
    return status;
  }
  char *text = NULL, what[MESSAGE_BYTES];
  size_t text_bytes = 0;
  int64_t capacity = 0, line = 0;
  ssize_t n;
  int status = 0;
  errno = 0;
  while (status == 0 && (n = getline(&text, &text_bytes, file)) >= 0) {
    line++;
    if (blank(text, (size_t)n)) continue;
    if (add_line(set, &capacity, text, (size_t)n, line, what, sizeof what)) {
      snprintf(err, err_bytes, "task file %s:%lld: %s (one JSON object per line with \"ctx\", \"endings\", \"label\")",
               path, (long long)line, what);
      status = EXIT_USER_ERROR;
    }
  }
  if (status == 0 && ferror(file)) {
    snprintf(err, err_bytes, "task file '%s': read error: %s", path, strerror(errno));
    status = EXIT_IO_ERROR;
  }
  free(text);
  fclose(file);
  if (status == 0 && set->n_examples == 0) {
    snprintf(err, err_bytes, "task file '%s' holds no examples", path);
    status = EXIT_USER_ERROR;
  }
  if (status) task_set_free(set);
  return status;
}

void task_set_free(task_set *set) {
  for (int64_t i = 0; i < set->n_examples; i++) example_free(&set->examples[i]);
  free(set->examples);
  memset(set, 0, sizeof *set);
}
