// FFTW wisdom: the record of which algorithms FFTW_MEASURE picked. Plans measured in one
// process can differ from another's (timings vary), and a different algorithm rounds
// differently. Processes that must agree bit for bit (MPI ranks, a restart and the run it
// continues) share wisdom: import it before any model is made, and every plan made with
// FftPlanning::kMeasure for a size already in the wisdom reuses the recorded algorithm.
#pragma once

#include <filesystem>
#include <string>

namespace rtda::sqg {

// Wisdom of both precisions as one text blob.
std::string export_fft_wisdom();
// Throws std::runtime_error when the text is not FFTW wisdom.
void import_fft_wisdom(const std::string& text);

// Imports `path` if it exists (returns true), else returns false.
bool load_fft_wisdom_file(const std::filesystem::path& path);
// Writes the current wisdom to `path` atomically (temporary file, then rename).
void save_fft_wisdom_file(const std::filesystem::path& path);

// The wisdom file a setting names: a path as given, "" for none, and for "auto" a file per
// machine under $XDG_CACHE_HOME/rtda or ~/.cache/rtda ("" when neither exists).
std::string resolve_fft_wisdom_path(const std::string& setting);

}  // namespace rtda::sqg
