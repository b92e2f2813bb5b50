/* Internals shared by the CPU convolution files: cpu/conv.c (the backend entries, the generic
 * im2col + GEMM path) and cpu/conv3x3.c (register-blocked AVX2/FMA kernels for dense 3x3
 * stride-1 convolutions). The functions here trust the shapes: the entry points of
 * engine/backend/ops.h have validated them. Not part of the public interface. */
#ifndef FG_CPU_CONV_INTERNAL_H
#define FG_CPU_CONV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu_internal.h"

/* Work of one lane: the images lane, lane + lanes, ... of a call, described by `job`. */
typedef void (*fg_cpu_lane_fn)(const void *job, int lane);

/* Runs fn(job, l) for every lane l in [0, lanes), spread over `threads` OpenMP threads; code
 * inside a lane sees one thread (OpenBLAS included). */
void fg_cpu_run_lanes(int lanes, int threads, fg_cpu_lane_fn fn, const void *job);

/* 1 when this CPU can run the AVX2/FMA kernels of cpu/conv3x3.c (checked at run time). */
int fg_cpu_conv3x3_cpu_supported(void);

/* 1 when cpu/conv3x3.c computes convolutions with descriptor `d` and a kh x kw kernel on this
 * backend: 3x3, stride 1, pad <= 2, groups 1, and the backend's avx2 flag set. */
int fg_cpu_conv3x3_applies(const fg_backend *b, const fg_conv_desc *d, int64_t kh, int64_t kw);

/* The same contracts as the backend entries (engine/backend/backend.h), for convolutions where
 * fg_cpu_conv3x3_applies: x, dx [N,C,H,W], w, dw [O,C,3,3], bias [O] | NULL, y, dy [N,O,Ho,Wo].
 * The weight gradient leaves dbias to the caller. The workspace holds at least what
 * fg_cpu_conv3x3_workspace reports with limit 0 (the entry point checked it); the directions
 * run the fastest layouts that fit in it (F(4x4, 3x3) given room). */
size_t fg_cpu_conv3x3_workspace(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                const fg_tensor *w, size_t limit);
fg_status fg_cpu_conv3x3_forward(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                 const fg_tensor *w, const fg_tensor *bias, fg_tensor *y,
                                 fg_workspace ws);
fg_status fg_cpu_conv3x3_backward_data(const fg_backend *b, const fg_conv_desc *d,
                                       const fg_tensor *dy, const fg_tensor *w, fg_tensor *dx,
                                       int accumulate, fg_workspace ws);
fg_status fg_cpu_conv3x3_backward_filter(const fg_backend *b, const fg_conv_desc *d,
                                         const fg_tensor *x, const fg_tensor *dy, fg_tensor *dw,
                                         fg_workspace ws);

/* Which weight-gradient path cpu/conv3x3.c takes for x [N,C,H,W] and w [O,C,3,3] (the tests
 * check that their shapes reach each one). */
typedef enum fg_cpu_conv3x3_grad {
  FG_CPU_C3_GRAD_DIRECT,   /* on planes, 4 output channels x 3 taps per tile */
  FG_CPU_C3_GRAD_VECTORS,  /* by output-channel vectors (small planes) */
  FG_CPU_C3_GRAD_WINOGRAD, /* Winograd F(3x3, 2x2) */
} fg_cpu_conv3x3_grad;
fg_cpu_conv3x3_grad fg_cpu_conv3x3_grad_path(const fg_backend *b, const fg_conv_desc *d,
                                             const fg_tensor *x, const fg_tensor *w);

/* How a direction of cpu/conv3x3.c runs for x [N,C,H,W] and w [O,C,3,3] (the forward, or the
 * backward data when `backward`): 0 directly, else as Winograd with this many images per block
 * (the tests check that their shapes reach blocks of several small images). */
int64_t fg_cpu_conv3x3_block_images(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                    const fg_tensor *w, int backward);

/* The same direction's Winograd output tile given a workspace of ws_bytes: 2 (F(2x2, 3x3)), 4
 * (F(4x4, 3x3)), or 0 when it runs directly (the tests check that their shapes reach both). */
int fg_cpu_conv3x3_wino_tile(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                             const fg_tensor *w, size_t ws_bytes, int backward);

/* Whether the generic path's GEMMs fit BLAS's int for the convolution q describes (the 3x3
 * kernels have no such limit): FG_OK or FG_ERR_UNSUPPORTED naming the extent. */
fg_status fg_cpu_conv_supports(const fg_backend *b, const fg_op_query *q);

#endif
