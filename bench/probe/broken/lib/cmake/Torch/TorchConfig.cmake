# A Torch package that fails the way Debian's TorchConfig.cmake does when libtorch-dev's headers and CMake files are
# there but libtorch.so is not (libtorch1.13 removed by hand, or a half-copied libtorch tree): its own check of the
# library stops the configure. The test bench_peer_torch_broken puts it first on CMAKE_PREFIX_PATH to check that
# simdnorm's configure survives it.
include(FindPackageHandleStandardArgs)
set(TORCH_LIBRARY TORCH_LIBRARY-NOTFOUND)
set(TORCH_INCLUDE_DIRS ${CMAKE_CURRENT_LIST_DIR})
find_package_handle_standard_args(Torch DEFAULT_MSG TORCH_LIBRARY TORCH_INCLUDE_DIRS)
