//! What a plain (unquoted) YAML scalar means, to the readers drover's users run.
//!
//! Owns: kubectl's reading of a plain scalar (sigs.k8s.io/yaml on go-yaml v2, which
//! resolves by YAML 1.1: `yes`, `on`, `0755` octal, `1_000`, timestamps...), and the
//! conservative question the emitter asks: could *any* common reader (YAML 1.1 by the
//! spec, go-yaml v2, YAML 1.2 core, serde_yaml) take this text for something other than
//! a string? Must not: read documents (see [`crate::yaml`]) or emit them (see
//! [`crate::emit`]).

/// A plain scalar as kubectl reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    /// An unsigned integer past `i64::MAX`.
    Uint(u64),
    Float(f64),
    /// A YAML 1.1 timestamp (`2001-12-14`, `2001-12-14T21:59:43Z`): go-yaml v2 turns
    /// it into a time value, which has no single JSON form.
    Timestamp,
    /// Anything else: the text itself.
    Str,
}

/// go-yaml v2's boolean words (YAML 1.1's list, as kubectl reads them).
const BOOLS_TRUE: [&str; 11] = [
    "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
];
const BOOLS_FALSE: [&str; 11] = [
    "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
];

/// How kubectl (go-yaml v2, YAML 1.1) resolves the plain scalar `s`.
pub fn resolve_kubectl(s: &str) -> Plain {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    if BOOLS_TRUE.contains(&s) {
        return Plain::Bool(true);
    }
    if BOOLS_FALSE.contains(&s) {
        return Plain::Bool(false);
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return Plain::Str;
    }
    if first.is_ascii_digit() && is_timestamp(s) {
        return Plain::Timestamp;
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    if first != b'.' {
        if let Some(i) = go_parse_int(&plain) {
            return i;
        }
        if is_go_yaml_float(&plain)
            && let Ok(f) = plain.parse::<f64>()
        {
            return Plain::Float(f);
        }
        // go-yaml v2 also takes `0b…` and `-0b…` after the general parse failed.
        if let Some(bits) = plain.strip_prefix("0b")
            && let Ok(i) = i64::from_str_radix(bits, 2)
        {
            return Plain::Int(i);
        }
        if let Some(bits) = plain.strip_prefix("-0b")
            && let Ok(i) = i64::from_str_radix(bits, 2)
        {
            return Plain::Int(-i);
        }
        // Go's ParseFloat also reads `+Inf`, `-infinity`, `nan`... after a sign.
        let unsigned = plain.trim_start_matches(['+', '-']);
        if plain.len() != unsigned.len()
            && matches!(
                unsigned.to_ascii_lowercase().as_str(),
                "inf" | "infinity" | "nan"
            )
        {
            return Plain::Float(if plain.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        return Plain::Str;
    }
    // A leading dot: go-yaml v2 tries a float (`.5`).
    match plain.parse::<f64>() {
        Ok(f) if is_go_yaml_float(&plain) => Plain::Float(f),
        _ => Plain::Str,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: an optional sign, then `0x`,
/// `0o`, `0b` or a leading `0` (octal), or decimal digits.
fn go_parse_int(s: &str) -> Option<Plain> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u128 + 1 {
            return Some(Plain::Int((magnitude as i128).wrapping_neg() as i64));
        }
        return None;
    }
    if let Ok(i) = i64::try_from(magnitude) {
        return Some(Plain::Int(i));
    }
    u64::try_from(magnitude).ok().map(Plain::Uint)
}

/// go-yaml v2's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_go_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Whether `s` starts as a YAML 1.1 timestamp: four digits, `-`, a month and a day
/// (go-yaml v2 looks no further than that before trying its time layouts).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    let part = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() && *i - start < 2 {
            *i += 1;
        }
        *i > start
    };
    if !part(&mut i) || b.get(i) != Some(&b'-') {
        return false;
    }
    i += 1;
    if !part(&mut i) {
        return false;
    }
    i == b.len() || matches!(b[i], b'T' | b't' | b' ' | b'\t')
}

