// Error messages and the throws that carry them, shared by the rings. Out of the hot path on
// purpose: a throw site costs the call that needs it one predictable branch, and every message
// is assembled out of line by concat() (lib/errors.cpp), so no instantiation of a ring inlines
// string-building code.
#pragma once

#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace sluice::detail {

// One piece of a message: text, or an integer written in decimal.
class message_piece {
 public:
  message_piece(std::string_view text) noexcept : text_(text) {}
  message_piece(const char* text) noexcept : text_(text) {}
  message_piece(const std::string& text) noexcept : text_(text) {}
  template <std::integral I>
    requires(!std::same_as<I, bool> && !std::same_as<I, char>)
  message_piece(I n) noexcept : number_(static_cast<unsigned long long>(n)), kind_(std::is_signed_v<I> ? signed_number : unsigned_number) {}

 private:
  friend std::string concat(std::initializer_list<message_piece> pieces);
  enum kind : unsigned char { text, signed_number, unsigned_number };
  std::string_view text_;
  unsigned long long number_ = 0;  // a signed number's two's complement bits
  kind kind_ = text;
};

// The pieces, one after another: concat({"capacity ", n, " is odd"}).
std::string concat(std::initializer_list<message_piece> pieces);

// A size that can never be granted: `what` of `requested` is larger than `limit_name` (`limit`).
[[noreturn]] void throw_too_large(const char* what, std::size_t requested, const char* limit_name, std::size_t limit);

// `verb(k)` reaches past the end of a grant of `size` elements (or of what `limit_name` names).
[[noreturn]] void throw_beyond_grant(const char* verb, std::size_t k, std::size_t size,
                                     const char* limit_name = "the grant's size");

// A second grant (or a copying call) on a side that already holds one.
[[noreturn]] void throw_grant_outstanding(const char* side);

// A second batch while the consumer still holds one.
[[noreturn]] void throw_batch_outstanding();

// A call of the role this process did not attach to a shared ring in.
[[noreturn]] void throw_wrong_role(const char* verb, const char* role);

[[noreturn]] void throw_bad_capacity(const char* why);

}  // namespace sluice::detail
