#pragma once

/// \file
/// `machines::service_directory`: the replicated map of which services run where. Gateways
/// announce the services of their node; directors read it to find the cluster's logs,
/// storage and resolvers during recovery (seed 000). A pure value (design principle 6):
/// commands arrive as log entries, and every replica that applies the same entries holds the
/// same directory, revision and change history.
///
/// Commands (encoders below; formats in docs/machines.md):
/// - `register_gateway(node, services, capabilities)` replaces the node's whole set of
///   services and its capabilities: its services that are not listed are removed.
/// - `register_services(services)` upserts by service id; other services are untouched.
/// - `deregister_services(ids)` removes those ids; ids that are not registered are ignored, so
///   a retried deregistration is harmless.
///
/// Each command is all-or-nothing: bad input gets an errc in the result and changes nothing.
/// A command that changes something bumps the revision by exactly one; one that changes
/// nothing (the same registration again) leaves it alone. A service id belongs to one node at
/// a time: registering it on another node is `conflicting_service` until it is deregistered.

#include <synod/core/bytes.hpp>
#include <synod/core/concepts/state_machine.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/core/result.hpp>
#include <synod/machines/detail/encoding.hpp>
#include <synod/wire/byte_io.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace synod::machines {

/// A service as its gateway announces it, on the gateway's own node.
struct service_endpoint {
    std::string id;      ///< unique in the directory; 1..`max_id_bytes` bytes, any content
    std::string kind;    ///< what it does ("log", "storage"); 1..`max_kind_bytes` bytes
    std::string address; ///< how to reach it, opaque to synod; 1..`max_address_bytes` bytes

    friend bool operator==(const service_endpoint&, const service_endpoint&) = default;
};

/// A service placed on a node: what `register_services` carries and the history records.
struct service {
    std::string id;
    std::string kind;
    node_id node; ///< the hosting node; never `no_node`
    std::string address;

    friend bool operator==(const service&, const service&) = default;
};

/// A query's view of a service: the service and the capabilities of the node hosting it.
struct service_record {
    std::string id;
    std::string kind;
    node_id node;
    std::string address;
    std::vector<std::string> capabilities; ///< sorted, no duplicates

    friend bool operator==(const service_record&, const service_record&) = default;
};

/// A node's capability set as of some revision (empty: the node announced none).
struct node_capabilities {
    node_id node;
    std::vector<std::string> capabilities; ///< sorted, no duplicates

    friend bool operator==(const node_capabilities&, const node_capabilities&) = default;
};

/// What one effective command changed. Applying a revision's changes, in order, to the
/// directory as of the revision before gives the directory as of that revision.
struct directory_change {
    std::uint64_t revision = 0;                  ///< the revision the command produced
    std::vector<service> upserted;               ///< new or changed services, by id
    std::vector<std::string> removed;            ///< ids no longer registered, sorted
    std::vector<node_capabilities> capabilities; ///< nodes whose capability set was replaced

    friend bool operator==(const directory_change&, const directory_change&) = default;
};

/// A query's answer and the directory revision it was read at.
template <class T>
struct directory_read {
    T value;
    std::uint64_t revision = 0;

    friend bool operator==(const directory_read&, const directory_read&) = default;
};

class service_directory {
public:
    // Limits. They decide which commands are valid, so every replica must agree on them:
    // they are constants of the format, not options.
    static constexpr std::size_t max_id_bytes = 128;
    static constexpr std::size_t max_kind_bytes = 64;
    static constexpr std::size_t max_address_bytes = 256;
    static constexpr std::size_t max_capability_bytes = 64;
    static constexpr std::size_t max_capabilities = 64;
    static constexpr std::size_t max_services_per_command = 1024;

    /// How many changed items (a service upserted or removed, a node's capabilities replaced)
    /// the change history keeps by default; see `changes_since`.
    static constexpr std::size_t default_history_budget = 4096;

    static constexpr std::uint8_t command_version = 1;
    static constexpr std::uint8_t snapshot_version = 1;

    struct register_gateway_command {
        node_id node;
        std::vector<service_endpoint> services;
        std::vector<std::string> capabilities;

