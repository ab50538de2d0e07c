// Settings of the surrogate's online adaptation (docs/surrogate.md, "Online adaptation").
// Header-only so the configuration can hold them without linking the surrogate.
#pragma once

namespace rtda::surrogate {

struct OnlineSettings {
  bool enabled = false;            // surrogate.online
  double lr = 1e-3;                // peak AdamW learning rate of the online steps
  int steps = 4;                   // optimiser steps after each analysis
  int batch = 8;                   // pairs per step, drawn from the replay buffer
  int buffer = 64;                 // replay buffer capacity (newest pairs kept)
  int warmup_steps = 20;           // linear warm-up of the online learning rate
  int window = 4;                  // cycles of innovation statistics per accept/rollback decision
  double tolerance = 0.02;         // roll back when the adapted weights' innovation MSE exceeds
                                   // the reference's by more than this fraction over a window
  double min_lr_scale = 1.0 / 16;  // the guard: each rollback halves the learning rate;
                                   // below this fraction adaptation stops
};

}  // namespace rtda::surrogate
