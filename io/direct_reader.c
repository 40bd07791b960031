/* direct_reader — see direct_reader.h. */
#include "direct_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK_BYTES ((size_t)4 << 20) /* a multiple of every O_DIRECT alignment */
#define BUFFER_ALIGN 4096

/* a buffer's life: asked for by the caller, read by the thread, then the
 * caller's to copy from (and to hand out again) */
typedef enum slot_state { SLOT_EMPTY, SLOT_WANTED, SLOT_READING, SLOT_READY } slot_state;

struct direct_reader {
  int fd; /* O_DIRECT */
  off_t file_bytes;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  void *buffer[2];
  int64_t block[2];  /* block index wanted, being read or held */
  slot_state state[2];
  uint64_t asked[2]; /* order of the requests: the thread reads the older first */
  uint64_t n_asked;
  size_t length[2];  /* bytes read (short in the file's last block) */
  int error[2];      /* errno of the read, or 0 */
  bool closing;
  bool refused;      /* O_DIRECT turned down at read time */
};

static void *reader_thread(void *arg) {
  direct_reader *r = arg;
  sigset_t all; /* signals are the caller's to handle */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&r->lock);
  for (;;) {
    int i = -1;
    for (int k = 0; k < 2; k++)
      if (r->state[k] == SLOT_WANTED && (i < 0 || r->asked[k] < r->asked[i])) i = k;
    if (i < 0) {
      if (r->closing) break;
      pthread_cond_wait(&r->changed, &r->lock);
      continue;
    }
    r->state[i] = SLOT_READING;
    const off_t at = (off_t)r->block[i] * (off_t)BLOCK_BYTES;
    pthread_mutex_unlock(&r->lock);
    size_t got = 0;
    int error = 0;
    while (got < BLOCK_BYTES) {
      ssize_t done = pread(r->fd, (char *)r->buffer[i] + got, BLOCK_BYTES - got, at + (off_t)got);
      if (done < 0 && errno == EINTR) continue;
      if (done < 0) error = errno;
      if (done <= 0) break; /* an error, or the end of the file */
      got += (size_t)done;
    }
    pthread_mutex_lock(&r->lock);
    r->length[i] = got;
    r->error[i] = error;
    r->state[i] = SLOT_READY;
    pthread_cond_broadcast(&r->changed);
  }
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

direct_reader *direct_reader_open(const char *path) {
#ifndef O_DIRECT
  (void)path;
  return NULL;
#else
  direct_reader *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->fd = open(path, O_RDONLY | O_DIRECT);
  struct stat st;
  bool ok = r->fd >= 0 && fstat(r->fd, &st) == 0;
  if (ok) r->file_bytes = st.st_size;
  for (int i = 0; i < 2 && ok; i++) {
    ok = posix_memalign(&r->buffer[i], BUFFER_ALIGN, BLOCK_BYTES) == 0;
    if (!ok) r->buffer[i] = NULL;
    r->block[i] = -1;
  }
  ok = ok && pthread_mutex_init(&r->lock, NULL) == 0 && pthread_cond_init(&r->changed, NULL) == 0 &&
       pthread_create(&r->thread, NULL, reader_thread, r) == 0;
  if (!ok) {
    if (r->fd >= 0) close(r->fd);
    free(r->buffer[0]);
    free(r->buffer[1]);
    free(r);
    return NULL;
  }
  return r;
#endif
}

/* Asks the thread for block b in slot i; the caller holds the lock. */
static void ask(direct_reader *r, int i, int64_t b) {
  r->block[i] = b;
  r->state[i] = SLOT_WANTED;
  r->asked[i] = r->n_asked++;
  pthread_cond_broadcast(&r->changed);
}

/* The slot holding (or asked to hold) block b, asking a free one for it if
 * none does; the caller holds the lock. */
static int slot_for(direct_reader *r, int64_t b) {
  for (;;) {
    for (int i = 0; i < 2; i++)
      if (r->state[i] != SLOT_EMPTY && r->block[i] == b) return i;
    /* a slot the thread is not busy with: an old block, or nothing */
    for (int i = 0; i < 2; i++)
      if (r->state[i] == SLOT_EMPTY || r->state[i] == SLOT_READY) {
        ask(r, i, b);
        return i;
      }
    pthread_cond_wait(&r->changed, &r->lock); /* both busy: wait for one */
  }
}

int direct_reader_read(direct_reader *r, void *into, size_t n_bytes, off_t offset) {
  char *to = into;
  pthread_mutex_lock(&r->lock);
  int status = r->refused ? 1 : 0;
  while (n_bytes > 0 && status == 0) {
    const int64_t b = offset / (off_t)BLOCK_BYTES;
    const int i = slot_for(r, b);
    /* read ahead: the next block into the other slot, unless the thread is
     * still busy with it (the caller has moved on from that block) */
    const int j = 1 - i;
    const off_t next_at = (off_t)(b + 1) * (off_t)BLOCK_BYTES;
    if (next_at < r->file_bytes && !(r->state[j] != SLOT_EMPTY && r->block[j] == b + 1) &&
        (r->state[j] == SLOT_EMPTY || r->state[j] == SLOT_READY))
      ask(r, j, b + 1);
    while (r->state[i] != SLOT_READY) pthread_cond_wait(&r->changed, &r->lock);
    if (r->error[i]) {
      if (r->error[i] == EINVAL) r->refused = true;
      status = r->error[i] == EINVAL ? 1 : -1;
      r->state[i] = SLOT_EMPTY; /* not kept: a later call reads it again */
      break;
    }
    const size_t from = (size_t)(offset - (off_t)b * (off_t)BLOCK_BYTES);
    const size_t piece = n_bytes < BLOCK_BYTES - from ? n_bytes : BLOCK_BYTES - from;
    if (from + piece > r->length[i]) {
      status = -1; /* the file ends first */
      break;
    }
    /* only this thread hands slots out, so slot i stays as it is while the
     * lock is released for the copy */
    pthread_mutex_unlock(&r->lock);
    memcpy(to, (char *)r->buffer[i] + from, piece);
    pthread_mutex_lock(&r->lock);
    to += piece, offset += (off_t)piece, n_bytes -= piece;
  }
  pthread_mutex_unlock(&r->lock);
  return status;
}

void direct_reader_close(direct_reader *r) {
  pthread_mutex_lock(&r->lock);
  for (int i = 0; i < 2; i++) /* read-ahead nobody will use */
    if (r->state[i] == SLOT_WANTED) r->state[i] = SLOT_EMPTY;
  r->closing = true;
  pthread_cond_broadcast(&r->changed);
  pthread_mutex_unlock(&r->lock);
  pthread_join(r->thread, NULL);
  close(r->fd); /* read-only: nothing to lose */
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->changed);
  free(r->buffer[0]);
  free(r->buffer[1]);
  free(r);
}
