/* offload_file — see offload_file.h. */
#include "offload_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"
#include "file_range.h"
#include "memory_tally.h"

#define HEADER_BYTES OFFLOAD_FILE_ALIGN
#define QUEUE_LEN 8

typedef struct io_request {
  bool write;
  size_t chunk;
  int slot;
} io_request;

struct offload_file {
  char path[JOINED_PATH_BYTES];
  int fd, rank;
  bool direct;
  size_t n_elems, chunk_elems, n_chunks, chunk_bytes; /* chunk_bytes: all three states */
  float *slots[OFFLOAD_FILE_SLOTS];
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  io_request queue[QUEUE_LEN];
  uint64_t queued, done; /* tickets: requests queued and finished so far */
  bool closing;
  char error[MESSAGE_BYTES]; /* the first failure, "" while none */
};

#define MAGIC "TESSERA-OFFLOAD-STATE "

bool offload_file_is_one(const char *path) {
  char head[sizeof MAGIC] = "";
  FILE *fp = fopen(path, "rb");
  if (!fp) return false;
  const size_t n = fread(head, 1, sizeof MAGIC - 1, fp);
  fclose(fp); /* read only: nothing to lose */
  return n == sizeof MAGIC - 1 && memcmp(head, MAGIC, n) == 0;
}

void offload_file_name(const char *dir, int rank, char *out, size_t out_bytes) {
  snprintf(out, out_bytes, "%s/tessera-offload-rank%05d.state", dir, rank);
}

static off_t chunk_offset(const offload_file *f, size_t k) { return (off_t)(HEADER_BYTES + k * f->chunk_bytes); }

/* A whole chunk or header (io/file_range: EINTR and short counts retried); 0 or errno. */
static int transfer(int fd, bool write, char *data, size_t bytes, off_t offset) {
  const int status = write ? file_write_exact(fd, data, bytes, (uint64_t)offset)
                           : file_read_exact(fd, data, bytes, (uint64_t)offset);
  return status ? errno : 0;
}

static void *io_thread(void *arg) {
  offload_file *f = arg;
  sigset_t all; /* signals are the main thread's */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&f->lock);
  for (;;) {
    while (f->done == f->queued && !f->closing) pthread_cond_wait(&f->changed, &f->lock);
    if (f->done == f->queued) break;
    const io_request rq = f->queue[f->done % QUEUE_LEN];
    const bool failed_before = f->error[0] != 0;
    pthread_mutex_unlock(&f->lock);
    const int status = failed_before ? 0 : transfer(f->fd, rq.write, (char *)f->slots[rq.slot], f->chunk_bytes,
                                                    chunk_offset(f, rq.chunk));
    pthread_mutex_lock(&f->lock);
    if (status && !f->error[0])
      snprintf(f->error, sizeof f->error, "rank %d: offloaded optimizer state '%s': %s of chunk %zu failed: %s",
               f->rank, f->path, rq.write ? "write" : "read", rq.chunk, strerror(status));
    f->done++;
    pthread_cond_broadcast(&f->changed);
  }
  pthread_mutex_unlock(&f->lock);
  return NULL;
}

static uint64_t enqueue(offload_file *f, bool write, size_t k, int slot) {
  ENSURE(k < f->n_chunks && slot >= 0 && slot < OFFLOAD_FILE_SLOTS, "offload chunk %zu slot %d", k, slot);
  pthread_mutex_lock(&f->lock);
  while (f->queued - f->done == QUEUE_LEN) pthread_cond_wait(&f->changed, &f->lock);
  f->queue[f->queued % QUEUE_LEN] = (io_request){.write = write, .chunk = k, .slot = slot};
  const uint64_t ticket = ++f->queued;
  pthread_cond_broadcast(&f->changed);
  pthread_mutex_unlock(&f->lock);
  return ticket;
}

uint64_t offload_file_read(offload_file *f, size_t k, int slot) { return enqueue(f, false, k, slot); }
uint64_t offload_file_write(offload_file *f, size_t k, int slot) { return enqueue(f, true, k, slot); }

