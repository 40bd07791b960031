/* roll_call — who is missing from a stuck collective (the watchdog's report).
 *
 * A rank whose watchdog expires asks the other ranks of the group where
 * they are: a one-int message to each on a communicator of its own (a
 * duplicate of the world, so the question never matches the job's
 * traffic). Ranks that wait in a collective with a watchdog look for
 * questions while they poll and answer with the collective they wait in
 * ("allreduce #40 of group dp"). After a short wait the asker names the
 * ranks that answered (and where they wait: a rank behind or ahead shows
 * a mismatch) and those that did not — lost with their host, dead, or busy
 * outside any collective. Nothing here blocks on a peer that is gone: the
 * questions are sent without waiting for their delivery. (A rank waiting
 * on NCCL, nccl_comm.h, does not answer: it shows as not answering.)
 */
#ifndef TESSERA_ROLL_CALL_H
#define TESSERA_ROLL_CALL_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

/* Makes the roll-call communicator (once; collective over MPI_COMM_WORLD);
 * each call is matched by a roll_call_release, the last one frees it. */
void roll_call_init(void);
void roll_call_release(void);

/* Answers the questions waiting for this rank: it waits in `kind` #seq of
 * group `group`. Cheap when there are none (one MPI_Iprobe). */
void roll_call_answer(const char *kind, uint64_t seq, const char *group);

/* Asks the other ranks of `group` (this rank is `self` in it) where they
 * are, answering others' questions meanwhile as in `kind` #seq of `name`,
 * waits up to `seconds`, and describes the answers in out: "world rank 1
 * did not answer; world ranks 2,3 wait in allreduce #40 of group world". */
void roll_call_ask(MPI_Comm group, int self, const char *kind, uint64_t seq, const char *name, double seconds,
                   char *out, size_t out_bytes);

#endif
