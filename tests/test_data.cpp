// Tests for data.cpp: the word-file reader and its exact error messages, the UTF-8 codec,
// the vocabulary, the lecture's context windows and the seeded split (checked against the
// notebook's numbers on names.txt when setup has copied it into data/).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "makemore/data.h"
#include "makemore/error.h"

#ifndef MM_TEST_DATA_DIR
#define MM_TEST_DATA_DIR "tests/data"
#endif
#ifndef MM_SOURCE_DIR
#define MM_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;

namespace {

const std::string kData = MM_TEST_DATA_DIR;
const std::string kTextFix = "the file must be UTF-8 text, one item per line";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The message load_words throws for `path`, or "" when it does not throw.
std::string load_error(const std::string& path) {
  try {
    mm::load_words(path);
  } catch (const mm::Error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::u32string> u32_words(const std::vector<std::string>& words) {
  std::vector<std::u32string> out;
  for (const auto& w : words) {
    std::u32string u;
    EXPECT_TRUE(mm::from_utf8(w, &u)) << w;
    out.push_back(u);
  }
  return out;
}

const mm::Vocab& lecture_vocab() {
  static const mm::Vocab v = mm::Vocab::from_chars(U"abcdefghijklmnopqrstuvwxyz");
  return v;
}

// Bad-input files are written at test time into a private folder, not committed.
class DataFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("mm_test_data_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::all, ec);
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out << bytes;
    return path;
  }
  fs::path dir_;
};

}  // namespace

// ---- UTF-8 ----------------------------------------------------------------------------------

TEST(DataUtf8, RoundTripsAllLengths) {
  const std::u32string s = U"a\u00e9\u0416\u674e\U0001F600\U0010FFFF\u007f\u0080\u07ff\u0800\uffff";
  const std::string bytes = mm::to_utf8(s);
  EXPECT_EQ(bytes,
            "a\xc3\xa9\xd0\x96\xe6\x9d\x8e\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\x7f\xc2\x80"
            "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");
  std::u32string back;
  ASSERT_TRUE(mm::from_utf8(bytes, &back));
  EXPECT_EQ(back, s);
  EXPECT_EQ(mm::to_utf8(U'\u00e9'), "\xc3\xa9");
}

TEST(DataUtf8, RejectsMalformedSequencesAtTheirStart) {
  struct Case {
    std::string bytes;
    std::size_t offset;
  };
  const std::vector<Case> cases = {
      {"ab\xff", 2},            // never valid
      {"\x80", 0},              // stray continuation
      {"x\xc0\xaf", 1},         // overlong '/'
      {"\xc1\xbf", 0},          // overlong
      {"\xe0\x80\x80", 0},      // overlong 3-byte
      {"\xf0\x80\x80\x80", 0},  // overlong 4-byte
      {"ok\xed\xa0\x80", 2},    // surrogate U+D800
      {"\xed\xbf\xbf", 0},      // surrogate U+DFFF
      {"\xf4\x90\x80\x80", 0},  // U+110000
      {"\xf5\x80\x80\x80", 0},  // beyond any code point
      {"abc\xc3", 3},           // truncated at end
      {"\xe2\x82", 0},          // truncated at end
      {"\xc3"
       "a",
       0},  // continuation missing
      {"\xe6\x9d"
       "x",
       0},  // continuation missing mid-sequence
  };
  for (const auto& c : cases) {
    std::u32string out = U"untouched";
    std::size_t bad = 999;
    EXPECT_FALSE(mm::from_utf8(c.bytes, &out, &bad)) << ::testing::PrintToString(c.bytes);
    EXPECT_EQ(bad, c.offset) << ::testing::PrintToString(c.bytes);
    EXPECT_EQ(out, U"untouched");
  }
  // The edges of the valid ranges still decode.
  std::u32string out;
  EXPECT_TRUE(mm::from_utf8("\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80", &out));
  EXPECT_EQ(out, U"\ud7ff\ue000\U00010000");
}

// ---- Vocabulary -----------------------------------------------------------------------------

TEST(DataVocab, NamesLikeWordsGiveSortedCharactersAfterTheBoundary) {
  const auto words = u32_words({"emma", "olivia", "ava", "isabella", "sophia"});
  const mm::Vocab v = mm::Vocab::from_words(words);
  EXPECT_EQ(v.chars(), U"abehilmopsv");
  EXPECT_EQ(v.size(), 12);
  EXPECT_EQ(v.decode(0), U'.');
  EXPECT_EQ(v.token_utf8(0), ".");
  EXPECT_EQ(v.encode(U'a'), 1);
  EXPECT_EQ(v.encode(U'v'), 11);
  EXPECT_EQ(v.decode(11), U'v');
  EXPECT_EQ(v.encode(U'z'), -1);
  EXPECT_EQ(v.encode(U'.'), -1);
  for (int i = 1; i < v.size(); ++i) EXPECT_EQ(v.encode(v.decode(i)), i);
  EXPECT_THROW(v.decode(12), std::out_of_range);
}

TEST(DataVocab, RebuildsFromStoredCharacters) {
  const mm::Vocab v = mm::Vocab::from_chars(U"abc\u00e9\u674e");
  EXPECT_EQ(v.size(), 6);
  EXPECT_EQ(v.encode(U'\u674e'), 5);
  EXPECT_EQ(v.token_utf8(5), "\xe6\x9d\x8e");
  try {
    mm::Vocab::from_chars(U"bab");
    FAIL() << "expected mm::Error";
  } catch (const mm::Error& e) {
    EXPECT_STREQ(e.what(),
                 "vocabulary characters must be distinct and in ascending order (U+0061 at "
                 "index 2); the stored vocabulary is damaged");
  }
}

TEST(DataVocab, DotInAWordIsARegularCharacter) {
  const auto words = u32_words({"a.b"});
  const mm::Vocab v = mm::Vocab::from_words(words);
  EXPECT_EQ(v.chars(), U".ab");
  EXPECT_EQ(v.encode(U'.'), 1);
  EXPECT_EQ(v.decode(0), U'.');
  EXPECT_EQ(v.decode(1), U'.');
  const mm::Examples ex = mm::build_examples(words, v, 2);
  EXPECT_EQ(ex.y, (std::vector<int32_t>{2, 1, 3, 0}));
}

// ---- Examples -------------------------------------------------------------------------------

TEST(DataExamples, MatchTheLectureForEmma) {
  // ... -> e, ..e -> m, .em -> m, emm -> a, mma -> .
  const mm::Examples ex = mm::build_examples(u32_words({"emma"}), lecture_vocab(), 3);
  EXPECT_EQ(ex.block_size, 3);
  ASSERT_EQ(ex.size(), 5u);
  EXPECT_EQ(ex.x, (std::vector<int32_t>{0, 0, 0, 0, 0, 5, 0, 5, 13, 5, 13, 13, 13, 13, 1}));
  EXPECT_EQ(ex.y, (std::vector<int32_t>{5, 13, 13, 1, 0}));
}

TEST(DataExamples, OneExamplePerCharacterPlusTheBoundary) {
  const auto words = u32_words({"emma", "olivia", "ava", "isabella", "sophia"});
  for (int block : {1, 3, 8}) {
    const mm::Examples ex = mm::build_examples(words, lecture_vocab(), block);
    EXPECT_EQ(ex.size(), 5u + 7u + 4u + 9u + 7u);
    EXPECT_EQ(ex.x.size(), ex.size() * static_cast<std::size_t>(block));
  }
  const auto one = mm::build_examples(u32_words({"ab"}), lecture_vocab(), 1);
  EXPECT_EQ(one.x, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(one.y, (std::vector<int32_t>{1, 2, 0}));
}

TEST(DataExamples, UnknownCharacterIsNamed) {
  try {
    mm::build_examples(u32_words({"emma", "zo\xc3\xab"}), lecture_vocab(), 3);
    FAIL() << "expected mm::Error";
  } catch (const mm::Error& e) {
    EXPECT_STREQ(e.what(),
                 "word \"zo\xc3\xab\" has the character '\xc3\xab' (U+00EB) that is not in the "
                 "vocabulary; the model only knows the characters of its training words");
  }
  try {
    mm::build_examples(u32_words({"emma"}), lecture_vocab(), 0);
    FAIL() << "expected mm::Error";
  } catch (const mm::Error& e) {
    EXPECT_STREQ(e.what(), "block_size must be at least 1 (got 0)");
  }
}

// ---- Splits ---------------------------------------------------------------------------------

TEST(DataSplits, PythonShuffleThenEightyTenTen) {
  // Python: random.seed(42); x = list(range(10)); random.shuffle(x) -> [7,3,2,8,5,6,9,4,0,1]
  const auto words = u32_words({"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"});
  const mm::Splits s = mm::make_splits(words, lecture_vocab(), 3, 42);
  EXPECT_EQ(s.train_words, u32_words({"h", "d", "c", "i", "f", "g", "j", "e"}));
  EXPECT_EQ(s.val_words, u32_words({"a"}));
  EXPECT_EQ(s.test_words, u32_words({"b"}));
  EXPECT_EQ(s.train.size(), 16u);
  EXPECT_EQ(s.val.size(), 2u);
  EXPECT_EQ(s.test.size(), 2u);
  EXPECT_EQ(s.val.y, (std::vector<int32_t>{1, 0}));
  // The caller's list is left as it was.
  EXPECT_EQ(words.front(), U"a");
}

TEST(DataSplits, SizesFollowPythonTruncation) {
  // int(0.8 * n), int(0.9 * n) for n = 1, 7, 13 -> (0,0), (5,6), (10,11)
  const auto vocab = lecture_vocab();
  const std::vector<std::pair<std::size_t, std::array<std::size_t, 3>>> cases = {
      {1, {0, 0, 1}}, {7, {5, 1, 1}}, {13, {10, 1, 2}}};
  for (const auto& [n, sizes] : cases) {
    const std::vector<std::u32string> words(n, U"ab");
    const mm::Splits s = mm::make_splits(words, vocab, 3, 7);
    EXPECT_EQ(s.train_words.size(), sizes[0]) << n;
    EXPECT_EQ(s.val_words.size(), sizes[1]) << n;
    EXPECT_EQ(s.test_words.size(), sizes[2]) << n;
  }
}

// ---- Reading word files ---------------------------------------------------------------------

TEST(DataLoad, Utf8NamesRoundTrip) {
  const std::string path = kData + "/unicode_words.txt";
  const mm::WordList wl = mm::load_words(path);
  EXPECT_EQ(wl.path, path);
  EXPECT_EQ(wl.empty_lines, 0u);
  ASSERT_EQ(wl.words.size(), 7u);
  EXPECT_EQ(wl.words[0], U"zo\u00eb");
  EXPECT_EQ(wl.words[2], U"\u0410\u043d\u043d\u0430");
  EXPECT_EQ(wl.words[3], U"\u674e\u5a1c");
  std::string joined;
  for (const auto& w : wl.words) joined += mm::to_utf8(w) + "\n";
  EXPECT_EQ(joined, read_bytes(path));

  const mm::Vocab v = mm::Vocab::from_words(wl.words);
  EXPECT_EQ(v.chars(), U"Jadeimnorsvyz\u00e9\u00eb\u00ed\u00f8\u0410\u0430\u043d\u5a1c\u674e");
  EXPECT_EQ(v.size(), 23);
  EXPECT_EQ(v.token_utf8(v.size() - 1), "\xe6\x9d\x8e");
  EXPECT_EQ(mm::build_examples(wl.words, v, 3).size(), 4u + 5u + 5u + 3u + 6u + 6u + 7u);
}

TEST(DataLoad, CrlfLineEndsAreStripped) {
  const mm::WordList wl = mm::load_words(kData + "/crlf_words.txt");
  EXPECT_EQ(wl.words, u32_words({"emma", "olivia", "ava"}));
  EXPECT_EQ(wl.empty_lines, 0u);
}

TEST(DataLoad, WhitespaceStrippedAndEmptyLinesCounted) {
  // BOM + spaces, an empty line, a tab-only line, a trailing U+00A0, U+3000 on both sides with
  // CRLF, and a spaces-only line.
  const mm::WordList wl = mm::load_words(kData + "/messy_words.txt");
  EXPECT_EQ(wl.words, u32_words({"emma", "olivia", "ava"}));
  EXPECT_EQ(wl.empty_lines, 3u);
}

TEST_F(DataFiles, LineEndVariantsAndInnerSpaces) {
  EXPECT_EQ(mm::load_words(write("cr.txt", "a\rb\r\nc\nd")).words, u32_words({"a", "b", "c", "d"}));
  EXPECT_EQ(mm::load_words(write("crlf.txt", "emma\r\n\r\nava\r\n")).empty_lines, 1u);
  EXPECT_EQ(mm::load_words(write("inner.txt", " mary ann \n")).words, u32_words({"mary ann"}));
}

// ---- Bad input: each with its exact one-line message ----------------------------------------

TEST_F(DataFiles, MissingFile) {
  EXPECT_EQ(load_error("definitely_missing_words.txt"),
            "definitely_missing_words.txt: no such file; pass an existing word list with -i FILE");
  const std::string in_missing_dir = (dir_ / "nodir" / "missing.txt").string();
  EXPECT_EQ(load_error(in_missing_dir), in_missing_dir + ": no such file; pass an existing word list with -i FILE");
  const std::string under_a_file = write("plain.txt", "emma\n") + "/x.txt";
  EXPECT_EQ(load_error(under_a_file), under_a_file + ": no such file; pass an existing word list with -i FILE");
  EXPECT_EQ(load_error(""), "no word list given; pass one with -i FILE");
}

TEST_F(DataFiles, Directory) {
  const std::string path = dir_.string();
  EXPECT_EQ(load_error(path), path + ": is a directory, not a file; pass a word list with -i FILE");
}

TEST_F(DataFiles, EmptyFile) {
  const std::string path = write("empty.txt", "");
  EXPECT_EQ(load_error(path), path + ": the file is empty; it must hold one item per line");
}

TEST_F(DataFiles, OnlyEmptyLines) {
  const std::string path = write("blank.txt", "\n\r\n  \n\t\n\xef\xbb\xbf\n");
  EXPECT_EQ(load_error(path), path + ": no items (only empty lines); it must hold one item per line");
}

TEST_F(DataFiles, BinaryFile) {
  const std::string elf = write("data.bin", std::string("\x7f"
                                                        "ELF\x02\x01\x01\0\0\0\xff\n",
                                                        13));
  EXPECT_EQ(load_error(elf), elf + ": looks like a binary file (NUL byte on line 1); " + kTextFix);
  // The NUL wins even when an invalid UTF-8 byte comes before it.
  const std::string later = write("later.bin", std::string("emma\n\xff\nol\0ivia\n", 15));
  EXPECT_EQ(load_error(later), later + ": looks like a binary file (NUL byte on line 3); " + kTextFix);
}

TEST_F(DataFiles, InvalidUtf8NamesLineAndColumn) {
  std::string text;
  for (int i = 0; i < 16; ++i) text += "emma\n";
  const std::string path = write("names.txt", text + "ab\xff\nava\n");
  EXPECT_EQ(load_error(path), path + ":17: invalid UTF-8 byte 0xff at column 3; " + kTextFix);
  // A sequence cut short by the line break is reported at its first byte.
  const std::string cut = write("cut.txt", "zo\xc3\nava\n");
  EXPECT_EQ(load_error(cut), cut + ":1: invalid UTF-8 byte 0xc3 at column 3; " + kTextFix);
  const std::string crlf = write("crlf.txt", "emma\r\n\xc0\xaf\r\n");
  EXPECT_EQ(load_error(crlf), crlf + ":2: invalid UTF-8 byte 0xc0 at column 1; " + kTextFix);
}

TEST_F(DataFiles, UnreadableFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: file permissions do not block reading";
  const std::string path = write("x.txt", "emma\n");
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  EXPECT_EQ(load_error(path), path +
                                  ": cannot read (permission denied); check its permissions or "
                                  "pass another word list with -i FILE");
}

// ---- The lecture's names.txt ----------------------------------------------------------------

TEST(DataNames, MatchesTheNotebook) {
  const std::string path = MM_SOURCE_DIR "/data/names.txt";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found (scripts/setup.sh copies it there)";
  const mm::WordList wl = mm::load_words(path);
  EXPECT_EQ(wl.words.size(), 32033u);
  EXPECT_EQ(wl.empty_lines, 0u);
  const mm::Vocab v = mm::Vocab::from_words(wl.words);
  EXPECT_EQ(v.size(), 27);
  EXPECT_EQ(v.chars(), U"abcdefghijklmnopqrstuvwxyz");
  const mm::Splits s = mm::make_splits(wl.words, v, 3, 42);
  EXPECT_EQ(s.train_words.size(), 25626u);
  EXPECT_EQ(s.val_words.size(), 3203u);
  EXPECT_EQ(s.test_words.size(), 3204u);
  EXPECT_EQ(s.train.size(), 182625u);
  EXPECT_EQ(s.val.size(), 22655u);
  EXPECT_EQ(s.test.size(), 22866u);
  ASSERT_GE(s.train_words.size(), 3u);
  EXPECT_EQ(s.train_words[0], U"yuheng");
  EXPECT_EQ(s.train_words[1], U"diondre");
  EXPECT_EQ(s.train_words[2], U"xavien");
}

// The fingerprint studies store is FNV-1a 64 of the words, each closed by a newline: the same
// value Python's reference loop gives for "ab\nc\n", and any change of the words moves it.
TEST(DataFingerprint, IsFnv1aOfTheLines) {
  EXPECT_EQ(mm::words_fingerprint({U"ab", U"c"}), "55b7cb2f21b10c89");
  EXPECT_NE(mm::words_fingerprint({U"ab", U"d"}), mm::words_fingerprint({U"ab", U"c"}));
  EXPECT_NE(mm::words_fingerprint({U"a", U"bc"}), mm::words_fingerprint({U"ab", U"c"}));
}

// ---- Dataset: the one loader every command uses ---------------------------------------------

// A file and the same words in memory give the same vocabulary, fingerprint and splits; the
// file's skipped lines become one notice naming it.
TEST_F(DataFiles, DatasetFromFileMatchesWordsInMemory) {
  const std::string path = write("ten.txt", "emma\n\nolivia\nava\nisabella\nsophia\n\nmia\ncharlotte\namelia\nharper\nevelyn\n");
  const mm::Dataset file = mm::Dataset::load(path);
  const mm::Dataset mem = mm::Dataset::from_words(
      u32_words({"emma", "olivia", "ava", "isabella", "sophia", "mia", "charlotte", "amelia", "harper", "evelyn"}), "in memory");
  EXPECT_EQ(file.source(), path);
  EXPECT_EQ(mem.source(), "in memory");
  EXPECT_EQ(file.size(), 10u);
  EXPECT_EQ(file.words(), mem.words());
  EXPECT_EQ(file.vocab().chars(), mem.vocab().chars());
  EXPECT_EQ(file.vocab().chars(), mm::Vocab::from_words(mem.words()).chars());
  EXPECT_EQ(file.fingerprint(), mm::words_fingerprint(mem.words()));
  EXPECT_EQ(file.empty_lines_note(), path + ": skipped 2 empty line(s)");
  EXPECT_EQ(mem.empty_lines_note(), "");
  const mm::Splits a = file.split(4, 7), b = mm::make_splits(mem.words(), mem.vocab(), 4, 7);
  EXPECT_EQ(a.train_words, b.train_words);
  EXPECT_EQ(a.test.x, b.test.x);
  EXPECT_EQ(a.val.y, b.val.y);
  EXPECT_EQ(a.train.block_size, 4);
}

// Fewer than 10 words leave a split empty: split() returns it, split_nonempty() names the source.
TEST(DataDataset, SplitNonemptyNamesTheSource) {
  const mm::Dataset d = mm::Dataset::from_words(u32_words({"a", "b", "c"}), "three.txt");
  EXPECT_EQ(d.split(3, 42).val.size(), 0u);
  try {
    d.split_nonempty(3, 42);
    FAIL() << "no error";
  } catch (const mm::Error& e) {
    EXPECT_STREQ(e.what(), "three.txt: too few items (3): the 80/10/10 split leaves the val split empty; use at least 10");
  }
}

// A trained model's vocabulary is used as given; a word outside it fails when examples are built.
TEST(DataDataset, FixedVocabularyIsUsedAsGiven) {
  const mm::Dataset d = mm::Dataset::from_words(u32_words({"ab", "ba"}), "x", &lecture_vocab());
  EXPECT_EQ(d.vocab().size(), 27);
  EXPECT_EQ(d.split(2, 1).train.y.size() + d.split(2, 1).val.y.size() + d.split(2, 1).test.y.size(), 6u);
  const mm::Dataset bad = mm::Dataset::from_words(u32_words({"a1"}), "x", &lecture_vocab());
  EXPECT_THROW(bad.split(2, 1), mm::Error);
}
