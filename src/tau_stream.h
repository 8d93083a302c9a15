/*
 * tau_stream.h - one model's task vector of one tensor, chunk by chunk.
 */
#ifndef SOUP_TAU_STREAM_H
#define SOUP_TAU_STREAM_H

#include "postgres.h"

#include "executor/spi.h"

/* Receives tau = data - base of one chunk (float64, n elements). */
typedef void (*SoupTauConsumer) (void *arg, const double *tau, int32 n);

/*
 * The plan reading (data, base) of the chunks that model $1 and base $2
 * both have of tensor $3, in chunk order when ordered.  Inside SPI.
 */
extern SPIPlanPtr soup_prepare_tau_stream(bool ordered, const char *fname);

/* Feed every such chunk's tau to fn (one pass; each chunk's memory freed after). */
extern void soup_stream_tau(SPIPlanPtr plan, Datum *args, const char *fname,
							SoupTauConsumer fn, void *arg);

#endif							/* SOUP_TAU_STREAM_H */
