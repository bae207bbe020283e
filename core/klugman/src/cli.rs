//! Command line (clap) and its mapping to API requests. Covers klugman 0.4
//! (`--url`, `-a/--api_version`, `num-streams`, `num-events`, `archives`) and
//! 0.5 (`streams`/`events` with `--name --from --to --traits --details --state
//! --count --id/--msg_id`, positional URL), sends the parameter names the
//! server really reads (0.5 sent `name=` and `,`-joined traits), and adds
//! paging, `--json`, `reset` and `delete`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const STATES: [&str; 8] = [
    "active",
    "firing",
    "expiring",
    "error",
    "expire_error",
    "completed",
    "retry_fire",
    "retry_expire",
];

#[derive(Debug, Parser)]
#[command(
    name = "klugman",
    version = stv3_telemetry::version_string(env!("CARGO_PKG_VERSION")),
    about = "Command-line client of the StackTach.v3 REST API (stv3-api or the original quincy)",
    after_help = "Datetimes: 2015-02-28T13:30[:ss[.ffffff]][Z|+hh:mm], 2015-02-28, 02-28-2015T13:30.\n\
                  Traits: name:value;name:value (values may contain ':'; a ',' list without ';' is accepted too).\n\
                  Exit codes: 0 ok, 1 server or connection error, 2 usage, 3 request rejected (4xx), 4 not found."
)]
pub struct Cli {
    /// API endpoint (without /vN).
    #[arg(
        long,
        env = "STV3_URL",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub url: String,
    /// API version to talk to.
    #[arg(long = "api-version", short = 'a', alias = "api_version", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=2), global = true)]
    pub api_version: u8,
    /// Print the JSON the server returned instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print each request URL and its parameters on stderr.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "STV3_API_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List streams, count them, or show one (--id) with its events (--details).
    Streams(StreamsArgs),
    /// List events, count them, or show one (--msg-id).
    Events(EventsArgs),
    /// Count streams matching the filters (GET /vN/streams/count).
    #[command(name = "num-streams")]
    NumStreams(StreamFilters),
    /// Count events matching the filters (GET /vN/events/count).
    #[command(name = "num-events")]
    NumEvents(EventFilters),
    /// Reset a stream in error: error → retry_fire, expire_error → retry_expire (PUT).
    #[command(alias = "reset-stream")]
    Reset { stream_id: i64 },
    /// Delete a stream with its distinguishing traits and event links; events are kept (DELETE).
    #[command(alias = "delete-stream")]
    Delete { stream_id: i64 },
    /// List archive files, or download one with --get (v2).
    Archives(ArchivesArgs),
}