        friend bool operator==(const register_gateway_command&,
                               const register_gateway_command&) = default;
    };
    struct register_services_command {
        std::vector<service> services;

        friend bool operator==(const register_services_command&,
                               const register_services_command&) = default;
    };
    struct deregister_services_command {
        std::vector<std::string> ids;

        friend bool operator==(const deregister_services_command&,
                               const deregister_services_command&) = default;
    };
    using command = std::variant<register_gateway_command, register_services_command,
                                 deregister_services_command>;

    struct result_type {
        /// Why the command changed nothing: bad input (see each errc) or a command that does
        /// not decode (`truncated_input`, `length_mismatch`, `unknown_version`,
        /// `unknown_message_type`). Empty on success.
        std::error_code error;
        /// The directory's revision after the command.
        std::uint64_t revision = 0;
        /// Whether the command changed the directory (and so bumped `revision`).
        bool changed = false;

        friend bool operator==(const result_type&, const result_type&) = default;
    };

    /// `history_budget`: how many changed items `changes_since` can look back over. Trimming
    /// the history is part of the replicated state, so every replica must use the same value.
    explicit service_directory(std::size_t history_budget = default_history_budget)
        : history_budget_(history_budget) {}

    // ---- Encoders: what a coordinator proposes. They encode any input; validity is decided
    // when the command is applied, the same way on every replica.

    [[nodiscard]] static shared_bytes
    encode_register_gateway(node_id node, const std::vector<service_endpoint>& services,
                            const std::vector<std::string>& capabilities) {
        byte_vector out;
        wire::byte_writer w(out);
        put_header(w, op::register_gateway);
        w.put(node.value());
        w.put(static_cast<std::uint32_t>(services.size()));
        for (const auto& s : services) {
            detail::put_string(w, s.id);
            detail::put_string(w, s.kind);
            detail::put_string(w, s.address);
        }
        put_strings(w, capabilities);
        return shared_bytes(byte_span(out));
    }

    [[nodiscard]] static shared_bytes
    encode_register_services(const std::vector<service>& services) {
        byte_vector out;
        wire::byte_writer w(out);
        put_header(w, op::register_services);
        put_services(w, services);
        return shared_bytes(byte_span(out));
    }

    [[nodiscard]] static shared_bytes
    encode_deregister_services(const std::vector<std::string>& ids) {
        byte_vector out;
        wire::byte_writer w(out);
        put_header(w, op::deregister_services);
        put_strings(w, ids);
        return shared_bytes(byte_span(out));
    }

