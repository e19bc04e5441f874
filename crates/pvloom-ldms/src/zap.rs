//! (filled by the zap work)
