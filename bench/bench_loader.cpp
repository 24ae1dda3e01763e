// bench_loader: samples/s of iterating one epoch of a DataLoader, with and
// without background prefetch, on generated datasets whose get() does real
// work (selective copying at L = 4096, induction heads at L = 65536). A
// consumer that computes for `consumer_ms` per batch (a busy loop standing in
// for the training step) shows the overlap prefetch buys: without prefetch
// an epoch costs load + compute, with it max(load, compute) when a second
// core is free. The consumer either spins (a CPU training step, which
// competes with the worker for cores) or sleeps (a GPU step, the CPU idle
// while it waits). On a loaded machine the spinning rows show little
// overlap: the worker has no free core. Prints one JSON object per case:
//   {"dataset": ..., "prefetch": ..., "consumer_ms": ..., "samples_per_s": ..., ...}
// and, with --out FILE, writes them with the machine and date to FILE.
// Usage: bench_loader [--runs N] [--consumer_ms A,B,...] [--out FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "apps/omp_defaults.h"
#include "data/dataset.h"
#include "data/synthetic.h"

using namespace ssm;

namespace {

double now_s() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

void busy_ms(double ms) {
  const double end = now_s() + ms / 1000.0;
  volatile double sink = 0.0;
  while (now_s() < end) {
    for (int i = 0; i < 1000; ++i) sink = sink + 1e-9 * i;
  }
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line
                                        : line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

struct Case {
  std::string dataset;
  std::shared_ptr<const data::Dataset> ds;
  std::int64_t batch_size;
};

}  // namespace

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  int runs = 3;
  std::vector<double> consumer_ms = {0.0, 5.0, 10.0};
  std::string out;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--runs") {
      runs = std::stoi(argv[i + 1]);
    } else if (a == "--consumer_ms") {
      consumer_ms.clear();
      std::stringstream ss(argv[i + 1]);
      std::string v;
      while (std::getline(ss, v, ',')) consumer_ms.push_back(std::stod(v));
    } else if (a == "--out") {
      out = argv[i + 1];
    } else {
      std::fprintf(stderr, "bench_loader: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  data::SelectiveCopyingOptions sc;  // L 4096, vocabulary 16, 16 tokens
  data::InductionHeadsOptions ih;
  ih.seq_len = 65536;
  const std::vector<Case> cases = {
      {"selective_copying L=4096", std::make_shared<data::SelectiveCopyingDataset>(sc, 1024, 0),
       32},
      {"induction_heads L=65536", std::make_shared<data::InductionHeadsDataset>(ih, 128, 0), 8},
  };
  std::vector<std::string> lines;
  for (const auto& c : cases) {
    for (const std::string consumer : {"spin", "sleep"}) {
      for (double cms : consumer_ms) {
        if (cms == 0.0 && consumer == "sleep") continue;
        for (std::int64_t prefetch : {0, 2, 4}) {
          data::LoaderOptions o;
          o.batch_size = c.batch_size;
          o.seed = 1;
          o.prefetch = prefetch;
          std::vector<double> times;
          for (int r = -1; r < runs; ++r) {    // run -1 warms up (allocator, caches)
            data::DataLoader loader(c.ds, o);  // the worker starts within the timed epoch
            data::Batch b;
            const double t0 = now_s();
            while (loader.next(b)) {
              if (consumer == "spin") {
                busy_ms(cms);
              } else {
                std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(cms));
              }
            }
            if (r >= 0) times.push_back(now_s() - t0);
          }
          std::sort(times.begin(), times.end());
          const double med = times[times.size() / 2];
          char buf[512];
          std::snprintf(
              buf, sizeof buf,
              "{\"dataset\": \"%s\", \"examples\": %lld, \"batch_size\": %lld, "
              "\"prefetch\": %lld, \"consumer\": \"%s\", \"consumer_ms\": %.1f, \"epoch_s\": %.4f, "
              "\"samples_per_s\": %.1f, \"runs\": %d}",
              c.dataset.c_str(), static_cast<long long>(c.ds->size()),
              static_cast<long long>(c.batch_size), static_cast<long long>(prefetch),
              consumer.c_str(), cms, med, static_cast<double>(c.ds->size()) / med, runs);
          std::printf("%s\n", buf);
          std::fflush(stdout);
          lines.push_back(buf);
        }
      }
    }
  }
  if (!out.empty()) {
    char date[16];
    const std::time_t t = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::localtime(&t));
    std::ofstream f(out);
    f << "{\n  \"benchmark\": \"DataLoader epoch, samples/s (median of " << runs
      << " runs), with and without prefetch\",\n"
      << "  \"machine\": {\"cpu\": \"" << cpu_model()
      << "\", \"logical_cores\": " << std::thread::hardware_concurrency() << "},\n"
      << "  \"date\": \"" << date << "\",\n  \"results\": [\n";
    for (std::size_t i = 0; i < lines.size(); ++i) {
      f << "    " << lines[i] << (i + 1 < lines.size() ? ",\n" : "\n");
    }
    f << "  ]\n}\n";
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}
