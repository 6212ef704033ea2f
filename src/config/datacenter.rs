//! The HA options of datacenter.cfg (spec sections 1.7 and 2.5): the
//! value checks shared by both forms, and the PVE property-string form
//! (`ha: shutdown_policy=migrate`, `max_workers: 4`). The simulator's JSON
//! form is in [`super::datacenter_json`].
//!
//! Hardware fencing is refused as "not supported yet".

use std::collections::BTreeMap;

use super::error::{ConfigError, ConfigErrorKind};
use super::values::parse_bool;
use crate::domain::{CrsMode, CrsOptions, DatacenterOptions, RebalanceMethod, ShutdownPolicy};

/// Keys of a PVE datacenter.cfg that have nothing to do with HA; they are
/// accepted and ignored so a real datacenter.cfg can be read as it is.
pub const IGNORED_PVE_KEYS: [&str; 19] = [
    "bwlimit",
    "consent-text",
    "console",
    "description",
    "email_from",
    "http_proxy",
    "keyboard",
    "language",
    "mac_prefix",
    "migration",
    "migration_unsecure",
    "next-id",
    "notify",
    "registered-tags",
    "replication",
    "tag-style",
    "u2f",
    "user-tag-access",
    "webauthn",
];

/// `shutdown_policy` (field named `field` in errors).
pub fn parse_shutdown_policy(field: &str, text: &str) -> Result<ShutdownPolicy, ConfigErrorKind> {
    text.parse().map_err(|_| {
        ConfigErrorKind::invalid(
            field,
            format!(
                "invalid value '{text}': expected one of conditional, freeze, failover, migrate"
            ),
        )
    })
}

/// Largest accepted `max_workers`: each worker is a thread that runs an
/// agent operation, so the bound keeps a typo from asking for millions.
pub const MAX_WORKERS_LIMIT: u32 = 1024;

/// `max_workers`: an integer from 1 to [`MAX_WORKERS_LIMIT`].
pub fn parse_max_workers(field: &str, text: &str) -> Result<u32, ConfigErrorKind> {
    let workers = super::values::parse_u32(field, Some(text))?;
    if workers == 0 {
        return Err(ConfigErrorKind::invalid(
            field,
            "must be at least 1, got '0'",
        ));
    }
    if workers > MAX_WORKERS_LIMIT {
        return Err(ConfigErrorKind::invalid(
            field,
            format!("integer '{workers}' out of range (1..={MAX_WORKERS_LIMIT})"),
        ));
    }
    Ok(workers)
}

/// `fencing`: only `watchdog` is implemented.
pub fn check_fencing(field: &str, text: &str) -> Result<(), ConfigErrorKind> {
    match text {
        "watchdog" => Ok(()),
        "hardware" | "both" => Err(ConfigErrorKind::NotSupported(format!(
            "field '{field}': fencing mode '{text}' is"
        ))),
        _ => Err(ConfigErrorKind::invalid(
            field,
            format!("invalid value '{text}': expected one of watchdog, hardware, both"),
        )),
    }
}

/// One key of the `crs` property string, stored in `crs` (spec 1.7).
pub fn apply_crs_option(
    crs: &mut CrsOptions,
    key: &str,
    text: &str,
) -> Result<(), ConfigErrorKind> {
    let field = format!("crs.{key}");
    match key {
        "ha" => {
            crs.mode = match text {
                "basic" => CrsMode::Basic,
                "static" => CrsMode::Static,
                "dynamic" => CrsMode::Dynamic,
                _ => {
                    return Err(ConfigErrorKind::invalid(
                        &field,
                        format!("invalid value '{text}': expected one of basic, static, dynamic"),
                    ))
                }
            }
        }
        "ha-rebalance-on-start" => crs.rebalance_on_start = parse_bool(&field, Some(text))?,
        "ha-auto-rebalance" => crs.auto_rebalance = parse_bool(&field, Some(text))?,
        "ha-auto-rebalance-threshold" => crs.threshold = parse_fraction(&field, text)?,
        "ha-auto-rebalance-margin" => crs.margin = parse_fraction(&field, text)?,
        "ha-auto-rebalance-method" => {
            crs.method = match text {
                "bruteforce" => RebalanceMethod::Bruteforce,
                "topsis" => RebalanceMethod::Topsis,
                _ => {
                    return Err(ConfigErrorKind::invalid(
                        &field,
                        format!("invalid value '{text}': expected one of bruteforce, topsis"),
                    ))
                }
            }
        }
        "ha-auto-rebalance-hold-duration" => {
            crs.hold_rounds = super::values::parse_u32(&field, Some(text))?
        }
        _ => {
            return Err(ConfigErrorKind::UnknownKey {
                field,
                section_type: "crs".to_string(),
            })
        }
    }
    Ok(())
}

