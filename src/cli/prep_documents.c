/* prep_documents — see prep_documents.h. */
#include "prep_documents.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int map_one(prep_input *in, char *err, size_t err_bytes) {
  in->text = NULL, in->n_bytes = 0;
  const int fd = open(in->path, O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(err, err_bytes, "prep: cannot read input '%s': %s", in->path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, err_bytes, "prep: input '%s' is not a regular file", in->path);
    close(fd);
    return -1;
  }
  if (st.st_size > 0) {
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      snprintf(err, err_bytes, "prep: cannot map input '%s': %s", in->path, strerror(errno));
      close(fd);
      return -1;
    }
    madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL); /* a hint: its failure changes nothing */
    in->text = p, in->n_bytes = (size_t)st.st_size;
  }
  close(fd);
  return 0;
}

int prep_inputs_map(prep_input *inputs, int n_inputs, char *err, size_t err_bytes) {
  for (int i = 0; i < n_inputs; i++)
    if (map_one(&inputs[i], err, err_bytes) != 0) {
      prep_inputs_unmap(inputs, i);
      return 1; /* EXIT_USER_ERROR */
    }
  return 0;
}

void prep_inputs_unmap(prep_input *inputs, int n_inputs) {
  for (int i = 0; i < n_inputs; i++)
    if (inputs[i].text) munmap((void *)inputs[i].text, inputs[i].n_bytes), inputs[i].text = NULL;
}

static bool is_separator(const char *line, size_t n, const char *sep, size_t sep_len) {
  return n == sep_len && memcmp(line, sep, sep_len) == 0;
}

/* Whether a document starts at line start p: the file's start, or right
 * after a separator line. */
static bool document_starts_at(const char *text, size_t p, const char *sep, size_t sep_len) {
  if (p == 0) return true;
  if (p < sep_len + 1 || text[p - 1] != '\n') return false;
  const size_t line = p - 1 - sep_len;
  return (line == 0 || text[line - 1] == '\n') && is_separator(text + line, sep_len, sep, sep_len);
}

/* The documents of one file starting in [from, to), split at separator
 * lines; a document that starts before `from` is another rank's. */
static void split_file(const char *text, size_t n, const char *sep, size_t from, size_t to,
                       prep_document_fn fn, void *context) {
  const size_t sep_len = strlen(sep);
  size_t line_start = from;
  if (line_start > 0 && text[line_start - 1] != '\n') { /* move to the next line start */
    const char *newline = memchr(text + line_start, '\n', n - line_start);
    line_start = newline ? (size_t)(newline - text) + 1 : n;
  }
  const size_t none = (size_t)-1;
  size_t doc_start = document_starts_at(text, line_start, sep, sep_len) ? line_start : none;
  while (line_start < n && (doc_start == none ? line_start < to : doc_start < to)) {
    const char *newline = memchr(text + line_start, '\n', n - line_start);
    const size_t line_end = newline ? (size_t)(newline - text) : n;
    const size_t next = newline ? line_end + 1 : n;
    if (is_separator(text + line_start, line_end - line_start, sep, sep_len)) {
      if (doc_start != none && line_start > doc_start) fn(text + doc_start, line_start - doc_start, context);
      doc_start = next;
    }
    line_start = next;
  }
  if (doc_start != none && doc_start < to && n > doc_start) fn(text + doc_start, n - doc_start, context);
}

void prep_for_each_document(const prep_input *inputs, int n_inputs, const char *separator, uint64_t lo,
                            uint64_t hi, prep_document_fn fn, void *context) {
  uint64_t file_start = 0;
  for (int i = 0; i < n_inputs && file_start < hi; i++) {
    const prep_input *in = &inputs[i];
    const uint64_t file_end = file_start + in->n_bytes;
    if (in->n_bytes > 0 && file_end > lo) {
      if (!separator) {
        if (file_start >= lo) fn(in->text, in->n_bytes, context);
      } else {
        const size_t from = lo > file_start ? (size_t)(lo - file_start) : 0;
        const size_t to = hi < file_end ? (size_t)(hi - file_start) : in->n_bytes;
        split_file(in->text, in->n_bytes, separator, from, to, fn, context);
      }
    }
    file_start = file_end;
  }
}
