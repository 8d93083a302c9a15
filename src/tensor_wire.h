/*
 * tensor_wire.h - the binary form of soup.tensor (send/recv, COPY BINARY).
 *
 * Shared by the server (tensor.c) and the client, which builds and reads
 * chunk values itself so that checkpoints stream over COPY without a
 * conversion on either side.  A value is:
 *
 *   byte    version (SOUP_TENSOR_SEND_VERSION)
 *   byte    dtype code (kernels/dtype.h)
 *   byte    ndim
 *   int32   ndim dimensions, network byte order
 *   ...     the elements, packed little-endian as in safetensors
 */
#ifndef SOUP_TENSOR_WIRE_H
#define SOUP_TENSOR_WIRE_H

#define SOUP_TENSOR_SEND_VERSION 1

/* Bytes before the data of a 1-D value (a chunk). */
#define SOUP_TENSOR_WIRE_1D_HEADER 7

#endif							/* SOUP_TENSOR_WIRE_H */