#[derive(Debug, Args, Clone, Default)]
pub struct StreamFilters {
    /// Only streams in this state.
    #[arg(long, value_parser = STATES)]
    pub state: Option<String>,
    /// Only streams of this trigger.
    #[arg(long, visible_alias = "name", alias = "trigger_name")]
    pub trigger: Option<String>,
    /// Only streams whose first event is before this datetime (first_event < T).
    #[arg(long, visible_alias = "from", alias = "older_than")]
    pub older: Option<String>,
    /// Only streams whose last event is after this datetime (last_event > T).
    #[arg(long, visible_alias = "to", alias = "younger_than")]
    pub younger: Option<String>,
    /// Distinguishing traits name:value;name:value (repeatable).
    #[arg(long, alias = "distinguishing_traits")]
    pub traits: Vec<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct EventFilters {
    /// Only events of this type.
    #[arg(long, alias = "event_name")]
    pub name: Option<String>,
    /// Only events generated after this datetime (generated > T).
    #[arg(long, alias = "from_datetime")]
    pub from: Option<String>,
    /// Only events generated at or before this datetime (generated <= T).
    #[arg(long, alias = "to_datetime")]
    pub to: Option<String>,
    /// Traits name:value;name:value (repeatable; int, float and datetime values match typed traits).
    #[arg(long)]
    pub traits: Vec<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct Paging {
    /// Page size (the server default is 200; it caps the value).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this mark (a `_mark` from a previous page; `+` for oldest first).
    #[arg(long, allow_hyphen_values = true)]
    pub mark: Option<String>,
    /// Follow marks and fetch every page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct StreamsArgs {
    #[command(flatten)]
    pub filters: StreamFilters,
    /// Show one stream.
    #[arg(long, conflicts_with = "count")]
    pub id: Option<i64>,
    /// With --id: include the stream's events.
    #[arg(long)]
    pub details: bool,
    /// Count instead of listing.
    #[arg(long)]
    pub count: bool,
    #[command(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Args, Clone, Default)]
pub struct EventsArgs {
    #[command(flatten)]
    pub filters: EventFilters,
    /// Show one event.
    #[arg(long = "msg-id", alias = "msg_id", conflicts_with = "count")]
    pub msg_id: Option<String>,
    /// Count instead of listing.
    #[arg(long)]
    pub count: bool,
    #[command(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ArchivesArgs {
    /// Only archives modified at or after this datetime.
    #[arg(long, alias = "start_ts")]
    pub start: Option<String>,
    /// Only archives modified before this datetime.
    #[arg(long, alias = "end_ts")]
    pub end: Option<String>,
    /// Download this archive (its id from the listing).
    #[arg(long)]
    pub get: Option<String>,
    /// With --get: write here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// Join repeated `--traits` with `;`. A single value with `,` but no `;`
/// whose parts all contain `:` is klugman 0.5's comma list: convert it.
pub fn traits_param(values: &[String]) -> Option<String> {
    let parts: Vec<String> = values
        .iter()
        .map(|v| {
            if !v.contains(';') && v.contains(',') && v.split(',').all(|p| p.contains(':')) {
                v.replace(',', ";")
            } else {
                v.clone()
            }
        })
        .filter(|v| !v.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(";"))
}

fn push(p: &mut Vec<(String, String)>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        p.push((k.to_string(), v.clone()));
    }
}

/// Query parameters for stream list/count, with the server's names.
pub fn stream_params(f: &StreamFilters) -> Vec<(String, String)> {
    let mut p = Vec::new();
    push(&mut p, "older_than", &f.older);
    push(&mut p, "younger_than", &f.younger);
    push(&mut p, "state", &f.state);
    push(&mut p, "trigger_name", &f.trigger);
    push(&mut p, "distinguishing_traits", &traits_param(&f.traits));
    p
}

pub fn event_params(f: &EventFilters) -> Vec<(String, String)> {
    let mut p = Vec::new();
    push(&mut p, "from_datetime", &f.from);
    push(&mut p, "to_datetime", &f.to);
    push(&mut p, "event_name", &f.name);
    push(&mut p, "traits", &traits_param(&f.traits));
    p
}

pub fn paging_params(p: &Paging) -> Vec<(String, String)> {
    let mut out = Vec::new();
    push(&mut out, "limit", &p.limit.map(|l| l.to_string()));
    push(&mut out, "mark", &p.mark);
    out
}

/// klugman 0.5 compatibility: a positional `http(s)://` URL before the
/// command becomes `--url`, and `--version N` (the API version in 0.5)
/// becomes `--api-version N`.
pub fn compat_args(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut it = args.into_iter().peekable();
    if let Some(prog) = it.next() {
        out.push(prog);
    }
    let mut seen_command = false;
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().to_string();
        let after_url_flag = out.last().is_some_and(|p| p.to_string_lossy() == "--url");
        if !seen_command
            && !after_url_flag
            && (s.starts_with("http://") || s.starts_with("https://"))
        {
            out.push("--url".into());
            out.push(a);
            continue;
        }
        if !seen_command && s == "--version" {
            if let Some(n) = it.peek().map(|n| n.to_string_lossy().to_string()) {
                if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) {
                    out.push("--api-version".into());
                    continue;
                }
            }
        }
        if !s.starts_with('-') && !seen_command {
            let prev = out
                .last()
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            let takes_value = matches!(
                prev.as_str(),
                "--url" | "--api-version" | "-a" | "--api_version" | "--token"
            );
            if !takes_value {
                seen_command = true;
            }
        }
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_compat(input: &[&str], expected: &[&str]) {
        let got: Vec<String> = compat_args(input.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, expected, "{input:?}");
    }

    #[test]
    fn klugman_05_argument_forms() {
        check_compat(
            &["k", "http://h:8000", "streams"],
            &["k", "--url", "http://h:8000", "streams"],
        );
        check_compat(
            &["k", "--version", "1", "http://h", "events", "--count"],
            &[
                "k",
                "--api-version",
                "1",
                "--url",
                "http://h",
                "events",
                "--count",
            ],
        );
        check_compat(&["k", "--version"], &["k", "--version"]);
        check_compat(
            &["k", "streams", "--traits", "url:http://x"],
            &["k", "streams", "--traits", "url:http://x"],
        );
        check_compat(
            &["k", "--url", "http://a", "streams"],
            &["k", "--url", "http://a", "streams"],
        );
    }

    #[test]
    fn traits_params() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (&["a:1"], Some("a:1")),
            (&["a:1,b:2"], Some("a:1;b:2")),
            (&["a:1;b:x,y"], Some("a:1;b:x,y")),
            (&["note:x,y"], Some("note:x,y")),
            (&["a:1", "b:2"], Some("a:1;b:2")),
        ];
        for (input, want) in cases {
            let v: Vec<String> = input.iter().map(|s| s.to_string()).collect();
            assert_eq!(traits_param(&v).as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn parameter_names_are_the_servers() {
        let f = StreamFilters {
            state: Some("error".into()),
            trigger: Some("usage".into()),
            older: Some("2015-01-01".into()),
            younger: Some("2014-01-01".into()),
            traits: vec!["instance_id:x".into()],
        };
        let names: Vec<String> = stream_params(&f).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "older_than",
                "younger_than",
                "state",
                "trigger_name",
                "distinguishing_traits"
            ]
        );
        let e = EventFilters {
            name: Some("n".into()),
            from: Some("a".into()),
            to: Some("b".into()),
            traits: vec![],
        };
        let names: Vec<String> = event_params(&e).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["from_datetime", "to_datetime", "event_name"]);
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