/// Whether some common YAML reader could take the plain scalar `s` for anything but
/// the string `s`. Deliberately wider than any one reader: quoting a string that did
/// not need it costs two characters, leaving one unquoted that did costs a broken
/// apply.
pub fn needs_quotes(s: &str) -> bool {
    if resolve_kubectl(s) != Plain::Str {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    // The boolean and null words in any case, and YAML 1.1's value and merge keys.
    if matches!(
        lower.as_str(),
        "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null" | "~" | "=" | "<<"
    ) {
        return true;
    }
    looks_numeric(&lower) || is_timestamp(s)
}

/// A number by any reader's rules, in lower case: YAML 1.1 ints and floats with
/// underscores, sexagesimal (`12:30`, `1:20:30.5`), `0b`/`0o`/`0x`, the `.inf`/`.nan`
/// words, YAML 1.2 and Rust's own float syntax (`1e3`, `inf`, `infinity`).
fn looks_numeric(lower: &str) -> bool {
    let body = lower.trim_start_matches(['+', '-']);
    // Two signs too: yaml-rust2 reads `++0` as the integer 0 (found by the
    // emitter's property test); quoting every two-sign number is wider than that,
    // as this function means to be.
    if lower.len() - body.len() > 2 || body.is_empty() {
        return false;
    }
    if matches!(
        body,
        ".inf" | ".nan" | "inf" | "nan" | "infinity" | ".infinity"
    ) {
        return true;
    }
    let plain: String = body.chars().filter(|c| *c != '_').collect();
    if plain.is_empty() {
        return false;
    }
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(d) = plain.strip_prefix(prefix) {
            return !d.is_empty() && d.chars().all(|c| c.is_digit(radix));
        }
    }
    if plain.contains(':') {
        // Sexagesimal: digits groups separated by colons, the last may have a fraction.
        let (whole, frac) = match plain.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (plain.as_str(), None),
        };
        return whole
            .split(':')
            .all(|g| !g.is_empty() && g.bytes().all(|c| c.is_ascii_digit()))
            && frac.is_none_or(|f| f.bytes().all(|c| c.is_ascii_digit()));
    }
    // Digits with at most one dot and an optional exponent (`1.`, `.5`, `1e3`,
    // `1.5e-3`). An underscore counts as a digit: YAML 1.1 reads `._` and `1_.` as
    // floats (found by the emitter's property test).
    let (mantissa, exponent) = match body.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let mut dots = 0;
    let mut digits = 0;
    for c in mantissa.bytes() {
        match c {
            b'.' => dots += 1,
            c if c.is_ascii_digit() || c == b'_' => digits += 1,
            _ => return false,
        }
    }
    if digits == 0 || dots > 1 {
        return false;
    }
    match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_reads_the_yaml_1_1_words_as_booleans_and_nulls() {
        for s in ["yes", "Yes", "YES", "y", "Y", "on", "On", "ON", "true"] {
            assert_eq!(resolve_kubectl(s), Plain::Bool(true), "{s}");
        }
        for s in ["no", "No", "NO", "n", "N", "off", "Off", "OFF", "false"] {
            assert_eq!(resolve_kubectl(s), Plain::Bool(false), "{s}");
        }
        for s in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(resolve_kubectl(s), Plain::Null, "{s}");
        }
        // Mixed case is a string to go-yaml v2 (and quoted by the emitter anyway).
        assert_eq!(resolve_kubectl("yEs"), Plain::Str);
        assert!(needs_quotes("yEs"));
    }

    #[test]
    fn kubectl_reads_yaml_1_1_numbers() {
        assert_eq!(resolve_kubectl("0755"), Plain::Int(0o755));
        assert_eq!(resolve_kubectl("1_000"), Plain::Int(1000));
        assert_eq!(resolve_kubectl("0x1F"), Plain::Int(31));
        assert_eq!(resolve_kubectl("0o17"), Plain::Int(15));
        assert_eq!(resolve_kubectl("0b101"), Plain::Int(5));
        assert_eq!(resolve_kubectl("-0b101"), Plain::Int(-5));
        assert_eq!(resolve_kubectl("+12"), Plain::Int(12));
        assert_eq!(
            resolve_kubectl("-9223372036854775808"),
            Plain::Int(i64::MIN)
        );
        assert_eq!(
            resolve_kubectl("18446744073709551615"),
            Plain::Uint(u64::MAX)
        );
        assert_eq!(resolve_kubectl("08"), Plain::Float(8.0));
        assert_eq!(resolve_kubectl("1e3"), Plain::Float(1000.0));
        assert_eq!(resolve_kubectl(".5"), Plain::Float(0.5));
        assert_eq!(resolve_kubectl("1."), Plain::Float(1.0));
        assert_eq!(resolve_kubectl("-.inf"), Plain::Float(f64::NEG_INFINITY));
        assert_eq!(resolve_kubectl("+Inf"), Plain::Float(f64::INFINITY));
        assert_eq!(resolve_kubectl("2001-12-14"), Plain::Timestamp);
        assert_eq!(resolve_kubectl("2001-12-14T21:59:43Z"), Plain::Timestamp);
        for s in [
            "1.2.3", "12:30", "v1", "0x", "1e", "-", ".", "2001-12", "inf",
        ] {
            assert_eq!(resolve_kubectl(s), Plain::Str, "{s}");
        }
    }

    #[test]
    fn the_emitter_quotes_what_any_reader_would_not_read_as_a_string() {
        for s in [
            "yes",
            "yEs",
            "oFF",
            "~",
            "NuLL",
            "0755",
            "1_000",
            ".inf",
            "-.Inf",
            "0x1F",
            "1e3",
            "12:30",
            "1:20:30.5",
            "0b1010",
            "0o17",
            "+12",
            "++0",
            "+-1",
            "._",
            "1_.",
            "1.0",
            "=",
            "<<",
            "2001-12-14",
            "inf",
            "-infinity",
            "1.",
            ".5",
            "1E+3",
        ] {
            assert!(needs_quotes(s), "{s}");
        }
        for s in [
            "yess",
            "1.2.3",
            "v1.8.2",
            "-v",
            "--path.rootfs=/host",
            "a:b",
            "12:3a",
            "0x",
            "e3",
            "1e",
            "1-2",
            "node-exporter",
            "50m",
            "64Mi",
            "10%",
            "-",
        ] {
            assert!(!needs_quotes(s), "{s}");
        }
    }
}
