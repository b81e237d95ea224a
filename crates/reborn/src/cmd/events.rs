//! `reborn events [--node] [--kind] [--since] [--limit] [--follow]`.

use operator::api::wire::EventList;
use store::Event;

use super::client::{Client, ClientError};
use super::{output, print};
use crate::cli::{EventsArgs, OutputFormat};
use crate::exit_code::ExitStatus;

/// Shows (and optionally follows) the event log.
pub async fn run(client: Client, args: &EventsArgs) -> Result<ExitStatus, ClientError> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(n) = &args.node {
        query.push(("node", n.clone()));
    }
    if let Some(k) = &args.kind {
        query.push(("kind", k.clone()));
    }
    if let Some(s) = &args.since {
        query.push(("since", s.clone()));
    }
    if let Some(l) = args.limit {
        query.push(("limit", l.to_string()));
    }
    let format = args.client.output;
    if !args.follow {
        let list: EventList = client.get_query("/v1/events", &query).await?;
        let text =
            output::machine(format, &list).unwrap_or_else(|| output::event_table(&list.items));
        print(&text);
        return Ok(ExitStatus::Success);
    }
    query.push(("follow", "1".to_owned()));
    let mut bad_line = None;
    client
        .stream_lines("/v1/events", &query, |line| {
            if format == OutputFormat::Json {
                print(&format!("{line}\n"));
                return true;
            }
            match serde_json::from_str::<Event>(line) {
                Ok(e) => {
                    let text = match format {
                        OutputFormat::Yaml => output::machine(format, &e)
                            .map(|y| format!("---\n{y}"))
                            .unwrap_or_default(),
                        _ => format!("{}\n", output::event_line(&e)),
                    };
                    print(&text);
                    true
                }
                Err(e) => {
                    bad_line = Some(e.to_string());
                    false
                }
            }
        })
        .await?;
    match bad_line {
        Some(e) => Err(ClientError::Decode(e)),
        None => Ok(ExitStatus::Success),
    }
}
