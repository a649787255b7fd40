/* Streaming moments and the Fréchet distance (frechet.h). */
#include "eval/frechet.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tool.h"

/* LAPACK's symmetric eigensolver as OpenBLAS exports it (Debian ships no
 * lapacke.h with it). The trailing lengths are the hidden lengths of the
 * two character arguments in gfortran's calling convention. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
             const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len, size_t uplo_len);

void moments_init(struct moments *m, int d)
{
	*m = (struct moments){ .d = d };
	if (d > 0) {
		m->mean = xcalloc(d, sizeof *m->mean);
		m->comom = xcalloc((size_t)d * d, sizeof *m->comom);
		m->block = xcalloc((size_t)MOMENTS_BLOCK * d, sizeof *m->block);
		m->delta = xcalloc(d, sizeof *m->delta);
	}
}

void moments_free(struct moments *m)
{
	free(m->mean);
	free(m->comom);
	free(m->block);
	free(m->delta);
	*m = (struct moments){ 0 };
}

static double *next_row(struct moments *m)
{
	if (m->nblock == MOMENTS_BLOCK)
		moments_flush(m);
	m->n++;
	return m->block + (size_t)m->nblock++ * m->d;
}

void moments_add(struct moments *m, const double *x)
{
	memcpy(next_row(m), x, (size_t)m->d * sizeof *x);
}

/* Chan's merge of a block (nb vectors, mean bm, co-moment Cb) into the
 * running moments (na vectors): with delta = bm - mean and n = na + nb,
 * comom += Cb + delta delta^T na nb / n, and mean += delta nb / n. */
void moments_flush(struct moments *m)
{
	int d = m->d, nb = m->nblock;
	if (nb == 0)
		return;
	for (int i = 0; i < d; i++)
		m->delta[i] = 0;
	for (int r = 0; r < nb; r++)
		for (int i = 0; i < d; i++)
			m->delta[i] += m->block[(size_t)r * d + i];
	for (int i = 0; i < d; i++)
		m->delta[i] /= nb;
	for (int r = 0; r < nb; r++)
		for (int i = 0; i < d; i++)
			m->block[(size_t)r * d + i] -= m->delta[i];
	cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, nb, 1.0, m->block, d, 1.0, m->comom, d);
	double na = (double)m->merged, n = na + nb;
	for (int i = 0; i < d; i++)
		m->delta[i] -= m->mean[i];
	cblas_dsyr(CblasRowMajor, CblasUpper, d, na * nb / n, m->delta, 1, m->comom, d);
	for (int i = 0; i < d; i++)
		m->mean[i] += m->delta[i] * nb / n;
	m->merged += nb;
	m->nblock = 0;
}

int moments_add_field(struct moments *m, const struct record *r, const char *key)
{
	const struct value *v = record_get(r, key);
	if (!v)
		return errorf("no field '%s'", key);
	if (v->kind != V_TENSOR)
		return errorf("field '%s' is not a tensor", key);
	const struct tensor *t = &v->t;
	if (!dtype_is_float(t->dtype) || t->ndim != 1)
		return errorf("field '%s' is %s with %d dimensions, not a float vector [d]", key, dtype_name(t->dtype),
		              t->ndim);
	if (t->shape[0] < 1 || t->shape[0] > MOMENTS_MAX_DIM)
		return errorf("field '%s' has %lld elements (1 to %d allowed)", key, (long long)t->shape[0],
		              MOMENTS_MAX_DIM);
	if (m->d == 0)
		moments_init(m, (int)t->shape[0]);
	if (t->shape[0] != m->d)
		return errorf("field '%s' has %lld elements, but the vectors before it have %d", key,
		              (long long)t->shape[0], m->d);
	double *row = next_row(m);
	for (int i = 0; i < m->d; i++)
		row[i] = tensor_get(t, i);
	return 0;
}

int moments_covariance(struct moments *m, double *cov)
{
	moments_flush(m);
	if (m->n < 2)
		return errorf("%lld vectors; a covariance needs at least 2", (long long)m->n);
	int d = m->d;
	double s = 1.0 / (double)(m->n - 1);
	for (int i = 0; i < d; i++)
		for (int j = i; j < d; j++)
			cov[(size_t)i * d + j] = cov[(size_t)j * d + i] = m->comom[(size_t)i * d + j] * s;
	return 0;
}

