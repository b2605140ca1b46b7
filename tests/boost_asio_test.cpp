// The Boost.Asio adapters (<sluice/boost_asio.hpp>) over local stream sockets. The header comes
// first and alone: it makes Boost.Asio 1.74 usable under C++20 by itself.
#include <sluice/boost_asio.hpp>

namespace net = ::boost::asio;
namespace adapter = sluice::boost_asio;
using error_code = ::boost::system::error_code;

#include "asio_adapter_tests.hpp"
