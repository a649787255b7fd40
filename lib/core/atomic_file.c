#include "core/atomic_file.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tool.h"

static struct atomic_file *open_files;

static void unlink_open_files(void)
{
	for (struct atomic_file *af = open_files; af; af = af->next)
		unlink(af->tmp_path);
}

static void on_fatal_signal(int sig)
{
	unlink_open_files();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_signal_cleanup(void)
{
	static int installed;
	if (installed)
		return;
	installed = 1;
	int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
		struct sigaction old;
		sigaction(sigs[i], NULL, &old);
		if (old.sa_handler == SIG_IGN)
			continue;
		signal(sigs[i], on_fatal_signal);
	}
}

static void unregister(struct atomic_file *af)
{
	for (struct atomic_file **p = &open_files; *p; p = &(*p)->next)
		if (*p == af) {
			*p = af->next;
			break;
		}
}

int atomic_open(struct atomic_file *af, const char *path)
{
	memset(af, 0, sizeof *af);
	size_t n = strlen(path) + 32;
	af->tmp_path = xmalloc(n);
	snprintf(af->tmp_path, n, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(af->tmp_path);
	if (fd < 0) {
		int e = errno;
		free(af->tmp_path);
		af->tmp_path = NULL;
		return errorf("%s: cannot create: %s", path, strerror(e));
	}
	/* mkstemp makes 0600; outputs should get the usual umask-based mode. */
	mode_t um = umask(0);
	umask(um);
	fchmod(fd, 0666 & ~um);
	af->fp = fdopen(fd, "wb");
	af->path = xstrdup(path);
	install_signal_cleanup();
	af->next = open_files;
	open_files = af;
	return 0;
}

int atomic_commit(struct atomic_file *af)
{
	int failed = fflush(af->fp) != 0 || ferror(af->fp) || fsync(fileno(af->fp)) != 0;
	int e = errno;
	failed |= fclose(af->fp) != 0;
	af->fp = NULL;
	unregister(af);
	if (failed || rename(af->tmp_path, af->path) != 0) {
		if (!failed)
			e = errno;
		unlink(af->tmp_path);
		errorf("%s: cannot write: %s", af->path, strerror(e));
		free(af->tmp_path);
		free(af->path);
		af->tmp_path = af->path = NULL;
		return -1;
	}
	free(af->tmp_path);
	free(af->path);
	af->tmp_path = af->path = NULL;
	return 0;
}

void atomic_abort(struct atomic_file *af)
{
	if (!af->tmp_path)
		return;
	unregister(af);
	if (af->fp)
		fclose(af->fp);
	unlink(af->tmp_path);
	free(af->tmp_path);
	free(af->path);
	memset(af, 0, sizeof *af);
}

void atomic_abort_all(void)
{
	while (open_files)
		atomic_abort(open_files);
}
