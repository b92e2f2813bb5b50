/* Whole-model finite differences on ResNet-18 (a minute each on two cores): every parameter
 * tensor of the whole model, and of NeuLite's last stage with its two nHSIC terms, agrees with
 * central differences of the loss (fgt_model_gradcheck; the small models are in
 * tests/cpu/test_plan.c). */
#include "common/model_case.h"

#include <criterion/criterion.h>

Test(gradcheck, neulite_resnet_last_stage_with_nhsic_terms) {
  fgt_model_case m = {"resnet18", 0.125, 3, 16, 16, 0, 4, 4, 0, 0};
  fgt_model_gradcheck(&m);
}

Test(gradcheck, whole_resnet18) {
  fgt_model_case m = {"resnet18", 0.25, 3, 16, 16, 0, 2, 0, 0, 0};
  fgt_model_gradcheck(&m);
}
