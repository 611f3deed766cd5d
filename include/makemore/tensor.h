// Matrix types shared by every layer: row-major float matrices with one row per example,
// laid out as PyTorch lays out (B, C), so torch reference data loads as-is.
#pragma once
#include <Eigen/Core>

namespace mm {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatMap = Eigen::Map<Mat>;
using ConstMatMap = Eigen::Map<const Mat>;
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;
using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace mm
