// Version guards of the CUDA backend: everything newer than CUDA 10.2 / cuDNN 8.2 (a Jetson Nano's
// JetPack 4.6) is used only behind one of these, so the Nano's own toolkit builds the backend.
// Owns nothing.
#ifndef FG_CUDA_COMPAT_H
#define FG_CUDA_COMPAT_H

#include <cuda_runtime.h>

// cublasSetWorkspace (our own cuBLAS workspace, charged to the ledger): CUDA 11.0 and later. On
// older toolkits cuBLAS keeps its internal pool, counted in the backend's measured baseline.
#if defined(CUDART_VERSION) && CUDART_VERSION >= 11000
#define FG_CUDA_HAS_CUBLAS_WORKSPACE 1
#else
#define FG_CUDA_HAS_CUBLAS_WORKSPACE 0
#endif

// CUDA Graph capture of a training step (cudaStreamBeginCapture with a capture mode argument,
// cudaGraphInstantiate / cudaGraphLaunch): CUDA 10.1 and later; the executable-graph update that
// re-points arguments needs 11.0.
#if defined(CUDART_VERSION) && CUDART_VERSION >= 11000
#define FG_CUDA_HAS_GRAPH_UPDATE 1
#else
#define FG_CUDA_HAS_GRAPH_UPDATE 0
#endif

#endif