    /// The command in `payload`, or why it does not decode. Decoding checks structure only;
    /// `apply` checks the contents.
    [[nodiscard]] static result<command> decode(byte_span payload) {
        wire::byte_reader r(payload);
        const auto version = r.get<std::uint8_t>();
        const auto code = r.get<std::uint8_t>();
        if (!r.ok()) {
            return r.error();
        }
        if (version != command_version) {
            return errc::unknown_version;
        }
        command cmd;
        switch (static_cast<op>(code)) {
        case op::register_gateway: {
            register_gateway_command c;
            c.node = node_id{r.get<std::uint64_t>()};
            const auto count = detail::get_count(r, 3 * sizeof(std::uint32_t));
            c.services.reserve(count);
            for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
                service_endpoint s;
                s.id = detail::get_string(r);
                s.kind = detail::get_string(r);
                s.address = detail::get_string(r);
                c.services.push_back(std::move(s));
            }
            c.capabilities = get_strings(r);
            cmd = std::move(c);
            break;
        }
        case op::register_services:
            cmd = register_services_command{get_services(r)};
            break;
        case op::deregister_services:
            cmd = deregister_services_command{get_strings(r)};
            break;
        default:
            return errc::unknown_message_type;
        }
        if (r.ok() && r.remaining() != 0) {
            r.fail(errc::length_mismatch);
        }
        if (!r.ok()) {
            return r.error();
        }
        return cmd;
    }

    // ---- state_machine

    result_type apply(const log_entry& e) {
        auto cmd = decode(e.payload.span());
        if (!cmd) {
            return rejected(cmd.error());
        }
        return std::visit([this](const auto& c) { return execute(c); }, *cmd);
    }

    /// Everything: services, capabilities, revision and the retained change history, sealed
    /// with a CRC32C.
    [[nodiscard]] shared_bytes snapshot() const {
        byte_vector out;
        wire::byte_writer w(out);
        w.put(snapshot_version);
        w.put(revision_);
        put_capabilities(w, nodes().value);
        std::vector<service> all;
        all.reserve(services_.size());
        for (const auto& [id, s] : services_) {
            all.push_back(s);
        }
        put_services(w, all);
        w.put(static_cast<std::uint32_t>(history_.size()));
        for (const auto& change : history_) {
            w.put(change.revision);
            put_services(w, change.upserted);
            put_strings(w, change.removed);
            put_capabilities(w, change.capabilities);
        }
        return detail::seal(out);
    }

    /// Replaces the whole state with a snapshot's. `corrupt_snapshot` (state unchanged) if it
    /// is damaged, of another version, or holds anything a command could not have produced.
    std::error_code restore(byte_span bytes) {
        const auto body = detail::unseal(bytes);
        if (!body) {
            return errc::corrupt_snapshot;
        }
        wire::byte_reader r(*body);
        const auto version = r.get<std::uint8_t>();
        service_directory loaded(history_budget_);
        loaded.revision_ = r.get<std::uint64_t>();
        const auto announced = get_capabilities(r);
        const auto all = get_services(r);
        const auto changes =
            detail::get_count(r, sizeof(std::uint64_t) + 3 * sizeof(std::uint32_t));
        for (std::uint32_t i = 0; i < changes && r.ok(); ++i) {
            directory_change c;
            c.revision = r.get<std::uint64_t>();
            c.upserted = get_services(r);
            c.removed = get_strings(r);
            c.capabilities = get_capabilities(r);
            loaded.history_.push_back(std::move(c));
        }
        if (!r.ok() || r.remaining() != 0 || version != snapshot_version) {
            return errc::corrupt_snapshot;
        }
        for (const auto& nc : announced) {
            // A snapshot lists only nodes that announced capabilities, each once.
            if (nc.capabilities.empty() ||
                !loaded.nodes_.try_emplace(nc.node, hosted_node{nc.capabilities, {}}).second) {
                return errc::corrupt_snapshot;
            }
        }
        for (const auto& s : all) {
            if (!loaded.services_.emplace(s.id, s).second) {
                return errc::corrupt_snapshot;
            }
            loaded.nodes_[s.node].service_ids.insert(s.id);
        }
        for (const auto& c : loaded.history_) {
            loaded.history_items_ += items_in(c);
        }
        loaded.trim_history(); // a replica with a larger budget may have kept more
        if (!loaded.well_formed()) {
            return errc::corrupt_snapshot;
        }
        *this = std::move(loaded);
        return {};
    }

    // ---- Queries. Each answers with the revision it was read at.

    [[nodiscard]] std::uint64_t revision() const noexcept { return revision_; }

    /// The service `id`, or `unknown_service`.
    [[nodiscard]] result<directory_read<service_record>> find(std::string_view id) const {
        const auto it = services_.find(id);
        if (it == services_.end()) {
            return errc::unknown_service;
        }
        return directory_read<service_record>{record_of(it->second), revision_};
    }

    /// Every service, by id.
    [[nodiscard]] directory_read<std::vector<service_record>> all() const {
        return select([](const service&) { return true; });
    }

    /// The services hosted on `node`, by id.
    [[nodiscard]] directory_read<std::vector<service_record>> on_node(node_id node) const {
        directory_read<std::vector<service_record>> out{{}, revision_};
        if (const auto it = nodes_.find(node); it != nodes_.end()) {
            for (const auto& id : it->second.service_ids) {
                out.value.push_back(record_of(services_.find(id)->second));
            }
        }
        return out;
    }

    /// The services of a kind, by id.
    [[nodiscard]] directory_read<std::vector<service_record>> of_kind(std::string_view kind) const {
        return select([kind](const service& s) { return s.kind == kind; });
    }

    /// The services on nodes that announced `capability`, by id.
    [[nodiscard]] directory_read<std::vector<service_record>>
    with_capability(std::string_view capability) const {
        return select([this, capability](const service& s) {
            const auto& caps = capabilities_ref(s.node);
            return std::binary_search(caps.begin(), caps.end(), capability, std::less<>{});
        });
    }

    /// The capabilities `node` announced in its latest `register_gateway` (empty if none).
    [[nodiscard]] directory_read<std::vector<std::string>> capabilities_of(node_id node) const {
        return {capabilities_ref(node), revision_};
    }

    /// Every node that announced capabilities, by node: with `all()`, what a watcher that
    /// must resync reads (a node's capabilities matter before it hosts any service).
    [[nodiscard]] directory_read<std::vector<node_capabilities>> nodes() const {
        directory_read<std::vector<node_capabilities>> out{{}, revision_};
        for (const auto& [node, hosted] : nodes_) {
            if (!hosted.capabilities.empty()) {
                out.value.push_back({node, hosted.capabilities});
            }
        }
        return out;
    }

    /// The changes after `since`, oldest first, read at the current revision: a watcher that
    /// has seen the directory as of `since` applies them to be current.
    ///
    /// The history keeps at least the latest change and, beyond it, as many older changes as
    /// fit in `history_budget` changed items. A watcher that fell further behind gets
    /// `revision_compacted` and must read `all()` and `nodes()` again (and watch from their
    /// revision).
    /// `revision_not_reached` if `since` is newer than this replica's revision (the watcher
    /// read a replica that is further ahead).
    [[nodiscard]] result<directory_read<std::vector<directory_change>>>
    changes_since(std::uint64_t since) const {
        if (since > revision_) {
            return errc::revision_not_reached;
        }
        if (since < oldest_reachable_revision()) {
            return errc::revision_compacted;
        }
        const auto skip = static_cast<std::size_t>(since - oldest_reachable_revision());
        return directory_read<std::vector<directory_change>>{
            {history_.begin() + static_cast<std::ptrdiff_t>(skip), history_.end()}, revision_};
    }

    /// The oldest revision `changes_since` still answers from.
    [[nodiscard]] std::uint64_t oldest_reachable_revision() const noexcept {
        return history_.empty() ? revision_ : history_.front().revision - 1;
    }

    /// Whether `capability` has the documented form: 1 to 64 characters of [a-z0-9_.-].
    [[nodiscard]] static bool valid_capability(std::string_view capability) noexcept {
        if (capability.empty() || capability.size() > max_capability_bytes) {
            return false;
        }
        return std::all_of(capability.begin(), capability.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                   c == '-';
        });
    }

    /// Whether every `\invariant` of the members holds: for tests and invariant checkers, and
    /// what a restored snapshot must satisfy.
    [[nodiscard]] bool well_formed() const {
        std::size_t hosted = 0;
        for (const auto& [node, h] : nodes_) {
            if (node == no_node || (h.service_ids.empty() && h.capabilities.empty()) ||
                !is_normalized(h.capabilities)) {
                return false;
            }
            for (const auto& id : h.service_ids) {
                const auto it = services_.find(id);
                if (it == services_.end() || it->second.node != node) {
                    return false;
                }
            }
            hosted += h.service_ids.size();
        }
        // Each id sits only in its own node's set, so equal counts mean each sits in one.
        if (hosted != services_.size()) {
            return false;
        }
        for (const auto& [id, s] : services_) {
            if (id != s.id || check_service(s)) {
                return false;
            }
        }
        std::size_t items = 0;
        for (const auto& c : history_) {
            items += items_in(c);
        }
        return history_well_formed() && items == history_items_ &&
               (history_.size() <= 1 || items <= history_budget_);
    }

    friend bool operator==(const service_directory&, const service_directory&) = default;