/// A threshold or margin. pve-ha-manager 5.2 reads fractions (`0.3`),
/// the newer datacenter schema percent (`30`): a value of at most 1 is a
/// fraction, a larger one (up to 100) percent. Returned as a fraction.
fn parse_fraction(field: &str, text: &str) -> Result<f64, ConfigErrorKind> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| ConfigErrorKind::invalid(field, format!("invalid number '{text}'")))?;
    if !(0.0..=100.0).contains(&value) {
        return Err(ConfigErrorKind::invalid(
            field,
            format!("'{text}' is out of range: expected a fraction 0..1 or percent up to 100"),
        ));
    }
    Ok(if value > 1.0 { value / 100.0 } else { value })
}

/// Parses the value of datacenter.cfg's `crs` key (`ha=static,
/// ha-rebalance-on-start=1,...`); missing keys keep their defaults. This is
/// also the form of the cluster store's `crs` document.
pub fn parse_crs_property(text: &str) -> Result<CrsOptions, ConfigErrorKind> {
    let mut crs = CrsOptions::default();
    for_each_property("crs", text, |k, v| apply_crs_option(&mut crs, k, v))?;
    Ok(crs)
}

/// Writes the `crs` property string with only the keys that differ from
/// the defaults, in a fixed order (threshold and margin as fractions);
/// [`parse_crs_property`] reads it back to the same options.
pub fn write_crs_property(crs: &CrsOptions) -> String {
    let defaults = CrsOptions::default();
    let mut items = Vec::new();
    if crs.mode != defaults.mode {
        items.push(format!("ha={}", crs.mode));
    }
    if crs.rebalance_on_start != defaults.rebalance_on_start {
        items.push(format!(
            "ha-rebalance-on-start={}",
            u8::from(crs.rebalance_on_start)
        ));
    }
    if crs.auto_rebalance != defaults.auto_rebalance {
        items.push(format!(
            "ha-auto-rebalance={}",
            u8::from(crs.auto_rebalance)
        ));
    }
    if crs.threshold != defaults.threshold {
        items.push(format!("ha-auto-rebalance-threshold={}", crs.threshold));
    }
    if crs.method != defaults.method {
        items.push(format!("ha-auto-rebalance-method={}", crs.method.as_str()));
    }
    if crs.hold_rounds != defaults.hold_rounds {
        items.push(format!(
            "ha-auto-rebalance-hold-duration={}",
            crs.hold_rounds
        ));
    }
    if crs.margin != defaults.margin {
        items.push(format!("ha-auto-rebalance-margin={}", crs.margin));
    }
    items.join(",")
}

/// One key of the `ha` property string.
pub fn apply_ha_option(
    options: &mut DatacenterOptions,
    key: &str,
    text: &str,
) -> Result<(), ConfigErrorKind> {
    match key {
        "shutdown_policy" => {
            options.shutdown_policy = parse_shutdown_policy("ha.shutdown_policy", text)?;
            Ok(())
        }
        _ => Err(ConfigErrorKind::UnknownKey {
            field: format!("ha.{key}"),
            section_type: "ha".to_string(),
        }),
    }
}

/// Splits a property string `k1=v1,k2=v2` and hands each pair to `each`;
/// refuses items without `=` and keys given twice.
fn for_each_property(
    field: &str,
    text: &str,
    mut each: impl FnMut(&str, &str) -> Result<(), ConfigErrorKind>,
) -> Result<(), ConfigErrorKind> {
    let mut seen: Vec<&str> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            ConfigErrorKind::invalid(
                field,
                format!("invalid property '{item}': expected key=value"),
            )
        })?;
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return Err(ConfigErrorKind::invalid(
                field,
                format!("property '{key}' given twice"),
            ));
        }
        seen.push(key);
        each(key, value)?;
    }
    Ok(())
}

