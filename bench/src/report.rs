//! Latency summaries and the one-line JSON output (written by hand: the
//! fields are few and flat, not worth a serialization crate).

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, 1 us .. 10 min, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
        // The bounds above are constants that hdrhistogram accepts.
        unreachable!("valid histogram bounds")
    })
}

/// Percentiles shown in the JSON `curve` (for the plots) — "nines" from 0 to 99.999.
pub const CURVE_PERCENTILES: &[f64] =
    &[0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0];

#[derive(Debug, Clone, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    pub curve: Vec<(f64, u64)>,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
            curve: CURVE_PERCENTILES.iter().map(|&p| (p, h.value_at_percentile(p))).collect(),
        }
    }

    pub fn to_json(&self) -> String {
        let curve: Vec<String> = self.curve.iter().map(|(p, v)| format!("[{p},{v}]")).collect();
        format!(
            "{{\"count\":{},\"mean\":{:.1},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"p9999\":{},\"max\":{},\"curve\":[{}]}}",
            self.count,
            self.mean,
            self.p50,
            self.p90,
            self.p99,
            self.p999,
            self.p9999,
            self.max,
            curve.join(",")
        )
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number, or null for NaN/infinite/absent.
pub fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.3}"),
        _ => "null".into(),
    }
}

/// Builds a flat JSON object field by field.
#[derive(Default)]
pub struct JsonObject {
    fields: Vec<String>,
}

impl JsonObject {
    pub fn raw(mut self, key: &str, value: String) -> Self {
        self.fields.push(format!("{}:{}", json_str(key), value));
        self
    }
    pub fn str(self, key: &str, value: &str) -> Self {
        self.raw(key, json_str(value))
    }
    pub fn int(self, key: &str, value: impl Into<i128>) -> Self {
        self.raw(key, value.into().to_string())
    }
    pub fn num(self, key: &str, value: Option<f64>) -> Self {
        self.raw(key, json_num(value))
    }
    pub fn bool(self, key: &str, value: bool) -> Self {
        self.raw(key, value.to_string())
    }
    pub fn build(self) -> String {
        format!("{{{}}}", self.fields.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_strings() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn summary_of_known_values() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((499..=501).contains(&s.p50), "{}", s.p50);
        assert!((989..=991).contains(&s.p99), "{}", s.p99);
        assert_eq!(s.max, 1000);
        assert!(s.to_json().starts_with("{\"count\":1000"));
    }

    #[test]
    fn object_builder() {
        let j = JsonObject::default().str("a", "x").int("n", 3u64).num("f", None).bool("b", true).build();
        assert_eq!(j, "{\"a\":\"x\",\"n\":3,\"f\":null,\"b\":true}");
    }
}
