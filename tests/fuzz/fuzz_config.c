/* fuzz_config — the INI parser (src/config): config_load_file of any bytes,
 * then the cross-key checks and the model's shape of a file it accepts.
 * Property: what config_print writes of an accepted file is read back to the
 * same settings (printed again, the same text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

/* config_print's text of cfg (malloc'd) */
static char *printed(const config *cfg, size_t *n_bytes) {
  char *text = NULL;
  FILE *out = open_memstream(&text, n_bytes);
  FUZZ_ASSERT(out, "open_memstream failed");
  config_print(cfg, out);
  FUZZ_ASSERT(fclose(out) == 0, "writing the printed config failed");
  return text;
}

static void check_print_round_trip(const config *cfg) {
  size_t n_first, n_second;
  char *first = printed(cfg, &n_first);
  char path[512], err[MESSAGE_BYTES] = "";
  fuzz_write_file("printed.ini", first, n_first, path, sizeof path);
  config *again = malloc(sizeof *again);
  FUZZ_ASSERT(again, "out of memory");
  config_set_defaults(again);
  const int status = config_load_file(again, path, err, sizeof err);
  FUZZ_ASSERT(status == 0, "the printed config is refused: %s", err);
  char *second = printed(again, &n_second);
  FUZZ_ASSERT(n_first == n_second && memcmp(first, second, n_first) == 0,
              "the printed config reads back to other settings:\n%s\n---\n%s", first, second);
  free(first);
  free(second);
  free(again);
}

int fuzz_config(const uint8_t *data, size_t size) {
  char path[512], err[MESSAGE_BYTES] = "";
  fuzz_write_file("fuzz.ini", data, size, path, sizeof path);
  config *cfg = malloc(sizeof *cfg);
  FUZZ_ASSERT(cfg, "out of memory");
  config_set_defaults(cfg);
  if (config_load_file(cfg, path, err, sizeof err) == 0) {
    if (config_validate(cfg, err, sizeof err) == 0) {
      const model_shape shape = config_model_shape(cfg);
      (void)shape;
    }
    check_print_round_trip(cfg);
  } else {
    fuzz_refused(err);
  }
  free(cfg);
  return 0;
}

FUZZ_ENTRY(fuzz_config)
