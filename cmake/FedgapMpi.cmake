# FEDGAP_MPI = AUTO | ON | OFF: spread runs over MPI (mpi/; `mpirun -np P fedgap run ...`).
#   AUTO: build the MPI transport when an MPI C library is found (Debian: libopenmpi-dev), else skip it.
#   ON:   a missing MPI is a configure error.   OFF: never touch MPI.
# Without it, fedgap runs in one process and refuses to run under mpirun with more than one.
set(FEDGAP_WITH_MPI OFF)
string(TOUPPER "${FEDGAP_MPI}" _fg_mpi_mode)
if(NOT _fg_mpi_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "FEDGAP_MPI must be AUTO, ON or OFF (got '${FEDGAP_MPI}')")
endif()
if(NOT _fg_mpi_mode STREQUAL "OFF")
  find_package(MPI COMPONENTS C QUIET)
  if(MPI_C_FOUND)
    set(FEDGAP_WITH_MPI ON)
    message(STATUS "fedgap: MPI transport ON (MPI ${MPI_C_VERSION}, ${MPIEXEC_EXECUTABLE})")
  elseif(_fg_mpi_mode STREQUAL "ON")
    message(FATAL_ERROR "FEDGAP_MPI=ON but no MPI C library was found (scripts/install-deps.sh installs Open MPI)")
  else()
    message(STATUS "fedgap: MPI transport not built: no MPI C library was found")
  endif()
endif()
