/* Where a benchmark case's time goes, op by op (--breakdown).
 *
 * bench_ops_timing_on points nn at a copy of its op table in which the ops
 * that `rows` name sync, run the real op, sync again and add up their time,
 * calls and matrix-product FLOPs (attention counted as if unmasked); the
 * other ops run as they are. Counts start from zero at each call, and
 * bench_ops_timing_off restores nn. */
#ifndef KNND_BENCH_OP_TIMING_H
#define KNND_BENCH_OP_TIMING_H

/* A row of the breakdown table: its name and the ops it adds up, by their
 * names in struct nn_ops, separated by spaces ("add accumulate scale"). A
 * program's list ends with { NULL }. */
struct bench_op_row {
	const char *name, *ops;
};

/* How a program's table reads: column widths, the decimals of its ms, and
 * whether a row's share is of the timed pass (then a last row, "outside
 * the ops", holds the rest of the pass) or of all the timed ops. */
struct bench_op_table_layout {
	int name_width, calls_width, rate_width, ms_decimals;
	int share_of_pass;
};

void bench_ops_timing_on(const struct bench_op_row *rows);
void bench_ops_timing_off(void);

/* The seconds of all the timed ops since bench_ops_timing_on. */
double bench_ops_seconds(void);

/* The table of the rows of the last bench_ops_timing_on, per run of `runs`:
 * calls, ms, share, and where a row has FLOPs its GFLOP/s and their share
 * of `peak`; pass_ms is the mean time of a run. */
void bench_print_op_table(int runs, double pass_ms, double peak, const struct bench_op_table_layout *layout);

/* The forward convolutions timed, one row per shape (the batch aside),
 * slowest first. */
void bench_print_conv_shapes(int runs, double pass_ms, double peak);

#endif
