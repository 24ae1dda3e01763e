#include "train/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ssm {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  const auto total = static_cast<std::int64_t>(std::llround(seconds));
  const std::int64_t h = total / 3600, m = (total / 60) % 60, s = total % 60;
  char buf[48];
  if (h > 0) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(h),
                  static_cast<long long>(m), static_cast<long long>(s));
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(m),
                  static_cast<long long>(s));
  }
  return buf;
}

namespace {

std::string metrics_tail(const ProgressLine& p) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "loss %.4f acc %.3f lr %.2e %.0f samples/s ETA %s", p.loss,
                p.accuracy, p.lr, p.samples_per_s, format_duration(p.eta_s).c_str());
  return buf;
}

}  // namespace

std::string format_bar(const ProgressLine& p, int width) {
  const double frac = p.epoch_steps > 0
                          ? std::clamp(static_cast<double>(p.epoch_step) / p.epoch_steps, 0.0, 1.0)
                          : 0.0;
  const int filled = static_cast<int>(std::lround(frac * width));
  std::string bar(static_cast<std::size_t>(width) + 2, '-');
  bar.front() = '[';
  bar.back() = ']';
  for (int i = 0; i < filled; ++i) bar[static_cast<std::size_t>(i) + 1] = '#';
  char head[96];
  if (p.epochs > 0) {
    std::snprintf(head, sizeof head, "epoch %lld/%lld ", static_cast<long long>(p.epoch),
                  static_cast<long long>(p.epochs));
  } else {
    std::snprintf(head, sizeof head, "epoch %lld ", static_cast<long long>(p.epoch));
  }
  char count[64];
  std::snprintf(count, sizeof count, " %4lld/%lld ", static_cast<long long>(p.epoch_step),
                static_cast<long long>(p.epoch_steps));
  std::string line = head;
  line.append(bar).append(count).append(metrics_tail(p));
  return line;
}

std::string format_plain(const ProgressLine& p) {
  char head[96];
  std::snprintf(head, sizeof head, "step %lld/%lld epoch %lld ", static_cast<long long>(p.step),
                static_cast<long long>(p.total_steps), static_cast<long long>(p.epoch));
  std::string line = head;
  line.append(metrics_tail(p));
  return line;
}

}  // namespace ssm
