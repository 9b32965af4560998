// net::asio_scheduler and net::steady_clock: the scheduler concept's contract on an io_context.

#include "net/net_testing.hpp"

#include <doctest/doctest.h>

#include <synod/net/asio_scheduler.hpp>
#include <synod/net/steady_clock.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using synod::net::asio_scheduler;
using synod::net::steady_clock;
using synod::test::run_for;
using synod::test::run_until;

TEST_CASE("asio_scheduler: posts run later, in FIFO order, never inside post") {
    boost::asio::io_context io;
    asio_scheduler s(io.get_executor());
    std::vector<int> ran;
    for (int i = 0; i < 5; ++i) {
        s.post([&ran, i] { ran.push_back(i); });
    }
    CHECK(ran.empty());
    io.run();
    CHECK(ran == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("asio_scheduler: a move-only callable can be posted and scheduled") {
    boost::asio::io_context io;
    asio_scheduler s(io.get_executor());
    auto value = std::make_unique<int>(7);
    int seen = 0;
    s.post([v = std::move(value), &seen] { seen = *v; });
    auto other = std::make_unique<int>(9);
    (void)s.schedule_at(steady_clock{}.now(), [v = std::move(other), &seen] { seen += *v; });
    io.run();
    CHECK(seen == 16);
}

TEST_CASE("asio_scheduler: timers fire once the clock reaches their time") {
    boost::asio::io_context io;
    asio_scheduler s(io.get_executor());
    const steady_clock clock;
    const auto start = clock.now();
    std::optional<steady_clock::time_point> fired;
    (void)s.schedule_at(start + 30ms, [&] { fired = clock.now(); });
    io.run();
    REQUIRE(fired);
    CHECK(*fired >= start + 30ms);
}

TEST_CASE("asio_scheduler: cancel is true before the timer ran, false after or twice") {
    boost::asio::io_context io;
    asio_scheduler s(io.get_executor());
    const steady_clock clock;
    bool early = false;
    bool late = false;
    auto cancelled = s.schedule_at(clock.now() + 10ms, [&] { early = true; });
    auto kept = s.schedule_at(clock.now() + 1ms, [&] { late = true; });
    CHECK(s.cancel(cancelled));
    CHECK_FALSE(s.cancel(cancelled));
    io.run();
    CHECK_FALSE(early);
    CHECK(late);
    CHECK_FALSE(s.cancel(kept));
    CHECK_FALSE(s.cancel(asio_scheduler::timer_handle{}));
}

TEST_CASE("asio_scheduler: nothing runs after destruction, and pending timers do not hold "
          "io_context::run") {
    boost::asio::io_context io;
    bool ran = false;
    {
        asio_scheduler s(io.get_executor());
        s.post([&] { ran = true; });
        (void)s.schedule_at(steady_clock{}.now() + 1h, [&] { ran = true; });
    }
    const auto start = std::chrono::steady_clock::now();
    io.run();
    CHECK_FALSE(ran);
    CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("asio_scheduler: other threads hand work to the context through post on the "
          "executor (ThreadSanitizer checks the hand-off)") {
    boost::asio::io_context io;
    asio_scheduler s(io.get_executor());
    int counter = 0; // touched on the context only
    auto guard = boost::asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    std::vector<std::thread> posters;
    for (int t = 0; t < 4; ++t) {
        posters.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                boost::asio::post(io, [&] { s.post([&] { ++counter; }); });
            }
        });
    }
    for (auto& t : posters) {
        t.join();
    }
    std::promise<int> result;
    boost::asio::post(io, [&] { s.post([&] { result.set_value(counter); }); });
    auto got = result.get_future();
    // Every poster's work was queued before this one, and posts are FIFO.
    CHECK(got.get() == 4000);
    guard.reset();
    io.stop();
    runner.join();
}
