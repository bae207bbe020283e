//! notigen: deterministic, realistic nova notification streams from a seed.
