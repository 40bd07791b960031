/* roll_call — see roll_call.h. */
#include "roll_call.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpi_check.h"

enum { TAG_QUESTION = 1, TAG_ANSWER = 2, WHERE_BYTES = 96, LISTED = 64 };

static MPI_Comm roll = MPI_COMM_NULL;
static int users; /* world-wide groups holding it */

void roll_call_init(void) {
  if (users++ > 0) return;
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &roll));
  MPI_CHECK(MPI_Comm_set_errhandler(roll, MPI_ERRORS_RETURN));
}

void roll_call_release(void) {
  if (users == 0 || --users > 0) return;
  MPI_CHECK(MPI_Comm_free(&roll));
}

/* Every call here is best effort: a failure (a peer gone) ends the roll
 * call quietly rather than replacing the watchdog's report with MPI's. */
void roll_call_answer(const char *kind, uint64_t seq, const char *group) {
  if (roll == MPI_COMM_NULL) return;
  for (;;) {
    int pending = 0, question = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_QUESTION, roll, &pending, &st) != MPI_SUCCESS || !pending) return;
    if (MPI_Recv(&question, 1, MPI_INT, st.MPI_SOURCE, TAG_QUESTION, roll, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
    char where[WHERE_BYTES];
    snprintf(where, sizeof where, "%s #%llu of group %s", kind, (unsigned long long)seq, group);
    /* a short message: sent eagerly, the asker is alive (it just asked) */
    if (MPI_Send(where, WHERE_BYTES, MPI_CHAR, st.MPI_SOURCE, TAG_ANSWER, roll) != MPI_SUCCESS) return;
  }
}

/* out += text, while it fits */
static void append(char *out, size_t out_bytes, const char *text) {
  size_t used = strlen(out);
  if (used + 1 < out_bytes) snprintf(out + used, out_bytes - used, "%s", text);
}

/* "world rank 1" / "world ranks 1,3" for the ranks r whose mark[r] equals
 * `which` (and, for answers, whose answer is `where`); clears those marks */
static void list_ranks(const int *world, int n, int *mark, int which, char (*answers)[WHERE_BYTES],
                       const char *where, char *out, size_t out_bytes) {
  char ranks[256] = "";
  int count = 0;
  for (int r = 0; r < n; r++) {
    if (mark[r] != which || (where && strcmp(answers[r], where) != 0)) continue;
    char one[16];
    snprintf(one, sizeof one, "%s%d", count++ ? "," : "", world[r]);
    append(ranks, sizeof ranks, one);
    mark[r] = -1;
  }
  if (!count) return;
  if (out[0]) append(out, out_bytes, "; ");
  append(out, out_bytes, count > 1 ? "world ranks " : "world rank ");
  append(out, out_bytes, ranks);
}

void roll_call_ask(MPI_Comm group, int self, const char *kind, uint64_t seq, const char *name, double seconds,
                   char *out, size_t out_bytes) {
  out[0] = '\0';
  if (roll == MPI_COMM_NULL) return;
  int n = 0;
  MPI_CHECK(MPI_Comm_size(group, &n));
  if (n > LISTED) n = LISTED; /* a large group: the first ranks say enough */
  int members[LISTED], world[LISTED], mark[LISTED] = {0}; /* 0 asked, 1 answered */
  char (*answers)[WHERE_BYTES] = calloc((size_t)n, WHERE_BYTES);
  if (!answers) return;
  MPI_Group g, w;
  for (int r = 0; r < n; r++) members[r] = r;
  MPI_CHECK(MPI_Comm_group(group, &g));
  MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &w));
  MPI_CHECK(MPI_Group_translate_ranks(g, n, members, w, world));
  MPI_CHECK(MPI_Group_free(&g));
  MPI_CHECK(MPI_Group_free(&w));
  static const int question = 0; /* stays valid: the sends are never waited on */
  for (int r = 0; r < n; r++) {
    MPI_Request req;
    if (r == self) { mark[r] = -1; continue; }
    if (MPI_Isend(&question, 1, MPI_INT, world[r], TAG_QUESTION, roll, &req) == MPI_SUCCESS)
      MPI_Request_free(&req);
  }
  const struct timespec pause = {0, 1000 * 1000};
  const double start = MPI_Wtime();
  int waiting = n - (self < n);
  while (waiting > 0 && MPI_Wtime() - start < seconds) {
    roll_call_answer(kind, seq, name); /* another rank may be asking at the same time */
    int pending = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_ANSWER, roll, &pending, &st) != MPI_SUCCESS) break;
    if (!pending) { nanosleep(&pause, NULL); continue; }
    char where[WHERE_BYTES];
    if (MPI_Recv(where, WHERE_BYTES, MPI_CHAR, st.MPI_SOURCE, TAG_ANSWER, roll, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
    where[WHERE_BYTES - 1] = '\0';
    for (int r = 0; r < n; r++)
      if (world[r] == st.MPI_SOURCE && mark[r] == 0) {
        mark[r] = 1, waiting--;
        snprintf(answers[r], WHERE_BYTES, "%s", where);
      }
  }
  list_ranks(world, n, mark, 0, answers, NULL, out, out_bytes);
  if (out[0]) append(out, out_bytes, " did not answer (lost, dead, or busy outside a collective)");
  for (int r = 0; r < n; r++) {
    if (mark[r] != 1) continue;
    char where[WHERE_BYTES];
    snprintf(where, sizeof where, "%s", answers[r]);
    list_ranks(world, n, mark, 1, answers, where, out, out_bytes);
    append(out, out_bytes, " waiting in ");
    append(out, out_bytes, where);
  }
  free(answers);
}
