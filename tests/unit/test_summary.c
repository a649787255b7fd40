/* Summaries: the streamed mean and normal interval against hand figures,
 * the seeded bootstrap, numbers from every scalar form, group names, and
 * groups kept in order of first appearance through the table's growth. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "eval/summary.h"
#include "test.h"

static void test_mean_and_normal_interval(void)
{
	struct summary s;
	summary_init(&s, false);
	for (int i = 1; i <= 4; i++)
		summary_add(&s, i);
	double lo, hi, half = 1.96 * sqrt(5.0 / 3.0) / 2;
	summary_ci_normal(&s, &lo, &hi);
	CHECK(s.n == 4);
	CHECK_NEAR(s.mean, 2.5, 1e-15);
	CHECK_NEAR(lo, 2.5 - half, 1e-12);
	CHECK_NEAR(hi, 2.5 + half, 1e-12);
	CHECK(s.values == NULL);
	CHECK(summary_ci_bootstrap(&s, 10, 0, &lo, &hi) < 0);
	summary_free(&s);

	summary_init(&s, false);
	summary_add(&s, 7);
	summary_ci_normal(&s, &lo, &hi);
	CHECK(isnan(lo) && isnan(hi) && s.mean == 7);
	summary_free(&s);
}

static void test_bootstrap(void)
{
	struct summary s;
	summary_init(&s, true);
	for (int i = 0; i < 200; i++)
		summary_add(&s, (i * 37) % 101);
	double lo1, hi1, lo2, hi2, lo3, hi3, nlo, nhi;
	CHECK(summary_ci_bootstrap(&s, 500, 1, &lo1, &hi1) == 0);
	CHECK(summary_ci_bootstrap(&s, 500, 1, &lo2, &hi2) == 0);
	CHECK(summary_ci_bootstrap(&s, 500, 2, &lo3, &hi3) == 0);
	summary_ci_normal(&s, &nlo, &nhi);
	CHECK(lo1 == lo2 && hi1 == hi2);
	CHECK(lo1 != lo3 || hi1 != hi3);
	CHECK(lo1 < s.mean && s.mean < hi1);
	/* On 200 roughly uniform values the two intervals nearly agree. */
	CHECK_NEAR(lo1, nlo, 0.2 * (nhi - nlo));
	CHECK_NEAR(hi1, nhi, 0.2 * (nhi - nlo));
	summary_free(&s);

	summary_init(&s, true);
	for (int i = 0; i < 5; i++)
		summary_add(&s, 3.25);
	CHECK(summary_ci_bootstrap(&s, 50, 0, &lo1, &hi1) == 0);
	CHECK(lo1 == 3.25 && hi1 == 3.25);
	summary_free(&s);
	summary_init(&s, true);
	CHECK(summary_ci_bootstrap(&s, 50, 0, &lo1, &hi1) < 0);
	summary_free(&s);
}

static void test_value_number(void)
{
	struct record r = RECORD_INIT;
	double x = 0;
	record_set_bool(&r, "b", true);
	record_set_int(&r, "i", -3);
	record_set_float(&r, "f", 0.5);
	record_set_str(&r, "s", "1");
	CHECK(value_number(record_get(&r, "b"), &x) == 0 && x == 1);
	CHECK(value_number(record_get(&r, "i"), &x) == 0 && x == -3);
	CHECK(value_number(record_get(&r, "f"), &x) == 0 && x == 0.5);
	CHECK(value_number(record_get(&r, "s"), &x) < 0);
	CHECK(strstr(error_message(), "is a string, not a number"));
	int64_t one[1] = { 1 }, two[1] = { 2 };
	((float *)record_new_tensor(&r, "t0", DT_FLOAT32, 0, NULL)->data)[0] = 2.5f;
	((int16_t *)record_new_tensor(&r, "t1", DT_INT16, 1, one)->data)[0] = -7;
	record_new_tensor(&r, "t2", DT_FLOAT32, 1, two);
	CHECK(value_number(record_get(&r, "t0"), &x) == 0 && x == 2.5);
	CHECK(value_number(record_get(&r, "t1"), &x) == 0 && x == -7);
	CHECK(value_number(record_get(&r, "t2"), &x) < 0);
	CHECK(strstr(error_message(), "2 elements"));
	record_set_nil(&r, "n");
	CHECK(value_number(record_get(&r, "n"), &x) < 0);

	char *name = NULL;
	CHECK(group_name(record_get(&r, "s"), &name) == 0 && !strcmp(name, "1"));
	free(name);
	CHECK(group_name(record_get(&r, "i"), &name) == 0 && !strcmp(name, "-3"));
	free(name);
	CHECK(group_name(record_get(&r, "f"), &name) < 0);
	CHECK(group_name(record_get(&r, "t0"), &name) < 0);
	record_free(&r);
}

/* 1000 groups, visited twice in a scrambled order: they keep the order in
 * which they first came, and each gets its own values. */
static void test_groups(void)
{
	struct summary_groups g;
	summary_groups_init(&g, 2, false);
	char name[32];
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < 1000; i++) {
			int k = (i * 7919) % 1000;
			snprintf(name, sizeof name, "g%d", k);
			struct summary *s = summary_groups_get(&g, name);
			summary_add(&s[0], k);
			summary_add(&s[1], pass);
		}
	CHECK(g.n == 1000);
	int bad = 0;
	for (int i = 0; i < g.n; i++) {
		int k = (i * 7919) % 1000;
		snprintf(name, sizeof name, "g%d", k);
		bad += strcmp(g.names[i], name) != 0 || g.stats[i][0].n != 2 || g.stats[i][0].mean != k ||
		       g.stats[i][1].mean != 0.5;
	}
	CHECK_MSG(bad == 0, "%d groups out of order or mixed", bad);
	CHECK(summary_groups_get(&g, "g5") == summary_groups_get(&g, "g5"));
	CHECK(g.n == 1000);
	summary_groups_free(&g);
}

int main(void)
{
	RUN(test_mean_and_normal_interval);
	RUN(test_bootstrap);
	RUN(test_value_number);
	RUN(test_groups);
	TEST_EXIT();
}
