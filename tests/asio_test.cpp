// The standalone Asio adapters (<sluice/asio.hpp>) over local stream sockets.
#include <sluice/asio.hpp>

#include <asio.hpp>

namespace net = ::asio;
namespace adapter = sluice::asio;
using error_code = ::asio::error_code;

#include "asio_adapter_tests.hpp"
