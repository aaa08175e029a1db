// Links against oneDNN and creates a CPU engine: what the benchmark needs of it.
#include <oneapi/dnnl/dnnl.hpp>

int main() {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return dnnl_version() == nullptr ? 1 : 0;
}
