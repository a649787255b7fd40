#include "nn/layers/layer.h"

#include <stdio.h>

#include "core/tool.h"

const char *nn_layer_name(char *buf, const char *prefix, const char *name)
{
	int n = prefix && *prefix ? snprintf(buf, NN_NAME_MAX, "%s.%s", prefix, name)
	                          : snprintf(buf, NN_NAME_MAX, "%s", name);
	/* Names come from model code, not from input: a long one is a bug. */
	if (n < 0 || n >= NN_NAME_MAX)
		die("parameter name too long: %s.%s", prefix, name);
	return buf;
}

int nn_layer_param(struct nn_params *p, const char *prefix, const char *name, int ndim,
                   const int64_t *shape)
{
	char buf[NN_NAME_MAX];
	return nn_params_add(p, nn_layer_name(buf, prefix, name), ndim, shape);
}
