/* Our codec against msgpack-c, an independent implementation of the format:
 * msgpack-c must read what we write, and we must read what it writes. */
#include <msgpack.h>
#include <string.h>

#include "core/tool.h"
#include "stream/stream.h"
#include "test.h"

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
		    !memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size))
			return &kv->val;
	}
	return NULL;
}

static void test_msgpack_c_reads_ours(void)
{
	struct record r = RECORD_INIT;
	record_set_str(&r, "path", "a/b.png");
	record_set_int(&r, "label", 9);
	int64_t shape[2] = { 2, 2 };
	struct tensor *t = record_new_tensor(&r, "emb", DT_FLOAT32, 2, shape);
	for (int i = 0; i < 4; i++)
		((float *)t->data)[i] = i + 0.5f;
	struct ts_writer *w = ts_writer_mem();
	ts_write(w, &r);
	ts_write(w, &r);
	size_t len;
	const char *data = ts_writer_mem_data(w, &len);

	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	size_t off = 0;
	int n = 0;
	while (msgpack_unpack_next(&up, data, len, &off) == MSGPACK_UNPACK_SUCCESS) {
		const msgpack_object *o = &up.data;
		CHECK(o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 3);
		const msgpack_object *p = map_get(o, "path"), *l = map_get(o, "label"), *e = map_get(o, "emb");
		CHECK(p && p->type == MSGPACK_OBJECT_STR && p->via.str.size == 7);
		CHECK(l && l->type == MSGPACK_OBJECT_POSITIVE_INTEGER && l->via.u64 == 9);
		CHECK(e && e->type == MSGPACK_OBJECT_MAP && e->via.map.size == 3);
		if (e && e->type == MSGPACK_OBJECT_MAP) {
			const msgpack_object *dt = map_get(e, "dtype"), *sh = map_get(e, "shape"), *d = map_get(e, "data");
			CHECK(dt && dt->type == MSGPACK_OBJECT_STR && !memcmp(dt->via.str.ptr, "float32", 7));
			CHECK(sh && sh->type == MSGPACK_OBJECT_ARRAY && sh->via.array.size == 2 &&
			      sh->via.array.ptr[0].via.u64 == 2);
			CHECK(d && d->type == MSGPACK_OBJECT_BIN && d->via.bin.size == 16 &&
			      !memcmp(d->via.bin.ptr, t->data, 16));
		}
		n++;
	}
	CHECK(n == 2 && off == len);
	msgpack_unpacked_destroy(&up);
	ts_writer_close(w);
	record_free(&r);
}

static void test_we_read_msgpack_c(void)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "text", 4);
	msgpack_pack_str_with_body(&pk, "a red bag", 9);
	msgpack_pack_str_with_body(&pk, "score", 5);
	msgpack_pack_float(&pk, 0.75f);
	msgpack_pack_str_with_body(&pk, "tokens", 6);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "shape", 5);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint16(&pk, 2); /* non-minimal integer encodings are accepted */
	msgpack_pack_int64(&pk, 3);
	msgpack_pack_str_with_body(&pk, "data", 4);
	int32_t tok[6] = { 1, 2, 3, 4, 5, 2886 };
	msgpack_pack_bin_with_body(&pk, tok, sizeof tok);
	msgpack_pack_str_with_body(&pk, "dtype", 5);
	msgpack_pack_str_with_body(&pk, "int32", 5);

	struct ts_reader *rd = ts_open_mem(sb.data, sb.size, "msgpack-c");
	struct record r = RECORD_INIT;
	CHECK_MSG(ts_read(rd, &r) == 1, "%s", error_message());
	CHECK(record_str(&r, "text") && !strcmp(record_str(&r, "text"), "a red bag"));
	CHECK(record_get(&r, "score") && record_get(&r, "score")->is_f32 && record_get(&r, "score")->f == 0.75);
	struct tensor *t = record_tensor(&r, "tokens");
	CHECK(t && t->dtype == DT_INT32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
	      ((int32_t *)t->data)[5] == 2886);
	CHECK(ts_read(rd, &r) == 0);
	ts_close(rd);
	record_free(&r);
	msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
	RUN(test_msgpack_c_reads_ours);
	RUN(test_we_read_msgpack_c);
	TEST_EXIT();
}
