/*
 * catalog.h - lookups in pg_soup's catalog (schema soup).
 */
#ifndef SOUP_CATALOG_H
#define SOUP_CATALOG_H

#include "postgres.h"

#include "executor/spi.h"

struct SoupTensor;

/* OID of the soup.tensor type. */
extern Oid	soup_tensor_type_oid(void);

/* Refuse an empty, over-long or otherwise unusable model name. */
extern void soup_check_model_name(const char *name);

/*
 * Run catalog queries with search_path = pg_catalog, pg_temp, so that no
 * object a caller put earlier on the path can stand in for a built-in one.
 * Returns the GUC nest level to give back to soup_restore_search_path.
 */
extern int	soup_pin_search_path(void);
extern void soup_restore_search_path(int nest_level);

/*
 * Insert chunk rows of soup.chunks through SPI: prepare the statement once
 * (inside SPI_connect), then insert one row a call.
 */
extern SPIPlanPtr soup_prepare_chunk_insert(void);
extern void soup_insert_chunk(SPIPlanPtr plan, int64 model_id, text *tensor,
							  int32 chunk, struct SoupTensor *value);

#endif							/* SOUP_CATALOG_H */
