#pragma once

/// \file
/// `net::tls_tcp_transport`: the TCP transport over TLS with mutual certificate
/// authentication (Boost.Asio SSL over OpenSSL), so that only holders of a certificate signed
/// by the cluster's CA can join. Both sides present a certificate and both verify the other's
/// chain against the CA; a peer without one, or with one from another CA, fails the TLS
/// handshake and its connection is closed (`close_reason::tls_failure`) before any synod byte
/// is read. The synod handshake then runs inside TLS as over plain TCP.
///
/// The CA vouches that a peer is *a* member. To also bind *which* member, give `from_files`
/// an identity rule — the certificate common name each node id must present (say
/// `"node" + id`) — and a member claiming another's id is refused (`wrong_identity`).
///
/// This is the only header that needs OpenSSL: link `OpenSSL::SSL` (and `OpenSSL::Crypto`)
/// when you include it. Plain `tcp_transport` users never do.

#include <synod/core/errc.hpp>
#include <synod/core/result.hpp>
#include <synod/net/tcp_transport.hpp>

#include <boost/asio/ssl.hpp>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
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
    /// The certificate common name node `id` must present.
    using identity_rule = std::function<std::string(node_id id)>;

    /// Loads the files into a TLS 1.2+ context that demands and verifies a peer certificate
    /// on both sides. The error is OpenSSL's (or the file system's) when a file is missing
    /// or does not parse, or the key does not match the certificate. Without `identity`, any
    /// certificate from the CA may claim any node id.
    static result<mutual_tls> from_files(const tls_files& files, identity_rule identity = {}) {
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
        return mutual_tls(std::move(ctx), std::move(identity));
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

    /// After the TLS handshake: whether the peer's certificate names `claimed`.
    [[nodiscard]] bool verify_identity(stream_type& s, node_id claimed) const {
        if (!identity_) {
            return true;
        }
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        X509* cert = SSL_get1_peer_certificate(s.native_handle());
#else
        X509* cert = SSL_get_peer_certificate(s.native_handle());
#endif
        if (cert == nullptr) {
            return false;
        }
        std::array<char, 256> name{};
        const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName,
                                                name.data(), static_cast<int>(name.size()));
        X509_free(cert);
        return n > 0 &&
               std::string_view(name.data(), static_cast<std::size_t>(n)) == identity_(claimed);
    }

private:
    mutual_tls(std::shared_ptr<boost::asio::ssl::context> ctx, identity_rule identity)
        : context_(std::move(ctx))
        , identity_(std::move(identity)) {}
    std::shared_ptr<boost::asio::ssl::context> context_;
    identity_rule identity_;
};

using tls_tcp_transport = basic_tcp_transport<mutual_tls>;

static_assert(transport<tls_tcp_transport>);

} // namespace synod::net
