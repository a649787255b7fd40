/* Learning a small CLIP-style BPE vocabulary from a model's own captions,
 * so that a CLIP trained here (clip-train) needs no outside vocabulary file.
 *
 * Texts are cleaned and split into pieces exactly as the CLIP tokenizer
 * does (text/clip_tokenizer.h: lower case, the same pre-tokenization), each
 * piece spelled in CLIP's byte-to-unicode characters with "</w>" on its
 * last symbol. Merges are then learned greedily: the most frequent adjacent
 * pair (counted over pieces weighted by how often they occur; ties broken
 * by the pair's spelling, so the result depends only on the multiset of
 * texts) is merged, again and again. The result is a merges file in the
 * format of CLIP's bpe_simple_vocab_16e6.txt (a header line, then "a b"
 * per merge), which clip_tokenizer_from_merges turns back into a
 * tokenizer whose ids are 256 bytes, 256 bytes + "</w>", one per merge,
 * <|startoftext|>, <|endoftext|>. */
#ifndef KNND_TEXT_BPE_LEARN_H
#define KNND_TEXT_BPE_LEARN_H

#include <stddef.h>

struct bpe_learner;

struct bpe_learner *bpe_learner_new(void);
void bpe_learner_free(struct bpe_learner *l);

/* Counts the pieces of one UTF-8 text (invalid bytes read as U+FFFD).
 * Returns 0, or -1 (errorf). */
int bpe_learner_add(struct bpe_learner *l, const char *text, size_t len);

/* Learns at most max_merges merges, stopping early once the best pair
 * occurs fewer than min_count times. Returns the merges text (malloc'd,
 * NUL-terminated, its length in *len), or NULL (errorf: no text added). */
char *bpe_learner_merges(struct bpe_learner *l, int max_merges, int min_count, size_t *len);

#endif