private:
    enum class op : std::uint8_t {
        register_gateway = 1,
        register_services = 2,
        deregister_services = 3,
    };

    struct hosted_node {
        /// \invariant sorted, no duplicates, each `valid_capability`.
        std::vector<std::string> capabilities;
        /// \invariant exactly the ids in `services_` whose node is this one.
        std::set<std::string, std::less<>> service_ids;

        friend bool operator==(const hosted_node&, const hosted_node&) = default;
    };

    // ---- encoding

    static void put_header(wire::byte_writer& w, op code) {
        w.put(command_version);
        w.put(static_cast<std::uint8_t>(code));
    }
    static void put_strings(wire::byte_writer& w, const std::vector<std::string>& strings) {
        w.put(static_cast<std::uint32_t>(strings.size()));
        for (const auto& s : strings) {
            detail::put_string(w, s);
        }
    }
    static std::vector<std::string> get_strings(wire::byte_reader& r) {
        std::vector<std::string> out(detail::get_count(r, sizeof(std::uint32_t)));
        for (auto& s : out) {
            s = detail::get_string(r);
        }
        return out;
    }
    static void put_services(wire::byte_writer& w, const std::vector<service>& services) {
        w.put(static_cast<std::uint32_t>(services.size()));
        for (const auto& s : services) {
            detail::put_string(w, s.id);
            detail::put_string(w, s.kind);
            w.put(s.node.value());
            detail::put_string(w, s.address);
        }
    }
    static std::vector<service> get_services(wire::byte_reader& r) {
        std::vector<service> out(
            detail::get_count(r, 3 * sizeof(std::uint32_t) + sizeof(std::uint64_t)));
        for (auto& s : out) {
            s.id = detail::get_string(r);
            s.kind = detail::get_string(r);
            s.node = node_id{r.get<std::uint64_t>()};
            s.address = detail::get_string(r);
        }
        return out;
    }
    static void put_capabilities(wire::byte_writer& w, const std::vector<node_capabilities>& all) {
        w.put(static_cast<std::uint32_t>(all.size()));
        for (const auto& nc : all) {
            w.put(nc.node.value());
            put_strings(w, nc.capabilities);
        }
    }
    static std::vector<node_capabilities> get_capabilities(wire::byte_reader& r) {
        std::vector<node_capabilities> out(
            detail::get_count(r, sizeof(std::uint64_t) + sizeof(std::uint32_t)));
        for (auto& nc : out) {
            nc.node = node_id{r.get<std::uint64_t>()};
            nc.capabilities = get_strings(r);
        }
        return out;
    }

    // ---- validation: pure functions of the command (and, for conflicts, of the state), so
    // every replica rejects the same commands with the same errc.

    static std::error_code check_field(std::string_view value, std::size_t max_bytes) {
        if (value.empty()) {
            return errc::missing_field;
        }
        if (value.size() > max_bytes) {
            return errc::field_too_large;
        }
        return {};
    }
    static std::error_code check_endpoint(const service_endpoint& s) {
        return check_strings(s.id, s.kind, s.address);
    }
    static std::error_code check_service(const service& s) {
        if (s.node == no_node) {
            return errc::missing_field;
        }
        return check_strings(s.id, s.kind, s.address);
    }
    static std::error_code check_strings(std::string_view id, std::string_view kind,
                                         std::string_view address) {
        for (auto [value, max] : {std::pair{id, max_id_bytes}, std::pair{kind, max_kind_bytes},
                                  std::pair{address, max_address_bytes}}) {
            if (auto ec = check_field(value, max)) {
                return ec;
            }
        }
        return {};
    }
    /// `duplicate_service` if `ids` (in command order) names an id twice.
    static std::error_code check_unique(std::vector<std::string_view> ids) {
        std::sort(ids.begin(), ids.end());
        if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
            return errc::duplicate_service;
        }
        return {};
    }
    /// `conflicting_service` if `id` is registered on a node other than `node`.
    [[nodiscard]] std::error_code check_owner(std::string_view id, node_id node) const {
        const auto it = services_.find(id);
        if (it != services_.end() && it->second.node != node) {
            return errc::conflicting_service;
        }
        return {};
    }
    static bool is_normalized(const std::vector<std::string>& capabilities) {
        return std::all_of(capabilities.begin(), capabilities.end(),
                           [](const std::string& c) { return valid_capability(c); }) &&
               std::adjacent_find(capabilities.begin(), capabilities.end(),
                                  std::greater_equal<>{}) == capabilities.end();
    }

    // ---- commands

    result_type execute(const register_gateway_command& c) {
        if (c.services.size() > max_services_per_command ||
            c.capabilities.size() > max_capabilities) {
            return rejected(errc::field_too_large);
        }
        if (c.node == no_node) {
            return rejected(errc::missing_field);
        }
        for (const auto& s : c.services) {
            if (auto ec = check_endpoint(s)) {
                return rejected(ec);
            }
        }
        for (const auto& cap : c.capabilities) {
            if (!valid_capability(cap)) {
                return rejected(errc::invalid_capability);
            }
        }
        std::vector<std::string_view> ids;
        for (const auto& s : c.services) {
            ids.push_back(s.id);
        }
        if (auto ec = check_unique(ids)) {
            return rejected(ec);
        }
        for (const auto& s : c.services) {
            if (auto ec = check_owner(s.id, c.node)) {
                return rejected(ec);
            }
        }

        directory_change change;
        std::set<std::string_view> listed(ids.begin(), ids.end());
        if (const auto it = nodes_.find(c.node); it != nodes_.end()) {
            for (const auto& id : it->second.service_ids) {
                if (!listed.contains(id)) {
                    change.removed.push_back(id);
                }
            }
        }
        for (const auto& s : c.services) {
            add_if_changed(change, service{s.id, s.kind, c.node, s.address});
        }
        std::vector<std::string> capabilities = c.capabilities;
        std::sort(capabilities.begin(), capabilities.end());
        capabilities.erase(std::unique(capabilities.begin(), capabilities.end()),
                           capabilities.end());
        if (capabilities != capabilities_ref(c.node)) {
            change.capabilities.push_back({c.node, std::move(capabilities)});
        }
        return commit(std::move(change));
    }

    result_type execute(const register_services_command& c) {
        if (c.services.size() > max_services_per_command) {
            return rejected(errc::field_too_large);
        }
        for (const auto& s : c.services) {
            if (auto ec = check_service(s)) {
                return rejected(ec);
            }
        }
        std::vector<std::string_view> ids;
        for (const auto& s : c.services) {
            ids.push_back(s.id);
        }
        if (auto ec = check_unique(ids)) {
            return rejected(ec);
        }
        for (const auto& s : c.services) {
            if (auto ec = check_owner(s.id, s.node)) {
                return rejected(ec);
            }
        }
        directory_change change;
        for (const auto& s : c.services) {
            add_if_changed(change, s);
        }
        return commit(std::move(change));
    }

    result_type execute(const deregister_services_command& c) {
        if (c.ids.size() > max_services_per_command) {
            return rejected(errc::field_too_large);
        }
        for (const auto& id : c.ids) {
            if (auto ec = check_field(id, max_id_bytes)) {
                return rejected(ec);
            }
        }
        if (auto ec = check_unique({c.ids.begin(), c.ids.end()})) {
            return rejected(ec);
        }
        directory_change change;
        for (const auto& id : c.ids) {
            if (services_.contains(id)) {
                change.removed.push_back(id);
            }
        }
        return commit(std::move(change));
    }

    void add_if_changed(directory_change& change, const service& s) const {
        const auto it = services_.find(s.id);
        if (it == services_.end() || it->second != s) {
            change.upserted.push_back(s);
        }
    }

    [[nodiscard]] result_type rejected(std::error_code ec) const { return {ec, revision_, false}; }

    /// Applies a validated change: one new revision, or none if it changes nothing.
    result_type commit(directory_change change) {
        if (change.upserted.empty() && change.removed.empty() && change.capabilities.empty()) {
            return {{}, revision_, false};
        }
        auto by_id = [](const service& a, const service& b) { return a.id < b.id; };
        std::sort(change.upserted.begin(), change.upserted.end(), by_id);
        std::sort(change.removed.begin(), change.removed.end());
        for (const auto& id : change.removed) {
            const auto it = services_.find(id);
            auto& hosted = nodes_[it->second.node];
            hosted.service_ids.erase(id);
            forget_if_empty(it->second.node);
            services_.erase(it);
        }
        for (const auto& s : change.upserted) {
            services_.insert_or_assign(s.id, s);
            nodes_[s.node].service_ids.insert(s.id);
        }
        for (const auto& nc : change.capabilities) {
            nodes_[nc.node].capabilities = nc.capabilities;
            forget_if_empty(nc.node);
        }
        change.revision = ++revision_;
        history_items_ += items_in(change);
        history_.push_back(std::move(change));
        trim_history();
        return {{}, revision_, true};
    }

    void forget_if_empty(node_id node) {
        const auto it = nodes_.find(node);
        if (it != nodes_.end() && it->second.service_ids.empty() &&
            it->second.capabilities.empty()) {
            nodes_.erase(it);
        }
    }

    static std::size_t items_in(const directory_change& c) noexcept {
        return std::max<std::size_t>(1,
                                     c.upserted.size() + c.removed.size() + c.capabilities.size());
    }

    /// Drops the oldest changes beyond the budget, always keeping the latest.
    void trim_history() {
        while (history_.size() > 1 && history_items_ > history_budget_) {
            history_items_ -= items_in(history_.front());
            history_.pop_front();
        }
    }

    /// A restored history must be one change per revision, ending at the current revision,
    /// each change well formed.
    [[nodiscard]] bool history_well_formed() const {
        if (!history_.empty() &&
            (history_.back().revision != revision_ || history_.back().revision < history_.size())) {
            return false;
        }
        if (history_.empty() && revision_ != 0) {
            return false; // a non-zero revision always keeps its latest change
        }
        for (std::size_t i = 0; i < history_.size(); ++i) {
            const auto& c = history_[i];
            if (c.revision != revision_ - (history_.size() - 1 - i) ||
                (c.upserted.empty() && c.removed.empty() && c.capabilities.empty())) {
                return false;
            }
            for (const auto& s : c.upserted) {
                if (check_service(s)) {
                    return false;
                }
            }
            for (const auto& id : c.removed) {
                if (check_field(id, max_id_bytes)) {
                    return false;
                }
            }
            for (const auto& nc : c.capabilities) {
                if (nc.node == no_node || !is_normalized(nc.capabilities)) {
                    return false;
                }
            }
        }
        return true;
    }

    [[nodiscard]] const std::vector<std::string>& capabilities_ref(node_id node) const {
        static const std::vector<std::string> none;
        const auto it = nodes_.find(node);
        return it == nodes_.end() ? none : it->second.capabilities;
    }

    [[nodiscard]] service_record record_of(const service& s) const {
        return {s.id, s.kind, s.node, s.address, capabilities_ref(s.node)};
    }

    template <class Pred>
    [[nodiscard]] directory_read<std::vector<service_record>> select(Pred pred) const {
        directory_read<std::vector<service_record>> out{{}, revision_};
        for (const auto& [id, s] : services_) {
            if (pred(s)) {
                out.value.push_back(record_of(s));
            }
        }
        return out;
    }

    /// Must be equal on every replica (see the constructor).
    std::size_t history_budget_;
    /// \invariant each key equals its service's id; each service passes `check_service`.
    std::map<std::string, service, std::less<>> services_;
    /// \invariant a node has an entry iff it hosts a service or announced a capability.
    std::map<node_id, hosted_node> nodes_;
    /// \invariant counts the effective commands applied since the directory was empty.
    std::uint64_t revision_ = 0;
    /// \invariant one change per revision, contiguous and ascending, the last at `revision_`;
    /// non-empty whenever `revision_ > 0`.
    std::deque<directory_change> history_;
    /// \invariant the sum of `items_in` over `history_`; at most `history_budget_` unless
    /// `history_` holds only the latest change.
    std::size_t history_items_ = 0;
};

static_assert(state_machine<service_directory>);

} // namespace synod::machines
