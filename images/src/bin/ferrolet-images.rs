//! `ferrolet-images build --out DIR`: writes every local image as an OCI archive in DIR and
//! prints one line per image: reference, archive path, manifest digest and destination
//! (`runtime+registry` or `registry`), tab-separated.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ferrolet_images::catalog::{self, Sources};

#[derive(Parser, Debug)]
#[command(version, about = "Build ferrolet's local OCI images")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build every image as an OCI image-layout archive.
    Build {
        /// Directory for the archives (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// A statically linked busybox.
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        /// The statically linked ferrolet-pause program.
        #[arg(long)]
        pause: PathBuf,
        /// The statically linked ferrolet-testserver program.
        #[arg(long)]
        test_server: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let Command::Build {
        out,
        busybox,
        pause,
        test_server,
    } = Cli::parse().command;
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    for (recipe, destination) in catalog::all(&Sources {
        busybox,
        pause,
        test_server,
    })? {
        let file_name = recipe
            .reference
            .rsplit('/')
            .next()
            .unwrap_or(&recipe.reference)
            .replace(':', "_");
        let built = recipe
            .write_oci_archive(&out.join(format!("{file_name}.tar")))
            .with_context(|| format!("build image {}", recipe.reference))?;
        println!(
            "{}\t{}\t{}\t{}",
            built.reference,
            built.archive.display(),
            built.manifest_digest,
            destination.as_str()
        );
    }
    Ok(())
}
