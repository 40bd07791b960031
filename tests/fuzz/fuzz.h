/* fuzz — what the fuzz harnesses of tessera's readers share.
 *
 * Each reader of outside bytes (data files, INI, safetensors, llm.c model
 * files, tokenizer files, checkpoints) has one harness, fuzz_<reader>.c: a
 * function that feeds it one input and returns 0 when the reader either
 * accepted the input or refused it with its error (the contract of
 * doc/design.md, "What each reader guarantees"). Anything else is a finding:
 * a sanitizer report, a crash, a hang, or an assertion of the harness
 * (FUZZ_ASSERT: a property the reader promises, such as a token round trip).
 *
 * The same functions are driven two ways:
 *   - by libFuzzer (jobs/fuzz builds each file with -DTESSERA_LIBFUZZER and
 *     clang -fsanitize=fuzzer,address,undefined: FUZZ_ENTRY then defines
 *     LLVMFuzzerTestOneInput);
 *   - by tests/fuzz/regression_main.c in `make check`, over every file of
 *     the committed corpus tests/fuzz/corpus/<reader>/ (seeds and the inputs
 *     of every finding fixed), with the ordinary compiler.
 */
#ifndef TESSERA_FUZZ_H
#define TESSERA_FUZZ_H

#include <stddef.h>
#include <stdint.h>

typedef int (*fuzz_harness)(const uint8_t *data, size_t size);

int fuzz_dataset(const uint8_t *data, size_t size);
int fuzz_config(const uint8_t *data, size_t size);
int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_llmc(const uint8_t *data, size_t size);
int fuzz_tokenizer(const uint8_t *data, size_t size);
int fuzz_checkpoint(const uint8_t *data, size_t size);
int fuzz_task(const uint8_t *data, size_t size);

/* Runs harness on one input with tessera's fail hooks redirected here: a
 * reader that ends the job through fail_collective/fail_local (kernels/fail.h)
 * comes back to this call instead of exiting. Status 1 or 2 (a user or I/O
 * error, with its one message printed) is a clean refusal: returns 0. Status
 * 3 (EXIT_INTERNAL_ERROR: an ENSURE broke) is a finding: aborts. */
int fuzz_run(fuzz_harness harness, const uint8_t *data, size_t size);

/* A private folder for the files of path-based readers: under
 * $TESSERA_FUZZ_SCRATCH when set (jobs/fuzz: a folder it removes, even after
 * a crash skipped the atexit), else /dev/shm (memory, no disk I/O per
 * input), else $TMPDIR or /tmp; removed at exit. */
const char *fuzz_scratch_dir(void);
/* Writes bytes into scratch_dir/name (truncating); the full path into path.
 * Aborts when the file cannot be written (the harness, not the reader,
 * failed). */
void fuzz_write_file(const char *name, const void *bytes, size_t n_bytes, char *path, size_t path_bytes);

/* A reader refused the input with the message err: a finding when err is
 * empty (a refusal must say why); printed when fuzz_verbose is set (the
 * regression driver sets it, libFuzzer runs stay quiet). */
extern int fuzz_verbose;
void fuzz_refused(const char *err);

/* A finding: prints the property and aborts (a crash for libFuzzer, a
 * failure for the regression driver). */
#define FUZZ_ASSERT(cond, ...)                                        \
  do {                                                                \
    if (!(cond)) fuzz_finding(__FILE__, __LINE__, __VA_ARGS__);       \
  } while (0)
_Noreturn void fuzz_finding(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Consumes an input piece by piece (structure-aware harnesses): past the
 * end every read gives zeros. */
typedef struct fuzz_input {
  const uint8_t *data;
  size_t size, at;
} fuzz_input;
uint8_t fuzz_u8(fuzz_input *in);
uint32_t fuzz_u32(fuzz_input *in);
uint64_t fuzz_u64(fuzz_input *in);
/* The rest of the input (may be empty). */
const uint8_t *fuzz_rest(fuzz_input *in, size_t *n_bytes);

#ifdef TESSERA_LIBFUZZER
#define FUZZ_ENTRY(harness)                                                 \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);             \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {            \
    return fuzz_run(harness, data, size);                                   \
  }
#else
#define FUZZ_ENTRY(harness)
#endif

#endif
