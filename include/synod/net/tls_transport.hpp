#pragma once

/// \file
/// `net::tls_tcp_transport`: the TCP transport over TLS with mutual certificate
/// authentication (Boost.Asio SSL over OpenSSL), so that only holders of a certificate signed
/// by the cluster's CA can join. Both sides present a certificate and both verify the other's
/// chain against the CA; a peer without one, or with one from another CA, fails the TLS
/// handshake and its connection is closed (`close_reason::tls_failure`) before any synod byte
/// is read. The synod handshake then runs inside TLS as over plain TCP.
///
/// This is the only header that needs OpenSSL: link `OpenSSL::SSL` (and `OpenSSL::Crypto`)
/// when you include it. Plain `tcp_transport` users never do.

#include <synod/core/errc.hpp>
#include <synod/core/result.hpp>
#include <synod/net/tcp_transport.hpp>

#include <boost/asio/ssl.hpp>

#include <memory>
#include <string>
#include <system_error>
#include <utility>

namespace synod::net {

/// PEM files of one member.
struct tls_files {
    std::string ca_file;          ///< the cluster CA's certificate: peers must chain to it
    std::string certificate_file; ///< this member's certificate (chain)
    std::string private_key_file; ///< this member's private key
};

/// The stream security policy for mutual TLS. Copies share one `ssl::context`.
class mutual_tls {
public:
    using stream_type = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

    /// Loads the files into a TLS 1.2+ context that demands and verifies a peer certificate
    /// on both sides. The error is OpenSSL's (or the file system's) when a file is missing
    /// or does not parse, or the key does not match the certificate.
    static result<mutual_tls> from_files(const tls_files& files) {
        namespace ssl = boost::asio::ssl;
        auto ctx = std::make_shared<ssl::context>(ssl::context::tls);
        boost::system::error_code ec;
        ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                             ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                         ec);
        if (!ec) {
            ctx->load_verify_file(files.ca_file, ec);
        }
        if (!ec) {
            ctx->use_certificate_chain_file(files.certificate_file, ec);
        }
        if (!ec) {
            ctx->use_private_key_file(files.private_key_file, ssl::context::pem, ec);
        }
        if (!ec) {
            ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
        }
        if (ec) {
            return ec.value() != 0 ? std::error_code(ec.value(), ec.category())
                                   : std::error_code(errc::invalid_argument);
        }
        return mutual_tls(std::move(ctx));
    }

    [[nodiscard]] stream_type wrap(boost::asio::ip::tcp::socket s) const {
        return stream_type(std::move(s), *context_);
    }
    static boost::asio::ip::tcp::socket& socket(stream_type& s) noexcept { return s.next_layer(); }

    template <class Handler>
    void handshake(stream_type& s, bool client, Handler&& h) const {
        s.async_handshake(client ? boost::asio::ssl::stream_base::client
                                 : boost::asio::ssl::stream_base::server,
                          std::forward<Handler>(h));
    }

private:
    explicit mutual_tls(std::shared_ptr<boost::asio::ssl::context> ctx)
        : context_(std::move(ctx)) {}
    std::shared_ptr<boost::asio::ssl::context> context_;
};

using tls_tcp_transport = basic_tcp_transport<mutual_tls>;

static_assert(transport<tls_tcp_transport>);

} // namespace synod::net
