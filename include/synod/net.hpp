#pragma once

/// \file
/// synod's Asio runtime: the scheduler, clock and TCP transport for hosts that do not bring
/// their own I/O. Mutual TLS is in `synod/net/tls_transport.hpp` (it needs OpenSSL).

#include <synod/net/asio_scheduler.hpp>
#include <synod/net/handshake.hpp>
#include <synod/net/steady_clock.hpp>
#include <synod/net/tcp_transport.hpp>
