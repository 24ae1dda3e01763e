// hippo_demo: online function approximation with HiPPO-LegS (the HiPPO
// paper's demo). A 10,000-step signal is projected online onto 64 LegS
// coefficients, read back from those 64 numbers, and drawn against the
// original; the errors are printed.
//   hippo_demo [--out DIR] [--steps 10000] [--N 64] [--seed 1]
// Two memories from the same matrices (layers/ssm/hippo.h):
//   scale-invariant LegS (x' = A x / t + B u / t): the whole history with an
//     even error;
//   time-invariant LegS (x' = A x + B u, fixed dt, as S4 uses it): recent
//     input accurate, old input fading.
// Writes DIR/hippo_demo.svg. Bad input prints one line and exits with status 2.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "apps/omp_defaults.h"
#include "core/error.h"
#include "layers/ssm/hippo.h"

namespace {

// A smooth random signal: 24 sinusoids of 0.5 to 12 cycles over the window with
// amplitudes falling as 1/f, scaled to unit RMS.
std::vector<double> make_signal(std::int64_t L, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> freq(0.5, 12.0), phase(0.0, 2 * std::numbers::pi);
  std::vector<double> u(static_cast<std::size_t>(L), 0.0);
  for (int j = 0; j < 24; ++j) {
    const double f = freq(rng), p = phase(rng);
    for (std::int64_t k = 0; k < L; ++k) {
      u[k] +=
          std::sin(2 * std::numbers::pi * f * static_cast<double>(k) / static_cast<double>(L) + p) /
          f;
    }
  }
  double ss = 0.0;
  for (double v : u) ss += v * v;
  const double rms = std::sqrt(ss / static_cast<double>(L));
  for (double& v : u) v /= rms;
  return u;
}

double rmse(const std::vector<double>& a, const std::vector<double>& b, std::size_t lo,
            std::size_t hi) {
  double ss = 0.0;
  for (std::size_t i = lo; i < hi; ++i) ss += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(ss / static_cast<double>(hi - lo));
}

struct Series {
  const std::vector<double>* y;
  const char* color;
  const char* label;
  double width;
};

// One panel: polylines (at most ~1200 points each) with axes and a legend.
void panel(std::ostringstream& svg, double top, double height, const std::vector<Series>& series,
           double ymin, double ymax, const std::string& title, std::int64_t L) {
  const double left = 60, width = 880;
  auto X = [&](double k) { return left + width * k / static_cast<double>(L - 1); };
  auto Y = [&](double v) {
    v = std::min(std::max(v, ymin), ymax);
    return top + height * (1.0 - (v - ymin) / (ymax - ymin));
  };
  svg << "<rect x='" << left << "' y='" << top << "' width='" << width << "' height='" << height
      << "' fill='none' stroke='#999'/>\n";
  svg << "<text x='" << left << "' y='" << top - 8 << "' font-size='14'>" << title << "</text>\n";
  for (double v : {ymin, 0.5 * (ymin + ymax), ymax}) {
    svg << "<text x='" << left - 6 << "' y='" << Y(v) + 4 << "' font-size='11' text-anchor='end'>"
        << v << "</text>\n";
  }
  const std::int64_t stride = std::max<std::int64_t>(1, L / 1200);
  double legend_x = left + 10;
  for (const auto& s : series) {
    svg << "<polyline fill='none' stroke='" << s.color << "' stroke-width='" << s.width
        << "' points='";
    for (std::int64_t k = 0; k < L; k += stride)
      svg << X(static_cast<double>(k)) << ',' << Y((*s.y)[k]) << ' ';
    svg << "'/>\n";
    svg << "<rect x='" << legend_x << "' y='" << top + 8 << "' width='14' height='3' fill='"
        << s.color << "'/><text x='" << legend_x + 18 << "' y='" << top + 14 << "' font-size='11'>"
        << s.label << "</text>\n";
    legend_x += 250;
  }
}

}  // namespace

