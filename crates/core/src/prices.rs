//! What a migration costs: a price table (a documented default, overridable from a JSON file) and
//! the cost of a set of requests and instance hours. `plan` prices its predictions with it and
//! `report` prices what was recorded, so both tables are computed the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::TallySnapshot;

/// Bytes in a GB as AWS bills storage (GB-month is 2^30 bytes for a month).
pub const BILLED_GB: f64 = (1u64 << 30) as f64;

/// One EC2 instance type: its vCPUs and its spot price.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstancePrice {
    pub vcpus: u32,
    /// US dollars per instance hour.
    pub spot_per_hour: f64,
}

/// Prices in US dollars. See docs/report.md for the defaults and the file format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// EC2 spot prices by instance type.
    pub instances: BTreeMap<String, InstancePrice>,
    /// S3 PUT, COPY, POST and LIST requests, per 1,000.
    pub s3_put_per_1000: f64,
    /// S3 GET (and other) requests, per 1,000.
    pub s3_get_per_1000: f64,
    /// S3 DeleteObjects requests, per 1,000 (DELETE is free on S3).
    pub s3_delete_per_1000: f64,
    /// SQS requests (a batch of up to 10 is one request), per million.
    pub sqs_per_million: f64,
    /// S3 Standard storage, per GB-month.
    pub storage_per_gb_month: f64,
}

impl Default for PriceTable {
    /// Approximate us-east-1 prices (spot prices move daily: give yours with `--prices`).
    fn default() -> Self {
        let instances = [
            ("c5.large", 2, 0.033),
            ("c6a.large", 2, 0.031),
            ("c6i.large", 2, 0.034),
            ("c6i.xlarge", 4, 0.068),
            ("m6i.large", 2, 0.040),
        ]
        .into_iter()
        .map(|(name, vcpus, spot_per_hour)| {
            (
                name.to_owned(),
                InstancePrice {
                    vcpus,
                    spot_per_hour,
                },
            )
        })
        .collect();
        PriceTable {
            instances,
            s3_put_per_1000: 0.005,
            s3_get_per_1000: 0.0004,
            s3_delete_per_1000: 0.0,
            sqs_per_million: 0.40,
            storage_per_gb_month: 0.023,
        }
    }
}

/// A price file: every field optional; instance types are added to (or replace) the default ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceOverrides {
    #[serde(default)]
    instances: BTreeMap<String, InstancePrice>,
    s3_put_per_1000: Option<f64>,
    s3_get_per_1000: Option<f64>,
    s3_delete_per_1000: Option<f64>,
    sqs_per_million: Option<f64>,
    storage_per_gb_month: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("price file is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("price {name} is {value}; prices are finite and not negative")]
    Negative { name: String, value: f64 },
    #[error(
        "instance type {name:?} is not in the price table (known: {known}); add it with --prices"
    )]
    UnknownInstance { name: String, known: String },
}

/// What a migration cost, or is predicted to cost, by service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cost {
    pub instance_hours: f64,
    pub instance_dollars: f64,
    pub s3_get_dollars: f64,
    pub s3_put_dollars: f64,
    pub s3_delete_dollars: f64,
    pub sqs_dollars: f64,
    pub total_dollars: f64,
}

impl Cost {
    pub fn s3_dollars(&self) -> f64 {
        self.s3_get_dollars + self.s3_put_dollars + self.s3_delete_dollars
    }
}

