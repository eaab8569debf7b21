//! Sample values in JSON: finite numbers as numbers, and `NaN`/`+Inf`/`-Inf` as those strings.
//!
//! JSON has no NaN or infinity, and Prometheus values use all three (`le="+Inf"`, NaN quantiles of
//! an empty summary), so a value is serialized as a number when finite and as the exposition
//! format's own spelling otherwise.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An `f64` that survives a JSON round trip, non-finite values included.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Float(pub f64);

impl Serialize for Float {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("+Inf")
        } else {
            s.serialize_str("-Inf")
        }
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Float, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<'a> {
            Number(f64),
            #[serde(borrow)]
            Text(std::borrow::Cow<'a, str>),
        }
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(Float(v)),
            Repr::Text(t) => match t.as_ref() {
                "NaN" => Ok(Float(f64::NAN)),
                "+Inf" => Ok(Float(f64::INFINITY)),
                "-Inf" => Ok(Float(f64::NEG_INFINITY)),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, `NaN`, `+Inf` or `-Inf`, found `{other}`"
                ))),
            },
        }
    }
}

impl From<f64> for Float {
    fn from(v: f64) -> Float {
        Float(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_round_trip() {
        for v in [0.0, -1.5, 1e300, f64::INFINITY, f64::NEG_INFINITY] {
            let json = serde_json::to_string(&Float(v)).unwrap();
            assert_eq!(serde_json::from_str::<Float>(&json).unwrap().0, v);
        }
        let nan = serde_json::to_string(&Float(f64::NAN)).unwrap();
        assert_eq!(nan, "\"NaN\"");
        assert!(serde_json::from_str::<Float>(&nan).unwrap().0.is_nan());
        assert!(serde_json::from_str::<Float>("\"lots\"").is_err());
    }
}
