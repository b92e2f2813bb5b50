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

# The SVD op (cpu/linalg.c) calls LAPACK's sgesdd_ through OpenBLAS, which bundles LAPACK unless
# it was built with NO_LAPACK. Debian's packages ship no LAPACKE (lapacke.h), and none is needed:
# the Fortran routine is called directly.
include(CheckFunctionExists)
set(CMAKE_REQUIRED_LIBRARIES ${_fg_blas_lib})
check_function_exists(sgesdd_ FEDGAP_HAVE_SGESDD)
unset(CMAKE_REQUIRED_LIBRARIES)
if(NOT FEDGAP_HAVE_SGESDD)
  message(FATAL_ERROR "${_fg_blas_lib} does not export LAPACK's sgesdd_ (an OpenBLAS built with "
                      "NO_LAPACK?): install Debian's libopenblas-openmp-dev (scripts/install-deps.sh)")
endif()

# cJSON: JSON headers of safetensors files, metrics records, run summaries.
find_package(PkgConfig REQUIRED)
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
