/* task_file — a multiple-choice task in the HellaSwag format llm.c uses:
 * one JSON object per line,
 *     {"ctx": "A man is sitting on a roof. he", "endings": ["...", ...], "label": 3}
 * where "ctx" is the context, "endings" the candidate continuations (usually
 * four) and "label" the index of the right one. Other keys are ignored.
 * Blank lines are skipped. Parsed with jansson only.
 *
 * Errors are returned, not raised: every rank reads the same file, so the
 * caller reports once for all (fail_collective). A line that is not JSON,
 * lacks a key, has a key of the wrong type, an empty "ctx" or "endings" or a
 * label out of range is one message "FILE:LINE: ..." and EXIT_USER_ERROR; a
 * file that cannot be read EXIT_USER_ERROR (missing) or EXIT_IO_ERROR.
 */
#ifndef TESSERA_TASK_FILE_H
#define TESSERA_TASK_FILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct task_example {
  char *ctx;          /* UTF-8, NUL-terminated */
  char **endings;     /* n_endings of them */
  int n_endings;
  int label;          /* 0 .. n_endings − 1 */
  int64_t line;       /* in the file, from 1 (for messages and --verbose) */
} task_example;

typedef struct task_set {
  task_example *examples;
  int64_t n_examples;
  int64_t n_candidates; /* endings over all examples */
} task_set;

/* 0, or the exit status with one line naming the file (and line) in err. */
int task_file_read(const char *path, task_set *set, char *err, size_t err_bytes);
void task_set_free(task_set *set);

#endif
