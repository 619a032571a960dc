// Rewriting the path values of a manifest's text (model bundles: image/ and ota/).
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <string>
#include <vector>

#include "outpost/config/manifest.h"

namespace outpost::config {
namespace {

// The end (exclusive) of the scalar token starting at `pos`: a quoted scalar up to its closing
// quote, a plain one up to a comment or the end of the line (trailing blanks excluded).
Expected<size_t> ScalarEnd(const std::string& t, size_t pos, const std::string& what) {
  if (pos >= t.size()) return InvalidArgument(what + ": value not found");
  char q = t[pos];
  if (q == '"' || q == '\'') {
    for (size_t i = pos + 1; i < t.size(); ++i) {
      if (t[i] == '\n') break;
      if (q == '"' && t[i] == '\\') {
        ++i;
        continue;
      }
      if (t[i] == q) {
        if (q == '\'' && i + 1 < t.size() && t[i + 1] == '\'') {
          ++i;
          continue;
        }
        return i + 1;
      }
    }
    return InvalidArgument(what +
                           ": a value spanning lines cannot be rewritten; put it on one line");
  }
  size_t end = pos;
  while (end < t.size() && t[end] != '\n' && !(t[end] == '#' && end > pos && t[end - 1] == ' '))
    ++end;
  while (end > pos && (t[end - 1] == ' ' || t[end - 1] == '\t' || t[end - 1] == '\r')) --end;
  if (end < t.size() && t[end] == '\n') {
    // A plain scalar continued on the next (more indented) line would be cut here.
    size_t next = end + 1;
    size_t ind = 0;
    while (next + ind < t.size() && t[next + ind] == ' ') ++ind;
    size_t line_start = t.rfind('\n', pos);
    size_t own_ind = 0;
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    while (line_start + own_ind < t.size() && t[line_start + own_ind] == ' ') ++own_ind;
    if (ind > own_ind && next + ind < t.size() && t[next + ind] != '\n' && t[next + ind] != '#')
      return InvalidArgument(what +
                             ": a value spanning lines cannot be rewritten; put it on one line");
  }
  return end;
}

std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

Expected<std::string> RewriteManifestPaths(const std::string& text, const std::string& source,
                                           const std::string& storage_uri,
                                           const std::string& golden_input,
                                           const std::string& golden_output) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(source + ": YAML syntax error: " + e.what());
  }
  struct Edit {
    size_t begin, end;
    std::string value;
  };
  std::vector<Edit> edits;
  auto add = [&](const YAML::Node& n, const std::string& key, const std::string& value) -> Status {
    if (!n || !n.IsScalar()) return InvalidArgument(source + ": " + key + ": not found");
    size_t pos = static_cast<size_t>(n.Mark().pos);
    OP_ASSIGN_OR_RETURN(size_t end, ScalarEnd(text, pos, source + ": " + key));
    edits.push_back({pos, end, Quoted(value)});
    return Status::Ok();
  };
  const YAML::Node& c = root;
  OP_RETURN_IF_ERROR(add(c["spec"]["predictor"]["model"]["storageUri"],
                         "spec.predictor.model.storageUri", storage_uri));
  const YAML::Node ann = c["metadata"]["annotations"];
  OP_RETURN_IF_ERROR(add(ann["outpost.io/golden-input"], "outpost.io/golden-input", golden_input));
  OP_RETURN_IF_ERROR(
      add(ann["outpost.io/golden-output"], "outpost.io/golden-output", golden_output));
  std::sort(edits.begin(), edits.end(),
            [](const Edit& a, const Edit& b) { return a.begin > b.begin; });
  std::string out = text;
  for (const auto& e : edits) out.replace(e.begin, e.end - e.begin, e.value);
  return out;
}

}  // namespace outpost::config
