// Matrix types shared by every layer: row-major float matrices with one row per example,
// laid out as PyTorch lays out (B, C), so torch reference data loads as-is.
#pragma once
#include <Eigen/Core>
#include <cstddef>
#include <new>
#include <vector>

namespace mm {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatMap = Eigen::Map<Mat>;
using ConstMatMap = Eigen::Map<const Mat>;
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;
using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Cache-line (64-byte) alignment for the long-lived float buffers. Vectorized code peels a
// different number of scalar iterations depending on where a buffer starts, and the scalar and
// packet paths of some functions differ in the last bit; a fixed alignment makes two identical
// trainings in one process produce identical bits.
inline constexpr std::size_t kBufferAlign = 64;
inline constexpr std::size_t kAlignFloats = kBufferAlign / sizeof(float);

template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() noexcept = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{kBufferAlign})); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete (p, std::align_val_t{kBufferAlign}); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const noexcept {
    return true;
  }
};

using FloatBuf = std::vector<float, AlignedAllocator<float>>;

}  // namespace mm
