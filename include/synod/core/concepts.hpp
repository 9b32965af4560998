#pragma once

/// \file
/// The five policy concepts, one header each under core/concepts/.

#include <synod/core/concepts/clock.hpp>
#include <synod/core/concepts/log_store.hpp>
#include <synod/core/concepts/scheduler.hpp>
#include <synod/core/concepts/state_machine.hpp>
#include <synod/core/concepts/transport.hpp>
