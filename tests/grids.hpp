// Shapes the kernel tests sweep.
#ifndef SIMDNORM_TESTS_GRIDS_HPP_
#define SIMDNORM_TESTS_GRIDS_HPP_

#include <simdnorm/simdnorm.h>

#include <cstddef>

namespace simdnorm_test {

inline constexpr simdnorm_layout kLayouts[] = {SIMDNORM_NCHW, SIMDNORM_NHWC};

// The grid every kernel is compared with the reference on (training and backward skip N*spatial < 2).
inline constexpr std::size_t kGridN[] = {1, 2, 5};
inline constexpr std::size_t kGridC[] = {1, 3, 8, 15, 16, 17, 33, 64, 130};
inline constexpr std::size_t kGridSpatial[] = {1, 2, 7, 49, 61, 196};

// 1, and one below, at and one past each vector width in floats: 4 (SSE2), 8 (AVX2), 16 (AVX-512).
inline constexpr std::size_t kRemainderSizes[] = {1, 3, 4, 5, 7, 8, 9, 15, 16, 17};

struct LargeShape {
  std::size_t n, c, spatial;
};
// ResNet-50's first BN layer at batch 4, a late layer at batch 32, a wide fully connected layer at batch 256,
// channels of just over 2^20 floats, which NCHW cuts into two chunks whose boundary falls inside a run (the second
// passes walk such chunks last run first), 7x7 planes in a 17 MB tensor, which NCHW first passes read in groups
// of adjacent channels fetched together (15 a group in training, 7 in backward, the last group of each shorter), and
// 48 channels in a 17 MB tensor, whose NHWC rows the second passes write from coefficients held in registers (with
// AVX-512; wider than the narrow rows of AVX2 and SSE2), with streaming stores when out of place.
inline constexpr LargeShape kLargeShapes[] = {
    {4, 64, 3136}, {32, 256, 49}, {256, 1024, 1}, {3, 2, (1u << 20) / 3 + 5}, {88, 1000, 49}, {2, 48, 44000}};

// NHWC rows of many channels: a batch of one 7x7 image of 2048 channels (ResNet-50's last layers) and 2100 channels
// (not a whole number of vectors) over 2 x 37 rows.
struct WideRows {
  std::size_t n, c, spatial;
};
inline constexpr WideRows kWideRows[] = {{1, 2048, 49}, {2, 2100, 37}};

}  // namespace simdnorm_test

#endif  // SIMDNORM_TESTS_GRIDS_HPP_