int main(int argc, char** argv) {
  ssm::use_passive_omp_threads(argv);
  CLI::App app{
      "Projects a signal online onto HiPPO-LegS coefficients, reconstructs it and draws both.",
      "hippo_demo"};
  std::string out = ".";
  std::int64_t steps = 10000, N = 64;
  unsigned seed = 1;
  app.add_option("--out", out, "folder for hippo_demo.svg (default: the current folder)");
  app.add_option("--steps", steps, "signal length (default 10000)")
      ->check(CLI::Range(16, 10000000));
  app.add_option("--N", N, "LegS coefficients (default 64)")->check(CLI::Range(1, 1024));
  app.add_option("--seed", seed, "signal seed (default 1)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "hippo_demo: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(out, ec);
    SSM_CHECK(fs::is_directory(out), "hippo_demo", "cannot create the output folder '", out, "'");
    const auto u = make_signal(steps, seed);
    const auto x_tv = ssm::hippo::legs_project(u, N);
    const auto r_tv = ssm::hippo::legs_reconstruct(x_tv, steps);
    // Time-invariant memory over 5 time constants of the slowest mode.
    const double dt = 5.0 / static_cast<double>(steps);
    const auto x_lti = ssm::hippo::legs_project_lti(u, N, dt);
    const auto r_lti = ssm::hippo::legs_reconstruct_lti(x_lti, steps, dt);

    const auto L = static_cast<std::size_t>(steps), tenth = L / 10;
    std::printf("hippo_demo: %lld steps, %lld LegS coefficients\n", static_cast<long long>(steps),
                static_cast<long long>(N));
    std::printf("%-34s %10s %12s %12s\n", "memory", "rmse all", "oldest 10%", "newest 10%");
    std::printf("%-34s %10.4f %12.4f %12.4f\n", "LegS scale-invariant (x'=Ax/t+Bu/t)",
                rmse(u, r_tv, 0, L), rmse(u, r_tv, 0, tenth), rmse(u, r_tv, L - tenth, L));
    std::printf("%-34s %10.4f %12.4f %12.4f\n", "LegS time-invariant (dt=5/steps)",
                rmse(u, r_lti, 0, L), rmse(u, r_lti, 0, tenth), rmse(u, r_lti, L - tenth, L));
    std::printf("rmse by tenth of the history, oldest first:\n");
    for (const auto* r : {&r_tv, &r_lti}) {
      std::printf("  %-14s", r == &r_tv ? "scale-inv." : "time-inv.");
      for (std::size_t d = 0; d < 10; ++d)
        std::printf(" %6.3f", rmse(u, *r, d * tenth, (d + 1) * tenth));
      std::printf("\n");
    }

    // |error| smoothed over a window of steps/200, for the lower panel.
    auto smoothed_error = [&](const std::vector<double>& r) {
      const std::size_t w = std::max<std::size_t>(1, L / 200);
      std::vector<double> e(L);
      double acc = 0.0;
      for (std::size_t i = 0; i < L; ++i) {
        acc += std::abs(u[i] - r[i]);
        if (i >= w) acc -= std::abs(u[i - w] - r[i - w]);
        e[i] = acc / static_cast<double>(std::min(i + 1, w));
      }
      return e;
    };
    const auto e_tv = smoothed_error(r_tv), e_lti = smoothed_error(r_lti);
    double ymax = 0.0;
    for (double v : u) ymax = std::max(ymax, std::abs(v));
    ymax = std::ceil(ymax);
    std::ostringstream svg;
    svg << "<svg xmlns='http://www.w3.org/2000/svg' width='960' height='560' "
           "font-family='sans-serif'>\n"
        << "<rect width='960' height='560' fill='white'/>\n";
    std::ostringstream t1, t2;
    t1 << "Signal (" << steps << " steps) and its reconstruction from " << N
       << " LegS coefficients";
    panel(svg, 40, 300,
          {{&u, "#222", "signal", 1.6},
           {&r_tv, "#1f77b4", "LegS scale-invariant", 1.0},
           {&r_lti, "#d62728", "LegS time-invariant (S4)", 1.0}},
          -ymax, ymax, t1.str(), steps);
    t2 << "|error| along time (mean over " << std::max<std::size_t>(1, L / 200)
       << " steps): old input left, recent right";
    double emax = 0.0;
    for (std::size_t i = 0; i < L; ++i) emax = std::max(emax, std::max(e_tv[i], e_lti[i]));
    panel(svg, 390, 140,
          {{&e_tv, "#1f77b4", "LegS scale-invariant", 1.2},
           {&e_lti, "#d62728", "LegS time-invariant (S4)", 1.2}},
          0.0, std::ceil(emax * 10) / 10, t2.str(), steps);
    svg << "</svg>\n";
    const std::string path = (fs::path(out) / "hippo_demo.svg").string();
    std::ofstream f(path);
    f << svg.str();
    f.close();
    SSM_CHECK(f.good(), "hippo_demo", "cannot write '", path, "'");
    std::printf("wrote %s\n", path.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hippo_demo: %s\n", e.what());
    return 2;
  }
  return 0;
}
