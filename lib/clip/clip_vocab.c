/* A checkpoint's own tokenizer (see clip_vocab.h). */
#include "clip/clip_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"
#include "nn/safetensors.h"

int clip_checkpoint_tokenizer(const char *path, struct clip_tokenizer **out)
{
	*out = NULL;
	struct st_file *f = st_open(path);
	if (!f)
		return -1; /* the message names the file */
	const char *merges = st_metadata(f, CLIP_TOKENIZER_METADATA_KEY);
	int rc = 0;
	if (merges) {
		/* Messages read "PATH: metadata knnd_bpe_merges: line N: ...". */
		size_t n = strlen(path) + sizeof CLIP_TOKENIZER_METADATA_KEY + 16;
		char *label = xmalloc(n);
		snprintf(label, n, "%s: metadata %s", path, CLIP_TOKENIZER_METADATA_KEY);
		*out = clip_tokenizer_from_merges(merges, strlen(merges), label);
		rc = *out ? 1 : -1;
		free(label);
	}
	st_close(f);
	return rc;
}
