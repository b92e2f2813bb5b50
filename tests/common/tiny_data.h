/* A small Fashion-MNIST-format dataset written by the tests (plain IDX files under the names the
 * Fashion-MNIST loader looks for), for FL runs that take seconds: images whose brightness follows
 * the label, plus noise, from the test RNG. */
#ifndef FG_TEST_TINY_DATA_H
#define FG_TEST_TINY_DATA_H

/* Writes n_train training and n_test test samples into `dir` (which exists). */
void fgt_write_tiny_fmnist(const char *dir, int n_train, int n_test, unsigned long long seed);

/* The cnn of `width` for Fashion-MNIST's shapes (1 x 28 x 28, 10 classes); asserts it builds. */
struct fg_graph;
struct fg_graph *fgt_tiny_cnn(double width);

#endif
