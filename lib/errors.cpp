// The error messages of include/sluice/detail/errors.hpp, built and thrown out of line.
#include <sluice/detail/errors.hpp>

#include <charconv>
#include <stdexcept>

namespace sluice::detail {

std::string concat(std::initializer_list<message_piece> pieces) {
  std::string out;
  for (const message_piece& p : pieces) {
    if (p.kind_ == message_piece::text) {
      out += p.text_;
      continue;
    }
    char digits[24];  // 20 digits and a sign at most
    const auto [end, ec] = p.kind_ == message_piece::signed_number
                               ? std::to_chars(digits, digits + sizeof digits, static_cast<long long>(p.number_))
                               : std::to_chars(digits, digits + sizeof digits, p.number_);
    (void)ec;  // cannot fail: the buffer holds any 64-bit number
    out.append(digits, end);
  }
  return out;
}

void throw_too_large(const char* what, std::size_t requested, const char* limit_name, std::size_t limit) {
  throw std::length_error(concat({"sluice: ", what, " of ", requested, " exceeds ", limit_name, " (", limit, ")"}));
}

void throw_beyond_grant(const char* verb, std::size_t k, std::size_t size, const char* limit_name) {
  throw std::out_of_range(concat({"sluice: ", verb, "(", k, ") exceeds ", limit_name, " (", size, ")"}));
}

void throw_grant_outstanding(const char* side) {
  throw std::logic_error(concat({"sluice: a ", side,
                                 " grant is still outstanding; at most one per side (commit, release or "
                                 "drop it first)"}));
}

void throw_batch_outstanding() {
  throw std::logic_error(
      "sluice: a batch is still outstanding; the consumer holds at most one (release or drop it first)");
}

void throw_wrong_role(const char* verb, const char* role) {
  throw std::logic_error(
      concat({"sluice: this process attached to the shared ring as its ", role, "; it may not ", verb}));
}

void throw_bad_capacity(const char* why) { throw std::invalid_argument(concat({"sluice: ", why})); }

}  // namespace sluice::detail
