/* sp_layout — which tokens of every sequence a sequence-parallel rank holds,
 * and in which order its rows are.
 *
 * With sp ranks, each sequence of T tokens is cut into chunks of consecutive
 * positions. Contiguous placement (DESIGN.md): sp chunks of T/sp, rank r
 * holds chunk r. Zig-zag placement (ring attention's balance): 2·sp chunks
 * of T/(2·sp), rank r holds chunks r and 2·sp−1−r, so every rank has one
 * early and one late chunk and causal attention costs each rank the same.
 * A rank's chunks are its *pieces* (1 or 2); global chunk c (0 .. n_chunks−1,
 * in sequence order) is owned by one rank as one of its pieces.
 *
 * Rows: a rank's B·T/sp rows are ordered piece by piece, then sequence,
 * then position: row (p·B + b)·n + i holds position piece_pos0[p] + i of
 * sequence b (n = piece_len). Each piece is thus a contiguous [B, n] block,
 * which attention kernels take as a sequence of their own. Pure functions:
 * every rank computes every rank's layout the same way.
 */
#ifndef TESSERA_SP_LAYOUT_H
#define TESSERA_SP_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

typedef enum sp_placement { SP_CONTIGUOUS, SP_ZIGZAG } sp_placement;

/* Pieces per rank: 1 contiguous, 2 zig-zag. A sequence is cut into
 * sp_size · pieces chunks. */
static inline int sp_placement_pieces(sp_placement placement) { return placement == SP_ZIGZAG ? 2 : 1; }

typedef struct sp_layout {
  sp_placement placement;
  int sp_size, sp_rank;
  int T;             /* tokens per sequence */
  int n_pieces;      /* pieces per rank: 1 contiguous, 2 zig-zag */
  int n_chunks;      /* chunks per sequence: sp·n_pieces */
  int piece_len;     /* tokens per piece (and per chunk) */
  int piece_chunk[2]; /* the global chunk of each of this rank's pieces */
  int piece_pos0[2];  /* its first position */
} sp_layout;

/* 0, or -1 with err when T is not a multiple of the chunk count. */
int sp_layout_make(sp_layout *l, sp_placement placement, int sp_size, int sp_rank, int T, char *err,
                   size_t err_bytes);

/* The rank and piece that own global chunk c. */
void sp_layout_chunk_owner(const sp_layout *l, int c, int *rank, int *piece);

/* The first position of piece p of rank r (any rank's, not only this one's). */
static inline int sp_layout_pos0_of(const sp_layout *l, int r, int p) {
  return (p == 0 ? r : l->n_chunks - 1 - r) * l->piece_len;
}

/* Tokens per sequence on one rank. */
static inline int sp_layout_local_tokens(const sp_layout *l) { return l->n_pieces * l->piece_len; }

/* This rank's rows of B sequences given whole (full[b·T + t]), in row order. */
void sp_layout_take(const sp_layout *l, int B, const int32_t *full, int32_t *local);

/* The position of every one of this rank's B·T/sp rows. */
void sp_layout_positions(const sp_layout *l, int B, int32_t *positions);

/* The local row of position t of sequence b, or -1 if another rank holds it. */
int64_t sp_layout_row_of(const sp_layout *l, int B, int b, int t);

#endif
