#include "outpost/core/metrics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <sstream>

namespace outpost {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double s = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(s, s + v, std::memory_order_relaxed)) {
  }
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::Snapshot(std::vector<uint64_t>* buckets, double* sum, uint64_t* count) const {
  buckets->assign(counts_.size(), 0);
  uint64_t acc = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    acc += counts_[i].load(std::memory_order_relaxed);
    (*buckets)[i] = acc;
  }
  *sum = sum_.load(std::memory_order_relaxed);
  *count = acc;
}

MetricsRegistry& MetricsRegistry::Global() {
  static MetricsRegistry* r = new MetricsRegistry();  // never destroyed: used from any thread
  return *r;
}

MetricsRegistry::Family& MetricsRegistry::GetFamily(const std::string& name,
                                                    const std::string& help, const char* type) {
  auto& f = families_[name];
  if (f.type.empty()) {
    f.type = type;
    f.help = help;
  }
  assert(f.type == type && "metric registered twice with different types");
  return f;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     Labels labels) {
  std::sort(labels.begin(), labels.end());
  std::lock_guard<std::mutex> lk(mu_);
  auto& slot = GetFamily(name, help, "counter").counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help, Labels labels) {
  std::sort(labels.begin(), labels.end());
  std::lock_guard<std::mutex> lk(mu_);
  auto& slot = GetFamily(name, help, "gauge").gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> bounds, Labels labels) {
  std::sort(labels.begin(), labels.end());
  std::lock_guard<std::mutex> lk(mu_);
  auto& slot = GetFamily(name, help, "histogram").histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return *slot;
}

namespace {
std::string Escape(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string LabelText(const Labels& l, const std::string& extra_k = "", const std::string& extra_v = "") {
  if (l.empty() && extra_k.empty()) return "";
  std::string s = "{";
  bool first = true;
  for (auto& [k, v] : l) {
    if (!first) s += ",";
    first = false;
    s += k + "=\"" + Escape(v) + "\"";
  }
  if (!extra_k.empty()) {
    if (!first) s += ",";
    s += extra_k + "=\"" + extra_v + "\"";
  }
  return s + "}";
}

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}
}  // namespace

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::ostringstream out;
  for (auto& [name, f] : families_) {
    out << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << f.type << "\n";
    for (auto& [l, c] : f.counters) out << name << LabelText(l) << " " << c->value() << "\n";
    for (auto& [l, g] : f.gauges) out << name << LabelText(l) << " " << Num(g->value()) << "\n";
    for (auto& [l, h] : f.histograms) {
      std::vector<uint64_t> b;
      double sum;
      uint64_t count;
      h->Snapshot(&b, &sum, &count);
      for (size_t i = 0; i < h->bounds().size(); ++i)
        out << name << "_bucket" << LabelText(l, "le", Num(h->bounds()[i])) << " " << b[i] << "\n";
      out << name << "_bucket" << LabelText(l, "le", "+Inf") << " " << count << "\n";
      out << name << "_sum" << LabelText(l) << " " << Num(sum) << "\n";
      out << name << "_count" << LabelText(l) << " " << count << "\n";
    }
  }
  return out.str();
}

}  // namespace outpost
