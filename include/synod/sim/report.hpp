#pragma once

/// \file
/// A self-contained HTML report of one sweep run: the verdict, fault hits, a per-node timeline
/// of roles and terms with the faults injected, the last messages sent, and the client
/// history with the operations of the longest linearizable prefix marked, so a failing seed
/// can be read without rerunning it.

#include <synod/sim/sweep.hpp>

#include <chrono>
#include <iterator>
#include <map>
#include <ostream>
#include <string>

namespace synod::sim {

namespace report_detail {

inline std::string escape(std::string_view text) {
    std::string out;
    for (char c : text) {
        switch (c) {
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '&':
            out += "&amp;";
            break;
        case '"':
            out += "&quot;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

inline double ms(time_point t, time_point origin) {
    return std::chrono::duration<double, std::milli>(t - origin).count();
}

inline const char* role_colour(raft::role r) {
    switch (r) {
    case raft::role::leader:
        return "#2e7d32";
    case raft::role::candidate:
        return "#ef6c00";
    case raft::role::pre_candidate:
        return "#fbc02d";
    case raft::role::follower:
        return "#90a4ae";
    }
    return "#000";
}

} // namespace report_detail

/// Writes the report of `r` as one HTML document (no external resources).
inline void write_html_report(const sweep_result& r, std::ostream& out) {
    using report_detail::escape;
    using report_detail::ms;
    const time_point origin = r.roles.empty() ? time_point{} : r.roles.front().at;
    time_point end = origin + r.simulated;
    const double width = 1200;
    const double span = std::max(1.0, ms(end, origin));
    auto x = [&](time_point t) { return 100 + (width - 110) * ms(t, origin) / span; };

    out << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>synod sweep seed " << r.seed
        << "</title>\n<style>body{font-family:sans-serif;margin:1em}"
        << "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        << ".fail{color:#b71c1c}.ok{color:#1b5e20}.prefix{stroke:#1565c0;stroke-width:2}"
        << "</style></head><body>\n";
    out << "<h1>synod sweep, seed " << r.seed << ": <span id=\"verdict\" class=\""
        << (r.passed ? "ok\">passed" : "fail\">FAILED") << "</span></h1>\n";
    if (!r.passed) {
        out << "<p class=\"fail\" id=\"failure\">" << escape(r.failure) << "</p>\n";
    }
    out << "<p>" << r.cluster_size << " nodes; " << ms(end, origin) / 1000 << " s simulated; "
        << r.operations << " operations completed, " << r.unknown_operations
        << " with unknown outcome; trace hash " << std::hex << r.trace_hash << std::dec
        << "</p>\n<p>Replay: <code>synod_sim --seed " << r.seed << "</code></p>\n";

    out << "<h2>Fault hits</h2><table><tr><th>class</th><th>hits</th></tr>";
    for (std::size_t i = 0; i < fault_count; ++i) {
        out << "<tr><td>" << to_string(static_cast<fault>(i)) << "</td><td>" << r.hits.hits[i]
            << "</td></tr>";
    }
    out << "</table>\n";

    // Roles over time, one row per node, faults as ticks.
    std::map<std::uint64_t, std::vector<const sweep_result::role_change*>> by_node;
    for (const auto& c : r.roles) {
        by_node[c.node.value()].push_back(&c);
    }
    const double row = 28;
    out << "<h2>Roles and terms</h2><svg id=\"timeline\" width=\"" << width << "\" height=\""
        << row * static_cast<double>(by_node.size() + 1) + 20 << "\">\n";
    std::size_t k = 0;
    for (const auto& [id, changes] : by_node) {
        const double y = 10 + row * static_cast<double>(k++);
        out << "<text x=\"4\" y=\"" << y + 15 << "\">n" << id << "</text>\n";
        for (std::size_t i = 0; i < changes.size(); ++i) {
            const time_point from = changes[i]->at;
            const time_point to = i + 1 < changes.size() ? changes[i + 1]->at : end;
            out << "<rect x=\"" << x(from) << "\" y=\"" << y << "\" width=\""
                << std::max(0.5, x(to) - x(from)) << "\" height=\"20\" fill=\""
                << report_detail::role_colour(changes[i]->role) << "\"><title>"
                << raft::to_string(changes[i]->role) << " term " << changes[i]->t.value()
                << " from " << ms(from, origin) << " ms</title></rect>\n";
        }
    }
    const double fy = 10 + row * static_cast<double>(by_node.size());
    for (const auto& f : r.faults) {
        out << "<line x1=\"" << x(f.at) << "\" x2=\"" << x(f.at) << "\" y1=\"" << fy << "\" y2=\""
            << fy + 16 << "\" stroke=\"#b71c1c\"><title>" << ms(f.at, origin)
            << " ms: " << escape(f.what) << "</title></line>\n";
    }
    out << "<text x=\"4\" y=\"" << fy + 14 << "\">faults</text></svg>\n";

    out << "<h2>Last messages</h2><p>" << r.messages_sent << " messages sent in all; the last "
        << r.recent_messages.size()
        << ":</p><table id=\"messages\"><tr><th>ms</th><th>from"
           "</th><th>to</th><th>type</th><th>term</th></tr>\n";
    constexpr const char* type_names[] = {"vote_request",
                                          "vote_response",
                                          "append_request",
                                          "append_response",
                                          "snapshot_chunk_request",
                                          "snapshot_chunk_response",
                                          "timeout_now",
                                          "read_index_request",
                                          "read_index_response",
                                          "proposal_forward",
                                          "proposal_forward_response"};
    for (const auto& m : r.recent_messages) {
        out << "<tr><td>" << ms(m.at, origin) << "</td><td>n" << m.from.value() << "</td><td>n"
            << m.to.value() << "</td><td>"
            << (m.type < std::size(type_names) ? type_names[m.type] : "?") << "</td><td>"
            << m.t.value() << "</td></tr>\n";
    }
    out << "</table>\n";

    // The client history, filterable by key.
    out << "<h2>Client history</h2><p>Key: <select id=\"key\"><option value=\"\">all</option>";
    std::map<std::string, int> keys;
    for (const auto& op : r.history) {
        keys[op.input.key]++;
    }
    for (const auto& [key, n] : keys) {
        out << "<option>" << escape(key) << "</option>";
    }
    out << "</select> Blue outline: in the longest linearizable prefix of the failing "
           "key.</p>\n<table id=\"history\"><tr><th>client</th><th>key</th><th>operation</th>"
           "<th>call ms</th><th>return ms</th></tr>\n";
    std::vector<bool> in_prefix(r.history.size(), false);
    for (std::size_t i : r.linearizability.longest_prefix) {
        if (i < in_prefix.size()) {
            in_prefix[i] = true;
        }
    }
    const std::size_t shown = std::min<std::size_t>(r.history.size(), 5000);
    for (std::size_t i = r.history.size() - shown; i < r.history.size(); ++i) {
        const auto& op = r.history[i];
        out << "<tr data-key=\"" << escape(op.input.key) << "\""
            << (in_prefix[i] ? " style=\"outline:2px solid #1565c0\"" : "") << "><td>" << op.client
            << "</td><td>" << escape(op.input.key) << "</td><td>"
            << escape(kv_model::describe(op.input, op.output)) << "</td><td>" << ms(op.call, origin)
            << "</td><td>" << (op.returned ? std::to_string(ms(*op.returned, origin)) : "unknown")
            << "</td></tr>\n";
    }
    out << "</table>\n<script>\n"
           "'use strict';\n"
           "const select = document.getElementById('key');\n"
           "const rows = Array.from(document.querySelectorAll('#history tr[data-key]'));\n"
           "select.addEventListener('change', () => {\n"
           "  for (const row of rows) {\n"
           "    row.style.display = !select.value || row.dataset.key === select.value ? '' : "
           "'none';\n"
           "  }\n"
           "});\n"
           "document.body.dataset.rendered = String(rows.length);\n"
           "</script>\n</body></html>\n";
}

} // namespace synod::sim
