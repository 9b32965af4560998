#include <doctest/doctest.h>

#include <synod/core/assert.hpp>

#include <csignal>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {

TEST_CASE("SYNOD_ASSERT: a broken invariant prints file, line, expression and message, then "
          "aborts") {
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The child must die of the abort itself, not be reported by the test framework's
        // crash handler, which it inherited.
        std::signal(SIGABRT, SIG_DFL);
        dup2(pipe_fds[1], STDERR_FILENO);
        close(pipe_fds[0]);
        int one = 1;
        SYNOD_ASSERT(one == 2, "one is not two");
        _exit(0); // not reached
    }
    close(pipe_fds[1]);
    std::string output;
    char buffer[256];
    for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0;) {
        output.append(buffer, static_cast<std::size_t>(n));
    }
    close(pipe_fds[0]);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
    CHECK(output.find("assert_test.cpp:") != std::string::npos);
    CHECK(output.find("one == 2") != std::string::npos);
    CHECK(output.find("one is not two") != std::string::npos);
}

TEST_CASE("SYNOD_ASSERT: a holding condition does nothing") {
    int calls = 0;
    SYNOD_ASSERT((++calls, true), "evaluated once");
    CHECK(calls == 1);
}

} // namespace
