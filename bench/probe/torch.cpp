// Links against libtorch and runs one of the ATen kernels the benchmark times: what the benchmark needs of it.
#include <ATen/ATen.h>

int main() {
  const at::Tensor x = at::ones({2, 3});
  const auto out = at::native_layer_norm(x, {3}, at::Tensor(), at::Tensor(), 1e-5);
  return std::get<0>(out).numel() == 6 ? 0 : 1;
}
