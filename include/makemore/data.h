// Words in, training examples out: reading a UTF-8 word list (one item per line), the
// vocabulary of code points, the lecture's context windows, and the seeded 80/10/10 split.
// Tokens are Unicode code points; index 0 is the boundary token, shown as '.'. `Dataset` (at the
// end) is the one owner every command and study goes through; the functions before it are its
// parts, public so the tests can check each.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mm {

struct WordList {
  std::string path;
  std::vector<std::u32string> words;  // stripped, non-empty
  std::size_t empty_lines = 0;        // skipped; reported once as a notice
};

// A word list is at most 64 MiB (names.txt is 0.2 MiB): an endless stream cannot exhaust memory.
inline constexpr std::size_t kMaxWordListBytes = std::size_t{64} << 20;

// Reads a word file: a regular file, or "-" for standard input. Strips CRLF / surrounding
// whitespace, skips empty lines. Throws mm::Error with a one-line message naming the file (and
// line) for: a missing or unreadable file, a directory, a device or pipe, more than
// kMaxWordListBytes, an empty file (or one with no items), binary content (NUL bytes), invalid UTF-8.
WordList load_words(const std::string& path);

class Vocab {
 public:
  Vocab() = default;
  // Sorted distinct code points of the words, after the boundary token at index 0.
  static Vocab from_words(const std::vector<std::u32string>& words);
  // Rebuild from the characters at indices 1..V-1 (as stored in a checkpoint).
  static Vocab from_chars(const std::u32string& chars);

  int size() const { return static_cast<int>(chars_.size()) + 1; }
  int encode(char32_t c) const;                    // -1 when not in the vocabulary
  char32_t decode(int index) const;                // index 0 -> U'.'
  std::u32string chars() const { return chars_; }  // indices 1..V-1
  std::string token_utf8(int index) const;

 private:
  std::u32string chars_;  // sorted
};

// The lecture's examples: for each word, a context of block_size tokens starting as boundary
// tokens, predicting every character and then the closing boundary.
struct Examples {
  int block_size = 0;
  std::vector<int32_t> x;  // (n, block_size) row-major
  std::vector<int32_t> y;  // (n)
  std::size_t size() const { return y.size(); }
};
Examples build_examples(const std::vector<std::u32string>& words, const Vocab& vocab, int block_size);

// The distinct contexts of some examples, in order of first appearance, and which of them each
// example has. An eval-mode forward is a function of the context alone, so Model::evaluate
// computes each context's logits once (names.txt at block size 3: 5,686 contexts for 228,146
// examples; at block size 8: 58,841).
struct DistinctContexts {
  std::vector<int32_t> x;      // (count(), block_size) row-major
  std::vector<int32_t> index;  // (examples): example i's context is row index[i] of x
  int block_size = 0;
  std::size_t count() const { return block_size > 0 ? x.size() / static_cast<std::size_t>(block_size) : 0; }
};
DistinctContexts distinct_contexts(const Examples& ex);
// The same over several sets of examples at once (a model's three splits): one table of
// contexts, and index holding the first set's examples, then the second's, and so on, so that a
// context the sets share is forwarded once. The sets must have one block size.
DistinctContexts distinct_contexts(const std::vector<const Examples*>& sets);

struct Splits {
  std::vector<std::u32string> train_words, val_words, test_words;
  Examples train, val, test;
};
// random.seed(split_seed); random.shuffle(words); n1 = int(0.8 n), n2 = int(0.9 n).
Splits make_splits(const std::vector<std::u32string>& words, const Vocab& vocab, int block_size, uint64_t split_seed);

// FNV-1a over the words' code points, each word closed by a newline, as 16 hex digits: what a
// study stores with each finished training so that a rerun (from any folder, the same words
// under any path) knows the training was on the same data.
std::string words_fingerprint(const std::vector<std::u32string>& words);

// Throws mm::Error naming `input` when a split has no examples: a word list of fewer than 10
// items leaves val or test empty, and a loss over no examples is no measurement.
void require_nonempty_splits(const Splits& splits, const std::string& input, std::size_t items);

// A word list ready for training: its words, vocabulary and fingerprint, and the lecture's
// splits for any block size and split seed. Every command, study and run loads its data
// through this, so what a word list becomes is decided in one place.
class Dataset {
 public:
  // Reads a word file (load_words' checks and messages). fixed_vocab: the vocabulary of a
  // trained model, used instead of the words' own (a word using another character is an error
  // when the splits are built); null: the words' own.
  static Dataset load(const std::string& path, const Vocab* fixed_vocab = nullptr);
  // Words already in memory (stripped, non-empty); `source` names them in messages.
  static Dataset from_words(std::vector<std::u32string> words, std::string source, const Vocab* fixed_vocab = nullptr);

  const std::string& source() const { return source_; }  // the path, or the name given
  const std::vector<std::u32string>& words() const { return words_; }
  std::size_t size() const { return words_.size(); }
  std::size_t empty_lines() const { return empty_lines_; }  // skipped by load()
  const Vocab& vocab() const { return vocab_; }
  const std::string& fingerprint() const { return fingerprint_; }  // words_fingerprint()

  // random.seed(split_seed); random.shuffle(words); 80/10/10; examples of block_size tokens.
  // A split may be empty (fewer than 10 words).
  Splits split(int block_size, uint64_t split_seed) const;
  // The same, but a split with no examples is an mm::Error naming source() (a loss over no
  // examples is no measurement).
  Splits split_nonempty(int block_size, uint64_t split_seed) const;
  // "SOURCE: skipped N empty line(s)", or "" when there were none: a notice the front end shows.
  std::string empty_lines_note() const;

 private:
  std::string source_;
  std::vector<std::u32string> words_;
  std::size_t empty_lines_ = 0;
  Vocab vocab_;
  std::string fingerprint_;
};

std::string to_utf8(const std::u32string& s);
std::string to_utf8(char32_t c);
// Decodes UTF-8; returns false (and the byte offset of the first bad byte) when invalid.
bool from_utf8(const std::string& s, std::u32string* out, std::size_t* bad_offset = nullptr);

}  // namespace mm
