/* Templates and scalar text (ts-caption) and the key split (ts-split). */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "stream/key_split.h"
#include "stream/scalar_text.h"
#include "stream/template.h"
#include "test.h"

/* The template filled from r, or "ERROR: message". */
static const char *fill(const char *text, const struct record *r)
{
	static char result[256];
	struct template *t = template_parse(text);
	if (!t) {
		snprintf(result, sizeof result, "PARSE: %s", error_message());
		return result;
	}
	struct mp_buf out = { 0 };
	if (template_expand(t, r, &out) < 0)
		snprintf(result, sizeof result, "ERROR: %s", error_message());
	else
		snprintf(result, sizeof result, "%.*s", (int)out.len, (const char *)out.data);
	mp_buf_free(&out);
	template_free(t);
	return result;
}

static void sample_record(struct record *r)
{
	record_set_str(r, "text", "sneaker");
	record_set_str(r, "subgroup", "shoe");
	record_set_int(r, "label", 7);
	record_set_float(r, "score", 2.5);
	record_set_float(r, "whole", 3);
	record_set_float(r, "bad", NAN);
	record_set_bool(r, "ok", true);
	record_set_nil(r, "none");
	int64_t shape[1] = { 2 };
	record_new_tensor(r, "image", DT_UINT8, 1, shape);
}

static void test_fills_fields(void)
{
	struct record r = RECORD_INIT;
	sample_record(&r);
	CHECK(!strcmp(fill("a photo of a {text}", &r), "a photo of a sneaker"));
	CHECK(!strcmp(fill("{text}, {subgroup}", &r), "sneaker, shoe"));
	CHECK(!strcmp(fill("{text}{text}", &r), "sneakersneaker"));
	CHECK(!strcmp(fill("class {label}: {score} {whole} {bad} {ok}", &r), "class 7: 2.5 3.0 nan true"));
	CHECK(!strcmp(fill("no fields", &r), "no fields"));
	CHECK(!strcmp(fill("", &r), ""));
	record_free(&r);
}

static void test_literal_braces(void)
{
	struct record r = RECORD_INIT;
	sample_record(&r);
	CHECK(!strcmp(fill("{{text}} is {text}", &r), "{text} is sneaker"));
	CHECK(!strcmp(fill("}}{{", &r), "}{"));
	CHECK(!strcmp(fill("{{{text}}}", &r), "{sneaker}"));
	record_free(&r);
}

static void test_bad_templates(void)
{
	struct record r = RECORD_INIT;
	CHECK_MSG(!strcmp(fill("{unclosed", &r), "PARSE: '{' at column 1 is not closed (write '{{' for a brace)"),
	          "%s", fill("{unclosed", &r));
	CHECK(strstr(fill("a {b{c}", &r), "'{' at column 3 is not closed"));
	CHECK(strstr(fill("a } b", &r), "'}' at column 3 has no '{'"));
	CHECK(strstr(fill("x{}", &r), "'{}' at column 2 names no field"));
	CHECK(strstr(fill("{a}}", &r), "'}' at column 4"));
	record_free(&r);
}

static void test_bad_fields(void)
{
	struct record r = RECORD_INIT;
	sample_record(&r);
	CHECK(!strcmp(fill("a {colour} hat", &r), "ERROR: field 'colour' is missing"));
	CHECK(!strcmp(fill("{image}", &r), "ERROR: field 'image' is a tensor, not a scalar"));
	CHECK(!strcmp(fill("{none}", &r), "ERROR: field 'none' is null, not a scalar"));
	record_free(&r);
}

static void test_scalar_text_numbers(void)
{
	struct record r = RECORD_INIT;
	record_set_int(&r, "neg", -12);
	record_set_float(&r, "small", 0.1);
	record_set_float(&r, "ninf", -INFINITY);
	struct value u = { .kind = V_INT, .is_unsigned = true, .u = UINT64_MAX };
	record_set_value(&r, "big", &u);
	CHECK(!strcmp(fill("{neg} {small} {ninf} {big}", &r), "-12 0.1 -inf 18446744073709551615"));
	record_free(&r);
}

static void test_key_hash_is_seeded_and_stable(void)
{
	uint64_t a = key_hash("abc", 3, 0);
	CHECK(a == key_hash("abc", 3, 0));
	CHECK(a != key_hash("abc", 3, 1));
	CHECK(a != key_hash("abd", 3, 0));
	CHECK(a != key_hash("abc", 2, 0));
	CHECK(key_hash("", 0, 0) != key_hash("", 0, 1));
}

static void test_split_shares_follow_weights(void)
{
	double w[3] = { 1, 2, 7 };
	CHECK(key_split_shares(w, 3) == 0);
	CHECK_NEAR(w[0], 0.1, 1e-12);
	CHECK_NEAR(w[1], 0.3, 1e-12);
	CHECK(w[2] == 1);
	int count[3] = { 0 };
	char key[32];
	for (int i = 0; i < 100000; i++) {
		int n = snprintf(key, sizeof key, "id%d", i);
		count[key_split_part(w, 3, key_hash(key, n, 42))]++;
	}
	CHECK_NEAR(count[0], 10000, 500);
	CHECK_NEAR(count[1], 20000, 700);
	CHECK_NEAR(count[2], 70000, 1000);
	CHECK(key_split_part(w, 3, 0) == 0);
	CHECK(key_split_part(w, 3, UINT64_MAX) == 2);
}

static void test_split_rejects_bad_weights(void)
{
	double zero[2] = { 1, 0 }, neg[2] = { -1, 2 }, nan[1] = { NAN }, huge[2] = { 1e308, 1e308 };
	CHECK(key_split_shares(zero, 2) < 0);
	CHECK(strstr(error_message(), "not a positive number"));
	CHECK(key_split_shares(neg, 2) < 0);
	CHECK(key_split_shares(nan, 1) < 0);
	CHECK(key_split_shares(huge, 2) < 0);
}

int main(void)
{
	RUN(test_fills_fields);
	RUN(test_literal_braces);
	RUN(test_bad_templates);
	RUN(test_bad_fields);
	RUN(test_scalar_text_numbers);
	RUN(test_key_hash_is_seeded_and_stable);
	RUN(test_split_shares_follow_weights);
	RUN(test_split_rejects_bad_weights);
	TEST_EXIT();
}
