# Host dependencies: OpenBLAS (GEMM; its LAPACK for SVD), zlib (gzipped datasets), OpenMP
# (threaded elementwise work). Installed on Debian by scripts/install-deps.sh.
find_package(ZLIB REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS C)

# Prefer OpenBLAS's own CMake package (Debian ships one per threading variant; we install the
# OpenMP one so its threads and ours are one pool), then pkg-config, then a plain search.
find_package(OpenBLAS CONFIG QUIET)
if(OpenBLAS_FOUND)
  set(_fg_blas_inc ${OpenBLAS_INCLUDE_DIRS})
  set(_fg_blas_lib ${OpenBLAS_LIBRARIES})
else()
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(_fg_openblas QUIET openblas)
  endif()
  if(_fg_openblas_FOUND)
    set(_fg_blas_inc ${_fg_openblas_INCLUDE_DIRS})
    find_library(_fg_blas_lib NAMES openblas HINTS ${_fg_openblas_LIBRARY_DIRS})
  else()
    find_path(_fg_blas_inc cblas.h PATH_SUFFIXES openblas openblas-openmp)
    find_library(_fg_blas_lib NAMES openblas)
  endif()
endif()
if(NOT _fg_blas_lib)
  message(FATAL_ERROR "OpenBLAS not found: run scripts/install-deps.sh (Debian package libopenblas-openmp-dev)")
endif()
add_library(fedgap_openblas INTERFACE)
target_include_directories(fedgap_openblas INTERFACE ${_fg_blas_inc})
target_link_libraries(fedgap_openblas INTERFACE ${_fg_blas_lib})
message(STATUS "fedgap: OpenBLAS ${_fg_blas_lib}")

# cJSON: JSON headers of safetensors files, metrics records, run summaries.
find_package(PkgConfig REQUIRED)
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
