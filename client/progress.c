/*
 * progress.c - a one-line progress bar for long transfers.
 *
 * Drawn on stderr only when stderr is a terminal and --quiet is not given,
 * so scripts and pipes see nothing but errors.  Redrawn at most ten times a
 * second: bytes done and total, rate and time left.
 */
#include "client.h"

#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 24

bool		progress_on_screen = false;

double
soup_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A byte count with a binary unit, e.g. "474.7 MiB". */
static void
format_bytes(char *out, size_t n, double bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int			u = 0;

	while (bytes >= 1024 && u < 4)
		bytes /= 1024, u++;
	snprintf(out, n, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
}

static void
format_duration(char *out, size_t n, double seconds)
{
	long		s = (long) (seconds + 0.5);

	if (s >= 3600)
		snprintf(out, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
	else
		snprintf(out, n, "%ld:%02ld", s / 60, s % 60);
}

static void
draw(Progress *p, bool last)
{
	double		elapsed = soup_now() - p->start;
	double		frac = p->total > 0 ? (double) p->done / p->total : 1.0;
	double		rate = elapsed > 0 ? p->done / elapsed : 0;
	char		done[32],
				total[32],
				speed[32],
				eta[32];
	char		bar[BAR_WIDTH + 1];
	int			fill = (int) (frac * BAR_WIDTH);

	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	format_bytes(done, sizeof(done), (double) p->done);
	format_bytes(total, sizeof(total), (double) p->total);
	format_bytes(speed, sizeof(speed), rate);
	if (last)
		format_duration(eta, sizeof(eta), elapsed);
	else if (rate > 0)
		format_duration(eta, sizeof(eta), (p->total - p->done) / rate);
	else
		snprintf(eta, sizeof(eta), "--:--");
	fprintf(stderr, "\r%s [%s] %3d%% %s / %s  %s/s  %s %s\033[K",
			p->label, bar, (int) (frac * 100), done, total, speed,
			last ? "in" : "ETA", eta);
	if (last)
		fputc('\n', stderr);
	progress_on_screen = !last;
	fflush(stderr);
	p->last_draw = soup_now();
}

void
progress_start(Progress *p, const ClientOptions *opts, const char *label, uint64 total)
{
	p->enabled = !opts->quiet && isatty(fileno(stderr));
	p->label = label;
	p->total = total;
	p->done = 0;
	p->start = soup_now();
	p->last_draw = 0;
	if (p->enabled)
		draw(p, false);
}

void
progress_add(Progress *p, uint64 bytes)
{
	p->done += bytes;
	if (p->enabled && soup_now() - p->last_draw >= 0.1)
		draw(p, false);
}

void
progress_finish(Progress *p)
{
	if (p->enabled)
		draw(p, true);
}
