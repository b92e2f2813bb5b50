/* Test hook for crash-safety tests: named points where the process can be made to kill itself.
 *
 * With the environment variable FEDGAP_TEST_KILL_AT=NAME:N, the N-th call (1-based, counted in
 * this process) of fg_killpoint(NAME) raises SIGKILL on the process itself: an abrupt stop at a
 * chosen moment, exactly as a power cut or the OOM killer would stop it, with no handler, flush
 * or atexit run. Without the variable (always, outside tests) every call is a cached check of a
 * flag. The points (names are the contract of tests/slow/test_kill_resume.c):
 *   train_step       each local training step (engine/nn/fit.c)
 *   aggregate        each client update added to the aggregator, and the aggregation's end
 *   atomic_write     each block written to an atomic file's temporary file
 *   atomic_rename    an atomic file about to be renamed over its target (written and synced)
 *   metrics_append   between the two lines an fg_metrics_append writes (jsonl, then csv)
 *   checkpoint_begin before a method state is written, and before a checkpoint is (so, for a
 *                    method with a state, between the two writes)
 *   checkpoint_done  a checkpoint and its method state in place: between rounds
 *   device_chunk     each chunk of a result `fedgap device` hands to the MQTT library (mqtt/)
 *   serve_spool      each result `fedgap serve` has written to its spool (mqtt/)
 * Owns: the parsed variable and the call counter (process-wide, not thread-safe: the points are
 * on the main thread). */
#ifndef FG_KILLPOINT_H
#define FG_KILLPOINT_H

void fg_killpoint(const char *name);

#endif
