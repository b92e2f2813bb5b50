/* Comparing the files of two FL run folders, for resume and crash tests: the same tensors bit for
 * bit, and the same metrics and summary apart from what depends on the machine and the process
 * (wall times, device-copy times, the process's peak resident memory). */
#ifndef FG_TEST_RUN_COMPARE_H
#define FG_TEST_RUN_COMPARE_H

/* Every tensor and metadata entry of two safetensors files is identical (asserts). */
void fgt_same_tensors(const char *a, const char *b);

/* dir_a/metrics.jsonl and dir_b/metrics.jsonl hold the same records, field by field, apart from
 * seconds, elapsed, transfer_seconds and process peaks (in rounds and clients); likewise
 * summary.json apart from wall_seconds and process_peak (asserts). */
void fgt_same_run_records(const char *dir_a, const char *dir_b);

#endif
