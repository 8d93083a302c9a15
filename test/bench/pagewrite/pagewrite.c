/*
 * pagewrite.c - a measurement, not part of pg_soup: how fast PostgreSQL 15
 * writes a file's bytes as whole relation pages the way its index builds
 * do (smgrextend of each page, WAL-logged as full pages by log_newpages),
 * against TOAST's rows (test/bench/pagewrite/run.sh compares them).  It
 * answers one question of the performance issue: what a storage path that
 * leaves TOAST could gain for imports.  The pages it writes are raw bytes
 * behind a page header: the table must be truncated, never read.
 *
 *   bench_pagewrite(rel regclass, path text, pages_per_record int,
 *                   wal boolean) RETURNS bigint (bytes written)
 */
#include "postgres.h"
#include <fcntl.h>
#include <unistd.h>
#include "access/table.h"
#include "access/xloginsert.h"
#include "storage/bufpage.h"
#include "storage/smgr.h"
#include "utils/rel.h"
#include "utils/builtins.h"
#include "fmgr.h"
PG_MODULE_MAGIC;
PG_FUNCTION_INFO_V1(bench_pagewrite);

Datum
bench_pagewrite(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			batch = PG_GETARG_INT32(2);
	bool		wal = PG_GETARG_BOOL(3);
	Relation	rel = table_open(relid, AccessExclusiveLock);
	SMgrRelation smgr = RelationGetSmgr(rel);
	BlockNumber blk = smgrnblocks(smgr, MAIN_FORKNUM);
	int			fd = open(path, O_RDONLY);
	size_t		payload = BLCKSZ - SizeOfPageHeaderData;
	char	   *pagebuf = palloc_extended((Size) BLCKSZ * 33, MCXT_ALLOC_ZERO);
	char	   *pages_mem = (char *) TYPEALIGN(BLCKSZ, pagebuf);
	Page		pages[32];
	BlockNumber blknos[32];
	int64		total = 0;

	if (fd < 0)
		elog(ERROR, "open %s: %m", path);
	if (batch < 1 || batch > 32)
		elog(ERROR, "pages_per_record must be 1 to 32");
	for (;;)
	{
		int			n = 0;

		for (; n < batch; n++)
		{
			Page		p = pages_mem + (Size) n * BLCKSZ;
			ssize_t		got;

			PageInit(p, BLCKSZ, 0);
			got = read(fd, p + SizeOfPageHeaderData, payload);
			if (got <= 0)
				break;
			((PageHeader) p)->pd_lower = SizeOfPageHeaderData + got;
			pages[n] = p;
			blknos[n] = blk + n;
			total += got;
		}
		if (n == 0)
			break;
		if (wal)
			log_newpages(&rel->rd_node, MAIN_FORKNUM, n, blknos, pages, true);
		for (int i = 0; i < n; i++)
		{
			PageSetChecksumInplace(pages[i], blknos[i]);
			smgrextend(smgr, MAIN_FORKNUM, blknos[i], pages[i], true);
		}
		blk += n;
		if (n < batch)
			break;
	}
	close(fd);
	smgrimmedsync(smgr, MAIN_FORKNUM);
	table_close(rel, NoLock);
	PG_RETURN_INT64(total);
}
