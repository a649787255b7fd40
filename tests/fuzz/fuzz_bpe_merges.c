/* libFuzzer target for a vocabulary read from merges text (what a CLIP
 * checkpoint carries under knnd_bpe_merges): any bytes either give an
 * error or a tokenizer that encodes text into ids inside its vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "text/clip_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct clip_tokenizer *t = clip_tokenizer_from_merges((const char *)data, size, "fuzz");
	if (!t)
		return 0;
	static const char *texts[] = { "a sticker of red heart", "hello  world!! 123", "caf\xc3\xa9 \xf0\x9f\x98\x80" };
	int32_t ids[CLIP_CONTEXT_LENGTH];
	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
		if (clip_tokenize(t, texts[i], strlen(texts[i]), ids, CLIP_CONTEXT_LENGTH) < 0)
			continue;
		for (int k = 0; k < CLIP_CONTEXT_LENGTH; k++)
			if (ids[k] < 0 || ids[k] >= clip_tokenizer_vocab_size(t))
				abort();
	}
	clip_tokenizer_free(t);
	return 0;
}
