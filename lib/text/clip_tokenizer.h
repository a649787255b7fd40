/* CLIP's text tokenizer: byte-level BPE exactly as openai/CLIP's
 * simple_tokenizer.py and clip.tokenize() (formats/clip-tokenizer.md).
 *
 * The vocabulary comes from the reference's bpe_simple_vocab_16e6.txt.gz,
 * or from a Hugging Face CLIPTokenizer's vocab.json + merges.txt. A loaded
 * tokenizer is read-only, so any number of threads may use it at once. */
#ifndef KNND_TEXT_CLIP_TOKENIZER_H
#define KNND_TEXT_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "text/unicode.h"

/* The context of every released CLIP. */
#define CLIP_CONTEXT_LENGTH 77

struct clip_tokenizer;

/* Loads the reference's gzip'd merges file (bpe_simple_vocab_16e6.txt.gz),
 * or a merges file that bpe_learn.h wrote (plain or gzip'd; it starts with
 * its own header line and is read as clip_tokenizer_from_merges reads it).
 * NULL on failure (errorf "PATH: problem"). */
struct clip_tokenizer *clip_tokenizer_load_bpe(const char *path);
/* Loads a Hugging Face vocab.json (token -> id) and merges.txt. */
struct clip_tokenizer *clip_tokenizer_load_hf(const char *vocab_json, const char *merges_txt);
/* Either, by path: a directory holding vocab.json and merges.txt, a
 * vocab.json (merges.txt beside it), or else a merges file as above. */
struct clip_tokenizer *clip_tokenizer_load(const char *path);
/* From merges text in the format of bpe_simple_vocab_16e6.txt (a header
 * line, then one merge per line), every merge used: the vocabulary is the
 * 256 byte tokens, the same with "</w>", one token per merge, then
 * <|startoftext|> and <|endoftext|>. bpe_learn.h writes such text. label
 * names the source in messages. NULL on failure (errorf). */
struct clip_tokenizer *clip_tokenizer_from_merges(const char *text, size_t len, const char *label);
/* The safetensors metadata key under which a CLIP checkpoint carries the
 * merges text of its own tokenizer (clip-train writes it, clip-embed reads it). */
#define CLIP_TOKENIZER_METADATA_KEY "knnd_bpe_merges"
void clip_tokenizer_free(struct clip_tokenizer *t);

int32_t clip_tokenizer_vocab_size(const struct clip_tokenizer *t);
int32_t clip_tokenizer_sot(const struct clip_tokenizer *t); /* <|startoftext|>, 49406 */
int32_t clip_tokenizer_eot(const struct clip_tokenizer *t); /* <|endoftext|>, 49407 */
/* The token's string (GPT-2 byte-to-unicode spelling, "</w>" ending a
 * word), or NULL for an id out of range. */
const char *clip_tokenizer_token(const struct clip_tokenizer *t, int32_t id);

/* A growable array of token ids. */
struct clip_ids {
	int32_t *ids;
	size_t len, cap;
};
void clip_ids_free(struct clip_ids *ids);

/* SimpleTokenizer.encode: cleans UTF-8 text (text/text_clean.h; invalid
 * bytes read as U+FFFD), splits it and appends the BPE ids of its pieces to
 * out, with no start or end token. Returns 0, or -1 (errorf) when the
 * vocabulary lacks a token the merges produce (only a broken vocab.json). */
int clip_tokenizer_encode(const struct clip_tokenizer *t, const char *text, size_t len, struct clip_ids *out);
/* The same from already cleaned text (clip_text_clean's output). */
int clip_tokenizer_encode_clean(const struct clip_tokenizer *t, const struct ustr *clean, struct clip_ids *out);

/* clip.tokenize(text, context, truncate=True) for one text: writes context
 * ids (start token, the text's ids, end token, then 0s; a text too long
 * keeps its first context ids with the end token last). Returns the
 * untruncated length (ids + 2), or -1 (errorf). */
int64_t clip_tokenize(const struct clip_tokenizer *t, const char *text, size_t len, int32_t *out, int context);

#endif
