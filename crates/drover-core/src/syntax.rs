//! Syntax checks for the Kubernetes and OCI strings a fleet contains: DNS names,
//! label keys and values, resource quantities, image references, durations.
//!
//! Each check returns `Err(reason)` with a short lowercase reason for diagnostics.

use std::time::Duration;

/// A percentage as the API server's validation takes it (`^[0-9]+%$`): digits
/// and a `%`, no sign or space. `None` for anything else, or one too large.
pub fn percent(s: &str) -> Option<u32> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// RFC 1123 label: lowercase alphanumerics and `-`, at most 63, alphanumeric ends.
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!("must be at most 63 characters (is {})", s.len()));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !s.chars().all(ok_char) {
        return Err("must consist of lowercase letters, digits and '-' (a DNS-1123 label)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a letter or digit (a DNS-1123 label)".into());
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("must be at most 253 characters (is {})", s.len()));
    }
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    for part in s.split('.') {
        dns_label(part).map_err(|_| {
            "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')".to_string()
        })?;
    }
    Ok(())
}

fn qualified_name_part(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err("name part must be 1 to 63 characters".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !s.chars().all(ok) || !ends(s.chars().next()) || !ends(s.chars().last()) {
        return Err(
            "name part must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
                .into(),
        );
    }
    Ok(())
}

/// A label or annotation key: `[prefix/]name`.
pub fn label_key(s: &str) -> Result<(), String> {
    match s.split_once('/') {
        Some((prefix, name)) => {
            dns_subdomain(prefix).map_err(|e| format!("prefix {e}"))?;
            qualified_name_part(name)
        }
        None => qualified_name_part(s),
    }
}

/// A label value: empty, or up to 63 of alphanumerics `-_.` with alphanumeric ends.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    qualified_name_part(s).map_err(|e| e.replace("name part", "label value"))
}

/// A Kubernetes resource quantity, e.g. `100m`, `64Mi`, `1.5`, `1e3`.
///
/// Rejects what the API server would reject and magnitudes past 2^63, so integer
/// overflow cannot sneak into a manifest.
pub fn quantity(s: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "`{s}` is not a valid resource quantity (like 100m, 64Mi, 2)"
        ))
    };
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return bad();
    }
    let exp10: i32 = match suffix {
        "" => 0,
        "n" => -9,
        "u" => -6,
        "m" => -3,
        "k" => 3,
        "M" => 6,
        "G" => 9,
        "T" => 12,
        "P" => 15,
        "E" => 18,
        "Ki" => 3,
        "Mi" => 6,
        "Gi" => 9,
        "Ti" => 12,
        "Pi" => 15,
        "Ei" => 18,
        _ => {
            let Some(e) = suffix.strip_prefix(['e', 'E']) else {
                return bad();
            };
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 3
            {
                return bad();
            }
            e.parse::<i32>()
                .map_err(|_| format!("`{s}` is not a valid resource quantity"))?
        }
    };
    if s.starts_with('-') {
        return Err(format!("`{s}` must not be negative"));
    }
    let int_digits = num
        .split('.')
        .next()
        .unwrap_or("")
        .trim_start_matches('0')
        .len() as i32;
    // Binary suffixes are a little larger than their decimal twins; 2^63 ≈ 9.2e18.
    if int_digits + exp10 > 19 {
        return Err(format!("`{s}` is too large (more than 2^63)"));
    }
    Ok(())
}

