// What the C ABI adds to one frame request, in-process: the same request (frame 1 of a
// native instance of the demo set, `Accept: application/octet-stream`) answered through
// sia_handle + chunk views + sia_response_free from C++, and through the engine's Rust
// API in a loop inside libsia (sia_benchmark_handle), alternating, in the same run.
// Budget: the difference is at most 1 µs per request.
//
// Each side is timed twice: wall-clock, and the calling thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID; both sides run on this thread, the Rust loop inside one
// sia_benchmark_handle call). On a machine shared with other work the wall-clock
// figure mostly measures the wait for a core; the CPU time does not, so the budget is
// checked on it, and both are printed.
//
//   frame_overhead DEMO_DIR WORK_DIR [ITERATIONS]   (bench/cpp/run builds and runs it)
//   frame_overhead DEMO_DIR WORK_DIR ITERATIONS c|rust
// The second form runs only one side, ITERATIONS times, so that `perf stat -e
// instructions` of the two runs, subtracted and divided by ITERATIONS, gives the ABI's
// cost in instructions per request: a figure the machine's load does not change.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <time.h>
#include <vector>

#include "sia.hpp"

namespace {

/// Nanoseconds of CPU time this thread has used.
double thread_cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e9 + double(t.tv_nsec);
}

/// Per-request nanoseconds of one timed round.
struct Round {
  double wall;
  double cpu;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: frame_overhead DEMO_DIR WORK_DIR [ITERATIONS]\n");
    return 2;
  }
  const std::uint64_t n = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 200000;
  sia::engine engine(sia::config::with_db(std::string(argv[2]) + "/bench.db"));
  engine.index({argv[1]});
  const std::string root = "2.25.228146457203842916711418316839742735";
  const std::string path = "/dicom-web/studies/" + root + ".1/series/" + root + ".1.1/instances/" +
                           root + ".1.1.1/frames/1";
  const std::string accept_name = "Accept", accept_value = "application/octet-stream";
  sia_header accept{accept_name.c_str(), accept_name.size(), accept_value.c_str(), accept_value.size()};
  sia_request req{"GET", path.c_str(), "", &accept, 1};
  {
    auto check = engine.handle("GET", path, {{accept_name, accept_value}});
    if (check.status() != 200) {
      std::fprintf(stderr, "frame request answered %u\n", check.status());
      return 1;
    }
    std::printf("request: GET %s (%llu bytes)\n", path.c_str(), (unsigned long long)check.body_length());
  }
  auto through_c = [&](std::uint64_t iterations) {
    const double cpu_start = thread_cpu_ns();
    auto start = std::chrono::steady_clock::now();
    std::uintptr_t seen = 0;
    for (std::uint64_t i = 0; i < iterations; ++i) {
      sia_response *r = nullptr;
      if (sia_handle(engine.get(), &req, &r) != SIA_OK) std::abort();
      std::size_t chunks = sia_response_chunk_count(r);
      for (std::size_t c = 0; c < chunks; ++c) {
        sia_bytes b;
        sia_response_chunk(r, c, &b);
        seen += reinterpret_cast<std::uintptr_t>(b.data);
      }
      seen += sia_response_status(r);
      sia_response_free(r);
    }
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    const double cpu = thread_cpu_ns() - cpu_start;
    if (seen == 1) std::puts("");  // keeps the loop's reads
    return Round{ns / double(iterations), cpu / double(iterations)};
  };
  auto in_rust = [&](std::uint64_t iterations) {
    std::uint64_t ns = 0;
    const double cpu_start = thread_cpu_ns();
    sia::check(sia_benchmark_handle(engine.get(), &req, iterations, &ns));
    const double cpu = thread_cpu_ns() - cpu_start;
    return Round{double(ns) / double(iterations), cpu / double(iterations)};
  };
  if (argc > 4) {
    const std::string side = argv[4];
    if (side != "c" && side != "rust") {
      std::fprintf(stderr, "the side is c or rust, not %s\n", side.c_str());
      return 2;
    }
    Round r = side == "c" ? through_c(n) : in_rust(n);
    std::printf("%s: %.0f ns/request (CPU %.0f) over %llu requests\n", side.c_str(), r.wall, r.cpu,
                (unsigned long long)n);
    return 0;
  }
  through_c(n / 10);  // warm caches (mapping, location cache, allocator)
  in_rust(n / 10);
  const int rounds = 15;
  std::vector<double> c_wall, c_cpu, rust_wall, rust_cpu;
  for (int round = 0; round < rounds; ++round) {
    Round c = through_c(n / rounds);
    Round r = in_rust(n / rounds);
    c_wall.push_back(c.wall);
    c_cpu.push_back(c.cpu);
    rust_wall.push_back(r.wall);
    rust_cpu.push_back(r.cpu);
  }
  const double cw = median(c_wall), cc = median(c_cpu), rw = median(rust_wall), rc = median(rust_cpu);
  std::printf("medians of %d alternating rounds, ns per request:  wall-clock   thread CPU\n", rounds);
  std::printf("through the C ABI (sia_handle)                   %10.0f %12.0f\n", cw, cc);
  std::printf("Rust Engine::handle, same run                    %10.0f %12.0f\n", rw, rc);
  std::printf("overhead of the C ABI                            %10.0f %12.0f  (budget 1000 ns of CPU): %s\n",
              cw - rw, cc - rc, cc - rc <= 1000 ? "within budget" : "OVER BUDGET");
  return cc - rc <= 1000 ? 0 : 1;
}
