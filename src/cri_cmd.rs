//! `ferrolet cri`: a crictl-like window onto a CRI runtime, through the same client the agent
//! uses. Handy to see what the agent sees, and to clean a runtime up.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use ferrolet_cri::{
    ConnectOptions, ImageService, RemoteRuntime, RuntimeEndpoint, RuntimeService, api, image_spec,
};

#[derive(Args, Debug)]
pub struct CriArgs {
    /// The runtime's CRI endpoint.
    #[arg(
        long,
        short = 'r',
        env = "CONTAINER_RUNTIME_ENDPOINT",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    runtime_endpoint: String,

    /// How long to wait for the runtime's socket, and for each call.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table", global = true)]
    output: Output,

    #[command(subcommand)]
    command: CriCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum CriCommand {
    /// Runtime name, version and CRI API version.
    Version,
    /// Runtime conditions (runtime and network readiness) and the runtime's own details.
    Info,
    /// List pod sandboxes.
    Pods,
    /// List containers (running ones unless --all).
    Ps {
        /// Include containers that are not running.
        #[arg(long, short = 'a')]
        all: bool,
    },
    /// List images.
    Images,
    /// Full status of pod sandboxes.
    Inspectp { ids: Vec<String> },
    /// Full status of containers.
    Inspect { ids: Vec<String> },
    /// Pull an image.
    Pull { image: String },
    /// Stop and remove pod sandboxes (with their containers).
    Rmp {
        ids: Vec<String>,
        /// Every sandbox of the runtime.
        #[arg(long, short = 'a', conflicts_with = "ids")]
        all: bool,
    },
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_mins(value)),
        _ => Err(format!("{text:?}: unit must be ms, s or m")),
    }
}

pub async fn run(args: CriArgs) -> anyhow::Result<()> {
    let endpoint = RuntimeEndpoint::parse(&args.runtime_endpoint)?;
    let options = ConnectOptions {
        connect_timeout: args.timeout,
        request_timeout: args.timeout,
        ..ConnectOptions::default()
    };
    let runtime = RemoteRuntime::connect(&endpoint, options).await?;
    let text = execute(&runtime, &runtime, args.command, args.output).await?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Runs one command and returns what to print.
async fn execute(
    runtime: &dyn RuntimeService,
    images: &dyn ImageService,
    command: CriCommand,
    output: Output,
) -> anyhow::Result<String> {
    let json = |value: &dyn erased::Json| -> anyhow::Result<String> {
        Ok(format!("{}\n", value.to_json()?))
    };
    match command {
        CriCommand::Version => {
            let version = runtime.version().await?;
            match output {
                Output::Json => json(&version),
                Output::Table => Ok(format!(
                    "RuntimeName:       {}\nRuntimeVersion:    {}\nRuntimeApiVersion: {}\n",
                    version.runtime_name, version.runtime_version, version.runtime_api_version
                )),
            }
        }
        CriCommand::Info => {
            let status = runtime.status(true).await?;
            match output {
                Output::Json => json(&status),
                Output::Table => Ok(conditions_table(&status)),
            }
        }
        CriCommand::Pods => {
            let pods = runtime.list_pod_sandbox(None).await?;
            match output {
                Output::Json => json(&pods),
                Output::Table => Ok(pods_table(&pods)),
            }
        }
        CriCommand::Ps { all } => {
            let filter = (!all).then(|| api::ContainerFilter {
                state: Some(api::ContainerStateValue {
                    state: api::ContainerState::ContainerRunning.into(),
                }),
                ..Default::default()
            });
            let containers = runtime.list_containers(filter).await?;
            match output {
                Output::Json => json(&containers),
                Output::Table => Ok(containers_table(&containers)),
            }
        }
        CriCommand::Images => {
            let list = images.list_images(None).await?;
            match output {
                Output::Json => json(&list),
                Output::Table => Ok(images_table(&list)),
            }
        }
        CriCommand::Inspectp { ids } => {
            let mut statuses = Vec::new();
            for id in &ids {
                statuses.push(runtime.pod_sandbox_status(id, true).await?);
            }
            json(&statuses)
        }
        CriCommand::Inspect { ids } => {
            let mut statuses = Vec::new();
            for id in &ids {
                statuses.push(runtime.container_status(id, true).await?);
            }
            json(&statuses)
        }
        CriCommand::Pull { image } => {
            let image_ref = images
                .pull_image(&image_spec(&image), None, None)
                .await
                .with_context(|| format!("pull {image}"))?;
            Ok(format!("Image is up to date for {image_ref}\n"))
        }
        CriCommand::Rmp { ids, all } => {
            let ids = if all {
                let pods = runtime.list_pod_sandbox(None).await?;
                pods.into_iter().map(|p| p.id).collect()
            } else {
                ids
            };
            let mut text = String::new();
            for id in ids {
                runtime.stop_pod_sandbox(&id).await?;
                runtime.remove_pod_sandbox(&id).await?;
                let _ = writeln!(text, "Removed sandbox {id}");
            }
            Ok(text)
        }
    }
}

/// JSON output of CRI messages, which derive `serde::Serialize` in `k8s-cri`.
mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Result<String>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Result<String> {
            serde_json::to_string_pretty(self)
        }
    }
}