/// A container image reference: `[registry[:port]/]path[:tag][@algo:hex]`.
pub fn image(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{s}` is not a valid image reference: {why}"));
    if s.is_empty() {
        return bad("empty");
    }
    if s.len() > 4096 {
        return bad("longer than 4096 characters");
    }
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return bad("digest must be algorithm:hex");
        };
        let algo_ok = !algo.is_empty()
            && algo.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && algo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+._-".contains(c));
        if !algo_ok {
            return bad("digest algorithm is malformed");
        }
        let hex_ok = |n: usize| {
            hex.len() == n
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        };
        match algo {
            "sha256" if !hex_ok(64) => return bad("a sha256 digest has 64 lowercase hex digits"),
            "sha512" if !hex_ok(128) => return bad("a sha512 digest has 128 lowercase hex digits"),
            _ if hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                return bad("digest must have at least 32 hex digits");
            }
            _ => {}
        }
    }
    // The tag follows the last ':' after the last '/'.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return bad("tag must be 1-128 of letters, digits, '_', '.', '-'");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        let is_registry = first.contains('.') || first.contains(':') || first == "localhost";
        if is_registry {
            let (host, port) = match first.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !host_ok {
                return bad("registry host is malformed");
            }
            if let Some(p) = port
                && (p.is_empty() || p.len() > 5 || !p.chars().all(|c| c.is_ascii_digit()))
            {
                return bad("registry port must be a number");
            }
            parts.remove(0);
        }
    }
    for comp in &parts {
        let ok = !comp.is_empty()
            && comp
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && comp
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && comp
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            return bad("repository path components are lowercase letters, digits and separators");
        }
    }
    if name.len() > 255 {
        return bad("repository name longer than 255 characters");
    }
    Ok(())
}

/// A Go-style duration: one or more `<integer><unit>` with units ms, s, m, h.
pub fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration (like 30s, 2m, 1h30m)");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if n_end == 0 || n_end > 9 {
            return Err(bad());
        }
        let n: u64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return Err(bad());
        };
        rest = &rest[len..];
        total += unit * u32::try_from(n).map_err(|_| bad())?;
    }
    Ok(total)
}

/// Formats a duration the way durations are written in a fleet: `1h2m3s`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return if d.subsec_millis() > 0 {
            format!("{}ms", d.subsec_millis())
        } else {
            "0s".into()
        };
    }
    let mut out = String::new();
    let h = secs / 3600;
    secs %= 3600;
    let m = secs / 60;
    secs %= 60;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// A container port name (IANA service name): ≤ 15 of `a-z0-9-`, with a letter.
pub fn port_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid port name (at most 15 of a-z, 0-9 and '-', with a letter)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_digits_and_a_percent_sign_only() {
        assert_eq!(percent("10%"), Some(10));
        assert_eq!(percent("0%"), Some(0));
        assert_eq!(percent("100%"), Some(100));
        for bad in [
            "+10%", "-10%", " 10%", "10 %", "%", "10", "1e2%", "10%%", "９%",
        ] {
            assert_eq!(percent(bad), None, "{bad:?}");
        }
        assert_eq!(percent("99999999999%"), None);
    }

    #[test]
    fn quantities() {
        for ok in [
            "100m", "64Mi", "1", "1.5", "2Gi", "1e3", "0.5", "500u", "1E2",
        ] {
            assert!(quantity(ok).is_ok(), "{ok}");
        }
        for bad in [
            "50mm",
            "",
            "m",
            "1.2.3",
            "-1",
            "1Q",
            "99999999999999999999Ei",
            "1e9999",
            "1 Gi",
        ] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images() {
        for ok in [
            "nginx",
            "nginx:1.27",
            "quay.io/prometheus/node-exporter:v1.8.2",
            "localhost:5000/a/b:c",
            "registry.example.com:443/team/agent@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(image(ok).is_ok(), "{ok}: {:?}", image(ok));
        }
        for bad in [
            "nginx:::latest",
            "Nginx",
            "nginx@sha256:xyz",
            "nginx@sha256:0123",
            "a b",
            "nginx:",
            "-a/b",
        ] {
            assert!(image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "2 minutes", "two minutes", "5", "1d", "-1s"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn names_and_labels() {
        assert!(dns_label("node-exporter").is_ok());
        assert!(dns_label("Node_Agent").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(label_key("node.kubernetes.io/instance-type").is_ok());
        assert!(label_key("bad key").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("a\u{1b}[31m").is_err());
        assert!(port_name("metrics").is_ok());
        assert!(port_name("9100").is_err());
    }
}
