// Tests for the safetensors checkpoint reader/writer: round trips, the exact byte layout (so
// Python's safetensors can read our files), atomic saves, and that every truncation and a few
// hundred header corruptions end in mm::Error instead of a crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "makemore/checkpoint.h"
#include "makemore/error.h"

namespace fs = std::filesystem;

namespace {

// Each test gets a fresh directory so temp-file checks see only what that test wrote.
class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("mm_ckpt_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A file with the given header text (unpadded) followed by `data_bytes` bytes of zeros.
std::string make_file(const std::string& header, size_t data_bytes) {
  return u64_le(header.size()) + header + std::string(data_bytes, '\0');
}

mm::TensorFile sample_file() {
  mm::TensorFile f;
  f.tensors.push_back({"wte", {3, 2}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.5f}});
  f.tensors.push_back({"bias", {4}, {-1.f, 0.f, 1e-30f, 3.4e38f}});
  f.tensors.push_back({"scalar", {}, {42.f}});
  f.tensors.push_back({"empty", {0, 5}, {}});
  f.tensors.push_back({"a_last", {1, 1}, {7.f}});  // name sorts first: checks file order is kept
  f.metadata["config"] = R"({"n_embd": 64, "name": "tiny \"quoted\""})";
  f.metadata["note"] = "naïve 日本語 ✓";
  f.metadata["empty"] = "";
  return f;
}

// Runs load and reports whether it threw mm::Error; any other exception fails the test.
bool load_throws_mm_error(const std::string& p) {
  try {
    (void)mm::load_safetensors(p);
    return false;
  } catch (const mm::Error&) {
    return true;
  }
}

std::string load_error_message(const std::string& p) {
  try {
    (void)mm::load_safetensors(p);
  } catch (const mm::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(CheckpointTest, RoundTrip) {
  const auto original = sample_file();
  const auto p = path("model.safetensors");
  mm::save_safetensors(p, original);
  const auto loaded = mm::load_safetensors(p);
  ASSERT_EQ(loaded.tensors.size(), original.tensors.size());
  for (size_t i = 0; i < original.tensors.size(); ++i) {
    EXPECT_EQ(loaded.tensors[i].name, original.tensors[i].name);
    EXPECT_EQ(loaded.tensors[i].shape, original.tensors[i].shape);
    EXPECT_EQ(loaded.tensors[i].data, original.tensors[i].data);
  }
  EXPECT_EQ(loaded.metadata, original.metadata);
  ASSERT_NE(loaded.find("bias"), nullptr);
  EXPECT_EQ(loaded.find("bias")->data[3], 3.4e38f);
  EXPECT_EQ(loaded.find("missing"), nullptr);
}

// Values damaged after the save (the header intact) are found by the checksum, every byte of
// them; the metadata read back does not show the checksum entry.
TEST_F(CheckpointTest, DamagedValuesAreFound) {
  const auto p = path("model.safetensors");
  mm::save_safetensors(p, sample_file());
  const std::string bytes = read_bytes(p);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const std::size_t data_begin = 8 + header_len;
  ASSERT_LT(data_begin, bytes.size());
  for (std::size_t i = data_begin; i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[i] = static_cast<char>(damaged[i] ^ 0x10);
    write_bytes(p, damaged);
    const std::string msg = load_error_message(p);
    EXPECT_NE(msg.find("damaged after it was saved"), std::string::npos) << "byte " << i << ": " << msg;
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  }
  write_bytes(p, bytes);
  EXPECT_EQ(mm::load_safetensors(p).metadata, sample_file().metadata);
}

TEST_F(CheckpointTest, HeaderPaddedToMultipleOfEight) {
  // Vary the name length so the unpadded header hits every residue mod 8.
  for (int len = 1; len <= 8; ++len) {
    mm::TensorFile f;
    f.tensors.push_back({std::string(static_cast<size_t>(len), 'x'), {1}, {1.f}});
    const auto p = path("pad.safetensors");
    mm::save_safetensors(p, f);
    const auto bytes = read_bytes(p);
    ASSERT_GE(bytes.size(), 8u);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + n + 4);
    EXPECT_EQ(mm::load_safetensors(p).tensors.at(0).name, f.tensors[0].name);
  }
}

TEST_F(CheckpointTest, ByteLayoutIsSafetensors) {
  mm::TensorFile f;
  f.tensors.push_back({"a", {2}, {1.0f, -2.0f}});
  f.metadata["k"] = "v";
  const auto p = path("tiny.safetensors");
  mm::save_safetensors(p, f);

  const std::string data("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);  // 1.0f, -2.0f little-endian
  // FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3) of the file's content as
  // docs/run-folder.md defines it: each metadata key and value but the checksum's (sorted by
  // key), then each tensor's name, dimension count, dimensions and values; a string is its
  // length (8 bytes, little-endian) then its bytes.
  std::string content;
  const auto text = [&](const std::string& s) { content += u64_le(s.size()) + s; };
  text("k");
  text("v");
  text("a");
  content += u64_le(1) + u64_le(2) + data;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : content) h = (h ^ c) * 0x100000001b3ULL;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  std::string header = R"({"__metadata__":{"k":"v","makemore.fnv1a64":")" + std::string(hex) +
                       R"("},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string expected = u64_le(header.size()) + header + data;
  EXPECT_EQ(read_bytes(p), expected);
}

TEST_F(CheckpointTest, LoadsReferenceStyleFile) {
  // As the Python library may write it: no metadata key at all, tensors not in offset order.
  const std::string header =
      R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const auto p = path("ref.safetensors");
  write_bytes(p, make_file(header, 8));
  const auto loaded = mm::load_safetensors(p);
  ASSERT_EQ(loaded.tensors.size(), 2u);
  EXPECT_EQ(loaded.tensors[0].name, "a");
  EXPECT_EQ(loaded.tensors[1].name, "b");
  EXPECT_TRUE(loaded.metadata.empty());
}

