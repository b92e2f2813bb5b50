/* The statistics of an experiment over several seeds (fl/seed_table.h): the mean curve fedgap plot
 * draws, against hand-computed means and sample standard deviations. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "fl/seed_table.h"

static fg_round_record rec(int round, int evaluated, double accuracy) {
  fg_round_record r;
  memset(&r, 0, sizeof r);
  r.round = round;
  r.evaluated = evaluated;
  r.accuracy = accuracy;
  return r;
}

Test(seed_table, the_curve_holds_rounds_every_seed_evaluated) {
  /* round 2: 0.5, 0.6, 0.7 -> mean 0.6, std 0.1; round 3 is evaluated by seed 0 only; round 4:
   * 0.8, 0.8, 0.9 -> mean 0.8333..., std sqrt(((1/30)^2 2 + (2/30)^2) / 2) = sqrt(3) / 30 */
  const fg_round_record s0[] = {rec(1, 0, 0), rec(2, 1, 0.5), rec(3, 1, 0.55), rec(4, 1, 0.8)};
  const fg_round_record s1[] = {rec(1, 0, 0), rec(2, 1, 0.6), rec(3, 0, 0), rec(4, 1, 0.8)};
  const fg_round_record s2[] = {rec(1, 0, 0), rec(2, 1, 0.7), rec(3, 0, 0), rec(4, 1, 0.9)};
  const fg_round_record *rounds[3] = {s0, s1, s2};
  const int n[3] = {4, 4, 4};
  int round[4];
  double mean[4], std[4];
  int points = fg_seed_curve(rounds, n, 3, round, mean, std, 4);
  cr_assert_eq(points, 2);
  cr_assert_eq(round[0], 2);
  cr_assert_eq(round[1], 4);
  cr_assert_float_eq(mean[0], 0.6, 1e-12);
  cr_assert_float_eq(std[0], 0.1, 1e-12);
  cr_assert_float_eq(mean[1], 2.5 / 3.0, 1e-12);
  cr_assert_float_eq(std[1], sqrt(3.0) / 30.0, 1e-12);
  /* one seed: its own points, no spread; the capacity bounds the points */
  points = fg_seed_curve(rounds, n, 1, round, mean, std, 2);
  cr_assert_eq(points, 2);
  cr_assert_eq(round[1], 3);
  cr_assert_float_eq(mean[1], 0.55, 1e-12);
  cr_assert_eq(std[1], 0.0);
  cr_assert_eq(fg_seed_curve(rounds, n, 0, round, mean, std, 4), 0);
}