fn short_id(id: &str) -> &str {
    id.get(..13).unwrap_or(id)
}

fn age(created_at_nanos: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let created = Duration::from_nanos(u64::try_from(created_at_nanos).unwrap_or(0));
    let secs = now.saturating_sub(created).as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Renders rows as left-aligned columns separated by three spaces (crictl's layout).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}   ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn conditions_table(status: &api::StatusResponse) -> String {
    let rows: Vec<Vec<String>> = status
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .map(|c| {
            vec![
                c.r#type.clone(),
                c.status.to_string(),
                c.reason.clone(),
                c.message.clone(),
            ]
        })
        .collect();
    table(&["CONDITION", "STATUS", "REASON", "MESSAGE"], &rows)
}

fn pods_table(pods: &[api::PodSandbox]) -> String {
    let rows: Vec<Vec<String>> = pods
        .iter()
        .map(|p| {
            let meta = p.metadata.clone().unwrap_or_default();
            vec![
                short_id(&p.id).to_owned(),
                age(p.created_at),
                p.state()
                    .as_str_name()
                    .trim_start_matches("SANDBOX_")
                    .to_owned(),
                meta.name,
                meta.namespace,
                meta.attempt.to_string(),
            ]
        })
        .collect();
    table(
        &["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT"],
        &rows,
    )
}

fn containers_table(containers: &[api::Container]) -> String {
    let rows: Vec<Vec<String>> = containers
        .iter()
        .map(|c| {
            let meta = c.metadata.clone().unwrap_or_default();
            vec![
                short_id(&c.id).to_owned(),
                c.image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default(),
                age(c.created_at),
                c.state()
                    .as_str_name()
                    .trim_start_matches("CONTAINER_")
                    .to_owned(),
                meta.name,
                meta.attempt.to_string(),
                short_id(&c.pod_sandbox_id).to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "CONTAINER",
            "IMAGE",
            "CREATED",
            "STATE",
            "NAME",
            "ATTEMPT",
            "POD ID",
        ],
        &rows,
    )
}

fn images_table(images: &[api::Image]) -> String {
    let mut rows = Vec::new();
    for image in images {
        let id = image.id.trim_start_matches("sha256:");
        let size = format!("{}.{}MB", image.size / 1_000_000, image.size / 100_000 % 10);
        if image.repo_tags.is_empty() {
            rows.push(vec![
                "<none>".into(),
                "<none>".into(),
                short_id(id).to_owned(),
                size,
            ]);
            continue;
        }
        for tag in &image.repo_tags {
            let (name, version) = tag.rsplit_once(':').unwrap_or((tag, "<none>"));
            rows.push(vec![
                name.to_owned(),
                version.to_owned(),
                short_id(id).to_owned(),
                size.clone(),
            ]);
        }
    }
    table(&["IMAGE", "TAG", "IMAGE ID", "SIZE"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolet_cri::fake::FakeRuntime;

    async fn run_on(fake: &FakeRuntime, command: CriCommand, output: Output) -> String {
        execute(fake, fake, command, output).await.unwrap()
    }

    #[tokio::test]
    async fn lists_pods_and_containers_in_columns() {
        let fake = FakeRuntime::new();
        fake.add_image("busybox:1.35");
        let config = ferrolet_cri::contract::sandbox_config("web", "");
        let pod = fake.run_pod_sandbox(&config, "").await.unwrap();
        let container_config = ferrolet_cri::contract::container_config("app", "busybox:1.35", &[]);
        let container = fake
            .create_container(&pod, &container_config, &config)
            .await
            .unwrap();

        let pods = run_on(&fake, CriCommand::Pods, Output::Table).await;
        let lines: Vec<&str> = pods.lines().collect();
        assert!(lines[0].starts_with("POD ID"), "{pods}");
        assert!(lines[1].starts_with(short_id(&pod)), "{pods}");
        assert!(
            lines[1].contains("READY") && lines[1].contains("web") && lines[1].contains("default")
        );

        // Not running yet: only `ps -a` shows it.
        let running = run_on(&fake, CriCommand::Ps { all: false }, Output::Table).await;
        assert_eq!(running.lines().count(), 1, "{running}");
        let all = run_on(&fake, CriCommand::Ps { all: true }, Output::Table).await;
        assert!(
            all.contains(short_id(&container)) && all.contains("CREATED"),
            "{all}"
        );
        fake.start_container(&container).await.unwrap();
        let running = run_on(&fake, CriCommand::Ps { all: false }, Output::Table).await;
        assert!(
            running.contains("RUNNING") && running.contains("app"),
            "{running}"
        );
    }

    #[tokio::test]
    async fn json_output_is_the_cri_message() {
        let fake = FakeRuntime::new();
        let text = run_on(&fake, CriCommand::Version, Output::Json).await;
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["runtime_api_version"], "v1");
        let images = run_on(&fake, CriCommand::Images, Output::Json).await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&images).unwrap(),
            serde_json::json!([])
        );
    }

    #[tokio::test]
    async fn rmp_all_stops_and_removes_every_sandbox() {
        let fake = FakeRuntime::new();
        for name in ["a", "b"] {
            let config = ferrolet_cri::contract::sandbox_config(name, "");
            fake.run_pod_sandbox(&config, "").await.unwrap();
        }
        fake.clear_calls();
        let text = run_on(
            &fake,
            CriCommand::Rmp {
                ids: vec![],
                all: true,
            },
            Output::Table,
        )
        .await;
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(
            fake.operations(),
            [
                "ListPodSandbox",
                "StopPodSandbox",
                "RemovePodSandbox",
                "StopPodSandbox",
                "RemovePodSandbox"
            ]
        );
        assert!(fake.list_pod_sandbox(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn errors_name_the_object() {
        let fake = FakeRuntime::new();
        let err = execute(
            &fake,
            &fake,
            CriCommand::Inspectp {
                ids: vec!["nope".into()],
            },
            Output::Json,
        )
        .await
        .unwrap_err();
        assert!(format!("{err:#}").contains("\"nope\""), "{err:#}");
        let err = execute(
            &fake,
            &fake,
            CriCommand::Pull {
                image: "nope:1".into(),
            },
            Output::Table,
        )
        .await
        .unwrap_err();
        assert!(format!("{err:#}").contains("nope:1"), "{err:#}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_mins(2)));
        assert!(parse_duration("2h").unwrap_err().contains("unit"));
        assert!(parse_duration("x").is_err());
    }
}
