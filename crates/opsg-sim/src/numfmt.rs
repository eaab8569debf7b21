//! Number formatting exactly as the real exporters print it, so captures look like the real thing.
//!
//! - vLLM uses Python's `prometheus_client`, whose `floatToGoString` prints Python's `repr` of the
//!   float (`3.0`, `0.005`) but switches to Go-style exponents for large values (`1.7e+09`).
//! - node_exporter uses Go's `strconv.FormatFloat(v, 'g', -1, 64)` (`4096`, `1.6042172416e+10`).
//! - dcgm-exporter prints integers as integers and floats with `%f` (`8.969000`).

/// Shortest round-trip digits and decimal exponent of a finite positive `v`: `(digits, exp)` with
/// `v = d1.d2d3... * 10^exp`.
fn digits_exp(v: f64) -> (String, i32) {
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// Python `repr(float)`: shortest round-trip; exponent form when exp < -4 or exp >= 16.
fn python_repr(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let (digits, exp) = digits_exp(v.abs());
    if !(-4..16).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let e_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{e_sign}{:02}", exp.abs());
    }
    let text = format!("{}", v.abs());
    if text.contains('.') { format!("{sign}{text}") } else { format!("{sign}{text}.0") }
}

/// prometheus_client's `floatToGoString`.
pub fn py(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let s = python_repr(v);
    if v > 0.0
        && let Some(dot) = s.find('.')
        && dot > 6
        && !s.contains('e')
    {
        let int_part = &s[..dot];
        let frac = &s[dot + 1..];
        let mantissa = format!("{}.{}{}", &s[..1], &int_part[1..], frac);
        let mantissa = mantissa.trim_end_matches(['0', '.']);
        return format!("{mantissa}e+0{}", dot - 1);
    }
    s
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` as client_golang prints sample values.
pub fn go(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let (digits, exp) = digits_exp(v.abs());
    // Shortest formatting uses precision 6 for the %e decision (strconv/ftoa.go).
    if !(-4..6).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let e_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{e_sign}{:02}", exp.abs());
    }
    format!("{sign}{}", v.abs())
}

/// dcgm-exporter's value rendering: integers as integers, other values as `%f`.
pub fn dcgm(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.6}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_style_matches_prometheus_client() {
        assert_eq!(py(3.0), "3.0");
        assert_eq!(py(0.005), "0.005");
        assert_eq!(py(2560.0), "2560.0");
        assert_eq!(py(f64::INFINITY), "+Inf");
        assert_eq!(py(1718140558.53), "1.71814055853e+09");
        assert_eq!(py(123456.5), "123456.5");
        assert_eq!(py(0.0), "0.0");
        assert_eq!(py(1e-05), "1e-05");
        // prometheus_client's own quirk: a 2-digit exponent keeps the literal "e+0" prefix.
        assert_eq!(py(41_328_599_654.0), "4.1328599654e+010");
    }

    #[test]
    fn go_style_matches_strconv() {
        assert_eq!(go(4096.0), "4096");
        assert_eq!(go(16042172416.0), "1.6042172416e+10");
        assert_eq!(go(1e6), "1e+06");
        assert_eq!(go(123456.0), "123456");
        assert_eq!(go(0.25), "0.25");
        assert_eq!(go(0.0), "0");
    }

    #[test]
    fn dcgm_style() {
        assert_eq!(dcgm(25.0), "25");
        assert_eq!(dcgm(8.969), "8.969000");
    }
}