/* The eigenvalues of symmetric a [d, d] into w (ascending), and with
 * vectors set its eigenvectors over a (row-major: column j of the
 * column-major result is row j, so a[j*d..] is eigenvector j). */
static int symmetric_eigen(int d, double *a, double *w, int vectors)
{
	const char jobz = vectors ? 'V' : 'N', uplo = 'U';
	int lwork = -1, liwork = -1, info = 0, iwork_size = 0;
	double work_size = 0;
	dsyevd_(&jobz, &uplo, &d, a, &d, w, &work_size, &lwork, &iwork_size, &liwork, &info, 1, 1);
	if (info != 0)
		return errorf("LAPACK dsyevd workspace query failed (info %d)", info);
	lwork = (int)work_size;
	liwork = iwork_size;
	double *work = xmalloc((size_t)(lwork > 1 ? lwork : 1) * sizeof *work);
	int *iwork = xmalloc((size_t)(liwork > 1 ? liwork : 1) * sizeof *iwork);
	dsyevd_(&jobz, &uplo, &d, a, &d, w, work, &lwork, iwork, &liwork, &info, 1, 1);
	free(work);
	free(iwork);
	if (info != 0)
		return errorf("LAPACK dsyevd failed (info %d): the covariance is not a finite symmetric matrix", info);
	return 0;
}

int symmetric_sqrt(int d, double *a)
{
	double *w = xmalloc((size_t)d * sizeof *w);
	if (symmetric_eigen(d, a, w, 1) < 0) {
		free(w);
		return -1;
	}
	/* a = V diag(sqrt w) V^T, with the eigenvectors as the rows of a:
	 * scale row j by w_j^1/4, then a = B^T B. */
	double *b = xmalloc((size_t)d * d * sizeof *b);
	for (int j = 0; j < d; j++) {
		double s = sqrt(sqrt(w[j] > 0 ? w[j] : 0));
		for (int i = 0; i < d; i++)
			b[(size_t)j * d + i] = a[(size_t)j * d + i] * s;
	}
	cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, d, 1.0, b, d, b, d, 0.0, a, d);
	free(b);
	free(w);
	return 0;
}

int frechet_from_stats(int d, const double *mu_a, const double *cov_a, const double *mu_b, const double *cov_b,
                       double *out)
{
	double dist = 0;
	for (int i = 0; i < d; i++) {
		double diff = mu_a[i] - mu_b[i];
		dist += diff * diff + cov_a[(size_t)i * d + i] + cov_b[(size_t)i * d + i];
	}
	/* tr((Sa^1/2 Sb Sa^1/2)^1/2): the middle matrix is symmetric PSD, so
	 * the trace of its root is the sum of the roots of its eigenvalues. */
	size_t dd = (size_t)d * d;
	double *root_a = xmalloc(dd * sizeof *root_a), *tmp = xmalloc(dd * sizeof *tmp);
	double *mid = xmalloc(dd * sizeof *mid), *w = xmalloc((size_t)d * sizeof *w);
	memcpy(root_a, cov_a, dd * sizeof *root_a);
	int rc = symmetric_sqrt(d, root_a);
	if (rc == 0) {
		cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, d, d, 1.0, root_a, d, cov_b, d, 0.0, tmp, d);
		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, tmp, d, root_a, d, 0.0, mid, d);
		rc = symmetric_eigen(d, mid, w, 0);
	}
	if (rc == 0) {
		double tr = 0;
		for (int i = 0; i < d; i++)
			tr += sqrt(w[i] > 0 ? w[i] : 0);
		/* Rounding can take equal sets a hair below 0. */
		*out = fmax(dist - 2 * tr, 0);
	}
	free(root_a);
	free(tmp);
	free(mid);
	free(w);
	return rc;
}

int frechet_distance(struct moments *a, struct moments *b, double *out)
{
	if (a->d != b->d)
		return errorf("the embeddings have %d and %d elements", a->d, b->d);
	size_t dd = (size_t)a->d * a->d;
	double *cov_a = xmalloc(dd * sizeof *cov_a), *cov_b = xmalloc(dd * sizeof *cov_b);
	int rc = moments_covariance(a, cov_a) < 0 || moments_covariance(b, cov_b) < 0
	                 ? -1
	                 : frechet_from_stats(a->d, a->mean, cov_a, b->mean, cov_b, out);
	free(cov_a);
	free(cov_b);
	return rc;
}
