#include "sqg/fft_wisdom.hpp"

#include <fftw3.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "sqg/fftw_traits.hpp"

namespace rtda::sqg {
namespace {
constexpr const char* kDoubleHeader = "# rtda fftw wisdom: double\n";
constexpr const char* kFloatHeader = "# rtda fftw wisdom: float\n";

std::string take(char* s) {
  std::unique_ptr<char, decltype(&std::free)> owned(s, &std::free);
  return s ? std::string(s) : std::string();
}
}  // namespace

std::string export_fft_wisdom() {
  std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
  return kDoubleHeader + take(fftw_export_wisdom_to_string()) + kFloatHeader +
         take(fftwf_export_wisdom_to_string());
}

void import_fft_wisdom(const std::string& text) {
  const auto d = text.find(kDoubleHeader);
  const auto f = text.find(kFloatHeader);
  if (d != 0 || f == std::string::npos) {
    throw std::runtime_error("FFTW wisdom: not an rtda wisdom file (missing section headers)");
  }
  const std::size_t dstart = std::char_traits<char>::length(kDoubleHeader);
  const std::string dbl = text.substr(dstart, f - dstart);
  const std::string flt = text.substr(f + std::char_traits<char>::length(kFloatHeader));
  std::lock_guard<std::mutex> lock(detail::fftw_planner_mutex());
  if ((!dbl.empty() && !fftw_import_wisdom_from_string(dbl.c_str())) ||
      (!flt.empty() && !fftwf_import_wisdom_from_string(flt.c_str()))) {
    throw std::runtime_error("FFTW wisdom: FFTW rejected the wisdom text");
  }
}

bool load_fft_wisdom_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    import_fft_wisdom(ss.str());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("model.fft_wisdom_file \"" + path.string() + "\": " + e.what());
  }
  return true;
}

void save_fft_wisdom_file(const std::filesystem::path& path) {
  const std::string text = export_fft_wisdom();
  const auto tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp);
    out << text;
    if (!out) throw std::runtime_error("cannot write FFTW wisdom to " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

// "auto": one wisdom file per machine in the user's cache directory ("" when there is none).
std::string resolve_fft_wisdom_path(const std::string& setting) {
  if (setting != "auto") return setting;
  std::filesystem::path dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    dir = std::filesystem::path(xdg) / "rtda";
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    dir = std::filesystem::path(home) / ".cache" / "rtda";
  } else {
    return "";
  }
  char host[256] = "host";
  gethostname(host, sizeof host - 1);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return "";
  return (dir / ("fftw-wisdom-" + std::string(host) + ".txt")).string();
}

}  // namespace rtda::sqg
