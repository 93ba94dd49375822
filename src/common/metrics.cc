#include "common/metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>

namespace ch {

namespace {

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integers (counts) as integers; anything else in the shortest form that reads back exactly.
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

// Backslash and newline; double quotes too in label values (not in help text).
std::string Escape(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string EscapeMetricLabelValue(std::string_view value) { return Escape(value, true); }

void MetricsWriter::Add(std::string_view name, MetricType type, std::string_view help,
                        const MetricLabels& labels, double value) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    it = index_.emplace(std::string(name), families_.size()).first;
    families_.push_back({std::string(name), std::string(help), type, {}});
  }
  std::string sample(name);
  if (!labels.empty()) {
    sample += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) sample += ',';
      sample += fmt::format("{}=\"{}\"", labels[i].first, EscapeMetricLabelValue(labels[i].second));
    }
    sample += '}';
  }
  sample += ' ';
  sample += FormatValue(value);
  families_[it->second].samples.push_back(std::move(sample));
}

std::string MetricsWriter::Render() const {
  std::string out;
  for (const Family& f : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, Escape(f.help, false), f.name,
                       f.type == MetricType::kCounter ? "counter" : "gauge");
    for (const std::string& s : f.samples) {
      out += s;
      out += '\n';
    }
  }
  return out;
}

void MetricsRegistry::Register(Collector collector) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::Render() const {
  std::lock_guard lock(mu_);
  MetricsWriter w;
  for (const Collector& c : collectors_) c(w);
  return w.Render();
}

}  // namespace ch
