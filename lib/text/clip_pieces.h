/* Internal to lib/text: the parts of CLIP's tokenizer that learning a BPE
 * (bpe_learn.c) must share with encoding (clip_tokenizer.c), so that both
 * see a text as the same pieces spelled in the same characters. */
#ifndef KNND_TEXT_CLIP_PIECES_H
#define KNND_TEXT_CLIP_PIECES_H

#include <stddef.h>
#include <stdint.h>

#include "text/unicode.h"

/* GPT-2's byte -> unicode table: cp[b] is byte b's character; order[k] is
 * the byte of vocabulary entry k (printable bytes first, then the others). */
void clip_bytes_to_unicode(uint32_t cp[256], int order[256]);

/* The first line of a merges file that bpe_learn writes. clip_tokenizer_load
 * reads a file that starts with it by clip_tokenizer_from_merges (every
 * merge used) rather than as the reference's file (its first 48,894). */
#define CLIP_LEARNED_MERGES_HEADER "#version: 0.2 knnd-learned"

/* CLIP's pre-tokenization of cleaned text (clip_text_clean's output):
 * each piece in turn as UTF-8 bytes. */
struct clip_pieces {
	const uint32_t *s;
	size_t n, pos;
	uint8_t *bytes; /* the current piece */
	size_t len, cap;
};

enum clip_piece_kind { CLIP_PIECE_WORD, CLIP_PIECE_SOT, CLIP_PIECE_EOT };

void clip_pieces_init(struct clip_pieces *it, const struct ustr *clean);
/* Moves to the next piece (it->bytes, it->len); 0 at the end. */
int clip_pieces_next(struct clip_pieces *it);
/* A piece spelling a special token is that token, not a word to BPE. */
enum clip_piece_kind clip_piece_kind(const struct clip_pieces *it);
void clip_pieces_free(struct clip_pieces *it);

#endif
