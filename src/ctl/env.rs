//! etcd's `pkg/flags` check of `ETCDCTL_*` environment variables, done where etcdctl builds
//! its client: an unknown `ETCDCTL_X` is warned about (`W | pkg/flags: unrecognized
//! environment variable …`), one that shadows a flag also given on the command line is fatal
//! (`C | pkg/flags: conflicting environment variable …`, exit 1). Lines carry capnslog's
//! timestamp (UTC).

use clap::parser::ValueSource;
use clap::ArgMatches;

/// Global flags: (environment suffix, clap argument id).
const GLOBALS: &[(&str, &str)] = &[
    ("ENDPOINTS", "endpoints"),
    ("DIAL_TIMEOUT", "dial_timeout"),
    ("COMMAND_TIMEOUT", "command_timeout"),
    ("WRITE_OUT", "write_out"),
    ("HEX", "hex"),
    ("DEBUG", "debug"),
    ("KEEPALIVE_TIME", "keepalive_time"),
    ("KEEPALIVE_TIMEOUT", "keepalive_timeout"),
    ("INSECURE_TRANSPORT", "insecure_transport"),
    ("INSECURE_SKIP_TLS_VERIFY", "insecure_skip_tls_verify"),
    ("INSECURE_DISCOVERY", "insecure_discovery"),
    ("CACERT", "cacert"),
    ("CERT", "cert"),
    ("KEY", "key"),
    ("USER", "user"),
    ("PASSWORD", "password"),
    ("DISCOVERY_SRV", "discovery_srv"),
    ("DISCOVERY_SRV_NAME", "discovery_srv_name"),
];

/// The outcome of the check: lines for stderr, and whether they end the process.
#[derive(Debug, Default)]
pub struct EnvCheck {
    /// Warning / fatal lines, in environment order.
    pub lines: Vec<String>,
    /// A conflicting variable was found (exit 1 after printing).
    pub fatal: bool,
}

/// Checks the process environment against the parsed command line.
pub fn check(m: &ArgMatches, watch: bool) -> EnvCheck {
    let mut out = EnvCheck::default();
    for (key, value) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let Some(suffix) = key.strip_prefix("ETCDCTL_") else {
            continue;
        };
        if suffix == "API" || (watch && (suffix == "WATCH_KEY" || suffix == "WATCH_RANGE_END")) {
            continue;
        }
        match GLOBALS.iter().find(|(s, _)| *s == suffix) {
            Some((_, id)) => {
                if m.value_source(id) == Some(ValueSource::CommandLine) {
                    out.lines.push(format!(
                        "{} C | pkg/flags: conflicting environment variable \"{key}\" is shadowed \
                         by corresponding command-line flag (either unset environment variable \
                         or disable flag)",
                        timestamp()
                    ));
                    out.fatal = true;
                    return out;
                }
            }
            None => out.lines.push(format!(
                "{} W | pkg/flags: unrecognized environment variable {key}={}",
                timestamp(),
                value.to_string_lossy()
            )),
        }
    }
    out
}

/// capnslog's `2006-01-02 15:04:05.000000` (UTC).
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_micros()
    )
}
