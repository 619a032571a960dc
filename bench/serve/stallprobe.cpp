// stallprobe: how much a CPU of this machine is taken away from a running thread, as seen from
// that thread. It spins reading the monotonic clock for S seconds and counts every gap between
// two reads longer than 50 µs: time the thread did not run (hypervisor steal that the guest
// kernel does not report, interrupts, other tasks). run_serve_bench.sh runs it on each CPU
// around every measured run: a latency tail that the machine itself produced shows here.
//
//   stallprobe SECONDS
//   -> {"seconds": S, "lost_ms": .., "gaps_over_500us": N, "gaps_over_1ms": N, "max_gap_us": ..}
#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  const double secs = argc > 1 ? std::atof(argv[1]) : 2.0;
  using Clock = std::chrono::steady_clock;
  const auto ns = [](Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  };
  const auto end = Clock::now() +
                   std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  long long lost = 0, max_gap = 0;
  int over500 = 0, over1000 = 0;
  for (auto prev = Clock::now(); prev < end;) {
    const auto t = Clock::now();
    const long long g = ns(t - prev);
    if (g > 50'000) {
      lost += g;
      over500 += g > 500'000;
      over1000 += g > 1'000'000;
      if (g > max_gap) max_gap = g;
    }
    prev = t;
  }
  std::printf(
      "{\"seconds\": %.1f, \"lost_ms\": %.1f, \"gaps_over_500us\": %d, \"gaps_over_1ms\": %d, "
      "\"max_gap_us\": %.0f}\n",
      secs, lost / 1e6, over500, over1000, max_gap / 1e3);
  return 0;
}
