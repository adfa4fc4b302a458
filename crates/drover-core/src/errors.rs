//! One line for an error and its sources, for logs, `/healthz`, the audit trail and
//! the binary's last word.
//!
//! drover's errors keep their sources (`thiserror` `#[source]`), so the whole chain
//! is there to print. Many errors, drover's older ones and kube's or git2's alike,
//! also write their source into their own message; walking the chain then repeats
//! it. [`chain`] writes each source only when the line does not already hold it.
//! Must not: escape (the caller decides where the line goes; see
//! [`crate::diag::escape_control`]).

use std::error::Error;

/// `error: source: source's source`, each part once.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !part.is_empty() && !line.contains(&part) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&part);
        }
        next = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("disk on fire")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("writing {path}")]
    struct Quiet {
        path: String,
        source: Root,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("writing {path}: {source}")]
    struct Loud {
        path: String,
        source: Root,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("saving the state")]
    struct Outer {
        source: Loud,
    }

    #[test]
    fn a_source_the_message_leaves_out_is_appended() {
        let e = Quiet {
            path: "a".into(),
            source: Root,
        };
        assert_eq!(chain(&e), "writing a: disk on fire");
    }

    #[test]
    fn a_source_the_message_already_holds_is_not_repeated() {
        let e = Outer {
            source: Loud {
                path: "a".into(),
                source: Root,
            },
        };
        assert_eq!(chain(&e), "saving the state: writing a: disk on fire");
    }

    #[test]
    fn an_error_without_sources_is_its_message() {
        assert_eq!(chain(&Root), "disk on fire");
    }
}
