#pragma once

/// \file
/// The `log_store` policy: a node's durable state — log entries, hard state, snapshot.
///
/// Writes are asynchronous and batched (design principle 3): `append`, `truncate_suffix`,
/// `save_hard_state` and `save_snapshot` take effect at once for reads through this object, but
/// are durable only when a later `flush` completes. The node never acknowledges, votes or
/// counts itself toward a quorum on state whose flush has not completed.
///
/// Requirements, for `l` an `L&`, `cl` a `const L&`, `es` a `std::span<const log_entry>`, `i`,
/// `lo`, `hi` `log_index`es, `budget` a `std::size_t`, `out` a `std::vector<log_entry>&`, `hs` a
/// `const hard_state&`, `s` a `const snapshot&`, `cb` a move-only `void(std::error_code)`:
///
/// | expression | result | pre / post |
/// |---|---|---|
/// | `l.recover()` | `std::error_code` | loads durable state; called once, before any other call. Corrupt state is an error, never silently dropped |
/// | `cl.first_index()` | `log_index` | first entry held: `snapshot.last_index + 1` after compaction, 1 for a fresh log |
/// | `cl.last_index()` | `log_index` | last entry held; `first_index() - 1` when empty |
/// | `cl.term_at(i)` | `std::optional<term>` | term of entry `i`; also answers for `first_index() - 1` (the snapshot's term, or term 0 at index 0); `nullopt` outside that range |
/// | `cl.entries(lo, hi, budget, out)` | `std::error_code` | pre: `first_index() <= lo <= hi <= last_index() + 1`, else `index_out_of_range`. Appends entries [lo, hi) to `out`, stopping once their `entry_cost` sum reaches `budget`, but always at least one entry when `lo < hi` |
/// | `l.append(es)` | `std::error_code` | pre: `es` contiguous, `es[0].index == last_index() + 1`, else `invalid_argument`; `disk_full` writes nothing; `storage_failure` once the log has failed |
/// | `l.truncate_suffix(i)` | `std::error_code` | removes entries `>= i`; pre: `i` above the commit index the node saved |
/// | `l.compact_prefix(i)` | `std::error_code` | pre: a saved snapshot covers `i`. Removes entries `<= i`; if `i > last_index()` the log becomes empty with `first_index() == i + 1` |
/// | `l.save_hard_state(hs)` | `std::error_code` | replaces the hard state |
/// | `cl.saved_hard_state()` | `hard_state` | the latest saved (not necessarily durable) hard state |
/// | `l.save_snapshot(s)` | `std::error_code` | replaces the stored snapshot |
/// | `cl.latest_snapshot()` | `std::optional<snapshot>` | the latest saved snapshot, if any |
/// | `l.flush(cb)` | (ignored) | `cb(ec)` runs exactly once, on the node's context, after every write made before the call is durable (`ec` empty) or has failed (`ec` set; the log then refuses writes). `cb` may run inside `flush` itself |
///
/// Context: every call is made on the node's scheduler context. Storage I/O may happen on
/// other threads as long as `cb` is posted back.

#include <synod/core/concepts/archetypes.hpp>
#include <synod/core/hard_state.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/core/snapshot.hpp>

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

namespace synod {

template <class L>
concept log_store = requires(L& l, const L& cl, std::span<const log_entry> es, log_index i,
                             std::size_t budget, std::vector<log_entry>& out, const hard_state& hs,
                             const snapshot& s, concepts_detail::error_callback cb) {
    { l.recover() } -> std::same_as<std::error_code>;
    { cl.first_index() } -> std::same_as<log_index>;
    { cl.last_index() } -> std::same_as<log_index>;
    { cl.term_at(i) } -> std::same_as<std::optional<term>>;
    { cl.entries(i, i, budget, out) } -> std::same_as<std::error_code>;
    { l.append(es) } -> std::same_as<std::error_code>;
    { l.truncate_suffix(i) } -> std::same_as<std::error_code>;
    { l.compact_prefix(i) } -> std::same_as<std::error_code>;
    { l.save_hard_state(hs) } -> std::same_as<std::error_code>;
    { cl.saved_hard_state() } -> std::same_as<hard_state>;
    { l.save_snapshot(s) } -> std::same_as<std::error_code>;
    { cl.latest_snapshot() } -> std::same_as<std::optional<snapshot>>;
    l.flush(std::move(cb));
};

} // namespace synod
