/* The transport of spread runs (fl/spread.h) over MPI (Open MPI): the processes of
 * MPI_COMM_WORLD, rank 0 the server. Built when FEDGAP_MPI finds an MPI library (FEDGAP_WITH_MPI
 * in fedgap_config.h); the command line opens it when the process was started by mpirun.
 *
 * Messages: broadcasts and gathers are MPI collectives; a worker's result is two point-to-point
 * messages to rank 0 (its bytes, then its floats), which MPI delivers in order per sender, so
 * rank 0 takes each worker's results in the order it sent them. Every wait polls its request with
 * short sleeps (idle processes leave the cores to the ones that compute). On rank 0 every wait is
 * bounded by the watchdog: past it, the operation fails naming the rank and what was awaited, and
 * the transport is broken.
 *
 * Failures: Debian's Open MPI has no fault tolerance, so a run whose transport broke (or whose
 * peer died) cannot end in step: fg_mpi_close then calls MPI_Abort, the documented last resort,
 * after the caller printed its one line. When a process dies, mpirun stops the others with
 * SIGTERM: rank 0 then prints one line saying what it awaited (fl/spread.h `note`: which rank
 * trains which slot) before it dies of the signal. Owns: MPI's initialisation and the transport's
 * context. */
#ifndef FG_MPI_TRANSPORT_H
#define FG_MPI_TRANSPORT_H

#include "fl/spread.h"

/* Initialises MPI and the transport. watchdog: the seconds rank 0 waits for any one message from a
 * worker (<= 0: no limit). FG_ERR_LIBRARY naming the MPI call when MPI fails. */
fg_status fg_mpi_open(double watchdog, fg_transport **out);

/* Ends MPI and frees the transport: MPI_Finalize when the processes ended in step, and returns
 * exit_status; when an operation failed (a late or dead worker, an MPI error) or the caller left
 * the run out of step (out_of_step: others may wait for it), MPI_Abort with exit_status (1 if it
 * is 0), which does not return. Safe on NULL (returns exit_status). */
int fg_mpi_close(fg_transport *t, int exit_status, int out_of_step);

#endif
