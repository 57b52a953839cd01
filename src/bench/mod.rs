//! placeholder until the bench module lands
