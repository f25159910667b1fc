//! The build a result came from.

/// The commit this build was made from (set by the build script; "unknown" outside git).
pub const BUILD_COMMIT: &str = env!("SNAPSIM_COMMIT");
