// The same through the C++ wrapper, including its error path.
#include <simdnorm/simdnorm.hpp>

#include <cstdio>
#include <vector>

int main() {
  const simdnorm::Shape shape{4, 5, 3, simdnorm::Layout::NHWC};
  std::vector<float> x(shape.elements()), scale(5), shift(5), mean(5, 0.5f), var(5, 4.0f);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 11);
  simdnorm::fold(5, {}, mean.data(), var.data(), 1e-5f, scale.data(), shift.data());
  simdnorm::affine({x.data(), shape}, {x.data(), shape}, scale.data(), shift.data(), simdnorm::Activation::Relu);
  try {
    simdnorm::forward_inference({x.data(), shape}, {x.data(), shape}, {}, mean.data(), var.data(), -1.0f);
    std::fprintf(stderr, "a negative eps was accepted\n");
    return 1;
  } catch (const simdnorm::Error& e) {
    if (e.status() != simdnorm::Status::InvalidArgument) return 1;
  }
  std::printf("simdnorm %s (C++): ok\n", simdnorm::version());
  return 0;
}
