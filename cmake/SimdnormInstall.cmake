# Install rules: the static library, the public headers, and a CMake package (simdnormConfig.cmake with targets in
# the simdnorm:: namespace and a version file) for find_package(simdnorm CONFIG).
include(CMakePackageConfigHelpers)

set(SIMDNORM_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/simdnorm" CACHE STRING
    "Where simdnormConfig.cmake is installed, relative to the prefix")

install(TARGETS simdnorm EXPORT simdnormTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/simdnorm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT simdnormTargets NAMESPACE simdnorm:: DESTINATION ${SIMDNORM_INSTALL_CMAKEDIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/simdnormConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/simdnormConfig.cmake
  INSTALL_DESTINATION ${SIMDNORM_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/simdnormConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/simdnormConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/simdnormConfigVersion.cmake
  DESTINATION ${SIMDNORM_INSTALL_CMAKEDIR})
