//! The wall clock: the one place drover reads the time of day for a decision
//! (whether a freeze window is open).
//!
//! Owns: reading it. Must not: decide anything with it; the instant goes to the
//! core's pure answers ([`crate::core::freeze`]).
//!
//! Debug builds (the binary the integration tests run) also take the instant from a
//! file named by `DROVER_TEST_CLOCK_FILE`, read afresh at every reading, so a test
//! moves time by rewriting one line. Release builds have no such variable: they read
//! the system clock, always.

use jiff::Timestamp;

use crate::settings::Env;

/// The variable a debug build reads its clock file from.
pub const TEST_CLOCK_ENV: &str = "DROVER_TEST_CLOCK_FILE";

/// Where the time of day comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// The instant written in this file (RFC 3339 with an offset, or RFC 9557).
    #[cfg(debug_assertions)]
    File(std::path::PathBuf),
}

impl Clock {
    /// The clock the environment asks for: the system clock, unless a debug build
    /// is given a clock file.
    pub fn from_env(env: Env<'_>) -> Clock {
        #[cfg(debug_assertions)]
        if let Some(path) = env(TEST_CLOCK_ENV).filter(|p| !p.is_empty()) {
            return Clock::File(path.into());
        }
        let _ = env;
        Clock::System
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            #[cfg(debug_assertions)]
            Clock::File(path) => match std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| t.trim().parse::<Timestamp>().map_err(|e| e.to_string()))
            {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(file = %path.display(), "the test clock cannot be read ({e}); using the system clock");
                    Timestamp::now()
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_variable_the_clock_is_the_system_s() {
        assert_eq!(Clock::from_env(&|_| None), Clock::System);
        let before = Timestamp::now();
        let now = Clock::System.now();
        assert!(now >= before);
    }

    #[cfg(debug_assertions)]
    #[test]
    fn a_debug_build_reads_the_instant_from_the_clock_file_at_every_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        std::fs::write(&path, "2026-12-04T16:00:00+01:00[Europe/Berlin]\n").unwrap();
        let env = |k: &str| (k == TEST_CLOCK_ENV).then(|| path.clone().into_os_string());
        let clock = Clock::from_env(&env);
        assert_eq!(clock, Clock::File(path.clone()));
        assert_eq!(clock.now().to_string(), "2026-12-04T15:00:00Z");
        std::fs::write(&path, "2026-12-07T06:00:00Z").unwrap();
        assert_eq!(clock.now().to_string(), "2026-12-07T06:00:00Z");
    }
}
