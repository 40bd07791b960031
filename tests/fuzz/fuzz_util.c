/* fuzz_util — see fuzz.h. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"
#include "fuzz.h"

_Noreturn void fuzz_finding(const char *file, int line, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fprintf(stderr, "fuzz finding at %s:%d: ", file, line);
  vfprintf(stderr, fmt, args);
  fputc('\n', stderr);
  va_end(args);
  abort();
}

int fuzz_verbose;

void fuzz_refused(const char *err) {
  FUZZ_ASSERT(err[0] != '\0', "a refusal without a message");
  if (fuzz_verbose) fprintf(stderr, "   refused: %s\n", err);
}

/* fail.c's hooks: the job's end becomes a jump back into fuzz_run. A
 * longjmp out of the reader may leak what it held; only fail_* paths take
 * it, and they end a real run anyway. */
static jmp_buf fail_return;
static int in_harness;

static int no_rank(void) { return -1; }
static _Noreturn void jump_back(int exit_status) {
  if (!in_harness) _Exit(exit_status);
  longjmp(fail_return, exit_status ? exit_status : EXIT_INTERNAL_ERROR);
}
static void jump_back_collectively(int exit_status) { jump_back(exit_status); }

int fuzz_run(fuzz_harness harness, const uint8_t *data, size_t size) {
  static const fail_hooks hooks = {no_rank, jump_back, jump_back_collectively};
  fail_install_hooks(&hooks);
  volatile int status = setjmp(fail_return);
  if (status == 0) {
    in_harness = 1;
    harness(data, size);
  }
  in_harness = 0;
  if (status == EXIT_USER_ERROR || status == EXIT_IO_ERROR) return 0; /* a clean refusal */
  if (status != 0) fuzz_finding(__FILE__, __LINE__, "the reader ended with exit status %d", status);
  return 0;
}

static char scratch[256];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}
static void remove_scratch(void) {
  if (scratch[0]) nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_scratch_dir(void) {
  if (scratch[0]) return scratch;
  struct stat st;
  const char *base = getenv("TESSERA_FUZZ_SCRATCH");
  if (!base || !base[0])
    base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
               ? "/dev/shm"
               : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  snprintf(scratch, sizeof scratch, "%s/tessera-fuzz.XXXXXX", base);
  if (!mkdtemp(scratch)) {
    fprintf(stderr, "fuzz: cannot create a folder under %s: %s\n", base, strerror(errno));
    abort();
  }
  atexit(remove_scratch);
  return scratch;
}

void fuzz_write_file(const char *name, const void *bytes, size_t n_bytes, char *path, size_t path_bytes) {
  snprintf(path, path_bytes, "%s/%s", fuzz_scratch_dir(), name);
  FILE *f = fopen(path, "wb");
  if (!f || (n_bytes && fwrite(bytes, 1, n_bytes, f) != n_bytes) || fclose(f) != 0) {
    fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
    abort();
  }
}

uint8_t fuzz_u8(fuzz_input *in) { return in->at < in->size ? in->data[in->at++] : 0; }
uint32_t fuzz_u32(fuzz_input *in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= (uint32_t)fuzz_u8(in) << (8 * i);
  return v;
}
uint64_t fuzz_u64(fuzz_input *in) {
  const uint64_t low = fuzz_u32(in);
  return low | (uint64_t)fuzz_u32(in) << 32;
}
const uint8_t *fuzz_rest(fuzz_input *in, size_t *n_bytes) {
  *n_bytes = in->size - in->at;
  const uint8_t *rest = in->data + in->at;
  in->at = in->size;
  return rest;
}