void offload_file_wait(offload_file *f, uint64_t ticket) {
  pthread_mutex_lock(&f->lock);
  while (f->done < ticket) pthread_cond_wait(&f->changed, &f->lock);
  char error[MESSAGE_BYTES];
  snprintf(error, sizeof error, "%s", f->error);
  pthread_mutex_unlock(&f->lock);
  if (error[0]) fail_local(EXIT_IO_ERROR, "%s", error);
}

void offload_file_drain(offload_file *f) {
  pthread_mutex_lock(&f->lock);
  const uint64_t last = f->queued;
  pthread_mutex_unlock(&f->lock);
  offload_file_wait(f, last);
}

/* The folder: it exists and is one. 0, or EXIT_USER_ERROR with err. */
static int check_dir(const char *dir, char *err, size_t err_bytes) {
  struct stat st;
  if (stat(dir, &st) != 0) {
    snprintf(err, err_bytes, "--offload-optimizer nvme:%s: %s: create the folder or name another", dir,
             strerror(errno));
    return EXIT_USER_ERROR;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(err, err_bytes, "--offload-optimizer nvme:%s: not a folder: name a folder for the per-rank files", dir);
    return EXIT_USER_ERROR;
  }
  return 0;
}

/* Opens path fresh: O_DIRECT when the file system takes it. */
static int open_fresh(offload_file *f) {
  /* a file of the same name held (flock) by a live run is refused; one a
   * killed run left is replaced */
  const int old = open(f->path, O_RDONLY);
  if (old >= 0) {
    const bool held = flock(old, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(old); /* read only, and its lock (if we got it) goes with it */
    if (held) {
      errno = EBUSY;
      return -1;
    }
  }
  if (unlink(f->path) != 0 && errno != ENOENT) return -1;
#ifdef O_DIRECT
  f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_DIRECT, 0600);
  if (f->fd >= 0) {
    f->direct = true;
    return 0;
  }
  if (errno != EINVAL) return -1;
#endif
  f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL, 0600); /* tmpfs and others refuse O_DIRECT */
  return f->fd >= 0 ? 0 : -1;
}

