/* direct_writer — see direct_writer.h. */
#include "direct_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fail.h"

#define BUFFER_BYTES ((size_t)16 << 20)

struct direct_writer {
  char path[JOINED_PATH_BYTES];
  int fd;          /* O_DIRECT */
  int fallback_fd; /* opened when O_DIRECT is refused at write time */
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  void *buffer[2];
  size_t length[2];
  off_t offset[2];
  bool full[2];
  int next_fill, next_write;
  bool closing;
  int error; /* errno of the first failed write */
};

static int write_all(int fd, const char *data, size_t bytes, off_t offset) {
  while (bytes > 0) {
    ssize_t done = pwrite(fd, data, bytes, offset);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) return errno;
    if (done == 0) return EIO;
    data += done, bytes -= (size_t)done, offset += done;
  }
  return 0;
}

/* the helper thread's write of one buffer */
static int write_buffer(direct_writer *w, int i) {
  if (w->fallback_fd < 0) {
    int status = write_all(w->fd, w->buffer[i], w->length[i], w->offset[i]);
    if (status != EINVAL) return status;
    w->fallback_fd = open(w->path, O_WRONLY); /* O_DIRECT turned down: through the page cache */
    if (w->fallback_fd < 0) return errno;
  }
  return write_all(w->fallback_fd, w->buffer[i], w->length[i], w->offset[i]);
}

static void *writer_thread(void *arg) {
  direct_writer *w = arg;
  sigset_t all; /* signals are the caller's to handle */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (!w->full[w->next_write] && !w->closing) pthread_cond_wait(&w->changed, &w->lock);
    if (!w->full[w->next_write]) break; /* closing, nothing left */
    const int i = w->next_write;
    pthread_mutex_unlock(&w->lock);
    const int status = write_buffer(w, i);
    pthread_mutex_lock(&w->lock);
    if (status && !w->error) w->error = status;
    w->full[i] = false;
    w->next_write ^= 1;
    pthread_cond_broadcast(&w->changed);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

direct_writer *direct_writer_open(const char *path) {
#ifndef O_DIRECT
  (void)path;
  return NULL;
#else
  direct_writer *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  snprintf(w->path, sizeof w->path, "%s", path);
  w->fallback_fd = -1;
  w->fd = open(path, O_WRONLY | O_DIRECT);
  bool ok = w->fd >= 0;
  for (int i = 0; i < 2 && ok; i++) ok = posix_memalign(&w->buffer[i], DIRECT_WRITER_ALIGN, BUFFER_BYTES) == 0;
  ok = ok && pthread_mutex_init(&w->lock, NULL) == 0 && pthread_cond_init(&w->changed, NULL) == 0 &&
       pthread_create(&w->thread, NULL, writer_thread, w) == 0;
  if (!ok) {
    if (w->fd >= 0) close(w->fd);
    free(w->buffer[0]);
    free(w->buffer[1]);
    free(w);
    return NULL;
  }
  return w;
#endif
}

void direct_writer_write(direct_writer *w, const void *data, size_t bytes, off_t offset) {
  const char *from = data;
  while (bytes > 0) {
    const size_t chunk = bytes < BUFFER_BYTES ? bytes : BUFFER_BYTES;
    pthread_mutex_lock(&w->lock);
    while (w->full[w->next_fill]) pthread_cond_wait(&w->changed, &w->lock);
    const int i = w->next_fill;
    pthread_mutex_unlock(&w->lock);
    memcpy(w->buffer[i], from, chunk); /* the thread is writing the other buffer meanwhile */
    pthread_mutex_lock(&w->lock);
    w->length[i] = chunk;
    w->offset[i] = offset;
    w->full[i] = true;
    w->next_fill ^= 1;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    from += chunk, bytes -= chunk, offset += (off_t)chunk;
  }
}

int direct_writer_close(direct_writer *w) {
  pthread_mutex_lock(&w->lock);
  w->closing = true;
  pthread_cond_broadcast(&w->changed);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  int error = w->error;
  if (close(w->fd) != 0 && !error) error = errno;
  if (w->fallback_fd >= 0 && close(w->fallback_fd) != 0 && !error) error = errno;
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->changed);
  free(w->buffer[0]);
  free(w->buffer[1]);
  free(w);
  return error;
}
