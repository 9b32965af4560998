#pragma once

/// \file
/// Everything in synod that needs nothing beyond Boost's header-only libraries. The Asio
/// runtime is in `synod/net.hpp`, so a program that brings its own I/O never compiles Asio.

#include <synod/version.hpp>

#include <synod/core/assert.hpp>
#include <synod/core/bytes.hpp>
#include <synod/core/concepts.hpp>
#include <synod/core/epoch.hpp>
#include <synod/core/errc.hpp>
#include <synod/core/hard_state.hpp>
#include <synod/core/ids.hpp>
#include <synod/core/log_entry.hpp>
#include <synod/core/membership.hpp>
#include <synod/core/messages.hpp>
#include <synod/core/result.hpp>
#include <synod/core/snapshot.hpp>

#include <synod/wire/codec.hpp>
#include <synod/wire/crc32c.hpp>
#include <synod/wire/frame.hpp>

#include <synod/raft/node.hpp>
#include <synod/sim/cluster.hpp>
#include <synod/sim/kv_model.hpp>
#include <synod/sim/linearizability.hpp>
#include <synod/storage/memory_log.hpp>

#include <synod/machines/client_sessions.hpp>
#include <synod/machines/compose.hpp>
#include <synod/machines/epoch_ledger.hpp>
#include <synod/machines/service_directory.hpp>

#include <synod/coord/coordinator.hpp>
#include <synod/coord/director.hpp>
#include <synod/coord/director_supervisor.hpp>
#include <synod/coord/epoch_fence.hpp>
#include <synod/coord/simulated_cluster.hpp>
