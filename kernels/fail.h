/* fail — the one error path of tessera.
 *
 * Every layer reports errors through these functions so that a failure prints
 * one line (who, where, what) and the job ends with the exit status that
 * DESIGN.md promises: 1 user error, 2 I/O or data error, 3 internal error.
 *
 * This file sits in the lowest layer (kernels/) so that every other layer may
 * use it, yet it knows nothing of MPI: parallel/ installs two hooks at start-up,
 * one that says which rank we are and one that tears the whole job down
 * (MPI_Abort). Without hooks (unit tests, tools) a failure simply exits.
 *
 * Two flavours of failure:
 *   - fail_collective(): every rank detected the same error (a config key, a
 *     layout, a file header every rank validated). Rank 0 alone prints it and
 *     every rank exits with the same status, so the user sees one message.
 *   - fail_local() and the CHECK macros: one rank alone saw it (a library call
 *     failed). That rank prints with its rank number and aborts the job, so the
 *     others never hang waiting for it.
 */
#ifndef TESSERA_FAIL_H
#define TESSERA_FAIL_H

/* C11's _Noreturn, spelled so that CUDA C++ files can include this header */
#ifdef __cplusplus
#define TESSERA_NORETURN [[noreturn]]
#else
#define TESSERA_NORETURN _Noreturn
#endif

enum exit_status {
  EXIT_OK = 0,
  EXIT_USER_ERROR = 1,    /* config, layout, command line, input that the user can fix */
  EXIT_IO_ERROR = 2,      /* a file could not be read or written, data is corrupt */
  EXIT_INTERNAL_ERROR = 3, /* a library call failed, an invariant broke */
  EXIT_STOPPED = 4         /* stopped by SIGTERM/SIGUSR1 after saving: resubmit with --resume auto */
};

typedef struct fail_hooks {
  int (*rank)(void);                  /* this process's rank in the job, or -1 */
  void (*abort_job)(int exit_status); /* end every rank now; never returns */
  void (*exit_collectively)(int exit_status); /* all ranks agreed: finalize, exit */
} fail_hooks;

void fail_install_hooks(const fail_hooks *hooks);

/* A buffer for an error message that a call writes for its caller to report
 * (the `err, err_bytes` arguments of io/ and src/): room for a path of
 * PATH_MAX (4096 bytes on Linux) and the sentence around it. */
#define ERROR_MESSAGE_BYTES (4096 + 512)

/* Every rank knows the error: rank 0 prints "tessera: error: <message>". */
TESSERA_NORETURN void fail_collective(int exit_status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Only this rank knows: it prints "tessera: rank R: file:line: <message>" and
 * aborts the job. */
TESSERA_NORETURN void fail_local_at(int exit_status, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define fail_local(status, ...) fail_local_at((status), __FILE__, __LINE__, __VA_ARGS__)

/* Out of memory is a user problem (a model too large for the rank): say how much. */
void *xmalloc_at(size_t n_bytes, const char *what, const char *file, int line);
void *xcalloc_at(size_t n_elems, size_t elem_bytes, const char *what, const char *file, int line);
#define xmalloc(n_bytes, what) xmalloc_at((n_bytes), (what), __FILE__, __LINE__)
#define xcalloc(n, sz, what) xcalloc_at((n), (sz), (what), __FILE__, __LINE__)

/* Invariant checks that stay on in release builds: cheap and they save hours. */
#define ENSURE(cond, ...)                                                   \
  do {                                                                      \
    if (!(cond)) fail_local(EXIT_INTERNAL_ERROR, __VA_ARGS__);              \
  } while (0)

#endif
