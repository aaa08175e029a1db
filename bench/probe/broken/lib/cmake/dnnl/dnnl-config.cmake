# A dnnl package that fails the way Debian's does when libdnnl-dev is installed without ocl-icd-opencl-dev: its
# config file requires OpenCL and stops the configure. The test bench_peer_onednn_broken puts it first on
# CMAKE_PREFIX_PATH to check that simdnorm's configure survives it.
include(FindPackageHandleStandardArgs)
set(OpenCL_FIND_REQUIRED TRUE)
set(OpenCL_LIBRARY OpenCL_LIBRARY-NOTFOUND)
set(OpenCL_INCLUDE_DIR OpenCL_INCLUDE_DIR-NOTFOUND)
find_package_handle_standard_args(OpenCL REQUIRED_VARS OpenCL_LIBRARY OpenCL_INCLUDE_DIR)
