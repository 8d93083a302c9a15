/*
 * catalog.c - lookups in pg_soup's catalog.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/guc.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"

#include "catalog.h"

/* Model names are identifiers users type and file names are built from. */
#define SOUP_MAX_MODEL_NAME 1024

Oid
soup_tensor_type_oid(void)
{
	Oid			nsp = get_namespace_oid("soup", false);
	Oid			typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum("tensor"),
										ObjectIdGetDatum(nsp));

	if (!OidIsValid(typid))
		elog(ERROR, "type soup.tensor does not exist");
	return typid;
}

void
soup_check_model_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > SOUP_MAX_MODEL_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("model name must have 1 to %d bytes", SOUP_MAX_MODEL_NAME)));
}

int
soup_pin_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

void
soup_restore_search_path(int nest_level)
{
	AtEOXact_GUC(true, nest_level);
}

SPIPlanPtr
soup_prepare_chunk_insert(void)
{
	Oid			argtypes[4] = {INT8OID, TEXTOID, INT4OID, soup_tensor_type_oid()};
	SPIPlanPtr	plan = SPI_prepare("INSERT INTO soup.chunks (model_id, tensor, chunk, data) "
								   "VALUES ($1, $2, $3, $4)", 4, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare the chunk insert: %s",
			 SPI_result_code_string(SPI_result));
	return plan;
}

void
soup_insert_chunk(SPIPlanPtr plan, int64 model_id, text *tensor, int32 chunk,
				  struct SoupTensor *value)
{
	Datum		values[4];

	values[0] = Int64GetDatum(model_id);
	values[1] = PointerGetDatum(tensor);
	values[2] = Int32GetDatum(chunk);
	values[3] = PointerGetDatum(value);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into soup.chunks");
}
