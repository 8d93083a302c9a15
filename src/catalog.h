/*
 * catalog.h - lookups in pg_soup's catalog (schema soup).
 */
#ifndef SOUP_CATALOG_H
#define SOUP_CATALOG_H

#include "postgres.h"

/* OID of the soup.tensor type. */
extern Oid	soup_tensor_type_oid(void);

/* Refuse an empty, over-long or otherwise unusable model name. */
extern void soup_check_model_name(const char *name);

#endif							/* SOUP_CATALOG_H */