impl PriceTable {
    /// The default table with a JSON price file's fields laid over it.
    pub fn from_json_over_defaults(text: &str) -> Result<PriceTable, PriceError> {
        let o: PriceOverrides = serde_json::from_str(text)?;
        let mut t = PriceTable::default();
        t.instances.extend(o.instances);
        let set = |field: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut t.s3_put_per_1000, o.s3_put_per_1000);
        set(&mut t.s3_get_per_1000, o.s3_get_per_1000);
        set(&mut t.s3_delete_per_1000, o.s3_delete_per_1000);
        set(&mut t.sqs_per_million, o.sqs_per_million);
        set(&mut t.storage_per_gb_month, o.storage_per_gb_month);
        t.validate()?;
        Ok(t)
    }

    fn validate(&self) -> Result<(), PriceError> {
        let scalars = [
            ("s3_put_per_1000", self.s3_put_per_1000),
            ("s3_get_per_1000", self.s3_get_per_1000),
            ("s3_delete_per_1000", self.s3_delete_per_1000),
            ("sqs_per_million", self.sqs_per_million),
            ("storage_per_gb_month", self.storage_per_gb_month),
        ];
        let instances = self
            .instances
            .iter()
            .map(|(n, p)| (n.as_str(), p.spot_per_hour));
        for (name, value) in scalars.into_iter().chain(instances) {
            if !value.is_finite() || value < 0.0 {
                return Err(PriceError::Negative {
                    name: name.to_owned(),
                    value,
                });
            }
        }
        Ok(())
    }

    pub fn instance(&self, name: &str) -> Result<InstancePrice, PriceError> {
        self.instances
            .get(name)
            .copied()
            .ok_or_else(|| PriceError::UnknownInstance {
                name: name.to_owned(),
                known: self
                    .instances
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The cost of `instance_hours` of `instance` and of these requests (DB statements are not
    /// priced: the database is paid for whether the migration runs or not).
    pub fn cost(&self, instance: InstancePrice, instance_hours: f64, r: &TallySnapshot) -> Cost {
        let mut c = Cost {
            instance_hours,
            instance_dollars: instance_hours * instance.spot_per_hour,
            s3_get_dollars: r.s3_get as f64 / 1000.0 * self.s3_get_per_1000,
            s3_put_dollars: r.s3_put as f64 / 1000.0 * self.s3_put_per_1000,
            s3_delete_dollars: r.s3_delete_requests as f64 / 1000.0 * self.s3_delete_per_1000,
            sqs_dollars: r.sqs_requests as f64 / 1e6 * self.sqs_per_million,
            total_dollars: 0.0,
        };
        c.total_dollars = c.instance_dollars + c.s3_dollars() + c.sqs_dollars;
        c
    }

    /// Dollars a month to store `bytes` in S3 Standard.
    pub fn storage_per_month(&self, bytes: u64) -> f64 {
        bytes as f64 / BILLED_GB * self.storage_per_gb_month
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_prices_requests_as_documented() {
        let t = PriceTable::default();
        let r = TallySnapshot {
            s3_get: 2_000_000,
            s3_put: 1_000_000,
            s3_delete_requests: 5_000,
            s3_deleted_objects: 5_000_000,
            sqs_requests: 3_000_000,
            db_statements: 123,
        };
        let c = t.cost(t.instance("c6i.large").unwrap(), 10.0, &r);
        assert!((c.s3_get_dollars - 0.8).abs() < 1e-9);
        assert!((c.s3_put_dollars - 5.0).abs() < 1e-9);
        assert_eq!(c.s3_delete_dollars, 0.0);
        assert!((c.sqs_dollars - 1.2).abs() < 1e-9);
        assert!((c.instance_dollars - 0.34).abs() < 1e-9);
        assert!((c.total_dollars - (0.8 + 5.0 + 1.2 + 0.34)).abs() < 1e-9);
        assert!((t.storage_per_month(1 << 30) - 0.023).abs() < 1e-12);
    }

    #[test]
    fn a_price_file_overrides_only_what_it_names() {
        let t = PriceTable::from_json_over_defaults(
            r#"{"instances": {"c7i.large": {"vcpus": 2, "spot_per_hour": 0.05},
                              "c6i.large": {"vcpus": 2, "spot_per_hour": 0.02}},
                "sqs_per_million": 0.5}"#,
        )
        .unwrap();
        assert_eq!(t.instance("c7i.large").unwrap().spot_per_hour, 0.05);
        assert_eq!(t.instance("c6i.large").unwrap().spot_per_hour, 0.02);
        assert_eq!(t.instance("c5.large").unwrap().vcpus, 2, "defaults stay");
        assert_eq!(t.sqs_per_million, 0.5);
        assert_eq!(t.s3_put_per_1000, 0.005);
        let unknown = PriceTable::from_json_over_defaults(r#"{"s3_put": 1}"#).unwrap_err();
        assert!(unknown.to_string().contains("s3_put"), "{unknown}");
        let negative =
            PriceTable::from_json_over_defaults(r#"{"sqs_per_million": -1}"#).unwrap_err();
        assert!(
            negative.to_string().contains("sqs_per_million"),
            "{negative}"
        );
        let missing = t.instance("z9.huge").unwrap_err().to_string();
        assert!(missing.contains("c6i.large"), "{missing}");
    }
}