/// Parses the PVE form of datacenter.cfg (`key: value` lines, `#`
/// comments). HA keys are validated, other known PVE keys ignored, unknown
/// keys refused. Missing keys keep their defaults.
pub fn parse_datacenter_cfg(text: &str, file: &str) -> Result<DatacenterOptions, ConfigError> {
    let mut options = DatacenterOptions::default();
    let mut first_lines: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, raw_line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(':').ok_or_else(|| {
            ConfigErrorKind::BadLine {
                text: line.to_string(),
                expected: "'<key>: <value>'".to_string(),
            }
            .at(file, line_no)
        })?;
        let (key, value) = (key.trim_end(), value.trim_start());
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(ConfigErrorKind::BadLine {
                text: line.to_string(),
                expected: "'<key>: <value>'".to_string(),
            }
            .at(file, line_no));
        }
        if let Some(first_line) = first_lines.insert(key, line_no) {
            return Err(ConfigErrorKind::DuplicateKey {
                field: key.to_string(),
                first_line,
            }
            .at(file, line_no));
        }
        let missing = || ConfigErrorKind::MissingValue {
            field: key.to_string(),
        };
        let ha_key = matches!(key, "ha" | "crs" | "max_workers" | "fencing");
        let result = match key {
            _ if ha_key && value.is_empty() => Err(missing()),
            "ha" => for_each_property(key, value, |k, v| apply_ha_option(&mut options, k, v)),
            "crs" => for_each_property(key, value, |k, v| apply_crs_option(&mut options.crs, k, v)),
            "max_workers" => parse_max_workers(key, value).map(|n| options.max_workers = n),
            "fencing" => check_fencing(key, value),
            _ if IGNORED_PVE_KEYS.contains(&key) => Ok(()),
            _ => Err(ConfigErrorKind::UnknownKey {
                field: key.to_string(),
                section_type: "datacenter".to_string(),
            }),
        };
        result.map_err(|e| e.at(file, line_no))?;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pve_datacenter_cfg() {
        let text = "# cluster notes\nkeyboard: en-us\nha: shutdown_policy=migrate\ncrs: ha=basic,ha-rebalance-on-start=0\nmax_workers: 8\nfencing: watchdog\n";
        let options = parse_datacenter_cfg(text, "datacenter.cfg").unwrap();
        assert_eq!(options.shutdown_policy, ShutdownPolicy::Migrate);
        assert_eq!(options.max_workers, 8);
        assert_eq!(options.crs.mode, CrsMode::Basic);
        let text = "crs: ha=static,ha-rebalance-on-start=1,ha-auto-rebalance=1,ha-auto-rebalance-threshold=40,ha-auto-rebalance-method=topsis,ha-auto-rebalance-hold-duration=5,ha-auto-rebalance-margin=0.2\n";
        let crs = parse_datacenter_cfg(text, "datacenter.cfg").unwrap().crs;
        assert_eq!(crs.mode, CrsMode::Static);
        assert!(crs.rebalance_on_start && crs.auto_rebalance);
        assert!((crs.threshold - 0.4).abs() < 1e-9 && (crs.margin - 0.2).abs() < 1e-9);
        assert_eq!((crs.method, crs.hold_rounds), (RebalanceMethod::Topsis, 5));
        assert_eq!(
            parse_datacenter_cfg("", "datacenter.cfg").unwrap(),
            DatacenterOptions::default()
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases: [(&str, usize, &str); 13] = [
            ("ha:\n", 1, "field 'ha': missing value"),
            (
                "keyboard en-us\n",
                1,
                "invalid line 'keyboard en-us': expected '<key>: <value>'",
            ),
            (
                "\nha: shutdown_policy=never\n",
                2,
                "field 'ha.shutdown_policy': invalid value 'never'",
            ),
            ("ha: policy=freeze\n", 1, "field 'ha.policy': unknown key"),
            (
                "ha: freeze\n",
                1,
                "field 'ha': invalid property 'freeze': expected key=value",
            ),
            (
                "max_workers: 0\n",
                1,
                "field 'max_workers': must be at least 1",
            ),
            (
                "max_workers: many\n",
                1,
                "field 'max_workers': invalid integer 'many'",
            ),
            ("max_workers:\n", 1, "field 'max_workers': missing value"),
            (
                "crs: ha=fancy\n",
                1,
                "field 'crs.ha': invalid value 'fancy'",
            ),
            (
                "crs: ha-auto-rebalance-threshold=150\n",
                1,
                "field 'crs.ha-auto-rebalance-threshold': '150' is out of range",
            ),
            (
                "fencing: hardware\n",
                1,
                "field 'fencing': fencing mode 'hardware' is not supported yet",
            ),
            ("max_worker: 4\n", 1, "field 'max_worker': unknown key"),
            (
                "max_workers: 2\nmax_workers: 3\n",
                2,
                "field 'max_workers': duplicate key (first set on line 1)",
            ),
        ];
        for (text, line, message) in cases {
            let err = parse_datacenter_cfg(text, "datacenter.cfg").unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.line, line, "{shown}");
            assert!(
                shown.starts_with(&format!("datacenter.cfg:{line}: ")),
                "{shown}"
            );
            assert!(shown.contains(message), "{shown} lacks {message}");
        }
    }

    #[test]
    fn crs_property_round_trips_and_names_the_field() {
        let crs = parse_crs_property(
            "ha=static, ha-rebalance-on-start=1,ha-auto-rebalance=1,ha-auto-rebalance-threshold=40,ha-auto-rebalance-method=topsis,ha-auto-rebalance-hold-duration=5,ha-auto-rebalance-margin=0.2",
        )
        .unwrap();
        assert_eq!(crs.mode, CrsMode::Static);
        assert!(crs.rebalance_on_start && crs.auto_rebalance);
        assert_eq!(crs.threshold, 0.4);
        assert_eq!(crs.method, RebalanceMethod::Topsis);
        assert_eq!(crs.hold_rounds, 5);
        assert_eq!(parse_crs_property(&write_crs_property(&crs)).unwrap(), crs);
        assert_eq!(write_crs_property(&CrsOptions::default()), "");
        assert_eq!(parse_crs_property("").unwrap(), CrsOptions::default());
        let err = parse_crs_property("ha=fancy").unwrap_err().to_string();
        assert!(err.contains("crs.ha") && err.contains("fancy"), "{err}");
        let err = parse_crs_property("ha-auto-rebalance-margin=200")
            .unwrap_err()
            .to_string();
        assert!(err.contains("crs.ha-auto-rebalance-margin"), "{err}");
        let err = parse_crs_property("nope=1").unwrap_err().to_string();
        assert!(err.contains("crs.nope"), "{err}");
    }
}
