/* fuzz_task — the multiple-choice task reader of `tessera eval`
 * (io/task_file): task_file_read of any bytes. Properties of an accepted
 * file: at least one example; each has a non-empty context, at least one
 * ending and a label among them; the candidates are counted right. */
#include <string.h>

#include "fail.h"
#include "fuzz.h"
#include "task_file.h"

int fuzz_task(const uint8_t *data, size_t size) {
  char path[512], err[MESSAGE_BYTES] = "";
  fuzz_write_file("task.jsonl", data, size, path, sizeof path);
  task_set set;
  if (task_file_read(path, &set, err, sizeof err) != 0) {
    fuzz_refused(err);
    return 0;
  }
  FUZZ_ASSERT(set.n_examples > 0, "an accepted task file without examples");
  int64_t candidates = 0;
  for (int64_t i = 0; i < set.n_examples; i++) {
    const task_example *e = &set.examples[i];
    FUZZ_ASSERT(e->ctx && e->ctx[0] != '\0', "example %lld: an empty context", (long long)i);
    FUZZ_ASSERT(e->n_endings > 0 && e->label >= 0 && e->label < e->n_endings, "example %lld: label %d of %d endings",
                (long long)i, e->label, e->n_endings);
    for (int k = 0; k < e->n_endings; k++) FUZZ_ASSERT(e->endings[k], "example %lld: ending %d missing", (long long)i, k);
    FUZZ_ASSERT(e->line >= 1, "example %lld: line %lld", (long long)i, (long long)e->line);
    candidates += e->n_endings;
  }
  FUZZ_ASSERT(candidates == set.n_candidates, "%lld candidates counted, %lld present", (long long)set.n_candidates,
              (long long)candidates);
  task_set_free(&set);
  return 0;
}

FUZZ_ENTRY(fuzz_task)
