//! `tiercache template restore NAME DIR`: downloads the template's stored outputs and unpacks
//! them into DIR with the build cache's extractor, which checks the whole archive first and
//! refuses absolute paths, `..`, and links that leave DIR.

use std::process::ExitCode;

use anyhow::Context;

use super::args::RestoreArgs;
use super::object::Outputs;
use super::{MISS, note};
use crate::build::archive;
use crate::build::remote::Fetched;

/// Runs `tiercache template restore`; [`MISS`] when the server has nothing for the caller.
pub fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let outputs = Outputs::new(&args.server, &args.name)?;
    let rt = super::runtime()?;
    let tmp = tempfile::NamedTempFile::new().context("creating a temporary file")?;
    match rt.block_on(outputs.get(tmp.path()))? {
        Fetched::Miss => {
            note(&format!(
                "cache miss: no outputs for template {:?} (not warmed yet, or the token does \
                 not list the template)",
                args.name
            ));
            Ok(ExitCode::from(MISS))
        }
        Fetched::Hit(size) => {
            let summary = archive::unpack(tmp.path(), &args.dir)
                .with_context(|| format!("unpacking the outputs of template {:?}", args.name))?;
            note(&format!(
                "restored {} of template {:?} into {} ({} downloaded)",
                summary.describe(),
                args.name,
                args.dir.display(),
                bytesize::ByteSize(size)
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}
