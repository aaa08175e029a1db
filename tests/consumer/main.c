/* Normalises a 2x3x4 NCHW tensor through the C API and checks one property of the result. */
#include <math.h>
#include <simdnorm/simdnorm.h>
#include <stdio.h>

int main(void) {
  float x[24], y[24], mean[3], invstd[3];
  for (int i = 0; i < 24; ++i) x[i] = (float)(i % 7) - 2.0f;
  const simdnorm_shape shape = {2, 3, 4, SIMDNORM_NCHW};
  const simdnorm_status status =
      simdnorm_forward_training(&shape, x, y, NULL, NULL, 1e-5f, mean, invstd, NULL, NULL, 0.1f, 0u);
  if (status != SIMDNORM_SUCCESS) {
    fprintf(stderr, "forward_training failed: %s\n", simdnorm_last_error());
    return 1;
  }
  double sum = 0.0;
  for (int n = 0; n < 2; ++n)
    for (int s = 0; s < 4; ++s) sum += y[(n * 3 + 1) * 4 + s];
  if (fabs(sum) > 1e-5) {
    fprintf(stderr, "channel 1 of y does not have mean 0 (sum %g)\n", sum);
    return 1;
  }
  printf("simdnorm %s on %s: ok\n", simdnorm_version(), simdnorm_isa());
  return 0;
}