/* Ours while the run lives (open_fresh's test); 0 or errno. */
static int lock_file(offload_file *f) { return flock(f->fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno; }

/* The header (one aligned block of text) and the whole file's blocks. 0 or errno. */
static int write_header(offload_file *f, const char *run_label, int world) {
  int status = posix_fallocate(f->fd, 0, chunk_offset(f, f->n_chunks));
  /* a file system without fallocate (glibc's emulation writes single bytes,
   * which O_DIRECT refuses): the size without the reservation */
  if ((status == EINVAL || status == EOPNOTSUPP) && ftruncate(f->fd, chunk_offset(f, f->n_chunks)) != 0) return errno;
  if (status && status != EINVAL && status != EOPNOTSUPP) return status;
  char *header = (char *)f->slots[0]; /* aligned, free until the first chunk */
  memset(header, 0, HEADER_BYTES);
  snprintf(header, HEADER_BYTES,
           MAGIC "1\n"
           "NOT A CHECKPOINT: the working copy of one rank's optimizer state (fp32 master weights, Adam m and v)\n"
           "while a run trains with --offload-optimizer nvme; deleted at the run's end; a killed run leaves it\n"
           "behind and the next run in this folder replaces it. Checkpoints are the .h5 files of --save-dir.\n"
           "run: %s\nrank: %d of %d\nelements: %zu\nchunk_elements: %zu\nchunks: %zu\n"
           "layout: after this %d-byte header, each chunk's master, m, v (float32, little-endian), %zu bytes a chunk\n",
           run_label, f->rank, world, f->n_elems, f->chunk_elems, f->n_chunks, HEADER_BYTES, f->chunk_bytes);
  return transfer(f->fd, true, header, HEADER_BYTES, 0);
}

static void free_parts(offload_file *f) {
  for (int s = 0; s < OFFLOAD_FILE_SLOTS; s++)
    if (f->slots[s]) {
      memory_tally_remove(f->slots[s]);
      free(f->slots[s]);
    }
  free(f);
}

bool offload_file_buffers(buffer_sizer *s, size_t chunk_elems, float *slots[OFFLOAD_FILE_SLOTS]) {
  for (int k = 0; k < OFFLOAD_FILE_SLOTS; k++) {
    slots[k] = sizer_host_bytes(s, 3 * chunk_elems * sizeof(float), OFFLOAD_FILE_ALIGN, MEMORY_OFFLOADED);
    if (s->allocate && !slots[k]) return false;
  }
  return true;
}

offload_file *offload_file_create(const char *dir, int rank, int world, size_t n_elems, size_t chunk_elems,
                                  const char *run_label, int *status, char *err, size_t err_bytes) {
  ENSURE(chunk_elems > 0 && chunk_elems % OFFLOAD_FILE_CHUNK_QUANTUM == 0, "offload chunk of %zu elements",
         chunk_elems);
  *status = check_dir(dir, err, err_bytes);
  if (*status) return NULL;
  offload_file *f = xcalloc(1, sizeof *f, "offload file");
  offload_file_name(dir, rank, f->path, sizeof f->path);
  f->rank = rank;
  f->fd = -1;
  f->n_elems = n_elems;
  f->chunk_elems = chunk_elems;
  f->n_chunks = (n_elems + chunk_elems - 1) / chunk_elems;
  f->chunk_bytes = 3 * chunk_elems * sizeof(float);
  buffer_sizer allocating = buffer_sizer_allocating(NULL); /* host buffers only: no backend */
  if (!offload_file_buffers(&allocating, chunk_elems, f->slots)) {
    *status = EXIT_USER_ERROR;
    snprintf(err, err_bytes, "rank %d: out of memory for three offload chunks of %.1f MiB: lower offload_chunk_mb",
             rank, f->chunk_bytes / 1048576.0);
    free_parts(f);
    return NULL;
  }
  int e = open_fresh(f) ? errno : lock_file(f);
  if (!e) e = write_header(f, run_label, world);
  if (e) {
    *status = EXIT_USER_ERROR;
    snprintf(err, err_bytes, "--offload-optimizer nvme:%s: rank %d cannot create '%s' (%.1f MiB): %s%s", dir, rank,
             f->path, (double)chunk_offset(f, f->n_chunks) / 1048576.0, strerror(e),
             e == ENOSPC  ? ": free space there or name another folder"
             : e == EBUSY ? " (another run is using it): give each run its own folder"
                          : ": name a writable folder");
    if (f->fd >= 0) close(f->fd), unlink(f->path);
    free_parts(f);
    return NULL;
  }
  ENSURE(pthread_mutex_init(&f->lock, NULL) == 0 && pthread_cond_init(&f->changed, NULL) == 0 &&
             pthread_create(&f->thread, NULL, io_thread, f) == 0,
         "rank %d: cannot start the offload I/O thread", rank);
  return f;
}

size_t offload_file_n_chunks(const offload_file *f) { return f->n_chunks; }
size_t offload_file_chunk_elems(const offload_file *f) { return f->chunk_elems; }
size_t offload_file_chunk_len(const offload_file *f, size_t k) {
  const size_t start = k * f->chunk_elems;
  return f->n_elems - start < f->chunk_elems ? f->n_elems - start : f->chunk_elems;
}
float *offload_file_slot(const offload_file *f, int slot) { return f->slots[slot]; }
size_t offload_file_ram_bytes(const offload_file *f) { return OFFLOAD_FILE_SLOTS * f->chunk_bytes; }
size_t offload_file_disk_bytes(const offload_file *f) { return (size_t)chunk_offset(f, f->n_chunks); }
bool offload_file_direct(const offload_file *f) { return f->direct; }
const char *offload_file_path(const offload_file *f) { return f->path; }

void offload_file_remove(offload_file *f) {
  offload_file_drain(f);
  pthread_mutex_lock(&f->lock);
  f->closing = true;
  pthread_cond_broadcast(&f->changed);
  pthread_mutex_unlock(&f->lock);
  pthread_join(f->thread, NULL);
  if (close(f->fd) != 0) fail_local(EXIT_IO_ERROR, "rank %d: closing '%s': %s", f->rank, f->path, strerror(errno));
  if (unlink(f->path) != 0 && errno != ENOENT) /* ENOENT: removed by hand meanwhile, nothing left to do */
    fail_local(EXIT_IO_ERROR, "rank %d: removing the offload file '%s': %s", f->rank, f->path, strerror(errno));
  pthread_mutex_destroy(&f->lock);
  pthread_cond_destroy(&f->changed);
  free_parts(f);
}