TEST_F(CheckpointTest, AtomicSaveReplacesAndLeavesNoTempFiles) {
  const auto p = path("model.safetensors");
  auto f = sample_file();
  mm::save_safetensors(p, f);
  f.tensors.resize(1);
  f.tensors[0].data[0] = 99.f;
  f.metadata = {{"step", "2"}};
  mm::save_safetensors(p, f);
  const auto loaded = mm::load_safetensors(p);
  ASSERT_EQ(loaded.tensors.size(), 1u);
  EXPECT_EQ(loaded.tensors[0].data[0], 99.f);
  EXPECT_EQ(loaded.metadata, f.metadata);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"model.safetensors"});
}

TEST_F(CheckpointTest, SaveIntoMissingDirectoryThrows) {
  const auto p = path("no/such/dir/model.safetensors");
  try {
    mm::save_safetensors(p, sample_file());
    FAIL() << "expected mm::Error";
  } catch (const mm::Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, FailedRenameLeavesNoTempFile) {
  // The target is a non-empty directory, so the final rename fails after the temp file was written.
  const auto p = path("taken");
  fs::create_directories(fs::path(p) / "child");
  EXPECT_THROW(mm::save_safetensors(p, sample_file()), mm::Error);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"taken"});
}

TEST_F(CheckpointTest, SaveRejectsBadTensors) {
  mm::TensorFile f;
  f.tensors.push_back({"a", {2, 2}, {1.f}});
  EXPECT_THROW(mm::save_safetensors(path("x"), f), mm::Error);
  f.tensors = {{"a", {1}, {1.f}}, {"a", {1}, {2.f}}};
  EXPECT_THROW(mm::save_safetensors(path("x"), f), mm::Error);
  EXPECT_FALSE(fs::exists(path("x")));
}

TEST_F(CheckpointTest, EveryTruncationThrows) {
  const auto good = path("good.safetensors");
  mm::save_safetensors(good, sample_file());
  const auto bytes = read_bytes(good);
  const auto p = path("cut.safetensors");
  for (size_t len = 0; len < bytes.size(); ++len) {
    write_bytes(p, bytes.substr(0, len));
    EXPECT_TRUE(load_throws_mm_error(p)) << "truncated to " << len << " bytes";
  }
}

TEST_F(CheckpointTest, RandomHeaderCorruptionNeverCrashes) {
  const auto good = path("good.safetensors");
  mm::save_safetensors(good, sample_file());
  const auto bytes = read_bytes(good);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const auto p = path("fuzz.safetensors");
  std::mt19937 rng(12345);
  std::uniform_int_distribution<size_t> pos(0, 8 + header_len - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> flips(1, 4);
  for (int i = 0; i < 200; ++i) {
    auto mutated = bytes;
    for (int k = flips(rng); k > 0; --k) mutated[pos(rng)] = static_cast<char>(byte(rng));
    write_bytes(p, mutated);
    try {
      (void)mm::load_safetensors(p);
    } catch (const mm::Error&) {
      // Either outcome is fine; anything else (another exception, a crash) is a bug.
    }
  }
}

TEST_F(CheckpointTest, MissingFileMessage) {
  const auto p = path("nope.safetensors");
  const auto msg = load_error_message(p);
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("no such checkpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find("makemore train"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST_F(CheckpointTest, BadDtypeMessage) {
  const auto p = path("f16.safetensors");
  write_bytes(p, make_file(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4));
  const auto msg = load_error_message(p);
  EXPECT_NE(msg.find(p + ": corrupt checkpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find("F16"), std::string::npos) << msg;
  EXPECT_NE(msg.find("only F32"), std::string::npos) << msg;
}

TEST_F(CheckpointTest, HeaderLengthTooLargeMessages) {
  const auto p = path("big.safetensors");
  write_bytes(p, u64_le(uint64_t{1} << 40) + "{}");
  auto msg = load_error_message(p);
  EXPECT_NE(msg.find("header length"), std::string::npos) << msg;
  EXPECT_NE(msg.find("100 MB"), std::string::npos) << msg;
  write_bytes(p, u64_le(1000) + "{}");
  msg = load_error_message(p);
  EXPECT_NE(msg.find("header length 1000 exceeds the file size"), std::string::npos) << msg;
}

TEST_F(CheckpointTest, SpecificCorruptions) {
  const auto p = path("bad.safetensors");
  struct Case {
    std::string header;
    size_t data_bytes;
    std::string expect;  // a fragment of the message
  };
  const std::vector<Case> cases = {
      {"{not json", 0, "not valid JSON"},
      {"[1,2]", 0, "not a JSON object"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "does not match"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, "outside"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8,
       "overlaps"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, "gap"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12, "trailing"},
      {R"({"__metadata__":{"k":3},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, "not a string"},
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, "non-negative"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,1],"data_offsets":[0,4]}})", 4, "does not match"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8,
       "twice"},
      {R"({"a":{"dtype":"F32","shape":[1]}})", 4, "lacks"},
  };
  for (const auto& c : cases) {
    write_bytes(p, make_file(c.header, c.data_bytes));
    const auto msg = load_error_message(p);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.header << " -> " << msg;
    EXPECT_NE(msg.find(p + ": "), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST_F(CheckpointTest, DirectoryIsNotACheckpoint) { EXPECT_TRUE(load_throws_mm_error(dir_.string())); }

}  // namespace
